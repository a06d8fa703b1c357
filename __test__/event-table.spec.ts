// The Rust → JavaScript event protocol names its kinds in two places: the binding's encoder
// (crates/tcpserver-node/src/events.rs) and the TypeScript router that decodes them
// (packages/tcpserver/src/router.ts). This fails while the two tables disagree in a name or a
// number, before a mismatch could route one event as another. The timeout kinds are numbered
// the same way: the core's order (crates/tcpserver/src/driver/event.rs) and connection.ts's.
import { readFileSync } from 'node:fs'
import test from 'ava'

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')

/** NAME → number for every match of `pattern` (groups: name, value). */
function table(text: string, pattern: RegExp): Map<string, number> {
  return new Map([...text.matchAll(pattern)].map((m) => [m[1] as string, Number(m[2])]))
}

test('event kinds: the binding and the router have the same names and numbers', (t) => {
  const rust = table(
    read('crates/tcpserver-node/src/events.rs'),
    /^pub\(crate\) const ([A-Z_]+): u32 = (\d+);$/gm,
  )
  const ts = table(read('packages/tcpserver/src/router.ts'), /^const ([A-Z_]+) = (\d+)$/gm)
  t.true(rust.size >= 13, `found ${rust.size} kinds in events.rs`)
  t.deepEqual(Object.fromEntries(ts), Object.fromEntries(rust))
  t.is(new Set(rust.values()).size, rust.size, 'every kind has its own number')
})

test("timeout kinds: connection.ts indexes them in the core's order", (t) => {
  const all = /pub const ALL: \[Self; \d+\] = \[([^\]]*)\];/.exec(
    read('crates/tcpserver/src/driver/event.rs'),
  )
  const rust = (all?.[1] ?? '').split(',').map((k) =>
    k
      .trim()
      .replace(/^Self::/, '')
      .toUpperCase(),
  )
  const ts = table(read('packages/tcpserver/src/connection.ts'), /^const TIMEOUT_([A-Z]+) = (\d+)$/gm)
  t.true(rust.length >= 2, `found ${rust.length} kinds in event.rs`)
  t.deepEqual(Object.fromEntries(ts), Object.fromEntries(rust.map((k, i) => [k, i])))
})
