// A fault-injecting TCP relay for tests (testing.md 3.4; netem and toxiproxy are not available
// here). It sits between a client and a server and applies per-direction faults to the byte
// stream: latency with jitter, a rate limit, N-byte writes, a pause, and FIN, RST or a
// blackhole after N bytes. A reset or error on one side is passed on to the other as a reset
// (but libuv reports an RST that arrives while bytes are unread as EOF, and that is passed on as
// FIN). Loopback only; `close()` destroys every socket and timer it owns.
import net from 'node:net'

/** Faults of one direction. Byte thresholds count bytes forwarded in that direction. */
export interface FaultKnobs {
  /** Delay every chunk by this many ms (order is kept: a chunk never overtakes another). */
  latencyMs?: number
  /** Adds a uniform random -jitterMs..+jitterMs to `latencyMs` per chunk (clamped at 0). */
  jitterMs?: number
  /** Forward at most this many bytes per second (in pieces of at most 20 ms worth). */
  rate?: number
  /**
   * Forward in writes of at most this many bytes, each handed to the kernel (and followed by an
   * event-loop turn, so a receiver in this process reads them apart) before the next.
   */
  sliceBytes?: number
  /** After this many bytes, stop forwarding for `pauseMs` (once). */
  pauseAfterBytes?: number
  pauseMs?: number
  /** After exactly this many bytes, send FIN (`end()`) and discard the rest of this direction. */
  finAfterBytes?: number
  /**
   * After this many bytes were handed to the kernel, reset both sockets of the relayed
   * connection (`resetAndDestroy()`). An RST can overtake bytes the receiver has not read yet,
   * so the receiver sees at most this many bytes, then `ECONNRESET` (a node:net receiver may
   * see EOF instead when bytes were still unread; its next write then fails).
   */
  resetAfterBytes?: number
  /** After this many bytes, stop forwarding and stop reading the source; both sockets stay open. */
  blackholeAfterBytes?: number
}

export interface FaultProxyOptions {
  /** Where to relay to; the relay listens on the same host, port 0. */
  target: { host: string; port: number }
  /** Client → server faults. */
  upstream?: FaultKnobs
  /** Server → client faults. */
  downstream?: FaultKnobs
}

export interface FaultProxy {
  readonly host: string
  readonly port: number
  /** Client connections accepted so far. */
  readonly accepted: number
  /** Relay sockets (client side and server side) still open. */
  readonly openSockets: number
  /** Bytes forwarded and writes made, per direction, over all connections. */
  readonly upstream: DirectionCounters
  readonly downstream: DirectionCounters
  /** Stops listening and destroys every socket and timer. */
  close(): Promise<void>
}

export interface DirectionCounters {
  bytes: number
  writes: number
}

/** Bytes queued in one direction above which the relay stops reading its source. */
const MAX_QUEUED = 1 << 20

type Sleep = (ms: number) => Promise<void>

/** One direction: reads `src`, applies `knobs`, writes `dst`. */
class Pipe {
  readonly #src: net.Socket
  readonly #dst: net.Socket
  readonly #knobs: FaultKnobs
  readonly #sleep: Sleep
  readonly #resetBoth: () => void
  readonly #counters: DirectionCounters
  readonly #queue: Array<{ data: Buffer; due: number }> = []
  #queued = 0
  #forwarded = 0
  #lastDue = 0
  #nextFree = 0 // rate limit: when the next byte may go
  #pausedOnce = false
  #srcEnded = false
  #pumping = false
  #stopped = false // FIN sent, reset or blackholed: nothing more is forwarded

