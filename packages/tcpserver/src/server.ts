// The server: owns the native handle, dispatches event batches in one tight loop, runs one
// handler per connection and closes the connection when it settles.
import { eventAddress, formatAddress } from './address.js'
import { adoptHandlerResult, HandlerResult } from './connection/reader.js'
import { RESOLVED } from './connection/state.js'
import { type Connection, handlerSettled, releaseConnection } from './connection.js'
import { argType, codedError, fromBinding, fromNative, inOptions, parseEventText } from './errors.js'
import type { BindingServer } from './native.js'
import type { Handler } from './options.js'
import { EventRouter } from './router.js'
import { pem, toBindingTls } from './tls.js'
import type {
  AddressInfo,
  ServerStats,
  ShutdownOptions,
  ShutdownResult,
  SniCertificate,
  TlsOptions,
} from './types.js'
import { expectNumber, optionsObject, validateTls } from './validate.js'
import type { WorkerPool } from './workers.js'

const SHUTDOWN_KEYS: ReadonlySet<string> = new Set(['timeout'])

/** Connections waiting in the iterator queue before accepting pauses. */
const QUEUE_LIMIT = 128
const noop = (): void => {}

/** Peer disconnects (and TLS violations by the peer) are routine; the default logger skips them. */
const ROUTINE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_TCPSERVER_TLS'])

function defaultOnError(error: unknown, conn: Connection): void {
  if (ROUTINE.has((error as { code?: string } | null)?.code ?? '')) return
  const a = conn.remote
  const who = a ? formatAddress(a) : `#${conn.id}`
  console.error(`tcpserver: handler for connection ${who} failed:`, error)
}

export interface ServerInit {
  handler: Handler | undefined
  onError: ((error: unknown, connection: Connection) => void) | undefined
  onTlsError: ((error: Error, remote: AddressInfo) => void) | undefined
  sniCallback: TlsOptions['sniCallback']
  /** The worker threads that run the handler (`listen({ workers })`). */
  pool?: WorkerPool | undefined
}

/** A TLS_ERROR event's fields: the peer's address and port; then the error. */
function tlsFailure(text: string): [Error, AddressInfo] {
  const [[address = '', port = '0'], error] = parseEventText(text, 2)
  const remote = eventAddress(address, port)
  return [error ?? codedError('ERR_TCPSERVER_TLS_HANDSHAKE', 'TLS handshake failed'), remote]
}

/** A listening server; created by {@link listen}. */
export class Server implements AsyncDisposable, AsyncIterable<Connection> {
  readonly #native: BindingServer
  readonly #router: EventRouter
  readonly #handler: Handler | undefined
  readonly #onError: (error: unknown, connection: Connection) => void
  #sniCallback: TlsOptions['sniCallback']
  readonly #addresses: readonly AddressInfo[]
  readonly #closed: Promise<ShutdownResult>
  #resolveClosed!: (r: ShutdownResult) => void
  #isClosed = false
  #queue: Connection[] = []
  #waiters: Array<(r: IteratorResult<Connection>) => void> = []
  #paused = false
  /** Stopped accepting (shutdown, halt, close): `address()` is `null` from then on. */
  #stopped = false
  /** `unref()` was called: only open connections keep the process alive. */
  #unrefed = false
  /** Keeps the event loop alive while the server runs (the native wake-up function does not). */
  #keepAlive: NodeJS.Timeout | null = null
  readonly #pool: WorkerPool | undefined

