// The handler of `tcpserver static`: a minimal HTTP/1.1 file server over `conn.sendFile()`
// (sendfile(2) on plain TCP, so file bytes never enter JavaScript).
//
// GET and HEAD; keep-alive and pipelining (answers in order, each awaited before the next, so a
// client that does not read is held back by TCP); single byte ranges; Content-Type from a small
// extension table. Every path is resolved with realpath(3) and must stay under the root, so
// neither "..", encoded or not, nor a symbolic link can leave it. Requests with a body are
// answered and the connection closed: their bodies are not read.
import { constants } from 'node:fs'
import { type FileHandle, open, realpath } from 'node:fs/promises'
import { extname, join, sep } from 'node:path'
import type { Connection, Handler } from '../index.js'
import type { Counters } from './stats.js'

/** A request head longer than this without its end is refused (431) and the connection closed. */
const MAX_HEAD = 16 * 1024
const END = Buffer.from('\r\n\r\n')

const REASONS: Readonly<Record<number, string>> = {
  200: 'OK',
  206: 'Partial Content',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  416: 'Range Not Satisfiable',
  431: 'Request Header Fields Too Large',
}

const TEXT = '; charset=utf-8'
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': `text/html${TEXT}`,
  '.htm': `text/html${TEXT}`,
  '.css': `text/css${TEXT}`,
  '.js': `text/javascript${TEXT}`,
  '.mjs': `text/javascript${TEXT}`,
  '.json': `application/json${TEXT}`,
  '.map': `application/json${TEXT}`,
  '.txt': `text/plain${TEXT}`,
  '.md': `text/markdown${TEXT}`,
  '.csv': `text/csv${TEXT}`,
  '.xml': `application/xml${TEXT}`,
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.mp3': 'audio/mpeg',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
}

/** The Content-Type for a file name (by extension, any case); `application/octet-stream` if unknown. */
export function contentType(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream'
}

/** A request head, as far as this server reads it. */
export interface Request {
  method: string
  /** The request target as sent (origin form: `/path?query`). */
  target: string
  /** HTTP/1.0 (closes unless it asks for keep-alive) rather than HTTP/1.1. */
  http10: boolean
  /** Header values by lower-case name; repeated headers joined with `, `. */
  headers: Map<string, string>
}

/** Parses a request head (without its final CRLF CRLF); `null` if it is not HTTP/1.x. */
export function parseHead(head: string): Request | null {
  // A client may send empty lines before a request (RFC 9112, 2.2).
  const lines = head.replace(/^(\r\n)+/, '').split('\r\n')
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? '')
  if (m === null) return null
  const headers = new Map<string, string>()
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string
    const colon = line.indexOf(':')
    // No name, whitespace before the colon, or obsolete line folding: not a header we can trust.
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) return null
    const name = line.slice(0, colon).toLowerCase()
    const value = line.slice(colon + 1).trim()
    const previous = headers.get(name)
    headers.set(name, previous === undefined ? value : `${previous}, ${value}`)
  }
  return { method: m[1] as string, target: m[2] as string, http10: m[3] === '0', headers }
}

/** Does the comma-separated header value hold `token` (case-insensitive)? */
function hasToken(value: string | undefined, token: string): boolean {
  return (value ?? '').split(',').some((t) => t.trim().toLowerCase() === token)
}

/**
 * The byte range `Range` asks for in a file of `size` bytes: `{ start, end }` (inclusive),
 * `'unsatisfiable'` (416), or `null` to send the whole file: no `Range`, another unit, several
 * ranges or a malformed one, which RFC 9110 lets a server ignore.
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | null {
  if (header === undefined) return null
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.replace(/\s+/g, ''))
  if (m === null || (m[1] === '' && m[2] === '')) return null
  if (m[1] === '') {
    // bytes=-N: the last N bytes.
    const n = Number(m[2])
    return n === 0 || size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(m[1])
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  if (start >= size) return 'unsatisfiable'
  return end < start ? null : { start, end }
}

/** An open regular file under the root. */
interface OpenFile {
  handle: FileHandle
  path: string
  size: number
}

const DIRECTORY = 'directory'

/**
 * Opens `path` if its realpath is under `root` and a regular file. Otherwise the status to
 * answer: 403 outside the root (or not a regular file: a FIFO would block, a device never end),
 * 404 missing; `DIRECTORY` for a directory.
 */
async function openUnder(root: string, path: string): Promise<OpenFile | number | typeof DIRECTORY> {
  let real: string
  try {
    real = await realpath(path)
  } catch (e) {
    return (e as { code?: unknown }).code === 'EACCES' ? 403 : 404
  }
  if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) return 403
  let handle: FileHandle
  try {
    // O_NOFOLLOW: a last component swapped for a symbolic link since realpath() is refused.
    // O_NONBLOCK: opening a FIFO must not wait for a writer (fstat below rejects it).
    handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (e) {
    return (e as { code?: unknown }).code === 'ENOENT' ? 404 : 403
  }
  const info = await handle.stat().catch(() => null)
  if (info?.isFile()) return { handle, path: real, size: info.size }
  await handle.close()
  return info?.isDirectory() ? DIRECTORY : 403
}

