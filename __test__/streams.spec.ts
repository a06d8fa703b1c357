// Node and web stream adapters on a Connection: conn.toDuplex() through pipeline() and zlib,
// half-close, backpressure, resets; conn.readable / conn.writable; node:http over a Connection.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import type net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { createGzip, gunzipSync } from 'node:zlib'
import test from 'ava'
import type { ConnectionDuplex, Server } from 'tcpserver-rs'
import {
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

/** What a half-open client receives until the server's FIN. */
async function untilServerFin(socket: net.Socket): Promise<string> {
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  await within(once(socket, 'end'), 5000, 'server FIN')
  return Buffer.concat(chunks).toString()
}

/** Compressible but not trivial: random words, so gzip has work to do and output to check. */
function textLike(bytes: number): Buffer {
  const words = Array.from({ length: 512 }, () =>
    randomBytes(1 + ((randomBytes(1)[0] as number) % 9)).toString('hex'),
  )
  const parts: string[] = []
  let n = 0
  while (n < bytes) {
    const w = words[(randomBytes(2).readUInt16LE() % words.length) as number] as string
    parts.push(w)
    n += w.length + 1
  }
  return Buffer.from(parts.join(' ')).subarray(0, bytes)
}

/** A sink that keeps everything written to it. */
function sink(): { stream: Writable; data: () => Buffer } {
  const chunks: Buffer[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk)
      cb()
    },
  })
  return { stream, data: () => Buffer.concat(chunks) }
}

