// Adapters from a Connection to Node streams (`node:stream` Duplex) and web streams. Kept out
// of connection.ts: they use only the connection's public methods (named by `StreamedConnection`,
// so this module does not import connection.ts, which imports it), plus a read function that
// bypasses the lock the connection puts on direct reads once an adapter owns its input.

import { Duplex } from 'node:stream'
import { ReadableStream, WritableStream } from 'node:stream/web'
import type { AddressInfo, ConnectionDuplexOptions } from './types.js'

export type { ConnectionDuplexOptions }

/**
 * The part of a `Connection`'s public API the stream adapters use. `Connection`
 * implements it; `conn.toDuplex().connection` is typed as the `Connection` itself.
 */
export interface StreamedConnection {
  readonly closed: Promise<void>
  readonly error: Error | null
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  readonly remoteFamily: AddressInfo['family'] | undefined
  readonly localAddress: string | undefined
  readonly localPort: number | undefined
  write(data: Uint8Array | string): Promise<void>
  end(data?: Uint8Array | string): unknown
  close(): void
  address(): AddressInfo | Record<string, never>
  setNoDelay(noDelay?: boolean): unknown
  setKeepAlive(enable?: boolean, initialDelay?: number): unknown
  [Symbol.asyncDispose](): Promise<void>
}

/** Reads the connection's next chunk (`null` at the peer's FIN) on behalf of an adapter. */
export type ReadSource = () => Promise<Buffer | null>

/**
 * A `node:stream` Duplex over a `Connection`, from `conn.toDuplex()`. Besides the stream
 * API it has a few `net.Socket` look-alikes (`remoteAddress`, `remotePort`, `setNoDelay()`, ...)
 * so libraries written for sockets, such as `node:http`, find what they look for.
 */
export class ConnectionDuplex<C extends StreamedConnection = StreamedConnection> extends Duplex {
  /** The connection this stream reads from and writes to. */
  readonly connection: C
  readonly #read: ReadSource
  #reading = false
  #timer: NodeJS.Timeout | null = null

  /** @internal Created by `Connection.toDuplex()`. */
  constructor(connection: C, read: ReadSource, options: ConnectionDuplexOptions = {}) {
    super({
      allowHalfOpen: options.allowHalfOpen ?? true,
      readableHighWaterMark: options.readableHighWaterMark,
      writableHighWaterMark: options.writableHighWaterMark,
      // Bytes only: strings are turned into Buffers by Writable, objects are refused.
      decodeStrings: true,
    })
    this.connection = connection
    this.#read = read
    // A failure while the stream is in use becomes its `error` at once, as on a net.Socket,
    // even if no read or write is pending; once both sides are done it has nothing to report.
    connection.closed.then(() => {
      const err = connection.error
      if (err && !this.destroyed && !(this.readableEnded && this.writableFinished)) this.destroy(err)
    })
  }

  /**
   * @internal One `conn.read()` at a time, only when the stream asks for data: unread input
   * stays in the connection, whose credit-based read backpressure then slows the peer down.
   */
  override _read(): void {
    if (this.#reading) return
    this.#reading = true
    this.#read().then(
      (chunk) => {
        this.#reading = false
        this.#timer?.refresh()
        this.push(chunk)
      },
      (err: Error) => {
        this.#reading = false
        this.destroy(err)
      },
    )
  }

