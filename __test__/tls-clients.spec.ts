// TLS termination against external clients: `openssl s_client` (protocol, cipher, ALPN, SNI,
// verification, refused old versions, resumption) and `curl` against a tiny HTTPS responder.
// Each tool runs asynchronously (the server lives in this process's event loop); a test whose
// tool is missing logs that and passes.
import { execFile, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import type { Connection, ListenOptions, TlsInfo, TlsOptions } from 'tcpserver-rs'
import { portOf, serve, until, within } from './helpers/index.ts'

const dir = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))
const file = (name: string): string => `${dir}${name}`
const CA = file('ca.crt')
const SERVER: TlsOptions = { cert: file('server.crt'), key: file('server.key') }
const OTHER = { cert: file('other.crt'), key: file('other.key') }

interface Run {
  /** Exit code (0 on success); null when killed. */
  status: number | null
  stdout: Buffer
  stderr: string
  /** stdout and stderr as text. */
  out: string
}

/** Runs a tool with stdin closed at once, bounded by `timeout`; never throws for an exit code. */
function run(cmd: string, args: string[], timeout = 15_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout, killSignal: 'SIGKILL', encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown; killed?: boolean }) | null
        if (e && typeof e.code === 'string') return reject(e) // ENOENT and friends: the tool itself
        if (e?.killed) return reject(new Error(`${cmd} did not finish within ${timeout} ms`))
        const status = e ? (typeof e.code === 'number' ? e.code : null) : 0
        resolve({
          status,
          stdout,
          stderr: stderr.toString(),
          out: `${stdout.toString()}\n${stderr.toString()}`,
        })
      },
    )
    child.stdin?.end()
  })
}

const available = new Map<string, Promise<boolean>>()
/** Whether `cmd` runs here (checked once per tool). */
function have(cmd: string): Promise<boolean> {
  let p = available.get(cmd)
  if (!p) {
    p = run(cmd, ['--version'], 10_000).then(
      () => true,
      () => false,
    )
    available.set(cmd, p)
  }
  return p
}

async function skipWithout(t: ExecutionContext, cmd: string): Promise<boolean> {
  if (await have(cmd)) return false
  t.log(`skipped: \`${cmd}\` is not installed`)
  t.pass()
  return true
}

const GREETING = 'hello from tcpserver over TLS\n'

/** A TLS server that writes a greeting and closes, recording conn.tls and refusals. */
async function greeter(
  t: ExecutionContext,
  tlsOptions: Partial<TlsOptions>,
  extra: Partial<ListenOptions> = {},
) {
  const seen: TlsInfo[] = []
  const failures: string[] = []
  const server = await serve(t, {
    ...extra,
    tls: { ...SERVER, ...tlsOptions },
    onTlsError: (error) => failures.push((error as Error & { code: string }).code),
    handler: async (conn: Connection) => {
      const info = conn.tls
      if (info) seen.push(info)
      await conn.write(GREETING)
    },
  })
  return { server, port: portOf(server), seen, failures }
}

const failureCount = (s: { server: { stats(): { tls: { failures: Record<string, number> } } } }) =>
  Object.values(s.server.stats().tls.failures).reduce((a, b) => a + b, 0)

/** `openssl s_client` against 127.0.0.1:port; waits for the server to close (-ign_eof). */
const sClient = (port: number, ...args: string[]) =>
  run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', CA, '-ign_eof', ...args])

/** `-brief` summary fields ("Protocol version: TLSv1.3" → { 'Protocol version': 'TLSv1.3' }). */
function brief(out: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const m of out.matchAll(/^([A-Za-z ]+): (.+)$/gm)) fields[m[1] as string] = (m[2] as string).trim()
  return fields
}

// rustls spells TLS 1.3 suites TLS13_*; OpenSSL uses the IANA names (see tls.spec.ts).
const iana = (cipher: string | undefined): string => (cipher ?? '').replace(/^TLS13_/, 'TLS_')

// --- openssl s_client -------------------------------------------------------------------------

test('openssl s_client -brief: TLS 1.3, verified chain, greeting received, conn.tls agrees', async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const s = await greeter(t, {})
  const r = await sClient(
    s.port,
    '-brief',
    '-servername',
    'localhost',
    '-verify_hostname',
    'localhost',
    '-verify_return_error',
  )
  t.is(r.status, 0, r.out)
  const f = brief(r.stderr)
  t.true(r.stderr.includes('CONNECTION ESTABLISHED'), r.out)
  t.is(f['Protocol version'], 'TLSv1.3')
  t.is(f.Verification, 'OK')
  t.is(f['Verified peername'], 'localhost')
  t.is(f['Peer certificate'], 'CN = localhost')
  t.is(r.stdout.toString(), GREETING)
  t.is(s.seen[0]?.protocol, 'TLSv1.3')
  t.is(iana(s.seen[0]?.cipher), f.Ciphersuite)
  t.is(s.seen[0]?.serverName, 'localhost')
  t.is(s.server.stats().tls.handshakes, 1)
})

