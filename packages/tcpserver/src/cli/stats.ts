// The counters the `tcpserver` handlers keep and the stats line that reports them with the
// server's own counters.
import type { Server } from '../index.js'
import type { CommandName } from './args.js'

/** Byte, request and failure counters the handlers keep (the server counts connections). */
export interface Counters {
  bytesIn: number
  bytesOut: number
  /** HTTP requests answered (`http`, `static`). */
  requests: number
  /** Upstream connections that failed (`proxy`). */
  upstreamErrors: number
}

/** Fresh counters, all zero. */
export function newCounters(): Counters {
  return { bytesIn: 0, bytesOut: 0, requests: 0, upstreamErrors: 0 }
}

const FIELDS = ['bytesIn', 'bytesOut', 'requests', 'upstreamErrors'] as const

/**
 * Room for the counters of `slots` worker threads, shared with them (`--workers`): each
 * worker adds to its own slot only, so no two threads write one number.
 */
export function sharedCounterBuffer(slots: number): SharedArrayBuffer {
  return new SharedArrayBuffer(slots * FIELDS.length * Float64Array.BYTES_PER_ELEMENT)
}

/** A worker's own counters: slot `slot` of `buffer`. */
export function slotCounters(buffer: SharedArrayBuffer, slot: number): Counters {
  const a = new Float64Array(buffer, slot * FIELDS.length * Float64Array.BYTES_PER_ELEMENT, FIELDS.length)
  const c = {} as Counters
  FIELDS.forEach((f, i) => {
    Object.defineProperty(c, f, {
      get: () => a[i],
      set: (v: number) => {
        a[i] = v
      },
      enumerable: true,
    })
  })
  return c
}

/** Every slot of `buffer` added up (read-only: the workers count). */
export function summedCounters(buffer: SharedArrayBuffer): Counters {
  const a = new Float64Array(buffer)
  const c = {} as Counters
  FIELDS.forEach((f, i) => {
    Object.defineProperty(c, f, {
      get: () => {
        let sum = 0
        for (let j = i; j < a.length; j += FIELDS.length) sum += a[j] ?? 0
        return sum
      },
      enumerable: true,
    })
  })
  return c
}

/** The stats line: totals, then rates over the time since the previous line. */
export class StatsReporter {
  readonly #server: Server
  readonly #counters: Counters
  readonly #command: CommandName
  readonly #http: boolean
  #at = performance.now()
  #accepted = 0
  #bytesIn = 0
  #bytesOut = 0
  #requests = 0

  constructor(server: Server, counters: Counters, command: CommandName) {
    this.#server = server
    this.#counters = counters
    this.#command = command
    this.#http = command === 'http' || command === 'static'
  }

  /** The next line (`tcpserver stats key=value ...`); rates run from the previous call. */
  line(): string {
    const now = performance.now()
    const seconds = Math.max((now - this.#at) / 1000, 1e-3)
    const s = this.#server.stats()
    const c = this.#counters
    const rate = (n: number): string => (n / seconds).toFixed(1)
    const parts = [
      `accepted=${s.accepted}`,
      `active=${s.active}`,
      `bytes_in=${c.bytesIn}`,
      `bytes_out=${c.bytesOut}`,
      ...(this.#http ? [`requests=${c.requests}`] : []),
      // Whether the zero-copy paths were taken: splice(2) needs plain TCP on both sides,
      // sendfile(2) a plain TCP client.
      ...(this.#command === 'proxy'
        ? [
            `upstream_errors=${c.upstreamErrors}`,
            `pipes_spliced=${s.dataPath.pipesSpliced}`,
            `pipes_copied=${s.dataPath.pipesCopied}`,
          ]
        : []),
      ...(this.#command === 'static'
        ? [
            `file_bytes_zero_copy=${s.dataPath.fileBytesZeroCopy}`,
            `file_bytes_copied=${s.dataPath.fileBytesCopied}`,
          ]
        : []),
      `conn_per_s=${rate(s.accepted - this.#accepted)}`,
      `in_bytes_per_s=${rate(c.bytesIn - this.#bytesIn)}`,
      `out_bytes_per_s=${rate(c.bytesOut - this.#bytesOut)}`,
      ...(this.#http ? [`req_per_s=${rate(c.requests - this.#requests)}`] : []),
      `interval_s=${seconds.toFixed(1)}`,
    ]
    const errors = Object.entries(s.acceptErrors)
    if (errors.length > 0) parts.push(`accept_errors=${errors.map(([k, v]) => `${k}:${v}`).join(',')}`)
    const tls = Object.entries(s.tls.failures)
    if (tls.length > 0) parts.push(`tls_failures=${tls.map(([k, v]) => `${k}:${v}`).join(',')}`)
    this.#at = now
    this.#accepted = s.accepted
    this.#bytesIn = c.bytesIn
    this.#bytesOut = c.bytesOut
    this.#requests = c.requests
    return `tcpserver stats ${parts.join(' ')}`
  }
}
