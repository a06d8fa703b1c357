// Issue 16, item 3: a busy port is never shared silently. With `reusePort` left at its default,
// listen() on a port another socket holds fails with EADDRINUSE, as node:net does; the
// server's own accept loops (`loops`) still share their port; two servers share a port only
// when both asked for `reusePort: true` (a hand-over between processes).
import net from 'node:net'
import test from 'ava'
import { listen } from 'tcpserver-rs'
import { listenInChild, portOf, roundTrip, serve, within } from './helpers/index.ts'

/** A node:net server on 127.0.0.1:0 that answers `net` to every client, closed at the end. */
async function netServer(t: { teardown(fn: () => void): void }): Promise<number> {
  const server = net.createServer((s) => s.end('net'))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  return (server.address() as net.AddressInfo).port
}

test('a port node:net holds is EADDRINUSE for listen() with default options', async (t) => {
  const port = await netServer(t)
  for (const extra of [{}, { loops: 4 }, { loops: 1 }]) {
    const err = await t.throwsAsync(listen({ address: `127.0.0.1:${port}`, ...extra }), {
      code: 'EADDRINUSE',
    })
    t.like(err, { syscall: 'bind', address: '127.0.0.1', port }, JSON.stringify(extra))
  }
  // node:net still gets every client.
  for (let i = 0; i < 16; i++) t.is((await roundTrip(port, '')).toString(), 'net')
})

test('a second tcpserver with default options is EADDRINUSE, in another process and in this one (was: bound, clients split between the two)', async (t) => {
  const first = await serve(t, { handler: async () => {} })
  const port = portOf(first)
  t.deepEqual(await listenInChild({ address: `127.0.0.1:${port}` }), { code: 'EADDRINUSE' })
  await t.throwsAsync(listen({ address: `127.0.0.1:${port}` }), { code: 'EADDRINUSE' })
  await t.throwsAsync(listen({ address: `127.0.0.1:${port}`, reusePort: false }), { code: 'EADDRINUSE' })
  // A server that explicitly asked for reusePort cannot squat a port that one holds either.
  const explicit = await serve(t, { reusePort: true, handler: async () => {} })
  await t.throwsAsync(listen({ address: `127.0.0.1:${portOf(explicit)}` }), { code: 'EADDRINUSE' })
})

test('reusePort: true on both servers shares the port, and both serve', async (t) => {
  const answer = (name: string) => async (conn: { write(s: string): Promise<void> }) => {
    await conn.write(name)
  }
  const a = await serve(t, { reusePort: true, loops: 1, handler: answer('a') })
  const port = portOf(a)
  const b = await serve(t, { address: `127.0.0.1:${port}`, reusePort: true, loops: 1, handler: answer('b') })
  const seen = { a: 0, b: 0 }
  // The kernel hashes each client to one socket: all 64 on one of two has chance 2^-63.
  for (let i = 0; i < 64; i++) {
    const got = (await roundTrip(port, '')).toString() as 'a' | 'b'
    seen[got]++
  }
  t.log(`clients: a ${seen.a}, b ${seen.b}`)
  t.true(seen.a > 0 && seen.b > 0, JSON.stringify(seen))
  t.is(seen.a + seen.b, 64)
  t.is(a.stats().accepted + b.stats().accepted, 64)
  // Another process asking for reusePort: true may join too (the hand-over case).
  t.deepEqual(await listenInChild({ address: `127.0.0.1:${port}`, reusePort: true }), { ok: true, port })
})

test('loops: 4 with default options: four sockets on one port, every one of them accepting', async (t) => {
  const server = await serve(t, {
    loops: 4,
    async handler(conn) {
      await conn.write('ok')
    },
  })
  const port = portOf(server)
  // A client hashed to a socket no loop accepted on would wait in its backlog until `within`.
  const clients = await Promise.all(
    Array.from({ length: 64 }, () => within(roundTrip(port, ''), 5000, 'round trip')),
  )
  t.true(clients.every((c) => c.toString() === 'ok'))
  t.is(server.stats().accepted, 64)
  // And a node:net server cannot take the port while it runs (Node sets no SO_REUSEPORT).
  const squatter = net.createServer()
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
    squatter.once('error', resolve)
    squatter.listen(port, '127.0.0.1')
  })
  t.is(err.code, 'EADDRINUSE')
})
