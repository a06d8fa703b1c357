// The proxy throughput test's client: `node clients/download.mjs PORT BYTES` fetches
// `GET /BYTES` from 127.0.0.1:PORT, checks every body byte against the shared pattern (one memcmp
// per chunk) and prints one JSON line: { status, contentLength, bytes, mismatchAt, seconds }.
// `seconds` runs from sending the request to the last body byte.
import net from 'node:net'
import { patternMismatch } from '../servers/pattern.mjs'

const port = Number(process.argv[2])
const length = Number(process.argv[3])
if (!Number.isInteger(port) || !Number.isInteger(length)) {
  console.error('usage: node clients/download.mjs PORT BYTES')
  process.exit(2)
}

const result = { status: null, contentLength: null, bytes: 0, mismatchAt: -1, seconds: null, error: null }
let head = Buffer.alloc(0)
let inBody = false
let t0 = 0n

// One reused 1 MiB read buffer (no allocation per chunk, fewer read calls than the default 64 KiB).
const socket = net.connect(
  {
    host: '127.0.0.1',
    port,
    noDelay: true,
    onread: { buffer: Buffer.allocUnsafe(1 << 20), callback: onRead },
  },
  () => {
    t0 = process.hrtime.bigint()
    socket.write(`GET /${length} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
  },
)

function onRead(n, buffer) {
  let chunk = buffer.subarray(0, n)
  if (!inBody) {
    head = Buffer.concat([head, chunk])
    const end = head.indexOf('\r\n\r\n')
    if (end === -1) return
    const text = head.subarray(0, end).toString('latin1')
    result.status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0)
    result.contentLength = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? -1)
    inBody = true
    chunk = head.subarray(end + 4)
  }
  if (chunk.length === 0) return
  if (result.mismatchAt === -1) result.mismatchAt = patternMismatch(chunk, result.bytes)
  result.bytes += chunk.length
  if (result.bytes >= result.contentLength && result.seconds === null) {
    result.seconds = Number(process.hrtime.bigint() - t0) / 1e9
  }
}

socket.on('error', (err) => {
  result.error = err.code ?? err.message
})

socket.on('close', () => {
  process.stdout.write(`${JSON.stringify(result)}\n`)
})
