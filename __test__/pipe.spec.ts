// conn.pipe(): a tcpserver proxy in front of node:net upstreams. Hashes both ways (64 MiB by
// default, 1 GiB with TCPSERVER_SLOW=1), half-close in each direction, `head` and unread
// input going first, the upstream refusing / resetting, the client vanishing, the pipe's own
// idleTimeout, descriptor counts, argument/busy errors, and proof that splice(2) moved the
// bytes (stats counters; strace on a child process when available) or the copy fallback did.
// Serial: the descriptor counts and the timing checks must not share the process with others.
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import {
  type Connection,
  connect as dial,
  type PipeOptions,
  type PipeResult,
  type Server,
} from 'tcpserver-rs'
import {
  channel,
  closedSocket,
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
const BIG = SLOW ? 1024 * MiB : 64 * MiB
/** What the test process itself uses: a TCPSERVER_ZERO_COPY=0 run must see the copy loop counted. */
const ZERO_COPY = process.platform === 'linux' && process.env.TCPSERVER_ZERO_COPY !== '0'
const FIXTURE = fileURLToPath(new URL('./fixtures/zero-copy-pipe.mjs', import.meta.url))
const hasStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0

const hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

// ---------------------------------------------------------------------------------------------
// node:net ends of the proxy

/** Resolves with the next value pushed; every wait is bounded. */

/** Sends `total` random bytes with backpressure; returns their hash. Rejects if the socket dies. */
async function pump(socket: net.Socket, total: number, end = true): Promise<string> {
  const h = createHash('sha256')
  for (let left = total; left > 0; ) {
    const chunk = randomBytes(Math.min(MiB, left))
    left -= chunk.length
    h.update(chunk)
    if (socket.destroyed)
      throw Object.assign(new Error('socket destroyed while sending'), { code: 'TEST_GONE' })
    if (!socket.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          socket.off('close', onClose)
          resolve()
        }
        const onClose = (): void => {
          socket.off('drain', onDrain)
          reject(Object.assign(new Error('socket closed while sending'), { code: 'TEST_GONE' }))
        }
        socket.once('drain', onDrain)
        socket.once('close', onClose)
      })
    }
  }
  if (end) socket.end()
  return h.digest('hex')
}

interface Drained {
  bytes: number
  hash: string
  /** An orderly FIN arrived (rather than a reset or a destroy). */
  ended: boolean
  data?: Buffer
}

/** Counts and hashes everything received until FIN or close; never rejects. */
function drain(socket: net.Socket, keep = false): Promise<Drained> {
  return new Promise((resolve) => {
    const h = createHash('sha256')
    const kept: Buffer[] = []
    let bytes = 0
    let settled = false
    socket.on('data', (c: Buffer) => {
      h.update(c)
      bytes += c.length
      if (keep) kept.push(c)
    })
    const finish = (ended: boolean): void => {
      if (settled) return
      settled = true
      resolve({ bytes, hash: h.digest('hex'), ended, ...(keep ? { data: Buffer.concat(kept) } : {}) })
    }
    socket.once('end', () => finish(true))
    socket.once('close', () => finish(false))
    socket.on('error', () => {})
  })
}

/**
 * Resolves once the proxy ended the client socket (FIN or reset; an allowHalfOpen socket stays
 * writable after a FIN, so it is destroyed then) and it is fully closed.
 */
function gone(socket: net.Socket): Promise<void> {
  socket.on('error', () => {})
  return new Promise((resolve) => {
    if (socket.closed) return resolve()
    socket.once('close', () => resolve())
    socket.once('end', () => socket.destroy())
  })
}

interface Upstream {
  port: number
  /** Each accepted upstream socket, in order. */
  sockets: ReturnType<typeof channel<net.Socket>>
}

/** A node:net upstream on 127.0.0.1 (allowHalfOpen: FIN one way keeps the other open). */
async function upstream(t: ExecutionContext, onSocket: (s: net.Socket) => void): Promise<Upstream> {
  const sockets = channel<net.Socket>(10_000)
  const all = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    all.add(s)
    s.on('error', () => {})
    s.once('close', () => all.delete(s))
    sockets.push(s)
    onSocket(s)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of all) s.destroy()
    server.close()
  })
  return { port: (server.address() as net.AddressInfo).port, sockets }
}

