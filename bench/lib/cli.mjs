// Command-line options of run.mjs.
import { parseArgs } from 'node:util'
import { tests } from './tests.mjs'
import { variants } from './variants.mjs'

export const usage = `usage: node bench/run.mjs [--quick] [--rounds N] [--duration S]
                          [--variants ${variants.map((v) => v.id).join(',')}] [--tests ${tests.map((t) => t.id).join(',')}]
  --quick      3 rounds x 3 s, 256 MiB downloads (default: 5 rounds x 10 s, 1 GiB downloads)
  --rounds     rounds per test (each round runs every variant once, interleaved)
  --duration   seconds per measured wrk run
Only a full run (none of these options) rewrites the README's benchmark section.`

/**
 * `npm run bench --quick` (without `--`) gives npm the flag, not this script; npm passes it on
 * as `npm_config_quick=true` in the environment, so that form works too.
 */
export function parseCli(args = process.argv.slice(2), env = process.env) {
  if (env.npm_config_quick === 'true' && !args.includes('--quick')) args = [...args, '--quick']
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      duration: { type: 'string' },
      variants: { type: 'string', default: variants.map((v) => v.id).join(',') },
      tests: { type: 'string', default: tests.map((t) => t.id).join(',') },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const given = (name) => args.some((a) => a === `--${name}` || a.startsWith(`--${name}=`))
  return {
    help: values.help,
    quick: values.quick,
    // The default run is the one to publish; anything narrower or shorter is a check.
    full: !values.quick && !['rounds', 'duration', 'variants', 'tests'].some(given),
    rounds: positiveInt(values.rounds ?? (values.quick ? 3 : 5), '--rounds'),
    duration: positiveInt(values.duration ?? (values.quick ? 3 : 10), '--duration'),
    warmup: 1,
    variants: pick(values.variants, variants, '--variants'),
    tests: pick(values.tests, tests, '--tests'),
  }
}

function positiveInt(value, name) {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${value}`)
  return n
}

function pick(list, table, name) {
  return list.split(',').map((id) => {
    const row = table.find((r) => r.id === id.trim())
    if (!row) throw new Error(`${name}: unknown id "${id}" (known: ${table.map((r) => r.id).join(', ')})`)
    return row
  })
}
