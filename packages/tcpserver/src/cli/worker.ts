// The handler module of `tcpserver <command> --workers N`: every worker thread builds the same
// handler as the single-threaded CLI (run.ts), counting into its own slot of the counters
// the main thread reports.
import type { Connection, Handler } from '../index.js'
import type { CommandOptions } from './args.js'
import { handlerFor } from './handlers.js'
import { stdio } from './output.js'
import { slotCounters } from './stats.js'

/** What the main thread passes (`listen({ workerData })`). */
export interface CliWorkerData {
  command: CommandOptions
  /** `sharedCounterBuffer(workers)`: one slot per worker index. */
  counters: SharedArrayBuffer
}

let handler: Handler | undefined

export async function setup(data: CliWorkerData, { index }: { index: number }): Promise<void> {
  handler = await handlerFor(data.command, slotCounters(data.counters, index), stdio)
}

export default function serve(conn: Connection): void | Promise<void> {
  return (handler as Handler)(conn)
}
