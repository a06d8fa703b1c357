// The main module of a worker thread of `listen({ workers })`: loads the handler module,
// attaches to the server's native worker set, and serves the connections the server hands
// this thread, exactly as a single-threaded server runs its handler. See workers.ts.
import { parentPort, threadId, workerData } from 'node:worker_threads'
import { fromBinding } from './errors.js'
import { binding } from './native.js'
import type { Handler, ListenOptions } from './options.js'
import { Server } from './server.js'
import type { WorkerInit, WorkerReport } from './workers.js'

const init = workerData as WorkerInit
const port = parentPort
if (port === null) throw new Error('tcpserver: worker-entry.js runs only as a worker thread')

function report(r: WorkerReport): void {
  port?.postMessage(r)
}

try {
  const mod = (await import(init.module)) as {
    default?: unknown
    setup?: (data: unknown, info: { index: number; threadId: number }) => unknown
    onError?: ListenOptions['onError']
    onTlsError?: ListenOptions['onTlsError']
  }
  const handler = mod.default
  if (typeof handler !== 'function') {
    throw new TypeError(`its default export must be the handler function, got ${typeof handler}`)
  }
  if (typeof mod.setup === 'function') await mod.setup(init.data, { index: init.index, threadId })
  let server: Server | undefined
  const native = binding.attachWorker(
    init.key,
    init.index,
    (events: Buffer, payload: Buffer, words?: number) => server?.dispatch(events, payload, words),
  )
  if (!(native instanceof binding.BindingServer)) throw fromBinding(native)
  server = new Server(native, {
    handler: handler as Handler,
    onError: typeof mod.onError === 'function' ? mod.onError : undefined,
    onTlsError: typeof mod.onTlsError === 'function' ? mod.onTlsError : undefined,
    sniCallback: undefined,
  })
  report({ ready: true })
} catch (e) {
  const err = e as { name?: string; message?: string; code?: string; stack?: string }
  report({
    ready: false,
    error: {
      name: err?.name ?? 'Error',
      message: err?.message ?? String(e),
      code: err?.code,
      stack: err?.stack,
    },
  })
}
