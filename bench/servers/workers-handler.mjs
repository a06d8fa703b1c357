// The handler module of servers/tcpserver-workers.mjs: servers/tcpserver.mjs's handler, configured
// by the main thread's server options (workerData).
import { setTimeout as sleep } from 'node:timers/promises'
import { createResponder } from './responder.mjs'

let options

export function setup(workerData) {
  options = workerData
  process.on('unhandledRejection', () => {}) // writes to peers that left
}

export default async function handler(conn) {
  const respond = createResponder(options.bodySize, { sha: options.sha })
  try {
    for await (const chunk of conn) {
      const { out, close } = respond(chunk)
      if (options.delay > 0 && out !== null) await sleep(options.delay)
      if (close) {
        if (out !== null) await conn.write(out)
        return
      }
      if (out !== null) conn.write(out)
    }
  } catch {
    // peer resets at the end of a run are expected
  }
}
