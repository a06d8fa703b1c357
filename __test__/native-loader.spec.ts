// What importing the package says when its native binary cannot be used (src/native.ts): the
// package, as published (dist/, binding.cjs, package.json; no .node), is copied to a temp folder
// and imported by a child process, with the platform faked (`--import` a module that redefines
// process.platform/arch before the loader runs) or a corrupt binary where the loader finds one.
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import test from 'ava'

const PKG_DIR = fileURLToPath(new URL('../packages/tcpserver/', import.meta.url))
const pkg = JSON.parse(readFileSync(join(PKG_DIR, 'package.json'), 'utf8')) as {
  name: string
  version: string
  napi: { binaryName: string; packageName?: string }
}
const prefix = `${pkg.napi.packageName ?? pkg.name}-`
const libc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header
  .glibcVersionRuntime
  ? 'gnu'
  : 'musl'

interface Outcome {
  loaded: boolean
  code?: string
  message?: string
  cause?: string
  direct?: string
}

/** A copy of the package as npm would install it, without any binary. */
function installedCopy(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tcpserver-loader-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const copy = join(dir, 'pkg')
  mkdirSync(copy)
  for (const f of ['dist', 'binding.cjs', 'package.json'])
    cpSync(join(PKG_DIR, f), join(copy, f), { recursive: true })
  return copy
}

/** Imports the copy in a child process; `fake` redefines process properties first. */
async function importIn(copy: string, fake: Record<string, string> = {}, probe?: string): Promise<Outcome> {
  const preload = `data:text/javascript,${encodeURIComponent(
    Object.entries(fake)
      .map(
        ([k, v]) => `Object.defineProperty(process, ${JSON.stringify(k)}, { value: ${JSON.stringify(v)} });`,
      )
      .join(''),
  )}`
  const script = `
    import { createRequire } from 'node:module'
    let direct
    if (${JSON.stringify(probe ?? null)}) {
      try { createRequire(import.meta.url)(${JSON.stringify(probe ?? '')}) } catch (e) { direct = e.message }
    }
    try {
      await import(${JSON.stringify(join(copy, 'dist/index.js'))})
      console.log(JSON.stringify({ loaded: true }))
    } catch (e) {
      console.log(JSON.stringify({ loaded: false, code: e.code, message: e.message, cause: e.cause?.message, direct }))
    }`
  const env = { ...process.env }
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH
  // Not the helpers' runner: they import the package, which needs the binary this spec withholds.
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', preload, '--input-type=module', '-e', script],
    { env, timeout: 30_000 },
  )
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as Outcome
}

test('no platform package: ERR_TCPSERVER_NATIVE_MISSING naming the package to install for this platform', async (t) => {
  const copy = installedCopy(t)
  const name = `${prefix}linux-x64-${libc}`
  const out = await importIn(copy, { platform: 'linux', arch: 'x64' })
  t.false(out.loaded)
  t.is(out.code, 'ERR_TCPSERVER_NATIVE_MISSING')
  t.true(out.message?.includes(`npm install ${name}@${pkg.version}`), out.message)
  t.regex(out.message ?? '', /--omit=optional/)
  t.notRegex(out.message ?? '', /npm run build/)
  t.regex(out.cause ?? '', /^Cannot find native binding/, 'the loader’s own error is the cause')
})

test('another architecture: the package named is that architecture’s', async (t) => {
  const out = await importIn(installedCopy(t), { platform: 'linux', arch: 'arm64' })
  t.is(out.code, 'ERR_TCPSERVER_NATIVE_MISSING')
  t.true(out.message?.includes(`npm install ${prefix}linux-arm64-${libc}@${pkg.version}`), out.message)
})

test('a platform without a prebuilt binary: the error lists the ones there are and points to a source build', async (t) => {
  const out = await importIn(installedCopy(t), { platform: 'freebsd', arch: 'x64' })
  t.is(out.code, 'ERR_TCPSERVER_NATIVE_MISSING')
  t.regex(out.message ?? '', /no prebuilt native binary for freebsd-x64/)
  t.regex(out.message ?? '', /linux-x64-gnu, .*darwin-arm64, win32-x64-msvc/)
  t.regex(out.message ?? '', /from source with the Rust toolchain/)
  t.notRegex(out.message ?? '', /npm install /)
})

test('a corrupt binary beside the loader: ERR_TCPSERVER_NATIVE_LOAD carrying the loader’s message', async (t) => {
  const copy = installedCopy(t)
  const file = join(copy, `${pkg.napi.binaryName}.linux-x64-${libc}.node`)
  writeFileSync(file, 'not an ELF file')
  const out = await importIn(copy, { platform: 'linux', arch: 'x64' }, file)
  t.is(out.code, 'ERR_TCPSERVER_NATIVE_LOAD')
  t.regex(out.message ?? '', /is installed but failed to load/)
  t.truthy(out.direct, 'requiring the file directly fails too')
  t.true(out.message?.includes(out.direct ?? '?'), `${out.message}\nshould carry: ${out.direct}`)
})

test('a corrupt binary in the installed platform package: ERR_TCPSERVER_NATIVE_LOAD, not "missing"', async (t) => {
  const copy = installedCopy(t)
  const name = `${prefix}linux-x64-${libc}`
  const dir = join(copy, 'node_modules', ...name.split('/'))
  mkdirSync(dir, { recursive: true })
  const main = `${pkg.napi.binaryName}.linux-x64-${libc}.node`
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: pkg.version, main }))
  writeFileSync(join(dir, main), Buffer.alloc(4096, 0x7f))
  const out = await importIn(copy, { platform: 'linux', arch: 'x64' }, join(dir, main))
  t.is(out.code, 'ERR_TCPSERVER_NATIVE_LOAD')
  t.true(out.message?.includes(out.direct ?? '?'), `${out.message}\nshould carry: ${out.direct}`)
  t.notRegex(out.message ?? '', /not installed/)
})
