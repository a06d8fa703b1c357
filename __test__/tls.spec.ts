// TLS termination end to end with real node:tls clients: echo with hashes (IPv4, ::1, 1,000
// concurrent clients), what `conn.tls` reports, ALPN, SNI (exact, wildcard, case), version
// floors, refusals the handler never sees (old protocols, garbage, truncated handshakes), the
// handshake cap, hot reload, session resumption, option errors.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import {
  type Connection,
  type ListenOptions,
  listen,
  type Server,
  type TlsInfo,
  type TlsOptions,
} from 'tcpserver-rs'
import { portOf, serve, sha256, sleep, until, within } from './helpers/index.ts'

const dir = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))
const file = (name: string): string => `${dir}${name}`
const pem = (name: string): Buffer => readFileSync(file(name))
const CA = pem('ca.crt')

const SERVER: TlsOptions = { cert: file('server.crt'), key: file('server.key') }
const OTHER = { cert: file('other.crt'), key: file('other.key') }

interface TlsFailure {
  code: string
  remote: { address: string; port: number; family: string }
}

/** A TLS server on 127.0.0.1:0 recording what its handler and onTlsError saw. */
async function tlsServer(
  t: ExecutionContext,
  tlsOptions: Partial<TlsOptions>,
  handler: (conn: Connection) => Promise<void> = echo,
  extra: Partial<ListenOptions> = {},
) {
  const seen: TlsInfo[] = []
  const failures: TlsFailure[] = []
  const server = await serve(t, {
    ...extra,
    tls: { ...SERVER, ...tlsOptions },
    onTlsError: (error, remote) => failures.push({ code: (error as Error & { code: string }).code, remote }),
    handler: async (conn) => {
      const info = conn.tls
      if (info) seen.push(info)
      await handler(conn)
    },
  })
  return { server, port: portOf(server), seen, failures }
}

async function echo(conn: Connection): Promise<void> {
  for await (const chunk of conn) await conn.write(chunk)
}

const failureCount = (server: Server): number =>
  Object.values(server.stats().tls.failures).reduce((a, b) => a + b, 0)

/** A node:tls client once its handshake is done; rejects with the client's error otherwise. */
function tlsConnect(
  port: number,
  options: tls.ConnectionOptions = {},
  ms = 10_000,
  before?: (socket: tls.TLSSocket) => void,
): Promise<tls.TLSSocket> {
  return within(
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: CA, servername: 'localhost', ...options })
      before?.(socket)
      socket.once('secureConnect', () => {
        socket.off('error', reject)
        resolve(socket)
      })
      socket.once('error', reject)
    }),
    ms,
    'TLS handshake',
  )
}

/** Everything received until 'end'/'close'. */
function received(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.once('end', () => resolve(Buffer.concat(chunks)))
    socket.once('close', () => resolve(Buffer.concat(chunks)))
    socket.once('error', reject)
  })
}

/** Sends `data` over TLS, ends, and returns what came back before the server closed. */
async function tlsRoundTrip(port: number, data: Buffer, options: tls.ConnectionOptions = {}) {
  const socket = await tlsConnect(port, options)
  const back = received(socket)
  socket.end(data)
  return { back: await back, socket }
}

/** Reads from `socket` until `n` bytes arrived. */
function readBytes(socket: tls.TLSSocket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let got = 0
    const onData = (c: Buffer) => {
      chunks.push(c)
      got += c.length
      if (got >= n) {
        socket.off('data', onData)
        socket.off('error', reject)
        resolve(Buffer.concat(chunks))
      }
    }
    socket.on('data', onData)
    socket.once('error', reject)
  })
}

/** Subject CN and SANs of the certificate the server presented. */
async function servedCertificate(port: number, servername: string) {
  const socket = await tlsConnect(port, { servername, rejectUnauthorized: false })
  const cert = socket.getPeerCertificate()
  const closed = received(socket)
  socket.end()
  await within(closed, 5000, 'close')
  return { cn: cert.subject.CN, san: cert.subjectaltname ?? '' }
}

