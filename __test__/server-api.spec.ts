// The net.Server habits: server.address() in Node's shape, ref()/unref() deciding whether an
// idle server keeps the process alive (checked in child processes that must exit by
// themselves), and close() stopping new clients while open ones finish.
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { listen } from 'tcpserver-rs'
import { collect, connect, deferred, errCode, portOf, serve, sleep, within } from './helpers/index.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Runs an ES module snippet in a child Node (importing the package); resolves its exit and stdout. */
function child(code: string): { exited: Promise<number | string>; line: Promise<string>; kill: () => void } {
  const c = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  const line = new Promise<string>((resolve) => {
    c.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s
      if (out.includes('\n')) resolve(out.split('\n')[0] as string)
    })
  })
  const exited = new Promise<number | string>((resolve) =>
    c.once('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  )
  return { exited, line, kill: () => c.kill('SIGKILL') }
}

test('address(): the first address as net.Server#address() gives it; a path for a Unix socket; null once stopped', async (t) => {
  const server = await listen({ address: ['127.0.0.1:0', '[::1]:0'] })
  const port = portOf(server)
  const node = net.createServer().listen(0, '127.0.0.1')
  await new Promise((r) => node.once('listening', r))
  t.teardown(() => node.close())
  const theirs = node.address() as net.AddressInfo
  t.deepEqual(server.address(), { address: '127.0.0.1', family: theirs.family, port })
  t.deepEqual(Object.keys(server.address() as object).sort(), Object.keys(theirs).sort())
  await server.shutdown()
  t.is(server.address(), null)
  const path = join(mkdtempSync(join(tmpdir(), 'server-api-')), 's.sock')
  const unix = await serve(t, { address: `unix:${path}` })
  t.is(unix.address(), path)
})

test('unref(): an idle server does not keep the process alive; the child exits by itself', async (t) => {
  const c = child(`
    import { listen } from 'tcpserver-rs'
    const server = await listen({ address: '127.0.0.1:0', handler() {} })
    server.unref()
    console.log('listening')
  `)
  t.teardown(c.kill)
  t.is(await within(c.line, 10_000, 'child listening'), 'listening')
  t.is(await within(c.exited, 10_000, 'unref()ed child exits by itself'), 0)
})

test('a running server keeps the process alive; ref() after unref() too', async (t) => {
  for (const code of [
    `const server = await listen({ address: '127.0.0.1:0' })`,
    `const server = await listen({ address: '127.0.0.1:0' }); server.unref().ref()`,
  ]) {
    const c = child(`import { listen } from 'tcpserver-rs'\n${code}\nconsole.log('listening')`)
    t.teardown(c.kill)
    t.is(await within(c.line, 10_000, 'child listening'), 'listening')
    const early = await Promise.race([c.exited, sleep(1500).then(() => 'still running')])
    t.is(early, 'still running', code)
    c.kill()
  }
})

test('unref(): an open connection still keeps the process alive (as a net.Socket does), until it closes', async (t) => {
  const c = child(`
    import { listen } from 'tcpserver-rs'
    const server = await listen({
      address: '127.0.0.1:0',
      async handler(conn) { for await (const chunk of conn) await conn.write(chunk) },
    })
    server.unref()
    // Something else keeps the process alive for a second, long enough for the client to come.
    setTimeout(() => {}, 1000)
    console.log(server.address().port)
  `)
  t.teardown(c.kill)
  const port = Number(await within(c.line, 10_000, 'child port'))
  const socket = await connect(port)
  const echoed = new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())))
  socket.write('ping')
  t.is(await within(echoed, 5000, 'echo'), 'ping')
  // The other handle is gone by now: only the connection holds the process.
  const early = await Promise.race([c.exited, sleep(1500).then(() => 'still running')])
  t.is(early, 'still running', 'alive while the connection is open')
  socket.end()
  t.is(await within(c.exited, 10_000, 'child exits once the connection closed'), 0)
})

test('close(): new clients are refused at once, open connections finish; the callback as in Node', async (t) => {
  const release = deferred()
  const server = await listen({
    address: '127.0.0.1:0',
    async handler(conn) {
      await release.promise
      await conn.write('finished')
    },
  })
  const port = portOf(server)
  const socket = await connect(port)
  const reply = collect(socket)
  await sleep(50)
  const calls: unknown[] = []
  const closing = server.close((err) => calls.push(err))
  const refused = await new Promise<unknown>((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => resolve('connected'))
    s.once('error', (e) => resolve(errCode(e)))
  })
  t.is(refused, 'ECONNREFUSED')
  release.resolve()
  t.is((await within(reply, 5000, 'open connection finishes')).toString(), 'finished')
  t.deepEqual(await within(closing, 5000, 'close() resolves'), { completed: 1, forced: 0 })
  t.deepEqual(calls, [undefined])
  // Already stopped: Node's ERR_SERVER_NOT_RUNNING for the callback.
  const again = deferred<unknown>()
  await server.close((err) => again.resolve(err))
  t.is(errCode(await again.promise), 'ERR_SERVER_NOT_RUNNING')
})
