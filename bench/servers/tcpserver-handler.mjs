// The handler of our library's HTTP variants, on the main thread (tcpserver.mjs) or in worker
// threads (workers-handler.mjs): the shared responder called by `conn.receive` (no promise per
// request, as Bun's and uWS's data callbacks), writes not awaited in the hot loop.
import { setTimeout as sleep } from 'node:timers/promises'
import { createResponder } from './responder.mjs'

/** A handler for `{ bodySize, delay, sha }` (servers/options.mjs). */
export function responderHandler({ bodySize, delay, sha }) {
  if (process.env.BENCH_FOR_AWAIT) return forAwaitHandler({ bodySize, delay, sha })
  return function handler(conn) {
    const respond = createResponder(bodySize, { sha })
    // A peer's reset at the end of a run rejects this; the server's default onError skips
    // those (ECONNRESET, EPIPE) and would log anything else.
    return conn.receive((chunk) => {
      const { out, close } = respond(chunk)
      if (out === null) return close ? false : undefined
      // t5: async work before answering; the next chunk waits for the promise.
      if (delay > 0) return sleep(delay).then(() => answer(conn, out, close))
      return answer(conn, out, close)
    })
  }
}

/**
 * Writes an answer. `close`: `false` stops reading (the handler settles and the connection
 * closes after the write); else the write's promise, which receive() waits for only when the
 * peer stops reading its answers.
 */
function answer(conn, out, close) {
  if (!close) return conn.write(out)
  conn.write(out)
  return false
}

/** The same over `for await` (BENCH_FOR_AWAIT=1): the promise-per-chunk way, for comparison. */
function forAwaitHandler({ bodySize, delay, sha }) {
  return async function handler(conn) {
    const respond = createResponder(bodySize, { sha })
    try {
      for await (const chunk of conn) {
        const { out, close } = respond(chunk)
        if (delay > 0 && out !== null) await sleep(delay) // t5: async work before answering
        if (close) {
          if (out !== null) await conn.write(out) // flushed before the handler returns and closes
          return
        }
        if (out !== null) conn.write(out)
      }
    } catch {
      // peer resets at the end of a run are expected
    }
  }
}

/**
 * Writes are not awaited in the hot loop; a write that fails after the peer left must not crash
 * the server, so rejections are counted here instead of handled per write.
 */
export function countLostWrites() {
  let lostWrites = 0
  process.on('unhandledRejection', (err) => {
    if (lostWrites++ === 0)
      process.stderr.write(`write rejected (further ones not shown): ${err?.code ?? err}\n`)
  })
}
