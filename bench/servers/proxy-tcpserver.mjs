// TCP proxy on our library: one outbound connection per client, forwarded both ways by pipe()
// (splice(2) in Rust on Linux). Reads `--upstream host:port`.
import { loadLibrary, serve } from './library.mjs'
import { serverOptions } from './options.mjs'

const { host, port, upstream } = serverOptions()
if (!upstream) throw new Error('proxy needs --upstream host:port')

const library = await loadLibrary()
if (library) {
  const { connect } = library
  // Handler errors (peer resets at the end of a run) are counted by serve().
  await serve(library, {
    host,
    port,
    handler: async (conn) => {
      const up = await connect(upstream)
      try {
        await conn.pipe(up)
      } finally {
        up.close()
      }
    },
  })
}
