// Runs wrk pinned to a core and parses its report.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

/** A `done` hook that prints the exact bytes read (no per-request Lua). */
const REPORT_SCRIPT = fileURLToPath(new URL('wrk-report.lua', import.meta.url))

/** Runs `taskset -c CORE wrk --latency -s wrk-report.lua ARGS -dDURs URL`; resolves to wrk's stdout. */
export async function runWrk({ core, args, duration, url }) {
  const wrkArgs = ['--latency', '-s', REPORT_SCRIPT, ...args, `-d${duration}s`, url]
  const child = spawn('taskset', ['-c', String(core), 'wrk', ...wrkArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (s) => (out += s))
  child.stderr.setEncoding('utf8').on('data', (s) => (err += s))
  const timer = setTimeout(() => child.kill('SIGKILL'), (duration + 30) * 1000)
  const [code] = await once(child, 'exit')
  clearTimeout(timer)
  if (code !== 0) throw new Error(`wrk exited with code ${code}: ${err.trim() || out.trim()}`)
  return out
}

/**
 * Parses wrk's text report. Returns { requests, seconds, rps, bytes, latency: { p50, p99 } (ms),
 * socketErrors: { connect, read, write, timeout }, non2xx, errors } where `errors` lists every
 * reason the run is not clean (empty when valid). `bytes` comes from wrk-report.lua (null
 * without it).
 */
export function parseWrk(text) {
  const total = /(\d+) requests in ([\d.]+)(\w+),/.exec(text)
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text)
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text)
  const bytes = /^Bytes read: (\d+)$/m.exec(text)
  const result = {
    requests: total ? Number(total[1]) : null,
    seconds: total ? toMs(total[2], total[3]) / 1000 : null,
    rps: rps ? Number(rps[1]) : null,
    bytes: bytes ? Number(bytes[1]) : null,
    latency: { p50: percentile(text, '50'), p99: percentile(text, '99') },
    socketErrors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    errors: [],
  }
  if (result.requests === null || result.rps === null) result.errors.push('unparsable wrk output')
  const socketTotal = Object.values(result.socketErrors).reduce((a, b) => a + b, 0)
  if (socketTotal > 0) {
    const parts = Object.entries(result.socketErrors).filter(([, n]) => n > 0)
    result.errors.push(`socket errors: ${parts.map(([k, n]) => `${k} ${n}`).join(', ')}`)
  }
  if (result.non2xx > 0) result.errors.push(`non-2xx or 3xx responses: ${result.non2xx}`)
  if (result.requests === 0) result.errors.push('no requests completed')
  return result
}

/**
 * Byte-count check of a run whose responses all carry a `bodySize`-byte body: the completed
 * responses' bodies must all be there, and at most one response per connection may be partial
 * when wrk stops (heads are taken to be under 1 kB). Returns a list of errors (empty when fine).
 */
export function checkBytes({ bytes, requests }, { bodySize, connections }) {
  if (bytes == null || requests == null) return ['no byte count from wrk']
  const low = requests * bodySize
  const high = (requests + connections) * (bodySize + 1024)
  if (bytes < low) return [`${bytes} bytes read, fewer than ${requests} bodies of ${bodySize} bytes`]
  if (bytes > high)
    return [`${bytes} bytes read, more than ${requests} responses (+1 per connection) can hold`]
  return []
}

/** The connection count in wrk's arguments (`-c100`, `-c 100`, `--connections 100`). */
export function wrkConnections(args) {
  for (let i = 0; i < args.length; i++) {
    const m = /^-c(\d+)$/.exec(args[i])
    if (m) return Number(m[1])
    if (args[i] === '-c' || args[i] === '--connections') return Number(args[i + 1])
  }
  return 10 // wrk's default
}

function percentile(text, p) {
  const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(\\w+)\\s*$`, 'm').exec(text)
  return m ? toMs(m[1], m[2]) : null
}

const MS_PER_UNIT = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

function toMs(value, unit) {
  if (!(unit in MS_PER_UNIT)) throw new Error(`unknown wrk time unit: ${unit}`)
  return Math.round(Number(value) * MS_PER_UNIT[unit] * 1e6) / 1e6 // no 0.8220000000000001
}
