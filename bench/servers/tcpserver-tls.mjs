// Our library with TLS terminated in Rust (rustls) + the shared responder, called by
// `conn.receive` as in the plain-TCP variant (tcpserver-handler.mjs).
import { loadLibrary, serve } from './library.mjs'
import { serverOptions } from './options.mjs'
import { countLostWrites, responderHandler } from './tcpserver-handler.mjs'
import { certPath, keyPath } from './tls-credentials.mjs'

const options = serverOptions()
countLostWrites()

const library = await loadLibrary()
if (library) {
  await serve(library, {
    host: options.host,
    port: options.port,
    tls: { cert: certPath, key: keyPath },
    handler: responderHandler(options),
  })
}
