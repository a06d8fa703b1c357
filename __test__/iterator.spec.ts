import test from 'ava'
import { listen } from 'tcpserver-rs'
import { collect, connect, portOf, within } from './helpers/index.ts'

test('for await (const conn of server) yields connections; breaking out shuts down', async (t) => {
  const server = await listen({ address: '127.0.0.1:0' })
  const port = portOf(server)
  const replies = Promise.all(
    [0, 1, 2].map(async (i) => {
      const c = await connect(port)
      c.end(`n${i}`)
      return (await collect(c)).toString()
    }),
  )
  let n = 0
  for await (const conn of server) {
    const data = await conn.read()
    await conn.write(`got ${data}`)
    await conn[Symbol.asyncDispose]()
    if (++n === 3) break
  }
  t.deepEqual((await within(replies, 5000, 'replies')).sort(), ['got n0', 'got n1', 'got n2'])
  await within(server.closed, 2000, 'closed after break')
  await t.throwsAsync(connect(port), { code: 'ECONNREFUSED' })
})

test('an iterator ends when the server shuts down', async (t) => {
  const server = await listen({ address: '127.0.0.1:0' })
  const it = server[Symbol.asyncIterator]()
  const next = it.next()
  await server.shutdown()
  t.deepEqual(await within(next, 2000, 'iterator end'), { value: undefined, done: true })
})
