// Faults on a real network path (issue 6): packet loss, a mid-transfer RST and a blackhole, made
// with nft rules on a veth link between two network namespaces. Root only (skips otherwise).
//
//   the ava worker's namespace (scripts/test-js.sh: `unshare -n`, only lo)
//   │   blackhole routes 10.231.n.0/30 and fd00:231:n::/64: nothing for the link leaves here
//   │
//   ├── tcps-<pid>-a  "server host"                       ├── tcps-<pid>-b  "client host"
//   │     tcps<pid>a  10.231.n.1/30  fd00:231:n::1/64 ◄── veth ──► tcps<pid>b  10.231.n.2/30  fd00:231:n::2/64
//   │     node fixtures/netns-echo-server.mjs                │     node fixtures/netns-echo-client.mjs
//   │     nft table inet tcps_fault (the faults, per test)   │     (one per transfer)
//
// n = pid % 256 for IPv4, pid % 65536 (hex) for IPv6. The namespaces are made once for the file (test.before) and deleted in
// test.after.always, with the veth pair, every socket in them and the routes. Both programs are
// child processes started with `ip netns exec`: the worker itself never joins either namespace.
// The client streams 100 MB of random bytes (64 KiB at a time, never all in memory), compares
// the echo byte for byte as it returns and hashes both directions (SHA-256); the server hashes
// what it read. Per test: a fresh server, a warm-up echo (its descriptor count is the baseline),
// the fault, the transfer, then a fresh connection that must be served, stats().active back to
// 0, the descriptor count back to the baseline, and a clean graceful exit. Every wait has a
// deadline; the figures (time, drops, retransmissions from nstat) go to t.log. Measured here
// (2 shared cores, one MSS per packet): 1 % loss ~3.5 s, 5 % loss 12-17 s, the RST ~0.6 s, each
// blackhole ~3.6 s; the file ~30 s.
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import type { ServerStats } from 'tcpserver-rs'
import { isRoot, sleep, within } from '../helpers/index.js'
import {
  createNetnsPair,
  type JsonChild,
  jsonChild,
  missingNetnsTool,
  type NetnsPair,
  type Side,
} from '../helpers/netns.js'

const SERVER = fileURLToPath(new URL('../fixtures/netns-echo-server.mjs', import.meta.url))
const CLIENT = fileURLToPath(new URL('../fixtures/netns-echo-client.mjs', import.meta.url))
const SIZE = 100_000_000
/** Where the reset and the blackhole cut the flow: client → server bytes (IP packets) seen. */
const CUT = 10 << 20
/** A client's own deadline; the test waits a little longer for its report. */
const CLIENT_DEADLINE = 60_000
const PROBE = 64 << 10

const missing = missingNetnsTool()
const skip = !isRoot
  ? 'needs root (network namespaces, nft)'
  : missing && `${missing} is not installed (scripts/install-tools.sh installs it)`
let pair: NetnsPair | undefined

test.before(() => {
  if (!skip) pair = createNetnsPair()
})
test.after.always(() => {
  pair?.remove()
})

interface HandlerRecord {
  id: number
  read: number
  hash: string
  /** `done`, or the code of the error the handler failed with. */
  outcome: string
  message?: string
}

interface ClientResult {
  ms: number
  sendMs: number | null
  /** When a byte last moved (connected, data came in, or the write queue drained). */
  lastMoveMs: number
  sent: number
  sentHash: string
  received: number
  receivedHash: string
  /** Offset of the first echoed byte that differs from what was sent, or null. */
  mismatchAt: number | null
  /** The server's FIN arrived. */
  ended: boolean
  error: string | null
  message: string | null
}

interface EchoServer {
  proc: JsonChild
  host: string
  port: number
  stats(): Promise<{ stats: ServerStats; fds: number }>
  handler(ms?: number): Promise<HandlerRecord>
  /** onError codes reported so far. */
  errors(): string[]
}