  /**
   * @internal The callback waits for the connection's write promise, which is pending while
   * its output queue is over highWaterMark: the Duplex buffers then, and write() returns false.
   */
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#timer?.refresh()
    this.connection.write(chunk).then(() => callback(), callback)
  }

  /** @internal Several buffered chunks at once. */
  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    callback: (error?: Error | null) => void,
  ): void {
    // Each write is a synchronous native call; only the last can still be waiting for a drain.
    this.#timer?.refresh()
    Promise.all(chunks.map((c) => this.connection.write(c.chunk))).then(() => callback(), callback)
  }

  /** @internal end() → FIN once the queued bytes are flushed; reading goes on (half-close). */
  override _final(callback: (error?: Error | null) => void): void {
    this.connection.end()
    callback(this.connection.error)
  }

  /**
   * @internal With an error: close now (queued output dropped). Without one (the stream
   * finished, or destroy() without a reason): flush what is queued, then close, as when the
   * handler returns.
   */
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#timer) clearTimeout(this.#timer)
    if (err) this.connection.close()
    else this.connection[Symbol.asyncDispose]().catch(() => {})
    callback(err)
  }

  /** The client's IP address, like `net.Socket#remoteAddress`. */
  get remoteAddress(): string | undefined {
    return this.connection.remoteAddress
  }

  /** The client's port. */
  get remotePort(): number | undefined {
    return this.connection.remotePort
  }

  /** `'IPv4'`, `'IPv6'` or `'unix'`. */
  get remoteFamily(): string | undefined {
    return this.connection.remoteFamily
  }

  /** The local IP address. */
  get localAddress(): string | undefined {
    return this.connection.localAddress
  }

  /** The local port. */
  get localPort(): number | undefined {
    return this.connection.localPort
  }

  /** The local address as `net.Socket#address()` returns it. */
  address(): AddressInfo | Record<string, never> {
    return this.connection.address()
  }

  /** Sets `TCP_NODELAY` on the connection. */
  setNoDelay(noDelay = true): this {
    this.connection.setNoDelay(noDelay)
    return this
  }

  /**
   * Emits `'timeout'` after `ms` without data passing through this Duplex, like
   * `net.Socket#setTimeout`: nothing is closed (node:http uses it for `keepAliveTimeout` and
   * destroys the stream itself). `0` turns it off. For a timeout that closes the connection,
   * set `conn.idleTimeout`.
   */
  setTimeout(ms: number, callback?: () => void): this {
    if (callback) {
      if (ms === 0) this.removeListener('timeout', callback)
      else this.once('timeout', callback)
    }
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    if (ms > 0 && !this.destroyed) {
      this.#timer = setTimeout(() => this.emit('timeout'), ms)
      // Like a socket's timeout, it does not keep the process alive.
      this.#timer.unref()
    }
    return this
  }

  /** TCP keep-alive on the connection, as `net.Socket#setKeepAlive`. */
  setKeepAlive(enable = false, initialDelay?: number): this {
    this.connection.setKeepAlive(enable, initialDelay)
    return this
  }
}

/**
 * The connection's input as a byte `ReadableStream`. BYOB readers get the bytes copied straight
 * into their views; default readers get a copy of each chunk, because a byte stream takes
 * ownership of the memory it is handed, and received chunks share theirs. Cancelling closes
 * the connection, after flushing what was already written.
 */
export function createReadable(connection: StreamedConnection, read: ReadSource): ReadableStream<Uint8Array> {
  return new ReadableStream({
    type: 'bytes',
    // Pulled only when the stream's queue is empty: backpressure stays with the connection.
    async pull(controller) {
      const chunk = await read()
      const request = controller.byobRequest
      if (chunk === null) {
        controller.close()
        request?.respond(0)
        return
      }
      const view = request?.view
      if (request && view) {
        const n = Math.min(view.byteLength, chunk.length)
        new Uint8Array(view.buffer, view.byteOffset, n).set(chunk.subarray(0, n))
        request.respond(n)
        if (n < chunk.length) controller.enqueue(new Uint8Array(chunk.subarray(n)))
      } else {
        controller.enqueue(new Uint8Array(chunk))
      }
    },
    cancel() {
      return connection[Symbol.asyncDispose]()
    },
  }) as ReadableStream<Uint8Array>
}

/**
 * The connection's output as a `WritableStream`. Each chunk goes to `conn.write()`, and the
 * stream waits for its promise, so `writer.ready` reflects the connection's output queue.
 * `close()` half-closes (`conn.end()`); `abort()` closes the connection at once.
 */
export function createWritable(connection: StreamedConnection): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write(chunk) {
      if (!(chunk instanceof Uint8Array)) {
        throw new TypeError('The chunk written to conn.writable must be a Uint8Array')
      }
      return connection.write(chunk)
    },
    close() {
      connection.end()
      if (connection.error) throw connection.error
    },
    abort() {
      connection.close()
    },
  })
}
