// Direct reads: while a client streams, a handler's next read takes what the socket already
// holds on the JavaScript thread (`readNow`) instead of waiting for the Rust worker's event.
// Reading passes between the two paths whenever the socket runs empty, so these tests stream
// in bursts with pauses and check that every byte arrives once and in order (hashes), that
// both paths served, and that a reset, a pipe() and a TLS connection behave as before.
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { type Connection, connect as dial, type Server } from 'tcpserver-rs'
import {
  channel,
  collect,
  connect,
  errCode,
  portOf,
  serve,
  sha256,
  sleep,
  until,
  within,
} from './helpers/index.ts'

const MiB = 1 << 20
const directReads = (server: Server): number => server.stats().dataPath.directReads

/** Writes `data` in bursts of uneven sizes (1 B to 256 KiB), pausing now and then so that the server's socket runs empty. */
async function streamInBursts(socket: net.Socket, data: Buffer, seed: number): Promise<void> {
  let state = seed
  const next = (n: number): number => {
    state = (state * 1103515245 + 12345) >>> 0
    return state % n
  }
  for (let at = 0; at < data.length; ) {
    const size = Math.min(data.length - at, 1 + next(256 * 1024))
    const flushed = socket.write(data.subarray(at, at + size))
    at += size
    if (!flushed) await new Promise((r) => socket.once('drain', r))
    if (next(8) === 0) await sleep(next(3))
  }
}

/** Hashes what a handler reads with `read()` or `for await`, counting chunks, then answers with the hash. */
function hashingHandler(useIterator: boolean, chunks: { count: number }) {
  return async (conn: Connection): Promise<void> => {
    const hash = createHash('sha256')
    if (useIterator) {
      for await (const chunk of conn) {
        chunks.count++
        hash.update(chunk)
      }
    } else {
      for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) {
        chunks.count++
        hash.update(chunk)
      }
    }
    await conn.write(hash.digest('hex'))
  }
}

for (const useIterator of [false, true]) {
  const how = useIterator ? 'for await' : 'read()'
  test(`${how}: 48 MiB streamed in bursts arrive intact, through both the worker's events and direct reads`, async (t) => {
    const chunks = { count: 0 }
    const server = await serve(t, { handler: hashingHandler(useIterator, chunks) })
    const data = randomBytes(48 * MiB)
    const socket = await connect(portOf(server))
    const answer = collect(socket)
    await within(streamInBursts(socket, data, useIterator ? 7 : 11), 60_000, 'streaming')
    socket.end()
    t.is((await within(answer, 30_000, 'the hash')).toString(), sha256(data), 'every byte once, in order')
    const direct = directReads(server)
    t.true(direct > 0, 'some chunks were read directly')
    t.true(direct < chunks.count, `some chunks came as events too (${direct} of ${chunks.count} direct)`)
    socket.destroy()
  })
}

test('an echo of 32 MiB through direct reads and writes: the same bytes come back', async (t) => {
  const server = await serve(t, {
    handler: async (conn) => {
      for await (const chunk of conn) await conn.write(chunk)
    },
  })
  const data = randomBytes(32 * MiB)
  const socket = await connect(portOf(server))
  const back = collect(socket)
  await within(streamInBursts(socket, data, 3), 60_000, 'streaming')
  socket.end()
  t.is(sha256(await within(back, 30_000, 'the echo')), sha256(data))
  t.true(directReads(server) > 0)
  socket.destroy()
})

test('a reset while the handler reads directly rejects its read with ECONNRESET (the error is not lost)', async (t) => {
  const outcome = channel<{ code: unknown; bytes: number; directBefore: number }>(20_000)
  let server: Server | null = null
  server = await serve(t, {
    handler: async (conn) => {
      let bytes = 0
      let directBefore = 0
      try {
        // Read until reading is direct (the client keeps streaming), then let the reset land.
        while (directBefore === 0) {
          const chunk = await conn.read()
          if (chunk === null) break
          bytes += chunk.length
          directBefore = directReads(server as Server)
        }
        await sleep(150)
        for (let chunk = await conn.read(); chunk !== null; chunk = await conn.read()) bytes += chunk.length
        outcome.push({ code: 'no error', bytes, directBefore })
      } catch (e) {
        outcome.push({ code: errCode(e), bytes, directBefore })
      }
    },
  })
  const socket = await connect(portOf(server))
  socket.on('error', () => {})
  const data = randomBytes(4 * MiB)
  socket.write(data)
  await sleep(50)
  socket.resetAndDestroy()
  const { code, directBefore } = await outcome.next()
  t.true(directBefore > 0, 'the handler was reading directly when the reset came')
  t.is(code, 'ECONNRESET')
  await until(() => server?.activeConnections === 0, 5000, 'the connection closed')
  t.is(server.stats().panics, 0)
})

test('pipe() right after direct reads: what was read plus what is piped is the whole stream, in order', async (t) => {
  // The upstream hashes everything it receives.
  const upstreamHash = channel<string>(60_000)
  const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
    const hash = createHash('sha256')
    s.on('data', (c: Buffer) => hash.update(c))
    s.once('end', () => {
      upstreamHash.push(hash.digest('hex'))
      s.end()
    })
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  t.teardown(() => upstream.close())
  const upPort = (upstream.address() as net.AddressInfo).port

  let directAtPipe = 0
  let server: Server | null = null
  server = await serve(t, {
    handler: async (conn) => {
      const up = await dial(`127.0.0.1:${upPort}`)
      try {
        // Forward by hand until a few direct reads happened, then hand over to pipe().
        let read = 0
        while (directReads(server as Server) < 3) {
          const chunk = await conn.read()
          if (chunk === null) break
          read += chunk.length
          await up.write(chunk)
        }
        directAtPipe = directReads(server as Server)
        t.true(read > 0)
        await conn.pipe(up)
      } finally {
        up.close()
      }
    },
  })
  const data = randomBytes(24 * MiB)
  const socket = await connect(portOf(server))
  socket.on('error', () => {})
  await within(streamInBursts(socket, data, 5), 60_000, 'streaming')
  socket.end()
  t.is(await upstreamHash.next(), sha256(data), 'the upstream got every byte once, in order')
  t.true(directAtPipe >= 3, 'pipe() paused a connection that was reading directly')
  socket.destroy()
})

test('TLS connections never read directly (rustls owns the socket): big uploads still arrive intact', async (t) => {
  const fixtures = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))
  const cert = `${fixtures}server.crt`
  const key = `${fixtures}server.key`
  const ca = readFileSync(`${fixtures}ca.crt`)
  const chunks = { count: 0 }
  const server = await serve(t, { tls: { cert, key }, handler: hashingHandler(true, chunks) })
  const data = randomBytes(16 * MiB)
  const socket = tls.connect({ port: portOf(server), host: '127.0.0.1', ca, servername: 'localhost' })
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject))
  const answer = collect(socket)
  await within(streamInBursts(socket, data, 9), 60_000, 'streaming over TLS')
  socket.end()
  t.is((await within(answer, 30_000, 'the hash')).toString(), sha256(data))
  t.is(directReads(server), 0)
  socket.destroy()
})
