// The package's value types: options and results that name no class of the package. A leaf:
// it imports nothing from the package, so every module can take its types from here without
// an import circle (options.ts, whose ListenOptions and Handler name Connection, cannot be one).

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

/**
 * The callback of `conn.receive()`, called with each chunk as it arrives. Return nothing to go
 * on, `false` to stop (the rest of the input stays for later reads), or a promise to hold the
 * next chunk back until it settles (backpressure; resolving to `false` stops too).
 */
// biome-ignore lint/suspicious/noConfusingVoidType: a callback that returns nothing is the common case (void, not undefined, accepts it)
export type ChunkCallback = (chunk: Buffer) => void | boolean | PromiseLike<void | boolean>

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

/** Options for {@link Connection.toDuplex}; only the first call's options apply. */
export interface ConnectionDuplexOptions {
  /**
   * Keep the writable side open after the peer's FIN (default `true`, as for a TCP socket
   * with half-close). With `false` the Duplex calls `end()` once its readable side ended.
   */
  allowHalfOpen?: boolean
  /** Bytes the readable side buffers before it stops pulling from the connection (default 16 KiB). */
  readableHighWaterMark?: number
  /**
   * Bytes the writable side buffers before `write()` returns `false` (default 16 KiB). This
   * comes on top of the connection's own output queue, bounded by its `highWaterMark`.
   */
  writableHighWaterMark?: number
}
