// Echo server: every byte a client sends comes back. `node examples/echo.mjs [address]`
import { listen } from 'tcpserver-rs'

export async function startEcho(address = process.argv[2] ?? '127.0.0.1:7000') {
  return listen({
    address,
    handler(conn) {
      // Each chunk goes back as it arrives. Returning write()'s promise applies backpressure:
      // a client that does not read slows its own echo down.
      return conn.receive((chunk) => conn.write(chunk))
    },
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const server = await startEcho()
  console.log(`echo listening on ${server.addresses.map((a) => `${a.address}:${a.port}`).join(', ')}`)
  process.once('SIGINT', () => server.shutdown({ timeout: 5000 }))
}