/** A port that refuses connections (was bound a moment ago, now closed). */
async function refusedPort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as net.AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** A node:net client with allowHalfOpen, connected. */
function client(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s))
    s.once('error', reject)
  })
}

// ---------------------------------------------------------------------------------------------
// The proxy under test

interface Outcome {
  result?: PipeResult
  error?: unknown
  /** `connect` failed (the pipe never started). */
  stage: 'connect' | 'pipe'
  /** ms from the pipe() call to its settling. */
  ms: number
}

interface Proxy {
  server: Server
  port: number
  outcomes: ReturnType<typeof channel<Outcome>>
  errors: unknown[]
}

interface ProxyOptions {
  pipe?: PipeOptions
  /** Runs between connecting upstream and pipe(). */
  before?: (conn: Connection, up: Connection) => Promise<void>
  idleTimeout?: number
}

/**
 * The handler of the issue, recording how each pipe ended:
 * `const up = await connect(addr); try { result = await conn.pipe(up) } finally { up.close() }`
 */
async function proxy(t: ExecutionContext, upPort: number, opts: ProxyOptions = {}): Promise<Proxy> {
  const outcomes = channel<Outcome>(10_000)
  const errors: unknown[] = []
  const server = await serve(t, {
    ...(opts.idleTimeout === undefined ? {} : { idleTimeout: opts.idleTimeout }),
    onError: (e) => errors.push(e),
    async handler(conn) {
      let up: Connection
      const t0 = Date.now()
      try {
        up = await dial(`127.0.0.1:${upPort}`)
      } catch (e) {
        outcomes.push({ error: e, stage: 'connect', ms: Date.now() - t0 })
        throw e
      }
      try {
        await opts.before?.(conn, up)
        const start = Date.now()
        try {
          const result = await conn.pipe(up, opts.pipe)
          outcomes.push({ result, stage: 'pipe', ms: Date.now() - start })
        } catch (e) {
          outcomes.push({ error: e, stage: 'pipe', ms: Date.now() - start })
          throw e
        }
      } finally {
        up.close()
      }
    },
  })
  return { server, port: portOf(server), outcomes, errors }
}

/** Codes a pipe may end with when a peer vanishes (reset seen on read, or on write). */
const PEER_GONE = ['ECONNRESET', 'EPIPE']

// ---------------------------------------------------------------------------------------------

test.serial(
  `${BIG / MiB} MiB each way through pipe(): SHA-256 equal both ways, result and stats count the bytes`,
  async (t) => {
    t.timeout(SLOW ? 110_000 : 30_000)
    let upSide: Promise<[string, Drained]> | undefined
    const up = await upstream(t, (s) => {
      upSide = Promise.all([pump(s, BIG), drain(s)])
    })
    const px = await proxy(t, up.port)
    const before = px.server.stats().dataPath
    const c = await client(px.port)
    const [sent, received] = await within(
      Promise.all([pump(c, BIG), drain(c)]),
      SLOW ? 100_000 : 25_000,
      'transfer',
    )
    await until(() => upSide !== undefined, 5000, 'upstream connection')
    const [upSent, upReceived] = await within(upSide as Promise<[string, Drained]>, 10_000, 'upstream side')
    t.is(upReceived.bytes, BIG)
    t.is(upReceived.hash, sent, 'upstream received exactly what the client sent')
    t.true(upReceived.ended, 'upstream saw the FIN')
    t.is(received.bytes, BIG)
    t.is(received.hash, upSent, 'client received exactly what the upstream sent')
    t.true(received.ended, 'client saw the FIN')
    const o = await px.outcomes.next(5000, 'pipe outcome')
    t.is(o.error, undefined)
    t.deepEqual(o.result, { bytesIn: BIG, bytesOut: BIG })
    const after = px.server.stats().dataPath
    t.is(after.bytesPiped - before.bytesPiped, 2 * BIG, 'bytesPiped counts both directions')
    if (ZERO_COPY) {
      t.is(after.pipesSpliced - before.pipesSpliced, 1, 'the pipe used splice(2)')
      t.is(after.pipesCopied - before.pipesCopied, 0)
    } else {
      t.is(after.pipesCopied - before.pipesCopied, 1, 'the copy loop ran')
    }
  },
)

