// /proc parsing.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { processCpuSeconds, reapedChildrenCpuSeconds, statFields } from '../lib/cpu.mjs'

test('stat fields are counted from after the comm, which may hold spaces and parentheses', () => {
  const text = '4242 (node (x) y) S 1 4242 4242 0 -1 4194304 100 0 0 0 1234 567 89 10 20 0 11 0 99 1 2\n'
  const field = statFields(text)
  assert.equal(field(4), 1) // ppid
  assert.equal(field(14), 1234) // utime
  assert.equal(field(15), 567) // stime
  assert.equal(field(16), 89) // cutime
  assert.equal(field(17), 10) // cstime
})

test('this process has CPU time and a readable children total', () => {
  assert.ok(processCpuSeconds(process.pid) > 0)
  assert.ok(reapedChildrenCpuSeconds() >= 0)
})
