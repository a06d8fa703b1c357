// One measured round of one (test, variant): start, warm up, measure, check, stop.
import { setTimeout as sleep } from 'node:timers/promises'
import { patternBytes } from '../servers/pattern.mjs'
import { shaDigest } from '../servers/responder.mjs'
import {
  busyPercent,
  contextSwitches,
  coreTicks,
  reapedChildrenCpuSeconds,
  socketCount,
  treeCpuSeconds,
} from './cpu.mjs'
import { runDownload } from './download.mjs'
import { runEcho } from './echo.mjs'
import { measureIdle } from './idle.mjs'
import { probe } from './probe.mjs'
import { startServer } from './server-process.mjs'
import { checkBytes, parseWrk, runWrk, wrkConnections } from './wrk.mjs'

/** The server under test runs here. */
export const SERVER_CORE = 0
/** The load generator (wrk, the download, echo and idle clients) and the fixed upstream of proxy tests run here. */
export const CLIENT_CORE = 1
/** Busy % of a core not spent by the processes pinned to it, above which a round is flagged. */
const OTHER_LOAD_LIMIT = 10
/** CPU % of the client core's processes above which the client, not the server, may be the bottleneck. */
const CLIENT_BUSY_LIMIT = 95
/** How long the server's sockets may take to close after the last client left. */
const SOCKET_SETTLE_MS = 2_000

/**
 * Resolves to the round's record; throws UnavailableError if the server cannot start.
 * `upstream` is the round's running upstream server (proxy tests), `file` the static file's path,
 * `downloadBytes` the download size (download tests).
 */
export async function runRound({ test, variant, round, duration, warmup, upstream, file, downloadBytes }) {
  const options = {
    bodySize: test.server?.bodySize,
    delay: test.server?.delay,
    sha: test.server?.sha,
    upstream: upstream ? `127.0.0.1:${upstream.port}` : null,
    file,
  }
  const server = await startServer(variant, options, test.serverCores ?? SERVER_CORE)
  const record = { test: test.id, variant: variant.id, round, valid: false, errors: [], warnings: [] }
  try {
    const socketsAtStart = socketCount(server.pid)
    const ctx = { test, server, upstream, duration, warmup, downloadBytes }
    Object.assign(record, await ROUNDS[test.kind ?? 'wrk'](ctx))
    record.leftoverSockets = await leftoverSockets(server.pid, socketsAtStart)
    record.warnings = warnings(record, CLIENTS[test.kind ?? 'wrk'])
  } catch (err) {
    record.errors.push(err.message)
  } finally {
    if (!server.alive()) record.errors.push(`server exited during the round: ${server.stderr().trim()}`)
    if (upstream && !upstream.alive()) {
      record.errors.push(`upstream exited during the round: ${upstream.stderr().trim()}`)
    }
    await server.stop()
    record.serverStats = server.stats() // what the server printed when stopped (counters, errors)
    await sleep(500) // let the previous server's sockets go before the next variant starts
  }
  record.valid = record.errors.length === 0
  return record
}

/** wrk warm-up, measured wrk run, byte-count check, then the probe. */
async function wrkRound({ test, server, upstream, duration, warmup }) {
  const url = `${test.tls ? 'https' : 'http'}://127.0.0.1:${server.port}/`
  await runWrk({ core: CLIENT_CORE, args: test.wrk, duration: warmup, url })
  const m = await measured(server, upstream, () =>
    runWrk({ core: CLIENT_CORE, args: test.wrk, duration, url }),
  )
  const wrk = parseWrk(m.result)
  const errors = [...wrk.errors]
  if (wrk.requests) {
    errors.push(...checkBytes(wrk, { bodySize: test.bodySize, connections: wrkConnections(test.wrk) }))
  }
  errors.push(...(await probe(server.port, expectedBody(test), { tls: test.tls })))
  return {
    rps: wrk.rps,
    requests: wrk.requests,
    seconds: wrk.seconds,
    bytes: wrk.bytes,
    gbps: test.gbps && wrk.rps != null ? (wrk.rps * test.bodySize) / 1e9 : undefined,
    latency: wrk.latency,
    socketErrors: wrk.socketErrors,
    non2xx: wrk.non2xx,
    ...m.cpu,
    cpuUsPerReq: wrk.requests ? (m.cpu.serverCpuSeconds * 1e6) / wrk.requests : null,
    ctxPer1kReq:
      wrk.requests && m.cpu.serverCtxSwitches != null
        ? (1000 * m.cpu.serverCtxSwitches) / wrk.requests
        : null,
    errors,
    wrkOutput: m.result,
  }
}

