// Errors shaped like Node's: connect() failures compared field by field with what node:net gives
// for the same target (code, errno, syscall, address, port, message), errors that arrive as
// events (a reset seen by read()), connect({ signal }) as net.connect({ signal }), and unknown
// connect() options refused like listen()'s.
import { mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { connect as dial, listen } from 'tcpserver-rs'
import { blackHole, connect, deferred, errCode, portOf, serve, sleep, within } from './helpers/index.js'

/** The error node:net gives for `net.connect(...args)`. */
function nodeConnectError(...args: [number, string] | [string]): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const s = (net.connect as (...a: unknown[]) => net.Socket)(...args)
    s.once('connect', () => {
      s.destroy()
      resolve({ connected: true })
    })
    s.once('error', (e) => resolve(e as unknown as Record<string, unknown>))
  })
}

const fields = (e: unknown): Record<string, unknown> => {
  const x = e as Record<string, unknown>
  return {
    class: (e as Error).constructor.name,
    code: x.code,
    errno: x.errno,
    syscall: x.syscall,
    address: x.address,
    port: x.port,
    message: (e as Error).message,
  }
}

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => s.once('listening', r))
  const { port } = s.address() as net.AddressInfo
  await new Promise((r) => s.close(r))
  return port
}

test('connect() refused: the same code, errno, syscall, address, port and message as net.connect', async (t) => {
  const port = await closedPort()
  const ours = await dial(`127.0.0.1:${port}`).catch((e: unknown) => e)
  const theirs = await nodeConnectError(port, '127.0.0.1')
  t.deepEqual(fields(ours), fields(theirs))
  t.is((ours as Error).message, `connect ECONNREFUSED 127.0.0.1:${port}`)
  // The { host, port } form and a name that resolves say the same, with the address tried.
  t.deepEqual(fields(await dial({ host: 'localhost', port }).catch((e: unknown) => e)).syscall, 'connect')
})

test('connect() to a missing Unix socket: connect ENOENT <path>, as net.connect(path)', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'node-errors-')), 'none.sock')
  const ours = await dial(`unix:${path}`).catch((e: unknown) => e)
  const theirs = await nodeConnectError(path)
  t.deepEqual(fields(ours), fields(theirs))
  t.is((ours as Error).message, `connect ENOENT ${path}`)
})

test('listen() on a taken port: EADDRINUSE with errno, syscall, address and port like node:net', async (t) => {
  const taken = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => taken.once('listening', r))
  t.teardown(() => taken.close())
  const { port } = taken.address() as net.AddressInfo
  const err = await listen({ address: `127.0.0.1:${port}`, reusePort: false }).catch((e: unknown) => e)
  const f = fields(err)
  t.like(f, { class: 'Error', code: 'EADDRINUSE', errno: -98, address: '127.0.0.1', port })
  t.true(['bind', 'listen'].includes(f.syscall as string), String(f.syscall))
  t.is(f.message, `${f.syscall} EADDRINUSE 127.0.0.1:${port}`)
})

test('a reset seen by read() is read ECONNRESET with errno, as on a net.Socket', async (t) => {
  const seen = deferred<unknown>()
  const server = await serve(t, {
    async handler(conn) {
      seen.resolve(await conn.read().catch((e: unknown) => e))
    },
  })
  const socket = await connect(portOf(server))
  await sleep(20)
  socket.resetAndDestroy()
  const f = fields(await within(seen.promise, 5000, 'read() rejects'))
  t.like(f, { class: 'Error', code: 'ECONNRESET', errno: -104, syscall: 'read', message: 'read ECONNRESET' })
})

test('connect({ signal }): an aborted signal rejects with AbortError (ABORT_ERR) like net.connect', async (t) => {
  const before = AbortSignal.abort(new Error('stop'))
  const pre = await dial('127.0.0.1:9', { signal: before }).catch((e: unknown) => e)
  t.like(pre, { name: 'AbortError', code: 'ABORT_ERR', message: 'The operation was aborted' })
  t.is((pre as { cause?: unknown }).cause, before.reason)
  // Node's own, for comparison.
  const theirs = await new Promise<Error>((resolve) =>
    net.connect({ port: 9, host: '127.0.0.1', signal: before }).once('error', resolve),
  )
  t.is(theirs.name, 'AbortError')
  t.is((theirs as { code?: string }).code, (pre as { code?: string }).code)
})

