// connect(): outbound Connections to node:net servers on loopback only. IPv4 and IPv6 with
// 'host:port' and { host, port } ('localhost' resolves from /etc/hosts), read/write/end/close,
// addresses, localAddress, ECONNREFUSED, a real ETIMEDOUT (a listener whose accept queue is
// full drops SYNs, so no packet has to leave the machine), invalid arguments by code,
// descriptors, and a child process that stays alive while its connection is open and exits
// by itself once it is closed. Serial: descriptor counts and timings.
import { type ChildProcess, spawn } from 'node:child_process'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import { type Connection, type ConnectOptions, connect as dial } from 'tcpserver-rs'
import { blackHole, channel, errCode, fdCount, sleep, until, within } from './helpers/index.js'

const FIXTURE = fileURLToPath(new URL('./fixtures/zero-copy-connect-child.mjs', import.meta.url))

/** Resolves with the next value pushed; every wait is bounded. */

interface Peer {
  port: number
  /** Server-side sockets, in accept order. */
  sockets: ReturnType<typeof channel<net.Socket>>
}

/**
 * A node:net server on `host` (allowHalfOpen). Default behaviour: echo, and at the client's
 * FIN answer "bye" and end. Resolves null when `host` cannot be bound (no IPv6).
 */
async function peer(
  t: ExecutionContext,
  host: string,
  onSocket?: (s: net.Socket) => void,
): Promise<Peer | null> {
  const sockets = channel<net.Socket>()
  const all = new Set<net.Socket>()
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    all.add(s)
    s.on('error', () => {})
    s.once('close', () => all.delete(s))
    sockets.push(s)
    if (onSocket) onSocket(s)
    else {
      s.on('data', (d: Buffer) => s.write(d))
      s.once('end', () => s.end('bye'))
    }
  })
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false))
    server.listen(0, host, () => resolve(true))
  })
  if (!ok) return null
  t.teardown(() => {
    for (const s of all) s.destroy()
    server.close()
  })
  return { port: (server.address() as net.AddressInfo).port, sockets }
}

/** A port on `host` that refuses connections. */
async function refusedPort(host = '127.0.0.1'): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, host, resolve))
  const { port } = s.address() as net.AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** Reads until `n` bytes (or EOF). */
async function readBytes(conn: Connection, n: number): Promise<string> {
  let text = ''
  while (text.length < n) {
    const chunk = await within(conn.read(), 5000, 'read()')
    if (chunk === null) break
    text += chunk.toString('latin1')
  }
  return text
}

/** Everything until EOF. */
async function readAll(conn: Connection): Promise<string> {
  let text = ''
  for (;;) {
    const chunk = await within(conn.read(), 5000, 'read()')
    if (chunk === null) return text
    text += chunk.toString('latin1')
  }
}

/** Full echo conversation: write, echo, end(), the server's "bye" and EOF, close(). */
async function converse(
  t: ExecutionContext,
  conn: Connection,
  p: Peer,
  host: string,
  family: 'IPv4' | 'IPv6',
): Promise<void> {
  const server = await p.sockets.next(5000, 'server-side socket')
  t.deepEqual(conn.remote, { address: host, port: p.port, family })
  t.deepEqual(conn.local, { address: host, port: server.remotePort, family })
  await conn.write('hello')
  await conn.write(Buffer.from(' world'))
  t.is(await readBytes(conn, 11), 'hello world')
  const serverEnded = new Promise<void>((resolve) => server.once('end', () => resolve()))
  conn.end()
  await within(serverEnded, 5000, 'the server seeing FIN')
  t.is(errCode(await conn.write('late').catch((e: unknown) => e)), 'ERR_STREAM_WRITE_AFTER_END')
  t.is(await readAll(conn), 'bye', 'reading goes on after end()')
  t.is(await conn.read(), null)
  t.is(conn.bytesWritten, 11)
  t.is(conn.bytesRead, 14)
  conn.close()
  await within(conn.closed, 5000, 'closed')
  t.is(conn.error, null)
  t.is(conn.remotePort, p.port, 'addresses survive close()')
}

// ---------------------------------------------------------------------------------------------

test.serial("IPv4 with 'host:port' and { host, port }: write, read, end, close, addresses", async (t) => {
  const p = (await peer(t, '127.0.0.1')) as Peer
  await converse(t, await dial(`127.0.0.1:${p.port}`), p, '127.0.0.1', 'IPv4')
  await converse(t, await dial({ host: '127.0.0.1', port: p.port }), p, '127.0.0.1', 'IPv4')
  await converse(t, await dial(`[127.0.0.1]:${p.port}`), p, '127.0.0.1', 'IPv4')
})

