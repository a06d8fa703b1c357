// One client connection: its output (writes, end, close), its lifecycle (closed, signal,
// error, the handler settling), its settings and stream adapters. Reads come from the server's
// event batches (no native call per chunk), or, while the peer streams, from one synchronous
// native call that reads what the socket already holds (connection/reader.ts); writes are one
// synchronous native call that tries the socket at once. Jobs: connection/jobs.ts.

import type { ReadableStream, WritableStream } from 'node:stream/web'
import { type ClosedInfo, errorOfClosed, parseClosed } from './connection/facts.js'
import { ConnectionJobs } from './connection/jobs.js'
import { type ConnectionSettings, noop, quietReject, RESOLVED } from './connection/state.js'
import {
  argType,
  argValue,
  codedError,
  fromNative,
  type NativeContext,
  type TcpServerError,
} from './errors.js'
import type { BindingConnectionInfo, BindingConnections } from './native.js'
import { ConnectionDuplex, createReadable, createWritable } from './streams.js'
import type { ConnectionDuplexOptions, PipeOptions, PipeResult } from './types.js'
import { expectData, expectNumber, validateDuplexOptions, validatePipeOptions } from './validate.js'

/**
 * The core's timeout kinds, by their index in `TimeoutKind::ALL`
 * (crates/tcpserver/src/driver/event.rs): the `kind` of `native.setTimeout()` and the index in
 * `native.timeouts`. `__test__/event-table.spec.ts` fails while the two disagree.
 */
const TIMEOUT_IDLE = 0
const TIMEOUT_WRITE = 1

/** Bits of a connection's `#state`. */
const CLOSED = 1
const WRITE_CLOSED = 2
/** Output was closed because the handler settled (not by end()/close()): writes say so. */
const SETTLED = 4

/**
 * What only some connections need, made on first use: an idle connection that never fails,
 * waits for a drain, hands out its `closed` promise or `signal`, changes a timeout or makes a
 * stream adapter pays for one empty field instead of ten.
 */
class ConnectionExtra {
  error: TcpServerError | null = null
  drainWaiters: Array<[() => void, (e: Error) => void]> | null = null
  closedPromise: Promise<void> | null = null
  closedResolve: (() => void) | null = null
  abort: AbortController | null = null
  /** This connection's timeouts once changed; -1: the server's. */
  idleTimeout = -1
  writeTimeout = -1
  duplex: ConnectionDuplex<Connection> | null = null
  readable: ReadableStream<Uint8Array> | null = null
  writable: WritableStream<Uint8Array> | null = null
}

/** Internal entry points for the server's event dispatch (not exported from the package). */
export let deliverDrain: (c: Connection) => void
export let deliverClosed: (c: Connection, closedText: string) => void
export let releaseConnection: (c: Connection) => void
/** The handler settled (returned, resolved, threw or rejected): flush and close, or `close` now. */
export let handlerSettled: (c: Connection, close: boolean) => void
/** @internal How a TLS peer ended its input: with `close_notify` or not (just before END). */
export let deliverTlsEnd: (c: Connection, closeNotify: boolean) => void

/**
 * A TCP connection handed to a handler. Read with `await conn.read()`,
 * `for await (const chunk of conn)` or, cheapest, `await conn.receive((chunk) => ...)`; write
 * with `conn.write()`. Closed automatically when the handler settles.
 */
export class Connection extends ConnectionJobs implements AsyncIterable<Buffer>, AsyncDisposable {
  /** Unique among the server's open connections. */
  readonly id: number
  /** Bytes delivered to the handler so far. */
  bytesRead = 0
  /** Bytes accepted by `write()` so far (in the kernel or queued). */
  bytesWritten = 0

  /** `CLOSED`, `WRITE_CLOSED`, `SETTLED`. */
  #state = 0
  /**
   * The addresses (and TLS facts): the native side's while open, fetched on first use; after
   * the close, the CLOSED event's text until something asks (then parsed once).
   */
  #facts: BindingConnectionInfo | ClosedInfo | string | null = null
  #extra: ConnectionExtra | null = null

  /** @internal Created by the server. */
  constructor(native: BindingConnections, id: number, settings: ConnectionSettings) {
    super(native, settings)
    this.id = id
  }

