// The fault proxy's own tests (testing.md 3.4), against a plain node:net peer so that they test
// the relay and nothing else: integrity with all knobs off, latency, rate, slicing, and FIN, RST
// and blackhole after N bytes.
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { type FaultProxy, type FaultProxyOptions, startFaultProxy } from './helpers/fault-proxy.js'
import { sha256, sleep, until, within } from './helpers/index.js'

interface Peer {
  port: number
  /** Every server-side socket, with what it received and how it ended. */
  conns: Array<{
    socket: net.Socket
    received: Buffer[]
    times: number[]
    ended: boolean
    error: string | null
  }>
}

/**
 * A node:net peer on 127.0.0.1. `echo` sends back what it gets and ends after the client's FIN;
 * `sink` only reads and ends after the FIN; `hold` only reads and never ends by itself.
 */
async function peer(t: ExecutionContext, mode: 'echo' | 'sink' | 'hold' = 'echo'): Promise<Peer> {
  const conns: Peer['conns'] = []
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const c = {
      socket,
      received: [] as Buffer[],
      times: [] as number[],
      ended: false,
      error: null as string | null,
    }
    conns.push(c)
    socket.on('data', (d: Buffer) => {
      c.received.push(d)
      c.times.push(performance.now())
      if (mode === 'echo') socket.write(d)
    })
    socket.on('end', () => {
      c.ended = true
      if (mode !== 'hold') socket.end()
    })
    socket.on('error', (e: NodeJS.ErrnoException) => {
      c.error = e.code ?? 'unknown'
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(() => {
    for (const c of conns) c.socket.destroy()
    server.close()
  })
  return { port: (server.address() as net.AddressInfo).port, conns }
}

async function proxy(t: ExecutionContext, options: FaultProxyOptions): Promise<FaultProxy> {
  const p = await startFaultProxy(options)
  t.teardown(() => p.close())
  return p
}

interface ClientResult {
  data: Buffer
  error: string | null
}

/** Connects to `port`, sends `data` (then FIN unless `keepOpen`), collects until close. */
function exchange(
  port: number,
  data: Buffer,
  keepOpen = false,
): { socket: net.Socket; done: Promise<ClientResult> } {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  const chunks: Buffer[] = []
  const done = new Promise<ClientResult>((resolve) => {
    let error: string | null = null
    socket.on('data', (d: Buffer) => chunks.push(d))
    socket.on('end', () => socket.end())
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? 'unknown'
    })
    socket.on('close', () => resolve({ data: Buffer.concat(chunks), error }))
  })
  if (keepOpen) socket.write(data)
  else socket.end(data)
  return { socket, done }
}

/** Round-trip time of one byte over `socket`, ms. */
async function rtt(socket: net.Socket): Promise<number> {
  const started = performance.now()
  const got = new Promise<void>((resolve) => socket.once('data', () => resolve()))
  socket.write('x')
  await within(got, 2000, 'ping')
  return performance.now() - started
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

test('with every knob off, 8 MiB go through intact both ways (sha256)', async (t) => {
  const target = await peer(t)
  const p = await proxy(t, { target: { host: '127.0.0.1', port: target.port } })
  const data = randomBytes(8 << 20)
  const { done } = exchange(p.port, data)
  const result = await within(done, 20_000, '8 MiB through the relay')
  t.is(result.error, null)
  t.is(result.data.length, data.length)
  t.is(sha256(result.data), sha256(data))
  t.is(p.upstream.bytes, data.length)
  t.is(p.downstream.bytes, data.length)
  t.is(p.accepted, 1)
  await until(() => p.openSockets === 0, 2000, 'relay sockets to close after both FINs')
})

test.serial('latency: the added round-trip time is within 5 ms of latencyMs', async (t) => {
  const target = await peer(t)
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    upstream: { latencyMs: 30 },
    downstream: { latencyMs: 20 },
  })
  const direct = net.connect({ port: target.port, host: '127.0.0.1', noDelay: true })
  const relayed = net.connect({ port: p.port, host: '127.0.0.1', noDelay: true })
  t.teardown(() => {
    direct.destroy()
    relayed.destroy()
  })
  await Promise.all([direct, relayed].map((s) => new Promise((r) => s.once('connect', r))))
  // Batches of 9 pings each way. Being starved of CPU by other test processes only ever adds
  // delay, so each batch's fastest ping estimates the relay's own delay (like ping's min);
  // up to 5 batches, in case one falls entirely into such a stretch.
  const added: number[] = []
  const medians: number[] = []
  const all: number[] = []
  for (let batch = 0; batch < 5; batch++) {
    const base: number[] = []
    const slow: number[] = []
    for (let i = 0; i < 9; i++) {
      base.push(await rtt(direct))
      slow.push(await rtt(relayed))
    }
    all.push(...slow)
    added.push(Math.min(...slow) - Math.min(...base))
    medians.push(median(slow) - median(base))
    if (Math.abs((added.at(-1) as number) - 50) < 5) break
  }
  const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(', ')
  t.log(`added latency per batch: fastest ${fmt(added)} ms, median ${fmt(medians)} ms`)
  t.true(
    added.some((x) => Math.abs(x - 50) < 5),
    `added ${fmt(added)} ms, expected 50 ± 5`,
  )
  t.true(Math.min(...all) >= 49, 'no ping is faster than the configured latency')
})

