// Per-round numbers and per-(test, variant) summaries.

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  const mid = v.length >> 1
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

/** Summary over the valid rounds of each (test, variant); ratios against the baseline variant. */
export function summarize(rounds, tests, variants, baselineId) {
  const rows = []
  for (const test of tests) {
    for (const variant of variants) {
      const mine = rounds.filter((r) => r.test === test.id && r.variant === variant.id)
      const valid = mine.filter((r) => r.valid)
      rows.push({
        test: test.id,
        testName: test.name,
        variant: variant.id,
        label: variant.label,
        rounds: mine.length,
        validRounds: valid.length,
        unavailable: mine.find((r) => r.unavailable)?.unavailable ?? null,
        rps: median(valid.map((r) => r.rps)),
        cpuUsPerReq: median(valid.map((r) => r.cpuUsPerReq)),
        p50Ms: median(valid.map((r) => r.latency.p50)),
        p99Ms: median(valid.map((r) => r.latency.p99)),
        serverCpuPercent: median(valid.map((r) => r.serverCpuPercent)),
        clientCpuPercent: median(valid.map((r) => r.clientCpuPercent)),
        warnedRounds: valid.filter((r) => r.warnings.length).length,
      })
    }
    const base = rows.find((r) => r.test === test.id && r.variant === baselineId)
    for (const row of rows.filter((r) => r.test === test.id)) {
      row.rpsRatio = ratio(row.rps, base?.rps)
      row.cpuRatio = ratio(row.cpuUsPerReq, base?.cpuUsPerReq)
    }
  }
  return rows
}

function ratio(a, b) {
  return a != null && b ? a / b : null
}