  // Private helpers are static, as in connection/reader.ts: no brand slot in every connection.
  static {
    deliverDrain = (c) => Connection.#onDrain(c)
    deliverClosed = (c, closedText) => Connection.#onClosed(c, closedText)
    releaseConnection = (c) => Connection.#release(c)
    handlerSettled = (c, close) => {
      if (!(c.#state & WRITE_CLOSED)) c.#state |= SETTLED
      if (close) c.close()
      else Connection.#release(c)
    }
    deliverTlsEnd = (c, closeNotify) => c.tlsEnded(closeNotify)
  }

  /**
   * Writes `data` (strings as UTF-8). Bytes go straight to the socket when it accepts them;
   * the rest is queued. Resolves at once while the queue is under `highWaterMark`, otherwise
   * when it has drained; so `await conn.write(x)` applies backpressure to a slow reader.
   *
   * Rejects with `ERR_STREAM_WRITE_AFTER_END` after `end()`, and with
   * `ERR_TCPSERVER_HANDLER_SETTLED` once the handler has settled (the connection closes then:
   * callback-style code must keep the handler's promise pending until it has written).
   */
  write(data: Uint8Array | string): Promise<void> {
    try {
      expectData('data', data, this.write)
    } catch (e) {
      return quietReject(e as Error)
    }
    if (this.#state & (CLOSED | WRITE_CLOSED)) return quietReject(Connection.#writeClosedError(this))
    let queued: number
    try {
      if (typeof data === 'string') {
        queued = this.native.writeString(this.id, data)
        this.bytesWritten += Buffer.byteLength(data)
      } else {
        queued = this.settings.calls.write(this.id, data)
        this.bytesWritten += data.byteLength
      }
    } catch (e) {
      return quietReject(fromNative(e, { caller: this.write, syscall: 'write' }))
    }
    if (queued < this.highWaterMark) return RESOLVED
    const extra = Connection.#extraOf(this)
    const drained = new Promise<void>((resolve, reject) => {
      if (extra.drainWaiters === null) extra.drainWaiters = []
      extra.drainWaiters.push([resolve, reject])
    })
    // Like an immediate failure: a write nobody awaits must not become an unhandled
    // rejection when the peer goes away; the error also reaches read(), `error` and `signal`.
    drained.catch(noop)
    return drained
  }

  /** Why output is closed: the handler settled, the connection failed, or end()/close(). */
  static #writeClosedError(conn: Connection): TcpServerError {
    if (conn.#state & SETTLED) {
      return codedError(
        'ERR_TCPSERVER_HANDLER_SETTLED',
        `write after the handler settled: connection ${conn.id} was closed when its handler's promise ` +
          'settled. Keep it open by awaiting the work that writes inside the handler (return a promise ' +
          'that settles when writing is done, e.g. `await once(emitter, "done")`)',
      )
    }
    return conn.#extra?.error ?? codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end')
  }

  /**
   * This connection as a `node:stream` Duplex, for code written against Node streams:
   * `stream.pipeline()`, zlib, parsers, or `http.Server#emit('connection', duplex)`.
   *
   * - Backpressure both ways: the readable side calls `read()` only when the stream wants
   *   data, and a write's callback waits for the connection's output queue to drain.
   * - The peer's FIN ends the readable side; `duplex.end()` half-closes (`conn.end()`: FIN
   *   after the queued bytes are flushed).
   * - A connection failure is the Duplex's `error`, with its `code` (`ECONNRESET`, ...).
   * - `destroy(err)` closes the connection at once; `destroy()` without an error, or the end of
   *   both sides, flushes and closes it, as when the handler returns.
   *
   * The Duplex takes over reading: later `read()`, `for await`, `pipe()` and `startTls()`
   * calls fail with `ERR_TCPSERVER_STREAM_LOCKED`. Input read before the call is not replayed;
   * input received but not read yet comes out of the Duplex. Calling `toDuplex()` again returns
   * the same Duplex (its options are those of the first call). Direct `write()`s stay allowed
   * but are not ordered with bytes still buffered in the Duplex.
   *
   * The handler's return still closes the connection: await the stream's end first, e.g.
   * `await pipeline(duplex, transform, duplex)` or `await finished(duplex)`. Note that Node's
   * `for await (const chunk of duplex)` destroys the Duplex when the loop ends, which closes
   * the connection; use `duplex.iterator({ destroyOnReturn: false })` to write afterwards.
   *
   * @throws {TcpServerError} `ERR_TCPSERVER_STREAM_LOCKED` if `conn.readable` already owns the
   * input; `ERR_TCPSERVER_BUSY` while a `read()` is pending or the connection is piping.
   */
  toDuplex(options?: ConnectionDuplexOptions): ConnectionDuplex<Connection> {
    const made = this.#extra?.duplex
    if (made) return made
    const opts = validateDuplexOptions(options, this.toDuplex)
    this.claimInput(this.jobHoldsInput, 'toDuplex()')
    const duplex = new ConnectionDuplex(this, () => this.readInput(), opts)
    Connection.#extraOf(this).duplex = duplex
    return duplex
  }

  /**
   * The connection's input as a web `ReadableStream` of bytes (as Deno's `conn.readable`),
   * created on first use. It pulls with `read()` only when its queue is empty, so the
   * connection's read backpressure still applies. BYOB readers are supported. It closes at the
   * peer's FIN and errors with the connection's error. `cancel()` closes the connection, after
   * flushing output already written. Each chunk is copied once (a byte stream owns the memory
   * it hands out).
   *
   * Like {@link Connection.toDuplex} it takes over reading: direct reads then fail with
   * `ERR_TCPSERVER_STREAM_LOCKED`.
   *
   * @throws {TcpServerError} `ERR_TCPSERVER_STREAM_LOCKED` if `toDuplex()` already owns the
   * input; `ERR_TCPSERVER_BUSY` while a `read()` is pending or the connection is piping.
   */
  get readable(): ReadableStream<Uint8Array> {
    const made = this.#extra?.readable
    if (made) return made
    this.claimInput(this.jobHoldsInput, 'conn.readable')
    const readable = createReadable(this, () => this.readInput())
    Connection.#extraOf(this).readable = readable
    return readable
  }

  /**
   * The connection's output as a web `WritableStream` (as Deno's `conn.writable`), created on
   * first use. Each chunk (a `Uint8Array`) goes through `write()`, whose promise the stream
   * waits for, so `writer.ready` and `pipeTo()` follow the connection's backpressure.
   * `close()` half-closes (`end()`: FIN after the queued bytes); `abort()` closes at once.
   * Writing does not lock anything: direct `write()` calls interleave chunk by chunk.
   */
  get writable(): WritableStream<Uint8Array> {
    const extra = Connection.#extraOf(this)
    if (extra.writable === null) extra.writable = createWritable(this)
    return extra.writable
  }

  /**
   * Forwards bytes both ways between this connection and `other`, entirely in Rust, until
   * both directions ended: `splice(2)` through a kernel pipe on Linux (the bytes never enter
   * JavaScript or even user space), a copy loop elsewhere. A FIN one way is passed on and
   * keeps the other way open; an error on either side closes both. Data this connection
   * already received but the handler has not read is sent first, after `options.head`.
   * Afterwards both connections' input is consumed (`read()` returns `null`).
   *
   * @throws {TcpServerError} `ERR_TCPSERVER_BUSY` if either connection is already piping,
   * sending a file or has a pending `read()`; the error that ended the pipe, e.g. `ECONNRESET`.
   */
  async pipe(other: Connection, pipeOptions?: PipeOptions): Promise<PipeResult> {
    // Here, not in connection/jobs.ts with the rest of the job: its parameter is this class.
    if (!(other instanceof Connection)) throw argType('other', 'an instance of Connection', other, this.pipe)
    if (other === this) throw argValue('other', 'must be another connection than this one', other, this.pipe)
    return this.pipeTo(other, validatePipeOptions(pipeOptions, this.pipe))
  }

  /**
   * Half-closes: writes `data` if given (like `net.Socket#end(data)`), then sends FIN after
   * the queued bytes are flushed. Reading goes on. Returns the connection, as Node does.
   * `data` is written even over `highWaterMark`: end() does not wait, the FIN follows it.
   */
  end(data?: Uint8Array | string): this {
    if (data !== undefined) expectData('data', data, this.end)
    if (this.#state & (CLOSED | WRITE_CLOSED)) return this
    // write() queues synchronously, so the FIN below always follows `data`; its failure
    // (a reset) also reaches read(), `error` and `signal`.
    if (data !== undefined) void this.write(data)
    this.#state |= WRITE_CLOSED
    try {
      this.native.end(this.id)
    } catch {
      // Already closed: the CLOSED event settles everything.
    }
    return this
  }

  /** Closes now; bytes still queued in the process are dropped. */
  close(): void {
    if (this.#state & CLOSED) return
    // The native side forgets the connection at once; keep the addresses for code that reads
    // them right after (like onError), before the CLOSED event brings them.
    Connection.#fetchInfo(this)
    this.#state |= WRITE_CLOSED
    this.native.close(this.id)
  }

  /** Resolves when the connection has closed (for any reason). */
  get closed(): Promise<void> {
    if (this.#state & CLOSED) return this.#extra?.closedPromise ?? RESOLVED
    const extra = Connection.#extraOf(this)
    if (extra.closedPromise === null) {
      extra.closedPromise = new Promise((resolve) => {
        extra.closedResolve = resolve
      })
    }
    return extra.closedPromise
  }

  /** Aborted when the connection closes; `reason` is the error, if it failed. */
  get signal(): AbortSignal {
    const extra = Connection.#extraOf(this)
    if (extra.abort === null) {
      extra.abort = new AbortController()
      if (this.#state & CLOSED)
        extra.abort.abort(extra.error ?? codedError('ERR_SOCKET_CLOSED', 'connection closed'))
    }
    return extra.abort.signal
  }

  /** The error that ended the connection, if any. */
  get error(): TcpServerError | null {
    return this.#extra?.error ?? null
  }

  /** Sets `TCP_NODELAY`. */
  setNoDelay(noDelay = true): this {
    // Any value, taken for its truth, as net.Socket#setNoDelay does.
    Connection.#setting(this, () => this.native.setNoDelay(this.id, Boolean(noDelay)), {
      caller: this.setNoDelay,
    })
    return this
  }

  /** Turns TCP keep-alive on or off; `initialDelay` in ms like `net.Socket#setKeepAlive`. */
  setKeepAlive(enable = false, initialDelay?: number): this {
    expectNumber('initialDelay', initialDelay, this.setKeepAlive)
    Connection.#setting(
      this,
      () => this.native.setKeepAlive(this.id, Boolean(enable), initialDelay || undefined),
      {
        caller: this.setKeepAlive,
        arg: { name: 'initialDelay', value: initialDelay },
      },
    )
    return this
  }

  /**
   * A setting's native call on a connection that may have closed meanwhile (then it is a
   * no-op, as on a destroyed net.Socket); its argument errors in Node's words.
   */
  static #setting(conn: Connection, call: () => void, context: NativeContext): void {
    if (conn.#state & CLOSED) return
    try {
      call()
    } catch (e) {
      const err = fromNative(e, context)
      if ((err as TcpServerError).code !== 'ERR_SOCKET_CLOSED') throw err
    }
  }

  /** Timeout `kind` (`TIMEOUT_*`) of this connection: one native call for every kind. */
  static #setTimeout(conn: Connection, kind: number, ms: number, name: string): void {
    if (typeof ms !== 'number') throw argType(name, 'of type number', ms)
    Connection.#setting(conn, () => conn.native.setTimeout(conn.id, kind, ms), {
      arg: { name, value: ms },
    })
  }

