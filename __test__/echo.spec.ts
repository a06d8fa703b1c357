// End-to-end echo: many concurrent IPv4 clients with hash checks, and a large IPv6 transfer.
import { randomBytes } from 'node:crypto'
import test from 'ava'
import type { Connection } from 'tcpserver-rs'
import { connect, portOf, roundTrip, serve, sha256, until, within } from './helpers/index.js'

async function echo(conn: Connection): Promise<void> {
  for await (const chunk of conn) await conn.write(chunk)
}

const CLIENTS = 1000
const PER_CLIENT = 64 * 1024

test('1,000 concurrent clients each get back exactly the 64 KiB they sent', async (t) => {
  const server = await serve(t, { handler: echo })
  const port = portOf(server)

  async function client(): Promise<boolean> {
    const data = randomBytes(PER_CLIENT)
    const socket = await connect(port)
    const chunks: Buffer[] = []
    const done = new Promise<void>((resolve, reject) => {
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.once('end', () => resolve())
      socket.once('error', reject)
    })
    // Several writes of uneven sizes, then the half-close.
    const cuts = [0, 1, 4096, 20_000, 40_000, PER_CLIENT]
    for (let i = 1; i < cuts.length; i++) socket.write(data.subarray(cuts[i - 1], cuts[i]))
    socket.end()
    await done
    socket.destroy()
    return sha256(Buffer.concat(chunks)) === sha256(data)
  }

  const results = await within(
    Promise.all(Array.from({ length: CLIENTS }, () => client())),
    30_000,
    `${CLIENTS} echo clients`,
  )
  t.is(results.filter((ok) => !ok).length, 0, 'every client got its own bytes back')
  t.is(server.acceptedConnections, CLIENTS)
  await until(() => server.activeConnections === 0, 10_000, 'activeConnections back to 0')
  t.is(server.activeConnections, 0)
})

test('IPv6 (::1) echo of 8 MiB', async (t) => {
  const server = await serve(t, { address: '[::1]:0', handler: echo })
  t.is(server.addresses[0]?.family, 'IPv6')
  t.is(server.addresses[0]?.address, '::1')
  const data = randomBytes(8 * 1024 * 1024)
  const back = await within(roundTrip(portOf(server), data, '::1'), 20_000, 'IPv6 echo')
  t.is(back.length, data.length)
  t.is(sha256(back), sha256(data))
  await until(() => server.activeConnections === 0, 5000, 'activeConnections back to 0')
  t.is(server.acceptedConnections, 1)
})
