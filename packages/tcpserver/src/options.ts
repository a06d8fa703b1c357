import type { Connection } from './connection.js'

/**
 * An address: `'127.0.0.1:5000'`, `'[::1]:5000'`, `'[::]:0'`, `':8080'`, `{ host, port }`, or
 * `'unix:/path/to.sock'` (absolute or relative) for a Unix domain socket.
 */
export type AddressInput =
  | string
  | {
      /** Host name or IP literal (IPv6 without brackets). @default every interface */
      host?: string
      /** Port; 0 picks a free one. */
      port: number
    }

/** TCP keep-alive probe settings (times in milliseconds, rounded up to whole seconds by the kernel). */
export interface KeepAliveOptions {
  /** Idle time before the first probe. @default the OS default (7200 s on Linux) */
  initialDelay?: number
  /** Time between probes. @default the OS default (75 s on Linux) */
  interval?: number
  /** Unanswered probes before the connection is dropped. @default the OS default (9 on Linux) */
  count?: number
}

/**
 * PEM input: the PEM text itself (a string containing `-----BEGIN`), its bytes, or the path of
 * a PEM file (read once by `listen()` / `setTlsConfig()`).
 */
export type PemInput = string | Uint8Array

/** TLS termination (rustls, in the Rust core: the JavaScript thread never touches a cipher). */
export interface TlsOptions {
  /** Certificate chain, leaf first (RSA, ECDSA P-256/P-384 or Ed25519). */
  cert: PemInput
  /** The certificate's private key (PKCS#8, PKCS#1 or SEC1). */
  key: PemInput
  /** Certificates chosen by SNI: `{ 'a.example': { cert, key }, '*.b.example': { cert, key } }`. */
  sni?: Record<
    string,
    {
      /** Certificate chain for this name, leaf first. */
      cert: PemInput
      /** Its private key. */
      key: PemInput
    }
  >
  /**
   * Chooses the certificate while the client's hello waits (for certificates not known up
   * front): return `{ cert, key }`, or `null` for `sni`/the default. May be async; if it
   * throws or rejects, the default certificate is used. Runs once per handshake that gets
   * this far; the configuration built for a certificate is cached.
   */
  sniCallback?: (
    servername: string | null,
  ) => SniCertificate | null | undefined | Promise<SniCertificate | null | undefined>
  /** ALPN protocols in preference order; the negotiated one is `conn.tls.alpnProtocol`. */
  alpn?: string[]
  /** Lowest TLS version accepted. @default 'TLSv1.2' */
  minVersion?: 'TLSv1.2' | 'TLSv1.3'
  /** Milliseconds a client has to finish its handshake. @default 10000 */
  handshakeTimeout?: number
  /** Handshakes in progress at once; more wait. A client takes a slot when its ClientHello begins (first byte), so sockets that connect and stay silent hold none; `handshakeTimeout`, counted from accept, closes them. @default 1024 */
  maxHandshakes?: number
  /** CA certificates that client certificates must chain to (mutual TLS). */
  ca?: PemInput | PemInput[]
  /** Ask clients for a certificate, verified against `ca`; clients without one are still served. @default false */
  requestCert?: boolean
  /** Refuse clients without a valid certificate (needs `ca`). @default false */
  requireCert?: boolean
}

/** A verified peer certificate (`conn.tls.peerCertificates`), leaf first. */
export interface PeerCertificate {
  /** DER bytes. */
  der: Buffer
  /** Subject distinguished name, one `KEY=value` per line (as `X509Certificate#subject`). */
  subject: string
  /** Issuer distinguished name. */
  issuer: string
  /** Start of validity (as `X509Certificate#validFrom`). */
  validFrom: string
  /** End of validity. */
  validTo: string
  /** SHA-256 fingerprint, `AB:CD:...`. */
  fingerprint256: string
}