test.serial('jitter: delays spread over latency ± jitter, and the byte order is kept', async (t) => {
  const target = await peer(t)
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    upstream: { latencyMs: 40, jitterMs: 30 },
  })
  const socket = net.connect({ port: p.port, host: '127.0.0.1', noDelay: true })
  t.teardown(() => socket.destroy())
  await new Promise((r) => socket.once('connect', r))
  const times: number[] = []
  for (let i = 0; i < 12; i++) times.push(await rtt(socket))
  t.log(`rtts: ${times.map((x) => x.toFixed(1)).join(' ')}`)
  t.true(Math.min(...times) >= 9, 'never under latency - jitter')
  t.true(Math.max(...times) - Math.min(...times) >= 5, 'the delays vary')
  // Order: many small writes sent back to back through the jittered link come out in order.
  const seq = Buffer.from(Array.from({ length: 200 }, (_, i) => i))
  const ordered = exchange(p.port, Buffer.alloc(0), true)
  ordered.socket.once('connect', async () => {
    for (let i = 0; i < seq.length; i++) {
      ordered.socket.write(seq.subarray(i, i + 1))
      if (i % 10 === 0) await sleep(2) // separate chunks, each with its own random delay
    }
    ordered.socket.end()
  })
  const result = await within(ordered.done, 10_000, 'ordered bytes')
  t.deepEqual(result.data, seq)
})

test('rate: 256 KiB at 1 MiB/s take at least ~0.2 s and arrive intact', async (t) => {
  const target = await peer(t)
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    upstream: { rate: 1 << 20 },
  })
  const data = randomBytes(256 << 10)
  const started = performance.now()
  const result = await within(exchange(p.port, data).done, 10_000, 'rate-limited transfer')
  const took = performance.now() - started
  t.log(`took ${took.toFixed(0)} ms`)
  t.is(sha256(result.data), sha256(data))
  // 256 KiB at 1 MiB/s is 250 ms; the first 20 ms piece goes at once.
  t.true(took >= 220, `took ${took.toFixed(0)} ms`)
})

test('sliceBytes 1: every byte is its own write, and the data stays intact', async (t) => {
  const target = await peer(t)
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    upstream: { sliceBytes: 1 },
    downstream: { sliceBytes: 1 },
  })
  const data = randomBytes(16 << 10)
  const result = await within(exchange(p.port, data).done, 20_000, 'sliced transfer')
  t.is(sha256(result.data), sha256(data))
  t.deepEqual(p.upstream, { bytes: data.length, writes: data.length })
  t.deepEqual(p.downstream, { bytes: data.length, writes: data.length })
  const chunks = target.conns[0]?.received.length ?? 0
  t.log(`the peer read ${data.length} bytes in ${chunks} chunks`)
  t.true(chunks > 1)
})

test.serial('pause: after pauseAfterBytes nothing moves for pauseMs, then the rest follows', async (t) => {
  const target = await peer(t, 'sink')
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    upstream: { pauseAfterBytes: 1000, pauseMs: 400 },
  })
  const data = randomBytes(5000)
  const { done } = exchange(p.port, data)
  const received = (): number => target.conns[0]?.received.reduce((n, b) => n + b.length, 0) ?? 0
  await until(() => received() === 5000, 5000, 'all bytes')
  await within(done, 5000, 'client close')
  const conn = target.conns[0] as Peer['conns'][number]
  t.is(sha256(Buffer.concat(conn.received)), sha256(data))
  // The peer's reads: the first 1000 bytes, a gap of pauseMs, then the rest.
  let before = 0
  let k = 0
  while (before < 1000) before += (conn.received[k++] as Buffer).length
  t.is(before, 1000, 'a read ends exactly at pauseAfterBytes')
  const gap = (conn.times[k] as number) - (conn.times[k - 1] as number)
  t.log(`gap after 1000 bytes: ${gap.toFixed(1)} ms`)
  t.true(gap >= 350, `the pause lasted ${gap.toFixed(1)} ms`)
})

