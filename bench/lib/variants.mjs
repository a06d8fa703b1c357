// Server variants: each script starts one server (see servers/options.mjs for its command line).
// `baseline` is the variant every ratio is computed against.

export const variants = [
  { id: 'tcpserver', label: 'tcpserver', script: 'servers/tcpserver.mjs' },
  { id: 'node-net', label: 'node:net', script: 'servers/node-net.mjs', baseline: true },
  { id: 'node-http', label: 'node:http', script: 'servers/node-http.mjs' },
]

export const baselineId = variants.find((v) => v.baseline).id