async function startServer(
  t: ExecutionContext,
  p: NetnsPair,
  family: 4 | 6,
  options = {},
): Promise<EchoServer> {
  const host = family === 4 ? p.a.v4 : p.a.v6
  const address = family === 4 ? `${host}:0` : `[${host}]:0`
  const proc = jsonChild(p.spawn(p.a, process.execPath, [SERVER, JSON.stringify({ address, ...options })]))
  t.teardown(() => proc.kill())
  const hello = await proc.next('port')
  return {
    proc,
    host,
    port: hello.port as number,
    async stats() {
      proc.child.stdin.write('stats\n')
      return (await proc.next('stats')) as unknown as { stats: ServerStats; fds: number }
    },
    async handler(ms = 10_000) {
      return (await proc.next('handler', ms)).handler as HandlerRecord
    },
    errors: () => proc.messages.filter((m) => 'error' in m).map((m) => String(m.error)),
  }
}

/** Runs the client in namespace B against `server`; resolves with its report (bounded). */
async function runClient(
  t: ExecutionContext,
  p: NetnsPair,
  server: EchoServer,
  bytes: number,
  idleMs = 15_000,
): Promise<ClientResult> {
  const args = { host: server.host, port: server.port, bytes, idleMs, deadlineMs: CLIENT_DEADLINE }
  const proc = jsonChild(p.spawn(p.b, process.execPath, [CLIENT, JSON.stringify(args)]))
  t.teardown(() => proc.kill())
  const result = (await proc.next('sent', CLIENT_DEADLINE + 10_000)) as unknown as ClientResult
  t.is(await within(proc.exited, 5000, 'the client to exit'), 0)
  return result
}

/** A fresh small echo is served intact. */
async function probe(t: ExecutionContext, p: NetnsPair, server: EchoServer, what: string): Promise<void> {
  const r = await runClient(t, p, server, PROBE, 10_000) // a lost SYN costs 1 s, two 3 s
  t.true(
    r.error === null && r.ended && r.received === PROBE && r.receivedHash === r.sentHash,
    `${what}: ${JSON.stringify(r)}`,
  )
  const h = await server.handler()
  t.is(h.outcome, 'done', `${what}: the handler ended normally`)
  t.is(h.hash, r.sentHash, `${what}: the server read what was sent`)
}

/** Loads `chains` (name → rules) as `table inet tcps_fault` in `side`; deleted at teardown. */
function fault(
  t: ExecutionContext,
  p: NetnsPair,
  side: Side,
  chains: Record<'input' | 'output', string>,
): void {
  const body = Object.entries(chains)
    .map(
      ([hook, rules]) =>
        `  chain ${hook} {\n    type filter hook ${hook} priority 0; policy accept;\n    ${rules}\n  }`,
    )
    .join('\n')
  p.load(side, `table inet tcps_fault {\n${body}\n}\n`)
  t.teardown(() => {
    try {
      p.nft(side, ['delete', 'table', 'inet', 'tcps_fault'])
    } catch {}
  })
}

/** Packets matched by the fault's counters, per chain. */
function dropped(p: NetnsPair, side: Side): Record<string, number> {
  const out: Record<string, number> = {}
  let chain = ''
  for (const line of p.nft(side, ['list', 'table', 'inet', 'tcps_fault']).split('\n')) {
    const c = /^\s*chain (\w+)/.exec(line)
    if (c) chain = c[1] as string
    const m = /counter packets (\d+)/.exec(line)
    if (m) out[chain] = (out[chain] ?? 0) + Number(m[1])
  }
  return out
}

const COUNTERS = [
  'TcpRetransSegs',
  'TcpExtTCPTimeouts',
  'TcpExtTCPLossProbes',
  'TcpOutRsts',
  'TcpEstabResets',
]

/** Kernel counters of both namespaces; `delta()` reports what changed since. */
function kernelCounters(p: NetnsPair): { delta(): string } {
  const before = { a: p.nstat(p.a), b: p.nstat(p.b) }
  return {
    delta() {
      const after = { a: p.nstat(p.a), b: p.nstat(p.b) }
      return (['a', 'b'] as const)
        .map(
          (s) =>
            `${s === 'a' ? 'server' : 'client'}: ${COUNTERS.map((k) => `${k}=${(after[s][k] ?? 0) - (before[s][k] ?? 0)}`).join(' ')}`,
        )
        .join('; ')
    },
  }
}

