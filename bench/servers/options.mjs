// Command line of every server variant: `node servers/X.mjs [port] [bodySize]`
// (or PORT / BODY_SIZE in the environment). Port 0 lets the OS pick; the ready line tells.

export function serverOptions(argv = process.argv.slice(2), env = process.env) {
  const port = Number(argv[0] ?? env.PORT ?? 0)
  const bodySize = Number(argv[1] ?? env.BODY_SIZE ?? 1024)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`bad port: ${argv[0]}`)
  if (!Number.isInteger(bodySize) || bodySize < 0) throw new RangeError(`bad body size: ${argv[1]}`)
  return { host: '127.0.0.1', port, bodySize }
}

/** The one line the harness waits for. */
export function announceReady(port) {
  process.stdout.write(`${JSON.stringify({ ready: true, port, pid: process.pid })}\n`)
}

/** Tells the harness this variant cannot run here (e.g. the library is not built), then exits. */
export function announceUnavailable(reason) {
  process.stdout.write(`${JSON.stringify({ ready: false, error: String(reason), pid: process.pid })}\n`)
  process.exitCode = 2
}
