import test from 'ava'
import { isTcpServerError, listen } from 'tcpserver-rs'
import { isRoot, portOf, serve } from './helpers/index.ts'

test('EADDRINUSE keeps its name, with syscall, errno, address and port', async (t) => {
  const first = await serve(t, { reusePort: false })
  const port = portOf(first)
  const err = await t.throwsAsync(listen({ address: `127.0.0.1:${port}`, reusePort: false }), {
    code: 'EADDRINUSE',
  })
  t.true(isTcpServerError(err))
  t.like(err, { syscall: 'bind', address: '127.0.0.1', port })
  const errno = (err as unknown as { errno?: number }).errno
  t.true(typeof errno === 'number' && errno < 0)
})

test('EADDRINUSE also without reusePort on the second listener only', async (t) => {
  const first = await serve(t, { reusePort: true })
  await t.throwsAsync(listen({ address: `127.0.0.1:${portOf(first)}`, reusePort: false }), {
    code: 'EADDRINUSE',
  })
})

test('EADDRNOTAVAIL for an address this machine does not have', async (t) => {
  // 192.0.2.0/24 is TEST-NET-1: never assigned to a local interface; bind sends nothing.
  const err = await t.throwsAsync(listen({ address: '192.0.2.1:0' }), { code: 'EADDRNOTAVAIL' })
  t.like(err, { syscall: 'bind', address: '192.0.2.1' })
})

test('EACCES for a privileged port without the capability', async (t) => {
  if (isRoot) {
    t.pass('skipped: root may bind privileged ports')
    return
  }
  await t.throwsAsync(listen({ address: '127.0.0.1:80' }), { code: 'EACCES' })
})

test('a second listen on a closed server is fine: shutdown frees the port at once', async (t) => {
  const server = await listen({ address: '127.0.0.1:0', reusePort: false })
  const port = portOf(server)
  const done = server.shutdown()
  const again = await listen({ address: `127.0.0.1:${port}`, reusePort: false })
  t.is(portOf(again), port)
  await again.halt()
  await done
})