/** A warm-up download, then the measured one; the client checks every byte. */
async function downloadRound({ test, server, upstream, downloadBytes }) {
  const get = (bytes) => runDownload({ core: CLIENT_CORE, port: server.port, bytes })
  const warm = await get(test.download.warmupBytes)
  if (warm.errors.length) throw new Error(`warm-up download: ${warm.errors.join('; ')}`)
  const m = await measured(server, upstream, () => get(downloadBytes))
  const { errors, ...download } = m.result
  return { ...perGB(download, m.cpu), errors, download }
}

/** Warm-up echo, then the measured one; the client checks every byte on every connection. */
async function echoRound({ test, server, upstream, duration, warmup }) {
  const { connections } = test.echo
  const run = (seconds) => runEcho({ core: CLIENT_CORE, port: server.port, connections, seconds })
  const warm = await run(warmup)
  if (warm.errors.length) throw new Error(`warm-up echo: ${warm.errors.join('; ')}`)
  const m = await measured(server, upstream, () => run(duration))
  const { errors, ...echo } = m.result
  return { ...perGB(echo, m.cpu), errors, echo }
}

/** GB/s and the server's CPU s/GB of `bytes` moved in `seconds`, with the CPU readings. */
function perGB({ bytes, seconds }, cpu) {
  const gb = bytes / 1e9
  return {
    bytes,
    seconds,
    gbps: seconds ? gb / seconds : null,
    ...cpu,
    cpuSecPerGB: gb > 0 ? cpu.serverCpuSeconds / gb : null,
  }
}

/**
 * A probe (it also warms the request path, so that its first-use memory is in the baseline),
 * the RSS measurement around N idle connections, then another probe: the server still answers.
 */
async function idleRound({ test, server }) {
  const body = expectedBody(test)
  const errors = await probe(server.port, body)
  if (errors.length) throw new Error(errors.join('; '))
  const idle = await measureIdle({
    core: CLIENT_CORE,
    pid: server.pid,
    port: server.port,
    connections: test.idle.connections,
    bodySize: test.bodySize,
    holdMs: test.idle.holdMs ?? 0,
  })
  idle.errors.push(...(await probe(server.port, body)))
  const { errors: idleErrors, ...result } = idle
  return { ...result, errors: idleErrors }
}

const ROUNDS = { wrk: wrkRound, download: downloadRound, echo: echoRound, idle: idleRound }
const CLIENTS = { wrk: 'wrk', download: 'download client', echo: 'echo client', idle: 'idle client' }

/**
 * Runs `run()` (the measured client) and reads, around it: the server's and the upstream's CPU
 * time, the client's (reaped before run() resolves) and each core's busy time.
 */