/** The afterlife: a fresh connection is served, nothing stays open, and the server exits cleanly. */
async function stillServes(t: ExecutionContext, p: NetnsPair, server: EchoServer, baselineFds: number) {
  await probe(t, p, server, 'a fresh connection after the fault')
  const deadline = Date.now() + 15_000
  let last = await server.stats()
  while (last.stats.active !== 0 || last.fds !== baselineFds) {
    if (Date.now() > deadline) {
      throw new Error(`stats().active 0 and ${baselineFds} descriptors expected: ${JSON.stringify(last)}`)
    }
    await sleep(50)
    last = await server.stats()
  }
  t.is(last.stats.panics, 0)
  server.proc.child.stdin.write('exit\n')
  t.deepEqual((await server.proc.next('closed')).closed, { completed: 0, forced: 0 })
  t.is(await within(server.proc.exited, 5000, 'the server to exit by itself'), 0)
  t.is(server.proc.stderr(), '', "nothing on the server's stderr")
  return last.stats
}

/** A server with a warm-up echo behind it; returns it with its descriptor baseline. */
async function warmServer(t: ExecutionContext, family: 4 | 6, options = {}) {
  if (skip || !pair) {
    t.log(`skipped: ${skip}`)
    return undefined
  }
  const server = await startServer(t, pair, family, options)
  // Tokio creates some descriptors lazily: the baseline is taken after one connection.
  await probe(t, pair, server, 'the warm-up echo')
  const { fds } = await server.stats()
  return { p: pair, server, fds }
}

for (const [percent, family] of [
  [1, 6],
  [5, 4],
] as const) {
  test.serial(
    `${percent} % random loss each way (IPv${family}): the echo of ${SIZE} bytes arrives intact, in bounded time`,
    async (t) => {
      const w = await warmServer(t, family)
      if (!w) return t.pass()
      const { p, server, fds } = w
      const match = (dir: 'dport' | 'sport') => `tcp ${dir} ${server.port} numgen random mod 100 < ${percent}`
      fault(t, p, p.a, {
        input: `iifname "${p.a.dev}" ${match('dport')} counter drop`,
        output: `oifname "${p.a.dev}" ${match('sport')} counter drop`,
      })
      const kernel = kernelCounters(p)
      const r = await runClient(t, p, server, SIZE)
      t.log(
        `${(r.ms / 1000).toFixed(2)} s (${((2 * SIZE * 8) / r.ms / 1000).toFixed(0)} Mbit/s both ways), dropped ${JSON.stringify(dropped(p, p.a))}`,
      )
      t.log(kernel.delta())
      t.is(r.error, null, `client: ${r.message}`)
      t.true(r.ended, 'the server closed after the echo')
      t.is(r.sent, SIZE)
      t.is(r.received, SIZE)
      t.is(r.mismatchAt, null)
      t.is(r.receivedHash, r.sentHash)
      const h = await server.handler()
      t.is(h.outcome, 'done')
      t.is(h.read, SIZE)
      t.is(h.hash, r.sentHash, 'the server read exactly what was sent')
      const d = dropped(p, p.a)
      t.true((d.input ?? 0) > 0 && (d.output ?? 0) > 0, 'packets were dropped both ways')
      await stillServes(t, p, server, fds)
      t.deepEqual(server.errors(), [])
    },
  )
}

