// The connection handler of each `tcpserver` subcommand, built from its options and counting
// into `Counters`: used on the main thread (cli-run.ts) and in every worker (cli-worker.ts).
import { realpath } from 'node:fs/promises'
import type { CommandOptions } from './cli-args.js'
import { buildResponses, HttpResponder } from './cli-http.js'
import type { Output } from './cli-output.js'
import { proxyHandler } from './cli-proxy.js'
import { staticHandler } from './cli-static.js'
import type { Counters } from './cli-stats.js'
// Only the public API, like any user of the package.
import type { Connection, Handler } from './index.js'

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
