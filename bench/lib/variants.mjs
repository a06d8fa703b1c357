// Server variants: each script starts one server (see servers/options.mjs for its command line).
// `baseline` is the variant every ratio is computed against; `anchor` the one whose CPU per
// request is the bar (issue 13: Bun.listen). A test may give a variant another script
// (lib/tests.mjs, `variants`). `runtime: 'bun'` runs the script with Bun instead of Node.

export const variants = [
  { id: 'tcpserver', label: 'tcpserver', script: 'servers/tcpserver.mjs' },
  { id: 'node-net', label: 'node:net', script: 'servers/node-net.mjs', baseline: true },
  { id: 'node-http', label: 'node:http', script: 'servers/node-http.mjs' },
  { id: 'bun', label: 'Bun.listen', script: 'servers/bun-listen.mjs', runtime: 'bun', anchor: true },
  { id: 'uws', label: 'uWS.js', script: 'servers/uws.mjs' },
  // Several cores (issue 14): only in the tests that list them (`explicit`).
  {
    id: 'tcpserver-workers',
    label: 'tcpserver workers: 2',
    script: 'servers/tcpserver-workers.mjs',
    explicit: true,
  },
  { id: 'node-cluster', label: 'node:cluster 2', script: 'servers/node-cluster.mjs', explicit: true },
]

export const baselineId = variants.find((v) => v.baseline).id
export const anchorId = variants.find((v) => v.anchor).id

/**
 * The selected variants that `test` runs, as { id, label, script, runtime }: its own script for
 * each variant it lists (the label then says how, e.g. "tcpserver pipe()"), or every variant's
 * default.
 */
export function variantsFor(test, selected = variants) {
  if (!test.variants) {
    return selected
      .filter((v) => !v.explicit)
      .map(({ id, label, script, runtime = 'node' }) => ({ id, label, script, runtime }))
  }
  return selected
    .filter((v) => test.variants[v.id])
    .map((v) => {
      const { script, how, label = v.label } = test.variants[v.id]
      return { id: v.id, label: how ? `${label} ${how}` : label, script, runtime: v.runtime ?? 'node' }
    })
}
