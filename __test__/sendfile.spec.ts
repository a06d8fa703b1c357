// conn.sendFile(): files made here (random bytes: 0 B, 1 B, 1 MiB, 64 MiB; a 1 GiB sparse file
// with TCPSERVER_SLOW=1), whole and in ranges, byte for byte (SHA-256) with nothing outside
// the range; order with write() and with other sendFile calls; descriptors the caller owns;
// errors by code; the client vanishing mid-file (no descriptor leak); and proof that
// sendfile(2) moved the bytes (stats; strace on a child process) or the copy fallback did.
// Serial: descriptor counts must not share the process with other tests.
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import {
  chmodSync,
  closeSync,
  createReadStream,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import type { Connection, SendFileOptions, Server } from 'tcpserver-rs'
import {
  channel,
  errCode,
  fdCount,
  isRoot,
  type JsonChildRun,
  portOf,
  runJsonChild,
  serve,
  sleep,
  straceCalls,
  until,
  within,
} from './helpers/index.js'

const SLOW = process.env.TCPSERVER_SLOW === '1'
const MiB = 1 << 20
const BIG = 64 * MiB
const HUGE = 1024 * MiB
const ZERO_COPY = process.platform === 'linux' && process.env.TCPSERVER_ZERO_COPY !== '0'
const FIXTURE = fileURLToPath(new URL('./fixtures/zero-copy-sendfile.mjs', import.meta.url))
const hasStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0

const hex = (...parts: Uint8Array[]): string => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest('hex')
}

// ---------------------------------------------------------------------------------------------
// The files

interface TestFile {
  path: string
  size: number
  /** The content, for files small enough to hold (all but the sparse 1 GiB one). */
  data?: Buffer
}

const dir = mkdtempSync(join(tmpdir(), 'tcpserver-sendfile-'))
const files: Record<'empty' | 'one' | 'small' | 'big' | 'huge', TestFile> = {} as never

test.before(() => {
  const make = (name: keyof typeof files, size: number): void => {
    const data = randomBytes(size)
    const path = join(dir, `${name}.bin`)
    writeFileSync(path, data)
    files[name] = { path, size, data }
  }
  make('empty', 0)
  make('one', 1)
  make('small', MiB)
  make('big', BIG)
  if (SLOW) {
    // 1 GiB without writing 1 GiB: holes read as zeros; a few random regions, one of them
    // at an odd offset and one at the very end.
    const path = join(dir, 'huge.bin')
    const fd = openSync(path, 'w')
    ftruncateSync(fd, HUGE)
    for (const at of [0, 333 * MiB + 7, HUGE - MiB]) writeSync(fd, randomBytes(MiB), 0, MiB, at)
    closeSync(fd)
    files.huge = { path, size: HUGE }
  }
})

test.after.always(() => {
  rmSync(dir, { recursive: true, force: true })
})

/** SHA-256 and length of `head + file[offset, offset + length) + tail`, read from the file itself. */
async function expected(
  f: TestFile,
  offset: number,
  length: number,
  head = '',
  tail = '',
): Promise<{ bytes: number; hash: string }> {
  const h = createHash('sha256')
  h.update(head)
  if (f.data) h.update(f.data.subarray(offset, offset + length))
  else if (length > 0) {
    for await (const chunk of createReadStream(f.path, { start: offset, end: offset + length - 1 }))
      h.update(chunk as Buffer)
  }
  h.update(tail)
  return { bytes: head.length + length + tail.length, hash: h.digest('hex') }
}

// ---------------------------------------------------------------------------------------------
// Server and client

/** Resolves with the next value pushed; every wait is bounded. */

interface Outcome {
  values?: unknown[]
  error?: unknown
}

/** A server running `plan` per connection and reporting how it ended. */
async function fileServer(
  t: ExecutionContext,
  plan: (conn: Connection) => Promise<unknown[]>,
): Promise<{ server: Server; port: number; outcomes: ReturnType<typeof channel<Outcome>> }> {
  const outcomes = channel<Outcome>(10_000)
  const server = await serve(t, {
    onError: () => {},
    async handler(conn) {
      try {
        outcomes.push({ values: await plan(conn) })
      } catch (e) {
        outcomes.push({ error: e })
        throw e
      }
    },
  })
  return { server, port: portOf(server), outcomes }
}

