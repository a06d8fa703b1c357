// A correctness probe after the measured run: a few GETs, one after another on one keep-alive
// connection, each answer checked for status 200, its Content-Length and every body byte. wrk
// only checks status codes and framing; this catches wrong bytes, and a server left broken by
// the load.
import net from 'node:net'
import tls from 'node:tls'

const TIMEOUT_MS = 10_000
const GET = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'

/** Resolves to a list of errors (empty when every answer was right). */
export async function probe(port, expectedBody, { tls: secure = false, requests = 3 } = {}) {
  const socket = secure
    ? tls.connect({ host: '127.0.0.1', port, noDelay: true, rejectUnauthorized: false })
    : net.connect({ host: '127.0.0.1', port, noDelay: true })
  socket.on('error', () => {}) // reported through the reader below
  const reader = responses(socket)
  const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS)
  try {
    for (let i = 1; i <= requests; i++) {
      socket.write(GET)
      const { status, contentLength, body } = await reader.next()
      const problem =
        status !== 200
          ? `status ${status}`
          : contentLength !== expectedBody.length
            ? `Content-Length ${contentLength}, expected ${expectedBody.length}`
            : !body.equals(expectedBody)
              ? `body differs from byte ${firstDifference(body, expectedBody)}`
              : null
      if (problem) return [`probe request ${i}: ${problem}`]
    }
    return []
  } catch (err) {
    return [`probe: ${err.message}`]
  } finally {
    clearTimeout(timer)
    socket.destroy()
  }
}

/** Reads HTTP/1.1 responses framed by Content-Length off `socket`, one per next() call. */
function responses(socket) {
  let buf = Buffer.alloc(0)
  let wake = null
  let failure = null
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk])
    wake?.()
  })
  const fail = (err) => {
    failure ??= err
    wake?.()
  }
  socket.on('end', () => fail(new Error('connection closed mid-answer')))
  socket.on('close', () => fail(new Error('connection closed')))
  socket.on('error', (err) => fail(err))

  const more = () =>
    new Promise((resolve, reject) => {
      if (failure) return reject(failure)
      wake = () => {
        wake = null
        if (failure) reject(failure)
        else resolve()
      }
    })

  return {
    async next() {
      while (buf.indexOf('\r\n\r\n') === -1) await more()
      const end = buf.indexOf('\r\n\r\n')
      const head = buf.subarray(0, end).toString('latin1')
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
      const contentLength = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? -1)
      if (contentLength < 0) throw new Error(`no Content-Length in ${JSON.stringify(head.slice(0, 200))}`)
      while (buf.length < end + 4 + contentLength) await more()
      const body = buf.subarray(end + 4, end + 4 + contentLength)
      buf = buf.subarray(end + 4 + contentLength)
      return { status, contentLength, body }
    },
  }
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return n
}