  constructor(
    src: net.Socket,
    dst: net.Socket,
    knobs: FaultKnobs,
    sleep: Sleep,
    resetBoth: () => void,
    counters: DirectionCounters,
  ) {
    this.#counters = counters
    this.#src = src
    this.#dst = dst
    this.#knobs = knobs
    this.#sleep = sleep
    this.#resetBoth = resetBoth
    src.on('data', (chunk: Buffer) => this.#push(chunk))
    src.on('end', () => {
      this.#srcEnded = true
      void this.#pump()
    })
    void this.#pump() // thresholds at 0 bytes
  }

  stop(): void {
    this.#stopped = true
    this.#queue.length = 0
  }

  #push(chunk: Buffer): void {
    if (this.#stopped) return // discarded (after FIN)
    const { latencyMs = 0, jitterMs = 0 } = this.#knobs
    const delay = Math.max(0, latencyMs + (Math.random() * 2 - 1) * jitterMs)
    this.#lastDue = Math.max(this.#lastDue, performance.now() + delay)
    this.#queue.push({ data: chunk, due: this.#lastDue })
    this.#queued += chunk.length
    if (this.#queued > MAX_QUEUED) this.#src.pause()
    void this.#pump()
  }

  /** Bytes that may go before the next threshold. */
  #room(): number {
    const k = this.#knobs
    let room = Number.POSITIVE_INFINITY
    const at = [k.finAfterBytes, k.resetAfterBytes, k.blackholeAfterBytes]
    if (!this.#pausedOnce) at.push(k.pauseAfterBytes)
    for (const n of at) if (n !== undefined) room = Math.min(room, Math.max(0, n - this.#forwarded))
    if (k.sliceBytes) room = Math.min(room, k.sliceBytes)
    if (k.rate) room = Math.min(room, Math.max(1, Math.floor(k.rate / 50)))
    return room
  }

  /** Acts on the thresholds reached; false once forwarding is over. */
  async #thresholds(): Promise<boolean> {
    const k = this.#knobs
    const n = this.#forwarded
    if (k.pauseAfterBytes !== undefined && !this.#pausedOnce && n >= k.pauseAfterBytes) {
      this.#pausedOnce = true
      await this.#sleep(k.pauseMs ?? 0)
    }
    if (this.#stopped) return false
    if (k.finAfterBytes !== undefined && n >= k.finAfterBytes) {
      this.stop()
      this.#src.resume() // the rest is read and discarded: the sender is not blocked
      this.#dst.end()
    } else if (k.resetAfterBytes !== undefined && n >= k.resetAfterBytes) {
      this.stop()
      this.#resetBoth()
    } else if (k.blackholeAfterBytes !== undefined && n >= k.blackholeAfterBytes) {
      this.stop()
      this.#src.pause()
    }
    return !this.#stopped
  }

  /** Waits until `performance.now() >= due`: a timer for most of it, event-loop turns for the last ms. */
  async #until(due: number): Promise<void> {
    for (let left = due - performance.now(); left > 0 && !this.#stopped; left = due - performance.now()) {
      if (left > 1.5) await this.#sleep(left - 1)
      else await new Promise((resolve) => setImmediate(resolve))
    }
  }

  // One pump at a time; data or EOF arriving while it runs is picked up by its loop (there is
  // no await between the loop's last check and `#pumping = false`).
  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      if (!(await this.#thresholds())) return
      while (this.#queue.length > 0) {
        const head = this.#queue[0] as { data: Buffer; due: number }
        await this.#until(head.due)
        if (this.#stopped) return
        const take = Math.min(head.data.length, this.#room())
        const piece = head.data.subarray(0, take)
        if (take === head.data.length) this.#queue.shift()
        else head.data = head.data.subarray(take)
        if (this.#knobs.rate) {
          const now = performance.now()
          if (this.#nextFree - now >= 1) await this.#sleep(this.#nextFree - now)
          this.#nextFree = Math.max(this.#nextFree, now) + (take * 1000) / this.#knobs.rate
          if (this.#stopped) return
        }
        // Waiting for the callback keeps writes apart (no writev coalescing of slices) and
        // applies the destination's backpressure.
        const ok = await new Promise<boolean>((resolve) => this.#dst.write(piece, (err) => resolve(!err)))
        if (!ok || this.#stopped) return
        this.#forwarded += take
        this.#counters.bytes += take
        this.#counters.writes++
        // Slices also yield to the event loop, so a receiver in this process reads them apart.
        if (this.#knobs.sliceBytes) await new Promise((r) => setImmediate(r))
        this.#queued -= take
        if (this.#queued <= MAX_QUEUED / 2 && this.#src.isPaused()) this.#src.resume()
        if (!(await this.#thresholds())) return
      }
      if (this.#srcEnded) {
        this.stop()
        this.#dst.end()
      }
    } finally {
      this.#pumping = false
    }
  }
}

/** Starts a relay to `options.target`, listening on the same host with a free port. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const { target } = options
  const sockets = new Set<net.Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let accepted = 0
  const up: DirectionCounters = { bytes: 0, writes: 0 }
  const down: DirectionCounters = { bytes: 0, writes: 0 }
  let closing = false
  const sleep: Sleep = (ms) =>
    new Promise((resolve) => {
      if (closing) return // never resolves: everything is being torn down
      const timer = setTimeout(() => {
        timers.delete(timer)
        resolve()
      }, ms)
      timers.add(timer)
    })
  const track = (s: net.Socket): void => {
    sockets.add(s)
    s.once('close', () => sockets.delete(s))
  }

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    accepted++
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true })
    track(client)
    track(upstream)
    const pipes: Pipe[] = []
    const resetBoth = (): void => {
      for (const p of pipes) p.stop()
      for (const s of [client, upstream]) if (!s.destroyed) s.resetAndDestroy()
    }
    // An error on one side (a reset, a failed connect) reaches the other side as a reset.
    client.on('error', resetBoth)
    upstream.on('error', resetBoth)
    pipes.push(new Pipe(client, upstream, options.upstream ?? {}, sleep, resetBoth, up))
    pipes.push(new Pipe(upstream, client, options.downstream ?? {}, sleep, resetBoth, down))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, target.host, () => resolve())
  })
  server.on('error', () => {}) // an accept error (EMFILE...) must not crash the test process
  const port = (server.address() as net.AddressInfo).port

  return {
    host: target.host,
    port,
    get accepted() {
      return accepted
    },
    get openSockets() {
      return sockets.size
    },
    upstream: up,
    downstream: down,
    async close() {
      closing = true
      for (const t of timers) clearTimeout(t)
      timers.clear()
      const closed = [new Promise<void>((resolve) => server.close(() => resolve()))]
      for (const s of sockets) {
        closed.push(new Promise((resolve) => s.once('close', () => resolve())))
        s.destroy()
      }
      await Promise.all(closed)
    },
  }
}
