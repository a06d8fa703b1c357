// The PROXY protocol (v1 and v2) against a real HAProxy in front (`send-proxy`,
// `send-proxy-v2`): the handler sees the real client's address, the balancer is `proxiedBy`,
// TLS passes through after the header, maxConnectionsPerIp counts real clients. Hand-written
// headers cover what HAProxy never sends: untrusted sources, no header, garbage, a stall.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import type { Connection, ListenOptions, Server } from 'tcpserver'
import { collect, connect, portOf, serve, sleep, until, within } from './helpers/index.js'

const haveHaproxy = spawnSync('haproxy', ['-v']).status === 0
const tlsDir = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))

/** Replies with who the server thinks the client is, then closes. */
async function whoAmI(conn: Connection): Promise<void> {
  await conn.read()
  const r = conn.remoteAddress
  const p = conn.proxiedBy
  await conn.write(`${r?.address} ${r?.port} via ${p?.address ?? 'none'}\n`)
}

/** A free TCP port on `host` (closed again; HAProxy binds it next). */
async function freePort(host: string): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, host, resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

interface Frontend {
  bind: string
  sendProxy: 'send-proxy' | 'send-proxy-v2'
}

/** Starts HAProxy (foreground, TCP mode) with one frontend per entry, each to `backendPort`. */
async function haproxy(t: ExecutionContext, backendPort: number, frontends: Frontend[]): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tcpserver-haproxy-'))
  const ports: number[] = []
  let cfg =
    'global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n'
  for (const [i, f] of frontends.entries()) {
    const port = await freePort(f.bind)
    ports.push(port)
    const bind = f.bind.includes(':') ? `[${f.bind}]` : f.bind
    cfg += `frontend f${i}\n  bind ${bind}:${port}\n  default_backend b${i}\n`
    cfg += `backend b${i}\n  server s 127.0.0.1:${backendPort} ${f.sendProxy}\n`
  }
  writeFileSync(join(dir, 'haproxy.cfg'), cfg)
  const child: ChildProcess = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (d) => {
    stderr += d
  })
  t.teardown(() => {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  for (const [i, f] of frontends.entries()) {
    const deadline = Date.now() + 5000
    for (;;) {
      if (child.exitCode !== null) throw new Error(`haproxy exited: ${stderr}`)
      const up = await connect(ports[i] as number, f.bind).then(
        (s) => (s.destroy(), true),
        () => false,
      )
      if (up) break
      if (Date.now() > deadline)
        throw new Error(`haproxy is not listening on ${f.bind}:${ports[i]}: ${stderr}`)
      await sleep(20)
    }
  }
  return ports
}

/** One request through `host:port` from `localAddress`: the server's answer and the client's port. */
async function ask(
  host: string,
  port: number,
  localAddress: string,
): Promise<{ reply: string; localPort: number }> {
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ host, port, localAddress }, () => resolve(c))
    c.once('error', reject)
  })
  const localPort = s.localPort as number
  const reply = collect(s)
  s.write('hi')
  return { reply: (await within(reply, 5000, 'reply')).toString(), localPort }
}

async function proxied(t: ExecutionContext, extra: Partial<ListenOptions> = {}): Promise<Server> {
  return serve(t, { handler: whoAmI, proxyProtocol: { trusted: ['127.0.0.1/32', '::1'] }, ...extra })
}

test('behind HAProxy send-proxy (v1) and send-proxy-v2, the handler sees the real client, IPv4 and IPv6', async (t) => {
  if (!haveHaproxy) return t.pass('skipped: haproxy is not installed (scripts/install-tools.sh installs it)')
  const server = await proxied(t)
  const [v1, v2, v1six, v2six] = await haproxy(t, portOf(server), [
    { bind: '127.0.0.1', sendProxy: 'send-proxy' },
    { bind: '127.0.0.1', sendProxy: 'send-proxy-v2' },
    { bind: '::1', sendProxy: 'send-proxy' },
    { bind: '::1', sendProxy: 'send-proxy-v2' },
  ])
  for (const [port, host, from] of [
    [v1, '127.0.0.1', '127.0.0.2'],
    [v2, '127.0.0.1', '127.0.0.3'],
    [v1six, '::1', '::1'],
    [v2six, '::1', '::1'],
  ] as const) {
    const { reply, localPort } = await ask(host, port as number, from)
    // The balancer connects from 127.0.0.1; the header names the client.
    t.is(reply, `${from} ${localPort} via 127.0.0.1\n`, `${host}:${port}`)
  }
  // The readiness probes went through HAProxy too: they add headers (or, cut short, `closed`).
  const stats = server.stats().proxyProtocol
  t.true(stats.headers >= 4)
  t.deepEqual(
    Object.keys(stats.failures).filter((r) => r !== 'closed'),
    [],
  )
})

