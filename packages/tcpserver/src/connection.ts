// One client connection. Reads come from the server's event batches (no native call per
// chunk), or, while the peer streams, from one synchronous native call that reads what the
// socket already holds; writes are one synchronous native call that tries the socket at once.

import type { ReadableStream, WritableStream } from 'node:stream/web'
import { type ClosedInfo, ConnectionFacts, parseClosed } from './connection/facts.js'
import { DONE, noop, Pipe, quietReject, Reader, type Settle, splitDone } from './connection/state.js'
import {
  argType,
  argValue,
  codedError,
  fileError,
  fromBinding,
  fromNative,
  inOptions,
  type NativeContext,
  systemError,
  type TcpServerError,
} from './errors.js'
import type { BindingConnectionInfo, BindingServer } from './native.js'
import { ConnectionDuplex, createReadable, createWritable } from './streams.js'
import { toBindingTls } from './tls.js'
import type {
  ConnectionDuplexOptions,
  PipeOptions,
  PipeResult,
  SendFileOptions,
  TlsOptions,
} from './types.js'
import {
  expectData,
  expectNumber,
  validateDuplexOptions,
  validatePipeOptions,
  validateSendFileArgs,
  validateTls,
} from './validate.js'

const RESOLVED: Promise<void> = Promise.resolve()

/**
 * A chunk at least this big means the peer is streaming: the next read first asks the socket
 * directly (`readNow`), which saves the worker's read and a thread hop per chunk. Smaller
 * chunks (requests that each wait for their answer) would mostly find the socket empty.
 */
const STREAMING_CHUNK = 16 * 1024
/** The buffer size of a direct read: the driver's largest read (or `highWaterMark` if smaller, which bounds chunks). */
const READ_NOW_SIZE = 64 * 1024
/** A full-size direct-read buffer that came back empty (or whose few bytes were copied out), for the next one. */
let spareReadBuffer: Buffer | null = null

/** A server's (or the outbound hub's) defaults for its connections, read once. */
export interface ConnectionSettings {
  highWaterMark: number
  idleTimeout: number
  readTimeout: number
  writeTimeout: number
}

/** Internal entry points for the server's event dispatch (not exported from the package). */
export let deliverData: (c: Connection, chunk: Buffer) => void
export let deliverEnd: (c: Connection) => void
export let deliverDrain: (c: Connection) => void
export let deliverClosed: (c: Connection, closedText: string) => void
export let releaseConnection: (c: Connection) => void
/** The handler settled (returned, resolved, threw or rejected): flush and close, or `close` now. */
export let handlerSettled: (c: Connection, close: boolean) => void
export let deliverPaused: (c: Connection) => void
export let deliverPipeDone: (c: Connection, text: string) => void
export let deliverFileDone: (c: Connection, text: string) => void
export let deliverTlsStarted: (c: Connection, text: string) => void
/** @internal How a TLS peer ended its input: with `close_notify` or not (just before END). */
export let deliverTlsEnd: (c: Connection, closeNotify: boolean) => void
let iterateNext: (c: Connection) => Promise<IteratorResult<Buffer>>

/** `for await` over a connection: one small object, where two closures and their context cost every connection more. */
class ConnectionIterator implements AsyncIterator<Buffer> {
  readonly #conn: Connection
  constructor(conn: Connection) {
    this.#conn = conn
  }
  next(): Promise<IteratorResult<Buffer>> {
    return iterateNext(this.#conn)
  }
  return(): Promise<IteratorResult<Buffer>> {
    return Promise.resolve(DONE)
  }
}

/**
 * A TCP connection handed to a handler. Read with `await conn.read()` or
 * `for await (const chunk of conn)`; write with `conn.write()`. Closed automatically when the
 * handler settles.
 */
export class Connection extends ConnectionFacts implements AsyncIterable<Buffer>, AsyncDisposable {
  /** Unique among the server's open connections. */
  readonly id: number
  /** Bytes delivered to the handler so far. */
  bytesRead = 0
  /** Bytes accepted by `write()` so far (in the kernel or queued). */
  bytesWritten = 0

