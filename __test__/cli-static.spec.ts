// `tcpserver static` end to end: the CLI in a child process serving a temporary tree, with curl
// and raw HTTP/1.1 over node:net (exact bytes, pipelining, traversal attempts curl would clean
// up). Every wait is bounded.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test, { type ExecutionContext } from 'ava'
import { type Cli, firstPort, hasCurl, run, terminate } from './helpers/cli.ts'
import { connect, sha256, within } from './helpers/index.ts'

const fixture = (name: string): string => new URL(`fixtures/tls/${name}`, import.meta.url).pathname

// The tree served: root/ with files, a directory with an index, links leading out of it; and
// outside/ next to it, which must never be served.
const base = mkdtempSync(join(tmpdir(), 'tcpserver-static-'))
const root = join(base, 'root')
const big = randomBytes((3 << 20) + 7)
const small = Buffer.from('0123456789abcdefghij') // 20 bytes
test.before(() => {
  mkdirSync(join(root, 'sub'), { recursive: true })
  mkdirSync(join(root, 'empty-dir'))
  mkdirSync(join(base, 'outside'))
  writeFileSync(join(root, 'big.bin'), big)
  writeFileSync(join(root, 'small.txt'), small)
  writeFileSync(join(root, 'a b.html'), '<p>spaced</p>')
  writeFileSync(join(root, 'empty.json'), '')
  writeFileSync(join(root, 'sub', 'index.html'), '<h1>index</h1>')
  writeFileSync(join(base, 'outside', 'secret.txt'), 'SECRET')
  symlinkSync(join(base, 'outside', 'secret.txt'), join(root, 'link-out.txt'))
  symlinkSync(join(base, 'outside'), join(root, 'dir-out'))
  symlinkSync('small.txt', join(root, 'link-in.txt'))
})
test.after.always(() => rmSync(base, { recursive: true, force: true }))

interface Response {
  status: number
  /** Header values by lower-case name. */
  headers: Map<string, string>
  body: Buffer
}

/** Parses complete responses from `buf`; HEAD answers (by position) have no body. */
function parseResponses(buf: Buffer, heads: boolean[]): Response[] {
  const out: Response[] = []
  let at = 0
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at)
    if (end === -1) return out
    const [statusLine = '', ...lines] = buf.toString('latin1', at, end).split('\r\n')
    const headers = new Map(
      lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    )
    const length = heads[out.length] ? 0 : Number(headers.get('content-length') ?? 0)
    if (buf.length < end + 4 + length) return out
    out.push({
      status: Number(statusLine.split(' ')[1]),
      headers,
      body: buf.subarray(end + 4, end + 4 + length),
    })
    at = end + 4 + length
  }
}

/**
 * Sends `requests` in one write on one connection and waits for all their responses, or the
 * server's close. `closed` tells whether the server closed the connection (checked briefly
 * once every response is in).
 */
async function exchange(
  port: number,
  requests: string[],
): Promise<{ responses: Response[]; closed: boolean }> {
  const socket = await connect(port)
  const heads = requests.map((r) => r.startsWith('HEAD '))
  const chunks: Buffer[] = []
  let closed = false
  const done = new Promise<Response[]>((resolve, reject) => {
    const check = (): void => {
      const responses = parseResponses(Buffer.concat(chunks), heads)
      if (closed || responses.length === requests.length) resolve(responses)
    }
    socket.on('data', (d: Buffer) => {
      chunks.push(d)
      check()
    })
    socket.once('close', () => {
      closed = true
      check()
    })
    socket.once('error', reject)
  })
  socket.write(requests.join(''))
  const responses = await within(done, 10_000, 'responses')
  if (!closed) await new Promise((r) => setTimeout(r, 50)) // a close would follow at once
  socket.destroy()
  return { responses, closed }
}