test.serial(
  'half-close client → upstream: the upstream sees EOF, then its reply still reaches the client',
  async (t) => {
    const request = randomBytes(100 * 1024)
    let upSide: Promise<{ got: Drained; replied: string }> | undefined
    const up = await upstream(t, (s) => {
      upSide = (async () => {
        const got = await drain(s) // resolves at the client's FIN (passed on by the pipe)
        // Only now, with the request side closed, the upstream answers.
        const replied = await pump(s, MiB)
        return { got, replied }
      })()
    })
    const px = await proxy(t, up.port)
    const c = await client(px.port)
    const reply = drain(c)
    c.end(request)
    const r = await within(reply, 10_000, 'reply after half-close')
    await until(() => upSide !== undefined, 5000, 'upstream connection')
    const { got, replied } = await within(
      upSide as Promise<{ got: Drained; replied: string }>,
      5000,
      'upstream',
    )
    t.true(got.ended, 'upstream saw EOF')
    t.is(got.hash, hex(request))
    t.true(r.ended, 'client got FIN after the reply')
    t.is(r.bytes, MiB)
    t.is(r.hash, replied)
    const o = await px.outcomes.next(5000, 'pipe outcome')
    t.deepEqual(o.result, { bytesIn: request.length, bytesOut: MiB })
  },
)

test.serial(
  'half-close upstream → client: the client sees EOF and can still send everything upstream',
  async (t) => {
    const greeting = randomBytes(256 * 1024)
    let upGot: Promise<Drained> | undefined
    const up = await upstream(t, (s) => {
      s.end(greeting) // upstream is done talking at once; it keeps reading
      upGot = drain(s)
    })
    const px = await proxy(t, up.port)
    const c = await client(px.port)
    const fromUp = await within(drain(c), 10_000, 'greeting + FIN')
    t.true(fromUp.ended, 'client saw the upstream FIN')
    t.is(fromUp.hash, hex(greeting))
    t.false(c.destroyed, 'client socket still open for writing')
    const sent = await within(pump(c, MiB), 10_000, 'client sending after EOF')
    await until(() => upGot !== undefined, 5000, 'upstream connection')
    const got = await within(upGot as Promise<Drained>, 10_000, 'upstream receiving')
    t.true(got.ended)
    t.is(got.bytes, MiB)
    t.is(got.hash, sent)
    const o = await px.outcomes.next(5000, 'pipe outcome')
    t.deepEqual(o.result, { bytesIn: MiB, bytesOut: greeting.length })
  },
)

test.serial(
  'head goes first, then input the handler received but never read, then the rest: nothing lost, order kept',
  async (t) => {
    const head = Buffer.from('HEAD\r\n')
    // More than the 64 KiB high-water mark: part waits in the Connection, part in the kernel.
    const prefix = randomBytes(MiB)
    const suffix = randomBytes(MiB)
    const greeting = Buffer.from('GREETING\n')
    const up = await upstream(t, (s) => {
      // The upstream speaks first, before the pipe starts: that unread input must go first too.
      s.write(greeting)
      void drain(s).then((d) => s.end(`${d.bytes} ${d.hash}`))
    })
    const prefixSeen = channel<true>(10_000)
    const px = await proxy(t, up.port, {
      pipe: { head },
      async before() {
        // The client sent the prefix right after connecting; let it arrive (unread) here, and
        // the upstream's greeting arrive (unread) on `up`.
        prefixSeen.push(true)
        await sleep(300)
      },
    })
    const c = await client(px.port)
    const received = drain(c, true)
    c.write(prefix)
    await prefixSeen.next(5000, 'handler start')
    // The greeting only reaches the client through the pipe: once seen, the pipe runs.
    await until(() => c.bytesRead >= greeting.length, 5000, 'greeting through the pipe')
    c.end(suffix)
    const r = await within(received, 10_000, 'summary')
    const all = Buffer.concat([head, prefix, suffix])
    t.is(r.data?.toString('latin1'), `${greeting.toString('latin1')}${all.length} ${hex(all)}`)
    const o = await px.outcomes.next(5000, 'pipe outcome')
    t.deepEqual(o.result, {
      bytesIn: all.length,
      bytesOut: (r.data as Buffer).length,
    })
  },
)

