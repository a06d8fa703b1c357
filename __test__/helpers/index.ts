// Shared helpers for the ava specs: servers that always shut down, real node:net clients,
// hashes, and bounded waits (every wait has a deadline; nothing can hang a test run).
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'
import { type ListenOptions, listen, type Server } from 'tcpserver-rs'

/** Starts a server on 127.0.0.1:0 (unless `address` is given) and halts it when the test ends. */
export async function serve(t: ExecutionContext, options: Partial<ListenOptions>): Promise<Server> {
  const server = await listen({ address: '127.0.0.1:0', ...options } as ListenOptions)
  t.teardown(async () => {
    await server.halt()
  })
  return server
}

/** The first bound port. */
export const portOf = (server: Server): number => (server.addresses[0] as { port: number }).port

/** An error's `code`, or `undefined` (for assertions on anything a promise rejected with). */
export const errCode = (e: unknown): unknown => (e as { code?: unknown } | null)?.code

/**
 * Resolves when the socket has closed (orderly or not); errors on it are expected. With
 * `resume`, unread data is drained so that the peer's FIN is seen.
 */
export function closedSocket(socket: net.Socket, { resume = false } = {}): Promise<void> {
  socket.on('error', () => {})
  if (resume) socket.resume()
  return new Promise((resolve) => {
    if (socket.closed) resolve()
    else socket.once('close', () => resolve())
  })
}

/** A connected node:net client. */
export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host }, () => resolve(socket))
    socket.once('error', reject)
  })
}

/** A promise with its resolve/reject exposed, so a handler can report to the test. */
export function deferred<T = void>(): {
  promise: Promise<T>
  resolve: (v: T) => void
  reject: (e: unknown) => void
} {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** A client with `allowHalfOpen`: it keeps writing after the server's FIN. */
export function connectHalfOpen(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, allowHalfOpen: true }, () => resolve(socket))
    socket.once('error', reject)
  })
}

/** Everything the socket receives until the peer's FIN (or close). */
export function collect(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.once('end', () => resolve(Buffer.concat(chunks)))
    socket.once('close', () => resolve(Buffer.concat(chunks)))
    socket.once('error', reject)
  })
}

/** Sends `data`, half-closes, and returns everything received until the server closes. */
export async function roundTrip(port: number, data: Buffer | string, host = '127.0.0.1'): Promise<Buffer> {
  const socket = await connect(port, host)
  const received = collect(socket)
  socket.end(data)
  return received
}

/**
 * A node:tls client trusting the test CA (`localhost`, unless `options` say otherwise): sends
 * `data` once the handshake is done, half-closes, and returns everything received until the
 * server closes.
 */
export function tlsRoundTrip(
  port: number,
  data: Buffer | string,
  options: tls.ConnectionOptions = {},
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const socket = tls.connect({
      port,
      host: '127.0.0.1',
      ca: readFileSync(new URL('../fixtures/tls/ca.crt', import.meta.url)),
      servername: 'localhost',
      ...options,
    })
    const chunks: Buffer[] = []
    socket.on('data', (d: Buffer) => chunks.push(d))
    socket.on('secureConnect', () => socket.end(data))
    socket.on('close', () => resolve(Buffer.concat(chunks)))
    socket.on('error', reject)
  })
}

export const sha256 = (data: Buffer | Uint8Array): string => createHash('sha256').update(data).digest('hex')

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `check` until it returns true, failing after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(5)
  }
}

/** Rejects if `p` takes longer than `ms`. */
export function within<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

/** Open file descriptors of this process. */
export const fdCount = (): number => readdirSync('/proc/self/fd').length

