#!/usr/bin/env node
// Side-by-side benchmark: every test × variant, rounds interleaved (A B C A B C …).
// See README.md for the method.
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseCli, usage } from './lib/cli.mjs'
import { machineInfo, missingTools } from './lib/machine.mjs'
import { updateReadme } from './lib/readme.mjs'
import { markdownReport } from './lib/report-md.mjs'
import { svgChart } from './lib/report-svg.mjs'
import { CLIENT_CORE, runRound, SERVER_CORE } from './lib/round.mjs'
import { UnavailableError } from './lib/server-process.mjs'
import { summarize } from './lib/stats.mjs'
import { variants as allVariants, baselineId } from './lib/variants.mjs'

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

const method = {
  rounds: opts.rounds,
  duration: opts.duration,
  warmup: opts.warmup,
  serverCore: SERVER_CORE,
  clientCore: CLIENT_CORE,
  serverCommand: `taskset -c ${SERVER_CORE} node servers/<variant>.mjs 0 <bodySize>`,
  clientCommand: `taskset -c ${CLIENT_CORE} wrk --latency <test.wrk> -d<duration>s http://127.0.0.1:<port>/`,
  order: 'per test, per round: every variant once in the listed order',
  cpu: 'server utime+stime from /proc/PID/stat (all threads) around the measured wrk run',
  summary: 'medians over valid rounds; a round with socket errors or non-2xx responses is invalid',
}
const machine = machineInfo()
const rounds = []
const unavailable = new Map() // variant id → reason; tried once, then skipped

const total = opts.tests.length * opts.rounds * opts.variants.length
const eta = Math.ceil((total * (opts.duration + opts.warmup + 1.5)) / 60)
console.error(`${total} runs, about ${eta} min`)

for (const test of opts.tests) {
  for (let round = 1; round <= opts.rounds; round++) {
    for (const variant of opts.variants) {
      const tag = `${test.id} ${variant.id.padEnd(10)} round ${round}/${opts.rounds}`
      if (unavailable.has(variant.id)) {
        rounds.push(skipped(test, variant, round))
        continue
      }
      try {
        const r = await runRound({ test, variant, round, duration: opts.duration, warmup: opts.warmup })
        rounds.push(r)
        const status = r.valid
          ? r.warnings.map((w) => `  warning: ${w}`).join('')
          : `  INVALID: ${r.errors.join('; ')}`
        console.error(
          `${tag}  ${Math.round(r.rps ?? 0)} req/s  ${r.cpuUsPerReq?.toFixed(2) ?? '–'} µs/req${status}`,
        )
      } catch (err) {
        if (!(err instanceof UnavailableError)) throw err
        unavailable.set(variant.id, err.message)
        rounds.push(skipped(test, variant, round))
        console.error(`${tag}  UNAVAILABLE: ${err.message}`)
      }
    }
  }
}

function skipped(test, variant, round) {
  const reason = unavailable.get(variant.id)
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

const summary = summarize(rounds, opts.tests, opts.variants, baselineId)
const baselineLabel = allVariants.find((v) => v.id === baselineId).label
const markdown = markdownReport({ machine, method, summary, rounds, baselineLabel })
const svg = svgChart({
  summary,
  tests: opts.tests,
  variants: opts.variants,
  title: `req/s, one server core (${machine.cpuModel})`,
})

mkdirSync(RESULTS, { recursive: true })
writeFileSync(
  `${RESULTS}latest.json`,
  `${JSON.stringify({ machine, method, tests: opts.tests, variants: opts.variants, rounds, summary }, null, 2)}\n`,
)
writeFileSync(`${RESULTS}latest.md`, markdown)
writeFileSync(`${RESULTS}latest.svg`, svg)
// Quick passes are for checking; only full runs become the README's table.
if (!opts.quick && updateReadme(markdown)) console.error('README.md benchmark section updated')
console.log(markdown)
