// Echo server on our library: the library's own idiom (examples/echo.mjs). Returning write()'s
// promise to receive() applies backpressure: a client that does not read slows its own echo down.
import { loadLibrary, serve } from './library.mjs'
import { serverOptions } from './options.mjs'

const { host, port } = serverOptions()

function handler(conn) {
  return conn.receive((chunk) => conn.write(chunk))
}

const library = await loadLibrary()
if (library) await serve(library, { host, port, handler })
