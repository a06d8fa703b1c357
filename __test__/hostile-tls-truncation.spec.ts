// Issue 16, item 8: a bare FIN after TLS data read exactly like a close_notify, so a handler
// could not tell a complete message from one cut short (a truncation attack, a crashed peer).
// Now `conn.tls.closeNotify` / `conn.tls.truncated` say how the peer's input ended, checked
// against real peers: node:tls ending with end() (close_notify), node:tls whose TCP socket is
// ended underneath it, and openssl s_client killed.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { connect as tcpConnect } from 'tcpserver-rs'
import { channel, portOf, serve, within } from './helpers/index.ts'

const dir = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))
const cert = readFileSync(`${dir}server.crt`)
const key = readFileSync(`${dir}server.key`)
const ca = readFileSync(`${dir}ca.crt`)

interface Ending {
  data: string
  closeNotify: boolean
  truncated: boolean
  /** The flags while input was still open. */
  before: [boolean, boolean]
}

/** A TLS server whose handler reads to the end and reports how the input ended. */
async function endingServer(t: Parameters<typeof serve>[0]) {
  const endings = channel<Ending>(10_000)
  const server = await serve(t, {
    tls: { cert, key },
    async handler(conn) {
      const info = conn.tls
      if (!info) throw new Error('not TLS')
      const before: [boolean, boolean] = [info.closeNotify, info.truncated]
      let data = ''
      for await (const chunk of conn) data += chunk.toString()
      endings.push({ data, closeNotify: info.closeNotify, truncated: info.truncated, before })
    },
  })
  return { port: portOf(server), endings }
}

test('node:tls end() (close_notify): closeNotify true, truncated false', async (t) => {
  const { port, endings } = await endingServer(t)
  const client = tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost' })
  client.on('error', () => {})
  client.resume()
  client.once('secureConnect', () => client.end('a complete message'))
  const e = await endings.next()
  t.deepEqual(e, { data: 'a complete message', closeNotify: true, truncated: false, before: [false, false] })
  client.destroy()
})

test('node:tls whose TCP socket is ended underneath (bare FIN after TLS data): truncated true (was: read as a clean close)', async (t) => {
  const { port, endings } = await endingServer(t)
  const raw = net.connect(port, '127.0.0.1')
  const client = tls.connect({ socket: raw, ca, servername: 'localhost' })
  client.on('error', () => {})
  raw.on('error', () => {})
  client.resume()
  client.once('secureConnect', () => {
    // Written through TLS; once flushed, FIN on the TCP socket itself: no close_notify.
    client.write('a message cut short', () => raw.end())
  })
  const e = await endings.next()
  t.deepEqual(e, { data: 'a message cut short', closeNotify: false, truncated: true, before: [false, false] })
  client.destroy()
})

const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0

test('openssl s_client killed after sending data (FIN from the kernel, no alert): truncated true', async (t) => {
  if (!hasOpenssl) {
    t.pass('skipped: no openssl')
    return
  }
  const { port, endings } = await endingServer(t)
  const child = spawn(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-quiet'],
    {
      stdio: ['pipe', 'pipe', 'ignore'],
    },
  )
  t.teardown(() => child.kill('SIGKILL'))
  child.stdout.resume()
  child.stdin.write('sent by openssl\n')
  // Give it time to finish the handshake and send the line, then kill it: the kernel closes
  // its socket with a FIN and no TLS alert.
  await new Promise((r) => setTimeout(r, 1000))
  child.kill('SIGKILL')
  const e = await endings.next()
  t.is(e.data, 'sent by openssl\n')
  t.false(e.closeNotify)
  t.true(e.truncated)
})

test('outbound connect() with TLS sees it too: a server that ends with close_notify, and one that does not', async (t) => {
  const context = tls.createSecureContext({ cert, key })
  for (const clean of [true, false]) {
    const server = net.createServer((raw) => {
      raw.on('error', () => {})
      const s = new tls.TLSSocket(raw, { isServer: true, secureContext: context })
      s.on('error', () => {})
      // Answer the client's first bytes: the handshake is complete by then (OpenSSL sends no
      // close_notify for an end() while the TLS 1.3 server still waits for the Finished).
      s.once('data', () => {
        if (clean) s.end('bye')
        else s.write('bye', () => raw.end())
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    t.teardown(() => server.close())
    const port = (server.address() as net.AddressInfo).port
    const conn = await tcpConnect(`127.0.0.1:${port}`, { tls: { ca, servername: 'localhost' } })
    t.teardown(() => conn.close())
    await conn.write('hi')
    let data = ''
    for await (const chunk of conn) data += chunk.toString()
    t.is(data, 'bye')
    t.is(conn.tls?.closeNotify, clean, `clean=${clean}`)
    t.is(conn.tls?.truncated, !clean, `clean=${clean}`)
    conn.close()
  }
})

test('plain TCP connections have no TLS info to carry the flags', async (t) => {
  const seen = channel<unknown>()
  const server = await serve(t, {
    async handler(conn) {
      for await (const _ of conn);
      seen.push(conn.tls)
    },
  })
  const s = net.connect(portOf(server), '127.0.0.1')
  s.end('x')
  t.is(await within(seen.next(), 5000, 'handler'), null)
})
