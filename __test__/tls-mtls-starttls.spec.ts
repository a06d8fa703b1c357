// Mutual TLS, StartTLS and outbound TLS against real peers: node:tls, and openssl s_client
// (-cert/-key for client certificates, -starttls smtp for an in-place upgrade).
import { execFile, spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import test from 'ava'
import { type Connection, connect, type TlsInfo } from 'tcpserver-rs'
import { errCode, portOf, serve, sha256, tlsRoundTrip, until, within } from './helpers/index.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url))
const pem = (name: string): Buffer => readFileSync(fixture(name))
const SERVER = { cert: fixture('server.crt'), key: fixture('server.key') }
const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0

/** node:tls client; resolves with everything received until the server closes. */
function tlsExchange(port: number, options: tls.ConnectionOptions, send: string): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({
        port,
        host: '127.0.0.1',
        ca: pem('ca.crt'),
        servername: 'localhost',
        ...options,
      })
      let text = ''
      socket.on('data', (d: Buffer) => {
        text += d
      })
      socket.on('secureConnect', () => socket.end(send))
      socket.on('close', () => resolve(text))
      socket.on('error', reject)
    }),
    5000,
    'TLS exchange',
  )
}

test('requireCert: a client certificate from the CA is verified and exposed; none is refused', async (t) => {
  const seen: TlsInfo[] = []
  const failures: string[] = []
  const server = await serve(t, {
    tls: { ...SERVER, ca: fixture('ca.crt'), requireCert: true },
    onTlsError: (e) => failures.push((e as Error & { code: string }).code),
    async handler(conn) {
      if (conn.tls) seen.push(conn.tls)
      for await (const chunk of conn) await conn.write(chunk)
    },
  })
  const port = portOf(server)
  t.is(await tlsExchange(port, { cert: pem('client.crt'), key: pem('client.key') }, 'with cert'), 'with cert')
  const leaf = seen[0]?.peerCertificates[0]
  t.truthy(leaf)
  t.regex(leaf?.subject ?? '', /CN=test client/)
  t.regex(leaf?.issuer ?? '', /CN=tcpserver test CA/)
  t.regex(leaf?.fingerprint256 ?? '', /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
  t.true(Buffer.isBuffer(leaf?.der))

  const err = await tlsExchange(port, {}, 'no cert').then(
    () => null,
    (e: unknown) => e,
  )
  t.truthy(err, 'a client without a certificate does not get through')
  await until(() => failures.length === 1, 5000, 'onTlsError')
  t.deepEqual(failures, ['ERR_TCPSERVER_TLS_HANDSHAKE'])
  t.deepEqual(server.stats().tls.failures, { no_client_certificate: 1 })
  t.is(seen.length, 1, 'the refused client never reached the handler')
})

test('requestCert: clients with and without a certificate are both served', async (t) => {
  const counts: number[] = []
  const server = await serve(t, {
    tls: { ...SERVER, ca: fixture('ca.crt'), requestCert: true },
    async handler(conn) {
      counts.push(conn.tls?.peerCertificates.length ?? -1)
      await conn.write('ok')
    },
  })
  t.is(await tlsExchange(portOf(server), { cert: pem('client.crt'), key: pem('client.key') }, ''), 'ok')
  t.is(await tlsExchange(portOf(server), {}, ''), 'ok')
  t.true((counts[0] ?? 0) >= 1)
  t.is(counts[1], 0)
})

test('requireCert without ca is refused at listen()', async (t) => {
  const { listen } = await import('tcpserver-rs')
  await t.throwsAsync(listen({ address: '127.0.0.1:0', tls: { ...SERVER, requireCert: true } }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
})

test('openssl s_client with -cert/-key completes mutual TLS', async (t) => {
  if (!hasOpenssl) return t.pass('skipped: openssl missing')
  const subjects: string[] = []
  const server = await serve(t, {
    tls: { ...SERVER, ca: fixture('ca.crt'), requireCert: true },
    async handler(conn) {
      subjects.push(conn.tls?.peerCertificates[0]?.subject ?? '')
      await conn.write('hello\n')
    },
  })
  const args = ['s_client', '-connect', `127.0.0.1:${portOf(server)}`, '-servername', 'localhost', '-CAfile']
  const { stdout } = await promisify(execFile)(
    'openssl',
    [...args, fixture('ca.crt'), '-cert', fixture('client.crt'), '-key', fixture('client.key'), '-brief'],
    { timeout: 10_000 },
  )
  t.regex(stdout, /hello/)
  t.regex(subjects[0] ?? '', /CN=test client/)
})

/** An SMTP-like handler on a plain server: greeting, EHLO, STARTTLS, then an encrypted echo. */
async function smtp(conn: Connection): Promise<void> {
  await conn.write('220 tcpserver ESMTP\r\n')
  let plain = ''
  for (;;) {
    const chunk = await conn.read()
    if (chunk === null) return
    plain += chunk.toString('latin1')
    if (/^EHLO[^\r]*\r\n/im.test(plain)) {
      await conn.write('250-tcpserver\r\n250 STARTTLS\r\n')
      plain = ''
    } else if (/^STARTTLS\r\n/im.test(plain)) {
      await conn.write('220 go ahead\r\n')
      // A plain server: the TLS settings come with the upgrade.
      await conn.startTls(SERVER)
      await conn.write(`250 secure ${conn.tls?.protocol}\r\n`)
      for await (const line of conn) await conn.write(line)
      return
    }
  }
}

test('StartTLS with node:tls on the same socket: plaintext before, TLS after, data intact', async (t) => {
  const server = await serve(t, { handler: smtp })
  const socket = net.connect(portOf(server), '127.0.0.1')
  const lines: string[] = []
  const nextLine = (): Promise<string> =>
    within(new Promise((r) => socket.once('data', (d: Buffer) => r(d.toString()))), 5000, 'a line')
  lines.push(await nextLine())
  socket.write('EHLO me\r\n')
  lines.push(await nextLine())
  socket.write('STARTTLS\r\n')
  lines.push(await nextLine())
  t.deepEqual(lines, ['220 tcpserver ESMTP\r\n', '250-tcpserver\r\n250 STARTTLS\r\n', '220 go ahead\r\n'])
  const secure = tls.connect({ socket, ca: pem('ca.crt'), servername: 'localhost' })
  await within(new Promise((r) => secure.once('secureConnect', r)), 5000, 'handshake')
  const payload = Buffer.alloc(1 << 20, 7)
  let received = Buffer.alloc(0)
  secure.on('data', (d: Buffer) => {
    received = Buffer.concat([received, d])
  })
  secure.end(payload)
  await within(new Promise((r) => secure.on('close', r)), 5000, 'close')
  const banner = '250 secure TLSv1.3\r\n'
  t.is(received.subarray(0, banner.length).toString(), banner)
  t.is(sha256(received.subarray(banner.length)), sha256(payload))
})

test('StartTLS with openssl s_client -starttls smtp', async (t) => {
  if (!hasOpenssl) return t.pass('skipped: openssl missing')
  const server = await serve(t, { handler: smtp })
  const args = ['s_client', '-connect', `127.0.0.1:${portOf(server)}`, '-starttls', 'smtp']
  const child = spawn('openssl', [
    ...args,
    '-servername',
    'localhost',
    '-CAfile',
    fixture('ca.crt'),
    '-brief',
  ])
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => {
    stderr += d
  })
  // s_client stays open for stdin; the banner sent over TLS is the proof, then it is stopped.
  await within(
    new Promise<void>((resolve) =>
      child.stdout.on('data', (d: Buffer) => {
        stdout += d
        if (stdout.includes('250 secure')) resolve()
      }),
    ),
    10_000,
    'the banner over TLS',
  ).finally(() => child.kill())
  t.regex(stdout, /250 secure TLSv1\.3/)
  t.regex(stderr, /Verification: OK/)
})

test('startTls() on a connection that already speaks TLS is an argument error', async (t) => {
  let err: unknown
  const server = await serve(t, {
    tls: SERVER,
    async handler(conn) {
      err = await conn.startTls().catch((e: unknown) => e)
      await conn.write('done')
    },
  })
  t.is(await tlsExchange(portOf(server), {}, ''), 'done')
  t.is(errCode(err), 'ERR_INVALID_ARG_VALUE')
})

test('outbound TLS: connect() verifies the server, negotiates ALPN, and pipes TLS to plain', async (t) => {
  // A TLS echo server (the "upstream").
  const upstream = await serve(t, {
    tls: { ...SERVER, alpn: ['x/1'] },
    async handler(conn) {
      for await (const chunk of conn) await conn.write(chunk)
    },
  })
  const target = `127.0.0.1:${portOf(upstream)}`
  const up = await connect(target, { tls: { ca: fixture('ca.crt'), servername: 'localhost', alpn: ['x/1'] } })
  t.is(up.tls?.protocol, 'TLSv1.3')
  t.is(up.tls?.alpnProtocol, 'x/1')
  t.regex(up.tls?.peerCertificates[0]?.subject ?? '', /CN=localhost/)
  await up.write('ping')
  t.is((await up.read())?.toString(), 'ping')
  up.close()
  t.is(
    errCode(
      await connect(target, { tls: { ca: fixture('ca.crt'), servername: 'nope.test' } }).catch((e) => e),
    ),
    'ERR_TCPSERVER_TLS_HANDSHAKE',
  )
  t.is(errCode(await connect(target, { tls: true }).catch((e) => e)), 'ERR_TCPSERVER_TLS_HANDSHAKE')

  // A plain proxy whose upstream leg is TLS: plaintext in, TLS out (the copy path).
  const proxy = await serve(t, {
    async handler(conn) {
      const tlsUp = await connect(target, { tls: { ca: fixture('ca.crt'), servername: 'localhost' } })
      try {
        await conn.pipe(tlsUp)
      } finally {
        tlsUp.close()
      }
    },
  })
  const client = net.connect(portOf(proxy), '127.0.0.1')
  const payload = Buffer.alloc(8 << 20)
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i)
  const chunks: Buffer[] = []
  client.on('data', (d: Buffer) => chunks.push(d))
  client.end(payload)
  await within(new Promise((r) => client.on('close', r)), 20_000, 'proxied echo')
  t.is(sha256(Buffer.concat(chunks)), sha256(payload))
  t.is(proxy.stats().dataPath.pipesCopied, 1, 'TLS on one side: the copy path, not splice')
})

test('TLS client → TLS-terminating proxy → plain upstream (pipe from a TLS connection)', async (t) => {
  const upstream = await serve(t, {
    async handler(conn) {
      for await (const chunk of conn) await conn.write(chunk)
    },
  })
  const proxy = await serve(t, {
    tls: SERVER,
    async handler(conn) {
      const up = await connect(`127.0.0.1:${portOf(upstream)}`)
      try {
        await conn.pipe(up)
      } finally {
        up.close()
      }
    },
  })
  const payload = Buffer.alloc(8 << 20, 3)
  const got = await within(tlsRoundTrip(portOf(proxy), payload), 20_000, 'TLS → plain proxied echo')
  t.is(sha256(got), sha256(payload))
  t.deepEqual(
    { spliced: proxy.stats().dataPath.pipesSpliced, copied: proxy.stats().dataPath.pipesCopied },
    { spliced: 0, copied: 1 },
  )
})
