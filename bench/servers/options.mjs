// Command line of every server variant: `node servers/X.mjs [port] [bodySize] [--upstream host:port]
// [--file path] [--delay ms] [--sha bytes]` (or PORT / BODY_SIZE / UPSTREAM / FILE / DELAY in the environment).
// Port 0 lets the OS pick; the ready line tells. Proxies read `upstream`, static file servers read
// `file`, the responders read `delay` (ms of async sleep before each answer; 0 = none).
import { parseArgs } from 'node:util'

export function serverOptions(argv = process.argv.slice(2), env = process.env) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      upstream: { type: 'string' },
      file: { type: 'string' },
      delay: { type: 'string' },
      sha: { type: 'string' },
    },
  })
  const port = Number(positionals[0] ?? env.PORT ?? 0)
  const bodySize = Number(positionals[1] ?? env.BODY_SIZE ?? 1024)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`bad port: ${positionals[0]}`)
  if (!Number.isInteger(bodySize) || bodySize < 0) throw new RangeError(`bad body size: ${positionals[1]}`)
  const delay = Number(values.delay ?? env.DELAY ?? 0)
  if (!Number.isFinite(delay) || delay < 0) throw new RangeError(`bad delay: ${values.delay}`)
  // t7: bytes hashed with SHA-256 per request (the answer is the hex digest); 0 = none.
  const sha = Number(values.sha ?? env.SHA ?? 0)
  if (!Number.isInteger(sha) || sha < 0) throw new RangeError(`bad sha size: ${values.sha}`)
  const upstream = values.upstream ?? env.UPSTREAM ?? null
  const file = values.file ?? env.FILE ?? null
  return { host: '127.0.0.1', port, bodySize, upstream, file, delay, sha }
}

/** `host:port` → { host, port }, as node:net's connect() takes it. */
export function splitAddress(address) {
  const colon = address.lastIndexOf(':')
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) }
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

/**
 * On SIGTERM (how the harness stops a server), prints `{"stats":…}` with `collect()`'s counters
 * and exits. The harness keeps the last such line with the round. With `settled`, waits (up to
 * 1 s) until it holds first: a connection the client saw close may still be finishing its close
 * on the server's side (the FIN went out first), and must not be counted as left open.
 */
export function reportStatsOnExit(collect, settled = () => true) {
  process.once('SIGTERM', async () => {
    for (const deadline = Date.now() + 1000; !settled() && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    let stats
    try {
      stats = collect()
    } catch (err) {
      stats = { error: String(err?.message ?? err) }
    }
    process.stdout.write(`${JSON.stringify({ stats })}\n`, () => process.exit(0))
  })
}
