// node:http reference: same status and body, but Node's own HTTP stack (adds Date, Connection headers).
import http from 'node:http'
import { announceReady, serverOptions } from './options.mjs'

const { host, port, bodySize } = serverOptions()
const body = Buffer.alloc(bodySize, 'x')
const headers = { 'Content-Length': String(bodySize), 'Content-Type': 'text/plain' }

const server = http.createServer((_req, res) => {
  res.writeHead(200, headers)
  res.end(body)
})

server.listen(port, host, () => announceReady(server.address().port))