/** A client error, and the server-side refusal: onTlsError saw this client's port. */
async function refused(
  t: ExecutionContext,
  s: Awaited<ReturnType<typeof tlsServer>>,
  options: tls.ConnectionOptions,
) {
  const before = failureCount(s.server)
  const err = await t.throwsAsync(tlsConnect(s.port, options))
  // The server's side of the refusal: counted, reported with this client's address, no handler.
  await until(() => failureCount(s.server) === before + 1, 5000, 'the failure to be counted')
  await until(() => s.failures.length > 0, 5000, 'onTlsError')
  const failure = s.failures.at(-1)
  t.is(failure?.code, 'ERR_TCPSERVER_TLS_HANDSHAKE')
  t.is(failure?.remote.address, '127.0.0.1')
  t.is(failure?.remote.family, 'IPv4')
  t.is(s.seen.length, 0, 'the handler never ran')
  t.is(s.server.stats().tls.handshakes, 0)
  return { err: err as Error & { code?: string }, failure }
}

/** The first bytes a real node:tls client sends (its ClientHello), captured on a plain socket. */
async function captureClientHello(): Promise<Buffer> {
  const sink = net.createServer()
  const first = new Promise<Buffer>((resolve) => {
    sink.once('connection', (s) => {
      s.once('data', (c: Buffer) => {
        resolve(c)
        s.destroy()
      })
    })
  })
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r))
  const { port } = sink.address() as net.AddressInfo
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: CA })
  client.on('error', () => {})
  try {
    return await within(first, 5000, 'ClientHello capture')
  } finally {
    client.destroy()
    sink.close()
  }
}

/**
 * A raw TCP client that sends `bytes` and then stalls. `closed` resolves the ms from before the
 * connect (so never less than the server's time since accept) to the close.
 */
async function stall(port: number, bytes: Buffer, host = '127.0.0.1') {
  const start = Date.now()
  const socket = net.connect({ host, port })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  const localPort = socket.localPort ?? 0
  socket.write(bytes)
  const data: Buffer[] = []
  socket.on('data', (c: Buffer) => data.push(c))
  socket.on('error', () => {})
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - start)))
  return { socket, localPort, closed, data }
}

// ---------------------------------------------------------------------------------------------

test('echo over TLS 1.3 on IPv4: 8 MiB back with the same SHA-256, conn.tls as negotiated', async (t) => {
  const s = await tlsServer(t, {})
  const data = randomBytes(8 * 1024 * 1024)
  const socket = await tlsConnect(s.port)
  t.is(socket.getProtocol(), 'TLSv1.3')
  const back = received(socket)
  socket.end(data)
  const got = await within(back, 30_000, '8 MiB TLS echo')
  t.is(got.length, data.length)
  t.is(sha256(got), sha256(data))
  t.like(s.seen[0], { protocol: 'TLSv1.3', alpnProtocol: null, serverName: 'localhost', resumed: false })
  t.is(s.server.stats().tls.handshakes, 1)
  t.deepEqual(s.server.stats().tls.failures, {})
})

test('echo over TLS on ::1: 8 MiB with the same SHA-256', async (t) => {
  const s = await tlsServer(t, {}, echo, { address: '[::1]:0' })
  t.is(s.server.addresses[0]?.address, '::1')
  const data = randomBytes(8 * 1024 * 1024)
  const { back } = await within(
    tlsRoundTrip(s.port, data, { host: '::1', servername: 'localhost' }),
    30_000,
    '8 MiB TLS echo over ::1',
  )
  t.is(sha256(back), sha256(data))
  t.is(s.seen[0]?.protocol, 'TLSv1.3')
  // A refused IPv6 client is reported with its IPv6 address.
  const junk = await stall(s.port, Buffer.from('\0\0\0\0\0\0\0\0'), '::1')
  await within(junk.closed, 5000, 'the server to close')
  await until(() => s.failures.length === 1, 5000, 'onTlsError')
  t.deepEqual(s.failures[0]?.remote, { address: '::1', port: junk.localPort, family: 'IPv6' })
})

test('a plain TCP server: conn.tls is null and stats().tls stays empty', async (t) => {
  let info: TlsInfo | null | undefined
  const server = await serve(t, {
    handler: async (conn) => {
      info = conn.tls
      await conn.write('plain')
    },
  })
  const socket = net.connect({ host: '127.0.0.1', port: portOf(server) })
  t.is((await within(received(socket), 5000, 'plain reply')).toString(), 'plain')
  t.is(info, null)
  t.deepEqual(server.stats().tls, { handshakes: 0, failures: {} })
})

