// The soak (issue 16, slow tier only: TCPSERVER_SLOW=1): mixed load for TCPSERVER_SOAK_SECONDS
// (default 600) against servers in this process: keep-alive and one-shot echo over plain TCP
// and TLS, a proxy that pipe()s to an upstream, sendFile() of random ranges, and clients that
// reset. Every response is compared by SHA-256. Every 10 s (TCPSERVER_SOAK_SAMPLE_MS) it samples
// descriptors, RSS (after a GC) and each server's stats(). It asserts: no wrong byte and no
// unexpected error; descriptors and RSS flat after the warm-up (the first fifth, at least one
// sample); after the load, descriptors back at the baseline, nothing active, and counters that
// match what the clients did (accepted = connections made, TLS handshakes, files sent, pipes).
// Bounded in time (the deadline) and in count (MAX_OPS per loop).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import v8 from 'node:v8'
import vm from 'node:vm'
import test from 'ava'
import { type Connection, connect, listen, type Server } from 'tcpserver-rs'
import { fdCount, rss, sleep } from '../helpers/index.js'
import { fileRanges, type Go, keepAlive, newTally, oneShot, resets, type Target } from './load.js'

const slow = process.env.TCPSERVER_SLOW === '1'
const SECONDS = Number(process.env.TCPSERVER_SOAK_SECONDS ?? 600)
const SAMPLE_MS = Number(process.env.TCPSERVER_SOAK_SAMPLE_MS ?? 10_000)
/** Cap per client loop, so a very fast machine still stops. */
const MAX_OPS = 5_000_000
/** Descriptors may wander by the clients in flight (each loop holds at most one socket pair). */
const FD_SLACK = 24
/** RSS may grow this much over the run after the warm-up (allocator and V8 high-water marks). */
const RSS_LIMIT = 48 << 20
const MB = 1 << 20

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

const dir = fileURLToPath(new URL('../fixtures/tls/', import.meta.url))

/** Open descriptors: kernel pipes apart (the splice pool of pipe() keeps up to 64 pairs). */
function descriptors(): { pipes: number; other: number } {
  let pipes = 0
  let other = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = ''
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      continue // the directory's own descriptor, closed by now
    }
    if (target.startsWith('pipe:')) pipes++
    else other++
  }
  return { pipes, other }
}
const SPLICE_POOL_FDS = 2 * 64

const echo = async (conn: Connection): Promise<void> => {
  for await (const chunk of conn) await conn.write(chunk)
}

interface Sample {
  s: number
  fds: number
  rssMb: number
  ops: number
  active: number
}

