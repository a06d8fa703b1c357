// The examples `npm start` runs (examples/demo.mjs): the echo and the HTTP responder, driven by
// real clients (node:http with keep-alive, a raw pipelining socket).
import http from 'node:http'
import test from 'ava'
import type { Server } from 'tcpserver-rs'
import { collect, connect, portOf, roundTrip, within } from './helpers/index.ts'

const { startEcho } = (await import('../examples/echo.mjs' as string)) as {
  startEcho(address: string): Promise<Server>
}
const { startHttp } = (await import('../examples/http.mjs' as string)) as {
  startHttp(address: string): Promise<Server>
}

test('examples/echo.mjs echoes', async (t) => {
  const server = await startEcho('127.0.0.1:0')
  t.teardown(() => server.halt())
  t.is((await roundTrip(portOf(server), 'hello echo')).toString(), 'hello echo')
})

test('examples/http.mjs: keep-alive requests share a connection; pipelined ones and Connection: close are answered in order', async (t) => {
  const server = await startHttp('127.0.0.1:0')
  t.teardown(() => server.halt())
  const port = portOf(server)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const sockets = new Set<unknown>()
  for (let i = 0; i < 3; i++) {
    const body = await within(
      new Promise<string>((resolve, reject) => {
        http
          .get({ port, host: '127.0.0.1', agent }, (res) => {
            sockets.add(res.socket)
            let text = ''
            res.setEncoding('utf8').on('data', (d: string) => {
              text += d
            })
            res.on('end', () => resolve(text))
          })
          .on('error', reject)
      }),
      5000,
      'response',
    )
    t.is(body, 'hello from tcpserver\n')
  }
  t.is(sockets.size, 1)

  const raw = await connect(port)
  const reply = collect(raw)
  const get = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
  raw.write(`${get + get}GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n${get}`)
  const text = (await within(reply, 5000, 'pipelined replies')).toString()
  t.is(text.match(/HTTP\/1\.1 200 OK/g)?.length, 3) // the request after the close is not answered
  t.true(text.endsWith('Connection: close\r\n\r\nhello from tcpserver\n'))
})
