#!/usr/bin/env node
// Side-by-side benchmark: every test × variant, rounds interleaved (A B C A B C …).
// See README.md for the method.
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ensureAnchors } from './lib/anchors.mjs'
import { parseCli, usage } from './lib/cli.mjs'
import { writeTestFiles } from './lib/files.mjs'
import { machineInfo, missingTools } from './lib/machine.mjs'
import { updateReadme } from './lib/readme.mjs'
import { markdownReport } from './lib/report-md.mjs'
import { svgChart } from './lib/report-svg.mjs'
import { CLIENT_CORE, runRound, SERVER_CORE } from './lib/round.mjs'
import { startServer, UnavailableError } from './lib/server-process.mjs'
import { summarize } from './lib/stats.mjs'
import { variants as allVariants, anchorId, baselineId, variantsFor } from './lib/variants.mjs'

const RESULTS = fileURLToPath(new URL('results/', import.meta.url))

let opts
try {
  opts = parseCli()
} catch (err) {
  console.error(`${err.message}\n${usage}`)
  process.exit(2)
}
if (opts.help) {
  console.log(usage)
  process.exit(0)
}
const missing = missingTools()
if (missing.length) {
  console.error(`missing: ${missing.join(', ')} (Debian: apt-get install -y wrk util-linux libc-bin)`)
  process.exit(2)
}

const downloadBytes = (test) => (opts.quick ? test.download.quickBytes : test.download.bytes)
const downloadTest = opts.tests.find((t) => t.kind === 'download')
const echoTest = opts.tests.find((t) => t.kind === 'echo')
const idleTest = opts.tests.find((t) => t.kind === 'idle')
const method = {
  rounds: opts.rounds,
  duration: opts.duration,
  warmup: opts.warmup,
  downloadBytes: downloadTest ? downloadBytes(downloadTest) : undefined,
  downloadWarmupBytes: downloadTest?.download.warmupBytes,
  echoConnections: echoTest?.echo.connections,
  idleConnections: idleTest?.idle.connections,
  serverCore: SERVER_CORE,
  clientCore: CLIENT_CORE,
  pinning: `the server under test (for proxy tests: the proxy) alone on core ${SERVER_CORE}; wrk or the download client, and the proxy tests' fixed upstream, together on core ${CLIENT_CORE}`,
  serverCommand: `taskset -c ${SERVER_CORE} node <script> 0 <bodySize> [--upstream 127.0.0.1:<port>] [--file <path>]`,
  clientCommand: `taskset -c ${CLIENT_CORE} wrk --latency -s lib/wrk-report.lua <test.wrk> -d<duration>s http://127.0.0.1:<port>/`,
  downloadCommand: `taskset -c ${CLIENT_CORE} node clients/download.mjs <port> <bytes>`,
  echoCommand: `taskset -c ${CLIENT_CORE} node clients/echo.mjs <port> <connections> <duration>`,
  idleCommand: `taskset -c ${CLIENT_CORE} node clients/idle.mjs <port> <connections> <bodySize> (soft open-files limit raised to the hard limit, like the servers')`,
  upstreamCommand: `taskset -c ${CLIENT_CORE} node <test.upstream.script> 0 <bodySize>, started once per test and round, shared by the round's variants`,
  order: 'per test, per round: every variant once in the listed order',
  cpu: 'server-under-test utime+stime from /proc/PID/stat (all threads) around the measured client run; for proxy tests that is the proxy',
  memory:
    'idle: server VmRSS (/proc/PID/status) once settled (4 readings 250 ms apart within 1%), before and while the idle connections are open; (loaded - before) / connections',
  checks:
    'wrk: socket errors, non-2xx, exact bytes read vs requests × body; then a 3-request keep-alive probe checking every body byte. download: status, Content-Length, byte count, every byte against the pattern. echo: per connection, bytes echoed = bytes sent, every byte against the pattern, closed by the server after the FIN. idle: every connection answered (status, Content-Length, body) and held by the server, none closed while idle, all closed after the FIN, probes before and after',
  summary: 'medians over valid rounds; a round that failed any check is invalid',
}
// Bun and uWS (the bar of issue 13) install on first use; without them their rows say unavailable.
if (opts.variants.some((v) => v.id === 'bun' || v.id === 'uws')) {
  const why = ensureAnchors({ log: (msg) => console.error(`bench: ${msg}`) })
  if (why) console.error(`bench: Bun/uWS unavailable (${why}); their rows will say so`)
}
const machine = machineInfo()
const rounds = []
// `test script` → reason; tried once per test, then skipped (a variant may serve some tests and
// not others: uWS has no async answers for t5).
const unavailable = new Map()
const unavailableKey = (test, variant) => `${test.id} ${variant.script}`

