// Issue 16, item 2: a worker thread that called listen() and ends (terminated, or exiting by
// itself without a shutdown) must take its server with it, as Node does for its own servers.
// It did not: the dead workers' ports kept accepting, their connections stayed open
// (CLOSE-WAIT) and descriptors leaked (20 workers: 24 → 1,085). Every native resource of an
// N-API environment is now released by a cleanup hook when the environment ends.
// Serial: descriptor counts must not share the process with other tests.
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import test from 'ava'
import { listen } from 'tcpserver-rs'
import { fdCount, sleep, until, within } from './helpers/index.ts'

const fixture = fileURLToPath(new URL('./fixtures/worker-server.mjs', import.meta.url))
const WORKERS = 20
const CLIENTS_PER_WORKER = 3

interface Started {
  worker: Worker
  port: number
  accepted: number
}

/** Starts a worker running the fixture; resolves once it listens. */
function startWorker(data: object = {}): Promise<Started> {
  const worker = new Worker(fixture, { workerData: data })
  const started: Started = { worker, port: 0, accepted: 0 }
  return within(
    new Promise((resolve, reject) => {
      worker.on('message', (m: { port?: number; accepted?: number }) => {
        if (m.accepted !== undefined) started.accepted++
        if (m.port !== undefined) {
          started.port = m.port
          resolve(started)
        }
      })
      worker.once('error', reject)
    }),
    10_000,
    'worker listening',
  )
}

/** A client that records how it ended. */
function client(port: number): Promise<{ socket: net.Socket; ended: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const ended = new Promise<string>((r) => {
      socket.on('end', () => r('EOF'))
      socket.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'))
      socket.on('close', () => r('closed'))
    })
    socket.resume()
    socket.once('connect', () => resolve({ socket, ended }))
    socket.once('error', reject)
  })
}

/** `ECONNREFUSED` once nothing listens on `port`, or `'accepted'`. */
function probe(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve('accepted')
    })
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'))
  })
}

/** Waits until the descriptor count is back at `baseline` (bounded); returns the last count. */
async function settleFds(baseline: number): Promise<number> {
  let now = fdCount()
  for (let i = 0; i < 100 && now > baseline; i++) {
    await sleep(50)
    now = fdCount()
  }
  return now
}

test.before(async () => {
  // Warm-up: the process-wide runtime and a first worker's one-time costs come before the
  // baseline is taken.
  const warm = await listen({ address: '127.0.0.1:0', loops: 1 })
  await warm.halt()
  const w = await startWorker()
  await w.worker.terminate()
})

test.serial(
  `${WORKERS} terminated workers: ports refuse, clients see EOF/RST, descriptors back to baseline (was: ports accepting, 24 → 1,085 fds)`,
  async (t) => {
    const baseline = await settleFds(fdCount())
    const workers = await Promise.all(Array.from({ length: WORKERS }, () => startWorker({ loops: 2 })))
    const clients = []
    for (const w of workers) {
      for (let i = 0; i < CLIENTS_PER_WORKER; i++) clients.push(await client(w.port))
    }
    await until(
      () => workers.every((w) => w.accepted === CLIENTS_PER_WORKER),
      10_000,
      'every connection accepted',
    )
    const during = fdCount()
    await Promise.all(workers.map((w) => w.worker.terminate()))

    // Every client sees the end of its connection.
    const endings = await within(Promise.all(clients.map((c) => c.ended)), 5000, 'clients see the close')
    t.true(
      endings.every((e) => ['EOF', 'ECONNRESET', 'closed'].includes(e)),
      endings.join(),
    )
    for (const c of clients) c.socket.destroy()
    // Every port refuses new clients.
    const probes = await Promise.all(workers.map((w) => probe(w.port)))
    t.deepEqual(
      probes.filter((p) => p !== 'ECONNREFUSED'),
      [],
    )
    const after = await settleFds(baseline)
    t.log(
      `descriptors: baseline ${baseline}, with ${WORKERS} workers and ${clients.length} clients ${during}, after ${after}`,
    )
    t.is(after, baseline)
  },
)

test.serial(
  'a worker that exits by itself (process.exit in the worker, no shutdown) releases its server and its outbound connection',
  async (t) => {
    const outboundPeer = net.createServer()
    const peerEnded: Promise<string>[] = []
    outboundPeer.on('connection', (s) => {
      s.resume()
      peerEnded.push(
        new Promise((r) => {
          s.on('end', () => r('EOF'))
          s.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'))
        }),
      )
    })
    await new Promise<void>((r) => outboundPeer.listen(0, '127.0.0.1', r))
    t.teardown(() => outboundPeer.close())
    const peerPort = (outboundPeer.address() as net.AddressInfo).port

    const baseline = await settleFds(fdCount())
    const w = await startWorker({ connectTo: peerPort })
    const c = await client(w.port)
    await until(() => w.accepted === 1 && peerEnded.length === 1, 5000, 'both connections up')
    const exited = new Promise<number>((r) => w.worker.once('exit', r))
    w.worker.postMessage('exit')
    t.is(await within(exited, 5000, 'worker exit'), 0)
    t.true(['EOF', 'ECONNRESET', 'closed'].includes(await within(c.ended, 5000, 'client sees the close')))
    t.true(
      ['EOF', 'ECONNRESET'].includes(
        await within(peerEnded[0] as Promise<string>, 5000, 'peer sees the close'),
      ),
    )
    c.socket.destroy()
    t.is(await probe(w.port), 'ECONNREFUSED')
    t.is(await settleFds(baseline), baseline)
  },
)
