// run.mjs's options: the quick pass, whichever way npm hands it over, and what counts as a
// full (publishable) run.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseCli } from '../lib/cli.mjs'

test('--quick: 3 rounds of 3 s, not a full run', () => {
  const o = parseCli(['--quick'], {})
  assert.equal(o.quick, true)
  assert.equal(o.full, false)
  assert.deepEqual([o.rounds, o.duration], [3, 3])
})

test('`npm run bench --quick` (npm_config_quick=true) is the quick pass too', () => {
  const o = parseCli([], { npm_config_quick: 'true' })
  assert.equal(o.quick, true)
  assert.equal(o.full, false)
  assert.deepEqual([o.rounds, o.duration], [3, 3])
})

test('no options: the full run, 5 rounds of 10 s', () => {
  const o = parseCli([], {})
  assert.equal(o.full, true)
  assert.deepEqual([o.rounds, o.duration], [5, 10])
})

test('a narrower run is not full', () => {
  assert.equal(parseCli(['--tests', 't2'], {}).full, false)
  assert.equal(parseCli(['--rounds', '2'], {}).full, false)
})
