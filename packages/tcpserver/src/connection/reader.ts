// A connection's input: chunks from the server's event batches queued until read (or passed to
// a `receive` callback as they arrive), read credit returned to Rust in batches, direct reads
// (`readNow`) while the peer streams, the read timeout, the `for await` iterator, and the lock
// a stream adapter puts on direct reads.
//
// A base class of Connection rather than an object it holds: an idle connection then pays for
// these fields only, not for a second object with its own header and a pointer to it. What only
// some connections need (a read timer, a stream adapter's lock, a changed readTimeout) lives in
// a small object made on first use.

import { argType, codedError, fromBinding, systemError, type TcpServerError } from '../errors.js'
import type { BindingConnections } from '../native.js'
import type { ChunkCallback } from '../types.js'
import { ConnectionFacts } from './facts.js'
import { type ConnectionSettings, DONE, noop, RESOLVED, Reader } from './state.js'

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

/** Who took over the input; direct reads are refused from then on. */
export type InputOwner = 'toDuplex()' | 'conn.readable'

/** Internal entry points for the server's event dispatch (not exported from the package). */
export let deliverData: (c: ConnectionReader, chunk: Buffer) => void
export let deliverEnd: (c: ConnectionReader) => void
/**
 * What a handler's result is to the server (adoptHandlerResult): not a `receive()` promise of
 * its connection (watch it with `.then`), one still running (the server is told at its settle,
 * through `ConnectionSettings.handlerDone`), or one that has already resolved.
 */
export enum HandlerResult {
  Foreign = 0,
  Adopted = 1,
  Resolved = 2,
}
/**
 * A server about to watch its handler's result asks this first. A handler that returns its
 * connection's `receive()` promise itself (`return conn.receive(cb)`) needs no watcher: the
 * reader tells the server when it settles, so an idle connection does not pay for a reaction,
 * a derived promise and two closures with their context (about 260 bytes).
 */
export let adoptHandlerResult: (c: ConnectionReader, result: unknown) => HandlerResult
let iterateNext: (c: ConnectionReader) => Promise<IteratorResult<Buffer>>

/** Bits of `#state`: the pending reader (`Reader`) in the low two, then these. */
const READER_MASK = 3
/** The last chunk was big: try `readNow` before waiting for an event. */
const STREAMING = 4
/** No more input: the peer's FIN, the end of a pipe, or the connection closed. */
const ENDED = 8
/** A `receive` callback's promise is pending: chunks wait in the queue until it settles. */
const CALLING = 16
/**
 * A `receive` is waiting for input (its `readTimeout` counts): set when its input runs dry,
 * cleared by the next chunk. Not set while chunks flow or its callback's promise is pending.
 */
const WAITING = 32
/** A `receive`'s delivery goes on in a `setImmediate` (at most one per connection). */
const DEFERRED = 64
/** The pending `receive`'s promise is the handler's result: its settle goes to `ConnectionSettings.handlerDone`. */
const ADOPTED = 128
/** Direct reads in a row a `receive` makes before it lets the event loop run (a fast peer must not starve it). */
const DIRECT_READS_PER_TURN = 16

/** The reading state only some connections need, made on first use. */
class ReaderExtra {
  /** This connection's `readTimeout` once changed; -1: the server's. */
  readTimeout = -1
  /** Armed while a read waits (at most one timer per connection, not one per read). */
  readTimer: NodeJS.Timeout | null = null
  waitStart = 0
  /** Set once toDuplex() or `readable` owns the input: direct reads are refused from then on. */
  inputOwner: InputOwner | null = null
}

/** `for await` over a connection: one small object, where two closures and their context cost every connection more. */
class ConnectionIterator implements AsyncIterator<Buffer> {
  readonly #conn: ConnectionReader
  constructor(conn: ConnectionReader) {
    this.#conn = conn
  }
  next(): Promise<IteratorResult<Buffer>> {
    return iterateNext(this.#conn)
  }
  return(): Promise<IteratorResult<Buffer>> {
    return Promise.resolve(DONE)
  }
}

/** The reading half of {@link Connection}: `read()`, `for await`, `readTimeout`. */
export abstract class ConnectionReader extends ConnectionFacts implements AsyncIterable<Buffer> {
  /** Declared by Connection (where it is documented), so that its fields keep their order. */
  abstract readonly id: number
  abstract bytesRead: number
  /** The error that closed the connection: reads reject with it. */
  abstract get error(): TcpServerError | null
  /** A pipe or a TLS upgrade has the input (from the pause before it until it is done). */
  protected abstract get jobUnderWay(): boolean

