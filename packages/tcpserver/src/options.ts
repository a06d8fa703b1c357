// The options of listen() and the handler type: they name Connection, so they cannot live in
// the leaf types.ts. Every other option and result type is re-exported from there, so
// `options.ts` still names all of them.
import type { Connection } from './connection.js'
import type { AddressInfo, AddressInput, KeepAliveOptions, TlsOptions } from './types.js'

export type * from './types.js'

/** A connection handler: the connection is closed when the returned promise settles. */
export type Handler = (conn: Connection) => void | Promise<void>

/**
 * Options of {@link listen}. Every field but `address` (or `fd`) is optional; `undefined` means
 * the default.
 */
export interface ListenOptions {
  /**
   * One address or several; port 0 picks a free port (see `server.addresses`). Optional with
   * `fd`. A `unix:` address listens on a Unix domain socket: a stale socket file (nobody
   * accepting on it) is replaced, a live socket or any other file is `EADDRINUSE`, and the
   * file is removed at shutdown. One accept loop runs per Unix socket; `loops`, `reusePort`,
   * `fastOpen`, `deferAccept`, `ipv6Only`, `noDelay` and `keepAlive` concern TCP only, and
   * `maxConnectionsPerIp` does not count Unix clients (they have no IP address).
   * `proxyProtocol` cannot be combined with `unix:` addresses.
   */
  address?: AddressInput | readonly AddressInput[]
  /**
   * Listening TCP sockets this process inherited, to accept on (with or without `address`):
   * descriptor numbers, or `'systemd'` for the sockets of systemd socket activation
   * (`LISTEN_PID`/`LISTEN_FDS`, removed from `process.env` afterwards so children do not
   * inherit them). A process manager or a parent can so hand over its sockets and restart
   * without refusing a connection. The server owns the descriptors from then on and closes
   * them at shutdown; listener options (`backlog`, `reusePort`...) are the creator's, and one
   * accept loop runs per descriptor. Unix only.
   * @throws {TcpServerError} `ERR_INVALID_ARG_VALUE` (option `fd`) for a descriptor that is not
   * a listening TCP socket, or `'systemd'` without sockets passed; `EBADF` for a closed one.
   */
  fd?: number | readonly number[] | 'systemd'
  /**
   * Called once per connection. When its promise settles the connection is closed: queued
   * writes are flushed first, then FIN. Without a handler, iterate the server instead.
   *
   * With `workers`, the handler is a module instead (a `URL`, best
   * `new URL('./handler.js', import.meta.url)`, or a file path, relative ones from the
   * current directory) that every worker thread imports: its default export is the handler,
   * and it may export `onError` and `onTlsError` (which then run in the workers).
   */
  handler?: Handler | URL | string
  /**
   * Run the handler on this many worker threads (`'auto'`: one per CPU this process may use,
   * `os.availableParallelism()`), fed by the Rust accept loops: each new connection goes to
   * the worker with the fewest open connections (ties in turn). One server, one port, one
   * set of limits, counters, timeouts and TLS settings; `stats().workers` has per-worker
   * figures. A worker that ends (an uncaught error, `process.exit()`, `terminate()`) has its
   * connections closed and counted (`stats().workers.orphaned`), and a new one takes its
   * place (at once, or after 100 ms to 1 s if it keeps ending within a second). `listen()`
   * rejects with `ERR_TCPSERVER_WORKER_LOAD` when a worker cannot load the module.
   * `shutdown()`/`halt()` resolve once every connection closed and every worker stopped.
   * Requires `handler` to be a module; `for await (const conn of server)` gets nothing.
   * @default no workers: handlers run on this thread
   */
  workers?: number | 'auto'
  /**
   * With `workers`: a value every worker receives (structured-cloned, so a
   * `SharedArrayBuffer` is shared) through the handler module's optional `setup` export,
   * `export async function setup(workerData, { index, threadId })`, awaited before the
   * worker serves. For configuration, and counters the main thread can read.
   */
  workerData?: unknown
  /**
   * Receives errors thrown or rejected by `handler` (the connection is then closed at once),
   * including `ECONNRESET`/`EPIPE` from a peer that went away.
   * @default logs with `console.error`, naming the connection's address; peer disconnects
   * (`ECONNRESET`, `EPIPE`, `ECONNABORTED`) are not logged
   */
  onError?: (error: unknown, connection: Connection) => void
  /** Accept loops per address, each on its own `SO_REUSEPORT` socket. @default the number of CPUs this process may use */
  loops?: number
  /**
   * `SO_REUSEPORT`: whether other sockets may share this server's ports.
   *
   * - Not set (the default): the server's own accept loops (`loops`) share each port, and so
   *   do its own overlapping addresses (`0.0.0.0:7000` with a dual-stack `[::]:7000`), but a
   *   port any other socket already holds is refused with `EADDRINUSE`, as `node:net` does, so
   *   a forgotten dev server is never silently sharing clients with a new one. (The first
   *   socket is bound without `SO_REUSEPORT` and gets it after `bind`, before `listen`.)
   * - `true`: share the port with any socket of the same user that also has `SO_REUSEPORT`,
   *   e.g. a predecessor or successor process during a restart; the kernel spreads new
   *   clients over all of them. A process that sets `true` may also join a port that a server
   *   with the default setting holds.
   * - `false`: no `SO_REUSEPORT` at all (then `loops` must be 1).
   * @default not set: own loops share, strangers get `EADDRINUSE`
   */
  reusePort?: boolean
  /** `TCP_FASTOPEN` queue length; `true` means 256, `false` or 0 turns it off. @default off */
  fastOpen?: number | boolean
  /**
   * `TCP_DEFER_ACCEPT` (Linux): seconds to wait for the client's first bytes before the
   * connection is handed over; `true` means 1. Never for protocols where the server speaks first.
   * On other platforms setting it throws `ERR_TCPSERVER_UNSUPPORTED`. @default off
   */
  deferAccept?: number | boolean
  /** Listen backlog (capped by `net.core.somaxconn`). @default 511 */
  backlog?: number
  /** For IPv6 addresses: accept IPv6 only (no IPv4-mapped clients on `[::]`). @default false */
  ipv6Only?: boolean
  /**
   * Permission bits of the socket files of `unix:` addresses, applied after `bind` (before
   * any client can connect), e.g. `0o660`: clients need write permission. @default the umask's
   */
  unixPermissions?: number
  /** `TCP_NODELAY` on accepted sockets. @default true */
  noDelay?: boolean
  /** TCP keep-alive on accepted sockets: `true` with OS probe settings, or the settings. @default false */
  keepAlive?: boolean | KeepAliveOptions
  /**
   * At most this many connections open at once. What happens to the next client depends on
   * `onLimit`. @default unlimited
   */
  maxConnections?: number
  /**
   * While `maxConnections` are open: `'hold'` stops accepting, so the kernel's listen backlog
   * holds new clients until a slot frees (they wait); `'refuse'` accepts and closes them at
   * once (they learn at once that the server is full, and a flood cannot fill the backlog),
   * counted in `stats().refusedBy.maxConnections`. @default 'hold'
   */
  onLimit?: 'hold' | 'refuse'
  /**
   * At most this many open connections per client address; a client over its share is
   * accepted and closed at once, counted in `stats().refusedBy.maxConnectionsPerIp` (holding
   * it back would let one address fill the backlog for everyone). IPv6 clients are grouped by
   * `ipv6Prefix` bits (a host usually owns a whole /64); IPv4-mapped clients count as IPv4.
   * @default unlimited (`ipv6Prefix` 64)
   */
  maxConnectionsPerIp?: number | { max: number; ipv6Prefix?: number }
  /** Shut down gracefully by itself after this many accepted connections (like the Go model). @default unlimited */
  maxAcceptConnections?: number
  /**
   * Per-connection bound, in bytes, on input read but not yet consumed by the handler and on
   * output queued in the process. Above it, reading pauses (TCP backpressure to the client) and
   * `write()` waits for the queue to drain. @default 65536
   */
  highWaterMark?: number
  /** Close a connection after this many ms with no byte moving either way; 0 turns it off. @default 0 (off) */
  idleTimeout?: number
  /**
   * A `read()` (or iteration step) that waits this many ms without data rejects with
   * `ETIMEDOUT` (`syscall: 'read'`); the connection stays open, so the handler may catch it
   * and go on, or let it end the handler. Per connection: `conn.readTimeout`. 0 turns it off.
   * @default 0 (off)
   */
  readTimeout?: number
  /**
   * Close a connection whose queued output waited this many ms without the peer taking a
   * byte (a peer that does not read, also during `sendFile()` and after the handler
   * finished); the connection fails with `ERR_TCPSERVER_WRITE_TIMEOUT`. Per
   * connection: `conn.writeTimeout`. 0 turns it off. @default 0 (off)
   */
  writeTimeout?: number
  /**
   * Expect a PROXY protocol header (v1 or v2, as sent by HAProxy's `send-proxy` /
   * `send-proxy-v2`, nginx or cloud load balancers) at the start of every connection, before
   * TLS. Connections from sources outside `trusted` (CIDRs such as `'10.0.0.0/8'`,
   * `'::1/128'`, or single addresses) are refused at once; a trusted source that sends no
   * valid header within `timeout` ms (default 5000) is refused too. Refusals never reach
   * `handler` and are counted by reason in `stats().proxyProtocol.failures`. The header's
   * client becomes `conn.remoteAddress`/`conn.remote` (the balancer is `conn.proxiedBy`), and
   * `maxConnectionsPerIp` counts real clients.
   */
  proxyProtocol?: { trusted: string[]; timeout?: number }
  /** Aborting this signal shuts the server down gracefully. */
  signal?: AbortSignal
  /** Serve TLS on every connection. */
  tls?: TlsOptions
  /**
   * Failed TLS handshakes (garbage, old protocol versions, timeouts). They never reach
   * `handler`. @default ignored (they are counted in `stats().tls.failures`)
   */
  onTlsError?: (error: Error, remote: AddressInfo) => void
}