interface Received {
  bytes: number
  hash: string
  data?: Buffer
}

/** Connects, sends `request` (and FIN), and hashes everything until the server's FIN. */
function fetch(port: number, request = '', keep = false): Promise<Received> {
  return within(
    new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.end(request))
      const h = createHash('sha256')
      const kept: Buffer[] = []
      let bytes = 0
      socket.on('data', (c: Buffer) => {
        h.update(c)
        bytes += c.length
        if (keep) kept.push(c)
      })
      socket.once('end', () =>
        resolve({ bytes, hash: h.digest('hex'), ...(keep ? { data: Buffer.concat(kept) } : {}) }),
      )
      socket.once('error', reject)
    }),
    SLOW ? 60_000 : 15_000,
    'client receiving',
  )
}

/** Reads the request line a `fetch` sent. */
async function requestLine(conn: Connection): Promise<string> {
  let text = ''
  for (;;) {
    const chunk = await conn.read()
    if (chunk === null) return text
    text += chunk.toString('latin1')
  }
}

interface Req extends SendFileOptions {
  file: keyof typeof files
  head?: string
  tail?: string
}

/** The request protocol: `head`, then the file range, then `tail`, each awaited. */
async function serveRequest(conn: Connection): Promise<unknown[]> {
  const req = JSON.parse(await requestLine(conn)) as Req
  const { offset, length } = req
  const opts: SendFileOptions = {}
  if (offset !== undefined) opts.offset = offset
  if (length !== undefined) opts.length = length
  if (req.head) await conn.write(req.head)
  const sent = await conn.sendFile(files[req.file].path, opts)
  if (req.tail) await conn.write(req.tail)
  return [sent]
}

// ---------------------------------------------------------------------------------------------

test.serial(
  'whole files (0 B, 1 B, 1 MiB, 64 MiB) arrive byte for byte; sendFile resolves with the size; stats count them',
  async (t) => {
    t.timeout(40_000)
    const s = await fileServer(t, serveRequest)
    const before = s.server.stats().dataPath
    let total = 0
    for (const name of ['empty', 'one', 'small', 'big'] as const) {
      const f = files[name]
      const got = await fetch(s.port, JSON.stringify({ file: name }))
      t.deepEqual(got, await expected(f, 0, f.size), name)
      t.deepEqual(
        (await s.outcomes.next(5000, name)).values,
        [f.size],
        `${name}: sendFile resolved with the size`,
      )
      total += f.size
    }
    const after = s.server.stats().dataPath
    t.is(after.filesSent - before.filesSent, 4)
    if (ZERO_COPY) {
      t.is(after.fileBytesZeroCopy - before.fileBytesZeroCopy, total, 'every byte went through sendfile(2)')
      t.is(after.fileBytesCopied - before.fileBytesCopied, 0)
    } else {
      t.is(after.fileBytesCopied - before.fileBytesCopied, total)
    }
  },
)

test.serial(
  'ranges: offset only, offset + length, length only, length 0, offset == size; exactly the range between head and tail',
  async (t) => {
    t.timeout(30_000)
    const s = await fileServer(t, serveRequest)
    const small = files.small.size
    const cases: Array<Omit<Req, 'head' | 'tail'>> = [
      { file: 'small', offset: 1000 },
      { file: 'small', offset: 12_345, length: 67_890 },
      { file: 'small', length: 10 },
      { file: 'small', offset: 5, length: 0 },
      { file: 'small', offset: small },
      { file: 'small', offset: small, length: 0 },
      { file: 'small', offset: small - 1, length: 1 },
      { file: 'small', offset: 0, length: small },
      { file: 'one', offset: 0, length: 1 },
      { file: 'one', offset: 1 },
      { file: 'empty', offset: 0, length: 0 },
      { file: 'big', offset: 7 * MiB + 3, length: 33 * MiB + 5 },
      { file: 'big', offset: BIG - 100 },
    ]
    const before = s.server.stats().dataPath
    let total = 0
    for (const c of cases) {
      const f = files[c.file]
      const offset = c.offset ?? 0
      const length = c.length ?? f.size - offset
      const got = await fetch(s.port, JSON.stringify({ ...c, head: '<', tail: '>' }))
      t.deepEqual(got, await expected(f, offset, length, '<', '>'), JSON.stringify(c))
      t.deepEqual(
        (await s.outcomes.next(5000, JSON.stringify(c))).values,
        [length],
        `${JSON.stringify(c)} resolved`,
      )
      total += length
    }
    const after = s.server.stats().dataPath
    t.is(after.filesSent - before.filesSent, cases.length, 'ranges (even empty ones) count as files sent')
    t.is(
      after.fileBytesZeroCopy + after.fileBytesCopied - before.fileBytesZeroCopy - before.fileBytesCopied,
      total,
      'the byte counters count the ranges only',
    )
  },
)

