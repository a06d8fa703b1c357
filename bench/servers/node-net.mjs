// node:net transport + the shared responder.
import net from 'node:net'
import { announceReady, serverOptions } from './options.mjs'
import { buildResponse, createResponder } from './responder.mjs'

const { host, port, bodySize } = serverOptions()
const response = buildResponse(bodySize)

// TCP_NODELAY like node:http and tcpserver (both default to it).
const server = net.createServer({ noDelay: true }, (socket) => {
  const respond = createResponder(bodySize, response)
  socket.on('data', (chunk) => {
    const { out, close } = respond(chunk)
    if (close) socket.end(out ?? undefined)
    else if (out !== null) socket.write(out)
  })
  socket.on('error', () => {}) // peer resets at the end of a run are expected
})

server.listen(port, host, () => announceReady(server.address().port))
