// `npm start`: an echo server and a tiny HTTP server on 127.0.0.1, until Ctrl-C.
import { startEcho } from './echo.mjs'
import { startHttp } from './http.mjs'

const echo = await startEcho(process.env.ECHO_ADDRESS ?? '127.0.0.1:7000')
const http = await startHttp(process.env.HTTP_ADDRESS ?? '127.0.0.1:8080')
const e = echo.addresses[0]
const h = http.addresses[0]
console.log(`tcpserver demo
  echo: ${e.address}:${e.port}           try: echo hello | curl -s --max-time 1 telnet://${e.address}:${e.port}
  http: http://${h.address}:${h.port}/   try: curl http://${h.address}:${h.port}/
Ctrl-C stops both (graceful shutdown, 5 s deadline).`)

process.once('SIGINT', async () => {
  const [a, b] = await Promise.all([echo.shutdown({ timeout: 5000 }), http.shutdown({ timeout: 5000 })])
  console.log(`stopped: echo ${JSON.stringify(a)}, http ${JSON.stringify(b)}`)
})
