// The echo test's client: `node clients/echo.mjs PORT CONNECTIONS SECONDS` opens CONNECTIONS
// connections to 127.0.0.1:PORT and sends 64 KiB chunks of pattern bytes on each for SECONDS, as
// fast as the socket takes them, while reading the echo back. Then it half-closes every
// connection and reads until the server closes it. Every byte that comes back is checked against
// the pattern at its offset (one memcmp per chunk). Prints one JSON line:
// { bytes, seconds, connections: [{ sent, received, mismatchAt, error, closed }], error }.
// `bytes` is the total echoed back; `seconds` runs from the first connect to the last byte.
import net from 'node:net'
import { BLOCK_SIZE, patternBlock, patternMismatch } from '../servers/pattern.mjs'

const CHUNK = 64 * 1024
const READ_BUFFER = 256 * 1024
/** Each connection starts at its own pattern offset: bytes crossing connections would not match. */
const START_STEP = 7919
/** The server has this long after the sending stops to echo the rest and close. */
const DRAIN_MS = 20_000

const port = Number(process.argv[2])
const count = Number(process.argv[3])
const seconds = Number(process.argv[4])
if (!Number.isInteger(port) || !Number.isInteger(count) || count < 1 || !(seconds > 0)) {
  console.error('usage: node clients/echo.mjs PORT CONNECTIONS SECONDS')
  process.exit(2)
}

// Any 64 KiB window of the pattern, as a view: sending allocates nothing.
const ring = Buffer.concat([patternBlock(), patternBlock().subarray(0, CHUNK)])
const chunkAt = (offset) => {
  const at = offset % BLOCK_SIZE
  return ring.subarray(at, at + CHUNK)
}

const t0 = process.hrtime.bigint()
let lastByte = t0
let stopping = false
const conns = Array.from({ length: count }, (_, i) => open(i * START_STEP))

setTimeout(() => {
  stopping = true
  for (const c of conns) c.stop()
}, seconds * 1000)

// Bounded in time whatever the server does.
const deadline = setTimeout(
  () => report('timeout: the server did not echo everything and close'),
  seconds * 1000 + DRAIN_MS,
)

Promise.all(conns.map((c) => c.done)).then(() => report(null))

function open(start) {
  const c = { sent: 0, received: 0, mismatchAt: -1, error: null, closed: false }
  const socket = net.connect({
    host: '127.0.0.1',
    port,
    noDelay: true,
    onread: { buffer: Buffer.allocUnsafe(READ_BUFFER), callback: onRead },
  })
  function onRead(n, buffer) {
    const chunk = buffer.subarray(0, n)
    if (c.mismatchAt === -1) {
      const at = patternMismatch(chunk, start + c.received)
      if (at !== -1) c.mismatchAt = at - start
    }
    c.received += n
    lastByte = process.hrtime.bigint()
  }
  const pump = () => {
    while (!stopping) {
      const more = socket.write(chunkAt(start + c.sent))
      c.sent += CHUNK
      if (!more) return // 'drain' calls again
    }
  }
  socket.on('connect', pump)
  socket.on('drain', pump)
  socket.on('error', (err) => {
    c.error ??= err.code ?? err.message
  })
  const done = new Promise((resolve) => socket.on('close', resolve)).then(() => {
    c.closed = true
  })
  // `end()` goes after the queued writes; the server closes once it echoed them.
  const stop = () => socket.end()
  return { state: c, done, stop }
}

function report(error) {
  clearTimeout(deadline)
  const connections = conns.map((c) => c.state)
  const bytes = connections.reduce((sum, c) => sum + c.received, 0)
  const result = { bytes, seconds: Number(lastByte - t0) / 1e9, connections, error }
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0))
}
