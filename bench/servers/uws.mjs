// uWebSockets.js (its HTTP app, on uSockets in the Node process's own thread): the other
// reference of issue 13. Unlike every other variant it parses HTTP itself, so it answers with its
// own head (it adds `Date` and `uWebSockets` headers) and the responder's 'x' body; it honours
// `Connection: close` as HTTP/1.1 says.
import { loadUws } from '../lib/anchors.mjs'
import { announceReady, announceUnavailable, serverOptions } from './options.mjs'
import { certPath, keyPath } from './tls-credentials.mjs'

/** Serves on host:port with TLS or plain; answers every request with `bodySize` x's. */
export function serveUws({ tls = false } = {}) {
  const { host, port, bodySize, delay } = serverOptions()
  let uWS
  try {
    uWS = loadUws()
  } catch (err) {
    announceUnavailable(`uWebSockets.js not installed: ${err.message.split('\n')[0]}`)
    return
  }
  const body = Buffer.alloc(bodySize, 'x')
  const app = tls ? uWS.SSLApp({ key_file_name: keyPath, cert_file_name: certPath }) : uWS.App()
  // uWS closes after answering a `Connection: close` request but does not say so in the
  // answer; wrk counts an unannounced close as a read error (node:http announces it too).
  const answer = (res, close) => (close ? res.writeHeader('Connection', 'close') : res).end(body)
  // t5's async answers are left out: uWS closes a connection whose next pipelined request
  // arrives while an answer is pending (bench/test/servers.test.mjs saw 0 of 4 answers), so it
  // could not pass this harness's checks.
  if (delay > 0) {
    announceUnavailable('uWS.js: async answers to pipelined requests are not supported')
    return
  }
  app.any('/*', (res, req) => answer(res, req.getHeader('connection') === 'close'))
  app.listen(host, port, (token) => {
    if (!token) {
      announceUnavailable(`uWS could not listen on ${host}:${port}`)
      return
    }
    announceReady(uWS.us_socket_local_port(token))
  })
  process.on('SIGTERM', () => process.exit(0))
}

if (process.argv[1] === new URL(import.meta.url).pathname) serveUws()
