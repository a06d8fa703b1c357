// The README's "From node:net" table, row by row: each row's tcpserver column is exercised
// against a real node:net (or node:tls) client. The first test reads the table itself, so a row
// added to the README without a test here (or a test whose row was removed) fails the suite.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'
import test from 'ava'
import { type Connection, connect as dial, isTcpServerError, listen } from 'tcpserver-rs'
import {
  collect,
  connect,
  connectHalfOpen,
  deferred,
  errCode,
  portOf,
  roundTrip,
  serve,
  sha256,
  sleep,
  tlsRoundTrip,
  within,
} from './helpers/index.js'

const LISTEN_FD_CHILD = fileURLToPath(new URL('./fixtures/listen-fd-child.mjs', import.meta.url))
const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const tlsFile = (name: string): string => new URL(`./fixtures/tls/${name}`, import.meta.url).pathname

/** The first column of every row of the "From node:net" table. */
function migrationRows(): string[] {
  const section = README.split('\n## From `node:net`\n')[1]?.split('\n## ')[0] ?? ''
  return section
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| `node:net`') && !l.startsWith('| ---'))
    .map((l) => (l.split(' | ')[0] as string).slice(2))
}

const echo = async (conn: Connection): Promise<void> => {
  for await (const chunk of conn) await conn.write(chunk)
}

type RowTest = (t: ExecutionContext) => Promise<void>