test.serial('1 GiB sparse file, whole and in ranges (TCPSERVER_SLOW=1 only)', async (t) => {
  if (!SLOW) {
    t.log('skipped: set TCPSERVER_SLOW=1')
    return t.pass()
  }
  t.timeout(110_000)
  const s = await fileServer(t, serveRequest)
  const f = files.huge
  for (const c of [
    { offset: 0, length: HUGE },
    { offset: 333 * MiB, length: 2 * MiB },
    { offset: 333 * MiB + 7 + MiB - 1, length: 3 },
    { offset: HUGE - MiB - 10 },
  ]) {
    const length = c.length ?? HUGE - c.offset
    const got = await fetch(s.port, JSON.stringify({ file: 'huge', ...c }))
    t.deepEqual(got, await expected(f, c.offset, length), JSON.stringify(c))
    t.deepEqual((await s.outcomes.next(60_000, 'huge')).values, [length])
  }
})

test.serial('order: a queued write before, sendFile, then a write after it settled', async (t) => {
  // 16 MiB is far above the high-water mark and the socket buffers: most of it is still queued
  // in the process when sendFile is called, and must go out first.
  const head = randomBytes(16 * MiB)
  const tail = Buffer.from('-- the end --')
  const s = await fileServer(t, async (conn) => {
    await conn.read() // the request
    const written = conn.write(head) // not awaited
    const sent = await conn.sendFile(files.small.path)
    await written
    await conn.write(tail)
    return [sent]
  })
  const got = await fetch(s.port, 'go')
  t.deepEqual(got, {
    bytes: head.length + files.small.size + tail.length,
    hash: hex(head, files.small.data as Buffer, tail),
  })
  t.deepEqual((await s.outcomes.next()).values, [files.small.size])
})

test.serial(
  'writes made right after an un-awaited sendFile() go out after the file, in call order',
  async (t) => {
    // Regression: the output used to be reserved only when the file task started, so a write()
    // made right after sendFile() could overtake the file.
    const s = await fileServer(t, async (conn) => {
      await conn.write('HEAD')
      const first = conn.sendFile(files.small.path)
      const mid = conn.write('MID')
      const second = conn.sendFile(files.one.path)
      const tail = conn.write('TAIL')
      return [await first, await mid, await second, await tail]
    })
    const data = (await fetch(s.port, '', true)).data as Buffer
    const small = files.small.data as Buffer
    const one = files.one.data as Buffer
    const want = Buffer.concat([Buffer.from('HEAD'), small, Buffer.from('MID'), one, Buffer.from('TAIL')])
    t.is(data.length, want.length)
    t.true(data.equals(want), 'HEAD, file, MID, file, TAIL in call order')
  },
)

test.serial('order: sendFile calls in a row (not awaited one by one) go out in call order', async (t) => {
  const small = files.small.data as Buffer
  const one = files.one.data as Buffer
  const s = await fileServer(t, async (conn) => {
    const p = [
      conn.sendFile(files.small.path, { offset: 100, length: 1000 }),
      conn.sendFile(files.one.path),
      conn.sendFile(files.empty.path),
      conn.sendFile(files.small.path),
      conn.sendFile(files.small.path, { offset: 0, length: 7 }),
    ]
    return Promise.all(p)
  })
  const got = await fetch(s.port)
  t.deepEqual(got, {
    bytes: 1000 + 1 + 0 + small.length + 7,
    hash: hex(small.subarray(100, 1100), one, small, small.subarray(0, 7)),
  })
  t.deepEqual((await s.outcomes.next()).values, [1000, 1, 0, small.length, 7])
})

