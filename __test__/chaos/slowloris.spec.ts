// Slowloris: 2,000 connections each trickle 1 byte per second into a handler that reads until
// it sees "\n\n". The server must stay responsive: a well-behaved client's request is answered
// within 100 ms (median of the samples taken during the trickle). Then every slow client
// finishes its request and is answered too. A second test shows idleTimeout reaping clients that
// go silent. Bounded to ~15 s.
import { readFileSync } from 'node:fs'
import net from 'node:net'
import test, { type ExecutionContext } from 'ava'
import type { Connection, Server } from 'tcpserver-rs'
import { fdCount, portOf, serve, sleep, until, within } from '../helpers/index.js'

const SLOW_CLIENTS = 2000
const TRICKLE_MS = 6000
const BOUND_MS = 100
const MAX_REQUEST = 64 << 10

/** The soft limit on open files of this process. */
function fdLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'))
  return !m || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1])
}

interface Served {
  requests: number
  /** Bytes read by handlers that never completed a request (still trickling). */
  partialBytes: number
  errors: string[]
}

/** Reads until "\n\n", answers "ok <bytes>\n", returns (which closes). */
function requestServer(t: ExecutionContext, served: Served, idleTimeout?: number): Promise<Server> {
  return serve(t, {
    ...(idleTimeout ? { idleTimeout } : {}),
    async handler(conn: Connection) {
      let request = ''
      let counted = 0
      for await (const chunk of conn) {
        request += chunk.toString('latin1')
        served.partialBytes += chunk.length
        counted += chunk.length
        if (request.includes('\n\n')) {
          served.partialBytes -= counted
          served.requests++
          await conn.write(`ok ${request.length}\n`)
          return
        }
        if (request.length > MAX_REQUEST) return
      }
      served.partialBytes -= counted
    },
    onError(error) {
      served.errors.push(String((error as { code?: unknown }).code ?? 'untyped'))
    },
  })
}

function open(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s))
    s.once('error', reject)
  })
}

/** A well-behaved request: connect, send, read the whole answer; returns the time taken, ms. */
async function goodRequest(port: number): Promise<number> {
  const started = performance.now()
  const socket = await open(port)
  const answer = await within(
    new Promise<string>((resolve, reject) => {
      let text = ''
      socket.on('data', (d: Buffer) => {
        text += d.toString()
      })
      socket.once('end', () => resolve(text))
      socket.once('error', reject)
      socket.write('GET /\n\n')
    }),
    5000,
    'a good request',
  ).finally(() => socket.destroy())
  if (answer !== 'ok 7\n') throw new Error(`unexpected answer ${JSON.stringify(answer)}`)
  return performance.now() - started
}

/** Opens `count` sockets, `wave` at a time. */
async function openMany(port: number, count: number, wave = 200): Promise<net.Socket[]> {
  const sockets: net.Socket[] = []
  while (sockets.length < count) {
    const n = Math.min(wave, count - sockets.length)
    sockets.push(
      ...(await within(Promise.all(Array.from({ length: n }, () => open(port))), 10_000, 'connects')),
    )
  }
  return sockets
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b)

test.serial(
  `${SLOW_CLIENTS} clients trickling 1 byte/s: a good request is still answered within ${BOUND_MS} ms (median)`,
  async (t) => {
    if (fdLimit() < 2 * SLOW_CLIENTS + 500) {
      t.log(
        `skipped: the open-files limit ${fdLimit()} is below ${2 * SLOW_CLIENTS + 500} (scripts/test-js.sh raises it)`,
      )
      t.pass()
      return
    }
    const served: Served = { requests: 0, partialBytes: 0, errors: [] }
    const server = await requestServer(t, served)
    const port = portOf(server)
    const slowClients = await openMany(port, SLOW_CLIENTS)
    t.teardown(() => {
      for (const s of slowClients) s.destroy()
    })
    for (const s of slowClients) s.on('error', () => {})
    await until(() => server.stats().active === SLOW_CLIENTS, 10_000, 'every slow client to be accepted')

    // Every 50 ms, a twentieth of the slow clients sends one byte: 1 byte/s each, spread evenly.
    let tick = 0
    const trickle = setInterval(() => {
      for (let i = tick % 20; i < slowClients.length; i += 20) slowClients[i]?.write('a')
      tick++
    }, 50)
    t.teardown(() => clearInterval(trickle))

    const samples: number[] = []
    const until_ = Date.now() + TRICKLE_MS
    await sleep(1000) // let the trickle reach its steady state
    for (let i = 0; i < 40 && Date.now() < until_; i++) {
      samples.push(await goodRequest(port))
      await sleep(200)
    }
    clearInterval(trickle)
    const s = sorted(samples)
    const median = s[Math.floor(s.length / 2)] as number
    t.log(
      `${samples.length} good requests: median ${median.toFixed(1)} ms, p90 ${(s[Math.floor(s.length * 0.9)] as number).toFixed(1)} ms, max ${(s[s.length - 1] as number).toFixed(1)} ms`,
    )
    t.true(samples.length >= 10, 'enough samples')
    t.true(median <= BOUND_MS, `median ${median.toFixed(1)} ms`)
    t.is(served.requests, samples.length, 'only the good requests completed so far')
    t.true(server.stats().active >= SLOW_CLIENTS, 'the slow clients were all still connected')
    t.log(`trickled bytes the handlers hold: ${served.partialBytes} (about ${tick / 20} per slow client)`)
    t.true(
      served.partialBytes >= SLOW_CLIENTS * Math.floor(tick / 20 - 1),
      'the trickle really reached the handlers',
    )

    // Each slow client now finishes its request and gets its answer.
    const answers = slowClients.map(
      (socket) =>
        new Promise<boolean>((resolve) => {
          let text = ''
          socket.on('data', (d: Buffer) => {
            text += d.toString()
          })
          socket.once('close', () => resolve(text.startsWith('ok ')))
        }),
    )
    for (const socket of slowClients) socket.end('\n\n')
    const ok = await within(Promise.all(answers), 10_000, 'the slow clients to be answered')
    t.is(ok.filter(Boolean).length, SLOW_CLIENTS, 'every slow client was answered')
    await until(() => server.stats().active === 0, 5000, 'stats().active back to 0')
    t.deepEqual(served.errors, [])
  },
)

test.serial(
  'idleTimeout reaps 500 clients that went silent mid-request; a good request is served meanwhile',
  async (t) => {
    const served: Served = { requests: 0, partialBytes: 0, errors: [] }
    const server = await requestServer(t, served, 500)
    const port = portOf(server)
    const fdsBefore = fdCount()
    const silent = await openMany(port, 500)
    t.teardown(() => {
      for (const s of silent) s.destroy()
    })
    const closed = silent.map((s) => {
      s.on('error', () => {})
      s.resume()
      return new Promise<void>((resolve) => s.once('close', () => resolve()))
    })
    for (const s of silent) s.write('GET /') // and then nothing
    t.log(`good request meanwhile: ${(await goodRequest(port)).toFixed(1)} ms`)
    const started = Date.now()
    await within(Promise.all(closed), 5000, 'the idle timeout to close the silent clients')
    t.log(`closed ${Date.now() - started} ms after the last byte`)
    await until(() => server.stats().active === 0, 5000, 'stats().active back to 0')
    await until(() => served.errors.length === 500, 5000, 'every handler to fail')
    t.deepEqual(new Set(served.errors), new Set(['ERR_TCPSERVER_IDLE_TIMEOUT']))
    await until(() => fdCount() <= fdsBefore, 2000, 'fds back to where they were')
  },
)
