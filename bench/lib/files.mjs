// The static files of the tests that serve one (`file: { size }`): pattern bytes, written once per
// run to a temporary directory and removed at the end.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { patternBytes } from '../servers/pattern.mjs'

/** Writes each test's file; returns { path(testId) → path or null, remove() }. */
export function writeTestFiles(tests) {
  const withFile = tests.filter((t) => t.file)
  const dir = withFile.length ? mkdtempSync(join(tmpdir(), 'tcpserver-bench-')) : null
  const paths = new Map()
  for (const test of withFile) {
    const path = join(dir, `${test.id}.bin`)
    writeFileSync(path, patternBytes(test.file.size))
    paths.set(test.id, path)
  }
  return {
    path: (id) => paths.get(id) ?? null,
    remove: () => dir && rmSync(dir, { recursive: true, force: true }),
  }
}
