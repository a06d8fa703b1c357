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

/**
 * The files a Rust source file uses (`crate::`, `super::`, `self::` paths, `use` groups
 * included), each as the deepest module file the path names; doc comments and the test module
 * do not count. `files` maps a module path (`driver/local`) to its file.
 */
function rustUses(mod: string, file: string, files: Map<string, string>): string[] {
  const parts = mod === '' ? [] : mod.split('/')
  const text = (readFileSync(file, 'utf8').split(/#\[cfg\(test\)\]\s*mod tests/)[0] as string)
    .split('\n')
    .filter((l) => !l.trim().startsWith('//'))
    .join('\n')
  const resolveTo = (path: string[]): string | null => {
    for (let n = path.length; n > 0; n--) {
      const m = path.slice(0, n).join('/')
      if (files.has(m)) return m
    }
    return null
  }
  const absolute = (kind: string, path: string[]): string[] => {
    if (kind === 'crate') return path
    if (kind === 'self') return [...parts, ...path]
    return [...parts.slice(0, -1), ...path.filter((p) => p !== 'super')]
  }
  const used = new Set<string>()
  for (const m of text.matchAll(/\b(crate|super|self)((?:::[A-Za-z_]\w*)+)/g)) {
    const to = resolveTo(absolute(m[1] as string, (m[2] as string).split('::').slice(1)))
    if (to !== null && to !== mod) used.add(to)
  }
  for (const m of text.matchAll(/use (crate|super)::((?:\w+::)*)\{([^}]*)\}/g)) {
    const base = absolute(m[1] as string, (m[2] as string).split('::').filter(Boolean))
    for (const item of (m[3] as string).split(',')) {
      const name = item.trim().split(/\s/)[0]
      if (!name) continue
      const to = resolveTo([...base, ...name.split('::')])
      if (to !== null && to !== mod) used.add(to)
    }
  }
  return [...used]
}

for (const crate of ['crates/tcpserver/src', 'crates/tcpserver-node/src']) {
  test(`${crate} has no import circle between its files`, (t) => {
    const dir = join(root, crate)
    const files = new Map<string, string>()
    for (const f of filesUnder(dir, '.rs')) {
      const mod = relative(dir, f)
        .replace(/\.rs$/, '')
        .replace(/(^|\/)(mod|lib)$/, '')
      files.set(mod, f)
    }
    const graph = new Map([...files].map(([mod, f]) => [mod, rustUses(mod, f, files)]))
    t.true((graph.get('server') ?? []).length > 0, 'the uses were found')
    t.is(findCycle(graph)?.join(' → ') ?? null, null)
  })
}

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
