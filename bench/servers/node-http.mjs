// node:http reference: same status and body, but Node's own HTTP stack (adds Date, Connection headers).
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { announceReady, serverOptions } from './options.mjs'

const { host, port, bodySize, delay } = serverOptions()
const body = Buffer.alloc(bodySize, 'x')
const headers = { 'Content-Length': String(bodySize), 'Content-Type': 'text/plain' }

const answer = (res) => {
  res.writeHead(200, headers)
  res.end(body)
}
// t5: async work before answering; without a delay, no async function (no promise per request).
const server = http.createServer(
  delay > 0
    ? async (_req, res) => {
        await sleep(delay)
        answer(res)
      }
    : (_req, res) => answer(res),
)

server.listen(port, host, () => announceReady(server.address().port))