test('finAfterBytes: the receiver gets exactly N bytes, then FIN; the sender is not blocked', async (t) => {
  const target = await peer(t)
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    upstream: { finAfterBytes: 1000 },
  })
  const data = randomBytes(1 << 20)
  const result = await within(exchange(p.port, data).done, 10_000, 'client close')
  const conn = target.conns[0]
  t.true(conn?.ended, 'the peer saw FIN')
  t.deepEqual(Buffer.concat(conn?.received ?? []), data.subarray(0, 1000))
  t.is(result.error, null)
  t.deepEqual(result.data, data.subarray(0, 1000), 'the echo of the first 1000 bytes, then EOF')
})

test('finAfterBytes downstream: the client gets exactly N bytes, then FIN', async (t) => {
  const target = await peer(t)
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    downstream: { finAfterBytes: 3000 },
  })
  const data = randomBytes(64 << 10)
  const result = await within(exchange(p.port, data).done, 10_000, 'client close')
  t.is(result.error, null)
  t.deepEqual(result.data, data.subarray(0, 3000))
})

test('resetAfterBytes: both ends see the connection reset, the receiver after at most N bytes', async (t) => {
  const target = await peer(t, 'hold')
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    upstream: { resetAfterBytes: 1000 },
  })
  const data = randomBytes(1 << 20)
  const result = await within(exchange(p.port, data, true).done, 10_000, 'client close')
  t.is(result.error, 'ECONNRESET')
  await until(
    () => target.conns[0]?.error != null || target.conns[0]?.ended === true,
    5000,
    'the peer to see the end',
  )
  const conn = target.conns[0]
  if (conn && conn.error === null) {
    // libuv (so Node) reports an RST that arrives while bytes are still unread as EOF (after a
    // partial read with POLLHUP it reports EOF without reading again); the socket is dead all
    // the same, which a write shows (a FIN would leave it writable).
    t.log('the node:net peer saw the reset as EOF (bytes were unread when it arrived)')
    conn.socket.write('probe')
    await until(() => conn.error !== null, 5000, 'the probe write to fail')
  }
  t.true(['ECONNRESET', 'EPIPE'].includes(conn?.error ?? ''), `peer error ${conn?.error}`)
  const got = Buffer.concat(conn?.received ?? [])
  t.true(got.length <= 1000)
  t.deepEqual(got, data.subarray(0, got.length))
  await until(() => p.openSockets === 0, 2000, 'relay sockets to close')
})

test('blackholeAfterBytes: N bytes arrive, then nothing, and no side is closed', async (t) => {
  const target = await peer(t, 'sink')
  const p = await proxy(t, {
    target: { host: '127.0.0.1', port: target.port },
    upstream: { blackholeAfterBytes: 1000 },
  })
  // More than the loopback socket buffers hold, so the client's writes really get stuck.
  const data = Buffer.alloc(32 << 20, 'blackhole ')
  const { socket, done } = exchange(p.port, data)
  let closed = false
  void done.then(() => {
    closed = true
  })
  await until(() => (target.conns[0]?.received.length ?? 0) > 0, 5000, 'the first bytes')
  await sleep(300)
  const conn = target.conns[0]
  t.deepEqual(Buffer.concat(conn?.received ?? []), data.subarray(0, 1000))
  t.false(conn?.ended, 'no FIN reached the peer')
  t.is(conn?.error, null)
  t.false(closed, 'the client is still connected')
  t.true(socket.writableLength > 0, "the client's remaining bytes are stuck")
  t.is(p.openSockets, 2)
  t.is(p.upstream.bytes, 1000)
  await p.close()
  await within(done, 2000, 'close() ends the client connection')
  t.is(p.openSockets, 0)
})

test('close() refuses new clients and closes the open ones', async (t) => {
  const target = await peer(t, 'sink')
  const p = await startFaultProxy({
    target: { host: '127.0.0.1', port: target.port },
    upstream: { latencyMs: 500 },
  })
  const { done } = exchange(p.port, Buffer.from('hello'), true)
  await until(() => p.openSockets === 2, 2000, 'a relayed connection')
  await within(p.close(), 2000, 'close')
  await within(done, 2000, 'client closed')
  const refused = await new Promise<string | undefined>((resolve) => {
    const s = net.connect({ port: p.port, host: '127.0.0.1' })
    s.once('connect', () => {
      s.destroy()
      resolve(undefined)
    })
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code))
  })
  t.is(refused, 'ECONNREFUSED')
  t.is(target.conns[0]?.received.length ?? 0, 0, 'the delayed bytes never went out')
})
