// The Markdown summary: one table plus the rounds that did not count. The full report
// (bench/results/latest.md) also lists every round's warnings; the README's copy (`compact`)
// keeps the table and says in one line how many rounds were warned about and where to read why.
import { perGB } from './stats.mjs'

/** Client-side CPU (% of its core) above which the row is marked: the client may be the limit. */
export const CLIENT_BOUND_PERCENT = 95

export function markdownReport({
  machine,
  method,
  summary,
  rounds,
  baselineLabel,
  anchorLabel = 'Bun.listen',
  compact = false,
}) {
  const kinds = new Set(summary.map((r) => r.kind))
  const proxied = summary.some((r) => r.test.startsWith('proxy'))
  const measure = [
    kinds.has('wrk') ? `${method.duration} s of wrk` : null,
    kinds.has('download') ? `one ${mib(method.downloadBytes)} download` : null,
    kinds.has('echo') ? `${method.duration} s of echo` : null,
    kinds.has('idle') ? `one RSS reading with ${fmtInt(method.idleConnections)} idle connections` : null,
  ].filter(Boolean)
  const clients = [
    'wrk',
    kinds.has('download') && 'the download client',
    kinds.has('echo') && 'the echo client',
    kinds.has('idle') && 'the idle client',
  ].filter(Boolean)
  const lines = [
    `# Benchmark results`,
    '',
    `${machine.date} · ${machine.cpuModel} (${machine.cores} cores) · Node ${machine.node} · ${machine.kernel}`,
    '',
    `Server under test pinned to core ${method.serverCore}; the client (${clients.join(', ')})` +
      `${proxied ? ' and the proxies’ upstream' : ''} on core ${method.clientCore}. ${method.rounds} rounds × ` +
      `${measure.join(' or ')} per variant, interleaved, after a warm-up; medians over valid rounds. ` +
      `CPU is the server under test's${proxied ? ' (the proxy’s, for proxy tests)' : ''}. GB = 10⁹ bytes.` +
      (kinds.has('idle')
        ? ' Idle: server RSS growth over its settled baseline per connection (lower is better).'
        : ''),
    '',
    `| test | variant | throughput (median) | server CPU | ctx sw / 1k req | p99 ms | ratio vs Node (${baselineLabel}; node:tls for TLS rows) | CPU vs ${anchorLabel} | client core | valid rounds |`,
    '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |',
  ]
  for (const row of summary) {
    const name = `${row.test} ${row.testName}`
    if (row.unavailable) {
      lines.push(`| ${name} | ${row.label} | unavailable | | | | | | | 0/${row.rounds} |`)
      continue
    }
    lines.push(
      `| ${name} | ${row.label} | ${throughput(row)} | ${cpu(row)} | ${fmt(row.ctxPer1kReq, 0)} | ${fmt(row.p99Ms, 2)} | ${ratios(row)} | ${anchor(row)} | ${clientCore(row)} | ${row.validRounds}/${row.rounds} |`,
    )
  }
  lines.push(
    '',
    `Client core: the median share of core ${method.clientCore} used by the client side (wrk, or the download, echo or idle client, plus the proxy tests' upstream); ` +
      `⚠ marks rows above ${CLIENT_BOUND_PERCENT} %, where the client may cap the throughput, so server CPU per unit is the figure that still compares the servers. ` +
      `CPU vs ${anchorLabel}: server CPU per request (per GB; memory per connection for the idle test) over ${anchorLabel}'s in the same test (below 1 is better).`,
  )

  const notes = []
  for (const row of summary.filter((r) => r.unavailable)) {
    notes.push(`- ${row.test} ${row.label} unavailable: ${row.unavailable.split('\n')[0]}`)
  }
  for (const r of rounds.filter((r) => !r.valid && !r.unavailable)) {
    notes.push(`- invalid round: ${r.test} ${r.variant} round ${r.round}: ${r.errors.join('; ')}`)
  }
  const warned = rounds.filter((r) => r.valid && r.warnings.length)
  if (compact) {
    if (warned.length) {
      notes.push(
        `- ${warned.length} of ${rounds.length} rounds carry a warning (client-bound, other load, leftover sockets): listed in [bench/results/latest.md](bench/results/latest.md).`,
      )
    }
  } else {
    for (const r of warned) {
      notes.push(`- warning: ${r.test} ${r.variant} round ${r.round}: ${r.warnings.join('; ')}`)
    }
  }
  if (notes.length) lines.push('', ...notes)
  return `${lines.join('\n')}\n`
}

function throughput(row) {
  if (row.kind === 'idle') return row.bytesPerConn == null ? '–' : `${fmtInt(row.bytesPerConn)} B/conn`
  if (perGB(row)) return row.gbps == null ? '–' : `${fmt(row.gbps, 2)} GB/s`
  if (row.rps == null) return '–'
  const rps = `${fmtInt(row.rps)} req/s`
  return row.gbps == null ? rps : `${rps} = ${fmt(row.gbps, 2)} GB/s`
}

function cpu(row) {
  if (row.kind === 'idle')
    return row.rssBaseline == null ? '–' : `RSS ${fmt(row.rssBaseline / 1e6, 0)} MB before`
  if (perGB(row)) return row.cpuSecPerGB == null ? '–' : `${fmt(row.cpuSecPerGB, 3)} s/GB`
  return row.cpuUsPerReq == null ? '–' : `${fmt(row.cpuUsPerReq, 2)} µs/req`
}

function ratios(row) {
  if (row.kind === 'idle') return row.memRatio == null ? '' : `${fmt(row.memRatio, 2)}× memory/conn`
  if (row.cpuRatio == null) return ''
  if (perGB(row)) return `${fmt(row.gbpsRatio, 2)}× GB/s, ${fmt(row.cpuRatio, 2)}× CPU/GB`
  return `${fmt(row.rpsRatio, 2)}× req/s, ${fmt(row.cpuRatio, 2)}× CPU/req`
}

function anchor(row) {
  return row.anchorRatio == null ? '' : `${fmt(row.anchorRatio, 2)}×`
}

function clientCore(row) {
  if (row.clientCpuPercent == null) return '–'
  const pct = row.clientCpuPercent + (row.upstreamCpuPercent ?? 0)
  return `${pct.toFixed(0)} %${pct > CLIENT_BOUND_PERCENT ? ' ⚠' : ''}`
}

function mib(bytes) {
  return bytes >= 2 ** 30 ? `${bytes / 2 ** 30} GiB` : `${bytes / 2 ** 20} MiB`
}

function fmt(value, digits) {
  return value == null ? '–' : value.toFixed(digits)
}

function fmtInt(value) {
  return value == null ? '–' : Math.round(value).toLocaleString('en-US')
}