test.serial(
  'input and FIN that arrived before pipe() (both sides) are forwarded, and the FIN passed on',
  async (t) => {
    const request = randomBytes(200 * 1024)
    const greeting = randomBytes(10 * 1024)
    let upGot: Promise<Drained> | undefined
    const up = await upstream(t, (s) => {
      s.end(greeting) // upstream: everything and FIN at once, before the pipe starts
      upGot = drain(s)
    })
    const px = await proxy(t, up.port, {
      async before() {
        await sleep(300) // the client's request and FIN, and the upstream's, arrive meanwhile
      },
    })
    const c = await client(px.port)
    const received = drain(c)
    c.end(request)
    const r = await within(received, 10_000, 'greeting and FIN')
    t.true(r.ended)
    t.is(r.hash, hex(greeting))
    await until(() => upGot !== undefined, 5000, 'upstream connection')
    const got = await within(upGot as Promise<Drained>, 5000, 'request and FIN')
    t.true(got.ended)
    t.is(got.hash, hex(request))
    const o = await px.outcomes.next(5000, 'pipe outcome')
    t.deepEqual(o.result, { bytesIn: request.length, bytesOut: greeting.length })
  },
)

test.serial(
  '8 concurrent pipes each carry their own bytes both ways (pooled pipe pairs never mix streams)',
  async (t) => {
    const n = 8
    const size = 4 * MiB + 17
    const upSides: Array<Promise<[string, Drained]>> = []
    const up = await upstream(t, (s) => {
      upSides.push(Promise.all([pump(s, size), drain(s)]))
    })
    const px = await proxy(t, up.port)
    const clients = await Promise.all(Array.from({ length: n }, () => client(px.port)))
    const results = await within(
      Promise.all(clients.map((c) => Promise.all([pump(c, size), drain(c)]))),
      30_000,
      'concurrent transfers',
    )
    await until(() => upSides.length === n, 5000, 'upstream connections')
    const ups = await within(Promise.all(upSides), 10_000, 'upstream sides')
    // Upstream connections are accepted in some order: match the streams by hash (sorted, as
    // ava compares Sets in insertion order).
    const sorted = (hashes: string[]): string[] => [...hashes].sort()
    const sentByClients = sorted(results.map(([sent]) => sent))
    t.is(new Set(sentByClients).size, n)
    t.deepEqual(
      sorted(ups.map(([, got]) => got.hash)),
      sentByClients,
      'each client stream arrived whole at one upstream',
    )
    t.deepEqual(
      sorted(results.map(([, got]) => got.hash)),
      sorted(ups.map(([sent]) => sent)),
      'each upstream stream arrived whole at one client',
    )
    for (let i = 0; i < n; i++) {
      const o = await px.outcomes.next(5000, 'pipe outcome')
      t.deepEqual(o.result, { bytesIn: size, bytesOut: size })
    }
  },
)

test.serial(
  'upstream refused: connect() rejects ECONNREFUSED and the client connection is closed, no hang',
  async (t) => {
    const px = await proxy(t, await refusedPort())
    const c = await client(px.port)
    const r = drain(c)
    c.write('hello')
    await within(gone(c), 5000, 'client closed by the proxy')
    await r
    const o = await px.outcomes.next(2000, 'connect outcome')
    t.is(o.stage, 'connect')
    t.is(errCode(o.error), 'ECONNREFUSED')
    await until(() => px.errors.length > 0, 2000, 'onError')
    t.is(errCode(px.errors[0]), 'ECONNREFUSED')
    await until(() => px.server.activeConnections === 0, 3000, 'no open connections')
  },
)

