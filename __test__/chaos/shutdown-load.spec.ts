// Shutdown under load: many clients in request/response loops while server.shutdown({ timeout })
// is called mid-stream. Handlers count the responses whose write() completed; clients count the
// responses they fully received. No client hangs, the closed promise resolves, and (unless the
// deadline forces connections closed) every response that was written arrived.
import net from 'node:net'
import test, { type ExecutionContext } from 'ava'
import type { Connection, Server } from 'tcpserver-rs'
import { portOf, serve, until, within } from '../helpers/index.js'

const CLIENTS = 32
/** Larger than the default highWaterMark (64 KiB), so write() also waits for drains. */
const RESPONSE = 80 << 10
const HEADER = 8
const MAX_ROUNDS = 100_000
const CLIENT_BOUND_MS = 20_000

/** request: [client id u32][seq u32]; response: the same 8 bytes + RESPONSE bytes of (seq & 0xff). */
function response(id: number, seq: number): Buffer {
  const b = Buffer.allocUnsafe(HEADER + RESPONSE)
  b.writeUInt32BE(id, 0)
  b.writeUInt32BE(seq, 4)
  b.fill(seq & 0xff, HEADER)
  return b
}

interface Load {
  server: Server
  /** Responses whose write() resolved, by client id. */
  written: number[]
  /** How each handler ended: 'done' or an error code. */
  outcomes: string[]
  /** Set to make handlers return after their current response. */
  stop: { now: boolean }
}

async function loadServer(t: ExecutionContext): Promise<Load> {
  const written = new Array<number>(CLIENTS).fill(0)
  const outcomes: string[] = []
  const stop = { now: false }
  const server = await serve(t, {
    async handler(conn: Connection) {
      let pending: Buffer = Buffer.alloc(0)
      try {
        for (;;) {
          if (stop.now) break
          while (pending.length < HEADER) {
            const chunk = await conn.read()
            if (chunk === null) {
              outcomes.push('done')
              return
            }
            pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
          }
          const id = pending.readUInt32BE(0)
          const seq = pending.readUInt32BE(4)
          pending = pending.subarray(HEADER)
          await conn.write(response(id, seq))
          written[id] = (written[id] ?? 0) + 1
        }
        outcomes.push('done')
      } catch (e) {
        outcomes.push(String((e as { code?: unknown }).code ?? 'untyped'))
        throw e
      }
    },
    onError() {},
  })
  return { server, written, outcomes, stop }
}

interface ClientEnd {
  received: number
  /** Bytes of an incomplete response when the connection ended. */
  partial: number
  corrupt: number
  end: 'eof' | string
}

/** One client: up to `rounds` request/response rounds, then FIN; ends at EOF, close or error. */
function runClient(port: number, id: number, rounds: number, onResponse: () => void): Promise<ClientEnd> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
    const state: ClientEnd = { received: 0, partial: 0, corrupt: 0, end: 'eof' }
    const chunks: Buffer[] = []
    let buffered = 0
    let seq = 0
    const request = (): void => {
      if (seq >= rounds) {
        socket.end()
        return
      }
      const r = Buffer.allocUnsafe(HEADER)
      r.writeUInt32BE(id, 0)
      r.writeUInt32BE(seq, 4)
      socket.write(r)
    }
    socket.once('connect', request)
    socket.on('data', (d: Buffer) => {
      chunks.push(d)
      buffered += d.length
      while (buffered >= HEADER + RESPONSE) {
        const all = Buffer.concat(chunks)
        const frame = all.subarray(0, HEADER + RESPONSE)
        chunks.length = 0
        if (all.length > frame.length) chunks.push(all.subarray(frame.length))
        buffered -= frame.length
        const ok =
          frame.readUInt32BE(0) === id &&
          frame.readUInt32BE(4) === seq &&
          frame[HEADER] === (seq & 0xff) &&
          frame[frame.length - 1] === (seq & 0xff)
        if (ok) state.received++
        else state.corrupt++
        onResponse()
        seq++
        request()
      }
    })
    socket.on('error', (e: NodeJS.ErrnoException) => {
      state.end = e.code ?? 'untyped'
    })
    socket.once('close', () => {
      state.partial = buffered
      resolve(state)
    })
  })
}

function refused(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' })
    s.once('connect', () => {
      s.destroy()
      resolve(undefined)
    })
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code))
  })
}

