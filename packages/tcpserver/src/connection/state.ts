// The small pieces of a connection's state machine: the server's shared defaults, what is
// reading, where a pipe stands, the settle pair of a pending job, and the parsing of a job's
// done event.
import { parseEventText, type TcpServerError } from '../errors.js'
import type { BindingConnections } from '../native.js'

/** The per-request native calls, bound to one source of connections (hot_calls.rs). */
export type HotCalls = ReturnType<BindingConnections['hotCalls']>

/** A server's (or the outbound hub's) defaults for its connections, read once and shared by them. */
export interface ConnectionSettings {
  /** `write`, `release`, `ack`, `readNow` without napi-rs's per-call bookkeeping. */
  calls: HotCalls
  highWaterMark: number
  /** ms by timeout kind (`TIMEOUT_*` in connection.ts), 0 = off. */
  timeouts: readonly number[]
  readTimeout: number
  /**
   * The server's word that a handler's result settled, for a `receive()` promise the handler
   * returned itself (`conn`: the Connection; adoptHandlerResult in reader.ts). The outbound hub
   * has no handlers: undefined there.
   */
  handlerDone?(conn: object, failed: boolean, error: unknown): void
  /**
   * A connection closed during its `release` call (`conn`: the Connection; `closedText`: what
   * its CLOSED event would have carried): the router handles it as that event, which does not
   * come.
   */
  closedNow(conn: object, closedText: string): void
}

export const DONE: IteratorResult<Buffer> = Object.freeze({
  value: undefined,
  done: true,
}) as IteratorResult<Buffer>
export const noop = (): void => {}
/**
 * The promise `write()` returns while the queue is under `highWaterMark`: shared, so that
 * `receive()` can tell a callback that returned it needs no wait.
 */
export const RESOLVED: Promise<void> = Promise.resolve()

/** A rejected promise that never counts as unhandled: errors also surface through `read()`. */
export function quietReject(err: Error): Promise<never> {
  const p = Promise.reject(err)
  p.catch(noop)
  return p
}

export enum Pipe {
  None = 0,
  Pausing = 1,
  Paused = 2,
  Piping = 3,
  Done = 4,
}

export type Settle<T> = [(value: T) => void, (error: Error) => void]

/** A PIPE_DONE / FILE_DONE / TLS_STARTED event: its byte counts, then the error if any. */
export function splitDone(text: string, numbers: number): [number[], TcpServerError | null] {
  const [fields, error] = parseEventText(text, numbers)
  return [fields.map(Number), error]
}

export enum Reader {
  None = 0,
  Read = 1,
  Iterate = 2,
  /** `receive()`: chunks go to its callback as they arrive. */
  Receive = 3,
}