async function measured(server, upstream, run) {
  // The process tree: node:cluster's CPU is its workers'.
  const upstreamCpu = () => (upstream ? treeCpuSeconds(upstream.pid) : 0)
  const cpuBefore = treeCpuSeconds(server.pid)
  const ctxBefore = contextSwitches(server.pid)
  const upstreamBefore = upstreamCpu()
  const clientBefore = reapedChildrenCpuSeconds()
  const coresBefore = coreTicks()
  const t0 = process.hrtime.bigint()
  const result = await run()
  const wall = Number(process.hrtime.bigint() - t0) / 1e9
  const coresAfter = coreTicks()
  const serverCpuSeconds = treeCpuSeconds(server.pid) - cpuBefore
  const ctxAfter = contextSwitches(server.pid)
  const upstreamCpuSeconds = upstreamCpu() - upstreamBefore
  const clientCpuSeconds = reapedChildrenCpuSeconds() - clientBefore
  return {
    result,
    cpu: {
      wallSeconds: wall,
      serverCpuSeconds,
      serverCtxSwitches: ctxBefore != null && ctxAfter != null ? ctxAfter - ctxBefore : null,
      serverCpuPercent: (100 * serverCpuSeconds) / wall,
      clientCpuPercent: (100 * clientCpuSeconds) / wall,
      upstreamCpuSeconds: upstream ? upstreamCpuSeconds : undefined,
      upstreamCpuPercent: upstream ? (100 * upstreamCpuSeconds) / wall : undefined,
      coreBusy: {
        server: busyPercent(coresBefore, coresAfter, `cpu${SERVER_CORE}`),
        client: busyPercent(coresBefore, coresAfter, `cpu${CLIENT_CORE}`),
      },
      coreSoftirq: {
        server: busyPercent(coresBefore, coresAfter, `cpu${SERVER_CORE}`, 'softirq'),
        client: busyPercent(coresBefore, coresAfter, `cpu${CLIENT_CORE}`, 'softirq'),
      },
    },
  }
}

const bodies = new Map()

/** The body every answer of a wrk test must carry: the static file, the digest (t7), or x's. */
function expectedBody(test) {
  if (!bodies.has(test.id)) {
    const body = test.file
      ? patternBytes(test.file.size)
      : test.server?.sha
        ? Buffer.from(shaDigest(test.server.sha), 'latin1')
        : Buffer.alloc(test.bodySize, 'x')
    bodies.set(test.id, body)
  }
  return bodies.get(test.id)
}

/** Sockets the server still holds beyond those it had when ready, once they had time to close. */
async function leftoverSockets(pid, atStart) {
  const deadline = Date.now() + SOCKET_SETTLE_MS
  for (;;) {
    const now = socketCount(pid)
    if (now === null || atStart === null) return null
    if (now <= atStart || Date.now() >= deadline) return Math.max(0, now - atStart)
    await sleep(100)
  }
}

/**
 * Signs the round measured something other than the server alone, or that the server kept
 * sockets after every client left (kept valid, but reported).
 */
function warnings(record, client) {
  const { coreBusy, coreSoftirq, serverCpuPercent, clientCpuPercent, upstreamCpuPercent, leftoverSockets } =
    record
  const out = []
  if (leftoverSockets > 0) {
    out.push(
      `${leftoverSockets} server sockets still open ${SOCKET_SETTLE_MS / 1000} s after the run (leak?)`,
    )
  }
  if (record.settled === false) out.push('server RSS still moving after 10 s (bytes/conn approximate)')
  if (!coreBusy) return out // the idle test times nothing
  const clientSide = clientCpuPercent + (upstreamCpuPercent ?? 0)
  const clientName = upstreamCpuPercent == null ? client : `${client} + upstream`
  const serverOther = coreBusy.server - serverCpuPercent
  const clientOther = coreBusy.client - clientSide
  // Softirq is named apart: some of it is the measured traffic's own receive processing.
  const other = (core, pct) =>
    `${core} core ${pct.toFixed(0)}% busy with other work (${coreSoftirq[core].toFixed(0)}% softirq)`
  if (serverOther > OTHER_LOAD_LIMIT) out.push(other('server', serverOther))
  if (clientOther > OTHER_LOAD_LIMIT) out.push(other('client', clientOther))
  if (clientSide > CLIENT_BUSY_LIMIT)
    out.push(`${clientName} used ${clientSide.toFixed(0)}% of its core (client-bound?)`)
  return out
}
