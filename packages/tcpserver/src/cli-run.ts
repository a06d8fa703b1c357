// Runs a `tcpserver` subcommand: starts the server through the public API, prints the
// "listening on" line, stats lines (timer and SIGUSR1), and shuts down gracefully on
// SIGINT/SIGTERM with a deadline (a second signal closes everything at once).
import type { CommandName, CommonOptions } from './cli-args.js'
import { buildResponses, HttpResponder } from './cli-http.js'
// Only the public API, like any user of the package.
import {
  type AddressInfo,
  type Connection,
  type Handler,
  isTcpServerError,
  listen,
  type Server,
} from './index.js'

/** Byte and request counters the handlers keep (the server counts connections). */
interface Counters {
  bytesIn: number
  bytesOut: number
  requests: number
}

/** Where the CLI writes: stdout for its output lines, stderr for errors. */
export interface Output {
  out(line: string): void
  err(line: string): void
}

const stdio: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}

/** `127.0.0.1:7000`, `[::1]:7000`. */
export function formatAddress(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
}

function echoHandler(c: Counters): Handler {
  return async (conn: Connection) => {
    for await (const chunk of conn) {
      c.bytesIn += chunk.length
      await conn.write(chunk)
      c.bytesOut += chunk.length
    }
  }
}

function httpHandler(c: Counters, bodySize: number): Handler {
  const responses = buildResponses(bodySize)
  return async (conn: Connection) => {
    const responder = new HttpResponder(responses)
    let answered = 0
    for await (const chunk of conn) {
      c.bytesIn += chunk.length
      const out = responder.feed(chunk)
      c.requests += responder.requests - answered
      answered = responder.requests
      if (out !== null) {
        await conn.write(out)
        c.bytesOut += out.length
      }
      if (responder.close) return // returning closes the connection once `out` is flushed
    }
  }
}

/** The stats line: totals, then rates over the time since the previous line. */
class StatsReporter {
  readonly #server: Server
  readonly #counters: Counters
  readonly #http: boolean
  #at = performance.now()
  #accepted = 0
  #bytesIn = 0
  #bytesOut = 0
  #requests = 0

  constructor(server: Server, counters: Counters, http: boolean) {
    this.#server = server
    this.#counters = counters
    this.#http = http
  }

  line(): string {
    const now = performance.now()
    const seconds = Math.max((now - this.#at) / 1000, 1e-3)
    const s = this.#server.stats()
    const c = this.#counters
    const rate = (n: number): string => (n / seconds).toFixed(1)
    const parts = [
      `accepted=${s.accepted}`,
      `active=${s.active}`,
      `bytes_in=${c.bytesIn}`,
      `bytes_out=${c.bytesOut}`,
      ...(this.#http ? [`requests=${c.requests}`] : []),
      `conn_per_s=${rate(s.accepted - this.#accepted)}`,
      `in_bytes_per_s=${rate(c.bytesIn - this.#bytesIn)}`,
      `out_bytes_per_s=${rate(c.bytesOut - this.#bytesOut)}`,
      ...(this.#http ? [`req_per_s=${rate(c.requests - this.#requests)}`] : []),
      `interval_s=${seconds.toFixed(1)}`,
    ]
    const errors = Object.entries(s.acceptErrors)
    if (errors.length > 0) parts.push(`accept_errors=${errors.map(([k, v]) => `${k}:${v}`).join(',')}`)
    this.#at = now
    this.#accepted = s.accepted
    this.#bytesIn = c.bytesIn
    this.#bytesOut = c.bytesOut
    this.#requests = c.requests
    return `tcpserver stats ${parts.join(' ')}`
  }
}

/**
 * Starts `command` with `options` and runs until a signal shuts it down.
 *
 * @returns the exit status: 0 after a shutdown, 1 when the server could not start (the error's
 * `code` is printed, e.g. `EADDRINUSE` or `ERR_INVALID_ARG_VALUE`).
 */
export async function runServer(
  command: CommandName,
  options: CommonOptions,
  io: Output = stdio,
): Promise<number> {
  const counters: Counters = { bytesIn: 0, bytesOut: 0, requests: 0 }
  let server: Server
  try {
    server = await listen({
      address: options.listen,
      handler: command === 'http' ? httpHandler(counters, options.bodySize) : echoHandler(counters),
      loops: options.loops,
      reusePort: options.reusePort,
      fastOpen: options.fastOpen,
      deferAccept: options.deferAccept,
      maxConnections: options.maxConnections,
    })
  } catch (e) {
    if (!isTcpServerError(e)) throw e
    io.err(`tcpserver: error [${e.code}]: ${e.message}`)
    return 1
  }
  const stats = new StatsReporter(server, counters, command === 'http')
  const printStats = (): void => io.out(stats.line())
  const timer = options.stats > 0 ? setInterval(printStats, options.stats * 1000) : undefined

  let stopping = false
  let closed = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closed) return // on the way out: a late Ctrl-C must not turn exit status 0 into a kill
    if (!stopping) {
      stopping = true
      io.out(`tcpserver: ${signal}: shutting down (deadline ${options.shutdownTimeout} ms)`)
      void server.shutdown({ timeout: options.shutdownTimeout })
    } else {
      io.out(`tcpserver: ${signal} again: closing every connection now`)
      void server.halt()
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // SIGUSR1 would otherwise start the inspector; Windows has no such signal. The handlers stay
  // installed until the process exits (signal watchers do not keep it alive).
  if (process.platform !== 'win32') process.on('SIGUSR1', () => closed || printStats())
  // Printed only now: once a user or a script sees this line, the signals above are handled.
  io.out(`tcpserver ${command} listening on ${server.addresses.map(formatAddress).join(', ')}`)

  const result = await server.closed
  if (timer) clearInterval(timer)
  io.out(stats.line())
  closed = true
  io.out(`tcpserver: closed (completed=${result.completed} forced=${result.forced})`)
  return 0
}
