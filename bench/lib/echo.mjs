// Runs the echo client (clients/echo.mjs) pinned to a core and checks what came back.
import { runClient } from './client-process.mjs'

/**
 * `taskset -c CORE node clients/echo.mjs PORT CONNECTIONS SECONDS`; resolves to the client's
 * result { bytes, seconds, connections, error } plus `errors`, every reason the echo is not
 * clean (empty when valid).
 */
export async function runEcho({ core, port, connections, seconds }) {
  // The client bounds itself (SECONDS + 20 s to drain); this only catches a hung client.
  const timeoutMs = (seconds + 40) * 1000
  const result = await runClient({ core, script: 'echo.mjs', args: [port, connections, seconds], timeoutMs })
  return { ...result, errors: checkEcho(result, connections) }
}

/** Every reason an echo result is not a clean, complete echo on every connection. */
export function checkEcho(result, connections) {
  const errors = []
  if (result.error) errors.push(`client: ${result.error}`)
  if (result.connections?.length !== connections) {
    errors.push(`${result.connections?.length ?? 0} connections reported, expected ${connections}`)
  }
  for (const [i, c] of (result.connections ?? []).entries()) {
    const at = `connection ${i + 1}`
    if (c.error) errors.push(`${at}: error ${c.error}`)
    if (c.sent === 0) errors.push(`${at}: nothing sent`)
    if (c.received !== c.sent) errors.push(`${at}: ${c.received} bytes echoed of ${c.sent} sent`)
    if (c.mismatchAt !== -1) errors.push(`${at}: echo differs from what was sent at byte ${c.mismatchAt}`)
    if (!c.closed) errors.push(`${at}: not closed by the server after the client’s FIN`)
  }
  if (!(result.seconds > 0) && errors.length === 0) errors.push('no timing')
  return errors
}
