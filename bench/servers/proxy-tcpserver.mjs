// TCP proxy on our library: one outbound connection per client, forwarded both ways by pipe()
// (splice(2) in Rust on Linux). Reads `--upstream host:port`.
import { errorCounter, loadLibrary } from './library.mjs'
import { announceReady, reportStatsOnExit, serverOptions } from './options.mjs'

const { host, port, upstream } = serverOptions()
if (!upstream) throw new Error('proxy needs --upstream host:port')

const library = await loadLibrary()
if (library) {
  const { connect, listen } = library
  const errors = errorCounter() // the handler's errors (peer resets at the end of a run) by code
  const server = await listen({
    address: `${host}:${port}`,
    handler: async (conn) => {
      const up = await connect(upstream)
      try {
        await conn.pipe(up)
      } finally {
        up.close()
      }
    },
    onError: errors.onError,
  })
  reportStatsOnExit(() => ({
    ...server.stats(),
    handlerErrors: errors.counts,
    rss: process.memoryUsage().rss,
  }))
  announceReady(server.addresses[0].port)
}