const get = (path: string, headers = ''): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`

/** One request, one response, on its own connection. */
async function one(port: number, request: string): Promise<Response> {
  const { responses } = await exchange(port, [request])
  const [response] = responses
  if (response === undefined) throw new Error(`no response to ${JSON.stringify(request)}`)
  return response
}

async function startStatic(t: ExecutionContext, extra: string[] = []): Promise<{ cli: Cli; port: number }> {
  const cli = run(t, ['static', root, '--listen', '127.0.0.1:0', ...extra])
  return { cli, port: await firstPort(cli, 'static') }
}

function curl(args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync('curl', ['-sS', '--max-time', '10', ...args], { timeout: 15_000, maxBuffer: 64 << 20 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() }
}

test('GET with curl: the file byte for byte (sendfile); HEAD; Content-Type; index.html', async (t) => {
  const { cli, port } = await startStatic(t)
  const url = `http://127.0.0.1:${port}`
  if (hasCurl) {
    const r = curl([`${url}/big.bin`])
    t.is(r.status, 0, r.stderr)
    t.is(sha256(r.stdout), sha256(big))
    const head = curl(['-I', `${url}/big.bin`]).stdout.toString()
    t.regex(head, /^HTTP\/1\.1 200 OK\r\n/)
    t.true(head.includes(`\r\nContent-Length: ${big.length}\r\n`), head)
    t.true(head.includes('\r\nContent-Type: application/octet-stream\r\n'), head)
    t.true(head.includes('\r\nAccept-Ranges: bytes\r\n'), head)
  } else {
    t.log('curl not installed: GET and HEAD are checked with node:net only')
  }

  const whole = await one(port, get('/big.bin'))
  t.is(whole.status, 200)
  t.is(sha256(whole.body), sha256(big))
  const head = await one(port, `HEAD /small.txt HTTP/1.1\r\nHost: x\r\n\r\n`)
  t.is(head.status, 200)
  t.is(head.headers.get('content-length'), String(small.length))
  t.is(head.headers.get('content-type'), 'text/plain; charset=utf-8')
  t.is(head.body.length, 0)

  const index = await one(port, get('/sub/'))
  t.is(index.status, 200)
  t.is(index.headers.get('content-type'), 'text/html; charset=utf-8')
  t.is(index.body.toString(), '<h1>index</h1>')
  t.is((await one(port, get('/sub'))).body.toString(), '<h1>index</h1>')
  const spaced = await one(port, get('/a%20b.html?x=1#frag'))
  t.is(spaced.body.toString(), '<p>spaced</p>')
  const empty = await one(port, get('/empty.json'))
  t.deepEqual([empty.status, empty.headers.get('content-length'), empty.body.length], [200, '0', 0])
  t.is((await one(port, get('/link-in.txt'))).body.toString(), small.toString()) // a link inside: fine

  cli.child.kill('SIGUSR1')
  const m = await cli.line(
    /^tcpserver stats .* requests=(\d+) file_bytes_zero_copy=(\d+) file_bytes_copied=0 /,
  )
  t.true(Number(m[2]) >= big.length, 'the file went out with sendfile(2)')
  await terminate(t, cli)
  t.is(cli.stderr(), '')
})

test('Range: 206 with exactly the bytes asked for, open and suffix ranges; 416 past the end', async (t) => {
  const { cli, port } = await startStatic(t)
  const { responses, closed } = await exchange(port, [
    get('/small.txt', 'Range: bytes=2-5\r\n'),
    get('/small.txt', 'Range: bytes=15-\r\n'),
    get('/small.txt', 'Range: bytes=-3\r\n'),
    get('/small.txt', 'Range: bytes=10-999\r\n'), // the end is clamped to the file
    get('/small.txt', 'Range: bytes=20-\r\n'), // starts past the last byte
    get('/small.txt', 'Range: bytes=5-2\r\n'), // malformed: ignored, the whole file
    get('/small.txt', 'Range: bytes=0-1,4-5\r\n'), // several ranges: not supported, the whole file
    `HEAD /small.txt HTTP/1.1\r\nRange: bytes=1-1\r\n\r\n`,
  ])
  t.false(closed)
  const summary = responses.map((r) => [r.status, r.headers.get('content-range'), r.body.toString()])
  t.deepEqual(summary, [
    [206, 'bytes 2-5/20', '2345'],
    [206, 'bytes 15-19/20', 'fghij'],
    [206, 'bytes 17-19/20', 'hij'],
    [206, 'bytes 10-19/20', 'abcdefghij'],
    [416, 'bytes */20', '416 Range Not Satisfiable\n'],
    [200, undefined, small.toString()],
    [200, undefined, small.toString()],
    [206, 'bytes 1-1/20', ''],
  ])
  t.is(responses[0]?.headers.get('content-length'), '4')

  if (hasCurl) {
    const offset = 1_000_000
    const r = curl(['-r', `${offset}-${offset + 65_535}`, `http://127.0.0.1:${port}/big.bin`])
    t.is(r.status, 0, r.stderr)
    t.is(sha256(r.stdout), sha256(big.subarray(offset, offset + 65_536)))
    const past = curl([
      '-r',
      `${big.length}-`,
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      `http://127.0.0.1:${port}/big.bin`,
    ])
    t.is(past.stdout.toString(), '416')
  }
  await terminate(t, cli)
})