test.serial("IPv6 (::1) with '[::1]:port' and { host: '::1', port }", async (t) => {
  const p = await peer(t, '::1')
  if (!p) {
    t.log('skipped: ::1 cannot be bound here')
    return t.pass()
  }
  await converse(t, await dial(`[::1]:${p.port}`), p, '::1', 'IPv6')
  await converse(t, await dial({ host: '::1', port: p.port }), p, '::1', 'IPv6')
})

test.serial("'localhost' resolves ('localhost:port', { host: 'localhost', port }, { port })", async (t) => {
  // Only on 127.0.0.1: if localhost also resolves to ::1 (refused), the next address is tried.
  const p = (await peer(t, '127.0.0.1')) as Peer
  for (const address of [`localhost:${p.port}`, { host: 'localhost', port: p.port }, { port: p.port }]) {
    const conn = await within(dial(address), 5000, 'connect')
    await converse(t, conn, p, '127.0.0.1', 'IPv4')
  }
})

test.serial('close() from our side: the peer sees the close, writes reject, read() ends', async (t) => {
  const p = (await peer(t, '127.0.0.1', (s) => s.on('data', () => {}))) as Peer
  const conn = await dial(`127.0.0.1:${p.port}`)
  const server = await p.sockets.next()
  const serverClosed = new Promise<void>((resolve) => server.once('close', () => resolve()))
  server.once('end', () => server.end())
  const pending = conn.read()
  conn.close()
  t.is(await within(pending, 5000, 'pending read'), null)
  await within(conn.closed, 5000, 'closed')
  await within(serverClosed, 5000, 'peer closed')
  t.true(conn.signal.aborted)
  t.is(errCode(await conn.write('x').catch((e: unknown) => e)), 'ERR_STREAM_WRITE_AFTER_END')
  t.is(await conn.read(), null)
})

test.serial('the peer resets: read() rejects ECONNRESET, error and signal say so', async (t) => {
  const p = (await peer(t, '127.0.0.1', (s) => s.once('data', () => s.resetAndDestroy()))) as Peer
  const conn = await dial(`127.0.0.1:${p.port}`)
  await conn.write('boom')
  t.is(errCode(await within(conn.read(), 5000, 'read()').catch((e: unknown) => e)), 'ECONNRESET')
  await within(conn.closed, 5000, 'closed')
  t.is(errCode(conn.error), 'ECONNRESET')
  t.is(errCode(conn.signal.reason), 'ECONNRESET')
})

test.serial('`await using` closes an outbound connection at the end of the scope', async (t) => {
  const p = (await peer(t, '127.0.0.1', (s) => s.on('data', () => {}))) as Peer
  let outer: Connection | undefined
  {
    await using conn = await dial(`127.0.0.1:${p.port}`)
    outer = conn
    await conn.write('x')
  }
  const server = await p.sockets.next()
  await within(
    new Promise<void>((resolve) => (server.readableEnded ? resolve() : server.once('end', () => resolve()))),
    5000,
    'peer seeing FIN',
  )
  await within((outer as Connection).closed, 5000, 'closed')
  t.pass()
})

test.serial(
  'localAddress binds the source address (127.0.0.2, ::1); a family mismatch or a foreign address is an error',
  async (t) => {
    const p = (await peer(t, '127.0.0.1')) as Peer
    const conn = await dial(`127.0.0.1:${p.port}`, { localAddress: '127.0.0.2' })
    const server = await p.sockets.next()
    t.is(server.remoteAddress, '127.0.0.2', 'the server sees the bound source address')
    t.is(conn.localAddress, '127.0.0.2')
    t.is(conn.localPort, server.remotePort)
    conn.close()

    const p6 = await peer(t, '::1')
    if (p6) {
      const c6 = await dial(`[::1]:${p6.port}`, { localAddress: '::1' })
      t.is((await p6.sockets.next()).remoteAddress, '::1')
      c6.close()
      const mismatch6 = await dial(`[::1]:${p6.port}`, { localAddress: '127.0.0.1' }).catch((e: unknown) => e)
      t.log(`IPv6 target, IPv4 localAddress: ${String(errCode(mismatch6))}`)
      t.is(errCode(mismatch6), 'ERR_INVALID_ARG_VALUE', 'no address of the target has the local family')
    } else t.log('IPv6 part skipped: ::1 cannot be bound here')

    // The connection cannot be made from the other family: an argument error, at once.
    const mismatch = await within(
      dial(`127.0.0.1:${p.port}`, { localAddress: '::1' }),
      5000,
      'connect',
    ).catch((e: unknown) => e)
    t.log(`IPv4 target, IPv6 localAddress: ${String(errCode(mismatch))}`)
    t.is(errCode(mismatch), 'ERR_INVALID_ARG_VALUE')
    // 192.0.2.1 (TEST-NET-1) is never a local address: bind fails before any packet is sent.
    t.is(
      errCode(await dial(`127.0.0.1:${p.port}`, { localAddress: '192.0.2.1' }).catch((e: unknown) => e)),
      'EADDRNOTAVAIL',
    )
  },
)