test.serial(
  "sendFile by descriptor: ranges from the caller's fd, which stays open, usable and at position 0",
  async (t) => {
    await fetch((await fileServer(t, async () => [])).port) // warm-up: runtime, server, sockets
    const baseline = fdCount()
    const small = files.small.data as Buffer
    let fd = -1
    const s = await fileServer(t, async (conn) => {
      fd = openSync(files.small.path, 'r')
      const sent = [
        await conn.sendFile(fd, { offset: 4096, length: 10_000 }),
        await conn.sendFile(fd),
        await conn.sendFile(fd, { offset: small.length - 3 }),
      ]
      // Still ours: fstat, and a read at the current position (the library must not move it).
      const stat = fstatSync(fd)
      const first = Buffer.alloc(16)
      const n = readSync(fd, first, 0, 16, null)
      return [...sent, stat.size, n, first.equals(small.subarray(0, 16))]
    })
    const got = await fetch(s.port)
    t.deepEqual(got, {
      bytes: 10_000 + small.length + 3,
      hash: hex(small.subarray(4096, 14_096), small, small.subarray(-3)),
    })
    t.deepEqual((await s.outcomes.next()).values, [10_000, small.length, 3, small.length, 16, true])
    t.notThrows(() => closeSync(fd), 'the descriptor was still open')
    await s.server.shutdown()
    await until(() => fdCount() <= baseline, 3000, 'descriptors back to the baseline').catch(() => {})
    t.true(fdCount() <= baseline, `${fdCount()} descriptors open, baseline ${baseline}`)
  },
)

test.serial(
  'errors by code: ENOENT, EISDIR, EBADF, ranges past the end (RangeError, option), bad arguments; the connection still works',
  async (t) => {
    const small = files.small.size
    await fetch((await fileServer(t, async () => [])).port) // warm-up
    const baseline = fdCount()
    // Not an open descriptor (a number just closed could be reused by a socket meanwhile).
    const closedFd = 999_999
    const s = await fileServer(t, async (conn) => {
      const attempt = (file: unknown, opts?: SendFileOptions): Promise<unknown> =>
        conn.sendFile(file as string, opts).then(
          (v) => ({ resolved: v }),
          (e: unknown) => e,
        )
      const describe = (e: unknown): unknown[] => {
        const err = e as { code?: unknown; option?: unknown; constructor?: { name?: string } }
        return [err.code, err.option, err.constructor?.name]
      }
      const results = [
        describe(await attempt(join(dir, 'missing.bin'))),
        describe(await attempt(dir)),
        describe(await attempt(closedFd)),
        describe(await attempt(files.small.path, { offset: small + 1 })),
        describe(await attempt(files.small.path, { offset: small + 1, length: 0 })),
        describe(await attempt(files.small.path, { offset: 10, length: small - 9 })),
        describe(await attempt(files.small.path, { length: small + 1 })),
        describe(await attempt(files.empty.path, { offset: 1 })),
        describe(await attempt({})),
        describe(await attempt(files.small.path, { offset: '1' as unknown as number })),
        describe(await attempt(files.small.path, { offset: -1 })),
        describe(await attempt(files.small.path, { length: 1.5 })),
      ]
      // Nothing was sent by the failed calls; the connection works.
      await conn.write('ok:')
      const sent = await conn.sendFile(files.one.path)
      return [...results, sent]
    })
    const got = await fetch(s.port, '', true)
    t.deepEqual(got.data, Buffer.concat([Buffer.from('ok:'), files.one.data as Buffer]))
    const values = (await s.outcomes.next()).values as unknown[]
    t.deepEqual(values, [
      ['ENOENT', undefined, 'Error'],
      ['EISDIR', undefined, 'Error'],
      ['EBADF', undefined, 'Error'],
      ['ERR_OUT_OF_RANGE', 'offset', 'RangeError'],
      ['ERR_OUT_OF_RANGE', 'offset', 'RangeError'],
      ['ERR_OUT_OF_RANGE', 'length', 'RangeError'],
      ['ERR_OUT_OF_RANGE', 'length', 'RangeError'],
      ['ERR_OUT_OF_RANGE', 'offset', 'RangeError'],
      ['ERR_INVALID_ARG_TYPE', 'file', 'TypeError'],
      ['ERR_INVALID_ARG_TYPE', 'offset', 'TypeError'],
      ['ERR_OUT_OF_RANGE', 'offset', 'RangeError'],
      ['ERR_OUT_OF_RANGE', 'length', 'RangeError'],
      1,
    ])
    await s.server.shutdown()
    await until(() => fdCount() <= baseline, 3000, 'descriptors back to the baseline').catch(() => {})
    t.true(
      fdCount() <= baseline,
      `files opened for failed calls are closed: ${fdCount()} open, baseline ${baseline}`,
    )
  },
)

