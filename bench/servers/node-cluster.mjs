// node:cluster with 2 worker processes, each running the node:net responder (servers/node-net.mjs)
// on the port the primary shares out: how a Node user scales over cores today. The primary
// prints the ready line once every worker listens; the harness measures the CPU of the whole
// process tree.
import cluster from 'node:cluster'
import { fileURLToPath } from 'node:url'
import { announceReady, serverOptions } from './options.mjs'

const WORKERS = 2

if (cluster.isPrimary) {
  const { port } = serverOptions()
  // Port 0 would give each worker its own port; take a free one first and share it.
  const shared = port || (await freePort())
  cluster.setupPrimary({
    exec: fileURLToPath(new URL('./node-net.mjs', import.meta.url)),
    args: [String(shared), ...process.argv.slice(3)],
    silent: true, // the workers' ready lines are not the harness's
  })
  let listening = 0
  for (let i = 0; i < WORKERS; i++) cluster.fork()
  cluster.on('listening', () => {
    if (++listening === WORKERS) announceReady(shared)
  })
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill('SIGTERM')
    process.exit(0)
  })
}

async function freePort() {
  const net = await import('node:net')
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}
