// The summary and both renderers on rows of every kind: req/s, GB/s (download, echo) and bytes per
// idle connection, with their ratios against node:net.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { markdownReport } from '../lib/report-md.mjs'
import { svgChart } from '../lib/report-svg.mjs'
import { summarize } from '../lib/stats.mjs'
import { tests as allTests } from '../lib/tests.mjs'
import { variants as allVariants, anchorId, baselineId } from '../lib/variants.mjs'

const tests = allTests.filter((t) => ['t5', 'echo', 'idle-rss'].includes(t.id))
const variants = allVariants.filter((v) => ['tcpserver', 'node-net', 'bun'].includes(v.id))
const round = (test, variant, fields) => ({
  test,
  variant,
  round: 1,
  valid: true,
  errors: [],
  warnings: [],
  ...fields,
})
const rounds = [
  round('t5', 'tcpserver', {
    rps: 60_000,
    cpuUsPerReq: 9,
    ctxPer1kReq: 8,
    clientCpuPercent: 97,
    latency: { p50: 1.5, p99: 3 },
    warnings: ['wrk used 97% of its core (client-bound?)'],
  }),
  round('t5', 'node-net', {
    rps: 50_000,
    cpuUsPerReq: 12,
    clientCpuPercent: 80,
    latency: { p50: 1.6, p99: 4 },
  }),
  round('t5', 'bun', { rps: 70_000, cpuUsPerReq: 10, clientCpuPercent: 90, latency: { p50: 1.4, p99: 2 } }),
  round('echo', 'tcpserver', { gbps: 2, cpuSecPerGB: 0.4 }),
  round('echo', 'node-net', { gbps: 1, cpuSecPerGB: 0.8 }),
  round('idle-rss', 'tcpserver', { bytesPerConn: 3000, rssBaseline: 50e6, rssLoaded: 80e6 }),
  round('idle-rss', 'node-net', { bytesPerConn: 6000, rssBaseline: 45e6, rssLoaded: 105e6 }),
]
const summary = summarize(rounds, tests, variants, baselineId, anchorId)
const row = (test, variant) => summary.find((r) => r.test === test && r.variant === variant)

test('ratios per kind: CPU per request, CPU per GB, memory per connection', () => {
  assert.equal(row('t5', 'tcpserver').cpuRatio, 0.75)
  assert.equal(row('echo', 'tcpserver').gbpsRatio, 2)
  assert.equal(row('echo', 'tcpserver').cpuRatio, 0.5)
  assert.equal(row('idle-rss', 'tcpserver').bytesPerConn, 3000)
  assert.equal(row('idle-rss', 'tcpserver').memRatio, 0.5)
})

test('ratios against the anchor (Bun.listen): CPU per request, none where Bun did not run', () => {
  assert.equal(row('t5', 'tcpserver').anchorRatio, 0.9)
  assert.equal(row('t5', 'bun').anchorRatio, 1)
  assert.equal(row('echo', 'tcpserver').anchorRatio, null)
})

test('the Markdown table has each kind in its unit', () => {
  const method = { serverCore: 0, clientCore: 1, rounds: 1, duration: 3, idleConnections: 10_000 }
  const machine = { date: 'd', cpuModel: 'cpu', cores: 2, node: 'v20', kernel: 'k' }
  const md = markdownReport({ machine, method, summary, rounds, baselineLabel: 'node:net' })
  assert.match(
    md,
    /\| t5 .* \| tcpserver \| 60,000 req\/s \| 9\.00 µs\/req \| 8 \| 3\.00 \| 1\.20× req\/s, 0\.75× CPU\/req \| 0\.90× \| 97 % ⚠ \| 1\/1 \|/,
  )
  assert.match(
    md,
    /\| echo .* \| 2\.00 GB\/s \| 0\.400 s\/GB \| – \| – \| 2\.00× GB\/s, 0\.50× CPU\/GB \| {2}\| – \| 1\/1 \|/,
  )
  assert.match(
    md,
    /\| idle-rss .* \| tcpserver \| 3,000 B\/conn \| RSS 50 MB before \| – \| – \| 0\.50× memory\/conn \| {2}\| – \| 1\/1 \|/,
  )
  assert.match(md, /10,000 idle connections/)
  assert.match(md, /- warning: t5 tcpserver round 1: wrk used 97%/)
})

test('the README copy (compact) keeps the table and replaces per-round warnings by one line', () => {
  const method = { serverCore: 0, clientCore: 1, rounds: 1, duration: 3, idleConnections: 10_000 }
  const machine = { date: 'd', cpuModel: 'cpu', cores: 2, node: 'v20', kernel: 'k' }
  const md = markdownReport({ machine, method, summary, rounds, baselineLabel: 'node:net', compact: true })
  assert.doesNotMatch(md, /- warning:/)
  assert.match(md, /1 of 7 rounds carry a warning/)
  assert.match(md, /\| 97 % ⚠ \|/)
})

test('the SVG has a panel per test, each in its unit', () => {
  const svg = svgChart({ summary, tests, variants, title: 't' })
  for (const unit of ['req/s', 'GB/s', 'B/conn']) assert.ok(svg.includes(`>${unit}</text>`), unit)
  assert.ok(svg.includes('<title>tcpserver: 3000 B/conn</title>'))
  assert.ok(svg.includes('0.40 s/GB'))
  assert.ok(!svg.includes('NaN'))
})
