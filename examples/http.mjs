// A tiny HTTP/1.1 responder on a raw Connection (the benchmark's responder, kept readable):
// keep-alive, pipelining, `Connection: close`. `node examples/http.mjs [address]`
import { listen } from 'tcpserver-rs'

const body = Buffer.from('hello from tcpserver\n')
const head = (close) =>
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`

export async function startHttp(address = process.argv[2] ?? '127.0.0.1:8080') {
  return listen({
    address,
    handler(conn) {
      let pending = ''
      // receive(): a callback per chunk as it arrives, no promise per request.
      return conn.receive((chunk) => {
        pending += chunk.toString('latin1')
        let reply = null
        let end = pending.indexOf('\r\n\r\n')
        while (end !== -1) {
          const request = pending.slice(0, end)
          pending = pending.slice(end + 4)
          const close = /\r\nconnection:\s*close/i.test(request)
          const response = Buffer.concat([Buffer.from(head(close)), body])
          reply = reply === null ? response : Buffer.concat([reply, response])
          if (close) {
            conn.write(reply)
            return false // stop: the handler settles, the connection closes after the write
          }
          end = pending.indexOf('\r\n\r\n')
        }
        // Holds the next chunk back only while the client is not reading its answers.
        return reply === null ? undefined : conn.write(reply)
      })
    },
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startHttp()
  const a = server.addresses[0]
  console.log(`http listening on http://${a.address}:${a.port}/`)
  process.once('SIGINT', () => server.shutdown({ timeout: 5000 }))
}
