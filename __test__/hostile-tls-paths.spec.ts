// Issue 16, the class behind item 1: every path argument is checked for its type after a
// non-blocking open. TLS `cert`/`key`/`ca` paths were read with readFileSync: a FIFO held the
// event loop until a writer came, and /dev/zero was read until Node gave up at 2 GiB.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { listen } from 'tcpserver-rs'

const fixtures = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))
const cert = join(fixtures, 'server.crt')
const key = join(fixtures, 'server.key')
const dir = mkdtempSync(join(tmpdir(), 'tcpserver-hostile-tls-paths-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

const hasMkfifo = spawnSync('mkfifo', ['--version'], { stdio: 'ignore' }).status === 0

test('a FIFO as tls.cert: ERR_TCPSERVER_NOT_A_FILE at once, the event loop not held (was: held until a writer came)', async (t) => {
  if (!hasMkfifo) {
    t.pass('skipped: no mkfifo')
    return
  }
  const fifo = join(dir, 'cert.fifo')
  t.is(spawnSync('mkfifo', [fifo]).status, 0)
  // A writer after 3 s from another process: a blocking open would return then.
  const writer = spawn('sh', ['-c', `sleep 3; cat '${cert}' > '${fifo}'`], { stdio: 'ignore' })
  t.teardown(() => writer.kill('SIGKILL'))
  let last = performance.now()
  let stall = 0
  const tick = setInterval(() => {
    const now = performance.now()
    stall = Math.max(stall, now - last)
    last = now
  }, 10)
  const err = await t.throwsAsync(listen({ address: '127.0.0.1:0', tls: { cert: fifo, key } }), {
    code: 'ERR_TCPSERVER_NOT_A_FILE',
  })
  await new Promise((r) => setTimeout(r, 30))
  clearInterval(tick)
  t.like(err, { path: fifo })
  t.log(`event loop held for at most ${Math.round(stall)} ms`)
  t.true(stall < 1500, `held ${Math.round(stall)} ms`)
})

test('devices and directories as PEM paths are refused; bad paths keep Node codes', async (t) => {
  for (const path of ['/dev/zero', '/dev/null']) {
    await t.throwsAsync(listen({ address: '127.0.0.1:0', tls: { cert: path, key } }), {
      code: 'ERR_TCPSERVER_NOT_A_FILE',
    })
  }
  await t.throwsAsync(listen({ address: '127.0.0.1:0', tls: { cert, key, ca: fixtures } }), {
    code: 'ERR_TCPSERVER_NOT_A_FILE',
  })
  await t.throwsAsync(listen({ address: '127.0.0.1:0', tls: { cert: `${cert}\0x`, key } }), {
    code: 'ERR_INVALID_ARG_VALUE',
  })
  await t.throwsAsync(listen({ address: '127.0.0.1:0', tls: { cert: join(dir, 'x'.repeat(5000)), key } }), {
    code: 'ENAMETOOLONG',
  })
  await t.throwsAsync(listen({ address: '127.0.0.1:0', tls: { cert: join(dir, 'missing.crt'), key } }), {
    code: 'ENOENT',
  })
  // The real files still work.
  const server = await listen({ address: '127.0.0.1:0', tls: { cert, key } })
  await server.halt()
  t.pass()
})
