// Dispatches one native event batch in a tight loop to the connections of one server (or of the
// outbound hub). Event kinds and layout: crates/tcpserver-node/src/events.rs.

import { deliverFileDone, deliverPaused, deliverPipeDone, deliverTlsStarted } from './connection/jobs.js'
import { deliverData, deliverEnd } from './connection/reader.js'
import type { ConnectionSettings } from './connection/state.js'
import { Connection, deliverClosed, deliverDrain, deliverTlsEnd } from './connection.js'
import type { BindingConnections } from './native.js'
import type { ShutdownResult } from './types.js'

const OPEN = 1
const DATA = 2
const END = 3
const DRAIN = 4
const CLOSED = 5
const SERVER_CLOSED = 6
const PAUSED = 7
const PIPE_DONE = 8
const FILE_DONE = 9
const CONNECT_FAILED = 10
const TLS_ERROR = 11
const TLS_STARTED = 12
const TLS_SNI = 13
const TLS_END = 14

/** What the owner of a router reacts to. */
export interface RouterHooks {
  /** A connection opened; `tag` is the outbound `connect` call's tag (0 for accepted ones). */
  open(conn: Connection, tag: number): void
  /** A `receive()` promise a handler returned (and the server adopted) settled: ConnectionSettings.handlerDone. */
  handlerDone?(conn: Connection, failed: boolean, error: unknown): void
  closed?(conn: Connection): void
  serverClosed?(result: ShutdownResult): void
  connectFailed?(tag: number, text: string): void
  tlsError?(text: string): void
  sni?(token: number, servername: string | null): void
}

export class EventRouter {
  readonly #native: BindingConnections
  readonly #hooks: RouterHooks
  readonly #settings: ConnectionSettings
  readonly conns: Map<number, Connection> = new Map()
  /** The consumer loop's event area (crates/tcpserver-node/src/uv_watch.rs) and a view of it, made once. */
  #area: Buffer | null = null
  #areaWords: Uint32Array = new Uint32Array(0)

  constructor(native: BindingConnections, hooks: RouterHooks) {
    this.#native = native
    this.#hooks = hooks
    // Read once: native getters are N-API calls, not worth one per connection.
    this.#settings = {
      calls: native.hotCalls(),
      highWaterMark: native.highWaterMark,
      timeouts: native.timeouts,
      readTimeout: native.readTimeout,
      handlerDone: hooks.handlerDone,
      closedNow: (conn, closedText) => this.#closed(conn as Connection, closedText),
    }
  }

  /** A connection closed: its CLOSED event, or its release closed it at once (`closedNow`). */
  #closed(conn: Connection, closedText: string): void {
    this.conns.delete(conn.id)
    deliverClosed(conn, closedText)
    this.#hooks.closed?.(conn)
  }

  /**
   * The native event callback: one call per batch. `events` holds the batch's event words, or,
   * with `count`, is the loop's event area, reused by every batch, whose first `count` words
   * are this batch's.
   */
  dispatch(events: Buffer, payload: Buffer, count?: number): void {
    let words: Uint32Array
    if (count === undefined) {
      words =
        events.byteOffset % 4 === 0
          ? new Uint32Array(events.buffer, events.byteOffset, events.length >>> 2)
          : new Uint32Array(Uint8Array.from(events).buffer)
      count = words.length
    } else {
      if (events !== this.#area) {
        this.#area = events
        this.#areaWords = new Uint32Array(events.buffer, events.byteOffset, events.length >>> 2)
      }
      words = this.#areaWords
    }
    const conns = this.conns
    for (let i = 0; i < count; i += 4) {
      const kind = words[i] as number
      const id = words[i + 1] as number
      const a = words[i + 2] as number
      const b = words[i + 3] as number
      try {
        if (kind === DATA) {
          const conn = conns.get(id)
          if (conn) deliverData(conn, payload.subarray(a, a + b))
        } else if (kind === OPEN) {
          const conn = new Connection(this.#native, id, this.#settings)
          conns.set(id, conn)
          // Input read in the same round follows its Open (the loop reads a new connection at
          // once): queued before the handler starts, its first read finds it without waiting
          // on a promise.
          for (let next = i + 4; next < count && words[next + 1] === id; next += 4) {
            const nextKind = words[next]
            if (nextKind === DATA) {
              const at = words[next + 2] as number
              deliverData(conn, payload.subarray(at, at + (words[next + 3] as number)))
            } else if (nextKind === END) deliverEnd(conn)
            else break
            i = next
          }
          this.#hooks.open(conn, a)
        } else if (kind === TLS_END) {
          const conn = conns.get(id)
          if (conn) deliverTlsEnd(conn, a === 1)
        } else if (kind === END) {
          const conn = conns.get(id)
          if (conn) deliverEnd(conn)
        } else if (kind === DRAIN) {
          const conn = conns.get(id)
          if (conn) deliverDrain(conn)
        } else if (kind === CLOSED) {
          const conn = conns.get(id)
          if (conn) this.#closed(conn, payload.toString('latin1', a, a + b))
        } else if (kind === PAUSED) {
          const conn = conns.get(id)
          if (conn) deliverPaused(conn)
        } else if (kind === PIPE_DONE) {
          const conn = conns.get(id)
          if (conn) deliverPipeDone(conn, payload.toString('latin1', a, a + b))
        } else if (kind === FILE_DONE) {
          const conn = conns.get(id)
          if (conn) deliverFileDone(conn, payload.toString('latin1', a, a + b))
        } else if (kind === CONNECT_FAILED) {
          this.#hooks.connectFailed?.(0, payload.toString('latin1', a, a + b))
        } else if (kind === TLS_STARTED) {
          const conn = conns.get(id)
          if (conn) deliverTlsStarted(conn, payload.toString('latin1', a, a + b))
        } else if (kind === TLS_SNI) {
          // id: the question's token; b: the name's length, top bit set when there is a name.
          const name = b >>> 31 ? payload.toString('latin1', a, a + (b & 0x7fffffff)) : null
          this.#hooks.sni?.(id, name)
        } else if (kind === TLS_ERROR) {
          this.#hooks.tlsError?.(payload.toString('latin1', a, a + b))
        } else if (kind === SERVER_CLOSED) {
          this.#hooks.serverClosed?.({ completed: a, forced: b })
        }
      } catch (e) {
        // A throwing user callback (e.g. in a promise executor) must not stop the batch.
        queueMicrotask(() => {
          throw e
        })
      }
    }
  }
}
