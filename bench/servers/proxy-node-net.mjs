// TCP proxy on node:net: one outbound socket per client, `socket.pipe(up); up.pipe(socket)`.
// Half-open both ways, like tcpserver's pipe(): a FIN is passed on and the other way stays open;
// an error on either side destroys both. Reads `--upstream host:port`.
import net from 'node:net'
import { announceReady, reportStatsOnExit, serverOptions, splitAddress } from './options.mjs'

const { host, port, upstream } = serverOptions()
if (!upstream) throw new Error('proxy needs --upstream host:port')
const target = { ...splitAddress(upstream), noDelay: true, allowHalfOpen: true }

const errors = {} // by code; peer resets at the end of a run are expected
const count = (err) => {
  errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1
}
let open = 0

const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
  open++
  const up = net.connect(target)
  socket.pipe(up)
  up.pipe(socket)
  socket.on('error', (err) => {
    count(err)
    up.destroy()
  })
  up.on('error', (err) => {
    count(err)
    socket.destroy()
  })
  socket.on('close', () => open--)
})

reportStatsOnExit(() => ({ active: open, handlerErrors: errors, rss: process.memoryUsage().rss }))
server.listen(port, host, () => announceReady(server.address().port))
