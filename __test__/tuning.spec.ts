// Socket tuning, shown by its effect: a second process binding the same port (SO_REUSEPORT),
// a silent client never reaching the handler (TCP_DEFER_ACCEPT), and the kernel's
// TcpExtTCPFastOpenPassive counter rising for a curl --tcp-fastopen client (TCP_FASTOPEN).
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { promisify } from 'node:util'
import test from 'ava'
import {
  connect,
  inPrivateNetns,
  listenInChild,
  portOf,
  serve,
  sleep,
  until,
  within,
} from './helpers/index.ts'

test('SO_REUSEPORT: a second process binds the same port; without it, EADDRINUSE', async (t) => {
  const server = await serve(t, { reusePort: true, handler: async () => {} })
  const port = portOf(server)
  t.deepEqual(await listenInChild({ address: `127.0.0.1:${port}`, reusePort: true }), { ok: true, port })
  t.deepEqual(await listenInChild({ address: `127.0.0.1:${port}`, reusePort: false }), { code: 'EADDRINUSE' })
})

test('TCP_DEFER_ACCEPT: a client that sends nothing does not reach the handler', async (t) => {
  let handled = 0
  const server = await serve(t, {
    deferAccept: 3,
    async handler(conn) {
      handled++
      await conn.write('hello')
    },
  })
  const silent = await connect(portOf(server))
  await sleep(800)
  t.is(handled, 0, 'not handed over while silent (within the 3 s defer time)')
  const got = new Promise<Buffer>((r) => silent.once('data', r))
  silent.write('x')
  t.is((await within(got, 2000, 'answer after the first byte')).toString(), 'hello')
  t.is(handled, 1)
  silent.destroy()
})

const hasCurl = spawnSync('sh', ['-c', 'command -v curl && command -v nstat']).status === 0

test('TCP_FASTOPEN: TcpExtTCPFastOpenPassive rises for a client using MSG_FASTOPEN', async (t) => {
  if (!inPrivateNetns || !hasCurl) {
    t.log('skipped: needs root, a private network namespace (scripts/test-js.sh) and curl + nstat')
    t.pass()
    return
  }
  // Server-side TFO needs bit 0x2 of the sysctl; inside this namespace only.
  writeFileSync('/proc/sys/net/ipv4/tcp_fastopen', '3')
  const server = await serve(t, {
    fastOpen: 256,
    async handler(conn) {
      const req = await conn.read()
      if (req) await conn.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
    },
  })
  const counter = (): number => {
    const out = execFileSync('nstat', ['-az', 'TcpExtTCPFastOpenPassive'], { encoding: 'utf8' })
    return Number(/TcpExtTCPFastOpenPassive\s+(\d+)/.exec(out)?.[1] ?? Number.NaN)
  }
  const before = counter()
  const url = `http://127.0.0.1:${portOf(server)}/`
  // The first connection fetches a TFO cookie; later ones carry data in the SYN.
  // (curl runs asynchronously: the server's handlers need this event loop.)
  for (let i = 0; i < 3; i++) {
    const { stdout } = await promisify(execFile)('curl', ['-s', '--tcp-fastopen', '--max-time', '5', url])
    t.is(stdout, 'ok')
  }
  await until(() => counter() > before, 3000, 'the TFO counter to rise')
  t.true(counter() - before >= 1)
})