test('openssl s_client -tls1_2 works (ECDHE-ECDSA suite); -tls1_3 with only ChaCha20 gets ChaCha20', async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const s = await greeter(t, {})
  const r12 = await sClient(s.port, '-brief', '-tls1_2', '-verify_return_error')
  t.is(r12.status, 0, r12.out)
  t.is(brief(r12.stderr)['Protocol version'], 'TLSv1.2')
  t.is(brief(r12.stderr).Ciphersuite, 'ECDHE-ECDSA-AES256-GCM-SHA384')
  t.is(r12.stdout.toString(), GREETING)
  t.is(s.seen[0]?.protocol, 'TLSv1.2')
  t.is(s.seen[0]?.cipher, 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384')

  const chacha = 'TLS_CHACHA20_POLY1305_SHA256'
  const r13 = await sClient(s.port, '-brief', '-tls1_3', '-ciphersuites', chacha, '-verify_return_error')
  t.is(r13.status, 0, r13.out)
  t.is(brief(r13.stderr).Ciphersuite, chacha)
  t.is(iana(s.seen[1]?.cipher), chacha)
})

test('openssl s_client -tls1_1 and -tls1 are refused by the server', async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const s = await greeter(t, {})
  for (const [i, version] of ['-tls1_1', '-tls1'].entries()) {
    // SECLEVEL=0 so that OpenSSL really offers the old version instead of refusing locally.
    const r = await sClient(s.port, '-brief', version, '-cipher', 'DEFAULT@SECLEVEL=0')
    t.not(r.status, 0, r.out)
    t.false(r.out.includes('CONNECTION ESTABLISHED'), r.out)
    t.false(r.stdout.toString().includes(GREETING))
    // The server's side: the handshake reached it and was refused there.
    await until(() => failureCount(s) === i + 1, 5000, `${version} refusal counted`)
    t.is(s.failures[i], 'ERR_TCPSERVER_TLS_HANDSHAKE')
  }
  t.is(s.seen.length, 0, 'the handler never ran')
  t.is(s.server.stats().tls.handshakes, 0)
})

test("openssl s_client -tls1_2 is refused by minVersion 'TLSv1.3'", async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const s = await greeter(t, { minVersion: 'TLSv1.3' })
  const r = await sClient(s.port, '-brief', '-tls1_2')
  t.not(r.status, 0, r.out)
  t.false(r.out.includes('CONNECTION ESTABLISHED'))
  await until(() => failureCount(s) === 1, 5000, 'refusal counted')
  t.is(s.seen.length, 0)
  const ok = await sClient(s.port, '-brief', '-verify_return_error')
  t.is(brief(ok.stderr)['Protocol version'], 'TLSv1.3')
})

test('openssl s_client -alpn: server preference wins, no ALPN is fine, no overlap is refused', async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const s = await greeter(t, { alpn: ['http/1.1', 'h2'] })
  // Full output: -brief does not print ALPN.
  const both = await sClient(s.port, '-alpn', 'h2,http/1.1', '-verify_return_error')
  t.is(both.status, 0, both.out)
  t.regex(both.out, /^ALPN protocol: http\/1\.1$/m)
  t.regex(both.out, /^Verify return code: 0 \(ok\)$/m)
  t.regex(both.out, /^New, TLSv1\.3, Cipher is TLS_\w+$/m)
  t.is(s.seen[0]?.alpnProtocol, 'http/1.1')

  const h2 = await sClient(s.port, '-alpn', 'h2')
  t.regex(h2.out, /^ALPN protocol: h2$/m)
  t.is(s.seen[1]?.alpnProtocol, 'h2')

  const none = await sClient(s.port)
  t.regex(none.out, /^No ALPN negotiated$/m)
  t.is(s.seen[2]?.alpnProtocol, null)

  const other = await sClient(s.port, '-brief', '-alpn', 'spdy/3')
  t.not(other.status, 0, other.out)
  t.false(other.out.includes('CONNECTION ESTABLISHED'))
  await until(() => failureCount(s) === 1, 5000, 'refusal counted')
  t.deepEqual(s.failures, ['ERR_TCPSERVER_TLS_HANDSHAKE'])
  t.is(s.seen.length, 3)
})

