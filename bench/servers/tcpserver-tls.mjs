// Our library with TLS terminated in Rust (rustls) + the shared responder.
import { errorCounter, loadLibrary } from './library.mjs'
import { announceReady, reportStatsOnExit, serverOptions } from './options.mjs'
import { buildResponse, createResponder } from './responder.mjs'
import { certPath, keyPath } from './tls-credentials.mjs'

const { host, port, bodySize } = serverOptions()
const response = buildResponse(bodySize)

process.on('unhandledRejection', () => {}) // writes to peers that left; counted by onError

async function handler(conn) {
  const respond = createResponder(bodySize, response)
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
if (library) {
  const errors = errorCounter()
  const server = await library.listen({
    address: `${host}:${port}`,
    tls: { cert: certPath, key: keyPath },
    handler,
    onError: errors.onError,
  })
  reportStatsOnExit(() => ({ ...server.stats(), handlerErrors: errors.counts }))
  announceReady(server.addresses[0].port)
}
