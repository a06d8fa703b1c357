// The soak's load: client loops of each kind, every one bounded by a deadline and an operation
// cap, each response compared by SHA-256 with what was expected. Used by soak.spec.ts.
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** What the loops did, for the counter checks and the report. */
export interface Tally {
  /** Client connections established, by target server. */
  connects: Record<string, number>
  /** Operations completed and hash-checked, by kind. */
  ops: Record<string, number>
  /** Bytes received and checked. */
  bytes: number
  /** Wrong bytes, unexpected errors: each one fails the soak. */
  failures: string[]
}

export function newTally(): Tally {
  return { connects: {}, ops: {}, bytes: 0, failures: [] }
}

const bump = (r: Record<string, number>, k: string): void => {
  r[k] = (r[k] ?? 0) + 1
}

/** Buffers a socket's input and hands out exact byte counts. */
class Input {
  #chunks: Buffer[] = []
  #have = 0
  #ended = false
  #error: Error | null = null
  #wake: (() => void) | null = null

  constructor(socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.#chunks.push(c)
      this.#have += c.length
      this.#wake?.()
    })
    socket.on('end', () => {
      this.#ended = true
      this.#wake?.()
    })
    socket.on('error', (e) => {
      this.#error = e
      this.#wake?.()
    })
    socket.on('close', () => {
      this.#ended = true
      this.#wake?.()
    })
  }

  /** Exactly `n` bytes, or everything up to the end when `n` is undefined. */
  async take(n?: number): Promise<Buffer> {
    while ((n === undefined || this.#have < n) && !this.#ended && !this.#error) {
      await new Promise<void>((r) => {
        this.#wake = r
      })
      this.#wake = null
    }
    if (this.#error) throw this.#error
    const all = Buffer.concat(this.#chunks)
    if (n !== undefined && all.length < n) throw new Error(`input ended after ${all.length} of ${n} bytes`)
    const out = n === undefined ? all : all.subarray(0, n)
    const rest = n === undefined ? Buffer.alloc(0) : all.subarray(n)
    this.#chunks = rest.length > 0 ? [rest] : []
    this.#have = rest.length
    return out
  }
}

export interface Target {
  name: string
  port: number
  /** TLS client options, for TLS servers. */
  tls?: tls.ConnectionOptions
}

function open(target: Target, tally: Tally): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = target.tls
      ? tls.connect({ port: target.port, host: '127.0.0.1', ...target.tls })
      : net.connect(target.port, '127.0.0.1')
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      bump(tally.connects, target.name)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

/** A message size: mostly small, sometimes up to 256 KiB. */
function size(): number {
  const r = Math.random()
  return r < 0.7 ? 1 + Math.floor(Math.random() * 2048) : 1 + Math.floor(Math.random() * 256 * 1024)
}

/** Whether the loop goes on: before the deadline and under the cap. */
export type Go = () => boolean

/** One keep-alive connection: echo requests one after another, each checked. */
export async function keepAlive(target: Target, kind: string, go: Go, tally: Tally): Promise<void> {
  const socket = await open(target, tally)
  const input = new Input(socket)
  try {
    while (go()) {
      const msg = randomBytes(size())
      socket.write(msg)
      const got = await input.take(msg.length)
      if (sha256(got) !== sha256(msg)) tally.failures.push(`${kind}: echo mismatch (${msg.length} bytes)`)
      tally.bytes += got.length
      bump(tally.ops, kind)
    }
    socket.end()
    await input.take()
  } catch (e) {
    tally.failures.push(`${kind}: ${(e as Error).message}`)
  } finally {
    socket.destroy()
  }
}

/** A new connection per request: send, half-close, read the echo to the end. */
export async function oneShot(target: Target, kind: string, go: Go, tally: Tally): Promise<void> {
  while (go()) {
    let socket: net.Socket | null = null
    try {
      socket = await open(target, tally)
      const input = new Input(socket)
      const msg = randomBytes(size())
      socket.end(msg)
      const got = await input.take()
      if (sha256(got) !== sha256(msg))
        tally.failures.push(`${kind}: echo mismatch (${got.length}/${msg.length})`)
      tally.bytes += got.length
      bump(tally.ops, kind)
    } catch (e) {
      tally.failures.push(`${kind}: ${(e as Error).message}`)
    } finally {
      socket?.destroy()
    }
  }
}

/** A file range per connection: `offset length\n`, then the bytes until the server closes. */
export async function fileRanges(target: Target, file: Buffer, go: Go, tally: Tally): Promise<void> {
  while (go()) {
    let socket: net.Socket | null = null
    try {
      socket = await open(target, tally)
      const input = new Input(socket)
      const offset = Math.floor(Math.random() * file.length)
      const length = Math.floor(Math.random() * (file.length - offset + 1))
      socket.write(`${offset} ${length}\n`)
      const got = await input.take()
      if (sha256(got) !== sha256(file.subarray(offset, offset + length))) {
        tally.failures.push(`sendFile: range ${offset}+${length} mismatch (${got.length} bytes)`)
      }
      tally.bytes += got.length
      bump(tally.ops, 'sendFile')
    } catch (e) {
      tally.failures.push(`sendFile: ${(e as Error).message}`)
    } finally {
      socket?.destroy()
    }
  }
}

/** Connects, sends a few bytes, and resets (RST): the server must count and forget it. */
export async function resets(target: Target, go: Go, tally: Tally): Promise<void> {
  while (go()) {
    try {
      const socket = await open(target, tally)
      socket.on('error', () => {})
      socket.write(randomBytes(1 + Math.floor(Math.random() * 512)))
      const closed = new Promise((r) => socket.once('close', r))
      socket.resetAndDestroy()
      await closed
      bump(tally.ops, 'reset')
    } catch (e) {
      tally.failures.push(`reset: ${(e as Error).message}`)
    }
  }
}