test('openssl s_client -servername: SNI picks the certificate (exact, wildcard, default, none)', async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const s = await greeter(t, { sni: { 'other.test': OTHER, '*.wild.test': OTHER } })
  const cases: Array<[string[], string, string | null]> = [
    [
      ['-servername', 'other.test', '-verify_hostname', 'other.test', '-verify_return_error'],
      'other.test',
      'other.test',
    ],
    [
      ['-servername', 'a.wild.test', '-verify_hostname', 'a.wild.test', '-verify_return_error'],
      'other.test',
      'a.wild.test',
    ],
    [
      ['-servername', 'localhost', '-verify_hostname', 'localhost', '-verify_return_error'],
      'localhost',
      'localhost',
    ],
    [['-servername', 'a.b.wild.test'], 'localhost', 'a.b.wild.test'],
    [['-noservername', '-verify_ip', '127.0.0.1', '-verify_return_error'], 'localhost', null],
  ]
  for (const [i, [args, cn, serverName]] of cases.entries()) {
    const r = await sClient(s.port, '-brief', ...args)
    t.is(r.status, 0, r.out)
    const f = brief(r.stderr)
    t.is(f['Peer certificate'], `CN = ${cn}`, args.join(' '))
    t.is(f.Verification, 'OK', args.join(' '))
    t.is(s.seen[i]?.serverName ?? null, serverName)
  }
})

test('openssl s_client -sess_out / -sess_in: the second connection is resumed', async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const tmp = mkdtempSync(join(tmpdir(), 'tcpserver-tls-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  const session = join(tmp, 'session.pem')
  const s = await greeter(t, {})
  for (const version of ['-tls1_3', '-tls1_2']) {
    const first = await sClient(s.port, version, '-sess_out', session, '-verify_return_error')
    t.is(first.status, 0, first.out)
    t.regex(first.out, /^New, TLSv1\.[23], /m)
    const second = await sClient(s.port, version, '-sess_in', session, '-verify_return_error')
    t.is(second.status, 0, second.out)
    t.regex(second.out, /^Reused, TLSv1\.[23], /m, version)
    const [a, b] = s.seen.slice(-2)
    t.is(a?.resumed, false)
    t.is(b?.resumed, true, `${version}: conn.tls.resumed`)
  }
})

/**
 * An interactive `openssl s_client` (commands on: a `K` line sends a TLS 1.3 KeyUpdate, `R`
 * renegotiates): sends `lines` one at a time, each after the previous echo came back.
 */
async function interactive(port: number, version: string, lines: string[]) {
  const child = spawn('openssl', [
    's_client',
    '-connect',
    `127.0.0.1:${port}`,
    '-CAfile',
    CA,
    version,
    '-quiet',
    '-no_ign_eof',
  ])
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString()
  })
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString()
  })
  child.stdin.on('error', () => {})
  // 'close', not 'exit': only then has all of stdout and stderr been read.
  let closed = false
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      closed = true
      resolve(code)
    }),
  )
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve)
    child.once('error', reject)
  })
  try {
    await within(spawned, 10_000, 'openssl to start')
    for (const line of lines) {
      child.stdin.write(`${line}\n`)
      if (/^[KkR]$/.test(line)) {
        // A command: s_client reports it on stderr; the next line must come in a later read.
        const label = line === 'R' ? 'RENEGOTIATING' : 'KEYUPDATE'
        await until(() => err.includes(label) || closed, 10_000, label)
        continue
      }
      await until(() => out.includes(`${line}\n`) || closed, 10_000, `the echo of ${line}`)
      if (closed) break
    }
    child.stdin.end()
    return { status: await within(exited, 10_000, 'openssl to exit'), out, err }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
}

async function echoServer(t: ExecutionContext) {
  const errors: string[] = []
  const server = await serve(t, {
    tls: SERVER,
    onError: (error) => errors.push((error as Error & { code: string }).code),
    async handler(conn) {
      for await (const chunk of conn) await conn.write(chunk)
    },
  })
  return { server, port: portOf(server), errors }
}

test('openssl s_client KeyUpdate mid-stream (TLS 1.3): the echo goes on with the new keys', async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const s = await echoServer(t)
  for (const command of ['K', 'k']) {
    // K also asks the server to update its own sending keys.
    const r = await interactive(s.port, '-tls1_3', ['before', command, 'after', 'again'])
    t.is(r.status, 0, r.err)
    t.regex(r.err, /^KEYUPDATE$/m)
    t.is(r.out, 'before\nafter\nagain\n')
  }
  t.deepEqual(s.errors, [])
  await until(() => s.server.activeConnections === 0, 5000, 'connections closed')
})

test('openssl s_client renegotiation (TLS 1.2) is refused; the server carries on', async (t) => {
  if (await skipWithout(t, 'openssl')) return
  const s = await echoServer(t)
  const r = await interactive(s.port, '-tls1_2', ['before', 'R', 'after'])
  t.regex(r.err, /^RENEGOTIATING$/m)
  t.false(r.out.includes('after'), r.out)
  t.true(r.out.startsWith('before\n'))
  // The refused connection ends (the handler sees the client's fatal alert as an error)...
  await until(() => s.server.activeConnections === 0, 5000, 'the connection to end')
  // ...and the server still serves.
  const ok = await interactive(s.port, '-tls1_2', ['fine'])
  t.is(ok.status, 0, ok.err)
  t.is(ok.out, 'fine\n')
})

