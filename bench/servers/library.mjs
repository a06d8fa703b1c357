// Loads our library for the tcpserver variants, or tells the harness it is not built.
import { announceUnavailable } from './options.mjs'

const LIBRARY = '../../packages/tcpserver/dist/index.js'

/** The library's exports, or null after announcing the variant unavailable. */
export async function loadLibrary() {
  try {
    return await import(LIBRARY)
  } catch (err) {
    announceUnavailable(`cannot load ${LIBRARY}: ${err.code ?? err.message}`)
    return null
  }
}

/** An `onError` for listen() that counts handler errors by code instead of logging each one. */
export function errorCounter() {
  const counts = {}
  const onError = (err) => {
    const code = err?.code ?? err?.message ?? String(err)
    counts[code] = (counts[code] ?? 0) + 1
  }
  return { counts, onError }
}
