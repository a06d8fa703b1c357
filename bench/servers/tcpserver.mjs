// Our library's transport + the shared responder.

import { setTimeout as sleep } from 'node:timers/promises'
import { loadLibrary } from './library.mjs'
import { announceReady, serverOptions } from './options.mjs'
import { createResponder } from './responder.mjs'

const { host, port, bodySize, delay, sha } = serverOptions()

// Writes are not awaited in the hot loop; a write that fails after the peer left must not crash
// the server, so rejections are counted here instead of handled per write.
let lostWrites = 0
process.on('unhandledRejection', (err) => {
  if (lostWrites++ === 0)
    process.stderr.write(`write rejected (further ones not shown): ${err?.code ?? err}\n`)
})

async function handler(conn) {
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

const library = await loadLibrary()
if (library) {
  const server = await library.listen({ address: `${host}:${port}`, handler })
  announceReady(server.addresses[0].port)
}
