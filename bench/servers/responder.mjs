// The one HTTP/1.1 responder every transport variant shares.
//
// It is not an HTTP parser: it finds request ends ("\r\n\r\n"), answers each request with the same
// precomputed response, and honours `Connection: close`. It handles pipelining (many requests in
// one chunk) and requests split across chunks. Request bodies are not supported (GET only).

const END = Buffer.from('\r\n\r\n')
const CONNECTION = Buffer.from('connection:')
const CLOSE = Buffer.from('close')
const LF = 0x0a
const CR = 0x0d
/** A request head longer than this without its end is dropped (the connection closes). */
const MAX_HEAD = 16 * 1024

/** The full response (head + body) for a body of `bodySize` bytes. */
export function buildResponse(bodySize = 1024, close = false) {
  return Buffer.concat([buildHead(bodySize, 'text/plain', close), Buffer.alloc(bodySize, 'x')])
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
 * be closed after writing `out`.
 */
export function createResponder(
  bodySize = 1024,
  response = buildResponse(bodySize),
  closing = buildResponse(bodySize, true),
) {
  const split = createRequestSplitter()
  return function respond(chunk) {
    const { count, close } = split(chunk)
    if (!close || count === 0) return { out: repeat(response, count), close }
    // The answer to the closing request says so, as node:http does: wrk counts a close that
    // was not announced as a read error.
    const out = count === 1 ? closing : Buffer.concat([repeat(response, count - 1), closing])
    return { out, close }
  }
}

/**
 * The request framing alone, for servers that build their own answers: `split(chunk)` returns
 * `{ count, close }`, the number of requests completed by this chunk and whether the connection
 * should be closed after answering them.
 */
export function createRequestSplitter() {
  let pending = null // copy of an incomplete request head from earlier chunks

  return function split(chunk) {
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk])
    pending = null
    let count = 0
    let start = 0
    let close = false
    for (;;) {
      const end = buf.indexOf(END, start)
      if (end === -1) break
      count++
      if (wantsClose(buf, start, end)) {
        close = true // bytes after a `Connection: close` request are ignored
        break
      }
      start = end + END.length
    }
    if (!close && start < buf.length) {
      if (buf.length - start > MAX_HEAD) close = true
      else pending = Buffer.from(buf.subarray(start)) // copy: the transport may reuse `chunk`
    }
    return { count, close }
  }
}

function repeat(response, count) {
  if (count === 0) return null
  if (count === 1) return response
  return Buffer.concat(new Array(count).fill(response))
}

/** Does the request head in buf[start, end) carry a `Connection` header with the `close` token? */
function wantsClose(buf, start, end) {
  let lf = buf.indexOf(LF, start)
  while (lf !== -1 && lf < end) {
    const line = lf + 1
    if (startsWithLower(buf, line, end, CONNECTION)) {
      return hasToken(buf, line + CONNECTION.length, CLOSE)
    }
    lf = buf.indexOf(LF, line)
  }
  return false
}

/** Case-insensitive match of `word` (lowercase ASCII) at buf[pos] without passing `limit`. */
function startsWithLower(buf, pos, limit, word) {
  if (pos + word.length > limit) return false
  for (let i = 0; i < word.length; i++) {
    if ((buf[pos + i] | 0x20) !== word[i]) return false
  }
  return true
}

/** Is `token` one of the comma-separated, case-insensitive tokens of the value at buf[pos] up to CR? */
function hasToken(buf, pos, token) {
  let lineEnd = buf.indexOf(CR, pos)
  if (lineEnd === -1) lineEnd = buf.length
  for (let i = pos; i + token.length <= lineEnd; i++) {
    if (!startsWithLower(buf, i, lineEnd, token)) continue
    const before = buf[i - 1]
    const after = i + token.length === lineEnd ? 0x2c : buf[i + token.length]
    if (isSeparator(before) && isSeparator(after)) return true
  }
  return false
}

function isSeparator(byte) {
  return byte === 0x20 || byte === 0x09 || byte === 0x2c || byte === 0x3a // space, tab, ',', ':'
}
