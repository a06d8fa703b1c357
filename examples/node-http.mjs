// node:http over tcpserver: tcpserver accepts the connections, Node's own HTTP parser and
// response writer run on each one through `conn.toDuplex()`. `http.Server` never listens
// itself; it is handed every connection as a stream. `node examples/node-http.mjs [address]`
import { createHash } from 'node:crypto'
import http from 'node:http'
import { finished } from 'node:stream/promises'
import { listen } from 'tcpserver-rs'

/** Answers GET with a greeting and the client's address; POST with the body's size and SHA-256. */
function app(req, res) {
  if (req.method === 'POST') {
    const hash = createHash('sha256')
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      hash.update(chunk)
    })
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json')
      res.end(`${JSON.stringify({ size, sha256: hash.digest('hex') })}\n`)
    })
    return
  }
  res.setHeader('Content-Type', 'text/plain')
  res.end(`hello from node:http on tcpserver, ${req.method} ${req.url} from ${req.socket.remoteAddress}\n`)
}

export async function startNodeHttp(address = process.argv[2] ?? '127.0.0.1:8081') {
  const httpServer = http.createServer(app)
  return listen({
    address,
    async handler(conn) {
      const socket = conn.toDuplex()
      httpServer.emit('connection', socket)
      // Returning would close the connection: wait until node:http is done with it (keep-alive
      // included). Its errors (a reset, a parse error) are node:http's to handle and log.
      await finished(socket).catch(() => {})
    },
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startNodeHttp()
  const a = server.addresses[0]
  console.log(`node:http over tcpserver on http://${a.address}:${a.port}/`)
  process.once('SIGINT', () => server.shutdown({ timeout: 5000 }))
}
