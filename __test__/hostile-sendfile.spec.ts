// Issue 16, item 1: conn.sendFile() of anything but a regular file. A FIFO froze the event loop
// (open(2) waited for a writer: 2.9–5 s in the outside runs, forever without one) and then
// resolved with 0 bytes; /proc files and /dev/zero resolved with 0 bytes. Now the file is
// opened non-blocking and checked on the open descriptor: regular files only, everything else
// a typed error; bad paths give Node's codes. The connection keeps working after each refusal.
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, constants, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import type { Connection } from 'tcpserver-rs'
import { channel, collect, connect, errCode, portOf, serve, within } from './helpers/index.ts'

const dir = mkdtempSync(join(tmpdir(), 'tcpserver-hostile-sendfile-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

/** A server whose handler hands each connection to the test, and a connected client. */
async function session(t: Parameters<typeof serve>[0]) {
  const conns = channel<Connection>()
  const done = channel<void>(30_000)
  const server = await serve(t, {
    async handler(conn) {
      conns.push(conn)
      await done.next()
    },
  })
  const client = await connect(portOf(server))
  const received = collect(client)
  const conn = await conns.next()
  t.teardown(() => {
    done.push()
    client.destroy()
  })
  return { conn, client, received, finish: () => done.push() }
}

/** The longest gap between 10 ms ticks while `p` runs: how long the event loop was held. */
async function longestStall<T>(
  p: () => Promise<T>,
): Promise<{ result: PromiseSettledResult<T>; stallMs: number }> {
  let last = performance.now()
  let stallMs = 0
  const tick = setInterval(() => {
    const now = performance.now()
    stallMs = Math.max(stallMs, now - last)
    last = now
  }, 10)
  const [result] = await Promise.allSettled([p()])
  // Let one more tick run, so a stall inside the call itself is measured.
  await new Promise((r) => setTimeout(r, 30))
  clearInterval(tick)
  return { result: result as PromiseSettledResult<T>, stallMs }
}

const hasMkfifo = spawnSync('mkfifo', ['--version'], { stdio: 'ignore' }).status === 0

test.serial(
  'a FIFO is refused at once with ERR_TCPSERVER_NOT_A_FILE; the event loop is not held (was: 2.9–5 s stall, then 0 bytes)',
  async (t) => {
    if (!hasMkfifo) {
      t.pass('skipped: no mkfifo')
      return
    }
    const fifo = join(dir, 'fifo')
    t.is(spawnSync('mkfifo', [fifo]).status, 0)
    // A writer turns up after 3 s from another process, so a blocking open would return then
    // (and not hang the run forever): the stall would measure about 3,000 ms.
    const writer = spawn('sh', ['-c', `sleep 3; echo data > '${fifo}'`], { stdio: 'ignore' })
    t.teardown(() => writer.kill('SIGKILL'))
    const { conn, client, received, finish } = await session(t)
    const { result, stallMs } = await longestStall(() => conn.sendFile(fifo))
    t.log(`event loop held for at most ${Math.round(stallMs)} ms`)
    t.is(result.status, 'rejected')
    const err = (result as PromiseRejectedResult).reason
    t.is(errCode(err), 'ERR_TCPSERVER_NOT_A_FILE')
    t.like(err, { path: fifo })
    t.regex(String((err as Error).message), /FIFO/)
    t.true(stallMs < 1500, `the event loop was held ${Math.round(stallMs)} ms`)
    // Also by descriptor (a FIFO opened non-blocking by the caller).
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK)
    t.teardown(() => closeSync(fd))
    await t.throwsAsync(conn.sendFile(fd), { code: 'ERR_TCPSERVER_NOT_A_FILE' })
    // The connection still works.
    await conn.write('still here')
    conn.end()
    t.is((await within(received, 5000, 'client read')).toString(), 'still here')
    client.destroy()
    finish()
  },
)

test('devices, sockets and /proc pseudo-files are refused (was: resolved with 0 bytes); an empty file still sends 0', async (t) => {
  const { conn, client, received, finish } = await session(t)
  const sock = join(dir, 'unix.sock')
  const unixServer = net.createServer().listen(sock)
  await new Promise((r) => unixServer.once('listening', r))
  t.teardown(() => unixServer.close())
  const cases: [string, RegExp][] = [
    ['/dev/zero', /character device/],
    ['/dev/null', /character device/],
    ['/proc/self/status', /reports 0 bytes/],
    ['/proc/cpuinfo', /reports 0 bytes/],
    [sock, /socket/],
  ]
  for (const [path, what] of cases) {
    const err = await t.throwsAsync(conn.sendFile(path), { code: 'ERR_TCPSERVER_NOT_A_FILE' }, path)
    t.like(err, { path }, path)
    t.regex(String(err?.message), what, path)
  }
  // A socket by descriptor: the client's own connection.
  const socketFd = (client as unknown as { _handle: { fd: number } })._handle.fd
  await t.throwsAsync(conn.sendFile(socketFd), { code: 'ERR_TCPSERVER_NOT_A_FILE' })
  // Directories keep their code.
  await t.throwsAsync(conn.sendFile(dir), { code: 'EISDIR' })
  // A genuinely empty regular file is sent: 0 bytes, no error.
  const empty = join(dir, 'empty')
  writeFileSync(empty, '')
  t.is(await conn.sendFile(empty), 0)
  await conn.write('end')
  conn.end()
  t.is((await within(received, 5000, 'client read')).toString(), 'end')
  finish()
})

test('bad paths: a NUL byte is ERR_INVALID_ARG_VALUE, an over-long path ENAMETOOLONG (was: EIO, E36)', async (t) => {
  const { conn, received, finish } = await session(t)
  const nul = await t.throwsAsync(conn.sendFile(`${dir}/a\0b`), {
    code: 'ERR_INVALID_ARG_VALUE',
    instanceOf: TypeError,
  })
  t.is((nul as { option?: string } | undefined)?.option, 'file')
  const long = join(dir, 'x'.repeat(5000))
  const err = await t.throwsAsync(conn.sendFile(long), { code: 'ENAMETOOLONG' })
  t.like(err, { syscall: 'open', path: long })
  const missing = join(dir, 'missing')
  t.like(await t.throwsAsync(conn.sendFile(missing), { code: 'ENOENT' }), { syscall: 'open', path: missing })
  const notDir = join(dir, 'plain')
  writeFileSync(notDir, 'x')
  await t.throwsAsync(conn.sendFile(join(notDir, 'child')), { code: 'ENOTDIR' })
  await conn.write('ok')
  conn.end()
  t.is((await within(received, 5000, 'client read')).toString(), 'ok')
  finish()
})