test('TLS passes through HAProxy after the v2 header; maxConnectionsPerIp counts real clients', async (t) => {
  if (!haveHaproxy) return t.pass('skipped: haproxy is not installed')
  const held: Connection[] = []
  const server = await proxied(t, {
    tls: { cert: join(tlsDir, 'server.crt'), key: join(tlsDir, 'server.key') },
    maxConnectionsPerIp: 1,
    async handler(conn) {
      held.push(conn)
      await whoAmI(conn)
      await conn.read()
    },
  })
  const [port] = (await haproxy(t, portOf(server), [{ bind: '127.0.0.1', sendProxy: 'send-proxy-v2' }])) as [
    number,
  ]
  // The TCP socket first: `localAddress` picks the client's address.
  const open = async (localAddress: string): Promise<tls.TLSSocket> => {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(c))
      c.once('error', reject)
    })
    return new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect(
        { socket, ca: readFileSync(join(tlsDir, 'ca.crt')), servername: 'localhost' },
        () => resolve(s),
      )
      s.once('error', reject)
    })
  }
  const line = (s: tls.TLSSocket) =>
    within(
      new Promise<string>((resolve) => {
        let got = ''
        s.on('data', (d) => {
          got += d
          if (got.endsWith('\n')) resolve(got)
        })
        s.on('close', () => resolve(got))
        s.on('error', () => {})
        s.write('hi')
      }),
      5000,
      'line',
    )
  const a = await open('127.0.0.2')
  t.is(await line(a), `127.0.0.2 ${a.localPort} via 127.0.0.1\n`)
  t.is(a.getProtocol(), 'TLSv1.3')
  // All connections come from HAProxy's 127.0.0.1; only the real clients' addresses count.
  const b = await open('127.0.0.3')
  t.is(await line(b), `127.0.0.3 ${b.localPort} via 127.0.0.1\n`)
  const c = await open('127.0.0.2').catch((e: unknown) => e)
  if (c instanceof tls.TLSSocket) t.is(await line(c), '', 'second connection of 127.0.0.2 refused')
  else t.truthy(c, 'second connection of 127.0.0.2 refused during the handshake')
  await until(() => server.stats().refusedBy.maxConnectionsPerIp === 1, 5000, 'per-IP refusal counted')
  for (const s of [a, b]) s.destroy()
})

/** A raw client that sends `bytes` and resolves with what came back before the close. */
async function raw(port: number, bytes: Buffer | string | null, host = '127.0.0.1'): Promise<string> {
  const s = await connect(port, host)
  s.on('error', () => {})
  const got = collect(s).catch(() => Buffer.alloc(0))
  if (bytes !== null) s.write(bytes)
  return (await within(got, 5000, 'server closes')).toString()
}

test('hand-written headers: v1 and v2 accepted; untrusted, missing, garbage and stalled headers refused by reason', async (t) => {
  const server = await proxied(t, { proxyProtocol: { trusted: ['127.0.0.1'], timeout: 200 } })
  const port = portOf(server)
  t.is(
    await raw(port, 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhi'),
    '192.0.2.1 56324 via 127.0.0.1\n',
  )
  // Header and data in separate segments, the header itself split.
  const s = await connect(port)
  const reply = collect(s)
  for (const part of ['PROX', 'Y TCP6 2001:db8::1 2001:db8::2 7 ', '8\r\n', 'hi']) {
    s.write(part)
    await sleep(20)
  }
  t.is((await within(reply, 5000, 'split header')).toString(), '2001:db8::1 7 via 127.0.0.1\n')
  const v2 = Buffer.concat([
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
    Buffer.from([0x21, 0x11, 0, 12, 203, 0, 113, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80]),
    Buffer.from('hi'),
  ])
  t.is(await raw(port, v2), '203.0.113.9 8080 via 127.0.0.1\n')
  // LOCAL (a health check): the socket's own addresses stay.
  const local = Buffer.concat([
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
    Buffer.from([0x20, 0, 0, 0]),
    Buffer.from('hi'),
  ])
  t.regex(await raw(port, local), /^127\.0\.0\.1 \d+ via 127\.0\.0\.1\n$/)

  t.is(await raw(port, 'GET / HTTP/1.1\r\n\r\n'), '', 'no header')
  t.is(await raw(port, 'PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nhi'), '', 'bad port')
  t.is(await raw(port, `PROXY ${'x'.repeat(200)}`), '', 'too long')
  t.is(await raw(port, null), '', 'nothing sent: timeout')
  t.deepEqual(server.stats().proxyProtocol, {
    headers: 4,
    failures: { not_proxy: 1, malformed: 2, timeout: 1 },
  })

  // A source outside `trusted` is refused before anything is read.
  const strict = await proxied(t, { proxyProtocol: { trusted: ['10.0.0.0/8'] } })
  t.is(await raw(portOf(strict), 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhi'), '')
  t.deepEqual(strict.stats().proxyProtocol.failures, { untrusted: 1 })
})

test('proxyProtocol options are validated', async (t) => {
  for (const [pp, option] of [
    [{ trusted: [] }, 'proxyProtocol.trusted'],
    [{ trusted: ['10.0.0.1/8'] }, 'proxyProtocol.trusted'],
    [{ trusted: ['not-an-ip'] }, 'proxyProtocol.trusted'],
    [{ trusted: 'x' }, 'proxyProtocol.trusted'],
    [{ trusted: ['::1'], timeout: 0 }, 'proxyProtocol.timeout'],
    [true, 'proxyProtocol'],
  ] as const) {
    const err = await t.throwsAsync(serve(t, { proxyProtocol: pp as never }))
    t.is((err as { code?: string }).code, 'ERR_INVALID_ARG_VALUE')
    t.is((err as { option?: string }).option, option, JSON.stringify(pp))
  }
})
