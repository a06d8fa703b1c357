// Writes the latest results into the project README, between its bench markers, so the README
// always shows what the last full run measured.
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const README = fileURLToPath(new URL('../../README.md', import.meta.url))
const BEGIN = '<!-- bench:begin -->'
const END = '<!-- bench:end -->'

export function updateReadme(markdown) {
  const readme = readFileSync(README, 'utf8')
  const start = readme.indexOf(BEGIN)
  const end = readme.indexOf(END)
  if (start === -1 || end < start) return false
  // The report's own title is the README section's; keep the rest.
  const body = markdown.replace(/^# Benchmark results\n\n/, '')
  const section = `${BEGIN}\n${body}\n![throughput per test and variant](bench/results/latest.svg)\n\nMethod, and how to run it: [bench/README.md](bench/README.md) (\`npm run bench\`, \`-- --quick\` for a short pass).\n${END}`
  writeFileSync(README, readme.slice(0, start) + section + readme.slice(end + END.length))
  return true
}