/** Resident set size of this process, bytes. */
export function rss(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

/** True when the suite runs inside its own network namespace (see scripts/test-js.sh). */
export const inPrivateNetns = process.env.TCPSERVER_TEST_NETNS === '1'

export const isRoot = process.getuid?.() === 0

/** A queue with waiting: `push(v)` from callbacks, `await next()` in the test (bounded). */
export function channel<T>(defaultMs = 5000): {
  push(v: T): void
  next(ms?: number, what?: string): Promise<T>
} {
  const items: T[] = []
  const waiters: Array<(v: T) => void> = []
  return {
    push(v) {
      const w = waiters.shift()
      if (w) w(v)
      else items.push(v)
    },
    next(ms = defaultMs, what = 'next value') {
      if (items.length > 0) return Promise.resolve(items.shift() as T)
      return within(new Promise<T>((resolve) => waiters.push(resolve)), ms, what)
    },
  }
}

/** Calls of `syscall` in an `strace -c` summary file. */
export function straceCalls(file: string, syscall: string): number {
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const cols = line.trim().split(/\s+/)
    if (cols.at(-1) === syscall) return Number(cols[3])
  }
  return 0
}

/** A child process's exit status, the JSON object of its last stdout line, and its stderr. */
export interface JsonChildRun<T> {
  status: number | null
  out: T
  stderr: string
}

/**
 * Runs `argv` (optionally as another user: `ids`) to its exit, killed after `ms`, and parses the
 * last line it printed as JSON: the fixtures report that way.
 */
export function runJsonChild<T>(
  argv: string[],
  env: NodeJS.ProcessEnv,
  { ids = {}, ms = 25_000 }: { ids?: { uid?: number; gid?: number }; ms?: number } = {},
): Promise<JsonChildRun<T>> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0] as string, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'], ...ids })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`fixture did not exit within ${ms} ms: ${stderr}`))
    }, ms)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.once('close', (status) => {
      clearTimeout(timer)
      const line = stdout.trim().split('\n').at(-1) ?? ''
      try {
        resolve({ status, out: JSON.parse(line) as T, stderr })
      } catch {
        reject(new Error(`fixture printed no JSON (status ${status}): ${stdout} ${stderr}`))
      }
    })
  })
}

/**
 * A loopback listener whose accept queue is full: the kernel drops further SYNs, so a connect
 * to it hangs until a timeout. Resolves its port, or null if SYNs are not dropped here.
 */
export async function blackHole(t: ExecutionContext): Promise<number | null> {
  const held: Array<() => void> = []
  const server = await listen({
    address: '127.0.0.1:0',
    loops: 1,
    backlog: 1,
    maxConnections: 1,
    handler: () => new Promise<void>((resolve) => held.push(resolve)),
  })
  const port = (server.addresses[0] as { port: number }).port
  const sockets: net.Socket[] = []
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    for (const r of held) r()
    await server.halt()
  })
  // A SYN can also be dropped while the accept loop is still taking connections off the
  // queue; full means two unanswered connects in a row, the second after a pause.
  let missed = false
  for (let i = 0; i < 16; i++) {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    sockets.push(s)
    const connected = await Promise.race([
      new Promise<boolean>((resolve) => s.once('connect', () => resolve(true))),
      sleep(300).then(() => false),
    ])
    if (connected) missed = false
    else if (missed) return port
    else {
      missed = true
      await sleep(100)
    }
  }
  return null
}

const LISTEN_CHILD = fileURLToPath(new URL('../fixtures/listen-child.mjs', import.meta.url))

/** listen() with `options` in another process: `{ ok, port }` or `{ code }`. */
export function listenInChild(options: object): Promise<{ ok?: boolean; port?: number; code?: string }> {
  const p = spawn(process.execPath, [LISTEN_CHILD, JSON.stringify(options)])
  let out = ''
  p.stdout.on('data', (d) => {
    out += d
  })
  return within(
    new Promise((resolve) => p.once('exit', () => resolve(JSON.parse(out.split('\n')[0] || '{}')))),
    10_000,
    'child process',
  )
}

/** Collects process-wide unhandled rejections until the test ends (use in serial tests). */
export function unhandledRejections(t: ExecutionContext): unknown[] {
  const seen: unknown[] = []
  const onUnhandled = (reason: unknown): void => {
    seen.push(reason)
  }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => {
    process.off('unhandledRejection', onUnhandled)
  })
  return seen
}
