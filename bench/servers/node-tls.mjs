// node:tls transport + the shared responder (what a Node user would pick for TLS).
import tls from 'node:tls'
import { announceReady, serverOptions } from './options.mjs'
import { createResponder } from './responder.mjs'
import { cert, key } from './tls-credentials.mjs'

const { host, port, bodySize } = serverOptions()

const server = tls.createServer({ cert, key, noDelay: true }, (socket) => {
  const respond = createResponder(bodySize)
  socket.on('data', (chunk) => {
    const { out, close } = respond(chunk)
    if (close) socket.end(out ?? undefined)
    else if (out !== null) socket.write(out)
  })
  socket.on('error', () => {}) // peer resets at the end of a run are expected
})
server.on('tlsClientError', () => {})

server.listen(port, host, () => announceReady(server.address().port))
