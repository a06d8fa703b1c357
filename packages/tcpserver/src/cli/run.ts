// Runs a `tcpserver` subcommand: starts the server through the public API, prints the
// "listening on" line, stats lines (timer and SIGUSR1), and shuts down gracefully on
// SIGINT/SIGTERM with a deadline (a second signal closes everything at once).
import { availableParallelism } from 'node:os'
// Only the public API, like any user of the package.
import { isTcpServerError, listen, type Server } from '../index.js'
import type { CommandOptions, CommonOptions } from './args.js'
import { handlerFor } from './handlers.js'
import { formatAddress, type Output, stdio } from './output.js'
import { newCounters, StatsReporter, sharedCounterBuffer, summedCounters } from './stats.js'
import type { CliWorkerData } from './worker.js'

/**
 * Starts `command` with `options` and runs until a signal shuts it down.
 *
 * @returns the exit status: 0 after a shutdown, 1 when the server could not start (the error's
 * `code` is printed, e.g. `EADDRINUSE`, `ENOENT` for a TLS file, or `ERR_OUT_OF_RANGE`).
 */
export async function runServer(
  command: CommandOptions,
  options: CommonOptions,
  io: Output = stdio,
): Promise<number> {
  // With --workers the handlers run in worker threads (worker.ts), each counting into its
  // own slot of a shared buffer; the stats line adds the slots up.
  const workers = options.workers === 'auto' ? availableParallelism() : options.workers
  const shared = workers === undefined ? undefined : sharedCounterBuffer(workers)
  const counters = shared ? summedCounters(shared) : newCounters()
  let server: Server
  try {
    server = await listen({
      address: options.listen,
      ...(shared
        ? {
            workers,
            handler: new URL('./worker.js', import.meta.url),
            workerData: { command, counters: shared } satisfies CliWorkerData,
          }
        : { handler: await handlerFor(command, counters, io) }),
      loops: options.loops,
      reusePort: options.reusePort,
      fastOpen: options.fastOpen,
      deferAccept: options.deferAccept,
      maxConnections: options.maxConnections,
      tls: options.tls,
      proxyProtocol: options.acceptProxy ? { trusted: options.acceptProxy } : undefined,
    })
  } catch (e) {
    if (!isTcpServerError(e)) throw e
    io.err(`tcpserver: error [${e.code}]: ${e.message}`)
    return 1
  }
  const stats = new StatsReporter(server, counters, command.name)
  const printStats = (): void => io.out(stats.line())
  const timer = options.stats > 0 ? setInterval(printStats, options.stats * 1000) : undefined

  let stopping = false
  let closed = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closed) return // on the way out: a late Ctrl-C must not turn exit status 0 into a kill
    if (!stopping) {
      stopping = true
      io.out(`tcpserver: ${signal}: shutting down (deadline ${options.shutdownTimeout} ms)`)
      void server.shutdown({ timeout: options.shutdownTimeout })
    } else {
      io.out(`tcpserver: ${signal} again: closing every connection now`)
      void server.halt()
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  // SIGUSR1 would otherwise start the inspector; Windows has no such signal. The handlers stay
  // installed until the process exits (signal watchers do not keep it alive).
  if (process.platform !== 'win32') process.on('SIGUSR1', () => closed || printStats())
  // Printed only now: once a user or a script sees this line, the signals above are handled.
  io.out(`tcpserver ${command.name} listening on ${server.addresses.map(formatAddress).join(', ')}`)

  const result = await server.closed
  if (timer) clearInterval(timer)
  io.out(stats.line())
  closed = true
  io.out(`tcpserver: closed (completed=${result.completed} forced=${result.forced})`)
  return 0
}
