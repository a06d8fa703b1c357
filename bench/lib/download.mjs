// Runs the download client (clients/download.mjs) pinned to a core and checks what it got.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const CLIENT = fileURLToPath(new URL('../clients/download.mjs', import.meta.url))

/**
 * `taskset -c CORE node clients/download.mjs PORT BYTES`; resolves to the client's result
 * { status, contentLength, bytes, mismatchAt, seconds, error } plus `errors`, every reason the
 * download is not clean (empty when valid).
 */
export async function runDownload({ core, port, bytes }) {
  const child = spawn(
    'taskset',
    ['-c', String(core), process.execPath, CLIENT, String(port), String(bytes)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (s) => (out += s))
  child.stderr.setEncoding('utf8').on('data', (s) => (err += s))
  // Generous: 50 MB/s would already be a broken proxy.
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000 + bytes / 50_000)
  const [code, signal] = await once(child, 'close')
  clearTimeout(timer)
  let result
  try {
    result = JSON.parse(out)
  } catch {
    const why = signal ? `killed by ${signal} (timeout?)` : `exited with code ${code}`
    throw new Error(`download client ${why}: ${(err || out).trim().slice(0, 500)}`)
  }
  return { ...result, errors: checkDownload(result, bytes) }
}

/** Every reason a download result is not a clean, complete copy of `bytes` pattern bytes. */
export function checkDownload(result, bytes) {
  const errors = []
  if (result.error) errors.push(`client error ${result.error}`)
  if (result.status !== 200) errors.push(`status ${result.status}`)
  if (result.contentLength !== bytes) errors.push(`Content-Length ${result.contentLength}, expected ${bytes}`)
  if (result.bytes !== bytes) errors.push(`${result.bytes} body bytes received, expected ${bytes}`)
  if (result.mismatchAt !== -1) errors.push(`body differs from the pattern at byte ${result.mismatchAt}`)
  if (result.seconds == null && errors.length === 0) errors.push('no timing')
  return errors
}