// --- curl against an HTTPS responder ---------------------------------------------------------

/** A tiny HTTP/1.1 responder (keep-alive, `Connection: close`) over TLS, like examples/http.mjs. */
async function https(
  t: ExecutionContext,
  body: Buffer,
  tlsOptions: Partial<TlsOptions> = { alpn: ['http/1.1'] },
) {
  const seen: TlsInfo[] = []
  const paths: string[] = []
  const server = await serve(t, {
    tls: { ...SERVER, ...tlsOptions },
    async handler(conn) {
      const info = conn.tls
      if (info) seen.push(info)
      let pending = ''
      for await (const chunk of conn) {
        pending += chunk.toString('latin1')
        let end = pending.indexOf('\r\n\r\n')
        while (end !== -1) {
          const request = pending.slice(0, end)
          pending = pending.slice(end + 4)
          paths.push(request.split(' ')[1] ?? '')
          const close = /\r\nconnection:\s*close/i.test(request)
          const head = `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`
          await conn.write(Buffer.concat([Buffer.from(head), body]))
          if (close) return
          end = pending.indexOf('\r\n\r\n')
        }
      }
    },
  })
  const port = portOf(server)
  return {
    server,
    port,
    seen,
    paths,
    url: `https://localhost:${port}`,
    resolve: `localhost:${port}:127.0.0.1`,
  }
}

const curlBase = (resolve: string) => ['-sS', '--max-time', '10', '--cacert', CA, '--resolve', resolve]

test('curl --cacert gets the body over HTTPS (TLS 1.3, ALPN http/1.1, verified)', async (t) => {
  if (await skipWithout(t, 'curl')) return
  const body = Buffer.from('hello over https\n')
  const h = await https(t, body)
  const r = await run('curl', [...curlBase(h.resolve), '-v', `${h.url}/`])
  t.is(r.status, 0, r.stderr)
  t.deepEqual(r.stdout, body)
  t.regex(r.stderr, /SSL connection using TLSv1\.3 \//)
  t.regex(r.stderr, /ALPN: server accepted http\/1\.1/)
  t.regex(r.stderr, /SSL certificate verify ok/)
  t.like(h.seen[0], { protocol: 'TLSv1.3', alpnProtocol: 'http/1.1', serverName: 'localhost' })
})

test('curl --http1.1 --tls-max 1.2: TLS 1.2, two requests on one kept-alive connection', async (t) => {
  if (await skipWithout(t, 'curl')) return
  const body = Buffer.from('kept alive\n')
  const h = await https(t, body)
  const r = await run('curl', [
    ...curlBase(h.resolve),
    '--http1.1',
    '--tls-max',
    '1.2',
    '-w',
    '|%{http_code} %{http_version} %{ssl_verify_result} %{num_connects}\n',
    `${h.url}/one`,
    `${h.url}/two`,
  ])
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.toString(), `${body}|200 1.1 0 1\n${body}|200 1.1 0 0\n`)
  t.deepEqual(h.paths, ['/one', '/two'])
  t.is(h.server.acceptedConnections, 1)
  t.is(h.seen[0]?.protocol, 'TLSv1.2')
  t.is(h.seen[0]?.alpnProtocol, 'http/1.1')
})

test('curl downloads 4 MiB over HTTPS with the same SHA-256; no CA means no connection', async (t) => {
  if (await skipWithout(t, 'curl')) return
  const body = randomBytes(4 * 1024 * 1024)
  const h = await https(t, body)
  const r = await run('curl', [...curlBase(h.resolve), '-H', 'Connection: close', `${h.url}/big`])
  t.is(r.status, 0, r.stderr)
  t.is(r.stdout.length, body.length)
  t.is(createHash('sha256').update(r.stdout).digest('hex'), createHash('sha256').update(body).digest('hex'))

  // Without --cacert curl refuses the test CA (exit 60): the verification above was real.
  const untrusted = await run('curl', ['-sS', '--max-time', '10', '--resolve', h.resolve, `${h.url}/`])
  t.is(untrusted.status, 60, untrusted.stderr)
  // The name must match too: the default certificate is not valid for other.test (exit 60).
  const port = h.port
  const wrongName = await run('curl', [
    '-sS',
    '--max-time',
    '10',
    '--cacert',
    CA,
    '--resolve',
    `other.test:${port}:127.0.0.1`,
    `https://other.test:${port}/`,
  ])
  t.is(wrongName.status, 60, wrongName.stderr)
})
