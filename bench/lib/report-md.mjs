// The Markdown summary: one table plus the rounds that did not count.

export function markdownReport({ machine, method, summary, rounds, baselineLabel }) {
  const lines = [
    `# Benchmark results`,
    '',
    `${machine.date} · ${machine.cpuModel} (${machine.cores} cores) · Node ${machine.node} · ${machine.kernel}`,
    '',
    `Server pinned to core ${method.serverCore}, wrk to core ${method.clientCore}; ${method.rounds} rounds × ${method.duration} s ` +
      `per variant, interleaved, ${method.warmup} s warm-up; medians over valid rounds.`,
    '',
    `| test | variant | req/s (median) | CPU µs/req | p99 ms | ratio vs ${baselineLabel} | valid rounds |`,
    '| --- | --- | ---: | ---: | ---: | --- | ---: |',
  ]
  for (const row of summary) {
    const name = `${row.test} ${row.testName}`
    if (row.unavailable) {
      lines.push(`| ${name} | ${row.label} | unavailable | | | | 0/${row.rounds} |`)
      continue
    }
    const ratios =
      row.rpsRatio == null ? '' : `${fmt(row.rpsRatio, 2)}× req/s, ${fmt(row.cpuRatio, 2)}× CPU/req`
    lines.push(
      `| ${name} | ${row.label} | ${fmtInt(row.rps)} | ${fmt(row.cpuUsPerReq, 2)} | ${fmt(row.p99Ms, 2)} | ${ratios} | ${row.validRounds}/${row.rounds} |`,
    )
  }

  const notes = []
  for (const row of summary.filter((r) => r.unavailable)) {
    notes.push(`- ${row.test} ${row.label} unavailable: ${row.unavailable.split('\n')[0]}`)
  }
  for (const r of rounds.filter((r) => !r.valid && !r.unavailable)) {
    notes.push(`- invalid round: ${r.test} ${r.variant} round ${r.round}: ${r.errors.join('; ')}`)
  }
  for (const r of rounds.filter((r) => r.valid && r.warnings.length)) {
    notes.push(`- warning: ${r.test} ${r.variant} round ${r.round}: ${r.warnings.join('; ')}`)
  }
  if (notes.length) lines.push('', ...notes)
  return `${lines.join('\n')}\n`
}

function fmt(value, digits) {
  return value == null ? '–' : value.toFixed(digits)
}

function fmtInt(value) {
  return value == null ? '–' : Math.round(value).toLocaleString('en-US')
}