test.serial(
  `RST after ${CUT} bytes upstream: the client gets ECONNRESET, the handler a typed error, and the server goes on`,
  async (t) => {
    const w = await warmServer(t, 4, { idleTimeout: 10_000 })
    if (!w) return t.pass()
    const { p, server, fds } = w
    // The first client packet of the flow past CUT bytes is answered with an RST (to the
    // client). The server learns of it from the client host's RST to its next segment; RSTs
    // themselves pass. idleTimeout is only a backstop: it must not be what ends the handler.
    // The output rule only counts the RSTs leaving the server host.
    fault(t, p, p.a, {
      input: `iifname "${p.a.dev}" tcp dport ${server.port} tcp flags ! rst ct original bytes > ${CUT} counter reject with tcp reset`,
      output: `oifname "${p.a.dev}" tcp sport ${server.port} tcp flags rst counter`,
    })
    const kernel = kernelCounters(p)
    const r = await runClient(t, p, server, SIZE)
    const h = await server.handler(15_000)
    t.log(
      `client: ${r.error} after ${r.sent} bytes sent, ${r.received} echoed, ${(r.ms / 1000).toFixed(2)} s; handler: ${h.outcome} (${h.message}) after ${h.read} bytes`,
    )
    t.log(`matched ${JSON.stringify(dropped(p, p.a))}; ${kernel.delta()}`)
    t.is(r.error, 'ECONNRESET', `client: ${r.message}`)
    t.is(r.mismatchAt, null, 'what came back is a prefix of what was sent')
    t.true(r.received <= h.read && h.read <= CUT, 'the cut fell at CUT bytes')
    t.true(['ECONNRESET', 'EPIPE', 'ERR_SOCKET_CLOSED'].includes(h.outcome), `handler: ${h.outcome}`)
    await stillServes(t, p, server, fds)
    t.deepEqual(server.errors(), [h.outcome], 'onError saw the one failure, typed')
  },
)

// idleTimeout alone must end it (no byte moves either way); with a shorter writeTimeout, the
// handler stuck in write() (the client takes no more echo) usually ends by that instead, but one
// that was waiting in read() when the link died can only end by idleTimeout.
const blackholes: Array<[string, { idleTimeout: number; writeTimeout?: number }, Array<'idle' | 'write'>]> = [
  ['idleTimeout 1000', { idleTimeout: 1000 }, ['idle']],
  ['writeTimeout 1000, idleTimeout 3000', { idleTimeout: 3000, writeTimeout: 1000 }, ['write', 'idle']],
]
const TIMEOUT_CODES = { idle: 'ERR_TCPSERVER_IDLE_TIMEOUT', write: 'ERR_TCPSERVER_WRITE_TIMEOUT' } as const

for (const [name, options, kinds] of blackholes) {
  test.serial(
    `blackhole after ${CUT} bytes upstream (IPv6), ${name}: the handler fails with ${kinds.map((k) => TIMEOUT_CODES[k]).join(' or ')}, the client with ETIMEDOUT; nothing hangs`,
    async (t) => {
      const w = await warmServer(t, 6, options)
      if (!w) return t.pass()
      const { p, server, fds } = w
      // Once the client sent CUT bytes, every packet of the flow is dropped, both ways: a dead
      // link. Neither end gets a FIN or an RST; only timeouts can end this.
      const flow = `ct original bytes > ${CUT} counter drop`
      fault(t, p, p.a, {
        input: `iifname "${p.a.dev}" tcp dport ${server.port} ${flow}`,
        output: `oifname "${p.a.dev}" tcp sport ${server.port} ${flow}`,
      })
      const kernel = kernelCounters(p)
      const started = Date.now()
      const r = await runClient(t, p, server, SIZE, 3000)
      const h = await server.handler()
      const { stats } = await server.stats()
      t.log(
        `client: ${r.error} after ${r.sent} bytes sent, ${r.received} echoed, ${(r.ms / 1000).toFixed(2)} s (last byte moved at ${(r.lastMoveMs / 1000).toFixed(2)} s); handler: ${h.outcome} after ${h.read} bytes; timeouts ${JSON.stringify(stats.timeouts)}`,
      )
      t.log(`dropped ${JSON.stringify(dropped(p, p.a))}; ${kernel.delta()}`)
      t.is(r.error, 'ETIMEDOUT', `client: ${r.message}`)
      t.is(r.mismatchAt, null, 'what came back is a prefix of what was sent')
      t.true(r.received <= h.read && h.read <= CUT)
      const kind = kinds.find((k) => TIMEOUT_CODES[k] === h.outcome)
      t.truthy(kind, `handler: ${h.outcome} (${h.message})`)
      t.is(stats.timeouts.idle + stats.timeouts.write, 1, 'one timeout counted')
      if (kind) t.is(stats.timeouts[kind], 1, `counted as ${kind}`)
      t.true(Date.now() - started < 15_000, 'bounded by the timeouts, not by TCP retries')
      await stillServes(t, p, server, fds)
      t.deepEqual(server.errors(), [h.outcome], 'onError saw the one failure, typed')
    },
  )
}
