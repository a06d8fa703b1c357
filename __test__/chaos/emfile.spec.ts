// EMFILE: a server in a child process under a low descriptor limit (`prlimit --nofile=N:N`)
// gets more clients than it can hold. Its accept loop counts EMFILE (stats().acceptErrors) and
// backs off instead of dying or spinning; once the clients close, it accepts and serves again;
// the child never crashes and exits cleanly when told to.
import { spawn, spawnSync } from 'node:child_process'
import net from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { sleep, within } from '../helpers/index.js'

const FIXTURE = fileURLToPath(new URL('../fixtures/chaos-emfile.mjs', import.meta.url))
/** The child's descriptor limit: Node and Tokio need about 25, so ~40 connections fit. */
const LIMIT = 64
const CLIENTS = 100

const hasPrlimit = spawnSync('prlimit', ['--version'], { stdio: 'ignore' }).status === 0

interface ChildStats {
  accepted: number
  active: number
  panics: number
  acceptErrors: Record<string, number>
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(s))
    s.once('error', reject)
  })
}

/** Writes `message`, resolves with everything echoed once that many bytes came back. */
function echoOf(socket: net.Socket, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    const onData = (d: Buffer): void => {
      text += d.toString()
      if (text.length >= message.length) {
        socket.off('data', onData)
        resolve(text)
      }
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.write(message)
  })
}

test.serial(
  `a child limited to ${LIMIT} descriptors, ${CLIENTS} clients: EMFILE is counted, the server recovers and never crashes`,
  async (t) => {
    if (!hasPrlimit) {
      t.log('skipped: prlimit (util-linux) is not installed')
      t.pass()
      return
    }
    const child = spawn('prlimit', [`--nofile=${LIMIT}:${LIMIT}`, process.execPath, FIXTURE], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let exited: number | null | undefined
    const exit = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => {
        exited = code
        resolve(code)
      }),
    )
    t.teardown(() => {
      if (exited === undefined) child.kill('SIGKILL')
    })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const messages: Array<Record<string, unknown>> = []
    createInterface({ input: child.stdout }).on('line', (line) => messages.push(JSON.parse(line)))

    /** The next message that has `key`, bounded. */
    async function next(key: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const i = messages.findIndex((m) => key in m)
        if (i >= 0) return messages.splice(i, 1)[0] as Record<string, unknown>
        if (exited !== undefined)
          throw new Error(`the child exited (${exited}) before sending ${key}: ${stderr}`)
        if (Date.now() > deadline) throw new Error(`no ${key} message from the child within ${timeoutMs} ms`)
        await sleep(10)
      }
    }
    async function stats(): Promise<ChildStats> {
      child.stdin.write('stats\n')
      return (await next('stats')).stats as ChildStats
    }
    /** Polls the child's stats until `check` holds, bounded. */
    async function statsUntil(
      check: (s: ChildStats) => boolean,
      what: string,
      timeoutMs = 10_000,
    ): Promise<ChildStats> {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const s = await stats()
        if (check(s)) return s
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`)
        await sleep(50)
      }
    }

    const hello = await next('port')
    const port = hello.port as number
    t.log(`child ${hello.pid}: ${hello.fds} descriptors open at start, limit ${LIMIT}`)

    // More clients than descriptors: the kernel completes every handshake (backlog 511), the
    // server can accept only the first few dozen.
    const clients: net.Socket[] = []
    for (let i = 0; i < CLIENTS; i++) clients.push(await within(connect(port), 5000, `client ${i}`))
    t.teardown(() => {
      for (const c of clients) c.destroy()
    })
    for (const c of clients) c.on('error', () => {})
    const starved = await statsUntil((s) => (s.acceptErrors.EMFILE ?? 0) > 0, 'an EMFILE accept error')
    t.log(`under pressure: ${JSON.stringify(starved)}`)
    t.true(starved.accepted < CLIENTS, 'not every client could be accepted')
    // The accepted ones are served while the accept loop backs off.
    t.is(await within(echoOf(clients[0] as net.Socket, 'ping'), 5000, 'an echo under EMFILE'), 'ping')
    // It backs off (10 ms doubling to 1 s) instead of spinning on accept().
    const before = starved.acceptErrors.EMFILE ?? 0
    await sleep(1000)
    const later = await stats()
    const rate = (later.acceptErrors.EMFILE ?? 0) - before
    t.log(`EMFILE errors in the next second: ${rate}`)
    t.true(rate <= 20, `the accept loop backs off (${rate} errors in 1 s)`)

    // Recovery: the clients leave, the server drains its backlog and serves a new client.
    for (const c of clients) c.destroy()
    const drained = await statsUntil((s) => s.accepted >= CLIENTS && s.active === 0, 'the backlog to drain')
    t.log(`after the clients left: ${JSON.stringify(drained)}`)
    const fresh = await within(connect(port), 5000, 'a new client')
    t.is(await within(echoOf(fresh, 'hello again'), 5000, 'an echo after recovery'), 'hello again')
    fresh.destroy()

    const final = await statsUntil((s) => s.active === 0, 'the last connection to close')
    t.true((final.acceptErrors.EMFILE ?? 0) > 0)
    t.is(final.panics, 0)
    t.is(exited, undefined, 'the child is still running')

    child.stdin.write('exit\n')
    t.deepEqual((await next('closed')).closed, { completed: 0, forced: 0 })
    t.is(await within(exit, 5000, 'the child to exit by itself'), 0)
    t.deepEqual(
      messages.filter((m) => 'handlerError' in m),
      [],
      'no unexpected handler error',
    )
    t.is(stderr, '', 'nothing on stderr')
  },
)