/** Client-side TLS of {@link connect}. */
export interface ConnectTlsOptions {
  /** SNI name, and the name the server certificate must match. @default the host */
  servername?: string
  /** CA certificates to trust. @default the Mozilla root store */
  ca?: PemInput | PemInput[]
  /** ALPN protocols in preference order. */
  alpn?: string[]
  /** Client certificate chain, for mutual TLS. */
  cert?: PemInput
  /** The client certificate's private key. */
  key?: PemInput
  /** Handshake deadline, ms. @default 10000 */
  handshakeTimeout?: number
}

/** A certificate an `sniCallback` returns. */
export interface SniCertificate {
  /** Certificate chain, leaf first. */
  cert: PemInput
  /** Its private key. */
  key: PemInput
}

/** What a TLS connection negotiated (`conn.tls`). */
export interface TlsInfo {
  /** `'TLSv1.3'` or `'TLSv1.2'`. */
  protocol: string
  /** The cipher suite's IANA name, e.g. `TLS_AES_256_GCM_SHA384` (as Node's `standardName`). */
  cipher: string
  /** The ALPN protocol both sides agreed on, if any. */
  alpnProtocol: string | null
  /** The SNI name the client sent (server side). */
  serverName: string | null
  /** Whether the session was resumed (ticket or session cache). */
  resumed: boolean
  /** The peer's verified certificate chain (mutual TLS on a server; the server's on `connect`). */
  peerCertificates: PeerCertificate[]
  /**
   * `true` once the peer ended its input cleanly: a TLS `close_notify` alert, then FIN
   * (`tlsSocket.end()` in Node). Everything the peer sent has arrived.
   */
  readonly closeNotify: boolean
  /**
   * `true` once the peer's input ended with a bare FIN after TLS data, without `close_notify`.
   * `read()` returns `null` as for a clean end (as in Node, where both look alike), but the
   * input may have been cut short: by an attacker who injected the FIN (a truncation attack) or
   * by a peer that crashed. Protocols that frame a message by the end of the connection
   * (HTTP/1.0 bodies without a length, many file transfer protocols) should refuse the data
   * then. Both flags are `false` while input is still open; a reset rejects `read()` with
   * `ECONNRESET` instead.
   */
  readonly truncated: boolean
}

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

/** Options of `server.shutdown()`. */
export interface ShutdownOptions {
  /** Milliseconds to wait for handlers before closing the remaining connections. @default wait forever */
  timeout?: number
}

/** What a shutdown found. */
export interface ShutdownResult {
  /** Connections open at shutdown that finished by themselves. */
  completed: number
  /** Connections closed by force at the deadline (or by `halt()`). */
  forced: number
}

/** An address as Node reports it; for Unix domain sockets `family` is `'unix'`. */
export interface AddressInfo {
  /**
   * IP address text (IPv6 without brackets), or the Unix socket's path (empty for an unnamed
   * socket, as Unix socket clients usually are).
   */
  address: string
  /** Port number (0 for Unix sockets). */
  port: number
  /** Address family. */
  family: 'IPv4' | 'IPv6' | 'unix'
}

/** Per-worker figures of a server with `workers`. */
export interface WorkerStats {
  /** Each worker by index: its thread id (-1 while it restarts), its open connections and the connections handed to it (since it started). */
  threads: Array<{ index: number; threadId: number; active: number; accepted: number }>
  /** Workers started again after one ended. */
  restarts: number
  /** Connections closed because the worker serving them ended. */
  orphaned: number
}

