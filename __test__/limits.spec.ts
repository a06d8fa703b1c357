// Admission limits through the npm package: maxConnectionsPerIp (IPv4 and IPv6 /64
// grouping), onLimit 'refuse' vs the default 'hold', counted in stats().refusedBy.
import { execFileSync } from 'node:child_process'
import net from 'node:net'
import test from 'ava'
import { errCode, inPrivateNetns, isRoot, portOf, serve, sleep, until, within } from './helpers/index.js'

/** Connects from `localAddress`; resolves with the socket once connected. */
function connectFrom(host: string, port: number, localAddress: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress }, () => resolve(s))
    s.once('error', reject)
  })
}

/** Sends `msg` and resolves with the reply, or with `null` if the server closes instead. */
function exchange(socket: net.Socket, msg: string): Promise<string | null> {
  return within(
    new Promise((resolve) => {
      let got = ''
      socket.on('data', (d) => {
        got += d.toString()
        if (got.length >= msg.length) resolve(got)
      })
      socket.on('close', () => resolve(got === '' ? null : got))
      socket.on('error', () => {})
      socket.write(msg)
    }),
    5000,
    `exchange ${msg}`,
  )
}

const echo = {
  async handler(conn: import('tcpserver-rs').Connection) {
    for await (const chunk of conn) await conn.write(chunk)
  },
}

test('maxConnectionsPerIp refuses the extra connection of one address, not of others', async (t) => {
  const server = await serve(t, { ...echo, address: '127.0.0.1:0', maxConnectionsPerIp: 2 })
  const port = portOf(server)
  const a = await connectFrom('127.0.0.1', port, '127.0.0.1')
  const b = await connectFrom('127.0.0.1', port, '127.0.0.1')
  t.is(await exchange(a, 'a'), 'a')
  t.is(await exchange(b, 'b'), 'b')
  const third = await connectFrom('127.0.0.1', port, '127.0.0.1')
  t.is(await exchange(third, 'c'), null, 'the third connection of 127.0.0.1 is closed')
  const other = await connectFrom('127.0.0.1', port, '127.0.0.2')
  t.is(await exchange(other, 'd'), 'd', '127.0.0.2 has its own share')
  t.is(server.stats().refusedBy.maxConnectionsPerIp, 1)
  t.is(server.stats().refused, 1)
  // A closed connection gives its share back.
  a.destroy()
  await until(() => server.stats().active === 2, 5000, 'share given back')
  const again = await connectFrom('127.0.0.1', port, '127.0.0.1')
  t.is(await exchange(again, 'e'), 'e')
  for (const s of [b, other, again]) s.destroy()
})

test('maxConnectionsPerIp groups IPv6 clients by /64 (ipv6Prefix: 128 counts each address)', async (t) => {
  if (!inPrivateNetns || !isRoot) {
    t.pass('skipped: needs root in the private network namespace of scripts/test-js.sh')
    return
  }
  for (const a of ['fd00:1::1', 'fd00:1::2', 'fd00:2::1']) {
    try {
      execFileSync('ip', ['-6', 'addr', 'add', `${a}/128`, 'dev', 'lo', 'nodad'], { stdio: 'pipe' })
    } catch (e) {
      // Already there (another run in this namespace).
      if (!String((e as { stderr?: unknown }).stderr).includes('File exists')) throw e
    }
  }
  for (const [limit, sameSlashSixtyFourServed] of [
    [1, false],
    [{ max: 1, ipv6Prefix: 128 }, true],
  ] as const) {
    const server = await serve(t, { ...echo, address: '[::]:0', maxConnectionsPerIp: limit })
    const port = portOf(server)
    const first = await connectFrom('fd00:1::1', port, 'fd00:1::1')
    t.is(await exchange(first, '1'), '1')
    const second = await connectFrom('fd00:1::1', port, 'fd00:1::2')
    t.is(await exchange(second, '2'), sameSlashSixtyFourServed ? '2' : null)
    const other = await connectFrom('fd00:1::1', port, 'fd00:2::1')
    t.is(await exchange(other, '3'), '3', 'another /64 has its own share')
    t.is(server.stats().refusedBy.maxConnectionsPerIp, sameSlashSixtyFourServed ? 0 : 1)
    for (const s of [first, second, other]) s.destroy()
    await server.halt()
  }
})

test("onLimit 'refuse' closes new clients at once while maxConnections are open", async (t) => {
  const server = await serve(t, { ...echo, maxConnections: 1, onLimit: 'refuse' })
  const port = portOf(server)
  const first = await connectFrom('127.0.0.1', port, '127.0.0.1')
  t.is(await exchange(first, 'x'), 'x')
  for (let i = 0; i < 3; i++) {
    const extra = await connectFrom('127.0.0.1', port, '127.0.0.1')
    t.is(await exchange(extra, 'y'), null)
  }
  t.deepEqual(server.stats().refusedBy, {
    maxConnections: 3,
    maxConnectionsPerIp: 0,
    maxAcceptConnections: 0,
  })
  first.destroy()
  await until(() => server.stats().active === 0, 5000, 'slot freed')
  const next = await connectFrom('127.0.0.1', port, '127.0.0.1')
  t.is(await exchange(next, 'z'), 'z')
  next.destroy()
})

test("onLimit 'hold' (the default) keeps the next client waiting in the backlog, then serves it", async (t) => {
  const server = await serve(t, { ...echo, maxConnections: 1 })
  const port = portOf(server)
  const first = await connectFrom('127.0.0.1', port, '127.0.0.1')
  t.is(await exchange(first, 'x'), 'x')
  const second = await connectFrom('127.0.0.1', port, '127.0.0.1')
  const reply = exchange(second, 'held')
  await sleep(200)
  t.is(server.stats().accepted, 1, 'not accepted while the first is open')
  first.destroy()
  t.is(await reply, 'held')
  t.is(server.stats().refused, 0)
  second.destroy()
})

test('limit options are validated', async (t) => {
  for (const [options, option, cls, code] of [
    [{ maxConnectionsPerIp: 0 }, 'maxConnectionsPerIp', RangeError, 'ERR_OUT_OF_RANGE'],
    [
      { maxConnectionsPerIp: { max: 1, ipv6Prefix: 129 } },
      'maxConnectionsPerIp.ipv6Prefix',
      RangeError,
      'ERR_OUT_OF_RANGE',
    ],
    [
      { maxConnectionsPerIp: { ipv6Prefix: 64 } },
      'maxConnectionsPerIp.max',
      TypeError,
      'ERR_INVALID_ARG_TYPE',
    ],
    [{ maxConnectionsPerIp: '3' }, 'maxConnectionsPerIp', TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ onLimit: 'drop' }, 'onLimit', TypeError, 'ERR_INVALID_ARG_VALUE'],
    [{ onLimit: 1 }, 'onLimit', TypeError, 'ERR_INVALID_ARG_TYPE'],
  ] as const) {
    const err = await t.throwsAsync(serve(t, options as object))
    t.is(errCode(err), code, JSON.stringify(options))
    t.is((err as { option?: string }).option, option)
    t.true(err instanceof cls, `${JSON.stringify(options)}: ${err?.constructor.name}`)
  }
})
