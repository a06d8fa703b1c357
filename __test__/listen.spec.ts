import test from 'ava'
import { listen } from 'tcpserver-rs'
import { portOf, roundTrip, serve } from './helpers/index.ts'

const echo = async (conn: import('tcpserver-rs').Connection): Promise<void> => {
  for await (const chunk of conn) await conn.write(chunk)
}

test('IPv4 on port 0 reports the real port and serves', async (t) => {
  const server = await serve(t, { address: '127.0.0.1:0', handler: echo })
  t.deepEqual(server.addresses.length, 1)
  const a = server.addresses[0]!
  t.is(a.address, '127.0.0.1')
  t.is(a.family, 'IPv4')
  t.true(a.port > 0)
  t.is((await roundTrip(a.port, 'ping')).toString(), 'ping')
})

test('IPv6 loopback', async (t) => {
  const server = await serve(t, { address: '[::1]:0', handler: echo })
  const a = server.addresses[0]!
  t.deepEqual([a.address, a.family], ['::1', 'IPv6'])
  t.is((await roundTrip(a.port, 'v6', '::1')).toString(), 'v6')
})

test('two addresses on one server, given as a string and as { host, port }', async (t) => {
  const server = await serve(t, { address: ['127.0.0.1:0', { host: '::1', port: 0 }], handler: echo })
  t.is(server.addresses.length, 2)
  const [v4, v6] = server.addresses
  t.is((await roundTrip(v4!.port, 'four')).toString(), 'four')
  t.is((await roundTrip(v6!.port, 'six', '::1')).toString(), 'six')
})

test('[::] is dual-stack by default and IPv6-only with ipv6Only', async (t) => {
  const dual = await serve(t, { address: '[::]:0', handler: echo })
  t.is((await roundTrip(portOf(dual), 'mapped', '127.0.0.1')).toString(), 'mapped')
  t.is((await roundTrip(portOf(dual), 'native', '::1')).toString(), 'native')

  const v6only = await serve(t, { address: '[::]:0', ipv6Only: true, handler: echo })
  await t.throwsAsync(roundTrip(portOf(v6only), 'x', '127.0.0.1'), { code: 'ECONNREFUSED' })
  t.is((await roundTrip(portOf(v6only), 'ok', '::1')).toString(), 'ok')
})

test('":port" listens on every interface', async (t) => {
  const server = await serve(t, { address: ':0', handler: echo })
  t.is(server.addresses[0]!.address, '::')
  t.is((await roundTrip(portOf(server), 'any')).toString(), 'any')
})

test('several accept loops per address share one port and all serve', async (t) => {
  const server = await serve(t, { address: '127.0.0.1:0', loops: 4, handler: echo })
  t.is(server.addresses.length, 1)
  const replies = await Promise.all(Array.from({ length: 64 }, (_, i) => roundTrip(portOf(server), `m${i}`)))
  t.deepEqual(
    replies.map((r) => r.toString()),
    Array.from({ length: 64 }, (_, i) => `m${i}`),
  )
  t.is(server.acceptedConnections, 64)
})

test('host names are resolved once at listen', async (t) => {
  const server = await listen({ address: 'localhost:0', handler: echo })
  t.teardown(() => server.halt())
  t.true(['127.0.0.1', '::1'].includes(server.addresses[0]!.address))
})