test.serial('upstream resets mid-stream: pipe() rejects with a code and the client is closed', async (t) => {
  const up = await upstream(t, (s) => {
    let n = 0
    s.on('data', (c: Buffer) => {
      n += c.length
      if (n >= MiB && !s.destroyed) s.resetAndDestroy()
    })
  })
  const px = await proxy(t, up.port)
  const c = await client(px.port)
  const sending = pump(c, BIG).catch((e: unknown) => e)
  await within(gone(c), 10_000, 'client closed after the upstream reset')
  t.is(
    errCode(await within(sending, 5000, 'client sender')),
    'TEST_GONE',
    'the client could not send everything',
  )
  const o = await px.outcomes.next(5000, 'pipe outcome')
  t.is(o.stage, 'pipe')
  t.log(`pipe rejected with ${String(errCode(o.error))}`)
  t.true(PEER_GONE.includes(errCode(o.error) as string), `pipe rejected with ${String(errCode(o.error))}`)
  await until(() => px.server.activeConnections === 0, 3000, 'no open connections')
})

test.serial(
  'client gone mid-stream (reset): pipe() rejects with a code and the upstream is closed',
  async (t) => {
    let upSocket: net.Socket | undefined
    const up = await upstream(t, (s) => {
      upSocket = s
      pump(s, BIG).catch(() => {})
    })
    const px = await proxy(t, up.port)
    const c = await client(px.port)
    let n = 0
    await within(
      new Promise<void>((resolve) => {
        c.on('data', (chunk: Buffer) => {
          n += chunk.length
          if (n >= MiB && !c.destroyed) {
            c.resetAndDestroy()
            resolve()
          }
        })
      }),
      10_000,
      'first MiB',
    )
    await until(() => upSocket !== undefined, 2000, 'upstream socket')
    await within(closedSocket(upSocket as net.Socket), 5000, 'upstream closed after the client vanished')
    const o = await px.outcomes.next(5000, 'pipe outcome')
    t.is(o.stage, 'pipe')
    t.log(`pipe rejected with ${String(errCode(o.error))}`)
    t.true(PEER_GONE.includes(errCode(o.error) as string), `pipe rejected with ${String(errCode(o.error))}`)
    await until(() => px.server.activeConnections === 0, 3000, 'no open connections')
  },
)

test.serial(
  'pipe idleTimeout ends a stalled pipe with ERR_TCPSERVER_IDLE_TIMEOUT, not a busy one',
  async (t) => {
    let upSocket: net.Socket | undefined
    const up = await upstream(t, (s) => {
      upSocket = s
      void drain(s).then(() => s.end())
    })
    const px = await proxy(t, up.port, { pipe: { idleTimeout: 200 } })

    // Busy one way only (client → upstream every 50 ms for 800 ms): never idle.
    const busy = await client(px.port)
    for (let i = 0; i < 16; i++) {
      busy.write(randomBytes(1000))
      await sleep(50)
    }
    const busyUp = upSocket as net.Socket
    const busyDrained = drain(busy)
    busy.end()
    const ok = await px.outcomes.next(5000, 'busy pipe outcome')
    t.is(errCode(ok.error), undefined, 'a pipe moving bytes is not idle')
    t.deepEqual(ok.result, { bytesIn: 16_000, bytesOut: 0 })
    await within(closedSocket(busyUp), 5000, 'busy upstream closed')
    await busyDrained

    // Stalled: nothing moves after the first bytes.
    const stalled = await client(px.port)
    stalled.write('x')
    const stalledClosed = within(gone(stalled), 5000, 'stalled client closed')
    const o = await px.outcomes.next(5000, 'stalled pipe outcome')
    t.is(errCode(o.error), 'ERR_TCPSERVER_IDLE_TIMEOUT')
    t.true(o.ms >= 190, `ended after ${o.ms} ms (>= the 200 ms timeout)`)
    t.true(o.ms < 2000, `ended after ${o.ms} ms (well before 2 s)`)
    await stalledClosed
    await within(closedSocket(upSocket as net.Socket), 5000, 'stalled upstream closed')
  },
)