test('connect({ signal }): aborting a pending attempt rejects it at once; a completed connect is unaffected', async (t) => {
  // A listener whose accept queue is full: the kernel drops the SYN, the attempt stays pending.
  const port = await blackHole(t)
  if (port === null) {
    t.log('skipped: this kernel does not drop SYNs for a full accept queue')
    return t.pass()
  }
  const controller = new AbortController()
  const started = Date.now()
  const attempt = dial(`127.0.0.1:${port}`, { signal: controller.signal }).then(
    (c) => {
      c.close()
      return 'connected'
    },
    (e: unknown) => e,
  )
  setTimeout(() => controller.abort(), 100)
  const result = await within(attempt, 5000, 'aborted connect settles')
  t.is(errCode(result), 'ABORT_ERR')
  t.true(Date.now() - started < 3000)
  // A signal on a connect that completes changes nothing afterwards.
  const echo = await serve(t, {
    async handler(conn) {
      for await (const c of conn) await conn.write(c)
    },
  })
  const c2 = new AbortController()
  const conn = await dial(`127.0.0.1:${portOf(echo)}`, { signal: c2.signal })
  c2.abort()
  await conn.write('still open')
  t.is((await within(conn.read(), 5000, 'echo'))?.toString(), 'still open')
  conn.close()
})

test('connect() refuses unknown options and bad types as listen() does', async (t) => {
  const unknown = await dial('127.0.0.1:9', { timout: 5 } as never).catch((e: unknown) => e)
  const theirs = await listen({ address: '127.0.0.1:0', timout: 5 } as never).catch((e: unknown) => e)
  t.like(unknown, { code: 'ERR_INVALID_ARG_VALUE', option: 'timout' })
  t.like(theirs, { code: 'ERR_INVALID_ARG_VALUE', option: 'timout' })
  t.is((unknown as Error).message, (theirs as Error).message)
  t.is((unknown as Error).message, "The property 'options.timout' is not a known option. Received 5")
  const signal = await dial('127.0.0.1:9', { signal: 'x' as never }).catch((e: unknown) => e)
  t.like(signal, { code: 'ERR_INVALID_ARG_TYPE', option: 'signal' })
  t.true(signal instanceof TypeError)
})

test('a read past readTimeout is read ETIMEDOUT with errno, like a socket timeout error', async (t) => {
  const seen = deferred<unknown>()
  const server = await serve(t, {
    readTimeout: 50,
    async handler(conn) {
      seen.resolve(await conn.read().catch((e: unknown) => e))
    },
  })
  const socket = await connect(portOf(server))
  t.teardown(() => socket.destroy())
  const f = fields(await within(seen.promise, 5000, 'read() times out'))
  t.like(f, { class: 'Error', code: 'ETIMEDOUT', errno: -110, syscall: 'read', message: 'read ETIMEDOUT' })
})

test("a write after the peer reset rejects with a system error in Node's shape (read ECONNRESET, or write EPIPE if the write met it)", async (t) => {
  const seen = deferred<unknown>()
  const server = await serve(t, {
    async handler(conn) {
      await conn.read()
      await sleep(100) // the reset has arrived
      let err: unknown
      for (let i = 0; i < 100 && err === undefined; i++) {
        err = await conn.write(Buffer.alloc(65536)).then(
          () => undefined,
          (e: unknown) => e,
        )
      }
      seen.resolve(err)
    },
  })
  const socket = await connect(portOf(server))
  socket.write('x')
  await sleep(20)
  socket.resetAndDestroy()
  const f = fields(await within(seen.promise, 5000, 'write fails'))
  t.true(['EPIPE', 'ECONNRESET'].includes(f.code as string), String(f.code))
  t.true(['read', 'write'].includes(f.syscall as string), String(f.syscall))
  t.is(f.message, `${f.syscall} ${f.code}`)
  t.is(typeof f.errno, 'number')
})

test("sendFile() of a missing file: ENOENT as node:fs words it (errno, syscall 'open', path)", async (t) => {
  const seen = deferred<unknown>()
  const missing = '/nonexistent/tcpserver-missing.bin'
  const server = await serve(t, {
    async handler(conn) {
      seen.resolve(await conn.sendFile(missing).catch((e: unknown) => e))
    },
  })
  const socket = await connect(portOf(server))
  t.teardown(() => socket.destroy())
  const ours = (await within(seen.promise, 5000, 'sendFile rejects')) as Record<string, unknown>
  const theirs = (await import('node:fs/promises').then((fs) =>
    fs.open(missing).catch((e: unknown) => e),
  )) as Record<string, unknown>
  for (const k of ['code', 'errno', 'syscall', 'path', 'message']) t.is(ours[k], theirs[k], k)
})
