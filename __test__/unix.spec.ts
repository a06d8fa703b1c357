// Unix sockets: `unix:/path` listen and connect addresses. Echo with node:net clients (SHA-256
// of a few MiB), addresses with family 'unix', `unixPermissions`, stale socket files replaced
// while live sockets and regular files are refused, files removed at shutdown, outbound
// connect(), pipe() between a Unix client and a TCP upstream, sendFile(), and TLS.
// Serial: the pipe and sendFile checks compare server-wide counters.
import { createHash, randomBytes } from 'node:crypto'
import { linkSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { type Connection, connect as dial, listen } from 'tcpserver-rs'
import { collect, errCode, serve, sha256, within } from './helpers/index.js'

const MiB = 1 << 20
const dir = mkdtempSync(join(tmpdir(), 'tcpserver-unix-'))
let n = 0
const sockPath = (): string => join(dir, `s${++n}.sock`)
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

async function echo(conn: Connection): Promise<void> {
  for await (const chunk of conn) await conn.write(chunk)
}

/** A node:net client of the Unix socket at `path`. */
function unixClient(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path }, () => resolve(s))
    s.once('error', reject)
  })
}

/** Sends `data` (then FIN) and collects the whole reply. */
async function roundTrip(path: string, data: Buffer): Promise<Buffer> {
  const s = await unixClient(path)
  const reply = collect(s)
  s.end(data)
  return reply
}

test.serial(
  "echo of 4 MiB over a Unix socket; addresses have family 'unix'; the file goes at shutdown",
  async (t) => {
    const path = sockPath()
    const seen: unknown[] = []
    const server = await listen({
      address: `unix:${path}`,
      async handler(conn) {
        seen.push({ remote: conn.remote, local: conn.local })
        await echo(conn)
      },
    })
    t.deepEqual(server.addresses, [{ address: path, port: 0, family: 'unix' }])
    t.true(statSync(path).isSocket())
    const data = randomBytes(4 * MiB)
    const reply = await within(roundTrip(path, data), 20_000, 'echo')
    t.is(sha256(reply), sha256(data))
    t.deepEqual(seen, [
      { remote: { address: '', port: 0, family: 'unix' }, local: { address: path, port: 0, family: 'unix' } },
    ])
    await server.shutdown()
    t.throws(() => statSync(path), { code: 'ENOENT' }, 'the socket file is removed')
  },
)

test.serial('TCP and Unix addresses together; a closed connection keeps its Unix addresses', async (t) => {
  const path = sockPath()
  let closed: Connection | undefined
  const server = await serve(t, {
    address: ['127.0.0.1:0', `unix:${path}`],
    async handler(conn) {
      closed = conn
      await echo(conn)
    },
  })
  t.deepEqual(
    server.addresses.map((a) => a.family),
    ['IPv4', 'unix'],
  )
  t.is((await roundTrip(path, Buffer.from('ping'))).toString(), 'ping')
  await new Promise((r) => setTimeout(r, 50))
  // After CLOSED the addresses come from the event text.
  t.deepEqual(closed?.local, { address: path, port: 0, family: 'unix' })
  t.deepEqual(closed?.remote, { address: '', port: 0, family: 'unix' })
  t.deepEqual(
    [closed?.localAddress, closed?.localPort, closed?.localFamily, closed?.remoteFamily],
    [path, 0, 'unix', 'unix'],
  )
})

test.serial('unixPermissions sets the mode of the socket file', async (t) => {
  const path = sockPath()
  await serve(t, { address: `unix:${path}`, unixPermissions: 0o660, handler: echo })
  t.is(statSync(path).mode & 0o777, 0o660)
  const other = sockPath()
  await serve(t, { address: `unix:${other}`, unixPermissions: 0o600, handler: echo })
  t.is(statSync(other).mode & 0o777, 0o600)
  const e = await listen({ address: `unix:${sockPath()}`, unixPermissions: 0o10000 }).catch((x: unknown) => x)
  t.is(errCode(e), 'ERR_OUT_OF_RANGE')
})

test.serial('a stale socket file is replaced; a live socket and a regular file are EADDRINUSE', async (t) => {
  const path = sockPath()
  // A stale socket file, as a crashed server leaves it: node:net removes its file on close,
  // so keep a second hard link of the socket file and put it back afterwards.
  const crashed = net.createServer()
  await new Promise<void>((r) => crashed.listen(path, r))
  const keep = `${path}.keep`
  linkSync(path, keep)
  await new Promise<void>((r) => crashed.close(() => r()))
  renameSync(keep, path)
  t.true(statSync(path).isSocket(), 'a stale socket file is in place')

  const server = await serve(t, { address: `unix:${path}`, handler: echo })
  t.is((await roundTrip(path, Buffer.from('fresh'))).toString(), 'fresh')

  const live = await listen({ address: `unix:${path}` }).catch((e: unknown) => e)
  t.is(errCode(live), 'EADDRINUSE')
  t.is((live as { address?: string }).address, path)
  t.is((await roundTrip(path, Buffer.from('still'))).toString(), 'still', 'the live server is unharmed')

  const file = join(dir, 'regular')
  writeFileSync(file, 'keep me')
  const regular = await listen({ address: `unix:${file}` }).catch((e: unknown) => e)
  t.is(errCode(regular), 'EADDRINUSE')
  t.is(readFileSync(file, 'utf8'), 'keep me', 'a regular file is never removed')
  await server.shutdown()
})