test.serial(
  'pipe() while already piping, or with a read() pending, rejects ERR_TCPSERVER_BUSY; the pipe is unharmed',
  async (t) => {
    const codes = channel<unknown[]>(10_000)
    const ready = channel<true>(10_000)
    const outcomes = channel<PipeResult>(10_000)
    const up = await upstream(t, (s) => {
      void drain(s).then((d) => s.end(`${d.bytes} ${d.hash}`))
    })
    const server = await serve(t, {
      async handler(conn) {
        const upConn = await dial(`127.0.0.1:${up.port}`)
        try {
          // A read() that is still pending (the client sends only after these) blocks a pipe on
          // either side.
          const pending = conn.read()
          const e1 = await conn.pipe(upConn).catch((e: unknown) => e)
          const e2 = await upConn.pipe(conn).catch((e: unknown) => e)
          ready.push(true)
          const first = await within(pending, 5000, 'pending read')
          const piping = conn.pipe(upConn)
          piping.catch(() => {}) // awaited below, unless an assertion step throws first
          // Right away (still pausing), from a third connection, and once piping.
          const e3 = await conn.pipe(upConn).catch((e: unknown) => e)
          const other = await dial(`127.0.0.1:${up.port}`)
          const e4 = await other.pipe(upConn).catch((e: unknown) => e)
          other.close()
          await sleep(50)
          const e5 = await conn.pipe(upConn).catch((e: unknown) => e)
          const e6 = await upConn.pipe(conn).catch((e: unknown) => e)
          codes.push([
            errCode(e1),
            errCode(e2),
            first?.toString(),
            errCode(e3),
            errCode(e4),
            errCode(e5),
            errCode(e6),
          ])
          outcomes.push(await piping)
        } finally {
          upConn.close()
        }
      },
    })
    const c = await client(portOf(server))
    const reply = drain(c, true)
    await ready.next(5000, 'handler tried pipe() with a read() pending')
    c.write('first')
    const seen = await codes.next(5000, 'busy codes')
    t.deepEqual(seen, [
      'ERR_TCPSERVER_BUSY',
      'ERR_TCPSERVER_BUSY',
      'first',
      'ERR_TCPSERVER_BUSY',
      'ERR_TCPSERVER_BUSY',
      'ERR_TCPSERVER_BUSY',
      'ERR_TCPSERVER_BUSY',
    ])
    const rest = randomBytes(256 * 1024)
    c.end(rest)
    const r = await within(reply, 5000, 'reply')
    t.is(
      r.data?.toString(),
      `${rest.length} ${hex(rest)}`,
      'the pipe forwarded everything after the failed calls',
    )
    t.deepEqual(await outcomes.next(5000, 'pipe outcome'), {
      bytesIn: rest.length,
      bytesOut: (r.data as Buffer).length,
    })
  },
)

test.serial(
  "pipe(self), pipe(non-connection) and bad options reject with Node's argument codes; a valid pipe still works",
  async (t) => {
    const codes = channel<unknown[]>(10_000)
    const up = await upstream(t, (s) => {
      void drain(s).then((d) => s.end(`${d.bytes} ${d.hash}`))
    })
    const px = await proxy(t, up.port, {
      async before(conn, upConn) {
        const tries: Array<() => Promise<unknown>> = [
          () => conn.pipe(conn),
          () => conn.pipe({} as Connection),
          () => conn.pipe(null as unknown as Connection),
          () => conn.pipe(upConn, { head: 'text' as unknown as Uint8Array }),
          () => conn.pipe(upConn, { idleTimeout: '1' as unknown as number }),
        ]
        const seen: unknown[] = []
        for (const f of tries) {
          const e = await f().then(
            () => 'resolved',
            (err: unknown) => err,
          )
          seen.push(errCode(e), e instanceof TypeError || e instanceof RangeError)
        }
        codes.push(seen)
      },
    })
    const c = await client(px.port)
    const reply = drain(c, true)
    const seen = await codes.next(5000, 'argument errors')
    t.deepEqual(
      seen,
      [
        ['ERR_INVALID_ARG_VALUE', true],
        ['ERR_INVALID_ARG_TYPE', true],
        ['ERR_INVALID_ARG_TYPE', true],
        ['ERR_INVALID_ARG_TYPE', true],
        ['ERR_INVALID_ARG_TYPE', true],
      ].flat(),
    )
    c.end('after')
    const r = await within(reply, 5000, 'reply')
    t.is(r.data?.toString(), `5 ${hex(Buffer.from('after'))}`)
  },
)

