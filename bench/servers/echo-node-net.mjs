// Echo server on node:net: `socket.pipe(socket)` (backpressure by the stream machinery). The
// client's FIN ends the pipe, which ends the socket after the echoed bytes.
import net from 'node:net'
import { announceReady, reportStatsOnExit, serverOptions } from './options.mjs'

const { host, port } = serverOptions()

const errors = {} // by code; peer resets at the end of a run are expected
let open = 0

const server = net.createServer({ noDelay: true }, (socket) => {
  open++
  socket.pipe(socket)
  socket.on('error', (err) => {
    errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1
  })
  socket.on('close', () => open--)
})

reportStatsOnExit(() => ({ active: open, handlerErrors: errors, rss: process.memoryUsage().rss }))
server.listen(port, host, () => announceReady(server.address().port))
