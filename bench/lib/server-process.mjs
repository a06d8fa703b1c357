// Starts one server variant pinned to a core, waits for its ready line, and stops it.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url))
const READY_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 3_000

/** Thrown when a variant cannot run at all here (missing build, crash at start): skip it. */
export class UnavailableError extends Error {}

/**
 * Runs `taskset -c CORE node SCRIPT 0 BODY_SIZE` and resolves to { pid, port, stop, stderr }
 * once the server printed `{"ready":true,...}`.
 */
export async function startServer(variant, test, core) {
  const args = ['-c', String(core), process.execPath, variant.script, '0', String(test.server.bodySize)]
  const child = spawn('taskset', args, { cwd: BENCH_DIR, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (s) => {
    stderr = (stderr + s).slice(-4000)
  })
  const exited = once(child, 'exit').catch((err) => [null, null, err]) // spawn errors end it too

  let ready
  try {
    ready = await readyLine(child, exited)
  } catch (err) {
    await kill(child, exited)
    throw new UnavailableError(`${variant.id}: ${err.message}${stderr ? `\n${stderr.trim()}` : ''}`)
  }
  return {
    pid: ready.pid, // taskset execs node, so this is child.pid too
    port: ready.port,
    stderr: () => stderr,
    alive: () => child.exitCode === null && child.signalCode === null,
    stop: () => kill(child, exited),
  }
}

async function readyLine(child, exited) {
  const lines = createInterface({ input: child.stdout })
  const timeout = AbortSignal.timeout(READY_TIMEOUT_MS)
  const first = new Promise((resolve, reject) => {
    lines.once('line', resolve)
    exited.then(([code, signal, err]) =>
      reject(new Error(err ? err.message : `exited before ready (code ${code}, signal ${signal})`)),
    )
    timeout.addEventListener('abort', () => reject(new Error(`no ready line within ${READY_TIMEOUT_MS} ms`)))
  })
  const line = await first
  child.stdout.resume() // keep draining anything printed later
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
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}
