// Our library with TLS terminated in Rust (rustls) + the shared responder.
import { loadLibrary, serve } from './library.mjs'
import { serverOptions } from './options.mjs'
import { createResponder } from './responder.mjs'
import { certPath, keyPath } from './tls-credentials.mjs'

const { host, port, bodySize } = serverOptions()

process.on('unhandledRejection', () => {}) // writes to peers that left; counted by onError

async function handler(conn) {
  const respond = createResponder(bodySize)
  for await (const chunk of conn) {
    const { out, close } = respond(chunk)
    if (close) {
      if (out !== null) await conn.write(out)
      return
    }
    if (out !== null) conn.write(out)
  }
}

const library = await loadLibrary()
if (library) await serve(library, { host, port, tls: { cert: certPath, key: keyPath }, handler })
