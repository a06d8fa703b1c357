// The house's shape (issue 17, ARCHITECTURE.md): no TypeScript module imports itself through
// others (type-only imports count: a circle of types is still a knot for a reader), and no source
// file grows past 600 lines.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const MAX_LINES = 600

function filesUnder(dir: string, ext: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(ext))
    .map((e) => join(e.parentPath, e.name))
}

/** The package modules a TypeScript file imports or re-exports (relative specifiers only). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const found: string[] = []
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"](\.[^'"]+)['"]/gms)) {
    found.push(resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts')))
  }
  return found
}

/** A cycle in `graph` as a list of files, or null. */
function findCycle(graph: Map<string, string[]>): string[] | null {
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (node: string): string[] | null => {
    if (state.get(node) === 'done') return null
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node]
    state.set(node, 'open')
    path.push(node)
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next)
      if (cycle) return cycle
    }
    path.pop()
    state.set(node, 'done')
    return null
  }
  for (const node of graph.keys()) {
    const cycle = visit(node)
    if (cycle) return cycle
  }
  return null
}

test('the finder sees a circle of type imports', (t) => {
  const graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
  ])
  t.deepEqual(findCycle(graph), ['a.ts', 'b.ts', 'c.ts', 'a.ts'])
  t.is(findCycle(new Map([['a.ts', ['b.ts']]])), null)
})

test('packages/tcpserver/src has no import circle (type-only imports included)', (t) => {
  const src = join(root, 'packages/tcpserver/src')
  const files = filesUnder(src, '.ts')
  t.true(files.length > 20, 'the sources were found')
  const graph = new Map(files.map((f) => [f, importsOf(f).filter((to) => files.includes(to))]))
  const cycle = findCycle(graph)
  t.is(cycle?.map((f) => relative(src, f)).join(' → ') ?? null, null)
})

test(`no source file is over ${MAX_LINES} lines`, (t) => {
  const files = [
    ...filesUnder(join(root, 'crates/tcpserver/src'), '.rs'),
    ...filesUnder(join(root, 'crates/tcpserver-node/src'), '.rs'),
    ...filesUnder(join(root, 'packages/tcpserver/src'), '.ts'),
  ]
  const long = files
    .map((f) => [relative(root, f), readFileSync(f, 'utf8').split('\n').length - 1] as const)
    .filter(([, n]) => n > MAX_LINES)
  t.deepEqual(long, [])
})