const rows: Record<string, RowTest> = {
  '`net.createServer(onConnection).listen(port, host)`': async (t) => {
    const server = await listen({ address: '127.0.0.1:0', handler: echo })
    t.teardown(() => server.halt())
    t.is(
      (await roundTrip(portOf(server), 'one handler per connection')).toString(),
      'one handler per connection',
    )
  },
  '`tls.createServer({ key, cert }, ...)`': async (t) => {
    const server = await serve(t, {
      tls: { cert: tlsFile('server.crt'), key: tlsFile('server.key') },
      handler: echo,
    })
    t.is((await tlsRoundTrip(portOf(server), 'over TLS')).toString(), 'over TLS')
  },
  "`socket.on('data', chunk => ...)`": async (t) => {
    const server = await serve(t, {
      async handler(conn) {
        const first = await conn.read()
        await conn.write('|') // the client sends the rest only now: two separate chunks
        const rest: Buffer[] = []
        for await (const chunk of conn) rest.push(chunk)
        await conn.write(`${first?.length ?? 0}+${Buffer.concat(rest).length}`)
      },
    })
    const socket = await connect(portOf(server))
    const got = collect(socket)
    socket.write('abc')
    await within(new Promise((r) => socket.once('data', r)), 5000, 'the first read')
    socket.end('defgh')
    t.is((await within(got, 5000, 'reply')).toString(), '|3+5')
  },
  "`if (!socket.write(buf)) await once(socket, 'drain')`": async (t) => {
    const data = randomBytes(4 * 1024 * 1024)
    const server = await serve(t, {
      async handler(conn) {
        for (let i = 0; i < data.length; i += 65536) await conn.write(data.subarray(i, i + 65536))
      },
    })
    const socket = await connect(portOf(server))
    t.is(sha256(await within(collect(socket), 10_000, 'download')), sha256(data))
  },
  '`socket.end(data)`, `socket.destroy()`': async (t) => {
    const server = await serve(t, {
      async handler(conn) {
        const what = (await conn.read())?.toString()
        if (what === 'end') conn.end('bye')
        else conn.close()
        await conn.closed
      },
    })
    const a = await connect(portOf(server))
    const gotA = collect(a)
    a.write('end')
    t.is((await within(gotA, 5000, "end('bye')")).toString(), 'bye')
    const b = await connect(portOf(server))
    const gotB = collect(b)
    b.write('close')
    t.is((await within(gotB, 5000, 'close()')).length, 0)
  },
  "`socket.on('end')` with `allowHalfOpen`": async (t) => {
    const server = await serve(t, {
      async handler(conn) {
        const chunks: Buffer[] = []
        for (let c = await conn.read(); c !== null; c = await conn.read()) chunks.push(c)
        await conn.write(`after your FIN: ${Buffer.concat(chunks)}`)
      },
    })
    const socket = await connectHalfOpen(portOf(server))
    const got = collect(socket)
    socket.end('question')
    t.is((await within(got, 5000, 'answer after FIN')).toString(), 'after your FIN: question')
  },
  '`socket.setTimeout(ms, cb)`': async (t) => {
    const seen = deferred<unknown[]>()
    const server = await serve(t, {
      idleTimeout: 300,
      readTimeout: 100,
      writeTimeout: 5000,
      async handler(conn) {
        const read = await conn.read().catch((e: unknown) => errCode(e))
        await conn.closed
        seen.resolve([read, conn.readTimeout, conn.writeTimeout, errCode(conn.error)])
      },
    })
    const socket = await connect(portOf(server))
    t.deepEqual(await within(seen.promise, 5000, 'timeouts'), [
      'ETIMEDOUT',
      100,
      5000,
      'ERR_TCPSERVER_IDLE_TIMEOUT',
    ])
    socket.destroy()
  },
  '`server.maxConnections`': async (t) => {
    const server = await serve(t, {
      maxConnections: 1,
      onLimit: 'refuse',
      maxConnectionsPerIp: 5,
      async handler(conn) {
        await conn.read()
      },
    })
    const first = await connect(portOf(server))
    await sleep(50)
    const second = await connect(portOf(server))
    await within(
      collect(second).catch(() => Buffer.alloc(0)),
      5000,
      'refused client closed',
    )
    t.is(server.stats().refusedBy.maxConnections, 1)
    first.destroy()
  },
  '`server.close(cb)` plus destroying sockets by hand': async (t) => {
    const server = await listen({
      address: '127.0.0.1:0',
      async handler(conn) {
        await conn.read()
      },
    })
    const socket = await connect(portOf(server))
    const closed = collect(socket).catch(() => Buffer.alloc(0))
    await sleep(50)
    const result = await within(server.shutdown({ timeout: 100 }), 5000, 'shutdown with a deadline')
    t.deepEqual(result, { completed: 0, forced: 1 })
    await within(closed, 5000, 'client closed by the deadline')
    // server.close(cb) as in Node: waits for open connections, then calls back.
    const other = await listen({ address: '127.0.0.1:0', handler: echo })
    const called = deferred<unknown>()
    other.close((err) => called.resolve(err))
    t.is(await within(called.promise, 5000, 'close callback'), undefined)
  },
  '`server.address()`, `server.unref()`, `server.ref()`': async (t) => {
    const server = await serve(t, { handler: echo })
    t.deepEqual(server.address(), { address: '127.0.0.1', family: 'IPv4', port: portOf(server) })
    t.is(server.unref(), server)
    t.is(server.ref(), server)
    t.is((await roundTrip(portOf(server), 'still serving')).toString(), 'still serving')
  },
  '`server.getConnections(cb)`': async (t) => {
    const server = await serve(t, {
      async handler(conn) {
        await conn.read()
      },
    })
    const sockets = await Promise.all([connect(portOf(server)), connect(portOf(server))])
    const deadline = Date.now() + 5000
    while (server.activeConnections < 2 && Date.now() < deadline) await sleep(5)
    t.is(server.activeConnections, 2)
    t.is(server.stats().active, 2)
    for (const s of sockets) s.destroy()
  },
  '`a.pipe(b); b.pipe(a)`': async (t) => {
    const upstream = await serve(t, { handler: echo })
    const proxy = await serve(t, {
      async handler(conn) {
        const up = await dial(`127.0.0.1:${portOf(upstream)}`)
        try {
          await conn.pipe(up)
        } finally {
          up.close()
        }
      },
    })
    t.is((await roundTrip(portOf(proxy), 'through the pipe')).toString(), 'through the pipe')
  },
  '`fs.createReadStream(path).pipe(socket)`': async (t) => {
    const file = join(mkdtempSync(join(tmpdir(), 'migration-')), 'f.bin')
    const data = randomBytes(300_000)
    writeFileSync(file, data)
    const server = await serve(t, {
      async handler(conn) {
        await conn.sendFile(file, { offset: 1000, length: 200_000 })
      },
    })
    const socket = await connect(portOf(server))
    t.is(sha256(await within(collect(socket), 5000, 'file')), sha256(data.subarray(1000, 201_000)))
  },
  '`socket.remoteAddress`, `socket.remotePort`, `socket.remoteFamily`, `socket.localAddress`, `socket.localPort`, `socket.address()`':
    async (t) => {
      const seen = deferred<unknown[]>()
      const server = await serve(t, {
        async handler(conn) {
          seen.resolve([
            `${conn.remoteAddress}:${conn.remotePort}`,
            conn.remoteFamily,
            conn.localAddress,
            conn.localPort,
            conn.address(),
            conn.remote,
            conn.local,
          ])
        },
      })
      const socket = await connect(portOf(server))
      const [remote, family, localAddress, localPort, address, remoteObj, localObj] = await within(
        seen.promise,
        5000,
        'handler',
      )
      t.is(remote, `${socket.localAddress}:${socket.localPort}`)
      t.is(family, 'IPv4')
      t.is(localAddress, socket.remoteAddress)
      t.is(localPort, socket.remotePort)
      t.deepEqual(address, { address: '127.0.0.1', port: socket.remotePort, family: 'IPv4' })
      t.deepEqual(remoteObj, { address: '127.0.0.1', port: socket.localPort, family: 'IPv4' })
      t.deepEqual(localObj, address)
      socket.destroy()
    },
  '`net.connect(port, host)`': async (t) => {
    const server = await serve(t, { handler: echo })
    const conn = await dial(`127.0.0.1:${portOf(server)}`, { timeout: 5000 })
    await conn.write('outbound')
    t.is((await within(conn.read(), 5000, 'echo'))?.toString(), 'outbound')
    conn.close()
  },
  '`net.connect({ port, host, signal })`': async (t) => {
    const aborted = await dial('127.0.0.1:9', { signal: AbortSignal.abort() }).catch((e: unknown) => e)
    t.like(aborted, { name: 'AbortError', code: 'ABORT_ERR' })
  },
  "writing from callbacks after `'connection'` returned": async (t) => {
    const late = deferred<unknown>()
    const kept = await serve(t, {
      handler(conn) {
        // Kept open: the handler's promise settles when the callback has written.
        return new Promise<void>((resolve) => {
          setTimeout(() => {
            void conn.write('from a callback').then(resolve)
          }, 20)
        })
      },
    })
    t.is((await within(collect(await connect(portOf(kept))), 5000, 'reply')).toString(), 'from a callback')
    // Not kept: this handler returns at once, so its later write is refused.
    const refused = await serve(t, {
      handler(conn) {
        setTimeout(() => conn.write('too late').catch((e: unknown) => late.resolve(e)), 20)
      },
    })
    await within(collect(await connect(portOf(refused))), 5000, 'closed at once')
    t.is(errCode(await within(late.promise, 5000, 'late write')), 'ERR_TCPSERVER_HANDLER_SETTLED')
  },
  'code written for Node streams': async (t) => {
    const server = await serve(t, {
      async handler(conn) {
        const duplex = conn.toDuplex()
        await pipeline(duplex, duplex)
      },
    })
    t.is((await roundTrip(portOf(server), 'via a Duplex')).toString(), 'via a Duplex')
  },
  '`server.listen({ fd })`, `server.listen(path)`': async (t) => {
    const path = join(mkdtempSync(join(tmpdir(), 'migration-')), 's.sock')
    const server = await serve(t, { address: `unix:${path}`, handler: echo })
    t.deepEqual(server.addresses[0], { address: path, port: 0, family: 'unix' })
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(path, () => resolve(s))
      s.once('error', reject)
    })
    const got = collect(socket)
    socket.end('unix')
    t.is((await within(got, 5000, 'unix echo')).toString(), 'unix')
    // { fd }: a listening socket made by node:net, handed to a child process (its descriptor
    // 3), which serves it with tcpserver. Not in this process: listen({ fd }) takes the
    // descriptor over and closes it at shutdown, and closing one that libuv still watches here
    // would corrupt libuv's state for the next socket given that number (a connect() elsewhere
    // in this file then never completed).
    const donor = net.createServer().listen(0, '127.0.0.1')
    await new Promise((r) => donor.once('listening', r))
    const port = (donor.address() as net.AddressInfo).port
    const fd = (donor as unknown as { _handle: { fd: number } })._handle.fd
    const child = spawn(process.execPath, [LISTEN_FD_CHILD, '3', 'inherited'], {
      stdio: ['pipe', 'pipe', 'inherit', fd],
    })
    t.teardown(() => child.kill('SIGKILL'))
    // The child has its own copy of the socket now: this process stops accepting on it.
    await new Promise((r) => donor.close(r))
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    const [line] = (await within(once(lines, 'line'), 10_000, 'child ready')) as [string]
    t.like(JSON.parse(line), { ready: true })
    t.is((await within(roundTrip(port, 'echo'), 10_000, 'inherited echo')).toString(), 'inherited\necho')
  },
}

test('every row of the README table "From node:net" has a test here, and every test a row', (t) => {
  t.deepEqual(migrationRows().sort(), Object.keys(rows).sort())
})

for (const [row, run] of Object.entries(rows)) test(`From node:net: ${row}`, run)

test('From node:net: err.code checks carry over (EADDRINUSE like node:net)', async (t) => {
  const server = await serve(t, { handler: echo })
  const ours = await listen({ address: `127.0.0.1:${portOf(server)}`, reusePort: false }).catch(
    (e: unknown) => e,
  )
  const node = await new Promise<unknown>((resolve) => {
    const s = net.createServer().listen(portOf(server), '127.0.0.1')
    s.once('error', resolve)
    s.once('listening', () => s.close(() => resolve(null)))
  })
  t.true(isTcpServerError(ours))
  t.is(errCode(ours), errCode(node))
})