  readonly #native: BindingConnections
  /** The server's defaults, shared by its connections. */
  readonly #settings: ConnectionSettings
  /** Chunks received and not read yet (from `#head` on); made at the first one that waits. */
  #chunks: Buffer[] | null = null
  #head = 0
  #unacked = 0
  /** `READER_MASK`, `STREAMING`, `ENDED`. */
  #state = 0
  #resolve: ((v: never) => void) | null = null
  #reject: ((e: Error) => void) | null = null
  /** `receive`'s callback while it runs. */
  #onChunk: ChunkCallback | null = null
  /**
   * The promise the last `receive()` returned, until it rejects or a server adopted it and it
   * settled: how adoptHandlerResult knows a handler's result (and marks it handled if it fails).
   */
  #receivePromise: Promise<void> | null = null
  #extra: ReaderExtra | null = null

  constructor(native: BindingConnections, settings: ConnectionSettings) {
    super()
    this.#native = native
    this.#settings = settings
  }

  // The private helpers are static and take the connection: a class with a private instance
  // method gives every instance one more slot (its brand, 8 bytes per idle connection); a
  // static one costs nothing per connection, and its call is as cheap.
  static {
    iterateNext = (c) => ConnectionReader.#next(c)
    deliverData = (c, chunk) => ConnectionReader.#onData(c, chunk)
    deliverEnd = (c) => ConnectionReader.#onEnd(c)
    adoptHandlerResult = (c, result) => ConnectionReader.#adopt(c, result)
  }

  /** @internal The server (or hub) this connection lives on. */
  protected get native(): BindingConnections {
    return this.#native
  }

  /** @internal The server's defaults for its connections. */
  protected get settings(): ConnectionSettings {
    return this.#settings
  }

  /** @internal Bytes queued before a write waits; the largest chunk a read returns. */
  protected get highWaterMark(): number {
    return this.#settings.highWaterMark
  }

  /**
   * The next chunk of data, or `null` once the peer has finished sending (or the connection
   * closed). Rejects with `ECONNRESET` and similar when the connection fails, and with
   * `ETIMEDOUT` when it waited longer than `readTimeout` (the connection stays open). One read
   * at a time.
   */
  read(): Promise<Buffer | null> {
    const refused = ConnectionReader.#refusal(this, 'read()')
    if (refused !== null) return Promise.reject(refused)
    return this.readInput()
  }