  readonly #native: BindingServer
  readonly #highWaterMark: number
  #chunks: Buffer[] = []
  #head = 0
  #unacked = 0
  /** The last chunk was big: try `readNow` before waiting for an event. */
  #streaming = false
  #ended = false
  #closed = false
  #writeClosed = false
  /** Output was closed because the handler settled (not by end()/close()): writes say so. */
  #settled = false
  #error: TcpServerError | null = null
  #reader: Reader = Reader.None
  #resolve: ((v: never) => void) | null = null
  #reject: ((e: Error) => void) | null = null
  #drainWaiters: Array<[() => void, (e: Error) => void]> | null = null
  #info: BindingConnectionInfo | ClosedInfo | null = null
  #closedText: string | null = null
  #closedPromise: Promise<void> | null = null
  #closedResolve: (() => void) | null = null
  #abort: AbortController | null = null
  #idleTimeout: number
  #writeTimeout: number
  #readTimeout: number
  /** Armed while a read waits (at most one timer per connection, not one per read). */
  #readTimer: NodeJS.Timeout | null = null
  #waitStart = 0
  #pipe: Pipe = Pipe.None
  #pipePeer: Connection | null = null
  #paused: Settle<void> | null = null
  #pipeDone: Settle<PipeResult> | null = null
  /** Pending sendFile() calls, in call order: the native side finishes them in that order. */
  #filesDone: Settle<number>[] | null = null
  #tlsStarted: Settle<void> | null = null
  /** Set once toDuplex() or `readable` owns the input: direct reads are refused from then on. */
  #inputOwner: 'toDuplex()' | 'conn.readable' | null = null
  #duplex: ConnectionDuplex | null = null
  #readable: ReadableStream<Uint8Array> | null = null
  #writable: WritableStream<Uint8Array> | null = null

  /** @internal Created by the server. */
  constructor(native: BindingServer, id: number, settings: ConnectionSettings) {
    super()
    this.#native = native
    this.id = id
    this.#highWaterMark = settings.highWaterMark
    this.#idleTimeout = settings.idleTimeout
    this.#readTimeout = settings.readTimeout
    this.#writeTimeout = settings.writeTimeout
  }

