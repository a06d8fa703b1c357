// The handler of `tcpserver proxy`: one upstream connection per client, then `pipe()` both ways
// in the Rust core (splice(2) when both sides are plain TCP, a copy loop when either is TLS).
import { readFileSync } from 'node:fs'
import { type Connection, type ConnectOptions, connect, type Handler, proxyHeader } from '../index.js'
import type { CommandOptions } from './args.js'
import { formatAddress, type Output } from './output.js'
import type { Counters } from './stats.js'

/** The `proxy` command's options. */
export type ProxyOptions = Extract<CommandOptions, { name: 'proxy' }>

/**
 * Bytes the upstream gets before the client's own, passed to `pipe()` as `head`: with
 * `--proxy-protocol`, the PROXY header naming the client (and the address it connected to).
 */
function upstreamPreamble(options: ProxyOptions, client: Connection): Uint8Array | undefined {
  const remote = client.remote
  const local = client.local
  if (options.proxyProtocol === undefined || remote === null || local === null) return undefined
  return proxyHeader(options.proxyProtocol, remote, local)
}

/** The first line of an error's message, and its code. */
function describe(e: unknown): { code: string; message: string } {
  const code = (e as { code?: unknown } | null)?.code
  const message = String((e as { message?: unknown } | null)?.message ?? e).split('\n')[0] as string
  return { code: typeof code === 'string' ? code : 'ERR_UNKNOWN', message }
}

/**
 * A handler that forwards every connection to `options.upstream`. An upstream that cannot be
 * reached is the upstream's problem, not the proxy's: the client's connection is closed, the
 * failure counted (`counters.upstreamErrors`) and reported in one line on `io.err`.
 *
 * @throws the error reading `--upstream-ca` (`ENOENT`, `EACCES`).
 */
export function proxyHandler(options: ProxyOptions, counters: Counters, io: Output): Handler {
  const connectOptions: ConnectOptions = {
    timeout: options.connectTimeout,
    // The same deadline for the handshake: an upstream that accepts but never answers TLS must
    // not hold the client longer than one that never accepts.
    tls: options.upstreamTls
      ? {
          // Read now, once: a missing file stops the start (exit 1) instead of every connection.
          ca: options.upstreamCa === undefined ? undefined : readFileSync(options.upstreamCa),
          handshakeTimeout: options.connectTimeout,
        }
      : false,
  }
  return async (conn: Connection) => {
    let upstream: Connection
    try {
      upstream = await connect(options.upstream, connectOptions)
    } catch (e) {
      counters.upstreamErrors++
      const { code, message } = describe(e)
      const client = conn.remote
      io.err(
        `tcpserver proxy: warning [${code}]: upstream ${options.upstream} for ${client ? formatAddress(client) : `#${conn.id}`}: ${message}`,
      )
      return // the server closes the client's connection when the handler returns
    }
    try {
      const moved = await conn.pipe(upstream, { head: upstreamPreamble(options, conn) })
      counters.bytesIn += moved.bytesIn
      counters.bytesOut += moved.bytesOut
    } finally {
      upstream.close()
    }
  }
}
