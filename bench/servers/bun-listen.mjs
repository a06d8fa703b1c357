// Bun's raw TCP server (`Bun.listen`, run by Bun) + the shared responder: the reference for a
// JavaScript runtime that serves sockets on its own event loop (uSockets), the way issue 13
// asks us to compare. Started by the harness with Bun instead of Node (variants.mjs `runtime`).
//
// Bun's `socket.write()` does not buffer: it returns how many bytes the kernel took, and the
// `drain` handler says when to write the rest, so this keeps the unsent tail per socket.
import { announceReady, serverOptions } from './options.mjs'
import { createResponder } from './responder.mjs'
import { certPath, keyPath } from './tls-credentials.mjs'

/** Serves on host:port with `tls` ({ cert, key } file paths) or plain TCP. */
export function serveBun({ tls = false } = {}) {
  const { host, port, bodySize, delay } = serverOptions()
  const send = (socket, out, close) => {
    const state = socket.data
    if (out !== null) {
      if (state.pending) state.pending = Buffer.concat([state.pending, out])
      else {
        const n = socket.write(out)
        if (n < out.length) state.pending = out.subarray(Math.max(n, 0))
      }
    }
    if (close) {
      if (state.pending) state.closing = true
      else socket.end()
    }
  }
  const listener = Bun.listen({
    hostname: host,
    port,
    ...(tls ? { tls: { cert: Bun.file(certPath), key: Bun.file(keyPath) } } : {}),
    socket: {
      open(socket) {
        socket.setNoDelay?.(true)
        socket.data = { respond: createResponder(bodySize), pending: null, closing: false }
      },
      data(socket, chunk) {
        const { out, close } = socket.data.respond(chunk)
        if (delay > 0 && out !== null) setTimeout(() => send(socket, out, close), delay)
        else send(socket, out, close)
      },
      drain(socket) {
        const state = socket.data
        if (!state.pending) return
        const n = socket.write(state.pending)
        state.pending = n < state.pending.length ? state.pending.subarray(Math.max(n, 0)) : null
        if (!state.pending && state.closing) socket.end()
      },
      error() {}, // peer resets at the end of a run are expected
      close() {},
    },
  })
  announceReady(listener.port)
  process.on('SIGTERM', () => {
    listener.stop(true)
    process.exit(0)
  })
}

if (import.meta.main) serveBun()