test.serial(
  'descriptors return to the baseline after pipes that succeed, are refused, reset or time out',
  async (t) => {
    t.timeout(40_000)
    let mode: 'echo' | 'reset' | 'stall' = 'echo'
    const up = await upstream(t, (s) => {
      if (mode === 'echo') s.pipe(s)
      else if (mode === 'reset') {
        s.once('data', () => s.resetAndDestroy())
      } else void drain(s).then(() => s.end())
    })
    const px = await proxy(t, up.port, { pipe: { idleTimeout: 150 } })
    const refused = await proxy(t, await refusedPort())

    const round = async (): Promise<void> => {
      // Success (both directions, so both pooled pipe pairs are used).
      mode = 'echo'
      let c = await client(px.port)
      const echoed = drain(c)
      c.end(randomBytes(300 * 1024))
      t.is((await within(echoed, 5000, 'echo')).bytes, 300 * 1024)
      t.truthy((await px.outcomes.next(5000, 'echo outcome')).result)
      await within(gone(c), 5000, 'echo client closed')
      // Refused upstream.
      c = await client(refused.port)
      await within(gone(c), 5000, 'refused client closed')
      t.is(errCode((await refused.outcomes.next(5000, 'refused outcome')).error), 'ECONNREFUSED')
      // Upstream reset.
      mode = 'reset'
      c = await client(px.port)
      c.write(randomBytes(64 * 1024))
      await within(gone(c), 5000, 'reset client closed')
      t.true(PEER_GONE.includes(errCode((await px.outcomes.next(5000, 'reset outcome')).error) as string))
      // Client reset.
      mode = 'stall'
      c = await client(px.port)
      c.write('x')
      await sleep(50)
      c.resetAndDestroy()
      const vanished = await px.outcomes.next(5000, 'client-reset outcome')
      t.truthy(errCode(vanished.error))
      // Idle timeout.
      c = await client(px.port)
      c.write('x')
      await within(gone(c), 5000, 'idle client closed')
      t.is(errCode((await px.outcomes.next(5000, 'idle outcome')).error), 'ERR_TCPSERVER_IDLE_TIMEOUT')
      await until(
        () => px.server.activeConnections === 0 && refused.server.activeConnections === 0,
        5000,
        'all closed',
      )
    }

    await round() // warm-up: the hub, the runtime and the pipe pool exist from here on
    await sleep(100)
    const baseline = fdCount()
    // Pooled pipe pairs (2 descriptors each, one pair per direction) may be created again after
    // a failed pipe dropped its pairs; nothing else may stay open.
    const slack = 4
    const counts: number[] = []
    for (let i = 0; i < 4; i++) {
      await round()
      try {
        await until(() => fdCount() <= baseline + slack, 3000, 'descriptors back to the baseline')
      } catch {
        // reported by the assertion below
      }
      counts.push(fdCount())
    }
    t.log(`baseline ${baseline}, after each round: ${counts.join(', ')}`)
    for (const n of counts) t.true(n <= baseline + slack, `${n} descriptors open, baseline ${baseline}`)
    t.true((counts.at(-1) as number) <= (counts[0] as number) + 2, 'no growth across rounds')
  },
)

// ---------------------------------------------------------------------------------------------
// Child processes: strace, and the TCPSERVER_ZERO_COPY=0 fallback

interface FixtureOut {
  clientSent?: string
  clientReceived?: { bytes: number; hash: string }
  upstreamSent?: string
  upstreamReceived?: { bytes: number; hash: string }
  result?: PipeResult | null
  dataPath?: { pipesSpliced: number; pipesCopied: number; bytesPiped: number }
  code?: string
}

type FixtureRun = JsonChildRun<FixtureOut>

