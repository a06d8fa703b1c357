#!/usr/bin/env node
// Renders bench/results/latest.json again (latest.md, latest.svg and, for a full run, the README's
// benchmark section) with the current report code, without running anything: for when the
// report's layout changes between full runs.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { updateReadme } from './lib/readme.mjs'
import { markdownReport } from './lib/report-md.mjs'
import { svgChart } from './lib/report-svg.mjs'
import { variants as allVariants, anchorId, baselineId } from './lib/variants.mjs'

const RESULTS = fileURLToPath(new URL('results/', import.meta.url))
const { machine, method, tests, variants, rounds, summary } = JSON.parse(
  readFileSync(`${RESULTS}latest.json`, 'utf8'),
)
const label = (id) => allVariants.find((v) => v.id === id)?.label ?? id
const report = {
  machine,
  method,
  summary,
  rounds,
  baselineLabel: label(baselineId),
  anchorLabel: label(anchorId),
}
writeFileSync(`${RESULTS}latest.md`, markdownReport(report))
writeFileSync(
  `${RESULTS}latest.svg`,
  svgChart({ summary, tests, variants, title: `One server core (${machine.cpuModel})` }),
)
// Only a full run's results belong in the README (5 rounds of every test and variant).
const full = method.rounds === 5 && method.duration === 10
if (full && updateReadme(markdownReport({ ...report, compact: true }))) console.error('README.md updated')
else if (!full) console.error('not a full run: README.md left as it is')