const plan = opts.tests.map((test) => ({ test, variants: variantsFor(test, opts.variants) }))
const runs = plan.reduce((n, p) => n + p.variants.length * opts.rounds, 0)
const secondsPerRun = (test) => {
  if (test.kind === 'download') return 4 + downloadBytes(test) / 2e8
  if (test.kind === 'idle') return 10 + test.idle.connections / 2000 + (test.idle.holdMs ?? 0) / 1000
  return opts.duration + opts.warmup + 2
}
const seconds = plan.reduce(
  (s, { test, variants }) => s + variants.length * opts.rounds * secondsPerRun(test),
  0,
)
console.error(`${runs} runs, about ${Math.ceil(seconds / 60)} min`)

const files = writeTestFiles(opts.tests) // test id → path of its static file
try {
  for (const { test, variants } of plan) {
    for (let round = 1; round <= opts.rounds; round++) {
      const upstream = test.upstream ? await startUpstream(test) : null
      try {
        for (const variant of variants) {
          await runOne(test, variant, round, upstream)
        }
      } finally {
        await upstream?.stop?.()
      }
    }
  }
} finally {
  files.remove()
}

async function startUpstream(test) {
  const { script, bodySize } = test.upstream
  try {
    return await startServer({ id: `${test.id} upstream`, script }, { bodySize }, CLIENT_CORE)
  } catch (err) {
    return { failed: err.message.split('\n')[0] } // every variant of this round is then invalid
  }
}

async function runOne(test, variant, round, upstream) {
  const tag = `${test.id} ${variant.id.padEnd(10)} round ${round}/${opts.rounds}`
  if (unavailable.has(unavailableKey(test, variant))) {
    rounds.push(skipped(test, variant, round))
    return
  }
  if (upstream?.failed) {
    rounds.push({ ...skipped(test, variant, round), unavailable: undefined, errors: [upstream.failed] })
    console.error(`${tag}  INVALID: ${upstream.failed}`)
    return
  }
  try {
    const r = await runRound({
      test,
      variant,
      round,
      duration: opts.duration,
      warmup: opts.warmup,
      upstream,
      file: files.path(test.id),
      downloadBytes: test.download ? downloadBytes(test) : undefined,
    })
    rounds.push(r)
    const status = r.valid
      ? r.warnings.map((w) => `  warning: ${w}`).join('')
      : `  INVALID: ${r.errors.join('; ')}`
    console.error(`${tag}  ${progress(r)}${status}`)
  } catch (err) {
    if (!(err instanceof UnavailableError)) throw err
    unavailable.set(unavailableKey(test, variant), err.message)
    rounds.push(skipped(test, variant, round))
    console.error(`${tag}  UNAVAILABLE: ${err.message}`)
  }
}

function progress(r) {
  if (r.bytesPerConn !== undefined) {
    const mb = (bytes) => (bytes / 1e6).toFixed(1)
    return `${Math.round(r.bytesPerConn)} B/conn  (RSS ${mb(r.rssBaseline)} → ${mb(r.rssLoaded)} MB)`
  }
  if (r.cpuSecPerGB !== undefined) {
    return `${r.gbps?.toFixed(2) ?? '–'} GB/s  ${r.cpuSecPerGB?.toFixed(3) ?? '–'} CPU s/GB`
  }
  const gbps = r.gbps == null ? '' : ` (${r.gbps.toFixed(2)} GB/s)`
  return `${Math.round(r.rps ?? 0)} req/s${gbps}  ${r.cpuUsPerReq?.toFixed(2) ?? '–'} µs/req`
}

function skipped(test, variant, round) {
  const reason = unavailable.get(unavailableKey(test, variant))
  return {
    test: test.id,
    variant: variant.id,
    round,
    valid: false,
    unavailable: reason,
    errors: [],
    warnings: [],
  }
}

const summary = summarize(rounds, opts.tests, opts.variants, baselineId, anchorId)
const baselineLabel = allVariants.find((v) => v.id === baselineId).label
const anchorLabel = allVariants.find((v) => v.id === anchorId).label
const report = { machine, method, summary, rounds, baselineLabel, anchorLabel }
const markdown = markdownReport(report)
const svg = svgChart({
  summary,
  tests: opts.tests,
  variants: opts.variants,
  title: `One server core (${machine.cpuModel})`,
})

mkdirSync(RESULTS, { recursive: true })
writeFileSync(
  `${RESULTS}latest.json`,
  `${JSON.stringify({ machine, method, tests: opts.tests, variants: opts.variants, rounds, summary }, null, 2)}\n`,
)
writeFileSync(`${RESULTS}latest.md`, markdown)
writeFileSync(`${RESULTS}latest.svg`, svg)
// Quick, short or partial passes are for checking; only full runs become the README's table.
if (opts.full && updateReadme(markdownReport({ ...report, compact: true }))) {
  console.error('README.md benchmark section updated')
}
console.log(markdown)