  /** Milliseconds without a byte moving either way before the connection is closed; 0 = off. */
  get idleTimeout(): number {
    const own = this.#extra?.idleTimeout ?? -1
    return own >= 0 ? own : (this.settings.timeouts[TIMEOUT_IDLE] ?? 0)
  }

  /** Changes the idle timeout of this connection (ms; 0 turns it off). */
  set idleTimeout(ms: number) {
    Connection.#setTimeout(this, TIMEOUT_IDLE, ms, 'conn.idleTimeout')
    Connection.#extraOf(this).idleTimeout = ms
  }

  /**
   * Milliseconds queued output may wait without the peer taking a byte before the connection
   * is closed with `ERR_TCPSERVER_WRITE_TIMEOUT`; 0 = off.
   */
  get writeTimeout(): number {
    const own = this.#extra?.writeTimeout ?? -1
    return own >= 0 ? own : (this.settings.timeouts[TIMEOUT_WRITE] ?? 0)
  }

  set writeTimeout(ms: number) {
    Connection.#setTimeout(this, TIMEOUT_WRITE, ms, 'conn.writeTimeout')
    Connection.#extraOf(this).writeTimeout = ms
  }

  /** Flushes and closes (same as the handler settling). */
  [Symbol.asyncDispose](): Promise<void> {
    Connection.#release(this)
    return this.closed
  }

