// TCP proxy: every client connection is forwarded to an upstream, both ways, entirely in Rust
// (splice(2) on Linux: the bytes never enter JavaScript).
//   node examples/proxy.mjs [listen-address] [upstream-address]
// As a command, with TLS termination and stats: `tcpserver proxy` (packages/tcpserver/src/cli/proxy.ts).
import { connect, listen } from 'tcpserver-rs'

export async function startProxy(address = '127.0.0.1:9000', upstream = '127.0.0.1:8080') {
  return listen({
    address,
    async handler(conn) {
      const up = await connect(upstream, { timeout: 5000 })
      try {
        await conn.pipe(up, { idleTimeout: 300_000 })
      } finally {
        up.close()
      }
    },
    onError(error, conn) {
      console.error(`proxy: ${conn.remoteAddress}:${conn.remotePort}: ${error.code ?? error}`)
    },
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [address, upstream] = process.argv.slice(2)
  const server = await startProxy(address, upstream)
  const a = server.addresses[0]
  console.log(`proxy ${a.address}:${a.port} -> ${upstream ?? '127.0.0.1:8080'}`)
  process.once('SIGINT', () => server.shutdown({ timeout: 5000 }))
}
