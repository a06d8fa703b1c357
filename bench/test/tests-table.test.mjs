// The test table: unique ids, the fields each kind needs, scripts that exist.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { tests } from '../lib/tests.mjs'
import { variantsFor } from '../lib/variants.mjs'

const bench = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url))
const NEEDS = {
  wrk: ['wrk', 'bodySize'],
  download: ['download', 'upstream'],
  echo: ['echo'],
  idle: ['idle', 'bodySize'],
}

test('ids are unique', () => {
  assert.equal(new Set(tests.map((t) => t.id)).size, tests.length)
})

for (const t of tests) {
  test(`${t.id}: fields of its kind, tcpserver and its baseline side by side, scripts exist`, () => {
    for (const field of NEEDS[t.kind ?? 'wrk']) assert.ok(t[field] !== undefined, field)
    const ids = variantsFor(t).map((v) => v.id)
    assert.ok(ids.includes('tcpserver') && ids.includes(t.baseline ?? 'node-net'), ids.join(','))
    for (const v of variantsFor(t)) assert.ok(existsSync(bench(v.script)), v.script)
  })
}