test('soak: mixed load, every response hash-checked; descriptors, RSS and counters flat and consistent', async (t) => {
  if (!slow) {
    t.pass('skipped: set TCPSERVER_SLOW=1 (npm run test:slow)')
    return
  }
  t.timeout(SECONDS * 1000 + 180_000)
  const cert = readFileSync(`${dir}server.crt`)
  const key = readFileSync(`${dir}server.key`)
  const ca = readFileSync(`${dir}ca.crt`)
  const tmp = mkdtempSync(join(tmpdir(), 'tcpserver-soak-'))
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }))
  const file = randomBytes(4 << 20)
  const filePath = join(tmp, 'file.bin')
  writeFileSync(filePath, file)

  const servers: Record<string, Server> = {}
  const base = { address: '127.0.0.1:0', loops: 2 }
  servers.echo = await listen({ ...base, handler: echo })
  servers.tls = await listen({ ...base, tls: { cert, key }, handler: echo })
  servers.upstream = await listen({ ...base, handler: echo })
  const upstream = `127.0.0.1:${(servers.upstream.addresses[0] as { port: number }).port}`
  servers.proxy = await listen({
    ...base,
    async handler(conn) {
      const up = await connect(upstream)
      try {
        await conn.pipe(up)
      } finally {
        up.close()
      }
    },
  })
  servers.files = await listen({
    ...base,
    async handler(conn) {
      let head = ''
      while (!head.includes('\n')) {
        const chunk = await conn.read()
        if (chunk === null) return
        head += chunk.toString()
      }
      const [offset, length] = head.split('\n')[0]?.split(' ').map(Number) ?? []
      await conn.sendFile(filePath, { offset, length })
    },
  })
  servers.resets = await listen({ ...base, handler: echo, onError: () => {} })
  t.teardown(async () => {
    await Promise.all(Object.values(servers).map((s) => s.halt()))
  })
  const port = (name: string): number => ((servers[name] as Server).addresses[0] as { port: number }).port
  const target = (name: string, tlsOn = false): Target => ({
    name,
    port: port(name),
    ...(tlsOn ? { tls: { ca, servername: 'localhost' } } : {}),
  })

  gc()
  const baseline = descriptors()
  const tally = newTally()
  const deadline = Date.now() + SECONDS * 1000
  const capped = (): Go => {
    let n = 0
    return () => Date.now() < deadline && n++ < MAX_OPS
  }
  const loops = [
    ...Array.from({ length: 4 }, () => keepAlive(target('echo'), 'keep-alive', capped(), tally)),
    ...Array.from({ length: 2 }, () => oneShot(target('echo'), 'new connection', capped(), tally)),
    keepAlive(target('tls', true), 'TLS keep-alive', capped(), tally),
    oneShot(target('tls', true), 'TLS new connection', capped(), tally),
    ...Array.from({ length: 2 }, () => oneShot(target('proxy'), 'pipe', capped(), tally)),
    ...Array.from({ length: 2 }, () => fileRanges(target('files'), file, capped(), tally)),
    resets(target('resets'), capped(), tally),
  ]
  const all = Promise.all(loops)

  const samples: Sample[] = []
  const started = Date.now()
  const totalOps = () => Object.values(tally.ops).reduce((a, b) => a + b, 0)
  while (Date.now() < deadline) {
    await sleep(Math.min(SAMPLE_MS, Math.max(0, deadline - Date.now())))
    gc()
    samples.push({
      s: Math.round((Date.now() - started) / 1000),
      fds: fdCount(),
      rssMb: Math.round((rss() / MB) * 10) / 10,
      ops: totalOps(),
      active: Object.values(servers).reduce((a, s) => a + s.stats().active, 0),
    })
  }
  await all

  // Drained: nothing active, descriptors back at the baseline.
  const until = Date.now() + 10_000
  const active = () => Object.values(servers).reduce((a, s) => a + s.stats().active, 0)
  while ((active() > 0 || descriptors().other > baseline.other) && Date.now() < until) await sleep(50)
  const final = descriptors()

  t.log(`duration ${SECONDS} s, samples every ${SAMPLE_MS / 1000} s:`)
  for (const s of samples) t.log(`  t=${s.s}s fds=${s.fds} rss=${s.rssMb}MB ops=${s.ops} active=${s.active}`)
  t.log(`operations: ${JSON.stringify(tally.ops)}; ${Math.round(tally.bytes / MB)} MiB checked`)
  t.log(`connections made: ${JSON.stringify(tally.connects)}`)
  const stats = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.stats()]))
  t.log(
    `stats: ${JSON.stringify(Object.fromEntries(Object.entries(stats).map(([k, s]) => [k, { accepted: s.accepted, active: s.active, forced: s.forced, panics: s.panics }])))}`,
  )
  t.log(
    `descriptors: baseline ${baseline.other} + ${baseline.pipes} pipes, final ${final.other} + ${final.pipes} pipes (the splice pool)`,
  )

  t.deepEqual(tally.failures.slice(0, 20), [], `${tally.failures.length} failures`)
  for (const kind of [
    'keep-alive',
    'new connection',
    'TLS keep-alive',
    'TLS new connection',
    'pipe',
    'sendFile',
    'reset',
  ]) {
    t.true((tally.ops[kind] ?? 0) > 0, `${kind} ran`)
  }

  // Flat after the warm-up.
  const warm = Math.max(1, Math.floor(samples.length / 5))
  const warmUp = samples.slice(0, warm)
  const steady = samples.slice(warm)
  if (steady.length > 0) {
    const warmFds = Math.max(...warmUp.map((s) => s.fds))
    const maxFds = Math.max(...steady.map((s) => s.fds))
    t.true(maxFds <= warmFds + FD_SLACK, `descriptors ${warmFds} after the warm-up, up to ${maxFds} later`)
    const firstRss = steady[0]?.rssMb ?? 0
    const lastRss = Math.max(...steady.slice(-Math.max(1, Math.floor(steady.length / 3))).map((s) => s.rssMb))
    t.true(
      (lastRss - firstRss) * MB < RSS_LIMIT,
      `RSS ${firstRss} MB after the warm-up, ${lastRss} MB at the end (limit +${RSS_LIMIT / MB} MB)`,
    )
  }

  // Counters match what the clients did.
  t.is(final.other, baseline.other, 'descriptors (other than pooled pipes) back at the baseline')
  t.true(final.pipes - baseline.pipes <= SPLICE_POOL_FDS, `pipes: ${baseline.pipes} → ${final.pipes}`)
  for (const [name, s] of Object.entries(stats)) {
    t.is(s.active, 0, `${name}: active`)
    t.is(s.forced, 0, `${name}: forced`)
    t.is(s.panics, 0, `${name}: panics`)
    const made = name === 'upstream' ? (tally.ops.pipe ?? 0) : (tally.connects[name] ?? 0)
    t.is(s.accepted, made, `${name}: accepted = connections made`)
  }
  t.is(stats.tls?.tls?.handshakes, tally.connects.tls, 'TLS handshakes')
  t.is(stats.files?.dataPath.filesSent, tally.ops.sendFile, 'files sent')
  const pipes = (stats.proxy?.dataPath.pipesSpliced ?? 0) + (stats.proxy?.dataPath.pipesCopied ?? 0)
  t.is(pipes, tally.ops.pipe, 'pipes')
})