  /** @internal The facts the address and TLS getters read. */
  protected override facts(): BindingConnectionInfo | ClosedInfo | null {
    return Connection.#fetchInfo(this)
  }

  static #fetchInfo(conn: Connection): BindingConnectionInfo | ClosedInfo | null {
    const known = conn.#facts
    if (typeof known === 'string') [conn.#facts] = parseClosed(known)
    else if (known === null && !(conn.#state & CLOSED)) conn.#facts = conn.native.info(conn.id) ?? null
    return conn.#facts as BindingConnectionInfo | ClosedInfo | null
  }

  static #extraOf(conn: Connection): ConnectionExtra {
    if (conn.#extra === null) conn.#extra = new ConnectionExtra()
    return conn.#extra
  }

  /** @internal For jobs: the error that closed the connection, or `ERR_SOCKET_CLOSED`; `null` while open. */
  protected override closedError(): TcpServerError | null {
    return this.#state & CLOSED
      ? (this.#extra?.error ?? codedError('ERR_SOCKET_CLOSED', 'connection closed'))
      : null
  }

  /** @internal For jobs: the handler settled, so output is refused. */
  protected override settledError(): TcpServerError | null {
    return this.#state & SETTLED ? Connection.#writeClosedError(this) : null
  }

  /** @internal A pipe ended: nothing more may be written. */
  protected override endOutput(): void {
    this.#state |= WRITE_CLOSED
  }

  /** @internal After StartTLS. */
  protected override forgetInfo(): void {
    this.#facts = null
    this.forgetTls()
  }

  static #onDrain(conn: Connection): void {
    const extra = conn.#extra
    const waiters = extra?.drainWaiters
    if (!extra || !waiters) return
    extra.drainWaiters = null
    for (const [resolve] of waiters) resolve()
  }

  static #onClosed(conn: Connection, closedText: string): void {
    if (conn.#state & CLOSED) return
    // Addresses already fetched stay; otherwise the text keeps them until asked for.
    if (conn.#facts === null) conn.#facts = closedText
    const err = errorOfClosed(closedText)
    conn.#state |= CLOSED | WRITE_CLOSED
    if (err) Connection.#extraOf(conn).error = err
    conn.closeInput(err)
    const extra = conn.#extra
    if (extra === null) {
      if (conn.jobsWaiting) conn.failJobs(err ?? codedError('ERR_SOCKET_CLOSED', 'connection closed'))
      return
    }
    const waiters = extra.drainWaiters
    extra.drainWaiters = null
    if (waiters) {
      const e = err ?? codedError('ERR_SOCKET_CLOSED', 'connection closed before the queue drained')
      for (const [, reject] of waiters) reject(e)
    }
    // An Error costs a stack capture: made only when something still waits for the connection.
    if (conn.jobsWaiting || extra.abort !== null) {
      const gone = err ?? codedError('ERR_SOCKET_CLOSED', 'connection closed')
      conn.failJobs(gone)
      extra.abort?.abort(gone)
    }
    extra.closedResolve?.()
  }

  static #release(conn: Connection): void {
    if (conn.#state & CLOSED) return
    conn.#state |= WRITE_CLOSED
    // Closed during the call (the loop, with nothing left to send): no CLOSED event comes.
    const closedText = conn.settings.calls.release(conn.id)
    if (closedText !== undefined) conn.settings.closedNow(conn, closedText)
  }
}
