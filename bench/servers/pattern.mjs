// The bytes of large bodies (the 1 GiB download, the static file): a fixed pseudo-random block
// repeated. Its odd length keeps it out of step with every buffer size, so a lost, repeated or
// reordered chunk shows as a mismatch, and checking costs one memcmp per chunk.

/** Length of the repeated block (a prime, ~1 MB). */
export const BLOCK_SIZE = 1_000_003

let block = null

/** The repeated block (xorshift32 bytes, the same in every process). */
export function patternBlock() {
  if (block !== null) return block
  block = Buffer.allocUnsafe(BLOCK_SIZE)
  let x = 0x9e3779b9
  for (let i = 0; i < BLOCK_SIZE; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    block[i] = x & 0xff
  }
  return block
}

/** Pattern bytes [offset, offset + length) in pieces of at most one block (views, not copies). */
export function* patternSlices(offset, length) {
  const b = patternBlock()
  let pos = offset
  const end = offset + length
  while (pos < end) {
    const at = pos % BLOCK_SIZE
    const n = Math.min(BLOCK_SIZE - at, end - pos)
    yield b.subarray(at, at + n)
    pos += n
  }
}

/** The pattern's first `length` bytes in one Buffer (for files). */
export function patternBytes(length) {
  return Buffer.concat([...patternSlices(0, length)], length)
}

/** Index (from `offset` on) of the first byte of `chunk` that is not the pattern's, or -1. */
export function patternMismatch(chunk, offset) {
  let i = 0
  for (const expected of patternSlices(offset, chunk.length)) {
    if (chunk.compare(expected, 0, expected.length, i, i + expected.length) !== 0) {
      for (let j = 0; j < expected.length; j++) if (chunk[i + j] !== expected[j]) return offset + i + j
    }
    i += expected.length
  }
  return -1
}
