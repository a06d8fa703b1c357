// A reset storm during large transfers: rounds of concurrent 64 MiB downloads and uploads (1 GiB
// with TCPSERVER_SLOW=1) whose clients reset (RST) at a random point. No crash, typed handler
// errors only, descriptors back to the baseline, stats().active back to 0, and a full transfer
// afterwards arrives intact.
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import test from 'ava'
import type { Connection } from 'tcpserver-rs'
import { fdCount, portOf, serve, sleep, until, within } from '../helpers/index.js'

const slow = process.env.TCPSERVER_SLOW === '1'
const BLOCK = randomBytes(1 << 20)
const TRANSFER = slow ? 1 << 30 : 64 << 20
const ROUNDS = 4
const PER_ROUND = 6 // three downloads and three uploads
const BOUND_MS = slow ? 300_000 : 30_000

/** sha256 of BLOCK repeated to `bytes`. */
function expectedDigest(bytes: number): string {
  const h = createHash('sha256')
  for (let n = 0; n < bytes; n += BLOCK.length) h.update(BLOCK.subarray(0, Math.min(BLOCK.length, bytes - n)))
  return h.digest('hex')
}

/** 'D': the server sends TRANSFER bytes. 'U': it reads until EOF and answers with the count. */
async function handler(conn: Connection): Promise<void> {
  const first = await conn.read()
  if (first === null) return
  if (first[0] === 0x44 /* D */) {
    for (let sent = 0; sent < TRANSFER; sent += BLOCK.length) await conn.write(BLOCK)
    return
  }
  let got = first.length - 1
  for await (const chunk of conn) got += chunk.length
  await conn.write(`${got}\n`)
}

/** Downloads; resets after `resetAt` bytes (never, when Infinity); resolves with the outcome. */
function download(
  port: number,
  resetAt: number,
): Promise<{ bytes: number; digest: string; error: string | null }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    const hash = createHash('sha256')
    let bytes = 0
    let error: string | null = null
    socket.once('connect', () => socket.write('D'))
    socket.on('data', (d: Buffer) => {
      if (socket.destroyed) return
      bytes += d.length
      hash.update(d)
      if (bytes >= resetAt) socket.resetAndDestroy()
    })
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? 'untyped'
    })
    socket.once('close', () => resolve({ bytes, digest: hash.digest('hex'), error }))
  })
}

/** Uploads TRANSFER bytes; resets after `resetAt` bytes were handed to the socket. */
function upload(
  port: number,
  resetAt: number,
): Promise<{ sent: number; answer: string; error: string | null }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let sent = 0
    let answer = ''
    let error: string | null = null
    const pump = (): void => {
      while (!socket.destroyed && sent < TRANSFER) {
        if (sent >= resetAt) {
          socket.resetAndDestroy()
          return
        }
        sent += BLOCK.length
        if (!socket.write(BLOCK)) {
          socket.once('drain', pump)
          return
        }
      }
      if (!socket.destroyed) socket.end()
    }
    socket.once('connect', () => {
      socket.write('U')
      pump()
    })
    socket.on('data', (d: Buffer) => {
      answer += d.toString()
    })
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? 'untyped'
    })
    socket.once('close', () => resolve({ sent, answer, error }))
  })
}

test.serial(
  `${ROUNDS} rounds of ${PER_ROUND} transfers of ${TRANSFER >> 20} MiB reset midway: no crash, no fd leak, the server keeps serving`,
  async (t) => {
    const errors = new Map<string, number>()
    const server = await serve(t, {
      handler,
      onError(error) {
        const code = String((error as { code?: unknown }).code ?? 'untyped')
        errors.set(code, (errors.get(code) ?? 0) + 1)
      },
    })
    const port = portOf(server)

    // Warm-up of 100 connections before the fd baseline (testing.md 3.2).
    for (let i = 0; i < 4; i++) {
      await within(Promise.all(Array.from({ length: 25 }, () => upload(port, 0))), 10_000, 'warm-up')
    }
    await until(() => server.stats().active === 0, 5000, 'warm-up connections to close')
    await sleep(100)
    const fdBaseline = fdCount()
    errors.clear()

    for (let round = 1; round <= ROUNDS; round++) {
      const cut = (): number => Math.floor(TRANSFER * (0.05 + 0.9 * Math.random()))
      const [downs, ups] = await within(
        Promise.all([
          Promise.all(Array.from({ length: PER_ROUND / 2 }, () => download(port, cut()))),
          Promise.all(Array.from({ length: PER_ROUND / 2 }, () => upload(port, cut()))),
        ]),
        BOUND_MS,
        `round ${round}`,
      )
      for (const d of downs) t.true(d.bytes > 0 && d.bytes < TRANSFER, `a download was cut at ${d.bytes}`)
      for (const u of ups) t.true(u.sent < TRANSFER && u.answer === '', 'an upload was cut before its answer')
      t.log(
        `round ${round}: downloads cut at ${downs.map((d) => d.bytes >> 20)} MiB, uploads at ${ups.map((u) => u.sent >> 20)} MiB`,
      )
      await until(() => server.stats().active === 0, 5000, `round ${round}: stats().active back to 0`)
      await until(
        () => fdCount() <= fdBaseline,
        2000,
        `round ${round}: fds back to the baseline ${fdBaseline}`,
      )
    }

    // The handlers saw the resets as typed errors (a write racing the close: ERR_SOCKET_CLOSED).
    t.log(`handler errors: ${JSON.stringify([...errors])}`)
    for (const code of errors.keys())
      t.true(['ECONNRESET', 'EPIPE', 'ERR_SOCKET_CLOSED'].includes(code), code)
    t.is(server.stats().panics, 0)

    // And a full transfer each way still works.
    const [full, up] = await within(
      Promise.all([download(port, Number.POSITIVE_INFINITY), upload(port, Number.POSITIVE_INFINITY)]),
      BOUND_MS,
      'full transfers after the storm',
    )
    t.is(full.error, null)
    t.is(full.bytes, TRANSFER)
    t.is(full.digest, expectedDigest(TRANSFER))
    t.is(up.answer, `${TRANSFER}\n`)
    await until(() => server.stats().active === 0, 5000, 'stats().active back to 0')
    await until(() => fdCount() <= fdBaseline, 2000, 'fds back to the baseline')
  },
)
