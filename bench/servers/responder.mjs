// The one HTTP/1.1 responder every transport variant shares: the package's own, the one behind
// `tcpserver http` (packages/tcpserver/src/cli/http.ts), so its logic lives once and the
// benchmark measures what the CLI serves. It uses no native code, so the node:net variants load
// it too.
//
// It is not an HTTP parser: it finds request ends ("\r\n\r\n"), answers each request with the same
// precomputed response, and honours `Connection: close`. It handles pipelining (many requests in
// one chunk) and requests split across chunks. Request bodies are not supported (GET only).

import { createHash } from 'node:crypto'
import { buildResponses, HttpResponder } from '../../packages/tcpserver/dist/cli/http.js'

/** Responses per body size, built once: no connection pays for building them. */
const built = new Map()

function responsesFor(bodySize) {
  let responses = built.get(bodySize)
  if (responses === undefined) {
    responses = buildResponses(bodySize)
    built.set(bodySize, responses)
  }
  return responses
}

/** The full response (head + body) for a body of `bodySize` bytes; `close` adds `Connection: close`. */
export function buildResponse(bodySize = 1024, close = false) {
  const responses = responsesFor(bodySize)
  return close ? responses.close : responses.keepAlive
}

/** A 200 response head for a body of `length` bytes (the static file servers send the body apart). */
export function buildHead(length, contentType = 'text/plain', close = false) {
  const connection = close ? 'Connection: close\r\n' : ''
  return Buffer.from(
    `HTTP/1.1 200 OK\r\nContent-Length: ${length}\r\nContent-Type: ${contentType}\r\n${connection}\r\n`,
    'latin1',
  )
}

/**
 * One responder per connection: `respond(chunk)` returns `{ out, close }`, where `out` is one Buffer
 * answering every request completed by this chunk (or null) and `close` says the connection should
 * be closed after writing `out`. The answer to a closing request says `Connection: close`, as
 * node:http does: wrk counts a close that was not announced as a read error.
 */
export function createResponder(bodySize = 1024, { sha = 0 } = {}) {
  if (sha > 0) return createShaResponder(sha)
  const responder = new HttpResponder(responsesFor(bodySize))
  return (chunk) => ({ out: responder.feed(chunk), close: responder.close })
}

/** The bytes t7 hashes per request (the same for every server and request). */
export function shaInput(bytes) {
  const data = Buffer.alloc(bytes)
  for (let i = 0; i < bytes; i++) data[i] = (i * 7 + (i >> 8)) & 0xff
  return data
}

/** t7's answer body: the hex SHA-256 of shaInput(bytes). */
export function shaDigest(bytes) {
  return createHash('sha256').update(shaInput(bytes)).digest('hex')
}

/**
 * The Go model's `-sha` work: every request hashes `bytes` bytes with SHA-256 on the handler's
 * thread and is answered with the hex digest, computed anew each time (the CPU is the point).
 */
function createShaResponder(bytes) {
  const data = shaInput(bytes)
  const split = createRequestSplitter()
  return (chunk) => {
    const { count, close } = split(chunk)
    if (count === 0) return { out: null, close }
    const answers = []
    for (let i = 0; i < count; i++) {
      const hex = createHash('sha256').update(data).digest('hex')
      const connection = close && i === count - 1 ? 'Connection: close\r\n' : ''
      answers.push(
        `HTTP/1.1 200 OK\r\nContent-Length: ${hex.length}\r\nContent-Type: text/plain\r\n${connection}\r\n${hex}`,
      )
    }
    return { out: Buffer.from(answers.join(''), 'latin1'), close }
  }
}

/**
 * The request framing alone, for servers that build their own answers: `split(chunk)` returns
 * `{ count, close }`, the number of requests completed by this chunk and whether the connection
 * should be closed after answering them.
 */
export function createRequestSplitter() {
  const responder = new HttpResponder(responsesFor(0))
  return (chunk) => {
    const before = responder.requests
    responder.feed(chunk)
    return { count: responder.requests - before, close: responder.close }
  }
}