test.serial('EACCES for a file the server may not read', async (t) => {
  const sub = join(dir, 'private')
  mkdirSync(sub, { recursive: true })
  const path = join(sub, 'secret.bin')
  writeFileSync(path, 'secret')
  chmodSync(path, 0o000)
  t.teardown(() => chmodSync(path, 0o600))
  if (!isRoot) {
    const s = await fileServer(t, async (conn) => [await conn.sendFile(path)])
    const got = await fetch(s.port, '', true)
    t.is(got.bytes, 0)
    t.is(errCode((await s.outcomes.next()).error), 'EACCES')
    return
  }
  // Root reads anything: try as `nobody` in a child process, or skip.
  chmodSync(dir, 0o711)
  chmodSync(sub, 0o711)
  const run = await runFixture(
    [process.execPath, FIXTURE, JSON.stringify({ file: path })],
    { ...process.env },
    { uid: 65534, gid: 65534 },
  ).catch((e: unknown) => e as Error)
  if (run instanceof Error || run.status !== 0) {
    t.log(
      `skipped: running as root and a child as uid 65534 failed (${run instanceof Error ? run.message : run.stderr})`,
    )
    return t.pass()
  }
  t.is(run.out.code, 'EACCES')
  t.is(run.out.bytes, 0)
})

test.serial(
  'client gone mid-file: sendFile rejects with a code; the file the library opened is closed (no fd leak)',
  async (t) => {
    t.timeout(30_000)
    const s = await fileServer(t, async (conn) => [await conn.sendFile(files.big.path)])
    /** A client that reads 1 MiB of the 64 MiB file, then resets. */
    const vanish = async (): Promise<unknown> => {
      const socket = net.connect({ port: s.port, host: '127.0.0.1' })
      socket.on('error', () => {})
      let n = 0
      await within(
        new Promise<void>((resolve) => {
          socket.on('data', (c: Buffer) => {
            n += c.length
            if (n >= MiB && !socket.destroyed) {
              socket.resetAndDestroy()
              resolve()
            }
          })
        }),
        10_000,
        'first MiB',
      )
      await new Promise((resolve) => socket.once('close', resolve))
      return (await s.outcomes.next(5000, 'sendFile outcome')).error
    }
    const first = await vanish() // warm-up
    t.log(`sendFile rejected with ${String(errCode(first))}`)
    await until(() => s.server.activeConnections === 0, 3000, 'closed')
    await sleep(50)
    const baseline = fdCount()
    const counts: number[] = []
    for (let i = 0; i < 4; i++) {
      const e = await vanish()
      t.true(
        ['ECONNRESET', 'EPIPE'].includes(errCode(e) as string),
        `sendFile rejected with ${String(errCode(e))}`,
      )
      await until(() => s.server.activeConnections === 0, 3000, 'closed')
      await until(() => fdCount() <= baseline, 2000, 'descriptors back to the baseline').catch(() => {})
      counts.push(fdCount())
    }
    t.log(`baseline ${baseline}, after each: ${counts.join(', ')}`)
    for (const n of counts) t.true(n <= baseline, `${n} descriptors open, baseline ${baseline}`)
    const stats = s.server.stats().dataPath
    t.is(stats.filesSent, 0, 'an interrupted file is not counted as sent')
  },
)

