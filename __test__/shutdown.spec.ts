import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { type Connection, listen } from 'tcpserver-rs'
import { collect, connect, portOf, serve, sleep, until, within } from './helpers/index.ts'

test('shutdown() without a deadline waits for running handlers, which finish their writes', async (t) => {
  const server = await serve(t, {
    async handler(conn) {
      await sleep(300)
      await conn.write('finished')
    },
  })
  const client = await connect(portOf(server))
  const received = collect(client)
  await until(() => server.activeConnections === 1, 2000, 'the connection to be open')
  const result = await within(server.shutdown(), 5000, 'shutdown')
  t.deepEqual(result, { completed: 1, forced: 0 })
  t.is((await received).toString(), 'finished')
})

test('shutdown({ timeout }) closes what is still open at the deadline', async (t) => {
  let handlerError: unknown
  const server = await serve(t, {
    async handler(conn) {
      try {
        await conn.read() // the client never sends: this waits until the forced close
      } catch (e) {
        handlerError = e
      }
    },
  })
  const client = await connect(portOf(server))
  const closed = new Promise((r) => client.once('close', r))
  await until(() => server.activeConnections === 1, 2000, 'the connection to be open')
  const started = Date.now()
  const result = await within(server.shutdown({ timeout: 200 }), 5000, 'shutdown')
  t.true(Date.now() - started >= 180, 'waited for the deadline')
  t.deepEqual(result, { completed: 0, forced: 1 })
  await within(closed, 2000, 'client close')
  await until(() => handlerError !== undefined, 2000, 'the handler to see the forced close')
  t.is((handlerError as { code?: string }).code, 'ERR_TCPSERVER_SHUTDOWN')
})

test('shutdown resolves early when every connection finished before the deadline', async (t) => {
  const server = await serve(t, {
    async handler(conn) {
      await conn.read()
    },
  })
  const client = await connect(portOf(server))
  await until(() => server.activeConnections === 1)
  const done = server.shutdown({ timeout: 10_000 })
  client.end()
  const started = Date.now()
  t.deepEqual(await within(done, 3000, 'shutdown'), { completed: 1, forced: 0 })
  t.true(Date.now() - started < 3000)
})

test('halt() closes every connection at once', async (t) => {
  const server = await serve(t, {
    async handler(conn) {
      await conn.closed
    },
  })
  const clients = await Promise.all([connect(portOf(server)), connect(portOf(server))])
  await until(() => server.activeConnections === 2)
  const closes = clients.map((c) => new Promise((r) => c.once('close', r)))
  const result = await within(server.halt(), 2000, 'halt')
  t.is(result.forced, 2)
  await within(Promise.all(closes), 2000, 'client closes')
})

test('the port refuses connections as soon as shutdown() is called', async (t) => {
  const server = await listen({ address: '127.0.0.1:0', loops: 2, handler: async () => {} })
  const port = portOf(server)
  void server.shutdown()
  await t.throwsAsync(connect(port), { code: 'ECONNREFUSED' })
  await server.closed
})

test('Symbol.asyncDispose shuts down gracefully', async (t) => {
  let port = 0
  {
    await using server = await listen({ address: '127.0.0.1:0', handler: async () => {} })
    port = portOf(server)
  }
  await t.throwsAsync(connect(port), { code: 'ECONNREFUSED' })
})

test('the signal option shuts the server down', async (t) => {
  const ac = new AbortController()
  const server = await listen({ address: '127.0.0.1:0', signal: ac.signal, handler: async () => {} })
  ac.abort()
  t.deepEqual(await within(server.closed, 2000, 'closed'), { completed: 0, forced: 0 })
  const aborted = await listen({ address: '127.0.0.1:0', signal: AbortSignal.abort() })
  await within(aborted.closed, 2000, 'closed after an already-aborted signal')
})

test('maxAcceptConnections: after N connections the server shuts down by itself', async (t) => {
  const served: number[] = []
  const server = await serve(t, {
    maxAcceptConnections: 3,
    async handler(conn: Connection) {
      served.push(conn.id)
      await conn.write('hi')
    },
  })
  const port = portOf(server)
  for (let i = 0; i < 3; i++) t.is((await collect(await connect(port))).toString(), 'hi')
  const result = await within(server.closed, 3000, 'self-shutdown')
  t.is(result.forced, 0)
  t.is(server.acceptedConnections, 3)
  t.is(served.length, 3)
  await t.throwsAsync(connect(port), { code: 'ECONNREFUSED' })
})

test('maxConnections: the next client waits in the backlog until a slot frees', async (t) => {
  const order: string[] = []
  const server = await serve(t, {
    maxConnections: 1,
    async handler(conn) {
      const first = (await conn.read())?.toString() ?? ''
      order.push(`start ${first}`)
      if (first === 'A') await sleep(400)
      order.push(`end ${first}`)
      await conn.write('ok')
    },
  })
  const a = await connect(portOf(server))
  a.write('A')
  await until(() => order.length === 1, 2000, 'A to start')
  const b = await connect(portOf(server)) // completes in the kernel backlog
  b.write('B')
  await sleep(150)
  t.deepEqual(order, ['start A'], 'B is not handled while A holds the only slot')
  await within(Promise.all([collect(a), collect(b)]), 5000, 'both answers')
  t.deepEqual(order, ['start A', 'end A', 'start B', 'end B'])
})

test('a Node process exits by itself after shutdown (nothing keeps the loop alive)', async (t) => {
  const child = spawn(process.execPath, [
    fileURLToPath(new URL('./fixtures/listen-child.mjs', import.meta.url)),
    JSON.stringify({ address: '127.0.0.1:0' }),
  ])
  const code = await within(new Promise((r) => child.once('exit', r)), 10_000, 'child exit')
  t.is(code, 0)
})