test('pipeline(duplex, gzip, duplex): the client gunzips exactly what it sent (several MiB)', async (t) => {
  const data = textLike(6 * 1024 * 1024)
  const server = await serve(t, {
    async handler(conn) {
      const duplex = conn.toDuplex()
      await pipeline(duplex, createGzip(), duplex)
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  socket.end(data)
  const gz = await within(received, 20_000, 'gzip stream then FIN')
  t.true(gz.length < data.length, 'compressed')
  t.is(sha256(gunzipSync(gz)), sha256(data))
})

test('pipeline(duplex, duplex) echoes every byte, the handler awaiting it', async (t) => {
  const data = randomBytes(4 * 1024 * 1024)
  const done = deferred<{ read: number; written: number }>()
  const server = await serve(t, {
    async handler(conn) {
      const duplex = conn.toDuplex()
      await pipeline(duplex, duplex)
      done.resolve({ read: conn.bytesRead, written: conn.bytesWritten })
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  for (let i = 0; i < data.length; i += 256 * 1024) socket.write(data.subarray(i, i + 256 * 1024))
  socket.end()
  const echoed = await within(received, 20_000, 'echo then FIN')
  t.is(sha256(echoed), sha256(data))
  t.deepEqual(await within(done.promise, 5000, 'handler'), { read: data.length, written: data.length })
})

test('toDuplex(): the same Duplex twice; direct reads then fail with ERR_TCPSERVER_STREAM_LOCKED', async (t) => {
  const result = deferred<Record<string, unknown>>()
  const server = await serve(t, {
    async handler(conn) {
      // Read before the takeover: the Duplex carries on from there.
      const first = await conn.read()
      await conn.write('ok') // the client sends the rest only now: two separate chunks
      const duplex = conn.toDuplex()
      const out: Record<string, unknown> = { first: first?.toString(), same: conn.toDuplex() === duplex }
      out.read = errCode(await conn.read().catch((e: unknown) => e))
      out.iterate = errCode(
        await conn[Symbol.asyncIterator]()
          .next()
          .catch((e: unknown) => e),
      )
      out.readable = errCode(
        (() => {
          try {
            return conn.readable
          } catch (e) {
            return e
          }
        })(),
      )
      out.startTls = errCode(await conn.startTls().catch((e: unknown) => e))
      const rest = sink()
      await pipeline(duplex, rest.stream)
      out.rest = rest.data().toString()
      result.resolve(out)
    },
  })
  const socket = await connect(portOf(server))
  socket.write('head|')
  await within(new Promise((r) => socket.once('data', r)), 5000, "the server's ok")
  socket.end('tail')
  const out = await within(result.promise, 5000, 'handler')
  t.is(out.first, 'head|')
  t.true(out.same)
  t.is(out.read, 'ERR_TCPSERVER_STREAM_LOCKED')
  t.is(out.iterate, 'ERR_TCPSERVER_STREAM_LOCKED')
  t.is(out.readable, 'ERR_TCPSERVER_STREAM_LOCKED')
  t.is(out.startTls, 'ERR_TCPSERVER_STREAM_LOCKED')
  t.is(out.rest, 'tail')
})

test('toDuplex() while a read() is pending throws ERR_TCPSERVER_BUSY, and works once it settled', async (t) => {
  const result = deferred<{ busy: unknown; pending: string | undefined; rest: string }>()
  const server = await serve(t, {
    async handler(conn) {
      const pending = conn.read()
      let busy: unknown
      try {
        conn.toDuplex()
      } catch (e) {
        busy = e
      }
      const first = await pending
      const rest = sink()
      await pipeline(conn.toDuplex(), rest.stream)
      result.resolve({ busy: errCode(busy), pending: first?.toString(), rest: rest.data().toString() })
    },
  })
  const socket = await connect(portOf(server))
  await sleep(30) // the read() is pending
  socket.write('one|')
  await sleep(30)
  socket.end('two')
  t.deepEqual(await within(result.promise, 5000, 'handler'), {
    busy: 'ERR_TCPSERVER_BUSY',
    pending: 'one|',
    rest: 'two',
  })
})

test('half-close: the client FIN ends the readable side; the server still writes, then end() sends FIN', async (t) => {
  const server = await serve(t, {
    async handler(conn) {
      const duplex = conn.toDuplex()
      let n = 0
      // Node's iterator destroys the stream when the loop ends, which would close the connection.
      for await (const chunk of duplex.iterator({ destroyOnReturn: false })) n += (chunk as Buffer).length
      await sleep(30) // well after the client's FIN
      duplex.end(`got ${n} bytes`)
      await finished(duplex)
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  socket.end('y'.repeat(70_000))
  t.is((await within(received, 5000, 'reply after FIN')).toString(), 'got 70000 bytes')
})

test('half-close: duplex.end() sends FIN after the data; the server reads on until the client ends', async (t) => {
  const afterEnd = deferred<string>()
  const server = await serve(t, {
    async handler(conn) {
      const duplex = conn.toDuplex()
      duplex.end('greeting')
      await once(duplex, 'finish')
      const rest = sink()
      await pipeline(duplex, rest.stream)
      afterEnd.resolve(rest.data().toString())
    },
  })
  const socket = await connectHalfOpen(portOf(server))
  t.is(await untilServerFin(socket), 'greeting')
  socket.end('still talking after your FIN')
  t.is(await within(afterEnd.promise, 5000, 'server reads after its end()'), 'still talking after your FIN')
})

test('backpressure: a client that does not read stalls duplex.write() with a bounded buffer', async (t) => {
  const chunk = randomBytes(64 * 1024)
  const stalled = deferred<{ writableLength: number; hwm: number; bytesWritten: number }>()
  const resume = deferred()
  const sent = deferred<{ total: number; bytesWritten: number }>()
  const server = await serve(t, {
    async handler(conn) {
      const duplex = conn.toDuplex({ writableHighWaterMark: 64 * 1024 })
      let total = 0
      // Write until write() says stop and no 'drain' comes for 500 ms: the kernel buffers,
      // the connection's queue and the Duplex's buffer are all full.
      for (;;) {
        total += chunk.length
        if (duplex.write(chunk)) continue
        const drained = await Promise.race([
          once(duplex, 'drain').then(() => true),
          sleep(500).then(() => false),
        ])
        if (!drained) break
      }
      stalled.resolve({
        writableLength: duplex.writableLength,
        hwm: duplex.writableHighWaterMark,
        bytesWritten: conn.bytesWritten,
      })
      await resume.promise
      duplex.end()
      await finished(duplex, { readable: false })
      sent.resolve({ total, bytesWritten: conn.bytesWritten })
    },
  })
  const socket = await connect(portOf(server))
  socket.pause()
  const s = await within(stalled.promise, 30_000, 'writer stalls')
  t.true(s.writableLength <= s.hwm + chunk.length, `Duplex buffer ${s.writableLength}`)
  // Accepted by the connection: kernel socket buffers plus its 64 KiB output queue.
  t.true(s.bytesWritten < 64 * 1024 * 1024, `bytesWritten ${s.bytesWritten}`)
  let n = 0
  socket.on('data', (c: Buffer) => {
    n += c.length
  })
  socket.resume()
  resume.resolve()
  await within(once(socket, 'end'), 20_000, 'everything then FIN')
  const { total, bytesWritten } = await within(sent.promise, 5000, 'handler')
  t.is(bytesWritten, total)
  t.is(n, total)
})

test('backpressure: a handler that does not read leaves input in the connection, not the Duplex', async (t) => {
  const state = deferred<{ buffered: number; read: number }>()
  const server = await serve(t, {
    highWaterMark: 64 * 1024,
    async handler(conn) {
      const duplex = conn.toDuplex()
      duplex.once('readable', () => {})
      await sleep(500) // the client keeps sending meanwhile
      state.resolve({ buffered: duplex.readableLength, read: conn.bytesRead })
      duplex.destroy()
    },
  })
  const socket = await connect(portOf(server))
  socket.on('error', () => {})
  const blob = randomBytes(32 * 1024 * 1024)
  socket.write(blob)
  const s = await within(state.promise, 5000, 'handler')
  t.true(s.buffered <= 64 * 1024 + 16 * 1024, `readableLength ${s.buffered}`)
  t.true(s.read <= 2 * 64 * 1024, `bytesRead ${s.read}`)
  socket.destroy()
})

test('a peer reset is the Duplex error, with code ECONNRESET', async (t) => {
  const started = deferred()
  const result = deferred<{ pipeline: unknown; event: unknown; destroyed: boolean }>()
  const server = await serve(t, {
    onError() {},
    async handler(conn) {
      const duplex = conn.toDuplex()
      let event: unknown
      duplex.on('error', (e) => {
        event = e
      })
      started.resolve()
      const err = await pipeline(duplex, sink().stream).catch((e: unknown) => e)
      result.resolve({ pipeline: errCode(err), event: errCode(event), destroyed: duplex.destroyed })
    },
  })
  const socket = await connect(portOf(server))
  socket.write('some bytes first')
  await within(started.promise, 5000, 'handler start')
  await sleep(30)
  socket.resetAndDestroy()
  const r = await within(result.promise, 5000, 'pipeline settles')
  t.is(r.pipeline, 'ECONNRESET')
  t.is(r.event, 'ECONNRESET')
  t.true(r.destroyed)
})

test('a reset while the Duplex is idle still surfaces as its error', async (t) => {
  const result = deferred<unknown>()
  const server = await serve(t, {
    onError() {},
    async handler(conn) {
      const duplex = conn.toDuplex()
      duplex.write('hello')
      const [err] = await once(duplex, 'error')
      result.resolve(err)
    },
  })
  const socket = await connect(portOf(server))
  await within(once(socket, 'data'), 5000, 'hello')
  socket.resetAndDestroy()
  t.is(errCode(await within(result.promise, 5000, 'error event')), 'ECONNRESET')
})

test('duplex.destroy(err) closes the connection at once; the client sees it close', async (t) => {
  const closed = deferred<boolean>()
  const server = await serve(t, {
    async handler(conn) {
      const duplex = conn.toDuplex()
      duplex.on('error', () => {})
      duplex.destroy(new Error('protocol violation'))
      await within(conn.closed, 5000, 'conn.closed')
      closed.resolve(true)
      await sleep(2000) // the handler is still running: the destroy closed it, not the return
    },
  })
  const socket = await connect(portOf(server))
  socket.on('error', () => {})
  await within(once(socket, 'close'), 1500, 'client close')
  t.true(await within(closed.promise, 5000, 'handler'))
})

test('web streams: readable.pipeTo(writable) echoes every byte', async (t) => {
  const data = randomBytes(3 * 1024 * 1024)
  const server = await serve(t, {
    async handler(conn) {
      await conn.readable.pipeTo(conn.writable)
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  socket.end(data)
  t.is(sha256(await within(received, 20_000, 'echo then FIN')), sha256(data))
})

test('web streams: pipeThrough(TextDecoderStream) decodes UTF-8 split across packets', async (t) => {
  const text = 'grüße, 世界, 🎉 '.repeat(5000)
  const bytes = Buffer.from(text)
  const server = await serve(t, {
    async handler(conn) {
      let decoded = ''
      for await (const s of conn.readable.pipeThrough(new TextDecoderStream())) decoded += s
      const writer = conn.writable.getWriter()
      await writer.write(new TextEncoder().encode(`${decoded.length} ${decoded === text}`))
      await writer.close()
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  // Cut inside multi-byte characters on purpose.
  for (let i = 0; i < bytes.length; i += 7777) {
    socket.write(bytes.subarray(i, i + 7777))
    if (i % (7777 * 10) === 0) await sleep(1)
  }
  socket.end()
  t.is((await within(received, 10_000, 'reply')).toString(), `${text.length} true`)
})

test('web streams: a BYOB reader gets bytes copied into its own buffer', async (t) => {
  const data = randomBytes(200_000)
  const result = deferred<Buffer>()
  const server = await serve(t, {
    async handler(conn) {
      const reader = conn.readable.getReader({ mode: 'byob' })
      const parts: Buffer[] = []
      for (;;) {
        const { value, done } = await reader.read(new Uint8Array(1000))
        if (done) break
        t.true(value.byteLength <= 1000)
        parts.push(Buffer.from(value))
      }
      result.resolve(Buffer.concat(parts))
    },
  })
  const socket = await connect(portOf(server))
  socket.end(data)
  t.is(sha256(await within(result.promise, 10_000, 'BYOB reads')), sha256(data))
})

test('web streams: writable.close() half-closes; the readable still delivers afterwards', async (t) => {
  const afterClose = deferred<string>()
  const server = await serve(t, {
    async handler(conn) {
      const writer = conn.writable.getWriter()
      await writer.write(new TextEncoder().encode('greeting'))
      await writer.close()
      let s = ''
      for await (const part of conn.readable.pipeThrough(new TextDecoderStream())) s += part
      afterClose.resolve(s)
    },
  })
  const socket = await connectHalfOpen(portOf(server))
  t.is(await untilServerFin(socket), 'greeting')
  socket.end('after your FIN')
  t.is(await within(afterClose.promise, 5000, 'server reads on'), 'after your FIN')
})

test('web streams: cancel() stops reading and closes after flushing what was written', async (t) => {
  const result = deferred<{ first: string; closed: boolean }>()
  const server = await serve(t, {
    async handler(conn) {
      const reader = conn.readable.getReader()
      const { value } = await reader.read()
      await conn.writable.getWriter().write(new TextEncoder().encode('bye'))
      await reader.cancel()
      await within(conn.closed, 5000, 'conn.closed')
      result.resolve({ first: Buffer.from(value ?? []).toString(), closed: true })
      await sleep(2000) // still in the handler: cancel() closed the connection
    },
  })
  const socket = await connect(portOf(server))
  socket.on('error', () => {})
  const received = collect(socket)
  socket.write('hello')
  t.is((await within(received, 1500, 'bye then close')).toString(), 'bye')
  t.deepEqual(await within(result.promise, 5000, 'handler'), { first: 'hello', closed: true })
})

test('web streams: a reset errors a pending read with ECONNRESET', async (t) => {
  const result = deferred<unknown>()
  const server = await serve(t, {
    onError() {},
    async handler(conn) {
      const reader = conn.readable.getReader()
      result.resolve(
        await (async () => {
          for (;;) if ((await reader.read()).done) return null
        })().catch((e: unknown) => e),
      )
    },
  })
  const socket = await connect(portOf(server))
  socket.write('x')
  await sleep(50)
  socket.resetAndDestroy()
  t.is(errCode(await within(result.promise, 5000, 'read rejects')), 'ECONNRESET')
})

test('examples/node-http.mjs: node:http serves curl over a tcpserver Connection', async (t) => {
  const mod = (await import('../examples/node-http.mjs' as string)) as {
    startNodeHttp(address: string): Promise<Server>
  }
  const server = await mod.startNodeHttp('127.0.0.1:0')
  t.teardown(() => server.halt())
  const url = `http://127.0.0.1:${portOf(server)}`
  const curl = (...args: string[]) =>
    promisify(execFile)('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'buffer' })

  const get = await curl('-i', `${url}/a`, `${url}/b`)
  const text = get.stdout.toString()
  t.regex(text, /^HTTP\/1\.1 200 OK/)
  t.regex(text, /GET \/a from 127\.0\.0\.1/)
  t.regex(text, /GET \/b from 127\.0\.0\.1/)

  const body = randomBytes(3 * 1024 * 1024)
  const file = join(tmpdir(), `tcpserver-streams-${process.pid}.bin`)
  writeFileSync(file, body)
  const post = await curl('--data-binary', `@${file}`, `${url}/upload`)
  t.deepEqual(JSON.parse(post.stdout.toString()), { size: body.length, sha256: sha256(body) })

  const close = await curl('-i', '-H', 'Connection: close', `${url}/c`)
  t.regex(close.stdout.toString(), /Connection: close/i)
})

test('duplex.setTimeout() emits timeout without closing; remoteAddress mirrors the connection', async (t) => {
  const result = deferred<{ remote: unknown; port: unknown; timedOut: number; open: boolean }>()
  const server = await serve(t, {
    async handler(conn) {
      const duplex: ConnectionDuplex = conn.toDuplex()
      const t0 = Date.now()
      await new Promise<void>((resolve) => duplex.setTimeout(100, resolve))
      result.resolve({
        remote: duplex.remoteAddress,
        port: duplex.remotePort,
        timedOut: Date.now() - t0,
        open: !duplex.destroyed,
      })
    },
  })
  const socket = await connect(portOf(server))
  const r = await within(result.promise, 5000, 'timeout')
  t.is(r.remote, '127.0.0.1')
  t.is(r.port, socket.localPort)
  t.true(r.timedOut >= 90)
  t.true(r.open)
  socket.destroy()
})
