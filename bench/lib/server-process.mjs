// Starts one server (a variant, or a fixed upstream) pinned to a core, waits for its ready line,
// and stops it.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { bunPath } from './anchors.mjs'

const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url))
const READY_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 3_000

/** Thrown when a variant cannot run at all here (missing build, crash at start): skip it. */
export class UnavailableError extends Error {}

/**
 * Runs `taskset -c CORE node SCRIPT (or bun SCRIPT) 0 BODY_SIZE [--upstream host:port] [--file path] [--delay ms]`
 * (with the open-files soft limit raised to the hard one) and resolves to
 * { pid, port, alive, stop, stderr, stats } once the server printed `{"ready":true,...}`.
 * `options` is { bodySize, upstream, file, delay } (see servers/options.mjs).
 * `stats()` is the last `{"stats":…}` line the server printed (servers print one when stopped).
 */
export async function startServer({ id, script, runtime = 'node' }, options, core) {
  const exe = runtime === 'bun' ? bunPath() : process.execPath
  if (exe === null) throw new UnavailableError(`${id}: Bun is not installed (bench/lib/anchors.mjs)`)
  const args = ['-c', String(core), exe, script, '0', String(options.bodySize ?? 1024)]
  if (options.upstream) args.push('--upstream', options.upstream)
  if (options.file) args.push('--file', options.file)
  if (options.delay) args.push('--delay', String(options.delay))
  if (options.sha) args.push('--sha', String(options.sha))
  const child = spawn(...withOpenFileLimit('taskset', args), {
    cwd: BENCH_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (s) => {
    stderr = (stderr + s).slice(-4000)
  })
  // 'close' comes after the exit and after stdout's last line (the stats line) was read.
  const exited = once(child, 'close').catch((err) => [null, null, err]) // spawn errors end it too

  let stats = null
  let onFirst
  const first = new Promise((resolve, reject) => {
    onFirst = resolve
    exited.then(([code, signal, err]) =>
      reject(new Error(err ? err.message : `exited before ready (code ${code}, signal ${signal})`)),
    )
    AbortSignal.timeout(READY_TIMEOUT_MS).addEventListener('abort', () =>
      reject(new Error(`no ready line within ${READY_TIMEOUT_MS} ms`)),
    )
  })
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (onFirst) {
      onFirst(line)
      onFirst = null
      return
    }
    try {
      stats = JSON.parse(line).stats ?? stats
    } catch {
      // not ours to read
    }
  })

  let ready
  try {
    ready = parseReady(await first)
  } catch (err) {
    await kill(child, exited)
    throw new UnavailableError(`${id}: ${err.message}${stderr ? `\n${stderr.trim()}` : ''}`)
  }
  return {
    pid: ready.pid, // sh and taskset exec node, so this is child.pid too
    port: ready.port,
    stderr: () => stderr,
    stats: () => stats,
    alive: () => child.exitCode === null && child.signalCode === null,
    stop: () => kill(child, exited),
  }
}

/**
 * [command, args] that run `command ARGS` with the soft limit on open files raised to the hard
 * limit (the idle test holds 10,000 connections; Node cannot raise it itself). `exec` keeps the
 * pid: sh → taskset → node is one process.
 */
export function withOpenFileLimit(command, args) {
  return ['sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', command, ...args]]
}

function parseReady(line) {
  let msg
  try {
    msg = JSON.parse(line)
  } catch {
    throw new Error(`unexpected first line: ${line}`)
  }
  if (msg.ready !== true) throw new Error(msg.error ?? `not ready: ${line}`)
  return msg
}

async function kill(child, exited) {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}
