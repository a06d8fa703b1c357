// Backpressure in both directions: an awaited write() waits for a slow reader, and a handler
// that does not read makes the client block instead of the server buffering everything.
import { randomBytes } from 'node:crypto'
import test from 'ava'
import type { Connection } from 'tcpserver-rs'
import {
  collect,
  connect,
  errCode,
  portOf,
  roundTrip,
  rss,
  serve,
  sha256,
  sleep,
  until,
  within,
} from './helpers/index.js'

const MiB = 1024 * 1024

/** Bound on what a non-reading client can absorb: both kernel socket buffers plus the queue. */
const WRITE_BOUND = 16 * MiB

test('awaited write() waits for a client that does not read, then everything arrives', async (t) => {
  const data = randomBytes(48 * MiB)
  const CHUNK = 64 * 1024
  let written = 0
  const finished = { value: false }
  const server = await serve(t, {
    async handler(conn) {
      for (let off = 0; off < data.length; off += CHUNK) {
        await conn.write(data.subarray(off, off + CHUNK))
        written += CHUNK
      }
      finished.value = true
    },
  })
  const socket = await connect(portOf(server))
  socket.pause() // reads nothing for now
  await until(() => written > 0, 5000, 'first write')
  await sleep(400)
  const stalledAt = written
  await sleep(300)
  t.log(`written while the client does not read: ${(stalledAt / MiB).toFixed(2)} MiB`)
  t.false(finished.value, 'the handler is still waiting')
  t.true(stalledAt < WRITE_BOUND, `${stalledAt} bytes written without a reader`)
  t.is(written, stalledAt, 'the awaited write is pending: nothing more was accepted')
  // Now read: the handler resumes and every byte arrives, in order.
  const received = collect(socket)
  socket.resume()
  const got = await within(received, 20_000, 'all data after the client reads')
  t.true(finished.value)
  t.is(got.length, data.length)
  t.is(sha256(got), sha256(data))
})

// Serial: RSS is process-wide, so nothing else in this file may allocate meanwhile.
test.serial(
  'RSS stays bounded while a handler tries to write 256 MiB to a client that does not read',
  async (t) => {
    const chunk = randomBytes(MiB)
    let written = 0
    const outcome: { err?: unknown; done?: boolean } = {}
    let settle!: () => void
    const settled = new Promise<void>((resolve) => {
      settle = resolve
    })
    const server = await serve(t, {
      onError() {},
      async handler(conn: Connection) {
        try {
          for (let i = 0; i < 256; i++) {
            await conn.write(chunk)
            written += chunk.length
          }
          outcome.done = true
        } catch (e) {
          outcome.err = e
        } finally {
          settle()
        }
      },
    })
    const before = rss()
    const socket = await connect(portOf(server))
    socket.pause()
    try {
      await until(() => written > 0, 5000, 'first write')
      await sleep(800)
    } finally {
      const grown = rss() - before
      t.log(`written ${(written / MiB).toFixed(1)} MiB, RSS grew ${(grown / MiB).toFixed(1)} MiB`)
      socket.destroy()
      t.true(grown < 64 * MiB, `RSS grew by ${grown} bytes`)
    }
    t.true(written < WRITE_BOUND, `${written} bytes accepted without a reader`)
    await within(settled, 5000, 'handler ends after the client goes away')
    t.falsy(outcome.done, 'the handler did not write 256 MiB')
    t.truthy(errCode(outcome.err), 'the pending write rejects with a code once the client is gone')
  },
)

test('a handler that does not read makes the client block; then it reads all 32 MiB intact', async (t) => {
  const data = randomBytes(32 * MiB)
  const start = { value: false }
  const result: { hash?: string; length?: number } = {}
  const server = await serve(t, {
    async handler(conn) {
      await until(() => start.value, 10_000, 'test lets the handler read')
      const chunks: Buffer[] = []
      for await (const chunk of conn) chunks.push(chunk)
      const all = Buffer.concat(chunks)
      result.hash = sha256(all)
      result.length = all.length
      await conn.write('done')
    },
  })
  const socket = await connect(portOf(server))
  const received = collect(socket)
  // 1 MiB writes, so writableLength shrinks as the kernel takes them.
  for (let off = 0; off < data.length; off += MiB) socket.write(data.subarray(off, off + MiB))
  socket.end()
  await sleep(500)
  // The server does not soak it all up: the client still holds unsent bytes.
  const pending = socket.writableLength
  t.log(`client still holds ${(pending / MiB).toFixed(2)} MiB after 500 ms`)
  t.true(pending > 0, 'client is blocked by TCP backpressure')
  t.true(pending > data.length - WRITE_BOUND, `only ${data.length - pending} bytes left the client`)
  start.value = true
  t.is((await within(received, 20_000, 'reply after reading everything')).toString(), 'done')
  t.is(result.length, data.length)
  t.is(result.hash, sha256(data))
})

test('highWaterMark 16384: an 8 MiB echo still completes intact', async (t) => {
  const server = await serve(t, {
    highWaterMark: 16384,
    async handler(conn) {
      for await (const chunk of conn) {
        if (chunk.length > 16384) throw new RangeError(`chunk of ${chunk.length} bytes`)
        await conn.write(chunk)
      }
    },
  })
  const data = randomBytes(8 * MiB)
  const back = await within(roundTrip(portOf(server), data), 20_000, 'echo with a small highWaterMark')
  t.is(back.length, data.length)
  t.is(sha256(back), sha256(data))
})
