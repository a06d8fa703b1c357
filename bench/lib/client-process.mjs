// Spawns a client script pinned to a core (the download, echo and idle clients), and runs one that
// prints a single JSON result line.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

/**
 * `taskset -c CORE node clients/SCRIPT ARGS…` (through `wrap(command, args)` when given, e.g. to
 * raise a limit); resolves nothing, returns { child, stderr() } with stdout left to the caller.
 */
export function spawnClient({ core, script, args, stdin = 'ignore', wrap = (c, a) => [c, a] }) {
  const path = fileURLToPath(new URL(`../clients/${script}`, import.meta.url))
  const [command, argv] = wrap('taskset', ['-c', String(core), process.execPath, path, ...args.map(String)])
  const child = spawn(command, argv, { stdio: [stdin, 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s) => {
    stderr = (stderr + s).slice(-4000)
  })
  return { child, stderr: () => stderr }
}

/** Runs a client to its end (SIGKILL after `timeoutMs`) and resolves to its one JSON line. */
export async function runClient({ core, script, args, timeoutMs }) {
  const { child, stderr } = spawnClient({ core, script, args })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (s) => (out += s))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code, signal] = await once(child, 'close')
  clearTimeout(timer)
  try {
    return JSON.parse(out)
  } catch {
    const why = signal ? `killed by ${signal} (timeout?)` : `exited with code ${code}`
    throw new Error(`${script} ${why}: ${(stderr() || out).trim().slice(0, 500)}`)
  }
}
