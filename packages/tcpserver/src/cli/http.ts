// The HTTP/1.1 responder of `tcpserver http`, and of every variant of the benchmark
// (bench/servers/responder.mjs uses this one): no imports, no native code.
//
// It is not an HTTP parser. It finds request ends ("\r\n\r\n"), answers each request with the same
// precomputed response, and honours `Connection: close`. It handles pipelining (many requests in
// one chunk) and requests split across chunks. Request bodies are not supported (GET only).
// Beyond the benchmark's responder: a response that ends the connection says
// `Connection: close`, and an HTTP/1.0 request without `Connection: keep-alive` ends it.

const END = Buffer.from('\r\n\r\n')
const CONNECTION = Buffer.from('connection:')
const CLOSE = Buffer.from('close')
const KEEP_ALIVE = Buffer.from('keep-alive')
const HTTP10 = Buffer.from('HTTP/1.0')
const LF = 0x0a
const CR = 0x0d
/** A request head longer than this without its end closes the connection, unanswered. */
const MAX_HEAD = 16 * 1024

/** The precomputed responses, one per way a request can end. */
export interface Responses {
  /** The connection stays open (HTTP/1.1 default). */
  keepAlive: Buffer
  /** The connection closes after this response. */
  close: Buffer
  /** An HTTP/1.0 client asked for keep-alive: say so, or it would wait for the close. */
  keepAlive10: Buffer
}

/** The three full responses (head and body) for a body of `bodySize` bytes of `x`. */
export function buildResponses(bodySize: number): Responses {
  const body = Buffer.alloc(bodySize, 'x')
  const make = (extra: string): Buffer =>
    Buffer.concat([
      Buffer.from(
        `HTTP/1.1 200 OK\r\nContent-Length: ${bodySize}\r\nContent-Type: text/plain\r\n${extra}\r\n`,
        'latin1',
      ),
      body,
    ])
  return {
    keepAlive: make(''),
    close: make('Connection: close\r\n'),
    keepAlive10: make('Connection: keep-alive\r\n'),
  }
}

/**
 * One per connection. `feed(chunk)` returns the bytes answering every request completed by
 * this chunk (or `null`); afterwards `close` says whether the connection should be closed once
 * they are written, and `requests` counts the requests answered so far.
 */
export class HttpResponder {
  /** Set when the connection must close after the last `feed()` output is written. */
  close = false
  /** Requests answered so far. */
  requests = 0

  readonly #responses: Responses
  /** Copy of an incomplete request head from earlier chunks. */
  #pending: Buffer | null = null

  constructor(responses: Responses) {
    this.#responses = responses
  }

  /** Answers the requests that `chunk` completes. */
  feed(chunk: Buffer): Buffer | null {
    if (this.close) return null
    const pending = this.#pending
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk])
    this.#pending = null
    let first: Buffer | null = null
    let more: Buffer[] | null = null
    let start = 0
    for (;;) {
      const end = buf.indexOf(END, start)
      if (end === -1) break
      const response = this.#respond(buf, start, end)
      this.requests++
      if (first === null) first = response
      else if (more === null) more = [first, response]
      else more.push(response)
      if (this.close) break // bytes after a request that ends the connection are ignored
      start = end + END.length
    }
    if (!this.close && start < buf.length) {
      if (buf.length - start > MAX_HEAD) this.close = true
      else this.#pending = Buffer.from(buf.subarray(start)) // a copy: the transport may reuse `chunk`
    }
    return more === null ? first : Buffer.concat(more)
  }

  /** The response for the request head in buf[start, end); sets `close` when it ends the connection. */
  #respond(buf: Buffer, start: number, end: number): Buffer {
    const tokens = connectionTokens(buf, start, end)
    const lineEnd = buf.indexOf(CR, start)
    const http10 =
      lineEnd >= HTTP10.length &&
      lineEnd <= end &&
      buf.compare(HTTP10, 0, HTTP10.length, lineEnd - HTTP10.length, lineEnd) === 0
    if ((tokens & TOKEN_CLOSE) !== 0 || (http10 && (tokens & TOKEN_KEEP_ALIVE) === 0)) {
      this.close = true
      return this.#responses.close
    }
    return http10 ? this.#responses.keepAlive10 : this.#responses.keepAlive
  }
}

const TOKEN_CLOSE = 1
const TOKEN_KEEP_ALIVE = 2

/** The `close`/`keep-alive` tokens of every `Connection` header in the head buf[start, end). */
function connectionTokens(buf: Buffer, start: number, end: number): number {
  let found = 0
  let lf = buf.indexOf(LF, start)
  while (lf !== -1 && lf < end) {
    const line = lf + 1
    if (startsWithLower(buf, line, end, CONNECTION)) {
      const value = line + CONNECTION.length
      if (hasToken(buf, value, CLOSE)) found |= TOKEN_CLOSE
      if (hasToken(buf, value, KEEP_ALIVE)) found |= TOKEN_KEEP_ALIVE
    }
    lf = buf.indexOf(LF, line)
  }
  return found
}

/** Case-insensitive match of `word` (lowercase ASCII) at buf[pos] without passing `limit`. */
function startsWithLower(buf: Buffer, pos: number, limit: number, word: Buffer): boolean {
  if (pos + word.length > limit) return false
  for (let i = 0; i < word.length; i++) {
    if (((buf[pos + i] as number) | 0x20) !== word[i]) return false
  }
  return true
}

/** Is `token` one of the comma-separated, case-insensitive tokens of the value at buf[pos] up to CR? */
function hasToken(buf: Buffer, pos: number, token: Buffer): boolean {
  let lineEnd = buf.indexOf(CR, pos)
  if (lineEnd === -1) lineEnd = buf.length
  for (let i = pos; i + token.length <= lineEnd; i++) {
    if (!startsWithLower(buf, i, lineEnd, token)) continue
    const before = buf[i - 1] as number
    const after = i + token.length === lineEnd ? 0x2c : (buf[i + token.length] as number)
    if (isSeparator(before) && isSeparator(after)) return true
  }
  return false
}

function isSeparator(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x2c || byte === 0x3a // space, tab, ',', ':'
}
