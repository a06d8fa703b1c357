// The handler module of servers/tcpserver-workers.mjs: servers/tcpserver.mjs's handler, configured
// by the main thread's server options (workerData).
import { countLostWrites, responderHandler } from './tcpserver-handler.mjs'

let handler

export function setup(workerData) {
  handler = responderHandler(workerData)
  countLostWrites()
}

export default function serve(conn) {
  return handler(conn)
}