function startClients(port: number, rounds: number): { total: () => number; ends: Promise<ClientEnd[]> } {
  let total = 0
  const ends = Promise.all(
    Array.from({ length: CLIENTS }, (_, id) =>
      runClient(port, id, rounds, () => {
        total++
      }),
    ),
  )
  return { total: () => total, ends: within(ends, CLIENT_BOUND_MS, 'every client to end') }
}

test.serial(
  'shutdown mid-stream waits for handlers: every response written arrives, and nothing is forced',
  async (t) => {
    const rounds = 30
    const load = await loadServer(t)
    const port = portOf(load.server)
    const clients = startClients(port, rounds)
    await until(() => clients.total() >= (CLIENTS * rounds) / 4, 10_000, 'the load to be under way')
    const result = load.server.shutdown({ timeout: 15_000 })
    t.is(await refused(port), 'ECONNREFUSED', 'no new client after shutdown()')
    const ends = await clients.ends
    t.deepEqual(await within(result, 10_000, 'shutdown'), { completed: CLIENTS, forced: 0 })
    t.deepEqual(await within(load.server.closed, 1000, 'closed'), { completed: CLIENTS, forced: 0 })
    for (const [id, end] of ends.entries()) {
      t.is(end.received, rounds, `client ${id} got all its responses`)
      t.is(end.received, load.written[id], `client ${id}: received = written`)
      t.is(end.corrupt + end.partial, 0)
      t.is(end.end, 'eof')
    }
    t.deepEqual(new Set(load.outcomes), new Set(['done']))
    t.is(load.server.stats().active, 0)
  },
)

test.serial(
  'endless loops, handlers stop after their current response once shutdown begins: every response written arrives',
  async (t) => {
    const load = await loadServer(t)
    const port = portOf(load.server)
    const clients = startClients(port, MAX_ROUNDS)
    await until(() => clients.total() >= CLIENTS * 10, 10_000, 'the load to be under way')
    load.stop.now = true
    const result = await within(load.server.shutdown({ timeout: 10_000 }), 12_000, 'shutdown')
    const ends = await clients.ends
    t.deepEqual(result, { completed: CLIENTS, forced: 0 })
    const received = ends.reduce((n, e) => n + e.received, 0)
    const written = load.written.reduce((n, w) => n + w, 0)
    t.log(`${written} responses written, ${received} received`)
    for (const [id, end] of ends.entries()) {
      t.is(end.received, load.written[id], `client ${id}: every response written arrived`)
      t.is(end.corrupt + end.partial, 0, `client ${id}: no torn response`)
      t.is(end.end, 'eof', `client ${id} ended at EOF`)
    }
    t.is(load.outcomes.length, CLIENTS)
    t.deepEqual(new Set(load.outcomes), new Set(['done']))
  },
)

test.serial(
  'endless loops and handlers, shutdown({ timeout: 300 }): forced at the deadline, no client hangs, nothing torn is counted',
  async (t) => {
    const load = await loadServer(t)
    const port = portOf(load.server)
    const clients = startClients(port, MAX_ROUNDS)
    await until(() => clients.total() >= CLIENTS * 10, 10_000, 'the load to be under way')
    const started = Date.now()
    const result = await within(load.server.shutdown({ timeout: 300 }), 5000, 'shutdown')
    t.true(Date.now() - started >= 250, 'the deadline was waited for')
    t.deepEqual(result, { completed: 0, forced: CLIENTS })
    const ends = await clients.ends
    t.deepEqual(await within(load.server.closed, 1000, 'closed'), result)
    let lost = 0
    for (const [id, end] of ends.entries()) {
      const written = load.written[id] ?? 0
      // A write still waiting for its drain at the deadline is not counted but may have arrived.
      t.true(end.received <= written + 1, `client ${id}: received ${end.received} of ${written} written`)
      lost += Math.max(0, written - end.received)
      t.is(end.corrupt, 0)
      t.true(['eof', 'ECONNRESET'].includes(end.end), `client ${id} ended with ${end.end}`)
    }
    t.log(`responses written but dropped by the forced close: ${lost}`)
    await until(() => load.outcomes.length === CLIENTS, 5000, 'every handler to end')
    for (const o of load.outcomes)
      t.true(['ERR_TCPSERVER_SHUTDOWN', 'ERR_SOCKET_CLOSED'].includes(o), `handler ended with ${o}`)
    t.is(load.server.stats().active, 0)
  },
)