// ---------------------------------------------------------------------------------------------
// Child processes: strace, and the TCPSERVER_ZERO_COPY=0 fallback

interface FixtureOut {
  bytes?: number
  hash?: string
  sent?: number
  code?: string
  dataPath?: { filesSent: number; fileBytesZeroCopy: number; fileBytesCopied: number }
}

type FixtureRun = JsonChildRun<FixtureOut>

const runFixture = (
  argv: string[],
  env: NodeJS.ProcessEnv,
  ids?: { uid?: number; gid?: number },
): Promise<FixtureRun> => runJsonChild<FixtureOut>(argv, env, { ids })

const envWithout = (): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  delete env.TCPSERVER_ZERO_COPY
  return env
}

test.serial(
  'strace: a child process sends the file with sendfile(2), and not with TCPSERVER_ZERO_COPY=0',
  async (t) => {
    if (process.platform !== 'linux') return t.pass('sendfile is Linux-only here')
    if (!hasStrace || !isRoot) {
      t.log(`skipped: ${hasStrace ? 'not root' : 'strace not installed'}`)
      return t.pass()
    }
    const summary = join(tmpdir(), `tcpserver-sendfile-strace-${process.pid}.txt`)
    t.teardown(() => rmSync(summary, { force: true }))
    const strace = ['strace', '-f', '-qq', '-e', 'trace=sendfile,sendfile64', '-c', '-o', summary]
    const f = files.small
    const want = await expected(f, 0, f.size)
    const zero = await runFixture(
      [...strace, process.execPath, FIXTURE, JSON.stringify({ file: f.path })],
      envWithout(),
    )
    t.is(zero.status, 0, zero.stderr)
    t.like(zero.out, {
      ...want,
      sent: f.size,
      dataPath: { filesSent: 1, fileBytesZeroCopy: f.size, fileBytesCopied: 0 },
    })
    const calls = straceCalls(summary, 'sendfile') + straceCalls(summary, 'sendfile64')
    t.log(`sendfile calls: ${calls}`)
    t.true(calls >= 1, `${calls} sendfile calls`)

    const copied = await runFixture(
      [...strace, process.execPath, FIXTURE, JSON.stringify({ file: f.path })],
      {
        ...envWithout(),
        TCPSERVER_ZERO_COPY: '0',
      },
    )
    t.is(copied.status, 0, copied.stderr)
    t.like(copied.out, { ...want, dataPath: { filesSent: 1, fileBytesZeroCopy: 0, fileBytesCopied: f.size } })
    t.is(
      straceCalls(summary, 'sendfile') + straceCalls(summary, 'sendfile64'),
      0,
      'no sendfile with TCPSERVER_ZERO_COPY=0',
    )
  },
)

test.serial(
  'TCPSERVER_ZERO_COPY=0 in the server process: identical bytes for whole files and ranges, counted as fileBytesCopied',
  async (t) => {
    t.timeout(40_000)
    const env = { ...process.env, TCPSERVER_ZERO_COPY: '0' }
    const cases: Array<{ file: TestFile; offset?: number; length?: number; byFd?: boolean }> = [
      { file: files.big },
      { file: files.big, offset: 5 * MiB + 1, length: 20 * MiB + 3, byFd: true },
      { file: files.small, offset: files.small.size },
      { file: files.one },
    ]
    for (const c of cases) {
      const offset = c.offset ?? 0
      const length = c.length ?? c.file.size - offset
      const run = await runFixture(
        [
          process.execPath,
          FIXTURE,
          JSON.stringify({ file: c.file.path, offset: c.offset, length: c.length, byFd: c.byFd }),
        ],
        env,
      )
      t.is(run.status, 0, run.stderr)
      t.like(run.out, {
        ...(await expected(c.file, offset, length)),
        sent: length,
        dataPath: { filesSent: 1, fileBytesZeroCopy: 0, fileBytesCopied: length },
      })
    }
  },
)