  static {
    iterateNext = (c) => c.#next()
    deliverData = (c, chunk) => c.#onData(chunk)
    deliverEnd = (c) => c.#onEnd()
    deliverDrain = (c) => c.#onDrain()
    deliverClosed = (c, closedText) => c.#onClosed(closedText)
    releaseConnection = (c) => c.#release()
    handlerSettled = (c, close) => {
      if (!c.#writeClosed) c.#settled = true
      if (close) c.close()
      else c.#release()
    }
    deliverPaused = (c) => c.#onPaused()
    deliverPipeDone = (c, text) => c.#onPipeDone(text)
    deliverFileDone = (c, text) => c.#onFileDone(text)
    deliverTlsStarted = (c, text) => c.#onTlsStarted(text)
    deliverTlsEnd = (c, closeNotify) => c.tlsEnded(closeNotify)
  }

  /**
   * The next chunk of data, or `null` once the peer has finished sending (or the connection
   * closed). Rejects with `ECONNRESET` and similar when the connection fails, and with
   * `ETIMEDOUT` when it waited longer than `readTimeout` (the connection stays open). One read
   * at a time.
   */
  read(): Promise<Buffer | null> {
    if (this.#inputOwner !== null) return Promise.reject(this.#lockedError())
    return this.#read()
  }

  #read(): Promise<Buffer | null> {
    if (this.#head < this.#chunks.length) return Promise.resolve(this.#take())
    if (this.#error) return Promise.reject(this.#error)
    if (this.#ended || this.#closed) return Promise.resolve(null)
    const chunk = this.#streaming ? this.#readNow() : null
    if (chunk !== null) return Promise.resolve(chunk)
    return this.#wait(Reader.Read)
  }

  /** `for await (const chunk of conn)`: the chunks `read()` would return, until the peer finished. */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return new ConnectionIterator(this)
  }

  #next(): Promise<IteratorResult<Buffer>> {
    if (this.#inputOwner !== null) return Promise.reject(this.#lockedError())
    if (this.#head < this.#chunks.length) return Promise.resolve({ value: this.#take(), done: false })
    if (this.#error) return Promise.reject(this.#error)
    if (this.#ended || this.#closed) return Promise.resolve(DONE)
    const chunk = this.#streaming ? this.#readNow() : null
    if (chunk !== null) return Promise.resolve({ value: chunk, done: false })
    return this.#wait(Reader.Iterate)
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
    if (this.#closed || this.#writeClosed) return quietReject(this.#writeClosedError())
    let queued: number
    try {
      if (typeof data === 'string') {
        queued = this.#native.writeString(this.id, data)
        this.bytesWritten += Buffer.byteLength(data)
      } else {
        queued = this.#native.write(this.id, data)
        this.bytesWritten += data.byteLength
      }
    } catch (e) {
      return quietReject(fromNative(e, { caller: this.write, syscall: 'write' }))
    }
    if (queued < this.#highWaterMark) return RESOLVED
    const drained = new Promise<void>((resolve, reject) => {
      if (this.#drainWaiters === null) this.#drainWaiters = []
      this.#drainWaiters.push([resolve, reject])
    })
    // Like an immediate failure: a write nobody awaits must not become an unhandled
    // rejection when the peer goes away; the error also reaches read(), `error` and `signal`.
    drained.catch(noop)
    return drained
  }

  /** Why output is closed: the handler settled, the connection failed, or end()/close(). */
  #writeClosedError(): TcpServerError {
    if (this.#settled) {
      return codedError(
        'ERR_TCPSERVER_HANDLER_SETTLED',
        `write after the handler settled: connection ${this.id} was closed when its handler's promise ` +
          'settled. Keep it open by awaiting the work that writes inside the handler (return a promise ' +
          'that settles when writing is done, e.g. `await once(emitter, "done")`)',
      )
    }
    return this.#error ?? codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end')
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
  toDuplex(options?: ConnectionDuplexOptions): ConnectionDuplex {
    if (this.#duplex === null) {
      const opts = validateDuplexOptions(options, this.toDuplex)
      this.#takeInput('toDuplex()')
      this.#duplex = new ConnectionDuplex(this, () => this.#read(), opts)
    }
    return this.#duplex
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
    if (this.#readable === null) {
      this.#takeInput('conn.readable')
      this.#readable = createReadable(this, () => this.#read())
    }
    return this.#readable
  }

  /**
   * The connection's output as a web `WritableStream` (as Deno's `conn.writable`), created on
   * first use. Each chunk (a `Uint8Array`) goes through `write()`, whose promise the stream
   * waits for, so `writer.ready` and `pipeTo()` follow the connection's backpressure.
   * `close()` half-closes (`end()`: FIN after the queued bytes); `abort()` closes at once.
   * Writing does not lock anything: direct `write()` calls interleave chunk by chunk.
   */
  get writable(): WritableStream<Uint8Array> {
    if (this.#writable === null) this.#writable = createWritable(this)
    return this.#writable
  }

  #takeInput(owner: 'toDuplex()' | 'conn.readable'): void {
    if (this.#inputOwner !== null) throw this.#lockedError()
    if (this.#pipe !== Pipe.None || this.#reader !== Reader.None) {
      throw codedError('ERR_TCPSERVER_BUSY', `${owner}: the connection is piping or has a pending read()`)
    }
    this.#inputOwner = owner
  }

  #lockedError(): TcpServerError {
    return codedError(
      'ERR_TCPSERVER_STREAM_LOCKED',
      `the connection's input is read through ${this.#inputOwner}`,
    )
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
    if (!(other instanceof Connection)) throw argType('other', 'an instance of Connection', other, this.pipe)
    if (other === this) throw argValue('other', 'must be another connection than this one', other, this.pipe)
    const options = validatePipeOptions(pipeOptions, this.pipe)
    for (const c of [this, other]) c.#assertIdle()
    this.#pipePeer = other
    other.#pipePeer = this
    await Promise.all([this.#pauseReading(), other.#pauseReading()])
    const mine = this.#takeQueued()
    const toOther = options.head && mine ? Buffer.concat([options.head, mine]) : (options.head ?? mine)
    const toThis = other.#takeQueued()
    return new Promise<PipeResult>((resolve, reject) => {
      this.#pipeDone = [resolve, reject]
      this.#pipe = Pipe.Piping
      other.#pipe = Pipe.Piping
      const err = this.#native.pipe(this.id, other.#native, other.id, toOther, toThis, options.idleTimeout)
      if (err) {
        this.#pipeDone = null
        reject(fromBinding(err, undefined, inOptions(options)))
      }
    })
  }

  /**
   * Sends a file (by path, or by a descriptor you keep owning) or a range of it, after the
   * bytes already written: `sendfile(2)` on Linux for plain TCP, a read/write loop elsewhere.
   * Writes made meanwhile go out after it. Resolves with the bytes sent.
   *
   * Only regular files are sent. The file is opened non-blocking (a FIFO without a writer
   * never holds the event loop) and checked on the open descriptor.
   *
   * @throws {TcpServerError} `ENOENT`, `EACCES`, `ENAMETOOLONG` (with `syscall` and `path`);
   * `EISDIR` for a directory; `ERR_TCPSERVER_NOT_A_FILE` for a FIFO, socket or device, or a
   * pseudo-file that reports 0 bytes but has content (`/proc`: read it and `write()` it);
   * `ERR_INVALID_ARG_VALUE` for a path with a NUL byte, or (a `RangeError` with
   * `option: 'offset' | 'length'`) for a range outside the file;
   * `ERR_TCPSERVER_FILE_TRUNCATED` if the file shrank while it was sent.
   */
  sendFile(file: string | number, sendOptions?: SendFileOptions): Promise<number> {
    let options: SendFileOptions
    try {
      options = validateSendFileArgs(file, sendOptions, this.sendFile)
    } catch (e) {
      return Promise.reject(e)
    }
    // The native call reserves the output now, so writes made after this call follow the file.
    return new Promise<number>((resolve, reject) => {
      if (this.#closed || this.#settled) {
        reject(
          this.#settled
            ? this.#writeClosedError()
            : (this.#error ?? codedError('ERR_SOCKET_CLOSED', 'connection closed')),
        )
        return
      }
      const err =
        typeof file === 'string'
          ? this.#native.sendFile(this.id, file, undefined, options.offset, options.length)
          : this.#native.sendFile(this.id, undefined, file, options.offset, options.length)
      if (err) {
        const context = inOptions(options)
        const e = fromBinding(err, undefined, (o) =>
          o === 'file' ? { name: 'file', value: file } : context(o),
        )
        reject(typeof file === 'string' ? fileError(e, 'open', file) : e)
      } else if (this.#filesDone === null) this.#filesDone = [[resolve, reject]]
      else this.#filesDone.push([resolve, reject])
    })
  }

  /**
   * Upgrades this plain connection to TLS in place (StartTLS, as in SMTP, IMAP or Postgres),
   * with the server's TLS settings or `options`. Bytes written before go out in plaintext;
   * bytes written after are encrypted. Input the handler received but did not read (the
   * start of the client's handshake) is handed to TLS, so nothing is lost. Resolves once the
   * handshake completed; then `conn.tls` describes it.
   *
   * @throws {TcpServerError} `ERR_TCPSERVER_TLS_HANDSHAKE` (the connection is then closed),
   * `ERR_TCPSERVER_BUSY` with a pending `read()`, `ERR_INVALID_ARG_VALUE` for bad settings or
   * when the connection already speaks TLS.
   */
  async startTls(tlsOptions?: TlsOptions): Promise<void> {
    const options =
      tlsOptions === undefined
        ? undefined
        : (validateTls(tlsOptions, this.startTls, 'options') as unknown as TlsOptions)
    this.#assertIdle()
    await this.#pauseReading()
    const head = this.#takeQueued()
    await new Promise<void>((resolve, reject) => {
      this.#tlsStarted = [resolve, reject]
      const err = this.#native.startTls(this.id, head, options ? toBindingTls(options) : undefined)
      if (err) {
        this.#tlsStarted = null
        const context = inOptions(options)
        reject(
          fromBinding(err, undefined, (o) =>
            o === 'tls' ? { name: 'options', value: options } : context(o.replace(/^tls\./, '')),
          ),
        )
      }
    })
    this.#pipe = Pipe.None
    this.#info = null
    this.forgetTls()
  }

  #onTlsStarted(text: string): void {
    const [, err] = splitDone(text, 0)
    const done = this.#tlsStarted
    this.#tlsStarted = null
    if (err) done?.[1](err)
    else done?.[0]()
  }

  #assertIdle(): void {
    if (this.#closed) throw this.#error ?? codedError('ERR_SOCKET_CLOSED', 'connection closed')
    if (this.#inputOwner !== null) throw this.#lockedError()
    if (this.#pipe !== Pipe.None || this.#reader !== Reader.None) {
      throw codedError('ERR_TCPSERVER_BUSY', 'connection is piping or has a pending read()')
    }
  }

  #pauseReading(): Promise<void> {
    this.#pipe = Pipe.Pausing
    return new Promise<void>((resolve, reject) => {
      this.#paused = [resolve, reject]
      const err = this.#native.pauseReading(this.id)
      if (err) {
        this.#paused = null
        reject(fromBinding(err))
      }
    })
  }

  /** Unread input, handed to the pipe: it counts as read. */
  #takeQueued(): Buffer | undefined {
    const rest = this.#chunks.slice(this.#head)
    this.#chunks.length = 0
    this.#head = 0
    if (rest.length === 0) return undefined
    const all = rest.length === 1 ? (rest[0] as Buffer) : Buffer.concat(rest)
    this.bytesRead += all.length
    return all
  }

  #onPaused(): void {
    this.#pipe = Pipe.Paused
    const p = this.#paused
    this.#paused = null
    p?.[0]()
  }

  #onPipeDone(text: string): void {
    const [[bytesIn = 0, bytesOut = 0], err] = splitDone(text, 2)
    for (const c of [this, this.#pipePeer]) {
      if (!c) continue
      c.#pipe = Pipe.Done
      c.#ended = true
      c.#writeClosed = true
    }
    this.bytesRead += bytesIn
    this.bytesWritten += bytesOut
    const done = this.#pipeDone
    this.#pipeDone = null
    if (err) done?.[1](err)
    else done?.[0]({ bytesIn, bytesOut })
  }

  #onFileDone(text: string): void {
    const [[bytes = 0], err] = splitDone(text, 1)
    this.bytesWritten += bytes
    const done = this.#filesDone?.shift()
    if (err) done?.[1](err)
    else done?.[0](bytes)
  }

  /**
   * Half-closes: writes `data` if given (like `net.Socket#end(data)`), then sends FIN after
   * the queued bytes are flushed. Reading goes on. Returns the connection, as Node does.
   * `data` is written even over `highWaterMark`: end() does not wait, the FIN follows it.
   */
  end(data?: Uint8Array | string): this {
    if (data !== undefined) expectData('data', data, this.end)
    if (this.#closed || this.#writeClosed) return this
    // write() queues synchronously, so the FIN below always follows `data`; its failure
    // (a reset) also reaches read(), `error` and `signal`.
    if (data !== undefined) void this.write(data)
    this.#writeClosed = true
    try {
      this.#native.end(this.id)
    } catch {
      // Already closed: the CLOSED event settles everything.
    }
    return this
  }

  /** Closes now; bytes still queued in the process are dropped. */
  close(): void {
    if (this.#closed) return
    // The native side forgets the connection at once; keep the addresses for code that reads
    // them right after (like onError), before the CLOSED event brings them.
    this.#fetchInfo()
    this.#writeClosed = true
    this.#native.close(this.id)
  }

  /** Resolves when the connection has closed (for any reason). */
  get closed(): Promise<void> {
    if (this.#closedPromise === null) {
      this.#closedPromise = this.#closed
        ? RESOLVED
        : new Promise((resolve) => {
            this.#closedResolve = resolve
          })
    }
    return this.#closedPromise
  }

  /** Aborted when the connection closes; `reason` is the error, if it failed. */
  get signal(): AbortSignal {
    if (this.#abort === null) {
      this.#abort = new AbortController()
      if (this.#closed) this.#abort.abort(this.#error ?? codedError('ERR_SOCKET_CLOSED', 'connection closed'))
    }
    return this.#abort.signal
  }

  /** The error that ended the connection, if any. */
  get error(): TcpServerError | null {
    return this.#error
  }

  /** Sets `TCP_NODELAY`. */
  setNoDelay(noDelay = true): this {
    // Any value, taken for its truth, as net.Socket#setNoDelay does.
    this.#setting(() => this.#native.setNoDelay(this.id, Boolean(noDelay)), { caller: this.setNoDelay })
    return this
  }

  /** Turns TCP keep-alive on or off; `initialDelay` in ms like `net.Socket#setKeepAlive`. */
  setKeepAlive(enable = false, initialDelay?: number): this {
    expectNumber('initialDelay', initialDelay, this.setKeepAlive)
    this.#setting(() => this.#native.setKeepAlive(this.id, Boolean(enable), initialDelay || undefined), {
      caller: this.setKeepAlive,
      arg: { name: 'initialDelay', value: initialDelay },
    })
    return this
  }

  /**
   * A setting's native call on a connection that may have closed meanwhile (then it is a
   * no-op, as on a destroyed net.Socket); its argument errors in Node's words.
   */
  #setting(call: () => void, context: NativeContext): void {
    if (this.#closed) return
    try {
      call()
    } catch (e) {
      const err = fromNative(e, context)
      if ((err as TcpServerError).code !== 'ERR_SOCKET_CLOSED') throw err
    }
  }

  /** Milliseconds without a byte moving either way before the connection is closed; 0 = off. */
  get idleTimeout(): number {
    return this.#idleTimeout
  }

  /** Changes the idle timeout of this connection (ms; 0 turns it off). */
  set idleTimeout(ms: number) {
    if (typeof ms !== 'number') throw argType('conn.idleTimeout', 'of type number', ms)
    this.#setting(() => this.#native.setIdleTimeout(this.id, ms), {
      arg: { name: 'conn.idleTimeout', value: ms },
    })
    this.#idleTimeout = ms
  }

  /**
   * Milliseconds a `read()` may wait for data before it rejects with `ETIMEDOUT`; 0 = off.
   * Changing it applies to reads that start afterwards.
   */
  get readTimeout(): number {
    return this.#readTimeout
  }

  set readTimeout(ms: number) {
    if (typeof ms !== 'number') throw argType('conn.readTimeout', 'of type number', ms)
    const err = this.#native.checkReadTimeout(ms)
    if (err) throw fromBinding(err, undefined, () => ({ name: 'conn.readTimeout', value: ms }))
    this.#readTimeout = ms
  }

  /**
   * Milliseconds queued output may wait without the peer taking a byte before the connection
   * is closed with `ERR_TCPSERVER_WRITE_TIMEOUT`; 0 = off.
   */
  get writeTimeout(): number {
    return this.#writeTimeout
  }

  set writeTimeout(ms: number) {
    if (typeof ms !== 'number') throw argType('conn.writeTimeout', 'of type number', ms)
    this.#setting(() => this.#native.setWriteTimeout(this.id, ms), {
      arg: { name: 'conn.writeTimeout', value: ms },
    })
    this.#writeTimeout = ms
  }

  /** Flushes and closes (same as the handler settling). */
  [Symbol.asyncDispose](): Promise<void> {
    this.#release()
    return this.closed
  }

  /** @internal The facts the address and TLS getters read. */
  protected override facts(): BindingConnectionInfo | ClosedInfo | null {
    return this.#fetchInfo()
  }

  #fetchInfo(): BindingConnectionInfo | ClosedInfo | null {
    if (this.#info === null) {
      if (this.#closedText !== null) [this.#info] = parseClosed(this.#closedText)
      else if (!this.#closed) this.#info = this.#native.info(this.id) ?? null
    }
    return this.#info
  }

  #take(): Buffer {
    const chunk = this.#chunks[this.#head] as Buffer
    this.#chunks[this.#head++] = undefined as unknown as Buffer
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0
      this.#head = 0
    }
    this.#consumed(chunk.length)
    return chunk
  }

  // Read credit goes back to Rust in batches of half the high-water mark: one native call
  // per 32 KiB consumed by default, and Rust never waits for an ack while JS is keeping up.
  #consumed(n: number): void {
    this.bytesRead += n
    this.#unacked += n
    if (this.#unacked >= this.#highWaterMark >>> 1) {
      this.#native.ack(this.id, this.#unacked)
      this.#unacked = 0
    }
  }

  // Only with nothing buffered and no read pending: `bytesRead` is then everything delivered,
  // which the native side compares with what it has read, so no chunk can overtake another.
  #readNow(): Buffer | null {
    // No chunk is bigger than the high-water mark, direct or not. (Computed here, not kept per
    // connection: idle connections should not pay for it.)
    const size = Math.min(READ_NOW_SIZE, this.#highWaterMark)
    const buf =
      size === READ_NOW_SIZE && spareReadBuffer !== null ? spareReadBuffer : Buffer.allocUnsafeSlow(size)
    if (buf === spareReadBuffer) spareReadBuffer = null
    const n = this.#native.readNow(this.id, this.bytesRead, buf)
    this.bytesRead += n
    if (n >= Math.min(STREAMING_CHUNK, size)) return n === buf.length ? buf : buf.subarray(0, n)
    // After bytes, reading stays ours until a call returns 0 (which hands it back to the
    // driver): only then may a read wait for events.
    if (n === 0) this.#streaming = false
    if (size === READ_NOW_SIZE) spareReadBuffer = buf // a few bytes are copied out: it serves the next call
    return n === 0 ? null : Buffer.from(buf.subarray(0, n))
  }

  #wait<T>(reader: Reader): Promise<T> {
    if (this.#reader !== Reader.None) {
      return Promise.reject(codedError('ERR_TCPSERVER_CONCURRENT_READ', 'another read() is already pending'))
    }
    this.#reader = reader
    if (this.#readTimeout > 0) {
      // One clock read per waiting read; the timer is created only when none is armed.
      this.#waitStart = performance.now()
      if (this.#readTimer === null) this.#armReadTimer(this.#readTimeout)
    }
    return new Promise<T>((resolve, reject) => {
      this.#resolve = resolve as (v: never) => void
      this.#reject = reject
    })
  }

  #armReadTimer(ms: number): void {
    this.#readTimer = setTimeout(() => this.#onReadTimer(), ms)
    this.#readTimer.unref()
  }

  // The timer may belong to an earlier read: it checks how long the current one has waited
  // and sleeps again for the rest.
  #onReadTimer(): void {
    this.#readTimer = null
    if (this.#reader === Reader.None || this.#readTimeout === 0 || this.#closed) return
    const left = this.#readTimeout - (performance.now() - this.#waitStart)
    if (left >= 1) {
      this.#armReadTimer(Math.ceil(left))
      return
    }
    const reject = this.#reject as (e: Error) => void
    this.#reader = Reader.None
    this.#resolve = null
    this.#reject = null
    this.#native.countReadTimeout()
    reject(systemError('ETIMEDOUT', 'read'))
  }

  #settle(value: Buffer | null): void {
    const resolve = this.#resolve as unknown as (v: unknown) => void
    const reader = this.#reader
    this.#reader = Reader.None
    this.#resolve = null
    this.#reject = null
    if (reader === Reader.Read) resolve(value)
    else resolve(value === null ? DONE : { value, done: false })
  }

  #onData(chunk: Buffer): void {
    // Set here, cleared only by a readNow() that returns 0 (see #readNow).
    if (chunk.length >= Math.min(STREAMING_CHUNK, this.#highWaterMark)) this.#streaming = true
    if (this.#reader !== Reader.None) {
      this.#consumed(chunk.length)
      this.#settle(chunk)
    } else {
      this.#chunks.push(chunk)
    }
  }

  #onEnd(): void {
    this.#ended = true
    if (this.#reader !== Reader.None && this.#head === this.#chunks.length) this.#settle(null)
  }

  #onDrain(): void {
    const waiters = this.#drainWaiters
    this.#drainWaiters = null
    if (waiters) for (const [resolve] of waiters) resolve()
  }

  #onClosed(closedText: string): void {
    if (this.#closed) return
    if (this.#readTimer !== null) clearTimeout(this.#readTimer)
    this.#readTimer = null
    this.#closedText = closedText
    const [, err] = parseClosed(closedText)
    this.#closed = true
    this.#writeClosed = true
    if (err) this.#error = err
    if (this.#reader !== Reader.None) {
      if (err) {
        const reject = this.#reject as (e: Error) => void
        this.#reader = Reader.None
        this.#resolve = null
        this.#reject = null
        reject(err)
      } else {
        this.#settle(null)
      }
    }
    const waiters = this.#drainWaiters
    this.#drainWaiters = null
    if (waiters) {
      const e = err ?? codedError('ERR_SOCKET_CLOSED', 'connection closed before the queue drained')
      for (const [, reject] of waiters) reject(e)
    }
    // An Error costs a stack capture: made only when something still waits for the connection.
    if (
      this.#paused !== null ||
      (this.#filesDone?.length ?? 0) > 0 ||
      this.#pipeDone !== null ||
      this.#tlsStarted !== null ||
      this.#abort !== null
    ) {
      const gone = err ?? codedError('ERR_SOCKET_CLOSED', 'connection closed')
      this.#paused?.[1](gone)
      this.#paused = null
      for (const [, reject] of this.#filesDone?.splice(0) ?? []) reject(gone)
      this.#pipeDone?.[1](gone)
      this.#pipeDone = null
      this.#tlsStarted?.[1](gone)
      this.#tlsStarted = null
      this.#abort?.abort(gone)
    }
    this.#closedResolve?.()
  }

  #release(): void {
    if (this.#closed) return
    this.#writeClosed = true
    this.#native.release(this.id)
  }
}
