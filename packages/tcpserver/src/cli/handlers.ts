// The connection handler of each `tcpserver` subcommand, built from its options and counting
// into `Counters`: used on the main thread (run.ts) and in every worker (worker.ts).
import { realpath } from 'node:fs/promises'
// Only the public API, like any user of the package.
import type { Connection, Handler } from '../index.js'
import type { CommandOptions } from './args.js'
import { buildResponses, HttpResponder } from './http.js'
import type { Output } from './output.js'
import { proxyHandler } from './proxy.js'
import { staticHandler } from './static.js'
import type { Counters } from './stats.js'

// Both answer from receive(): a callback per chunk, no promise per request. Returning the
// write's promise holds input back only while the peer is not reading its answers.
function echoHandler(c: Counters): Handler {
  return (conn: Connection) =>
    conn.receive((chunk) => {
      c.bytesIn += chunk.length
      c.bytesOut += chunk.length
      return conn.write(chunk)
    })
}

function httpHandler(c: Counters, bodySize: number): Handler {
  const responses = buildResponses(bodySize)
  return (conn: Connection) => {
    const responder = new HttpResponder(responses)
    let answered = 0
    return conn.receive((chunk) => {
      c.bytesIn += chunk.length
      const out = responder.feed(chunk)
      c.requests += responder.requests - answered
      answered = responder.requests
      if (out !== null) c.bytesOut += out.length
      if (responder.close) {
        if (out !== null) conn.write(out)
        return false // the handler settles: the connection closes once `out` is flushed
      }
      return out === null ? undefined : conn.write(out)
    })
  }
}

/** The connection handler of `command`. */
export async function handlerFor(command: CommandOptions, counters: Counters, io: Output): Promise<Handler> {
  switch (command.name) {
    case 'echo':
      return echoHandler(counters)
    case 'http':
      return httpHandler(counters, command.bodySize)
    case 'proxy':
      return proxyHandler(command, counters, io)
    case 'static':
      // Resolved once: every request's realpath is compared with this one.
      return staticHandler(await realpath(command.root), counters)
  }
}