test('404, 405, 400; traversal ("..", encoded, links out of DIR) refused, nothing outside served', async (t) => {
  const { cli, port } = await startStatic(t)
  const status = async (request: string): Promise<number> => {
    const r = await one(port, request)
    t.false(r.body.toString().includes('SECRET'), request)
    return r.status
  }
  t.is(await status(get('/missing.txt')), 404)
  t.is(await status(get('/sub/missing/deeper')), 404)
  t.is(await status(get('/small.txt/x')), 404) // a file used as a directory
  t.is(await status(get('/empty-dir/')), 403) // a directory without index.html
  const post = await one(port, 'POST /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
  t.is(post.status, 405)
  t.is(post.headers.get('allow'), 'GET, HEAD')
  t.is(await status('GET /small.txt HTTP/2.0\r\n\r\n'), 400)
  t.is(await status('nonsense\r\n\r\n'), 400)
  t.is(await status(get('small.txt')), 400) // not an absolute path
  t.is(await status(get('/%zz')), 400) // a bad escape
  t.is(await status(get('/small.txt%00.html')), 400) // NUL

  for (const path of [
    '/../outside/secret.txt',
    '/sub/../../outside/secret.txt',
    '/%2e%2e/outside/secret.txt',
    '/%2E%2E%2Foutside%2Fsecret.txt',
    '/sub/..%2f..%2foutside/secret.txt',
    '/..',
    '/link-out.txt', // a symbolic link to a file outside DIR
    '/dir-out/secret.txt', // through a link to a directory outside DIR
  ]) {
    t.is(await status(get(path)), 403, path)
  }
  if (hasCurl) {
    for (const path of ['/../outside/secret.txt', '/%2e%2e/outside/secret.txt']) {
      const r = curl(['--path-as-is', '-w', '%{http_code}', `http://127.0.0.1:${port}${path}`])
      t.is(r.status, 0, r.stderr)
      t.true(r.stdout.toString().endsWith('403'), path)
      t.false(r.stdout.toString().includes('SECRET'))
    }
  }
  await terminate(t, cli)
  t.is(cli.stderr(), '')
})

test('keep-alive: pipelined requests answered in order on one connection; close when asked', async (t) => {
  const { cli, port } = await startStatic(t)
  // Several requests, a 404 among them, then one that asks to close: the rest is never answered.
  const { responses, closed } = await exchange(port, [
    get('/small.txt'),
    get('/missing'),
    `HEAD /big.bin HTTP/1.1\r\n\r\n`,
    get('/big.bin'),
    get('/small.txt', 'Connection: close\r\n'),
    get('/small.txt'),
  ])
  t.deepEqual(
    responses.map((r) => r.status),
    [200, 404, 200, 200, 200],
  )
  t.is(sha256(responses[3]!.body), sha256(big))
  t.is(responses[4]?.headers.get('connection'), 'close')
  t.true(closed)

  // HTTP/1.0 closes unless it asks for keep-alive.
  const old = await exchange(port, ['GET /small.txt HTTP/1.0\r\n\r\n', 'GET /small.txt HTTP/1.0\r\n\r\n'])
  t.is(old.responses.length, 1)
  t.true(old.closed)
  const oldKeep = await exchange(port, [
    'GET /small.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
    'GET /small.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
  ])
  t.is(oldKeep.responses.length, 2)
  t.is(oldKeep.responses[0]?.headers.get('connection'), 'keep-alive')
  t.false(oldKeep.closed)

  // A request head split across writes.
  const socket = await connect(port)
  const got: Buffer[] = []
  socket.on('data', (d: Buffer) => got.push(d))
  for (const part of ['GET /sma', 'll.txt HTTP/1.1\r\nHo', 'st: x\r\n', '\r\n']) {
    socket.write(part)
    await new Promise((r) => setTimeout(r, 20))
  }
  await within(
    (async () => {
      while (parseResponses(Buffer.concat(got), [false]).length < 1)
        await new Promise((r) => setTimeout(r, 10))
    })(),
    5_000,
    'split request answered',
  )
  socket.destroy()

  if (hasCurl) {
    const url = `http://127.0.0.1:${port}`
    const r = curl([
      '-o',
      '/dev/null',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{num_connects}\\n',
      `${url}/big.bin`,
      `${url}/small.txt`,
    ])
    t.is(r.status, 0, r.stderr)
    t.is(r.stdout.toString(), '200 1\n200 0\n') // the second request reused the connection
  }
  await terminate(t, cli)
})

test('over TLS (--tls-cert/--tls-key): curl gets the file and a range intact (copy path)', async (t) => {
  const { cli, port } = await startStatic(t, [
    '--tls-cert',
    fixture('server.crt'),
    '--tls-key',
    fixture('server.key'),
  ])
  if (!hasCurl) {
    t.log('curl not installed: skipped')
    t.pass()
    return
  }
  const r = curl([
    '--cacert',
    fixture('ca.crt'),
    `https://localhost:${port}/big.bin`,
    '--resolve',
    `localhost:${port}:127.0.0.1`,
  ])
  t.is(r.status, 0, r.stderr)
  t.is(sha256(r.stdout), sha256(big))
  const range = curl(['--cacert', fixture('ca.crt'), '-r', '3-6', `https://127.0.0.1:${port}/small.txt`])
  t.is(range.stdout.toString(), '3456')
  cli.child.kill('SIGUSR1')
  await cli.line(/^tcpserver stats .* file_bytes_zero_copy=0 file_bytes_copied=\d+ /) // TLS: the copy path
  await terminate(t, cli)
})
