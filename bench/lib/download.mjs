// Runs the download client (clients/download.mjs) pinned to a core and checks what it got.
import { runClient } from './client-process.mjs'

/**
 * `taskset -c CORE node clients/download.mjs PORT BYTES`; resolves to the client's result
 * { status, contentLength, bytes, mismatchAt, seconds, error } plus `errors`, every reason the
 * download is not clean (empty when valid).
 */
export async function runDownload({ core, port, bytes }) {
  // Generous: 50 MB/s would already be a broken proxy.
  const timeoutMs = 30_000 + bytes / 50_000
  const result = await runClient({ core, script: 'download.mjs', args: [port, bytes], timeoutMs })
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
