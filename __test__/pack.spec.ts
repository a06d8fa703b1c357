// The packed package, used from a fresh project: scripts/pack-check.mjs does the work (npm pack,
// npm install <tarball> offline, ESM import, types, the bin, a real client); this spec bounds it
// in time and reports its lines. Skipped, with the reason logged, where npm cannot pack.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const SCRIPT = fileURLToPath(new URL('../scripts/pack-check.mjs', import.meta.url))
const LIMIT_MS = 60_000
const SKIPPED = 77

test('npm pack → npm install <tarball> → import, types, bin and a round trip work from the tarball', async (t) => {
  t.timeout(LIMIT_MS + 10_000)
  const child = spawn(process.execPath, [SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => {
    output += d.toString()
  })
  child.stderr.on('data', (d: Buffer) => {
    output += d.toString()
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS)
  t.teardown(() => {
    clearTimeout(timer)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once('exit', (c, s) => resolve([c, s])),
  )
  const lines = output.trim().split('\n')
  if (code === SKIPPED) {
    t.log(lines.at(-1))
    t.pass()
    return
  }
  for (const line of lines) if (line.startsWith('pack-check: note')) t.log(line)
  t.is(signal, null, `pack-check did not finish within ${LIMIT_MS} ms:\n${output}`)
  t.is(code, 0, output)
  t.regex(lines.at(-1) ?? '', /^pack-check: passed: \d+ checks/)
})