const runFixture = (argv: string[], env: NodeJS.ProcessEnv): Promise<FixtureRun> =>
  runJsonChild<FixtureOut>(argv, env)

function assertHashes(t: ExecutionContext, run: FixtureRun, bytes: number): void {
  t.is(run.status, 0, run.stderr)
  const o = run.out
  t.is(o.code, undefined)
  t.is(o.upstreamReceived?.bytes, bytes)
  t.is(o.upstreamReceived?.hash, o.clientSent)
  t.is(o.clientReceived?.bytes, bytes)
  t.is(o.clientReceived?.hash, o.upstreamSent)
  t.deepEqual(o.result, { bytesIn: bytes, bytesOut: bytes })
  t.is(o.dataPath?.bytesPiped, 2 * bytes)
}

test.serial(
  'strace: the proxy in a child process moves the bytes with splice(2), and not with TCPSERVER_ZERO_COPY=0',
  async (t) => {
    if (process.platform !== 'linux') return t.pass('splice is Linux-only')
    if (!hasStrace || !isRoot) {
      t.log(`skipped: ${hasStrace ? 'not root' : 'strace not installed'}`)
      return t.pass()
    }
    const bytes = 4 * MiB
    const summary = join(tmpdir(), `tcpserver-pipe-strace-${process.pid}.txt`)
    t.teardown(() => rmSync(summary, { force: true }))
    const env = { ...process.env }
    delete env.TCPSERVER_ZERO_COPY
    const strace = ['strace', '-f', '-qq', '-e', 'trace=splice', '-c', '-o', summary]
    const spliced = await runFixture([...strace, process.execPath, FIXTURE, JSON.stringify({ bytes })], env)
    assertHashes(t, spliced, bytes)
    t.is(spliced.out.dataPath?.pipesSpliced, 1)
    const calls = straceCalls(summary, 'splice')
    t.log(`splice calls: ${calls}`)
    // Socket → pipe and pipe → socket, for 8 MiB through pipes of at most 256 KiB.
    t.true(calls >= 2 * Math.ceil((2 * bytes) / (256 * 1024)), `${calls} splice calls`)

    const copied = await runFixture([...strace, process.execPath, FIXTURE, JSON.stringify({ bytes })], {
      ...env,
      TCPSERVER_ZERO_COPY: '0',
    })
    assertHashes(t, copied, bytes)
    t.is(straceCalls(summary, 'splice'), 0, 'no splice with TCPSERVER_ZERO_COPY=0')
  },
)

test.serial(
  'TCPSERVER_ZERO_COPY=0 in the server process: the copy loop pipes the same bytes and counts pipesCopied',
  async (t) => {
    const bytes = 16 * MiB + 12_345
    const run = await runFixture([process.execPath, FIXTURE, JSON.stringify({ bytes })], {
      ...process.env,
      TCPSERVER_ZERO_COPY: '0',
    })
    assertHashes(t, run, bytes)
    t.is(run.out.dataPath?.pipesCopied, 1)
    t.is(run.out.dataPath?.pipesSpliced, 0)
  },
)

test.serial(
  'a server idleTimeout does not end a pipe that is busy in one direction only (client → upstream)',
  async (t) => {
    // Regression: activity used to be counted on the destination only, so a connection that
    // only *sent* through the pipe looked idle to its own idle timer.
    let received = 0
    const up = await upstream(t, (s) => {
      s.on('data', (d: Buffer) => {
        received += d.length
      })
      s.on('end', () => s.end())
    })
    const p = await proxy(t, up.port, { idleTimeout: 300 })
    const c = await client(p.port)
    const closed = closedSocket(c)
    for (let i = 0; i < 24; i++) {
      c.write(Buffer.alloc(1000, i))
      await sleep(50)
    }
    c.end()
    const outcome = await p.outcomes.next(5000, 'the pipe to end')
    t.falsy(outcome.error, `pipe ended with ${errCode(outcome.error)} after ${outcome.ms} ms`)
    t.deepEqual(outcome.result, { bytesIn: 24_000, bytesOut: 0 })
    t.is(received, 24_000)
    await within(closed, 5000, 'client close')
  },
)
