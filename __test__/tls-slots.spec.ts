// TLS handshake slots (`tls.maxHandshakes`) against sockets that connect and say nothing: a
// slot is taken when a ClientHello begins, not at accept, so silent sockets cannot make a
// real TLS client wait; `handshakeTimeout` (counted from accept) still closes them and counts
// them in stats().timeouts.handshake.
import { readFileSync } from 'node:fs'
import type net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import { closedSocket, connect, portOf, serve, until, within } from './helpers/index.js'

const tlsDir = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))
const HANDSHAKE_TIMEOUT = 4000

/** A TLS echo-once server with `maxHandshakes` slots (the default when undefined). */
function tlsServer(t: ExecutionContext, maxHandshakes?: number) {
  return serve(t, {
    tls: {
      cert: `${tlsDir}server.crt`,
      key: `${tlsDir}server.key`,
      handshakeTimeout: HANDSHAKE_TIMEOUT,
      ...(maxHandshakes === undefined ? {} : { maxHandshakes }),
    },
    maxConnections: 4096,
    async handler(conn) {
      const chunk = await conn.read()
      if (chunk) await conn.write(chunk)
    },
  })
}

/** `n` TCP clients that connect and never send a byte. */
async function silentSockets(t: ExecutionContext, port: number, n: number): Promise<net.Socket[]> {
  const sockets: net.Socket[] = []
  t.teardown(() => {
    for (const s of sockets) s.destroy()
  })
  // In batches: a burst of thousands would overflow the listen backlog.
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => connect(port)))
    for (const s of batch) s.on('error', () => {})
    sockets.push(...batch)
  }
  return sockets
}

/** Milliseconds a node:tls client takes from connect to an echoed byte. */
async function timedTlsClient(port: number): Promise<number> {
  const started = performance.now()
  const reply = await within(
    new Promise<string>((resolve, reject) => {
      const s = tls.connect(
        { port, host: '127.0.0.1', ca: readFileSync(`${tlsDir}ca.crt`), servername: 'localhost' },
        () => s.write('x'),
      )
      s.once('data', (d) => {
        resolve(d.toString())
        s.destroy()
      })
      s.once('error', reject)
    }),
    HANDSHAKE_TIMEOUT * 3,
    'TLS client',
  )
  if (reply !== 'x') throw new Error(`echo said ${reply}`)
  return performance.now() - started
}

test('20 silent sockets do not hold 8 handshake slots: a real TLS client completes at once; the silent ones time out and are counted', async (t) => {
  const server = await tlsServer(t, 8)
  const port = portOf(server)
  const silent = await silentSockets(t, port, 20)
  await until(() => server.stats().accepted >= 20, 5000, '20 silent sockets accepted')
  const ms = await timedTlsClient(port)
  t.log(`TLS client behind 20 silent sockets (8 slots): ${Math.round(ms)} ms`)
  t.true(
    ms < 1000,
    `TLS client behind 20 silent sockets with 8 slots took ${Math.round(ms)} ms (timeout 4000 ms)`,
  )
  // The handshake timeout still runs from accept: every silent socket is closed and counted.
  await within(
    Promise.all(silent.map((s) => closedSocket(s))),
    HANDSHAKE_TIMEOUT + 5000,
    'silent sockets closed',
  )
  t.is(server.stats().timeouts.handshake, 20)
  t.is(server.stats().tls.handshakes, 1)
})

test.serial(
  '1,100 silent sockets do not fill the 1,024 default slots: a real TLS client completes at once',
  async (t) => {
    const server = await tlsServer(t)
    const port = portOf(server)
    await silentSockets(t, port, 1100)
    await until(() => server.stats().accepted >= 1100, 10000, '1,100 silent sockets accepted')
    const ms = await timedTlsClient(port)
    t.log(`TLS client behind 1,100 silent sockets (1,024 slots): ${Math.round(ms)} ms`)
    t.true(ms < 1000, `TLS client behind 1,100 silent sockets took ${Math.round(ms)} ms (timeout 4000 ms)`)
  },
)