/** Counters of a server. */
export interface ServerStats {
  /** Connections accepted. */
  accepted: number
  /** Connections open. */
  active: number
  /** Connections closed at once by a limit (the sum of `refusedBy`). */
  refused: number
  /** Refused connections by the limit that refused them. */
  refusedBy: {
    /** `maxConnections` were open and `onLimit` is `'refuse'`. */
    maxConnections: number
    /** The client's address held its `maxConnectionsPerIp`. */
    maxConnectionsPerIp: number
    /** `maxAcceptConnections` had been reached. */
    maxAcceptConnections: number
  }
  /** PROXY protocol listeners: headers accepted, and refused connections by reason. */
  proxyProtocol: {
    /** Headers accepted. */
    headers: number
    /** Refusals by reason: `untrusted` (source not in `trusted`), `not_proxy` (no header), `malformed` (v2: also TLVs that do not fill the header exactly), `bad_checksum` (a v2 CRC32C TLV that does not match), `unsupported_version`, `unsupported_command`, `timeout`, `closed` (gone before a complete header), `shutdown`, `io`. */
    failures: Record<string, number>
  }
  /** Timeouts by kind. */
  timeouts: {
    /** TLS handshakes that timed out (also in `tls.failures.timeout`). */
    handshake: number
    /** Connections closed by `idleTimeout`. */
    idle: number
    /** Reads rejected by `readTimeout`. */
    read: number
    /** Connections closed by `writeTimeout`. */
    write: number
  }
  /** Connections closed by a forced shutdown. */
  forced: number
  /** Connection tasks in the Rust core that panicked (each closed only its connection). */
  panics: number
  /** Accept errors by code (`EMFILE`, `ENFILE`, `ECONNABORTED`...); accept loops back off and go on. */
  acceptErrors: Record<string, number>
  /** Pipes and files sent by this server's connections, and whether zero-copy was used. */
  dataPath: DataPathStats
  /** TLS handshakes completed and failures by reason. */
  tls: {
    /** Handshakes completed. */
    handshakes: number
    /** Failed handshakes by reason: `timeout`, `peer_closed`, `bad_record`, `peer_incompatible`, `no_application_protocol`, `no_client_certificate`, ... */
    failures: Record<string, number>
  }
  /** Worker threads (`listen({ workers })` only). */
  workers?: WorkerStats
}

/** Options of `conn.pipe()`. */
export interface PipeOptions {
  /** Bytes to send to the other connection first, e.g. a header the handler already parsed. */
  head?: Uint8Array
  /** End the pipe (closing both connections) after this many ms without a byte moving. @default off */
  idleTimeout?: number
}

/** What a pipe moved. */
export interface PipeResult {
  /** Bytes read from this connection and written to the other. */
  bytesIn: number
  /** Bytes read from the other connection and written to this one. */
  bytesOut: number
}

/** Options of `conn.sendFile()`. */
export interface SendFileOptions {
  /** First byte of the file to send. @default 0 */
  offset?: number
  /** Bytes to send. @default to the end of the file */
  length?: number
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Milliseconds for resolving and connecting together. @default no limit */
  timeout?: number
  /** `TCP_NODELAY`. @default true */
  noDelay?: boolean
  /** Local IP address to connect from (the kernel picks the port). */
  localAddress?: string
  /** Speak TLS (rustls, in Rust): `true` for defaults, or the settings. */
  tls?: boolean | ConnectTlsOptions
  /**
   * Aborting it stops an attempt that has not connected yet: the call rejects with an
   * `AbortError` (`code: 'ABORT_ERR'`, `cause`: the signal's reason), as `net.connect({ signal })`
   * does. It has no effect once the connection is open.
   */
  signal?: AbortSignal
}

/** Counters of the data paths: whether `splice`/`sendfile` and direct reads were used. */
export interface DataPathStats {
  /** Pipes forwarded with `splice(2)` (Linux): the bytes never entered user space. */
  pipesSpliced: number
  /** Pipes forwarded with a copy loop in Rust (other platforms, or `TCPSERVER_ZERO_COPY=0`). */
  pipesCopied: number
  /** Bytes forwarded by pipes, both directions. */
  bytesPiped: number
  /** Files (or ranges) sent completely. */
  filesSent: number
  /** File bytes sent with `sendfile(2)`. */
  fileBytesZeroCopy: number
  /** File bytes sent with a read/write loop. */
  fileBytesCopied: number
  /**
   * Chunks read straight from the socket on the JavaScript thread: while a client streams
   * (chunks of 16 KiB or more), the next read takes what the socket already holds instead of
   * waiting for the Rust worker to read it and send it over. Plain TCP only.
   */
  directReads: number
}
