// Our library with `workers: 2`: the same handler as servers/tcpserver.mjs, run by two worker
// threads that the Rust accept loops feed (listen({ workers })).
import { loadLibrary } from './library.mjs'
import { announceReady, serverOptions } from './options.mjs'

const options = serverOptions()
const library = await loadLibrary()
if (library) {
  const server = await library.listen({
    address: `${options.host}:${options.port}`,
    workers: 2,
    handler: new URL('./workers-handler.mjs', import.meta.url),
    workerData: options,
  })
  announceReady(server.addresses[0].port)
}
