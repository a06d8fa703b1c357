// The Connection object as a handler sees it: reading (read() and for-await), half-close in
// both directions, close(), closed/signal, addresses, counters, errors and timeouts.
import { randomBytes } from 'node:crypto'
import test from 'ava'
import type { Connection } from 'tcpserver-rs'
import {
  closedSocket,
  collect,
  connect,
  connectHalfOpen,
  deferred,
  errCode,
  portOf,
  serve,
  sha256,
  sleep,
  within,
} from './helpers/index.js'

test('read() returns Buffers, then null at the client FIN (and null again after)', async (t) => {
  const data = randomBytes(300 * 1024)
  const result = deferred<{ chunks: unknown[]; after: unknown }>()
  const server = await serve(t, {
    async handler(conn) {
      const chunks: unknown[] = []
      for (;;) {
        const c = await conn.read()
        if (c === null) break
        chunks.push(c)
      }
      result.resolve({ chunks, after: await conn.read() })
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  socket.write(data.subarray(0, 1000))
  await sleep(20)
  socket.end(data.subarray(1000))
  const { chunks, after } = await within(result.promise, 5000, 'handler reading to EOF')
  t.true(chunks.length > 0)
  t.true(
    chunks.every((c) => Buffer.isBuffer(c)),
    'every chunk is a Buffer',
  )
  t.is(sha256(Buffer.concat(chunks as Buffer[])), sha256(data))
  t.is(after, null)
  t.is((await within(received, 5000, 'server FIN')).length, 0)
})

test('for await yields the same Buffers and ends at the client FIN', async (t) => {
  const data = randomBytes(500 * 1024)
  const result = deferred<Buffer[]>()
  const server = await serve(t, {
    async handler(conn) {
      const chunks: Buffer[] = []
      for await (const chunk of conn) {
        if (!Buffer.isBuffer(chunk)) throw new TypeError('not a Buffer')
        chunks.push(chunk)
      }
      result.resolve(chunks)
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  socket.write(data.subarray(0, 7))
  socket.write(data.subarray(7, 100_000))
  socket.end(data.subarray(100_000))
  const chunks = await within(result.promise, 5000, 'for await to end')
  t.is(sha256(Buffer.concat(chunks)), sha256(data))
  await within(received, 5000, 'server FIN')
})

test('after the client half-closes, the server can still write and the client receives it', async (t) => {
  const server = await serve(t, {
    async handler(conn) {
      let n = 0
      for await (const chunk of conn) n += chunk.length
      await sleep(50) // well after the client's FIN
      await conn.write(`got ${n} bytes`)
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  socket.end('x'.repeat(12345))
  t.is((await within(received, 5000, 'reply after client FIN')).toString(), 'got 12345 bytes')
})

test('conn.end() half-closes: client sees the data then end; the server still reads afterwards', async (t) => {
  const afterEnd = deferred<string>()
  const server = await serve(t, {
    async handler(conn) {
      await conn.write('greeting')
      conn.end()
      const chunks: Buffer[] = []
      for await (const chunk of conn) chunks.push(chunk)
      afterEnd.resolve(Buffer.concat(chunks).toString())
    },
  })
  const socket = await connectHalfOpen(portOf(server))
  const received: Buffer[] = []
  socket.on('data', (c: Buffer) => received.push(c))
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()))
  await within(ended, 5000, "client 'end' after server end()")
  t.is(Buffer.concat(received).toString(), 'greeting')
  // Only now does the client speak; the server's read side is still open.
  socket.end('sent after the server FIN')
  t.is(await within(afterEnd.promise, 5000, 'server reading after its end()'), 'sent after the server FIN')
  await within(closedSocket(socket), 5000, 'client close')
})

test("conn.end('bye') writes 'bye', then half-closes: the client sees 'bye' before EOF, and end() returns conn", async (t) => {
  const afterEnd = deferred<string>()
  const returned = deferred<boolean>()
  const server = await serve(t, {
    async handler(conn) {
      returned.resolve(conn.end('bye') === conn)
      const chunks: Buffer[] = []
      for await (const chunk of conn) chunks.push(chunk)
      afterEnd.resolve(Buffer.concat(chunks).toString())
    },
  })
  const socket = await connectHalfOpen(portOf(server))
  const received: Buffer[] = []
  socket.on('data', (c: Buffer) => received.push(c))
  await within(new Promise((resolve) => socket.once('end', resolve)), 5000, "client 'end' after end('bye')")
  t.is(Buffer.concat(received).toString(), 'bye')
  t.true(await returned.promise)
  socket.end('half-open still')
  t.is(await within(afterEnd.promise, 5000, 'server read after end(data)'), 'half-open still')
})

test('conn.end(bytes) with 1 MiB over highWaterMark: every byte arrives before EOF', async (t) => {
  const data = randomBytes(1024 * 1024)
  const server = await serve(t, {
    async handler(conn) {
      conn.end(data)
      await conn.closed
    },
  })
  const socket = await connect(portOf(server))
  const got = await within(collect(socket), 10_000, 'client EOF')
  t.is(got.length, data.length)
  t.is(sha256(got), sha256(data))
})

test('end() after a large un-awaited write flushes it all before the FIN', async (t) => {
  const data = randomBytes(2 * 1024 * 1024)
  const afterEnd = deferred<string>()
  const server = await serve(t, {
    async handler(conn) {
      void conn.write(data)
      conn.end()
      const chunks: Buffer[] = []
      for await (const chunk of conn) chunks.push(chunk)
      afterEnd.resolve(Buffer.concat(chunks).toString())
    },
  })
  const socket = await connectHalfOpen(portOf(server))
  const received: Buffer[] = []
  socket.on('data', (c: Buffer) => received.push(c))
  await within(new Promise((resolve) => socket.once('end', resolve)), 10_000, "client 'end'")
  const got = Buffer.concat(received)
  t.is(got.length, data.length)
  t.is(sha256(got), sha256(data))
  socket.end('still reading')
  t.is(await within(afterEnd.promise, 5000, 'server read after end()'), 'still reading')
})

test('write after end() rejects with ERR_STREAM_WRITE_AFTER_END', async (t) => {
  const result = deferred<unknown>()
  const server = await serve(t, {
    async handler(conn) {
      conn.end()
      result.resolve(
        await conn.write('too late').then(
          () => null,
          (e: unknown) => e,
        ),
      )
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  const err = await within(result.promise, 5000, 'write after end')
  t.is(errCode(err), 'ERR_STREAM_WRITE_AFTER_END')
  t.true(err instanceof Error)
  t.is((await within(received, 5000, 'server FIN')).length, 0)
})

test('conn.close() closes at once, while the handler is still running', async (t) => {
  const release = deferred()
  t.teardown(() => release.resolve())
  const state = deferred<{ readAfter: unknown }>()
  const server = await serve(t, {
    async handler(conn) {
      await conn.read()
      conn.close()
      await conn.closed
      state.resolve({ readAfter: await conn.read() })
      await release.promise // the handler has not returned: close() alone closed the socket
    },
  })
  const socket = await connect(portOf(server))
  const closed = closedSocket(socket)
  socket.write('hello')
  await within(closed, 5000, 'client sees the close')
  const { readAfter } = await within(state.promise, 5000, 'conn.closed after close()')
  t.is(readAfter, null)
})

test('conn.close() drops bytes still queued in the process', async (t) => {
  const data = randomBytes(32 * 1024 * 1024)
  const closedAt = deferred<number>()
  const server = await serve(t, {
    async handler(conn) {
      void conn.write(data).catch(() => {}) // far more than a non-reading client can take
      await sleep(100)
      conn.close()
      await conn.closed
      closedAt.resolve(conn.bytesWritten)
    },
  })
  const socket = await connect(portOf(server))
  socket.pause()
  t.is(await within(closedAt.promise, 5000, 'close() while output is queued'), data.length)
  const received: Buffer[] = []
  socket.on('data', (c: Buffer) => received.push(c))
  socket.resume()
  await within(closedSocket(socket), 5000, 'client sees the close')
  const got = Buffer.concat(received)
  t.true(got.length < data.length, `${got.length} of ${data.length} bytes arrived`)
  t.true(got.equals(data.subarray(0, got.length)), 'what arrived is an intact prefix')
})

test('conn.closed resolves and conn.signal aborts when the connection ends', async (t) => {
  const result = deferred<{ abortedWhileOpen: boolean; signal: AbortSignal; conn: Connection }>()
  const server = await serve(t, {
    handler(conn) {
      const signal = conn.signal
      const abortedWhileOpen = signal.aborted
      result.resolve({ abortedWhileOpen, signal, conn })
      return conn.read().then(() => {}) // returns after the first chunk
    },
  })
  const socket = await connect(portOf(server))
  const { abortedWhileOpen, signal, conn } = await within(result.promise, 5000, 'handler start')
  t.false(abortedWhileOpen)
  const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()))
  socket.write('bye')
  await within(conn.closed, 5000, 'conn.closed')
  await within(aborted, 5000, 'signal abort')
  t.true(signal.aborted)
  t.true(signal.reason instanceof Error)
  // A signal asked for after the close is already aborted; closed stays resolved.
  t.true(conn.signal.aborted)
  await within(conn.closed, 1000, 'conn.closed again')
  await within(closedSocket(socket), 5000, 'client close')
})

for (const [family, listenAt, host] of [
  ['IPv4', '127.0.0.1:0', '127.0.0.1'],
  ['IPv6', '[::1]:0', '::1'],
] as const) {
  test(`remote/local/startTime and the net.Socket-style strings describe the ${family} connection`, async (t) => {
    const before = Date.now()
    const seen = deferred<{ remote: unknown; local: unknown; startTime: number; strings: unknown[] }>()
    const server = await serve(t, {
      address: listenAt,
      async handler(conn) {
        seen.resolve({
          remote: conn.remote,
          local: conn.local,
          startTime: conn.startTime,
          strings: [
            `${conn.remoteAddress}:${conn.remotePort}`,
            conn.remoteFamily,
            conn.localAddress,
            conn.localPort,
            conn.localFamily,
            conn.address(),
          ],
        })
        await conn.read()
      },
    })
    const port = portOf(server)
    const socket = await connect(port, host)
    const { remote, local, startTime, strings } = await within(seen.promise, 5000, 'handler start')
    t.deepEqual(remote, { address: host, port: socket.localPort, family })
    t.deepEqual(local, { address: host, port, family })
    // What node:net gives for the same socket, seen from the client's side.
    t.deepEqual(strings, [
      `${socket.localAddress}:${socket.localPort}`,
      socket.localFamily,
      socket.remoteAddress,
      socket.remotePort,
      socket.remoteFamily,
      { address: host, port, family },
    ])
    t.is(socket.remotePort, port)
    t.is(typeof startTime, 'number')
    t.true(Number.isFinite(startTime))
    t.true(startTime >= before - 1000 && startTime <= Date.now() + 1000, `startTime ${startTime} is recent`)
    socket.end()
  })
}

test('bytesRead/bytesWritten count bytes; write(string) sends UTF-8', async (t) => {
  const input = randomBytes(200_000)
  const text = 'héllo wörld — ✓ 𝄞'
  const counts = deferred<{ read: number; written: number; readBefore: number }>()
  const server = await serve(t, {
    async handler(conn) {
      const readBefore = conn.bytesRead
      for await (const _ of conn) {
        // consume everything
      }
      await conn.write(text)
      await conn.write(Buffer.alloc(1000, 1))
      await conn.write(new Uint8Array(24))
      counts.resolve({ read: conn.bytesRead, written: conn.bytesWritten, readBefore })
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  socket.end(input)
  const reply = await within(received, 5000, 'reply')
  const { read, written, readBefore } = await counts.promise
  const textBytes = Buffer.from(text, 'utf8')
  t.is(readBefore, 0)
  t.is(read, input.length)
  t.is(written, textBytes.length + 1024)
  t.is(reply.length, textBytes.length + 1024)
  t.deepEqual(reply.subarray(0, textBytes.length), textBytes)
  t.is(reply.subarray(0, textBytes.length).toString('utf8'), text)
})

test('a second concurrent read() rejects with ERR_TCPSERVER_CONCURRENT_READ; the first still works', async (t) => {
  const result = deferred<{ second: unknown; third: unknown; first: unknown }>()
  const server = await serve(t, {
    async handler(conn) {
      const first = conn.read()
      const second = await conn.read().then(
        () => null,
        (e: unknown) => e,
      )
      const third = await conn[Symbol.asyncIterator]()
        .next()
        .then(
          () => null,
          (e: unknown) => e,
        )
      result.resolve({ second, third, first: (await first)?.toString() })
    },
  })
  const socket = await connect(portOf(server))
  await sleep(30) // both reads are pending before any data exists
  socket.end('data')
  const { second, third, first } = await within(result.promise, 5000, 'reads')
  t.is(errCode(second), 'ERR_TCPSERVER_CONCURRENT_READ')
  t.is(errCode(third), 'ERR_TCPSERVER_CONCURRENT_READ')
  t.is(first, 'data')
})

test('setNoDelay() and setKeepAlive(true, 1000) return the connection and do not throw', async (t) => {
  const result = deferred<unknown[]>()
  const server = await serve(t, {
    async handler(conn) {
      try {
        result.resolve([
          conn.setNoDelay() === conn,
          conn.setNoDelay(false) === conn,
          conn.setKeepAlive(true, 1000) === conn,
          conn.setKeepAlive(false) === conn,
          conn.setKeepAlive(true) === conn,
        ])
      } catch (e) {
        result.reject(e)
      }
      await conn.write('ok')
    },
  })
  const reply = await within(
    connect(portOf(server)).then((s) => collect(s)),
    5000,
    'reply',
  )
  t.deepEqual(await result.promise, [true, true, true, true, true])
  t.is(reply.toString(), 'ok')
})

test('idleTimeout closes a silent connection; the pending read() rejects with ERR_TCPSERVER_IDLE_TIMEOUT', async (t) => {
  const result = deferred<{ err: unknown; option: number; connErr: unknown }>()
  const server = await serve(t, {
    idleTimeout: 200,
    onError() {},
    async handler(conn) {
      const option = conn.idleTimeout
      const err = await conn.read().then(
        (v) => v,
        (e: unknown) => e,
      )
      result.resolve({ err, option, connErr: conn.error })
    },
  })
  const socket = await connect(portOf(server))
  const closed = closedSocket(socket)
  await within(closed, 5000, 'client sees the idle close')
  const { err, option, connErr } = await within(result.promise, 5000, 'read() settles')
  t.is(option, 200)
  t.is(errCode(err), 'ERR_TCPSERVER_IDLE_TIMEOUT')
  t.is(errCode(connErr), 'ERR_TCPSERVER_IDLE_TIMEOUT')
})

test('idleTimeout does not close a connection that keeps moving bytes', async (t) => {
  const server = await serve(t, {
    idleTimeout: 400,
    async handler(conn) {
      for await (const chunk of conn) await conn.write(chunk)
    },
  })
  const socket = await connect(portOf(server))
  let closedEarly = false
  socket.once('close', () => {
    closedEarly = true
  })
  const received = collect(socket)
  for (let i = 0; i < 16; i++) {
    socket.write('.')
    await sleep(50)
  }
  t.false(closedEarly, 'still open after 800 ms of steady traffic')
  socket.end()
  t.is((await within(received, 5000, 'echo')).toString(), '.'.repeat(16))
})

test('when the handler returns, everything it wrote (1 MiB, not awaited) reaches the client before FIN', async (t) => {
  const data = randomBytes(1024 * 1024)
  const server = await serve(t, {
    async handler(conn) {
      void conn.write(data)
    },
  })
  const socket = await connect(portOf(server))
  const received = await within(collect(socket), 10_000, 'all bytes then FIN')
  t.is(received.length, data.length)
  t.is(sha256(received), sha256(data))
})

test('unread input from the client does not destroy the last bytes the handler wrote', async (t) => {
  const data = randomBytes(1024 * 1024)
  const server = await serve(t, {
    async handler(conn) {
      await conn.read() // takes one chunk, leaves the rest unread
      void conn.write(data)
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  socket.write(randomBytes(512 * 1024))
  const got = await within(received, 10_000, 'all bytes then FIN')
  t.is(got.length, data.length)
  t.is(sha256(got), sha256(data))
})

test('nothing unread when the handler returns: the server closes at once, not waiting for the client’s FIN; every byte arrives', async (t) => {
  const data = randomBytes(1024 * 1024)
  let closedFirst = false
  const server = await serve(t, {
    async handler(conn) {
      void conn.closed.then(() => {
        closedFirst = true
      })
      await conn.read() // the request: all the client sends
      void conn.write(data)
    },
  })
  // Half-open: the client does not answer the server's FIN with its own. A lingering close
  // would wait for it (up to 2 s); this one is closed when the FIN reaches the client.
  const socket = await connectHalfOpen(portOf(server))
  const received = collect(socket)
  socket.write('request')
  const got = await within(received, 10_000, 'all bytes then FIN')
  t.is(sha256(got), sha256(data))
  t.true(closedFirst, 'closed before the client finished')
  t.false(socket.writableEnded)
  socket.destroy()
})

test('a peer reset makes a pending read() reject with ECONNRESET', async (t) => {
  const started = deferred()
  const result = deferred<{ err: unknown; connErr: unknown; reason: unknown; remote: unknown }>()
  const server = await serve(t, {
    onError() {},
    async handler(conn) {
      const signal = conn.signal
      started.resolve()
      const err = await conn.read().then(
        (v) => v,
        (e: unknown) => e,
      )
      await conn.closed
      // Asked for only now: a connection the peer ended keeps its addresses.
      result.resolve({ err, connErr: conn.error, reason: signal.reason, remote: conn.remote })
    },
  })
  const socket = await connect(portOf(server))
  const clientPort = socket.localPort
  await within(started.promise, 5000, 'handler start')
  await sleep(20) // the read() is pending
  socket.resetAndDestroy()
  const { err, connErr, reason, remote } = await within(result.promise, 5000, 'read() settles')
  t.is(errCode(err), 'ECONNRESET')
  t.is(errCode(connErr), 'ECONNRESET')
  t.is(errCode(reason), 'ECONNRESET')
  t.deepEqual(remote, { address: '127.0.0.1', port: clientPort, family: 'IPv4' })
})
