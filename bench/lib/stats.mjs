// Per-round numbers and per-(test, variant) summaries.
import { variantsFor } from './variants.mjs'

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const mid = v.length >> 1
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

/**
 * Summary over the valid rounds of each (test, variant); ratios against the baseline variant.
 * wrk tests have req/s, CPU µs/request and latencies (and GB/s of bodies when the test asks);
 * download and echo tests have GB/s and CPU seconds per GB; the idle test has RSS bytes per
 * connection. `cpuRatio` compares CPU per unit of work: per request, or per GB; `memRatio`
 * bytes per idle connection.
 */
export function summarize(rounds, tests, variants, baselineId, anchorId = null) {
  const rows = []
  for (const test of tests) {
    for (const variant of variantsFor(test, variants)) {
      const mine = rounds.filter((r) => r.test === test.id && r.variant === variant.id)
      const valid = mine.filter((r) => r.valid)
      const med = (pick) => median(valid.map(pick))
      rows.push({
        test: test.id,
        testName: test.name,
        kind: test.kind ?? 'wrk',
        variant: variant.id,
        label: variant.label,
        rounds: mine.length,
        validRounds: valid.length,
        unavailable: mine.find((r) => r.unavailable)?.unavailable ?? null,
        rps: med((r) => r.rps),
        gbps: med((r) => r.gbps),
        cpuUsPerReq: med((r) => r.cpuUsPerReq),
        ctxPer1kReq: med((r) => r.ctxPer1kReq),
        cpuSecPerGB: med((r) => r.cpuSecPerGB),
        bytesPerConn: med((r) => r.bytesPerConn),
        rssBaseline: med((r) => r.rssBaseline),
        p50Ms: med((r) => r.latency?.p50),
        p99Ms: med((r) => r.latency?.p99),
        serverCpuPercent: med((r) => r.serverCpuPercent),
        clientCpuPercent: med((r) => r.clientCpuPercent),
        upstreamCpuPercent: med((r) => r.upstreamCpuPercent),
        warnedRounds: valid.filter((r) => r.warnings.length).length,
      })
    }
    const base = rows.find((r) => r.test === test.id && r.variant === (test.baseline ?? baselineId))
    const anchor = anchorId ? rows.find((r) => r.test === test.id && r.variant === anchorId) : undefined
    for (const row of rows.filter((r) => r.test === test.id)) {
      row.rpsRatio = ratio(row.rps, base?.rps)
      row.gbpsRatio = ratio(row.gbps, base?.gbps)
      row.cpuRatio = perGB(row)
        ? ratio(row.cpuSecPerGB, base?.cpuSecPerGB)
        : ratio(row.cpuUsPerReq, base?.cpuUsPerReq)
      row.memRatio = ratio(row.bytesPerConn, base?.bytesPerConn)
      // Against the bar (Bun.listen): CPU per request, or memory per idle connection.
      row.anchorRatio =
        row.kind === 'idle'
          ? ratio(row.bytesPerConn, anchor?.bytesPerConn)
          : perGB(row)
            ? ratio(row.cpuSecPerGB, anchor?.cpuSecPerGB)
            : ratio(row.cpuUsPerReq, anchor?.cpuUsPerReq)
    }
  }
  return rows
}

/** Is this row's work counted in GB (download, echo) rather than in requests? */
export function perGB(row) {
  return row.kind === 'download' || row.kind === 'echo'
}

function ratio(a, b) {
  return a != null && b ? a / b : null
}