/**
 * The file a request target names under `root` (a realpath), or the status to answer: 400 for
 * a target that is not an absolute path or does not decode, 403 for traversal or a directory
 * without index.html, 404 for a missing file.
 */
export async function resolveTarget(root: string, target: string): Promise<OpenFile | number> {
  if (!target.startsWith('/')) return 400
  let path: string
  try {
    path = decodeURIComponent(target.replace(/[?#].*$/s, ''))
  } catch {
    return 400
  }
  if (path.includes('\0')) return 400
  // Checked after decoding, so "%2e%2e" and "%2f" are caught too; realpath below catches links.
  if (path.split('/').includes('..')) return 403
  const found = await openUnder(root, join(root, path))
  if (found !== DIRECTORY) return found
  const index = await openUnder(root, join(root, path, 'index.html'))
  return index === DIRECTORY || index === 404 ? 403 : index
}

/** A response head: status line, the fields, `Connection` when it must be said, blank line. */
function responseHead(status: number, fields: string[], connection: string | null): Buffer {
  const lines = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? ''}`,
    `Date: ${new Date().toUTCString()}`,
    ...fields,
  ]
  if (connection !== null) lines.push(`Connection: ${connection}`)
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1')
}

/** Answers one request. Resolves with whether the connection must close afterwards. */
async function answer(conn: Connection, root: string, request: Request, c: Counters): Promise<boolean> {
  const send = async (head: Buffer, body?: Buffer): Promise<void> => {
    await conn.write(body === undefined ? head : Buffer.concat([head, body]))
    c.bytesOut += head.length + (body?.length ?? 0)
  }
  const { method, headers, http10 } = request
  const connectionHeader = headers.get('connection')
  // An unread body would be taken for the next request: answer, then close.
  const hasBody =
    headers.has('transfer-encoding') ||
    (headers.has('content-length') && headers.get('content-length') !== '0')
  const close =
    hasBody || hasToken(connectionHeader, 'close') || (http10 && !hasToken(connectionHeader, 'keep-alive'))
  const connection = close ? 'close' : http10 ? 'keep-alive' : null
  const head = method === 'HEAD'
  if (method !== 'GET' && !head) {
    await send(...errorResponse(405, false, connection, ['Allow: GET, HEAD']))
    return close
  }
  if (hasBody) {
    await send(...errorResponse(400, head, connection))
    return close
  }
  const file = await resolveTarget(root, request.target)
  if (typeof file === 'number') {
    await send(...errorResponse(file, head, connection))
    return close
  }
  try {
    const range = parseRange(headers.get('range'), file.size)
    if (range === 'unsatisfiable') {
      await send(...errorResponse(416, head, connection, [`Content-Range: bytes */${file.size}`]))
      return close
    }
    const start = range?.start ?? 0
    const length = range === null ? file.size : range.end - range.start + 1
    const fields = [
      `Content-Type: ${contentType(file.path)}`,
      `Content-Length: ${length}`,
      'Accept-Ranges: bytes',
      ...(range === null ? [] : [`Content-Range: bytes ${range.start}-${range.end}/${file.size}`]),
    ]
    await send(responseHead(range === null ? 200 : 206, fields, connection))
    if (!head && length > 0) {
      // The library duplicates the descriptor: closing ours below does not cut the transfer.
      c.bytesOut += await conn.sendFile(file.handle.fd, { offset: start, length })
    }
  } finally {
    await file.handle.close()
  }
  return close
}

/** An error response: head and a one-line text body (the head alone for HEAD). */
function errorResponse(
  status: number,
  head: boolean,
  connection: string | null,
  extra: string[] = [],
): [Buffer, Buffer | undefined] {
  const body = Buffer.from(`${status} ${REASONS[status] ?? ''}\n`, 'latin1')
  const fields = [`Content-Type: text/plain${TEXT}`, `Content-Length: ${body.length}`, ...extra]
  return [responseHead(status, fields, connection), head ? undefined : body]
}

/** Answers with an error status and closes: the stream cannot be read as requests any more. */
async function refuse(conn: Connection, status: 400 | 431, c: Counters): Promise<void> {
  const [head, body = Buffer.alloc(0)] = errorResponse(status, false, 'close')
  await conn.write(Buffer.concat([head, body]))
  c.bytesOut += head.length + body.length
}

/**
 * A handler serving the files under `root`, which must already be a realpath (every request's
 * realpath is compared with it).
 */
export function staticHandler(root: string, counters: Counters): Handler {
  return async (conn: Connection) => {
    let pending: Buffer | null = null
    for await (const chunk of conn) {
      counters.bytesIn += chunk.length
      const buf: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk])
      pending = null
      let start = 0
      for (let end = buf.indexOf(END); end !== -1; end = buf.indexOf(END, start)) {
        if (end - start > MAX_HEAD) return refuse(conn, 431, counters)
        const request = parseHead(buf.toString('latin1', start, end))
        start = end + END.length
        counters.requests++
        if (request === null) return refuse(conn, 400, counters)
        if (await answer(conn, root, request, counters)) return // returning closes the connection
      }
      if (buf.length - start > MAX_HEAD) return refuse(conn, 431, counters)
      if (start < buf.length) pending = Buffer.from(buf.subarray(start))
    }
  }
}