  /** @internal Created by `listen()`. */
  constructor(native: BindingServer, init: ServerInit) {
    this.#native = native
    this.#handler = init.handler
    this.#onError = init.onError ?? defaultOnError
    this.#sniCallback = init.sniCallback
    this.#pool = init.pool
    this.#router = new EventRouter(native.connections, {
      open: (conn) => {
        if (this.#unrefed) this.#updateRef()
        this.#open(conn)
      },
      handlerDone: (conn, failed, error) => this.#adoptedSettled(conn, failed, error),
      closed: () => {
        if (this.#unrefed) this.#updateRef()
      },
      serverClosed: (result) => this.#onServerClosed(result),
      sni: (token, name) => this.#resolveSni(token, name),
      tlsError: (text) => {
        const hook = init.onTlsError
        if (!hook) return
        const [error, remote] = tlsFailure(text)
        try {
          hook(error, remote)
        } catch (e) {
          queueMicrotask(() => {
            throw e
          })
        }
      },
    })
    this.#addresses = Object.freeze(native.addresses().map((a) => Object.freeze(a as AddressInfo)))
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#updateRef()
  }

  // Like a net.Server: a running server keeps the process alive unless unref()'d; open
  // connections keep it alive either way (each is a socket, as in Node).
  #updateRef(): void {
    // A worker thread's Server listens on nothing (its thread's own handle keeps it alive).
    const listening = !this.#isClosed && this.#addresses.length > 0
    const alive = listening && (!this.#unrefed || this.#router.conns.size > 0)
    if (alive && this.#keepAlive === null) this.#keepAlive = setInterval(noop, 1 << 30)
    else if (!alive && this.#keepAlive !== null) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = null
    }
  }

  /**
   * Lets the process exit while this server has no open connection, like `net.Server#unref()`
   * (a timer-like handle: the server keeps running while something else keeps the process
   * alive). Open connections still keep it alive, as Node's sockets do. Returns the server.
   */
  unref(): this {
    this.#unrefed = true
    this.#updateRef()
    return this
  }

  /** Undoes {@link Server.unref}: the running server keeps the process alive again. */
  ref(): this {
    this.#unrefed = false
    this.#updateRef()
    return this
  }

  /**
   * The first bound address in `net.Server#address()`'s shape: `{ address, family, port }` for
   * TCP, the path (a string) for a Unix domain socket, `null` once the server stopped
   * accepting. A server listening on several addresses reports the first it was given
   * (`server.addresses` lists them all, in that order).
   */
  address(): AddressInfo | string | null {
    const first = this.#stopped ? undefined : this.#addresses[0]
    if (first === undefined) return null
    return first.family === 'unix'
      ? first.address
      : { address: first.address, family: first.family, port: first.port }
  }

  /** @internal The native event callback: one call per batch (see EventRouter#dispatch). */
  dispatch(events: Buffer, payload: Buffer, words?: number): void {
    this.#router.dispatch(events, payload, words)
  }

  #open(conn: Connection): void {
    const handler = this.#handler
    if (handler === undefined) {
      this.#enqueue(conn)
      return
    }
    let result: void | Promise<void>
    try {
      result = handler(conn)
    } catch (e) {
      this.#fail(conn, e)
      return
    }
    const adopted = adoptHandlerResult(conn, result)
    if (adopted === HandlerResult.Adopted) return
    if (adopted === HandlerResult.Resolved) {
      this.#adoptedSettled(conn, false, undefined)
    } else if (result != null && typeof (result as Promise<void>).then === 'function') {
      ;(result as Promise<void>).then(
        () => handlerSettled(conn, false),
        (e: unknown) => this.#fail(conn, e),
      )
    } else {
      handlerSettled(conn, false)
    }
  }

  /**
   * A handler's `receive()` promise, adopted instead of watched, settled. The handler is done a
   * microtask later, as with a watcher: reactions the handler put on that promise (a last
   * write, say) still run first. A settle costs a reaction and a short-lived closure here;
   * nothing waits per idle connection.
   */
  #adoptedSettled(conn: Connection, failed: boolean, error: unknown): void {
    // A closure, not `Promise.resolve(conn)`: resolving a promise with the connection looked
    // up `conn.then` through its four prototypes (Builtins_GetProperty, 0.33 % of t1's
    // samples, all of it from here).
    if (failed) RESOLVED.then(() => this.#fail(conn, error))
    else RESOLVED.then(() => handlerSettled(conn, false))
  }

