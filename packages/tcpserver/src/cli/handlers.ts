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

function echoHandler(c: Counters): Handler {
  return async (conn: Connection) => {
    for await (const chunk of conn) {
      c.bytesIn += chunk.length
      await conn.write(chunk)
      c.bytesOut += chunk.length
    }
  }
}

function httpHandler(c: Counters, bodySize: number): Handler {
  const responses = buildResponses(bodySize)
  return async (conn: Connection) => {
    const responder = new HttpResponder(responses)
    let answered = 0
    for await (const chunk of conn) {
      c.bytesIn += chunk.length
      const out = responder.feed(chunk)
      c.requests += responder.requests - answered
      answered = responder.requests
      if (out !== null) {
        await conn.write(out)
        c.bytesOut += out.length
      }
      if (responder.close) return // returning closes the connection once `out` is flushed
    }
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
