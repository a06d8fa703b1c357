// Loads our library for the tcpserver variants, or tells the harness it is not built; serves with
// the harness's ready and stats lines.
import { announceReady, announceUnavailable, reportStatsOnExit } from './options.mjs'

const LIBRARY = '../../packages/tcpserver/dist/index.js'

/** The library's exports, or null after announcing the variant unavailable. */
export async function loadLibrary() {
  try {
    return await import(LIBRARY)
  } catch (err) {
    announceUnavailable(`cannot load ${LIBRARY}: ${err.code ?? err.message}`)
    return null
  }
}

/** An `onError` for listen() that counts handler errors by code instead of logging each one. */
export function errorCounter() {
  const counts = {}
  const onError = (err) => {
    const code = err?.code ?? err?.message ?? String(err)
    counts[code] = (counts[code] ?? 0) + 1
  }
  return { counts, onError }
}

/**
 * `library.listen()` on host:port with `options` (handler, tls, ...), handler errors counted by
 * code (peer resets at the end of a run are expected), the stats line on SIGTERM (the server's
 * counters, those errors, RSS), then the ready line.
 */
export async function serve(library, { host, port, ...options }) {
  const errors = errorCounter()
  const server = await library.listen({ address: `${host}:${port}`, onError: errors.onError, ...options })
  reportStatsOnExit(
    () => ({
      ...server.stats(),
      handlerErrors: errors.counts,
      rss: process.memoryUsage().rss,
    }),
    () => server.stats().active === 0,
  )
  announceReady(server.addresses[0].port)
  return server
}
