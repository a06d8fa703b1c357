// `listen({ workers })`: the pool of worker threads that run a server's handler module. The
// Rust accept loops hand each connection to the worker with the fewest open connections
// (crates/tcpserver-node/src/workers.rs); this file decides how many workers there are,
// starts them, replaces one that ends, and stops them when the server closed.
import { availableParallelism } from 'node:os'
import { isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { argType, codedError, outOfRange, type TcpServerError } from './errors.js'
import type { ListenOptions } from './options.js'
import type { WorkerStats } from './types.js'

/** What a worker tells its parent once: it serves, or why it cannot. */
export type WorkerReport =
  | { ready: true }
  | { ready: false; error: { name: string; message: string; code?: string; stack?: string } }

/** The data a worker starts with (`workerData`). */
export interface WorkerInit {
  /** The server's `workersKey`. */
  key: number
  /** This worker's index, 0..count. */
  index: number
  /** The handler module's URL. */
  module: string
  /** `listen({ workerData })`, for the module's `setup` export. */
  data: unknown
}

// biome-ignore lint/complexity/noBannedTypes: the caller is only used to trim the stack
type Caller = Function

/** Most workers one server may have. */
const MAX_WORKERS = 1024
/** A worker that ends this soon after starting is restarted after a growing pause (100 ms → 1 s). */
const CRASH_LOOP_MS = 1000
const ENTRY = new URL('./worker-entry.js', import.meta.url)

/** The `workers` option as a count, or undefined for a single-threaded server. */
export function workerCount(workers: ListenOptions['workers'], caller: Caller): number | undefined {
  if (workers === undefined) return undefined
  if (workers === 'auto') return availableParallelism()
  if (typeof workers !== 'number')
    throw argType('options.workers', "of type number or 'auto'", workers, caller)
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw outOfRange(
      'options.workers',
      `must be an integer from 1 to ${MAX_WORKERS} (or 'auto')`,
      workers,
      caller,
    )
  }
  return workers
}

/**
 * The handler module as a URL a worker can import: a `URL`, a `file:`/`data:` URL string, or
 * a file path (relative paths from the current directory).
 */
export function handlerModule(handler: ListenOptions['handler'], caller: Caller): string {
  if (handler instanceof URL) return handler.href
  if (typeof handler === 'string' && handler !== '') {
    if (/^(file|data):/.test(handler)) return handler
    return pathToFileURL(isAbsolute(handler) ? handler : resolve(handler)).href
  }
  throw argType(
    'options.handler',
    'a module (a URL or a file path) when workers is set: a function cannot move to another thread',
    handler,
    caller,
  )
}

function loadError(index: number, module: string, error: WorkerReport & { ready: false }): TcpServerError {
  const e = codedError(
    'ERR_TCPSERVER_WORKER_LOAD',
    `worker ${index} could not load the handler module ${module}: ${error.error.message}`,
  )
  ;(e as TcpServerError & { cause?: unknown }).cause = error.error
  return e
}

interface Running {
  worker: Worker
  startedAt: number
}

/** The worker threads of one server. */
export class WorkerPool {
  readonly #init: Omit<WorkerInit, 'index'>
  readonly #running: Array<Running | null>
  #restarts = 0
  #pause: number[] // per index: the pause before its next restart, ms
  #closing = false

  constructor(key: number, count: number, module: string, data: unknown) {
    this.#init = { key, module, data }
    this.#running = new Array(count).fill(null)
    this.#pause = new Array(count).fill(0)
  }

  /** Starts every worker; resolves once all serve, or rejects (all stopped) if one cannot load. */
  async start(): Promise<void> {
    const started = await Promise.allSettled(this.#running.map((_, i) => this.#spawn(i)))
    const failed = started.find((r) => r.status === 'rejected')
    if (failed) {
      await this.close()
      throw (failed as PromiseRejectedResult).reason
    }
  }

  #spawn(index: number): Promise<void> {
    const init: WorkerInit = { ...this.#init, index }
    const worker = new Worker(ENTRY, { workerData: init })
    const entry: Running = { worker, startedAt: Date.now() }
    const threadId = worker.threadId // -1 once the thread ended
    this.#running[index] = entry
    return new Promise((resolveReady, rejectReady) => {
      let ready = false
      let failure: unknown
      worker.once('message', (report: WorkerReport) => {
        if (report.ready) {
          ready = true
          resolveReady()
        } else {
          rejectReady(loadError(index, init.module, report))
        }
      })
      // An uncaught error in the handler module or a handler: the thread ends. Its
      // connections were closed when its environment ended (native cleanup hook).
      worker.on('error', (e) => {
        failure = e
      })
      worker.once('exit', (code) => {
        if (this.#running[index] === entry) this.#running[index] = null
        if (!ready) {
          const why = failure instanceof Error ? failure.message : `exit code ${code}`
          rejectReady(loadError(index, init.module, { ready: false, error: { name: 'Error', message: why } }))
          return
        }
        if (this.#closing) return
        process.emitWarning(
          `worker ${index} (thread ${threadId}) ended (${failure instanceof Error ? failure.message : `exit code ${code}`}); its connections were closed, a new worker takes its place`,
          { code: 'TCPSERVER_WORKER_EXIT' },
        )
        this.#restart(index, Date.now() - entry.startedAt)
      })
    })
  }

  #restart(index: number, lived: number): void {
    // A worker that keeps dying at once must not spin: 0, then 100 ms doubling to 1 s.
    const pause = lived < CRASH_LOOP_MS ? Math.min(1000, Math.max(100, this.#pause[index] * 2)) : 0
    this.#pause[index] = pause
    const again = (): void => {
      if (this.#closing) return
      this.#restarts++
      this.#spawn(index).catch((e: unknown) => {
        if (this.#closing) return // stopped with the server before it was ready: no failure
        process.emitWarning(`worker ${index} could not restart: ${(e as Error).message}`, {
          code: 'TCPSERVER_WORKER_EXIT',
        })
        this.#restart(index, 0)
      })
    }
    if (pause === 0) again()
    else setTimeout(again, pause).unref()
  }

  /** Per-worker figures, with the native counts (`active`, `accepted`) by index. */
  stats(native: {
    workers: Array<{ index: number; active: number; accepted: number }>
    orphaned: number
  }): WorkerStats {
    return {
      threads: this.#running.map((r, index) => {
        const n = native.workers.find((w) => w.index === index)
        return {
          index,
          threadId: r?.worker.threadId ?? -1,
          active: n?.active ?? 0,
          accepted: n?.accepted ?? 0,
        }
      }),
      restarts: this.#restarts,
      orphaned: native.orphaned,
    }
  }

  /** Stops every worker (the server has closed: no connection is left to them). */
  async close(): Promise<void> {
    this.#closing = true
    await Promise.all(
      this.#running.map(async (r) => {
        if (r) await r.worker.terminate()
      }),
    )
  }
}
