// conn.receive(): chunks passed to a callback as they arrive (no promise per chunk). Pins the
// order and completeness of what it passes (hash-checked, from events and from direct reads),
// stopping with `false` and handing the rest to read() or pipe(), a callback's promise holding
// input back (the peer is slowed, nothing lost), every way it rejects, and TLS connections.
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { type Connection, connect as dial } from 'tcpserver-rs'
import {
  channel,
  closedSocket,
  collect,
  connect,
  deferred,
  errCode,
  portOf,
  serve,
  sha256,
  sleep,
  unhandledRejections,
  until,
  within,
} from './helpers/index.ts'

const MiB = 1 << 20
const TLS_DIR = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))

/** Settles to what the promise rejected with, or `undefined` when it resolved. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
    return undefined
  } catch (e) {
    return e
  }
}

test('passes every chunk in order and resolves at the peer’s FIN (8 MiB, hash-checked)', async (t) => {
  const data = randomBytes(8 * MiB)
  const result = deferred<{ hash: string; bytes: number; calls: number; bytesRead: number }>()
  const server = await serve(t, {
    async handler(conn) {
      const hash = createHash('sha256')
      let bytes = 0
      let calls = 0
      await conn.receive((chunk) => {
        hash.update(chunk)
        bytes += chunk.length
        calls++
      })
      result.resolve({ hash: hash.digest('hex'), bytes, calls, bytesRead: conn.bytesRead })
      await conn.write('done')
    },
  })
  const socket = await connect(portOf(server))
  const reply = collect(socket)
  socket.end(data)
  const got = await within(result.promise, 10000, 'receive end')
  t.is(got.bytes, data.length)
  t.is(got.hash, sha256(data))
  t.is(got.bytesRead, data.length)
  t.true(got.calls > 1)
  t.is((await within(reply, 5000, 'reply')).toString(), 'done')
})

test('chunks received before the call are passed before receive returns', async (t) => {
  const seen = deferred<{ synchronously: string; after: string }>()
  const server = await serve(t, {
    async handler(conn) {
      await sleep(100) // the request is queued by now
      let got = ''
      const done = conn.receive((chunk) => {
        got += chunk.toString()
      })
      const synchronously = got
      await done
      seen.resolve({ synchronously, after: got })
    },
  })
  const socket = await connect(portOf(server))
  socket.write('early ')
  await sleep(300)
  socket.end('late')
  const { synchronously, after } = await within(seen.promise, 5000, 'handler')
  t.is(synchronously, 'early ')
  t.is(after, 'early late')
})

test('returning false stops: the rest of the input is read() afterwards, byte-exact', async (t) => {
  const data = randomBytes(4 * MiB)
  const result = deferred<{ first: number; rest: Buffer; calls: number }>()
  const server = await serve(t, {
    async handler(conn) {
      let first = 0
      let calls = 0
      await conn.receive((chunk) => {
        first += chunk.length
        calls++
        return false
      })
      const rest: Buffer[] = []
      for (let c = await conn.read(); c !== null; c = await conn.read()) rest.push(c)
      result.resolve({ first, rest: Buffer.concat(rest), calls })
    },
  })
  const socket = await connect(portOf(server))
  socket.end(data)
  const { first, rest, calls } = await within(result.promise, 10000, 'handler')
  t.is(calls, 1)
  t.true(first > 0)
  t.is(first + rest.length, data.length)
  t.is(sha256(rest), sha256(data.subarray(first)))
})

test('stopping on a header and pipe(): the head and the rest reach the upstream in order (hash-checked)', async (t) => {
  const body = randomBytes(8 * MiB)
  const upstreamHash = deferred<string>()
  const upstream = net.createServer((s) => {
    const h = createHash('sha256')
    s.on('data', (d) => h.update(d))
    s.on('end', () => {
      upstreamHash.resolve(h.digest('hex'))
      s.end('ok')
    })
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  t.teardown(() => upstream.close())
  const upstreamPort = (upstream.address() as net.AddressInfo).port
  const server = await serve(t, {
    async handler(conn) {
      let header = Buffer.alloc(0)
      await conn.receive((chunk) => {
        header = Buffer.concat([header, chunk])
        return header.indexOf(10) < 0 // go on until the line is complete
      })
      const nl = header.indexOf(10)
      await using other = await dial(`127.0.0.1:${upstreamPort}`)
      await conn.pipe(other, { head: header.subarray(nl + 1) })
    },
  })
  const socket = await connect(portOf(server))
  const reply = collect(socket)
  socket.write('PIPE\n')
  socket.end(body)
  t.is(await within(upstreamHash.promise, 10000, 'upstream hash'), sha256(body))
  t.is((await within(reply, 10000, 'reply')).toString(), 'ok')
})

test('a callback’s promise holds the next chunk back: the peer is slowed, nothing is lost (64 MiB)', async (t) => {
  const data = randomBytes(64 * MiB)
  const gate = deferred()
  const result = deferred<{ hash: string; overlapped: boolean; calls: number }>()
  const firstCall = deferred()
  const server = await serve(t, {
    async handler(conn) {
      const hash = createHash('sha256')
      let busy = false
      let overlapped = false
      let calls = 0
      await conn.receive(async (chunk) => {
        if (busy) overlapped = true
        busy = true
        hash.update(chunk)
        if (calls++ === 0) {
          firstCall.resolve()
          await gate.promise // blocked until the test has seen the client stall
        } else if (calls % 64 === 0) {
          await sleep(1)
        }
        busy = false
      })
      result.resolve({ hash: hash.digest('hex'), overlapped, calls })
    },
  })
  const socket = await connect(portOf(server))
  let flushed = false
  socket.write(data, () => {
    flushed = true
  })
  socket.end()
  await within(firstCall.promise, 5000, 'first chunk')
  await sleep(300)
  // 64 MiB cannot fit in the kernel's buffers and the server's queue: the writer must wait.
  t.false(flushed, 'the client wrote everything while the handler was blocked')
  gate.resolve()
  const got = await within(result.promise, 20000, 'receive end')
  t.true(flushed)
  t.false(got.overlapped, 'the callback ran again before its promise settled')
  t.is(got.hash, sha256(data))
})

test('returning conn.write(): a peer that does not read its echo stops being read; then all of it comes back (hash-checked)', async (t) => {
  const data = randomBytes(64 * MiB)
  const server = await serve(t, {
    handler(conn) {
      return conn.receive((chunk) => conn.write(chunk))
    },
  })
  const socket = await connect(portOf(server))
  let flushed = false
  socket.write(data, () => {
    flushed = true
  })
  socket.end()
  socket.pause()
  await sleep(500)
  t.false(flushed, 'the client wrote everything while nobody read the echo')
  const echoed = createHash('sha256')
  let n = 0
  socket.on('data', (d: Buffer) => {
    echoed.update(d)
    n += d.length
  })
  socket.resume()
  await within(closedSocket(socket), 20000, 'echo')
  t.true(flushed)
  t.is(n, data.length)
  t.is(echoed.digest('hex'), sha256(data))
})

test('a callback’s promise resolving to false stops, and the rest stays for read()', async (t) => {
  const result = deferred<{ passed: string; rest: string }>()
  const server = await serve(t, {
    async handler(conn) {
      let passed = ''
      await conn.receive(async (chunk) => {
        passed += chunk.toString()
        await sleep(20)
        return false
      })
      let rest = ''
      for (let c = await conn.read(); c !== null; c = await conn.read()) rest += c.toString()
      result.resolve({ passed, rest })
    },
  })
  const socket = await connect(portOf(server))
  socket.write('one')
  await sleep(100)
  socket.end('two')
  const { passed, rest } = await within(result.promise, 5000, 'handler')
  t.is(passed, 'one')
  t.is(rest, 'two')
})

test('rejects with what the callback threw or its promise rejected with; the handler’s error closes the connection', async (t) => {
  const errors: unknown[] = []
  const server = await serve(t, {
    onError: (e) => errors.push(e),
    async handler(conn) {
      const first = await rejection(
        conn.receive(() => {
          throw new Error('sync boom')
        }),
      )
      const second = await rejection(
        conn.receive(async () => {
          await sleep(1)
          throw new Error('async boom')
        }),
      )
      await conn.write(`${(first as Error).message},${(second as Error).message}`)
      throw second
    },
  })
  const socket = await connect(portOf(server))
  const reply = collect(socket)
  socket.write('a')
  await sleep(100)
  socket.write('b')
  t.is((await within(reply, 5000, 'reply')).toString(), 'sync boom,async boom')
  await until(() => errors.length === 1, 5000, 'onError')
  t.is((errors[0] as Error).message, 'async boom')
})

test('a peer reset rejects with ECONNRESET after the chunks sent before it', async (t) => {
  const result = deferred<{ got: string; err: unknown }>()
  const server = await serve(t, {
    async handler(conn) {
      let got = ''
      const err = await rejection(
        conn.receive((chunk) => {
          got += chunk.toString()
        }),
      )
      result.resolve({ got, err })
    },
  })
  const socket = await connect(portOf(server))
  socket.write('before')
  await sleep(100)
  socket.resetAndDestroy()
  const { got, err } = await within(result.promise, 5000, 'handler')
  t.is(got, 'before')
  t.is(errCode(err), 'ECONNRESET')
})

test('readTimeout: no chunk for that long rejects with ETIMEDOUT; a pending callback promise does not count', async (t) => {
  const timedOut = deferred<{ err: unknown; waited: number; got: string }>()
  const late = deferred<string | null>()
  const server = await serve(t, {
    readTimeout: 150,
    async handler(conn) {
      let got = ''
      let last = performance.now()
      const err = await rejection(
        conn.receive(async (chunk) => {
          got += chunk.toString()
          await sleep(400) // longer than readTimeout: not a wait for input
          last = performance.now()
        }),
      )
      timedOut.resolve({ err, waited: performance.now() - last, got })
      // The connection stays usable both ways.
      await conn.write('still here')
      late.resolve((await conn.read())?.toString() ?? null)
    },
  })
  const socket = await connect(portOf(server))
  const reply = collect(socket)
  socket.write('x')
  const { err, waited, got } = await within(timedOut.promise, 5000, 'timeout')
  t.is(got, 'x')
  t.is(errCode(err), 'ETIMEDOUT')
  t.true(waited >= 140, `rejected ${waited} ms after the callback's promise settled`)
  socket.end('late')
  t.is(await within(late.promise, 5000, 'late read'), 'late')
  t.is((await within(reply, 5000, 'reply')).toString(), 'still here')
  t.is(server.stats().timeouts.read, 1)
})

test('readTimeout does not fire while a streaming peer keeps the chunks coming (direct reads, sync callback)', async (t) => {
  const result = deferred<{ err: unknown; bytes: number; hash: string }>()
  const server = await serve(t, {
    readTimeout: 100,
    async handler(conn) {
      const hash = createHash('sha256')
      let bytes = 0
      const err = await rejection(
        conn.receive((chunk) => {
          hash.update(chunk)
          bytes += chunk.length
        }),
      )
      result.resolve({ err, bytes, hash: hash.digest('hex') })
    },
  })
  const socket = await connect(portOf(server))
  // 600 ms of data as fast as the socket takes it: the server never waits 100 ms for a chunk.
  const block = randomBytes(MiB)
  const sent = createHash('sha256')
  let total = 0
  socket.on('error', () => {})
  const until = Date.now() + 600
  while (Date.now() < until && !socket.destroyed) {
    sent.update(block)
    total += block.length
    if (!socket.write(block)) {
      await new Promise((r) => {
        socket.once('drain', r)
        socket.once('close', r) // a server that gave up must not hang the test
      })
    }
  }
  socket.end()
  const got = await within(result.promise, 10000, 'receive end')
  t.is(got.err, undefined)
  t.is(got.bytes, total)
  t.is(got.hash, sent.digest('hex'))
})

test('the peer’s FIN and reset while the callback’s promise is pending: the queued chunks first, then the end or the error', async (t) => {
  const results = channel<{ got: string[]; err: unknown }>()
  const gates = [deferred(), deferred()]
  let n = 0
  const server = await serve(t, {
    async handler(conn) {
      const gate = (gates[n++] as { promise: Promise<void> }).promise
      const got: string[] = []
      const err = await rejection(
        conn.receive(async (chunk) => {
          got.push(chunk.toString())
          if (got.length === 1) await gate
        }),
      )
      results.push({ got, err })
    },
  })
  for (const [i, how] of (['end', 'reset'] as const).entries()) {
    const socket = await connect(portOf(server))
    socket.on('error', () => {})
    socket.write('a')
    await sleep(100)
    socket.write('b')
    await sleep(100)
    if (how === 'end') socket.end()
    else socket.resetAndDestroy()
    await sleep(200) // the FIN or reset has reached the server; the callback still waits
    ;(gates[i] as { resolve: () => void }).resolve()
    const { got, err } = await results.next(5000, how)
    t.deepEqual(got, ['a', 'b'], how)
    t.is(errCode(err), how === 'end' ? undefined : 'ECONNRESET', how)
  }
})

test('hostile use: a non-function, a second reader, toDuplex() and readable while it runs', async (t) => {
  const result = deferred<Record<string, unknown>>()
  const server = await serve(t, {
    async handler(conn) {
      const out: Record<string, unknown> = {}
      for (const bad of [undefined, null, 42, 'f', {}]) {
        out[String(bad)] = errCode(await rejection(conn.receive(bad as unknown as () => void)))
      }
      const running = conn.receive(() => {})
      out.read = errCode(await rejection(conn.read()))
      out.receive = errCode(await rejection(conn.receive(() => {})))
      try {
        conn.toDuplex()
      } catch (e) {
        out.toDuplex = errCode(e)
      }
      try {
        void conn.readable
      } catch (e) {
        out.readable = errCode(e)
      }
      await running
      result.resolve(out)
    },
  })
  const socket = await connect(portOf(server))
  await sleep(100)
  socket.end()
  const out = await within(result.promise, 5000, 'handler')
  for (const bad of ['undefined', 'null', '42', 'f', '[object Object]'])
    t.is(out[bad], 'ERR_INVALID_ARG_TYPE', bad)
  t.is(out.read, 'ERR_TCPSERVER_CONCURRENT_READ')
  t.is(out.receive, 'ERR_TCPSERVER_CONCURRENT_READ')
  t.is(out.toDuplex, 'ERR_TCPSERVER_BUSY')
  t.is(out.readable, 'ERR_TCPSERVER_BUSY')
  await closedSocket(socket)
})

test('read(), receive() and for await are refused while a pipe() is under way; after it, reads return null', async (t) => {
  const upstream = net.createServer((s) => s.pipe(s))
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  t.teardown(() => upstream.close())
  const upstreamPort = (upstream.address() as net.AddressInfo).port
  const result = deferred<Record<string, unknown>>()
  const server = await serve(t, {
    async handler(conn) {
      await using other = await dial(`127.0.0.1:${upstreamPort}`)
      const piping = conn.pipe(other)
      const out: Record<string, unknown> = {
        read: errCode(await rejection(conn.read())),
        receive: errCode(await rejection(conn.receive(() => {}))),
        iterate: errCode(await rejection(conn[Symbol.asyncIterator]().next())),
      }
      out.moved = (await piping).bytesIn
      out.after = await conn.read()
      result.resolve(out)
    },
  })
  const socket = await connect(portOf(server))
  const echoed = collect(socket)
  socket.end('through the pipe')
  t.is((await within(echoed, 5000, 'echo')).toString(), 'through the pipe')
  t.deepEqual(await within(result.promise, 5000, 'handler'), {
    read: 'ERR_TCPSERVER_BUSY',
    receive: 'ERR_TCPSERVER_BUSY',
    iterate: 'ERR_TCPSERVER_BUSY',
    moved: 16,
    after: null,
  })
})

test('after direct reads (a streaming peer read with read()), receive takes the rest in order (hash-checked)', async (t) => {
  const data = randomBytes(16 * MiB)
  const result = deferred<string>()
  const server = await serve(t, {
    async handler(conn) {
      const hash = createHash('sha256')
      // Big chunks switch read() to direct reads; then receive takes over mid-stream.
      for (let i = 0; i < 8; i++) {
        const c = await conn.read()
        if (c === null) break
        hash.update(c)
      }
      await conn.receive((chunk) => {
        hash.update(chunk)
      })
      result.resolve(hash.digest('hex'))
    },
  })
  const socket = await connect(portOf(server))
  socket.end(data)
  t.is(await within(result.promise, 10000, 'handler'), sha256(data))
})

test('a TLS connection: an echo over receive (hash-checked)', async (t) => {
  const data = randomBytes(2 * MiB)
  const server = await serve(t, {
    tls: { cert: `${TLS_DIR}server.crt`, key: `${TLS_DIR}server.key` },
    handler(conn) {
      return conn.receive((chunk) => conn.write(chunk))
    },
  })
  const socket = tls.connect({
    port: portOf(server),
    host: '127.0.0.1',
    servername: 'localhost',
    ca: readFileSync(`${TLS_DIR}ca.crt`),
  })
  const echoed = createHash('sha256')
  let n = 0
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (d: Buffer) => {
      echoed.update(d)
      n += d.length
      if (n === data.length) resolve()
    })
    socket.on('error', reject)
  })
  socket.write(data)
  await within(done, 10000, 'echo')
  t.is(echoed.digest('hex'), sha256(data))
  socket.end()
  await closedSocket(socket, { resume: true })
})

// A handler that returns receive()'s promise itself is not watched with `.then` (the reader
// tells the server when it settles): these pin that it still behaves like any handler result.
// Serial: it listens for process-wide unhandled rejections.
test.serial(
  'returning receive()’s promise: its rejection reaches onError once, closes the connection, and is no unhandled rejection',
  async (t) => {
    const unhandled = unhandledRejections(t)
    const errors: unknown[] = []
    const server = await serve(t, {
      onError: (e) => errors.push(e),
      handler(conn) {
        return conn.receive((chunk) => {
          const what = chunk.toString()
          if (what === 'sync') throw new Error('sync boom')
          if (what === 'async') return sleep(1).then(() => Promise.reject(new Error('async boom')))
          return conn.write(chunk)
        })
      },
    })
    for (const what of ['sync', 'async']) {
      const socket = await connect(portOf(server))
      socket.write(what)
      await within(closedSocket(socket, { resume: true }), 5000, `${what}: closed by the server`)
    }
    // A peer's reset: ECONNRESET, after an echo that proves the receive was running.
    const socket = await connect(portOf(server))
    const echoed = deferred()
    socket.once('data', () => echoed.resolve())
    socket.write('echo')
    await within(echoed.promise, 5000, 'echo')
    socket.resetAndDestroy()
    await until(() => errors.length === 3, 5000, 'onError for all three')
    await until(() => server.activeConnections === 0, 5000, 'no open connections')
    await sleep(50)
    t.deepEqual(
      errors.map((e) => errCode(e) ?? (e as Error).message),
      ['sync boom', 'async boom', 'ECONNRESET'],
    )
    t.deepEqual(unhandled, [])
  },
)

test('returning receive()’s promise: reactions the handler put on it run before the connection closes, whether it settled before or after the handler returned', async (t) => {
  const handler = (conn: Connection): Promise<void> => {
    const done = conn.receive((chunk) => {
      conn.write(`got ${chunk.toString()};`)
      return false
    })
    void done.then(() => conn.write('last'))
    return done
  }
  // With deferAccept the request comes with the accept and is queued before the handler runs:
  // receive() settles before the handler returns. Without it, and a client that waits before
  // it writes, receive() is still running when the handler returns.
  for (const deferAccept of [true, false]) {
    const server = await serve(t, { deferAccept, handler })
    const replies = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const socket = await connect(portOf(server))
        const reply = collect(socket)
        if (!deferAccept) await sleep(50)
        socket.write(`#${i}`)
        return (await within(reply, 5000, `reply ${i}`)).toString()
      }),
    )
    t.deepEqual(
      replies,
      Array.from({ length: 20 }, (_, i) => `got #${i};last`),
      `deferAccept: ${deferAccept}`,
    )
    await until(() => server.activeConnections === 0, 5000, 'no open connections')
  }
})