test.serial('bad unix: addresses and proxyProtocol with Unix sockets are refused', async (t) => {
  for (const address of ['unix:', `unix:/${'x'.repeat(120)}`]) {
    const e = await listen({ address }).catch((x: unknown) => x)
    t.is(errCode(e), 'ERR_INVALID_ARG_VALUE', address)
  }
  const e = await listen({
    address: `unix:${sockPath()}`,
    proxyProtocol: { trusted: ['127.0.0.1'] },
  }).catch((x: unknown) => x)
  t.is(errCode(e), 'ERR_INVALID_ARG_VALUE')
  t.is((e as { option?: string }).option, 'proxyProtocol')
})

test.serial("connect('unix:/path') reaches a node:net Unix server", async (t) => {
  const path = sockPath()
  const upstream = net.createServer((s) => s.pipe(s))
  await new Promise<void>((r) => upstream.listen(path, r))
  t.teardown(() => upstream.close())
  const conn = await dial(`unix:${path}`)
  t.deepEqual(conn.remote, { address: path, port: 0, family: 'unix' })
  const data = randomBytes(MiB)
  const reply: Buffer[] = []
  const reading = (async () => {
    let got = 0
    while (got < data.length) {
      const chunk = await conn.read()
      if (chunk === null) break
      reply.push(chunk)
      got += chunk.length
    }
  })()
  await conn.write(data)
  await within(reading, 10_000, 'reply')
  t.is(sha256(Buffer.concat(reply)), sha256(data))
  conn.close()
  const refused = await dial(`unix:${join(dir, 'nobody.sock')}`).catch((e: unknown) => e)
  t.is(errCode(refused), 'ENOENT')
})

test.serial(
  'pipe() between a Unix client and a TCP upstream moves every byte (splice counters)',
  async (t) => {
    const upstream = net.createServer((s) => s.pipe(s))
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    t.teardown(() => upstream.close())
    const upPort = (upstream.address() as net.AddressInfo).port
    const path = sockPath()
    const server = await serve(t, {
      address: `unix:${path}`,
      async handler(conn) {
        const up = await dial(`127.0.0.1:${upPort}`)
        try {
          await conn.pipe(up)
        } finally {
          up.close()
        }
      },
    })
    const before = server.stats().dataPath
    const data = randomBytes(8 * MiB)
    const reply = await within(roundTrip(path, data), 20_000, 'piped echo')
    t.is(sha256(reply), sha256(data))
    await new Promise((r) => setTimeout(r, 50))
    const after = server.stats().dataPath
    t.is(after.bytesPiped - before.bytesPiped, 2 * data.length)
    if (process.platform === 'linux' && process.env.TCPSERVER_ZERO_COPY !== '0') {
      t.is(after.pipesSpliced - before.pipesSpliced, 1, 'splice(2) works on Unix sockets too')
    }
  },
)

test.serial('sendFile() over a Unix socket', async (t) => {
  const file = join(dir, 'payload')
  const data = randomBytes(3 * MiB + 17)
  writeFileSync(file, data)
  const path = sockPath()
  const server = await serve(t, {
    address: `unix:${path}`,
    async handler(conn) {
      await conn.sendFile(file)
    },
  })
  const before = server.stats().dataPath
  const s = await unixClient(path)
  const got = await within(collect(s), 10_000, 'file')
  t.is(createHash('sha256').update(got).digest('hex'), sha256(data))
  const after = server.stats().dataPath
  t.is(after.filesSent - before.filesSent, 1)
})

test.serial('TLS over a Unix socket, with a node:tls client and with connect()', async (t) => {
  const tlsDir = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))
  const ca = readFileSync(`${tlsDir}ca.crt`)
  const path = sockPath()
  await serve(t, {
    address: `unix:${path}`,
    tls: { cert: `${tlsDir}server.crt`, key: `${tlsDir}server.key` },
    handler: echo,
  })
  const s = tls.connect({ path, ca, servername: 'localhost' })
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', resolve)
    s.once('error', reject)
  })
  const reply = collect(s)
  s.end('over tls')
  t.is((await within(reply, 10_000, 'tls echo')).toString(), 'over tls')

  const conn = await dial(`unix:${path}`, { tls: { ca } })
  t.truthy(conn.tls)
  await conn.write('hello')
  t.is((await conn.read())?.toString(), 'hello')
  conn.close()
})
