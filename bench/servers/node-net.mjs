// node:net transport + the shared responder.
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { announceReady, serverOptions } from './options.mjs'
import { createResponder } from './responder.mjs'

const { host, port, bodySize, delay, sha } = serverOptions()

// TCP_NODELAY like node:http and tcpserver (both default to it).
const server = net.createServer({ noDelay: true }, (socket) => {
  const respond = createResponder(bodySize, { sha })
  const answer = ({ out, close }) => {
    if (close) socket.end(out ?? undefined)
    else if (out !== null) socket.write(out)
  }
  // t5: async work before answering. Timers of one duration fire in the order they were set, so
  // pipelined answers keep their order. Without a delay, no async function (no promise per chunk).
  const onData =
    delay > 0
      ? async (chunk) => {
          const answers = respond(chunk)
          if (answers.out !== null) await sleep(delay)
          answer(answers)
        }
      : (chunk) => answer(respond(chunk))
  socket.on('data', onData)
  socket.on('error', () => {}) // peer resets at the end of a run are expected
})

server.listen(port, host, () => announceReady(server.address().port))
