// Read and write timeouts seen by real clients: a read() that waits too long rejects with
// ETIMEDOUT and the connection goes on; a peer that stops reading is cut off by the write
// timeout (also during sendFile() and after the handler returned); every timeout is counted
// by kind in stats().timeouts.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import type net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import type { Connection } from 'tcpserver-rs'
import { channel, collect, connect, errCode, portOf, serve, sleep, until, within } from './helpers/index.js'

const settle = <T>(p: Promise<T>): Promise<T | unknown> =>
  p.then(
    (v) => v,
    (e: unknown) => e,
  )

/** A client that never reads: its receive window fills, then the server's writes stall. */
async function nonReadingClient(port: number): Promise<net.Socket> {
  const socket = await connect(port)
  socket.pause()
  socket.on('error', () => {})
  return socket
}

test('readTimeout: a read() waiting too long rejects with ETIMEDOUT; the connection stays usable', async (t) => {
  const events = channel<{ err?: unknown; ms?: number; waited?: number; data?: string }>()
  const server = await serve(t, {
    readTimeout: 150,
    async handler(conn) {
      const started = performance.now()
      const err = await settle(conn.read())
      events.push({ err, ms: conn.readTimeout, waited: performance.now() - started })
      // After the timeout the connection still works both ways.
      await conn.write('still here\n')
      const chunk = await conn.read()
      events.push({ data: chunk?.toString() })
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  const first = await events.next(5000, 'read timed out')
  t.is(errCode(first.err), 'ETIMEDOUT')
  t.is((first.err as { syscall?: string }).syscall, 'read')
  t.is(first.ms, 150)
  t.true((first.waited ?? 0) >= 140, `rejected after ${first.waited} ms`)
  socket.end('late data')
  t.is((await events.next(5000, 'next read')).data, 'late data')
  t.is((await within(received, 5000, 'reply')).toString(), 'still here\n')
  t.is(server.stats().timeouts.read, 1)
})

test('readTimeout does not fire while data keeps arriving within it (one timer per connection)', async (t) => {
  const done = channel<{ chunks: number; err: unknown }>()
  const server = await serve(t, {
    readTimeout: 200,
    async handler(conn) {
      let chunks = 0
      try {
        for await (const _ of conn) chunks++
        done.push({ chunks, err: null })
      } catch (err) {
        done.push({ chunks, err })
      }
    },
  })
  const socket = await connect(portOf(server))
  socket.setNoDelay(true)
  // 20 chunks, 60 ms apart: 1.2 s in all, each gap well under the timeout.
  for (let i = 0; i < 20; i++) {
    socket.write('x')
    await sleep(60)
  }
  socket.end()
  const r = await done.next(5000, 'handler done')
  t.is(r.err, null)
  t.true(r.chunks >= 1)
  t.is(server.stats().timeouts.read, 0)
})

test('conn.readTimeout can be set per connection (and validated); iteration rejects too', async (t) => {
  const events = channel<{ err: unknown; bad?: unknown }>()
  const server = await serve(t, {
    onError() {},
    async handler(conn: Connection) {
      let bad: unknown
      try {
        conn.readTimeout = -1
      } catch (e) {
        bad = e
      }
      conn.readTimeout = 100
      try {
        for await (const _ of conn) {
        }
        events.push({ err: null, bad })
      } catch (err) {
        events.push({ err, bad })
      }
    },
  })
  const socket = await connect(portOf(server))
  const r = await events.next(5000, 'iteration timed out')
  t.is(errCode(r.err), 'ETIMEDOUT')
  t.is(errCode(r.bad), 'ERR_OUT_OF_RANGE')
  t.true(r.bad instanceof RangeError)
  t.is((r.bad as { option?: string }).option, 'conn.readTimeout')
  socket.destroy()
})

test('writeTimeout closes a connection whose peer stopped reading; the pending write() rejects', async (t) => {
  const events = channel<{ err: unknown; connErr: unknown; wrote: number }>()
  const server = await serve(t, {
    writeTimeout: 300,
    highWaterMark: 64 * 1024,
    onError() {},
    async handler(conn) {
      const chunk = randomBytes(256 * 1024)
      let wrote = 0
      try {
        // Until the socket buffers and the queue are full, then the write waits for drain.
        for (let i = 0; i < 1000; i++) {
          await conn.write(chunk)
          wrote += chunk.length
        }
        events.push({ err: null, connErr: conn.error, wrote })
      } catch (err) {
        events.push({ err, connErr: conn.error, wrote })
      }
    },
  })
  const socket = await nonReadingClient(portOf(server))
  const r = await events.next(10_000, 'write timed out')
  t.is(errCode(r.err), 'ERR_TCPSERVER_WRITE_TIMEOUT')
  t.is(errCode(r.connErr), 'ERR_TCPSERVER_WRITE_TIMEOUT')
  t.true(r.wrote > 0 && r.wrote < 1000 * 256 * 1024)
  await until(() => server.stats().timeouts.write === 1, 5000, 'counted')
  t.is(server.stats().active, 0)
  socket.destroy()
})

test('writeTimeout also ends a connection after the handler returned with output queued', async (t) => {
  const server = await serve(t, {
    writeTimeout: 300,
    async handler(conn) {
      // 16 MiB, not awaited: far more than the socket buffers take from a peer that never reads.
      void conn.write(Buffer.alloc(16 * 1024 * 1024, 1))
    },
  })
  const socket = await nonReadingClient(portOf(server))
  // The client's connect can complete before the server accepts (a loaded machine): until then
  // active is 0 too.
  await until(
    () => server.stats().accepted === 1 && server.stats().active === 0,
    10_000,
    'connection closed by the write timeout',
  )
  t.is(server.stats().timeouts.write, 1)
  socket.destroy()
})

test('writeTimeout applies to sendFile() to a peer that stopped reading', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tcpserver-wt-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'big.bin')
  writeFileSync(file, Buffer.alloc(32 * 1024 * 1024, 7))
  const events = channel<unknown>()
  const server = await serve(t, {
    writeTimeout: 300,
    onError() {},
    async handler(conn) {
      events.push(await settle(conn.sendFile(file)))
    },
  })
  const socket = await nonReadingClient(portOf(server))
  const err = await events.next(10_000, 'sendFile settled')
  t.is(errCode(err), 'ERR_TCPSERVER_WRITE_TIMEOUT')
  await until(() => server.stats().timeouts.write === 1, 5000, 'counted')
  socket.destroy()
})

test('a slow reader that keeps taking bytes is not cut off by writeTimeout', async (t) => {
  const total = 4 * 1024 * 1024
  const server = await serve(t, {
    writeTimeout: 400,
    async handler(conn) {
      await conn.write(Buffer.alloc(total, 3))
    },
  })
  const socket = await connect(portOf(server))
  // Reads 64 KiB every 20 ms: about 3 MB/s, so the queue waits for seconds in all but the
  // peer takes bytes all the time.
  let got = 0
  socket.pause()
  const done = new Promise<void>((resolve, reject) => {
    socket.on('end', resolve)
    socket.on('error', reject)
  })
  while (!socket.readableEnded) {
    for (
      let c = socket.read(64 * 1024) as Buffer | null;
      c !== null;
      c = socket.read(64 * 1024) as Buffer | null
    ) {
      got += c.length
    }
    if (socket.readableLength === 0 && got >= total) {
      socket.resume()
      break
    }
    await sleep(20)
  }
  await within(done, 20_000, 'all bytes then FIN')
  t.is(got, total)
  t.is(server.stats().timeouts.write, 0)
})

test('timeouts are counted by kind, and idle timeouts are too', async (t) => {
  const server = await serve(t, {
    idleTimeout: 100,
    onError() {},
    async handler(conn) {
      await conn.read().catch(() => {})
    },
  })
  const socket = await connect(portOf(server))
  socket.on('error', () => {})
  await until(() => server.stats().timeouts.idle === 1, 5000, 'idle timeout counted')
  const { timeouts } = server.stats()
  t.deepEqual(timeouts, { handshake: 0, idle: 1, read: 0, write: 0 })
  socket.destroy()
})

test('timeout options are validated', async (t) => {
  for (const [option, value, code] of [
    ['readTimeout', -1, 'ERR_OUT_OF_RANGE'],
    ['writeTimeout', 1.5, 'ERR_OUT_OF_RANGE'],
    ['readTimeout', 'x', 'ERR_INVALID_ARG_TYPE'],
  ] as const) {
    const err = await t.throwsAsync(serve(t, { [option]: value }))
    t.is(errCode(err), code, `${option}: ${value}`)
    t.is((err as { option?: string }).option, option)
  }
})
