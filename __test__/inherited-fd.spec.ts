// Inherited listening sockets: listen({ fd }) and systemd socket activation (LISTEN_PID,
// LISTEN_FDS) in spawned children, and a zero-downtime handoff: a new process takes over the
// same socket while the old one drains, and a client connecting throughout is never refused.
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import net from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import { listen } from 'tcpserver-rs'
import { within } from './helpers/index.js'

const CHILD = fileURLToPath(new URL('./fixtures/listen-fd-child.mjs', import.meta.url))

interface Child {
  proc: ChildProcess
  next(what: string): Promise<Record<string, unknown>>
  send(line: string): void
}

/** Spawns the fixture with the listening socket `fd` of this process as its descriptor 3. */
function child(t: ExecutionContext, fd: number, args: string[], systemd = false): Child {
  // systemd sets LISTEN_PID to the child's pid after fork; `sh -c 'exec'` keeps the pid.
  const cmd = systemd
    ? spawn(
        'sh',
        [
          '-c',
          `LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec "${process.execPath}" "$@"`,
          'sh',
          CHILD,
          ...args,
        ],
        {
          stdio: ['pipe', 'pipe', 'inherit', fd],
        },
      )
    : spawn(process.execPath, [CHILD, ...args], { stdio: ['pipe', 'pipe', 'inherit', fd] })
  t.teardown(() => {
    if (cmd.exitCode === null) cmd.kill('SIGKILL')
  })
  const lines: Record<string, unknown>[] = []
  const waiters: Array<() => void> = []
  createInterface({ input: cmd.stdout! }).on('line', (l) => {
    lines.push(JSON.parse(l) as Record<string, unknown>)
    for (const w of waiters.splice(0)) w()
  })
  return {
    proc: cmd,
    async next(what) {
      while (lines.length === 0) await within(new Promise<void>((r) => waiters.push(r)), 10_000, what)
      return lines.shift() as Record<string, unknown>
    },
    send: (line) => cmd.stdin!.write(`${line}\n`),
  }
}

/** A listening socket made by node:net; its descriptor is handed to children. */
async function parentListener(): Promise<{ server: net.Server; fd: number; port: number }> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd
  return { server, fd, port: (server.address() as net.AddressInfo).port }
}

/** Connects, reads the greeting line, checks an echo, and returns the greeting. */
async function greet(port: number): Promise<string> {
  const s = net.connect(port, '127.0.0.1')
  return within(
    new Promise<string>((resolve, reject) => {
      let got = ''
      s.on('error', reject)
      s.on('data', (d) => {
        got += d
        const nl = got.indexOf('\n')
        if (nl >= 0 && got.endsWith('ping')) {
          s.destroy()
          resolve(got.slice(0, nl))
        }
      })
      s.write('ping')
    }),
    5000,
    'greeting',
  )
}

test('systemd socket activation: LISTEN_PID/LISTEN_FDS hand the socket over; the variables are consumed', async (t) => {
  const { server, fd, port } = await parentListener()
  const c = child(t, fd, ['systemd', 'activated'], true)
  server.close() // the child's copy keeps listening
  const ready = await c.next('child ready')
  t.is(ready.ready, true, JSON.stringify(ready))
  t.deepEqual(ready.addresses, [{ address: '127.0.0.1', port, family: 'IPv4' }])
  t.is(ready.listenFds, null, 'LISTEN_FDS removed so that children of the child do not take it')
  t.is(await greet(port), 'activated')
  c.send('exit')
  t.like((await c.next('closed')).closed, { forced: 0 })
})

test('listen({ fd }): a handoff from one process to the next refuses no connection', async (t) => {
  // Like a process manager: it made the socket and gives it to the old process and, ahead of
  // time, to its successor; then it closes its own copy (it never accepts).
  const { server, fd, port } = await parentListener()
  const old = child(t, fd, ['3', 'old'])
  const next = child(t, fd, ['3', 'new', 'wait'])
  await new Promise<void>((resolve) => server.close(() => resolve()))
  t.is((await old.next('old ready')).ready, true)
  // A client connecting over and over, throughout the handoff.
  let stop = false
  const seen = new Map<string, number>()
  let failures = 0
  const load = (async () => {
    while (!stop) {
      try {
        const who = await greet(port)
        seen.set(who, (seen.get(who) ?? 0) + 1)
      } catch (e) {
        failures++
        t.log(`handoff failure: ${(e as Error).message}`)
      }
    }
  })()
  await new Promise((r) => setTimeout(r, 200))
  next.send('listen')
  t.is((await next.next('new ready')).ready, true)
  await new Promise((r) => setTimeout(r, 100))
  // The old process stops accepting and drains; clients in the queue go to the new one.
  old.send('exit')
  t.like((await old.next('old closed')).closed, { forced: 0 })
  await new Promise((r) => setTimeout(r, 300))
  stop = true
  await load
  t.is(failures, 0, `connections failed during the handoff: ${failures}`)
  t.true((seen.get('old') ?? 0) > 0 && (seen.get('new') ?? 0) > 0, JSON.stringify([...seen]))
  t.is(await greet(port), 'new')
  next.send('exit')
  await next.next('new closed')
})

test('listen({ fd }) refuses what is not a listening TCP socket, with a clear error', async (t) => {
  const file = openSync('/dev/null', 'r')
  t.teardown(() => closeSync(file))
  const notSocket = await t.throwsAsync(listen({ fd: file }))
  t.is((notSocket as { code?: string }).code, 'ERR_INVALID_ARG_VALUE')
  t.is((notSocket as { option?: string }).option, 'fd')
  const closed = await t.throwsAsync(listen({ fd: 987_654 }))
  t.is((closed as { code?: string }).code, 'EBADF')
  const noSystemd = await t.throwsAsync(listen({ fd: 'systemd' }))
  t.is((noSystemd as { code?: string }).code, 'ERR_INVALID_ARG_VALUE')
  t.regex((noSystemd as Error).message, /LISTEN_FDS/)
  const shape = await t.throwsAsync(listen({ fd: [] }))
  t.is((shape as { option?: string }).option, 'fd')
  const none = await t.throwsAsync(listen({} as never))
  t.is((none as { option?: string }).option, 'address')
})
