// idleTimeout is precise: the close comes at the last byte + the timeout (not up to a whole
// timeout later, as a once-per-period check gave: 1,979–2,001 ms for idleTimeout 1000).
// readTimeout and writeTimeout stay precise beside it.
import net from 'node:net'
import test from 'ava'
import { connect as dial } from 'tcpserver-rs'
import {
  channel,
  closedSocket,
  connect,
  errCode,
  portOf,
  serve,
  sleep,
  until,
  within,
} from './helpers/index.js'

const IDLE = 1000

/** Milliseconds from `since` until `socket` closes. */
async function closedAfter(socket: net.Socket, since: number): Promise<number> {
  await within(closedSocket(socket, { resume: true }), IDLE * 5, 'idle close')
  return performance.now() - since
}

test('idleTimeout 1000: a client that sends at 0 and 600 ms is closed at ~1600 ms (within [1500, 1900]), not ~2000', async (t) => {
  const server = await serve(t, {
    idleTimeout: IDLE,
    async handler(conn) {
      // Reading keeps the connection active; the idle close ends the iteration with an error.
      await (async () => {
        for await (const _ of conn) {
        }
      })().catch(() => {})
    },
  })
  const socket = await connect(portOf(server))
  const start = performance.now()
  socket.write('a')
  await sleep(600)
  socket.write('b')
  const ms = await closedAfter(socket, start)
  t.log(`closed after ${Math.round(ms)} ms`)
  t.true(
    ms >= 1500 && ms <= 1900,
    `closed after ${Math.round(ms)} ms (bytes at 0 and 600 ms, idleTimeout 1000)`,
  )
  t.is(server.stats().timeouts.idle, 1)
})

test('idleTimeout 1000: a quiet client is closed at ~1000 ms (within [950, 1300])', async (t) => {
  const server = await serve(t, { idleTimeout: IDLE, handler: async () => new Promise(() => {}) })
  const start = performance.now()
  const socket = await connect(portOf(server))
  const ms = await closedAfter(socket, start)
  t.log(`closed after ${Math.round(ms)} ms`)
  t.true(ms >= 950 && ms <= 1300, `closed after ${Math.round(ms)} ms (idleTimeout 1000)`)
})

test('idleTimeout 1000: server writes count as activity; the close is ~1000 ms after the last one', async (t) => {
  const server = await serve(t, {
    idleTimeout: IDLE,
    async handler(conn) {
      for (let i = 0; i < 3; i++) {
        await conn.write('.')
        await sleep(400)
      }
      await new Promise(() => {})
    },
  })
  const socket = await connect(portOf(server))
  const start = performance.now()
  let last = start
  socket.on('data', () => {
    last = performance.now()
  })
  await within(closedSocket(socket), IDLE * 5, 'idle close')
  const ms = performance.now() - last
  t.log(`closed ${Math.round(ms)} ms after the last write`)
  t.true(last - start >= 700, 'three writes 400 ms apart arrived')
  t.true(ms >= 900 && ms <= 1300, `closed ${Math.round(ms)} ms after the last write (idleTimeout 1000)`)
})

test('readTimeout and writeTimeout 1000 stay precise beside idleTimeout (read within [950, 1300] ms, write within [950, 1600] ms)', async (t) => {
  const events = channel<{ what: string; ms: number; code?: unknown }>(10000)
  const server = await serve(t, {
    readTimeout: IDLE,
    writeTimeout: IDLE,
    idleTimeout: 10 * IDLE,
    onError() {},
    async handler(conn) {
      const started = performance.now()
      const err = await conn.read().catch((e: unknown) => e)
      events.push({ what: 'read', ms: performance.now() - started, code: errCode(err) })
      // The peer never reads: the queue fills, and the write timeout closes the connection.
      const big = Buffer.alloc(1 << 20)
      const writing = performance.now()
      for (let i = 0; i < 64; i++) {
        const ok = await conn.write(big).then(
          () => true,
          () => false,
        )
        if (!ok) break
      }
      events.push({ what: 'write', ms: performance.now() - writing, code: conn.error && errCode(conn.error) })
    },
  })
  const socket = await connect(portOf(server))
  socket.pause()
  socket.on('error', () => {})
  const read = await events.next(10000, 'read timeout')
  t.is(read.code, 'ETIMEDOUT')
  t.log(`read timeout after ${Math.round(read.ms)} ms`)
  t.true(read.ms >= 950 && read.ms <= 1300, `read timed out after ${Math.round(read.ms)} ms`)
  // The writes fill the socket buffers within milliseconds; then no byte moves for 1000 ms.
  const write = await events.next(10000, 'write timeout')
  t.log(`write timeout ${Math.round(write.ms)} ms after writing began`)
  t.true(
    write.ms >= 950 && write.ms <= 1600,
    `write timed out ${Math.round(write.ms)} ms after writing began`,
  )
  t.is(write.code, 'ERR_TCPSERVER_WRITE_TIMEOUT')
  await until(() => server.stats().timeouts.write === 1, 5000, 'write timeout counted')
})

test('pipe idleTimeout 1000: bytes at 0 and 600 ms end the pipe at ~1600 ms (within [1500, 1900]) with ERR_TCPSERVER_IDLE_TIMEOUT', async (t) => {
  // An upstream that takes bytes and never answers.
  const upstream = net.createServer((s) => {
    s.resume()
    s.on('error', () => {})
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    upstream.close()
  })
  const upPort = (upstream.address() as net.AddressInfo).port
  const events = channel<{ what: 'piping' | 'ended'; code?: unknown; at: number }>(10000)
  const server = await serve(t, {
    onError() {},
    async handler(conn) {
      const up = await dial(`127.0.0.1:${upPort}`)
      events.push({ what: 'piping', at: performance.now() })
      try {
        await conn.pipe(up, { idleTimeout: IDLE })
        events.push({ what: 'ended', at: performance.now() })
      } catch (e) {
        events.push({ what: 'ended', code: errCode(e), at: performance.now() })
      } finally {
        up.close()
      }
    },
  })
  const socket = await connect(portOf(server))
  socket.on('error', () => {})
  const piping = await events.next(5000, 'pipe started')
  socket.write('a')
  await sleep(600)
  socket.write('b')
  const ended = await events.next(10000, 'pipe ended')
  const ms = ended.at - piping.at
  t.log(`pipe ended after ${Math.round(ms)} ms`)
  t.is(ended.code, 'ERR_TCPSERVER_IDLE_TIMEOUT')
  t.true(
    ms >= 1500 && ms <= 1900,
    `pipe ended after ${Math.round(ms)} ms (bytes at 0 and 600 ms, idleTimeout 1000)`,
  )
  socket.destroy()
})