  #fail(conn: Connection, error: unknown): void {
    handlerSettled(conn, true)
    // A forced shutdown ends connections on purpose; the handler seeing it is not a failure.
    if ((error as { code?: unknown } | null)?.code === 'ERR_TCPSERVER_SHUTDOWN') return
    try {
      this.#onError(error, conn)
    } catch (e) {
      queueMicrotask(() => {
        throw e
      })
    }
  }

  /** Answers a handshake's certificate question with the sniCallback's choice (or the default). */
  #resolveSni(token: number, servername: string | null): void {
    const answer = (chosen: SniCertificate | null | undefined): void => {
      try {
        if (chosen) this.#native.resolveSni(token, pem(chosen.cert), pem(chosen.key))
        else this.#native.resolveSni(token)
      } catch {
        this.#native.resolveSni(token) // an unreadable file: the default certificate
      }
    }
    const callback = this.#sniCallback
    if (!callback) {
      answer(null)
      return
    }
    let result: ReturnType<NonNullable<TlsOptions['sniCallback']>>
    try {
      result = callback(servername)
    } catch {
      answer(null)
      return
    }
    Promise.resolve(result).then(answer, () => answer(null))
  }

  #enqueue(conn: Connection): void {
    const waiter = this.#waiters.shift()
    if (waiter) {
      waiter({ value: conn, done: false })
      return
    }
    this.#queue.push(conn)
    if (this.#queue.length >= QUEUE_LIMIT && !this.#paused) {
      this.#paused = true
      this.#native.pause()
    }
  }

  #onServerClosed(result: ShutdownResult): void {
    this.#isClosed = true
    this.#stopped = true
    this.#updateRef()
    for (const w of this.#waiters.splice(0)) w({ value: undefined, done: true })
    // Every connection has closed: the workers have nothing left to serve.
    if (this.#pool) this.#pool.close().then(() => this.#resolveClosed(result))
    else this.#resolveClosed(result)
  }

  /** The bound addresses, with real ports where 0 was asked for. */
  get addresses(): readonly AddressInfo[] {
    return this.#addresses
  }

  /** Connections currently open. */
  get activeConnections(): number {
    return this.#native.stats().active
  }

  /** Connections accepted since the server started. */
  get acceptedConnections(): number {
    return this.#native.stats().accepted
  }

  /** All counters at once. */
  stats(): ServerStats {
    const s = this.#native.stats()
    const acceptErrors: Record<string, number> = {}
    for (const { code, count } of s.acceptErrors) acceptErrors[code] = count
    const tls = this.#native.tlsStats()
    const failures: Record<string, number> = {}
    for (const { code, count } of tls.failures) failures[code] = count
    const proxyFailures: Record<string, number> = {}
    for (const { code, count } of s.proxyFailures) proxyFailures[code] = count
    return {
      accepted: s.accepted,
      active: s.active,
      refused: s.refused,
      refusedBy: {
        maxConnections: s.refusedMaxConnections,
        maxConnectionsPerIp: s.refusedPerIp,
        maxAcceptConnections: s.refusedMaxAccept,
      },
      proxyProtocol: { headers: s.proxyHeaders, failures: proxyFailures },
      timeouts: {
        handshake: failures.timeout ?? 0,
        idle: s.idleTimeouts,
        read: s.readTimeouts,
        write: s.writeTimeouts,
      },
      forced: s.forced,
      panics: s.panics,
      acceptErrors,
      dataPath: this.#native.dataStats(),
      tls: { handshakes: tls.handshakes, failures },
      ...(this.#pool ? { workers: this.#pool.stats(this.#native.workerStats()) } : {}),
    }
  }

  /**
   * Stops accepting at once (the port is free when this is called), waits for running
   * handlers, and at `timeout` ms closes the connections still open. Resolves when every
   * connection has closed. Calling it again may shorten the deadline.
   */
  shutdown(shutdownOptions?: ShutdownOptions): Promise<ShutdownResult> {
    try {
      const options = optionsObject(
        'options',
        shutdownOptions,
        SHUTDOWN_KEYS,
        this.shutdown,
      ) as ShutdownOptions
      expectNumber('options.timeout', options.timeout, this.shutdown)
      if (!this.#isClosed) {
        this.#stopped = true
        try {
          this.#native.shutdown(options.timeout)
        } catch (e) {
          throw fromNative(e, {
            caller: this.shutdown,
            arg: { name: 'options.timeout', value: options.timeout },
          })
        }
        this.#drainQueue()
      }
    } catch (e) {
      return Promise.reject(e)
    }
    return this.#closed
  }

  /**
   * Swaps the TLS certificates (and ALPN, versions) for new handshakes without dropping a
   * connection: open connections keep the session they have. For certificate renewal.
   * @throws {TcpServerError} `ERR_INVALID_ARG_VALUE` (bad PEM, key not matching), `ENOENT`.
   */
  setTlsConfig(tlsOptions: TlsOptions): void {
    const tls = validateTls(tlsOptions, this.setTlsConfig, 'tls') as unknown as TlsOptions
    const err = this.#native.setTls(toBindingTls(tls))
    if (err) {
      const context = inOptions(tls, 'tls.')
      throw fromBinding(err, this.setTlsConfig, (o) =>
        o === 'tls' ? { name: 'tls', value: tlsOptions } : context(o.replace(/^tls\./, '')),
      )
    }
    this.#sniCallback = tls.sniCallback
  }

  /** Stops accepting and closes every connection now. */
  halt(): Promise<ShutdownResult> {
    if (!this.#isClosed) {
      this.#stopped = true
      this.#native.halt()
      this.#drainQueue()
    }
    return this.#closed
  }

  /**
   * `net.Server#close()` for tcpserver: stops accepting at once and resolves when every
   * connection has finished by itself, with no deadline (that is `shutdown()` without a
   * `timeout`; use `shutdown({ timeout })` for one, `halt()` to stop now). As in Node, the
   * optional callback gets `ERR_SERVER_NOT_RUNNING` when the server had already stopped; the
   * promise resolves with the shutdown's counts either way.
   */
  close(callback?: (err?: Error) => void): Promise<ShutdownResult> {
    if (callback !== undefined && typeof callback !== 'function') {
      return Promise.reject(argType('callback', 'of type function', callback, this.close))
    }
    const running = !this.#stopped
    const done = this.shutdown()
    if (callback) {
      const err = running ? undefined : codedError('ERR_SERVER_NOT_RUNNING', 'Server is not running.')
      done.then(() => callback(err))
    }
    return done
  }

  /** Resolves once the server stopped (shutdown, halt, or `maxAcceptConnections`) and every connection closed. */
  get closed(): Promise<ShutdownResult> {
    return this.#closed
  }

  /** `await using server = await listen(...)` shuts down gracefully at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown()
  }

  /**
   * Iterate connections instead of passing a `handler`. Each connection is then yours to
   * close (`conn.close()`, or `await using`). While connections wait here unclaimed,
   * accepting pauses after 128 of them and the kernel backlog holds new clients.
   */
  [Symbol.asyncIterator](): AsyncIterator<Connection> {
    return {
      next: (): Promise<IteratorResult<Connection>> => {
        const conn = this.#queue.shift()
        if (conn) {
          if (this.#paused && this.#queue.length < QUEUE_LIMIT / 2) {
            this.#paused = false
            this.#native.resume()
          }
          return Promise.resolve({ value: conn, done: false })
        }
        if (this.#isClosed) return Promise.resolve({ value: undefined, done: true })
        return new Promise((resolve) => this.#waiters.push(resolve))
      },
      return: async (): Promise<IteratorResult<Connection>> => {
        await this.shutdown()
        return { value: undefined, done: true }
      },
    }
  }

  // Connections queued for an iterator nobody will read any more are closed with the server.
  #drainQueue(): void {
    for (const conn of this.#queue.splice(0)) releaseConnection(conn)
  }
}
