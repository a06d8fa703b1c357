// The fixed upstream of the proxy throughput test (node:net): `GET /N` is answered with N bytes
// of the shared pattern (servers/pattern.mjs) from memory, with backpressure, then the
// connection closes. N is read from the path, so the warm-up can ask for less.
import net from 'node:net'
import { announceReady, serverOptions } from './options.mjs'
import { patternSlices } from './pattern.mjs'

const { host, port } = serverOptions()
const REQUEST = /^GET \/(\d+) HTTP\/1\.[01]\r\n/

const server = net.createServer({ noDelay: true }, (socket) => {
  let head = ''
  socket.setEncoding('latin1')
  socket.on('data', function onData(text) {
    head += text
    if (!head.includes('\r\n\r\n')) return
    socket.off('data', onData)
    const m = REQUEST.exec(head)
    if (!m) {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      return
    }
    send(socket, Number(m[1]))
  })
  socket.on('error', () => {}) // a client that leaves early is not this server's problem
})

async function send(socket, length) {
  socket.write(
    `HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n`,
  )
  for (const slice of patternSlices(0, length)) {
    if (socket.destroyed) return
    if (!socket.write(slice)) await drained(socket)
  }
  socket.end()
}

/** Resolves on 'drain' or 'close', whichever comes first, leaving no listener behind. */
function drained(socket) {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done).off('close', done)
      resolve()
    }
    socket.on('drain', done).on('close', done)
  })
}

server.listen(port, host, () => announceReady(server.address().port))