  /** @internal `read()` for the stream adapter that owns the input. */
  protected readInput(): Promise<Buffer | null> {
    if (ConnectionReader.#queued(this)) return Promise.resolve(ConnectionReader.#take(this))
    const error = this.error
    if (error) return Promise.reject(error)
    if (this.#state & ENDED) return Promise.resolve(null)
    const chunk = this.#state & STREAMING ? ConnectionReader.#readNow(this) : null
    if (chunk !== null) return Promise.resolve(chunk)
    return ConnectionReader.#wait(this, Reader.Read)
  }

  /**
   * Calls `onChunk` with each chunk as it arrives, in order, without a promise per chunk: the
   * cheapest way to receive (a handler that answers requests as they come needs no `await`
   * per request). Chunks received before the call are passed before it returns.
   *
   * Resolves when the peer has finished sending (or the connection closed), or once `onChunk`
   * returns `false` (or a promise of `false`): the input not passed yet then stays for
   * `read()`, `pipe()` or another `receive()`. While a promise `onChunk` returned is pending,
   * later chunks wait for it, and past `highWaterMark` the peer is slowed down: so
   * `return conn.write(answer)` applies backpressure to a peer that does not read its answers
   * (and costs nothing while the write queue is under `highWaterMark`).
   *
   * Rejects with what `onChunk` threw (or its promise's rejection); with `ECONNRESET` and
   * similar when the connection fails, after the chunks received before the failure; with
   * `ETIMEDOUT` when no chunk came for `readTimeout` ms (the connection stays open); and, like
   * `read()`, with `ERR_TCPSERVER_CONCURRENT_READ` while another read is pending. It is the
   * connection's one reader while it runs. It settles only after a promise `onChunk` returned
   * has settled, even once the connection has closed (a callback whose promise never settles
   * keeps it, and the handler, pending).
   */
  receive(onChunk: ChunkCallback): Promise<void> {
    if (typeof onChunk !== 'function') return Promise.reject(argType('onChunk', 'of type function', onChunk))
    const refused = ConnectionReader.#refusal(this, 'receive()')
    if (refused !== null) return Promise.reject(refused)
    // Its read timer starts when its input runs dry (in #pump), not here.
    const done = ConnectionReader.#wait<void>(this, Reader.Receive)
    // Unless #wait refused it (another read or receive is pending: `done` is rejected), this
    // receive is the connection's reader now.
    if ((this.#state & READER_MASK) === Reader.Receive && this.#onChunk === null) {
      this.#onChunk = onChunk
      this.#receivePromise = done
      ConnectionReader.#pump(this, 0)
    }
    return done
  }

  /** `for await (const chunk of conn)`: the chunks `read()` would return, until the peer finished. */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return new ConnectionIterator(this)
  }

  static #next(conn: ConnectionReader): Promise<IteratorResult<Buffer>> {
    const refused = ConnectionReader.#refusal(conn, 'for await')
    if (refused !== null) return Promise.reject(refused)
    if (ConnectionReader.#queued(conn))
      return Promise.resolve({ value: ConnectionReader.#take(conn), done: false })
    const error = conn.error
    if (error) return Promise.reject(error)
    if (conn.#state & ENDED) return Promise.resolve(DONE)
    const chunk = conn.#state & STREAMING ? ConnectionReader.#readNow(conn) : null
    if (chunk !== null) return Promise.resolve({ value: chunk, done: false })
    return ConnectionReader.#wait(conn, Reader.Iterate)
  }

  /**
   * Milliseconds a `read()` may wait for data before it rejects with `ETIMEDOUT`; 0 = off.
   * Changing it applies to reads that start afterwards.
   */
  get readTimeout(): number {
    return ConnectionReader.#readTimeoutOf(this)
  }

  static #readTimeoutOf(conn: ConnectionReader): number {
    const own = conn.#extra?.readTimeout ?? -1
    return own >= 0 ? own : conn.#settings.readTimeout
  }

  static #extraOf(conn: ConnectionReader): ReaderExtra {
    if (conn.#extra === null) conn.#extra = new ReaderExtra()
    return conn.#extra
  }

  /** A chunk waits in the queue. */
  static #queued(conn: ConnectionReader): boolean {
    return conn.#chunks !== null && conn.#head < conn.#chunks.length
  }

  set readTimeout(ms: number) {
    if (typeof ms !== 'number') throw argType('conn.readTimeout', 'of type number', ms)
    const err = this.#native.checkReadTimeout(ms)
    if (err) throw fromBinding(err, undefined, () => ({ name: 'conn.readTimeout', value: ms }))
    ConnectionReader.#extraOf(this).readTimeout = ms
  }

  /**
   * @internal Throws unless the input is free: no stream adapter owns it, no read is pending,
   * and not `busy` (piping). With `owner`, that adapter owns the input from now on.
   */
  protected claimInput(busy: boolean, owner?: InputOwner): void {
    if (this.#extra?.inputOwner != null) throw ConnectionReader.#lockedError(this)
    if (busy || (this.#state & READER_MASK) !== Reader.None) {
      const what = 'connection is piping or has a pending read() or receive()'
      throw codedError('ERR_TCPSERVER_BUSY', owner === undefined ? what : `${owner}: the ${what}`)
    }
    if (owner !== undefined) ConnectionReader.#extraOf(this).inputOwner = owner
  }

  /**
   * Why the handler may not read now: a stream adapter owns the input, or a pipe or TLS
   * upgrade has it (a read would take bytes meant for it, or wait until it ended).
   */
  static #refusal(conn: ConnectionReader, what: string): TcpServerError | null {
    if (conn.#extra?.inputOwner != null) return ConnectionReader.#lockedError(conn)
    if (conn.jobUnderWay)
      return codedError('ERR_TCPSERVER_BUSY', `${what}: the connection is piping or starting TLS`)
    return null
  }

  static #lockedError(conn: ConnectionReader): TcpServerError {
    return codedError(
      'ERR_TCPSERVER_STREAM_LOCKED',
      `the connection's input is read through ${conn.#extra?.inputOwner}`,
    )
  }

  /** @internal Unread input, handed to a pipe or to TLS: it counts as read. */
  protected takeQueued(): Buffer | undefined {
    const rest = this.#chunks?.slice(this.#head) ?? []
    this.#chunks = null
    this.#head = 0
    if (rest.length === 0) return undefined
    const all = rest.length === 1 ? (rest[0] as Buffer) : Buffer.concat(rest)
    this.bytesRead += all.length
    return all
  }

  /** @internal A pipe consumed the input: reads return `null`. */
  protected endInput(): void {
    this.#state |= ENDED
  }

  /** @internal The connection closed: a waiting read gets `error` (or `null`), later ones too. */
  protected closeInput(error: TcpServerError | null): void {
    const extra = this.#extra
    if (extra !== null && extra.readTimer !== null) {
      clearTimeout(extra.readTimer)
      extra.readTimer = null
    }
    this.#state |= ENDED
    // A receive whose callback's promise is pending settles when it resumes, after the chunks
    // still queued.
    if ((this.#state & READER_MASK) === Reader.None || this.#state & CALLING) return
    if (error) ConnectionReader.#fail(this, error)
    else ConnectionReader.#settle(this, null)
  }

  static #take(conn: ConnectionReader): Buffer {
    const chunks = conn.#chunks as Buffer[]
    const chunk = chunks[conn.#head] as Buffer
    chunks[conn.#head++] = undefined as unknown as Buffer
    if (conn.#head === chunks.length) {
      chunks.length = 0
      conn.#head = 0
    }
    ConnectionReader.#consumed(conn, chunk.length)
    return chunk
  }

  // Read credit goes back to Rust in batches of half the high-water mark: one native call
  // per 32 KiB consumed by default, and Rust never waits for an ack while JS is keeping up.
  static #consumed(conn: ConnectionReader, n: number): void {
    conn.bytesRead += n
    conn.#unacked += n
    if (conn.#unacked >= conn.#settings.highWaterMark >>> 1) {
      conn.#settings.calls.ack(conn.id, conn.#unacked)
      conn.#unacked = 0
    }
  }

  // Only with nothing buffered and no read pending: `bytesRead` is then everything delivered,
  // which the native side compares with what it has read, so no chunk can overtake another.
  static #readNow(conn: ConnectionReader): Buffer | null {
    // No chunk is bigger than the high-water mark, direct or not. (Computed here, not kept per
    // connection: idle connections should not pay for it.)
    const size = Math.min(READ_NOW_SIZE, conn.#settings.highWaterMark)
    const buf =
      size === READ_NOW_SIZE && spareReadBuffer !== null ? spareReadBuffer : Buffer.allocUnsafeSlow(size)
    if (buf === spareReadBuffer) spareReadBuffer = null
    const n = conn.#settings.calls.readNow(conn.id, conn.bytesRead, buf)
    conn.bytesRead += n
    if (n >= Math.min(STREAMING_CHUNK, size)) return n === buf.length ? buf : buf.subarray(0, n)
    // After bytes, reading stays ours until a call returns 0 (which hands it back to the
    // driver): only then may a read wait for events.
    if (n === 0) conn.#state &= ~STREAMING
    if (size === READ_NOW_SIZE) spareReadBuffer = buf // a few bytes are copied out: it serves the next call
    return n === 0 ? null : Buffer.from(buf.subarray(0, n))
  }

  static #wait<T>(conn: ConnectionReader, reader: Reader): Promise<T> {
    if ((conn.#state & READER_MASK) !== Reader.None) {
      return Promise.reject(codedError('ERR_TCPSERVER_CONCURRENT_READ', 'another read() is already pending'))
    }
    conn.#state |= reader
    if (reader !== Reader.Receive) ConnectionReader.#startWaiting(conn)
    return new Promise<T>((resolve, reject) => {
      conn.#resolve = resolve as (v: never) => void
      conn.#reject = reject
    })
  }

  /** A read starts waiting: its `readTimeout` counts from now. */
  static #startWaiting(conn: ConnectionReader): void {
    const timeout = ConnectionReader.#readTimeoutOf(conn)
    if (timeout > 0) {
      // One clock read per wait; the timer is created only when none is armed.
      const extra = ConnectionReader.#extraOf(conn)
      extra.waitStart = performance.now()
      if (extra.readTimer === null) ConnectionReader.#armReadTimer(extra, conn, timeout)
    }
  }

  static #armReadTimer(extra: ReaderExtra, conn: ConnectionReader, ms: number): void {
    extra.readTimer = setTimeout(() => ConnectionReader.#onReadTimer(extra, conn), ms)
    extra.readTimer.unref()
  }

  // The timer may belong to an earlier read: it checks how long the current one has waited
  // and sleeps again for the rest. (Closing clears it: closeInput.) A receive counts only
  // while it waits for input (not while chunks flow or its callback's promise is pending):
  // the pump arms the timer again when its input runs dry.
  static #onReadTimer(extra: ReaderExtra, conn: ConnectionReader): void {
    extra.readTimer = null
    const timeout = ConnectionReader.#readTimeoutOf(conn)
    const reader = conn.#state & READER_MASK
    if (reader === Reader.None || timeout === 0) return
    if (reader === Reader.Receive && !(conn.#state & WAITING)) return
    const left = timeout - (performance.now() - extra.waitStart)
    if (left >= 1) {
      ConnectionReader.#armReadTimer(extra, conn, Math.ceil(left))
      return
    }
    conn.#native.countReadTimeout()
    ConnectionReader.#fail(conn, systemError('ETIMEDOUT', 'read'))
  }

  /** The pending read (or receive) resolves: with `value`, or the end of the input (`null`). */
  static #settle(conn: ConnectionReader, value: Buffer | null): void {
    const resolve = conn.#resolve as unknown as (v: unknown) => void
    const state = conn.#state
    ConnectionReader.#clearReader(conn)
    const reader = state & READER_MASK
    if (reader === Reader.Read) resolve(value)
    else if (reader === Reader.Iterate) resolve(value === null ? DONE : { value, done: false })
    else {
      resolve(undefined)
      if (state & ADOPTED) {
        conn.#receivePromise = null
        conn.#settings.handlerDone?.(conn, false, undefined)
      }
    }
  }

  /** The pending read (or receive) rejects. */
  static #fail(conn: ConnectionReader, error: unknown): void {
    const reject = conn.#reject as (e: unknown) => void
    const state = conn.#state
    ConnectionReader.#clearReader(conn)
    if ((state & READER_MASK) === Reader.Receive) {
      // A rejected receive is no handler's result to adopt any more (the server watches it).
      const promise = conn.#receivePromise
      conn.#receivePromise = null
      // Adopted: the server reports it (onError), not an unhandled rejection as well.
      if (state & ADOPTED) (promise as Promise<void>).catch(noop)
    }
    reject(error)
    if (state & ADOPTED) conn.#settings.handlerDone?.(conn, true, error)
  }

  static #adopt(conn: ConnectionReader, result: unknown): HandlerResult {
    if (result !== conn.#receivePromise || result === null) return HandlerResult.Foreign
    // Still running: #receivePromise is the pending receive's (each receive() replaces it).
    if ((conn.#state & READER_MASK) === Reader.Receive) {
      conn.#state |= ADOPTED
      return HandlerResult.Adopted
    }
    // Settled before the handler returned (a rejection would have cleared it): resolved.
    conn.#receivePromise = null
    return HandlerResult.Resolved
  }

  static #clearReader(conn: ConnectionReader): void {
    conn.#state &= ~(READER_MASK | CALLING | WAITING | ADOPTED)
    conn.#resolve = null
    conn.#reject = null
    conn.#onChunk = null
  }

  /**
   * receive's delivery: the queued chunks, then (while the peer streams) what the socket
   * holds, each to the callback, until the callback stops or makes it wait, or the input is
   * exhausted (then it waits for events) or ended (then receive settles). `direct`: direct
   * reads made since the event loop last turned (carried through the callback's promises).
   */
  static #pump(conn: ConnectionReader, direct: number): void {
    while ((conn.#state & (READER_MASK | CALLING)) === Reader.Receive) {
      let chunk: Buffer | null = null
      if (ConnectionReader.#queued(conn)) {
        chunk = ConnectionReader.#take(conn)
      } else if (conn.error !== null) {
        ConnectionReader.#fail(conn, conn.error)
        return
      } else if (conn.#state & ENDED) {
        ConnectionReader.#settle(conn, null)
        return
      } else if (conn.#state & STREAMING) {
        if (direct >= DIRECT_READS_PER_TURN) {
          // Reading is ours (the driver waits for a readNow that returns 0): go on next turn.
          ConnectionReader.#defer(conn)
          return
        }
        direct++
        chunk = ConnectionReader.#readNow(conn)
      }
      if (chunk === null) {
        conn.#state |= WAITING
        ConnectionReader.#startWaiting(conn)
        return
      }
      if (!ConnectionReader.#pass(conn, chunk, direct)) return
    }
  }

  /** Delivery goes on after the event loop turned; one continuation per connection at a time. */
  static #defer(conn: ConnectionReader): void {
    if (conn.#state & DEFERRED) return
    conn.#state |= DEFERRED
    setImmediate(() => {
      conn.#state &= ~DEFERRED
      ConnectionReader.#pump(conn, 0)
    })
  }

  /**
   * One chunk to receive's callback; false when delivery stops here (finished, or waiting for
   * the callback's promise). `direct`: as in #pump.
   */
  static #pass(conn: ConnectionReader, chunk: Buffer, direct: number): boolean {
    conn.#state &= ~WAITING
    let result: unknown
    try {
      result = (conn.#onChunk as ChunkCallback)(chunk)
      // `return conn.write(x)` under the high-water mark: nothing to wait for.
      if (result === RESOLVED) return true
      // A callback cannot end its own receive (reads and jobs are refused meanwhile), but a
      // thenable can call back early: whatever ended it has settled it.
      if ((conn.#state & (READER_MASK | CALLING)) !== Reader.Receive) return false
      if (result === false) {
        ConnectionReader.#settle(conn, null)
        return false
      }
      if (
        result !== null &&
        typeof result === 'object' &&
        typeof (result as PromiseLike<unknown>).then === 'function'
      ) {
        conn.#state |= CALLING
        ;(result as PromiseLike<unknown>).then(
          (value) => ConnectionReader.#resume(conn, value, null, direct),
          (error: unknown) =>
            ConnectionReader.#resume(
              conn,
              undefined,
              error ?? new Error(`onChunk's promise rejected with ${error}`),
              direct,
            ),
        )
        return false
      }
    } catch (e) {
      if ((conn.#state & READER_MASK) === Reader.Receive) ConnectionReader.#fail(conn, e)
      return false
    }
    return true
  }

  /**
   * The promise receive's callback returned settled: stop, fail, or deliver what waited.
   * `direct` carries on from before the wait: promise reactions do not let the event loop turn.
   */
  static #resume(conn: ConnectionReader, value: unknown, error: unknown, direct: number): void {
    if ((conn.#state & (READER_MASK | CALLING)) !== (Reader.Receive | CALLING)) return
    conn.#state &= ~CALLING
    if (error !== null) ConnectionReader.#fail(conn, error)
    else if (value === false) ConnectionReader.#settle(conn, null)
    else ConnectionReader.#pump(conn, direct)
  }

  static #onData(conn: ConnectionReader, chunk: Buffer): void {
    // Set here, cleared only by a readNow() that returns 0 (see #readNow).
    if (chunk.length >= Math.min(STREAMING_CHUNK, conn.#settings.highWaterMark)) conn.#state |= STREAMING
    const reader = conn.#state & (READER_MASK | CALLING)
    if (reader === Reader.Receive) {
      // Nothing is queued while receive runs and its callback is not pending.
      ConnectionReader.#consumed(conn, chunk.length)
      if (ConnectionReader.#pass(conn, chunk, 0)) ConnectionReader.#pump(conn, 0)
    } else if (reader === Reader.Read || reader === Reader.Iterate) {
      ConnectionReader.#consumed(conn, chunk.length)
      ConnectionReader.#settle(conn, chunk)
    } else if (conn.#chunks === null) {
      conn.#chunks = [chunk]
    } else {
      conn.#chunks.push(chunk)
    }
  }

  static #onEnd(conn: ConnectionReader): void {
    conn.#state |= ENDED
    // A receive whose callback's promise is pending settles when it resumes.
    const waiting = (conn.#state & READER_MASK) !== Reader.None && !(conn.#state & CALLING)
    if (waiting && !ConnectionReader.#queued(conn)) ConnectionReader.#settle(conn, null)
  }
}