test.serial('refused: ECONNREFUSED for IPv4, IPv6 and a name with every address refused', async (t) => {
  const port = await refusedPort()
  const t0 = Date.now()
  t.is(errCode(await dial(`127.0.0.1:${port}`).catch((e: unknown) => e)), 'ECONNREFUSED')
  t.is(errCode(await dial({ host: '127.0.0.1', port }).catch((e: unknown) => e)), 'ECONNREFUSED')
  t.is(errCode(await dial(`localhost:${port}`).catch((e: unknown) => e)), 'ECONNREFUSED')
  if (await peer(t, '::1')) {
    const port6 = await refusedPort('::1')
    t.is(errCode(await dial(`[::1]:${port6}`).catch((e: unknown) => e)), 'ECONNREFUSED')
  }
  t.true(Date.now() - t0 < 3000, 'refusals are immediate on loopback')
})

test.serial(
  'timeout: ETIMEDOUT when the listener never answers; a connection made in time is not cut later',
  async (t) => {
    const port = await blackHole(t)
    if (port === null) {
      t.log('skipped: this kernel does not drop SYNs for a full accept queue')
      return t.pass()
    }
    const t0 = Date.now()
    const e = await within(dial(`127.0.0.1:${port}`, { timeout: 300 }), 5000, 'connect with timeout').catch(
      (err: unknown) => err,
    )
    const ms = Date.now() - t0
    t.is(errCode(e), 'ETIMEDOUT')
    t.true(ms >= 290 && ms < 3000, `timed out after ${ms} ms`)

    const p = (await peer(t, '127.0.0.1')) as Peer
    const conn = await dial(`127.0.0.1:${p.port}`, { timeout: 200 })
    await sleep(400)
    await conn.write('still here')
    t.is(await readBytes(conn, 10), 'still here')
    conn.close()
  },
)

test.serial("invalid addresses and options reject (never throw) with Node's argument codes", async (t) => {
  const [V, T, R, P] = [
    'ERR_INVALID_ARG_VALUE',
    'ERR_INVALID_ARG_TYPE',
    'ERR_OUT_OF_RANGE',
    'ERR_SOCKET_BAD_PORT',
  ]
  const cases: Array<[unknown, ConnectOptions | null | undefined, string, string]> = [
    ['nonsense', undefined, 'address', V],
    ['127.0.0.1', undefined, 'address', V],
    ['127.0.0.1:99999', undefined, 'address', V],
    ['127.0.0.1:12x', undefined, 'address', V],
    ['[::1]', undefined, 'address', V],
    [' 127.0.0.1:80', undefined, 'address', V],
    [{ host: '127.0.0.1' }, undefined, 'address.port', T],
    [{ port: '80' }, undefined, 'address.port', T],
    [null, undefined, 'address', T],
    [42, undefined, 'address', T],
    [{ port: -1 }, undefined, 'address.port', P],
    [{ port: 1.5 }, undefined, 'address.port', P],
    [{ port: 70_000 }, undefined, 'address.port', P],
    ['127.0.0.1:80', null, 'options', T],
    ['127.0.0.1:80', { timeout: 0 }, 'timeout', R],
    ['127.0.0.1:80', { timeout: 'x' as unknown as number }, 'timeout', T],
    ['127.0.0.1:80', { noDelay: 'x' as unknown as boolean }, 'noDelay', T],
    ['127.0.0.1:80', { localAddress: 5 as unknown as string }, 'localAddress', T],
    ['127.0.0.1:80', { localAddress: 'localhost' }, 'localAddress', V],
    ['127.0.0.1:80', { timout: 100 } as ConnectOptions, 'timout', V],
  ]
  for (const [address, options, option, code] of cases) {
    let p: Promise<unknown> | undefined
    t.notThrows(
      () => {
        p = dial(address as string, options as ConnectOptions)
      },
      `${JSON.stringify(address)} ${JSON.stringify(options)} does not throw`,
    )
    const e = (await within(p as Promise<unknown>, 2000, 'connect').catch((err: unknown) => err)) as {
      code?: string
      option?: string
    }
    t.is(e.code, code, `${JSON.stringify(address)} ${JSON.stringify(options)}`)
    t.is(e.option, option, `${JSON.stringify(address)} ${JSON.stringify(options)}: option`)
  }
})

