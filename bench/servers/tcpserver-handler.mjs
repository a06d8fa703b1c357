// The handler of our library's HTTP variants, on the main thread (tcpserver.mjs) or in worker
// threads (workers-handler.mjs): the shared responder over `for await`, writes not awaited in
// the hot loop.
import { setTimeout as sleep } from 'node:timers/promises'
import { createResponder } from './responder.mjs'

/** A handler for `{ bodySize, delay, sha }` (servers/options.mjs). */
export function responderHandler({ bodySize, delay, sha }) {
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
