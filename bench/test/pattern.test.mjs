// The pattern of large bodies, and the download check built on it.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkDownload } from '../lib/download.mjs'
import {
  BLOCK_SIZE,
  patternBlock,
  patternBytes,
  patternMismatch,
  patternSlices,
} from '../servers/pattern.mjs'

test('the block is fixed, and not a short repeat', () => {
  const b = patternBlock()
  assert.equal(b.length, BLOCK_SIZE)
  assert.deepEqual([...b.subarray(0, 4)], [...patternBlock().subarray(0, 4)])
  assert.notDeepEqual(b.subarray(0, 4096), b.subarray(4096, 8192))
})

test('slices cover any range, across block boundaries', () => {
  const offset = BLOCK_SIZE - 10
  const joined = Buffer.concat([...patternSlices(offset, 25)])
  assert.equal(joined.length, 25)
  assert.deepEqual(joined, Buffer.concat([patternBlock().subarray(offset), patternBlock().subarray(0, 15)]))
  assert.deepEqual(patternBytes(BLOCK_SIZE + 5).subarray(BLOCK_SIZE), patternBlock().subarray(0, 5))
})

test('mismatch finds the first wrong byte at its absolute offset, or -1', () => {
  const bytes = patternBytes(3 * BLOCK_SIZE)
  const chunk = Buffer.from(bytes.subarray(BLOCK_SIZE - 100, BLOCK_SIZE + 100))
  assert.equal(patternMismatch(chunk, BLOCK_SIZE - 100), -1)
  chunk[150] ^= 1
  assert.equal(patternMismatch(chunk, BLOCK_SIZE - 100), BLOCK_SIZE + 50)
  assert.notEqual(patternMismatch(bytes.subarray(1000, 2000), 1001), -1, 'shifted by one byte')
})

test('a download is clean only if complete, 200 and all pattern', () => {
  const ok = { status: 200, contentLength: 100, bytes: 100, mismatchAt: -1, seconds: 0.1, error: null }
  assert.deepEqual(checkDownload(ok, 100), [])
  assert.deepEqual(checkDownload({ ...ok, bytes: 99 }, 100), ['99 body bytes received, expected 100'])
  assert.deepEqual(checkDownload({ ...ok, mismatchAt: 7 }, 100), ['body differs from the pattern at byte 7'])
  assert.deepEqual(checkDownload({ ...ok, status: 502, error: 'ECONNRESET' }, 100), [
    'client error ECONNRESET',
    'status 502',
  ])
})