test.serial('descriptors return to the baseline after many connects, closes and refusals', async (t) => {
  const p = (await peer(t, '127.0.0.1', (s) => {
    s.on('data', (d: Buffer) => s.write(d))
    s.once('end', () => s.end())
  })) as Peer
  const port = await refusedPort()
  const once = async (): Promise<void> => {
    const conn = await dial(`127.0.0.1:${p.port}`)
    await conn.write('x')
    t.is(await readBytes(conn, 1), 'x')
    conn.close()
    await within(conn.closed, 5000, 'closed')
    t.is(errCode(await dial(`127.0.0.1:${port}`).catch((e: unknown) => e)), 'ECONNREFUSED')
  }
  await once() // warm-up: the hub and its runtime exist from here on
  await sleep(50)
  const baseline = fdCount()
  for (let i = 0; i < 25; i++) await once()
  await until(() => fdCount() <= baseline, 3000, 'descriptors back to the baseline').catch(() => {})
  t.true(fdCount() <= baseline, `${fdCount()} descriptors open, baseline ${baseline}`)
})

// ---------------------------------------------------------------------------------------------
// A child process: open outbound connections keep Node alive, closed ones do not.

interface Child {
  proc: ChildProcess
  lines: ReturnType<typeof channel<Record<string, unknown>>>
  exit: Promise<number | null>
}

function child(t: ExecutionContext, arg: object): Child {
  const proc = spawn(process.execPath, [FIXTURE, JSON.stringify(arg)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines = channel<Record<string, unknown>>()
  let buf = ''
  let stderr = ''
  proc.stdout?.on('data', (d: Buffer) => {
    buf += d
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)))
      buf = buf.slice(i + 1)
    }
  })
  proc.stderr?.on('data', (d: Buffer) => {
    stderr += d
  })
  const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
    if (stderr) t.log(`child stderr: ${stderr}`)
  })
  return { proc, lines, exit }
}

test.serial(
  'a process with an open outbound connection stays alive, and exits by itself (code 0) after closing it',
  async (t) => {
    const p = (await peer(t, '127.0.0.1', (s) => s.on('data', () => {}))) as Peer
    const c = child(t, { address: `127.0.0.1:${p.port}`, mode: 'echo' })
    t.like(await c.lines.next(10_000, 'child connected'), { connected: true })
    const server = await p.sockets.next()
    const got: Buffer[] = []
    server.removeAllListeners('data')
    server.on('data', (d: Buffer) => got.push(d))
    await sleep(700)
    t.is(c.proc.exitCode, null, 'still running: the open connection keeps it alive')
    server.write('bye')
    t.like(await c.lines.next(5000, 'child closed'), { closed: 'bye' })
    t.is(await within(c.exit, 5000, 'child exiting by itself'), 0)
    t.is(Buffer.concat(got).toString(), 'ack')
  },
)

test.serial('a child whose peer closes reads EOF, closes, and exits by itself', async (t) => {
  const p = (await peer(t, '127.0.0.1', (s) => s.on('data', () => {}))) as Peer
  const c = child(t, { address: `127.0.0.1:${p.port}`, mode: 'peer' })
  t.like(await c.lines.next(10_000, 'child connected'), { connected: true })
  const server = await p.sockets.next()
  await sleep(300)
  t.is(c.proc.exitCode, null)
  server.end('data then FIN')
  t.like(await c.lines.next(5000, 'child saw EOF'), { eof: true })
  t.is(await within(c.exit, 5000, 'child exiting by itself'), 0)
})

test.serial('a child whose connect fails (refused, timed out) exits by itself', async (t) => {
  const refused = child(t, { address: `127.0.0.1:${await refusedPort()}`, mode: 'refused' })
  t.like(await refused.lines.next(10_000, 'refused'), { code: 'ECONNREFUSED' })
  t.is(await within(refused.exit, 5000, 'child exiting by itself'), 0)
  const port = await blackHole(t)
  if (port === null) return t.log('timeout part skipped: SYNs are not dropped here')
  const timedOut = child(t, { address: `127.0.0.1:${port}`, mode: 'timeout' })
  t.like(await timedOut.lines.next(10_000, 'timed out'), { code: 'ETIMEDOUT' })
  t.is(await within(timedOut.exit, 5000, 'child exiting by itself'), 0)
})

test.serial('port 0 is an argument error; an empty host means this machine, as in Node', async (t) => {
  t.is(errCode(await dial('127.0.0.1:0').catch((e: unknown) => e)), 'ERR_SOCKET_BAD_PORT')
  const zero = await dial({ host: '127.0.0.1', port: 0 }).catch((e: unknown) => e)
  t.is(errCode(zero), 'ERR_SOCKET_BAD_PORT')
  t.true(zero instanceof RangeError)
  t.is((zero as Error).message, 'address.port should be > 0 and < 65536. Received type number (0).')
  const p = (await peer(t, '127.0.0.1')) as Peer
  const conn = await dial(`:${p.port}`)
  t.is((await p.sockets.next()).localPort, p.port)
  conn.close()
  const again = await dial({ host: '', port: p.port })
  await p.sockets.next()
  again.close()
})