test('conn.tls matches what the client negotiated: TLS 1.3 and TLS 1.2, cipher, no SNI for an IP', async (t) => {
  const s = await tlsServer(t, {})
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    const socket = await tlsConnect(s.port, { maxVersion })
    const { standardName } = socket.getCipher()
    const protocol = socket.getProtocol()
    const back = received(socket)
    socket.end('x')
    t.is((await within(back, 5000, 'echo')).toString(), 'x')
    const info = s.seen.at(-1)
    t.is(info?.protocol, maxVersion)
    t.is(info?.protocol, protocol ?? undefined)
    t.is(info?.cipher, standardName, 'the IANA name, as Node reports it')
    t.is(info?.resumed, false)
  }
  t.regex(s.seen[1]?.cipher ?? '', /^TLS_ECDHE_ECDSA_WITH_/)
  // Node sends no SNI for an IP address: serverName is null, the default certificate is served
  // (its IP SAN 127.0.0.1 verifies).
  const socket = await tlsConnect(s.port, { servername: undefined })
  t.true(socket.authorized)
  const back = received(socket)
  socket.end()
  await within(back, 5000, 'close')
  t.is(s.seen.at(-1)?.serverName, null)
  t.is(s.server.stats().tls.handshakes, 3)
})

test('ALPN: the server picks from its list; no overlap fails the handshake on both sides', async (t) => {
  const s = await tlsServer(t, { alpn: ['http/1.1'] })
  const socket = await tlsConnect(s.port, { ALPNProtocols: ['h2', 'http/1.1'] })
  t.is(socket.alpnProtocol, 'http/1.1')
  const back = received(socket)
  socket.end()
  await within(back, 5000, 'close')
  t.is(s.seen[0]?.alpnProtocol, 'http/1.1')

  // A client without ALPN is still served; alpnProtocol is null.
  const plain = await tlsConnect(s.port)
  t.is(plain.alpnProtocol, false)
  const closed = received(plain)
  plain.end()
  await within(closed, 5000, 'close')
  t.is(s.seen[1]?.alpnProtocol, null)

  const before = failureCount(s.server)
  const err = await t.throwsAsync(tlsConnect(s.port, { ALPNProtocols: ['h2'] }))
  t.is((err as { code?: string }).code, 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL')
  await until(() => s.failures.length === 1, 5000, 'onTlsError')
  t.is(s.failures[0]?.code, 'ERR_TCPSERVER_TLS_HANDSHAKE')
  t.is(s.failures[0]?.remote.address, '127.0.0.1')
  t.is(failureCount(s.server), before + 1)
  t.is(s.seen.length, 2, 'the refused client never reached the handler')
})

test('ALPN: a server without alpn ignores the client offer', async (t) => {
  const s = await tlsServer(t, {})
  const socket = await tlsConnect(s.port, { ALPNProtocols: ['h2', 'http/1.1'] })
  t.is(socket.alpnProtocol, false)
  const back = received(socket)
  socket.end()
  await within(back, 5000, 'close')
  t.is(s.seen[0]?.alpnProtocol, null)
})

test('SNI: exact name, wildcard one label deep, case-insensitive, default otherwise', async (t) => {
  const s = await tlsServer(t, { sni: { 'other.test': OTHER, '*.wild.test': OTHER } })
  const other = await servedCertificate(s.port, 'other.test')
  t.is(other.cn, 'other.test')
  t.regex(other.san, /DNS:\*\.wild\.test/)
  t.is((await servedCertificate(s.port, 'localhost')).cn, 'localhost')
  t.is((await servedCertificate(s.port, 'a.wild.test')).cn, 'other.test')
  t.is((await servedCertificate(s.port, 'a.b.wild.test')).cn, 'localhost', 'two labels: default')
  t.is((await servedCertificate(s.port, 'wild.test')).cn, 'localhost', 'the bare parent: default')
  t.is((await servedCertificate(s.port, 'OTHER.Test')).cn, 'other.test')
  t.is((await servedCertificate(s.port, 'A.WILD.TEST')).cn, 'other.test')
  t.is((await servedCertificate(s.port, 'unknown.example')).cn, 'localhost')
  t.deepEqual(
    s.seen.map((i) => i.serverName?.toLowerCase()),
    [
      'other.test',
      'localhost',
      'a.wild.test',
      'a.b.wild.test',
      'wild.test',
      'other.test',
      'a.wild.test',
      'unknown.example',
    ],
  )
  // A verifying client accepts the SNI certificate for its name.
  const socket = await tlsConnect(s.port, { servername: 'x.wild.test' })
  t.true(socket.authorized)
  const back = received(socket)
  socket.end()
  await within(back, 5000, 'close')
  t.is(failureCount(s.server), 0)
})

test('SNI patterns in the options are case-insensitive too', async (t) => {
  const s = await tlsServer(t, { sni: { 'Other.TEST': OTHER, '*.Wild.Test': OTHER } })
  t.is((await servedCertificate(s.port, 'other.test')).cn, 'other.test')
  t.is((await servedCertificate(s.port, 'b.wild.test')).cn, 'other.test')
})

test("minVersion 'TLSv1.3' refuses a TLS 1.2-only client; the default accepts it", async (t) => {
  const strict = await tlsServer(t, { minVersion: 'TLSv1.3' })
  const { err } = await refused(t, strict, { maxVersion: 'TLSv1.2' })
  t.is(err.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION')
  const ok = await tlsConnect(strict.port, {})
  t.is(ok.getProtocol(), 'TLSv1.3')
  ok.destroy()

  const lenient = await tlsServer(t, {})
  const socket = await tlsConnect(lenient.port, { maxVersion: 'TLSv1.2' })
  t.is(socket.getProtocol(), 'TLSv1.2')
  const back = received(socket)
  socket.end('v')
  t.is((await within(back, 5000, 'echo')).toString(), 'v')
})

test('a TLS 1.0/1.1 client is refused by the server (not by the client library)', async (t) => {
  const s = await tlsServer(t, {})
  // SECLEVEL=0 lets OpenSSL really send a TLS 1.0/1.1 ClientHello; that the server saw and
  // refused it is shown by onTlsError naming this client's port and the failure counter.
  const { err, failure } = await refused(t, s, {
    minVersion: 'TLSv1',
    maxVersion: 'TLSv1.1',
    ciphers: 'DEFAULT@SECLEVEL=0',
  })
  // The client got an alert from the server (whatever its description), not a local refusal.
  // Node 24's OpenSSL spells it ERR_SSL_SSL/TLS_ALERT_…
  t.regex(err.code ?? '', /^ERR_SSL_(SSLV3|TLSV1|SSL\/TLS)_ALERT_/)
  t.true((failure?.remote.port ?? 0) > 0)
})

// Timing-sensitive tests run serially (ava runs them before the concurrent ones), away from
// the 1,000-client test that keeps this process's event loop busy.
test.serial(
  'garbage (plain HTTP on the TLS port) closes the connection without reaching the handler',
  async (t) => {
    const s = await tlsServer(t, {})
    const { localPort, closed, data } = await stall(
      s.port,
      Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'),
    )
    const ms = await within(closed, 5000, 'the server to close')
    t.true(ms < 5000)
    const reply = Buffer.concat(data)
    // At most a TLS alert record (content type 21), never anything else.
    t.true(reply.length === 0 || reply[0] === 21, `reply ${reply.toString('hex')}`)
    await until(() => s.failures.length === 1, 5000, 'onTlsError')
    t.is(s.failures[0]?.code, 'ERR_TCPSERVER_TLS_HANDSHAKE')
    t.deepEqual(s.failures[0]?.remote, { address: '127.0.0.1', port: localPort, family: 'IPv4' })
    t.is(failureCount(s.server), 1)
    t.is(s.seen.length, 0)
    t.is(s.server.stats().tls.handshakes, 0)
    await until(() => s.server.activeConnections === 0, 5000, 'active back to 0')
  },
)

test.serial('a truncated handshake is closed at handshakeTimeout and counted as a timeout', async (t) => {
  const s = await tlsServer(t, { handshakeTimeout: 300 })
  const hello = await captureClientHello()
  t.is(hello[0], 22, 'a handshake record')
  t.true(hello.length > 10)
  const { localPort, closed } = await stall(s.port, hello.subarray(0, 10))
  const ms = await within(closed, 5000, 'the handshake timeout')
  t.true(ms >= 290, `closed after ${ms} ms`)
  t.true(ms < 3000, `closed after ${ms} ms`)
  await until(() => s.failures.length === 1, 5000, 'onTlsError')
  t.is(s.failures[0]?.code, 'ERR_TCPSERVER_TLS_HANDSHAKE')
  t.is(s.failures[0]?.remote.port, localPort)
  // `failures` is keyed by stable reasons.
  t.deepEqual(s.server.stats().tls.failures, { timeout: 1 })
  t.is(s.seen.length, 0)

  // A bare 5-byte record header stalls the same way.
  const header = await stall(s.port, Buffer.from([22, 3, 1, 0, 200]))
  const ms2 = await within(header.closed, 5000, 'the handshake timeout')
  t.true(ms2 >= 290 && ms2 < 3000, `closed after ${ms2} ms`)
  await until(() => failureCount(s.server) === 2, 5000, 'second failure')
})

test.serial(
  'handshakeTimeout bounds only the handshake: an idle established connection stays open',
  async (t) => {
    const s = await tlsServer(t, { handshakeTimeout: 400 })
    const socket = await tlsConnect(s.port)
    await sleep(800)
    socket.write('still here')
    t.is((await within(readBytes(socket, 10), 5000, 'echo')).toString(), 'still here')
    const back = received(socket)
    socket.end()
    await within(back, 5000, 'close')
    t.is(failureCount(s.server), 0)
  },
)

test.serial(
  'maxHandshakes 2: stalled clients hold the slots, a good client completes once they time out',
  async (t) => {
    const s = await tlsServer(t, { maxHandshakes: 2, handshakeTimeout: 600 })
    const hello = await captureClientHello()
    const start = Date.now()
    const stalled = await Promise.all(Array.from({ length: 5 }, () => stall(s.port, hello.subarray(0, 10))))
    // The good client comes later, so that it still has 300 ms of its own deadline (which also
    // runs while it waits for a slot) when the stalled ones time out.
    await sleep(300)
    const good = await tlsConnect(s.port)
    const waited = Date.now() - start
    // It had to wait for the stalled handshakes' deadline (600 ms after their accept) for a slot.
    t.true(waited >= 590, `good client done after ${waited} ms`)
    t.true(waited < 4000, `good client done after ${waited} ms`)
    good.write('ok')
    t.is((await within(readBytes(good, 2), 5000, 'echo')).toString(), 'ok')
    const back = received(good)
    good.end()
    await within(back, 5000, 'close')
    const times = await within(Promise.all(stalled.map((c) => c.closed)), 5000, 'stalled clients closed')
    for (const ms of times) t.true(ms < 3000, `stalled client closed after ${ms} ms`)
    await until(() => failureCount(s.server) === 5, 5000, 'five timeouts')
    t.is(s.failures.length, 5)
    t.is(s.server.stats().tls.handshakes, 1)
    t.is(s.seen.length, 1)
  },
)

test('hot reload: a new client sees the new certificate while an open connection keeps echoing', async (t) => {
  const s = await tlsServer(t, {})
  const old = await tlsConnect(s.port)
  t.is(old.getPeerCertificate().subject.CN, 'localhost')
  old.write('before')
  t.is((await within(readBytes(old, 6), 5000, 'echo')).toString(), 'before')

  s.server.setTlsConfig({ cert: pem('other.crt'), key: pem('other.key'), minVersion: 'TLSv1.3' })

  const fresh = await tlsConnect(s.port, { servername: 'other.test' })
  t.is(fresh.getPeerCertificate().subject.CN, 'other.test')
  t.true(fresh.authorized)
  fresh.write('new')
  t.is((await within(readBytes(fresh, 3), 5000, 'echo')).toString(), 'new')

  // The old connection keeps its session.
  const big = randomBytes(256 * 1024)
  const back = received(old)
  old.end(big)
  t.is(sha256(await within(back, 10_000, 'old echo')), sha256(big))

  // The reloaded versions apply to new handshakes: TLS 1.2 is now refused.
  await t.throwsAsync(tlsConnect(s.port, { servername: 'other.test', maxVersion: 'TLSv1.2' }))
  await until(() => failureCount(s.server) === 1, 5000, 'the failure to be counted')
  const closed = received(fresh)
  fresh.end()
  await within(closed, 5000, 'close')
  t.is(s.server.stats().tls.handshakes, 2)
})

test('setTlsConfig with a bad certificate throws and the old configuration keeps working', async (t) => {
  const s = await tlsServer(t, {})
  const bad = '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n'
  t.throws(() => s.server.setTlsConfig({ cert: bad, key: file('server.key') }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  t.throws(() => s.server.setTlsConfig({ cert: file('server.crt'), key: file('other.key') }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  t.throws(() => s.server.setTlsConfig({ cert: file('missing.crt'), key: file('server.key') }), {
    code: 'ENOENT',
  })
  t.throws(() => s.server.setTlsConfig({ cert: 1 as unknown as string, key: file('server.key') }), {
    code: 'ERR_INVALID_ARG_TYPE',
    instanceOf: TypeError,
  })
  const socket = await tlsConnect(s.port)
  t.is(socket.getPeerCertificate().subject.CN, 'localhost')
  const back = received(socket)
  socket.end('y')
  t.is((await within(back, 5000, 'echo')).toString(), 'y')

  const plain = await serve(t, {})
  t.throws(() => plain.setTlsConfig(SERVER), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('listen() rejects bad TLS options with codes (and the option at fault)', async (t) => {
  const at = (tlsOptions: unknown) => listen({ address: '127.0.0.1:0', tls: tlsOptions as TlsOptions })
  const badCert = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'
  const badKey = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'
  const e1 = await t.throwsAsync(at({ cert: badCert, key: file('server.key') }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  t.is((e1 as { option?: string }).option, 'tls.cert')
  const e2 = await t.throwsAsync(at({ cert: file('server.crt'), key: badKey }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  t.is((e2 as { option?: string }).option, 'tls.key')
  // A certificate file given as the key (no key in it).
  await t.throwsAsync(at({ cert: file('server.crt'), key: file('server.crt') }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  // A key that does not belong to the certificate (EC and RSA).
  const mismatch = await t.throwsAsync(at({ cert: file('server.crt'), key: file('other.key') }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  t.is((mismatch as { option?: string }).option, 'tls.key')
  await t.throwsAsync(at({ cert: file('rsa.crt'), key: file('server.key') }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  await t.throwsAsync(
    at({ ...SERVER, sni: { 'x.test': { cert: file('other.crt'), key: file('server.key') } } }),
    {
      code: 'ERR_INVALID_ARG_VALUE',
    },
  )
  const e3 = await t.throwsAsync(at({ ...SERVER, sni: { 'a.*.test': OTHER } }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  t.is((e3 as { option?: string }).option, 'tls.sni')
  await t.throwsAsync(at({ cert: file('missing.crt'), key: file('server.key') }), { code: 'ENOENT' })
  await t.throwsAsync(at({ cert: file('server.crt'), key: file('missing.key') }), { code: 'ENOENT' })
  const types: Array<[unknown, string]> = [
    ['cert.pem', 'tls'],
    [{ cert: 42, key: file('server.key') }, 'tls.cert'],
    [{ cert: file('server.crt') }, 'tls.key'],
    [{ ...SERVER, alpn: 'h2' }, 'tls.alpn'],
    [{ ...SERVER, alpn: [1] }, 'tls.alpn'],
    [{ ...SERVER, sni: [] }, 'tls.sni'],
    [{ ...SERVER, minVersion: 1.3 }, 'tls.minVersion'],
    [{ ...SERVER, handshakeTimeout: '1s' }, 'tls.handshakeTimeout'],
  ]
  for (const [value, option] of types) {
    const err = await t.throwsAsync(at(value), { code: 'ERR_INVALID_ARG_TYPE', instanceOf: TypeError })
    t.is((err as { option?: string }).option, option, JSON.stringify(value))
  }
  await t.throwsAsync(at({ ...SERVER, minVersion: 'TLSv1.1' }), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(at({ ...SERVER, alpn: [''] }), { code: 'ERR_INVALID_ARG_VALUE' })
  await t.throwsAsync(at({ ...SERVER, handshakeTimeout: 0 }), {
    code: 'ERR_OUT_OF_RANGE',
    instanceOf: RangeError,
  })
  await t.throwsAsync(at({ ...SERVER, maxHandshakes: 0 }), {
    code: 'ERR_OUT_OF_RANGE',
    instanceOf: RangeError,
  })
  await t.throwsAsync(listen({ address: '127.0.0.1:0', tls: SERVER, onTlsError: 1 as never }), {
    code: 'ERR_INVALID_ARG_TYPE',
  })
})

test('PEM as text, as bytes (also a view into a larger buffer) and as a path all work', async (t) => {
  const cert = pem('server.crt')
  const key = pem('server.key')
  const padded = Buffer.concat([Buffer.from('xxxx'), key, Buffer.from('yyyy')])
  const view = new Uint8Array(padded.buffer, padded.byteOffset + 4, key.length)
  for (const options of [
    { cert: cert.toString(), key: key.toString() },
    { cert: new Uint8Array(cert), key: view },
    { cert: file('server.crt'), key: file('server.key') },
  ]) {
    const s = await tlsServer(t, options)
    const { back } = await tlsRoundTrip(s.port, Buffer.from('pem'))
    t.is(back.toString(), 'pem')
  }
})

test('session resumption: a client reusing its session gets conn.tls.resumed (TLS 1.3 and 1.2)', async (t) => {
  const s = await tlsServer(t, {})
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    let gotSession: (session: Buffer) => void = () => {}
    const sessionPromise = new Promise<Buffer>((resolve) => {
      gotSession = resolve
    })
    // Listening from the start: the ticket may come with the handshake's last flight.
    const first = await tlsConnect(s.port, { maxVersion }, undefined, (socket) =>
      socket.once('session', gotSession),
    )
    first.resume()
    const session = await within(sessionPromise, 5000, 'a session ticket')
    const closed = received(first)
    first.end()
    await within(closed, 5000, 'close')

    const second = await tlsConnect(s.port, { maxVersion, session })
    t.true(second.isSessionReused(), `${maxVersion}: the client resumed`)
    const back = received(second)
    second.end('r')
    t.is((await within(back, 5000, 'echo')).toString(), 'r')
    const [a, b] = s.seen.slice(-2)
    t.is(a?.resumed, false)
    t.is(b?.resumed, true, `${maxVersion}: conn.tls.resumed`)
    t.is(b?.protocol, maxVersion)
  }
  t.is(s.server.stats().tls.handshakes, 4)
})

test('an RSA certificate works (TLS 1.3 and an ECDHE-RSA suite on TLS 1.2)', async (t) => {
  const s = await tlsServer(t, { cert: file('rsa.crt'), key: file('rsa.key') })
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    const socket = await tlsConnect(s.port, { maxVersion })
    t.true(socket.authorized)
    t.is(socket.getPeerCertificate().subject.CN, 'localhost')
    const back = received(socket)
    socket.end('rsa')
    t.is((await within(back, 5000, 'echo')).toString(), 'rsa')
  }
  t.regex(s.seen[1]?.cipher ?? '', /^TLS_ECDHE_RSA_WITH_/)
})

// 1,000 concurrent TLS clients each sending 16 KiB. TCPSERVER_TLS_CLIENTS overrides the count.
// Serial: its 1,000 client-side handshakes would otherwise starve the other tests' clients,
// which share this process's event loop.
const CLIENTS = Number(process.env.TCPSERVER_TLS_CLIENTS ?? 1000)
const PER_CLIENT = 16 * 1024

test.serial(`${CLIENTS} concurrent TLS echo clients each get back their 16 KiB (SHA-256)`, async (t) => {
  const s = await tlsServer(t, {})
  const start = Date.now()
  async function client(): Promise<boolean> {
    const data = randomBytes(PER_CLIENT)
    const socket = await tlsConnect(s.port, {}, 60_000)
    const back = received(socket)
    socket.write(data.subarray(0, 1000))
    socket.end(data.subarray(1000))
    const got = await back
    return sha256(got) === sha256(data)
  }
  const results = await within(
    Promise.all(Array.from({ length: CLIENTS }, () => client())),
    60_000,
    `${CLIENTS} TLS echo clients`,
  )
  const ms = Date.now() - start
  t.log(`${CLIENTS} TLS clients × 16 KiB in ${ms} ms`)
  t.is(results.filter((ok) => !ok).length, 0, 'every client got its own bytes back')
  t.is(s.server.stats().tls.handshakes, CLIENTS)
  t.is(failureCount(s.server), 0)
  t.is(s.seen.length, CLIENTS)
  await until(() => s.server.activeConnections === 0, 10_000, 'active back to 0')
})
