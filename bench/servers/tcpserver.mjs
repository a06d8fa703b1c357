// Our library's transport + the shared responder.
import { loadLibrary } from './library.mjs'
import { announceReady, serverOptions } from './options.mjs'
import { countLostWrites, responderHandler } from './tcpserver-handler.mjs'

const options = serverOptions()
countLostWrites()

const library = await loadLibrary()
if (library) {
  const server = await library.listen({
    address: `${options.host}:${options.port}`,
    handler: responderHandler(options),
  })
  announceReady(server.addresses[0].port)
}
