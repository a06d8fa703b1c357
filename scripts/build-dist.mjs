#!/usr/bin/env node
// `npm run build:dist`: the release binaries this machine can build, each in its napi-rs platform
// package, packed with the main package into artifacts/ (npm pack tarballs, as `npm publish`
// would upload them).
//
// - Linux glibc (x64, arm64): zig links against glibc 2.17 (`--target <triple>.2.17 -x`: napi
//   build runs cargo-zigbuild, which hands the version to zig), so distributions from 2014 on
//   (RHEL/CentOS 7, Debian 8, Ubuntu 14.04) load them.
// - Linux musl (x64, arm64) and macOS (x64, arm64): cargo-zigbuild, zig as C compiler and linker
//   (zig writes Mach-O itself; no macOS SDK is needed for this crate).
// - Windows x64 (MSVC) is not built here (no MSVC SDK): the CI workflow builds it on a Windows
//   runner (.github/workflows/ci.yml).
//
// The platform packages are written by `napi create-npm-dirs` into packages/tcpserver/npm/<platform>/
// (generated, gitignored); this script adds the binary, a README and the LICENSE. Names come from
// packages/tcpserver/package.json (name, napi.packageName, napi.targets), never from this file.
//
// `node scripts/build-dist.mjs [--force] [TRIPLE...]`: TRIPLEs (default: every napi target but
// Windows) limit the build; a binary newer than every Rust source and Cargo.lock is kept unless
// --force. Installs zig, cargo-zigbuild and the Rust targets when missing (scripts/build-dist-tools.sh).
import { execFileSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const pkgDir = join(root, 'packages/tcpserver')
const outDir = join(root, 'artifacts')
const args = process.argv.slice(2)
const force = args.includes('--force')
const log = (msg) => console.log(`build-dist: ${msg}`)

function run(cmd, argv, cwd = root, env = process.env) {
  log(`${cmd} ${argv.join(' ')}`)
  return execFileSync(cmd, argv, { cwd, env, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' })
}

const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
const packageName = pkg.napi.packageName ?? pkg.name
const { parseTriple } = await import('@napi-rs/cli')
const requested = args.filter((a) => !a.startsWith('--'))
const targets = (requested.length ? requested : pkg.napi.targets).map(parseTriple)
const unknown = targets.filter((t) => !pkg.napi.targets.includes(t.triple))
if (unknown.length) throw new Error(`not napi targets of ${pkg.name}: ${unknown.map((t) => t.triple)}`)
const windows = targets.filter((t) => t.platform === 'win32')
const buildable = targets.filter((t) => t.platform !== 'win32')
for (const t of windows)
  log(`skip ${t.triple}: built by the CI workflow on a Windows runner (no MSVC SDK here)`)

// Tools: Rust targets, zig (from the ziglang wheel, put on PATH: napi build -x looks for `zig`).
run('bash', [join(root, 'scripts/build-dist-tools.sh'), ...buildable.map((t) => t.triple)])
const zigDir = execFileSync(
  'python3',
  ['-c', 'import ziglang, os; print(os.path.dirname(ziglang.__file__))'],
  {
    encoding: 'utf8',
  },
).trim()
const env = { ...process.env, PATH: `${zigDir}:${process.env.PATH}` }

/** Newest mtime of the files under `dir` passing `filter` (target/ and node_modules skipped). */
function newest(dir, filter) {
  let t = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'target' || e.name === 'node_modules') continue
    const p = join(dir, e.name)
    if (e.isDirectory()) t = Math.max(t, newest(p, filter))
    else if (filter(p)) t = Math.max(t, statSync(p).mtimeMs)
  }
  return t
}
const rustNewest = Math.max(
  newest(join(root, 'crates'), (p) => /\.(rs|toml)$/.test(p)),
  statSync(join(root, 'Cargo.lock')).mtimeMs,
  statSync(join(root, 'Cargo.toml')).mtimeMs,
)

/** The glibc a gnu target is linked against (zig's `<triple>.<glibc>` spelling). */
const GLIBC_FLOOR = '2.17'

// 1. The platform package folders (package.json with os/cpu/libc; README and LICENSE below).
run(process.execPath, [join(root, 'node_modules/@napi-rs/cli/dist/cli.js'), 'create-npm-dirs'], pkgDir)
const license = join(pkgDir, 'LICENSE')
for (const t of targets) {
  const dir = join(pkgDir, 'npm', t.platformArchABI)
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  manifest.files = [...new Set([...manifest.files, 'README.md', 'LICENSE'])]
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  copyFileSync(license, join(dir, 'LICENSE'))
  const needs =
    t.abi === 'gnu'
      ? `Linux with glibc ${GLIBC_FLOOR} or newer`
      : t.abi === 'musl'
        ? 'Linux with musl libc (Alpine)'
        : t.platform === 'darwin'
          ? 'macOS'
          : 'Windows'
  writeFileSync(
    join(dir, 'README.md'),
    `# \`${manifest.name}\`\n\nThe prebuilt native binary of [\`${pkg.name}\`](https://www.npmjs.com/package/${pkg.name}) ` +
      `for **${t.triple}** (${needs}, ${t.arch}).\n\nDo not install it directly: \`npm install ${pkg.name}\` ` +
      `installs the one package of this kind that matches the machine (an optional dependency with \`os\`, ` +
      `\`cpu\` and \`libc\` fields).\n\nLicense: MIT (see LICENSE).\n`,
  )
}

// 2. The binaries.
for (const t of buildable) {
  const file = `${pkg.napi.binaryName}.${t.platformArchABI}.node`
  const dest = join(pkgDir, 'npm', t.platformArchABI, file)
  if (!force && existsSync(dest) && statSync(dest).mtimeMs > rustNewest) {
    log(`${file} is newer than the Rust sources: kept (--force rebuilds)`)
    continue
  }
  const scratch = join(root, 'target/dist', t.triple)
  rmSync(scratch, { recursive: true, force: true })
  mkdirSync(scratch, { recursive: true })
  const started = Date.now()
  run(
    process.execPath,
    [
      join(root, 'node_modules/@napi-rs/cli/dist/cli.js'),
      'build',
      '--platform',
      '--release',
      '--manifest-path',
      join(root, 'crates/tcpserver-node/Cargo.toml'),
      '--package-json-path',
      join(pkgDir, 'package.json'),
      '--output-dir',
      scratch,
      '--no-js',
      '--dts',
      'binding.d.cts',
      '--target',
      t.abi === 'gnu' ? `${t.triple}.${GLIBC_FLOOR}` : t.triple,
      '-x',
    ],
    root,
    env,
  )
  copyFileSync(join(scratch, file), dest)
  log(`${file}: ${statSync(dest).size} bytes in ${Math.round((Date.now() - started) / 1000)} s`)
}

// 3. The tarballs. The main package as `napi pre-publish` makes it before `npm publish`: its
// optionalDependencies name every platform package at this version (the repository's package.json
// has none, so that the workspace installs and `npm ci` need no unpublished package). It is packed
// from a staged copy (the files `npm pack` would take, its prepack having copied README.md), so the
// tracked package.json is never rewritten.
rmSync(outDir, { recursive: true, force: true })
mkdirSync(outDir, { recursive: true })
run('npx', ['tsc', '-b', 'packages/tcpserver'])
const stage = join(root, 'target/dist/stage', pkg.name)
rmSync(stage, { recursive: true, force: true })
const [listing] = JSON.parse(run('npm', ['pack', '--dry-run', '--json'], pkgDir))
for (const f of listing.files) {
  mkdirSync(dirname(join(stage, f.path)), { recursive: true })
  copyFileSync(join(pkgDir, f.path), join(stage, f.path))
}
const staged = { ...pkg, optionalDependencies: {} }
for (const triple of pkg.napi.targets)
  staged.optionalDependencies[`${packageName}-${parseTriple(triple).platformArchABI}`] = pkg.version
writeFileSync(join(stage, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`)
const packed = []
for (const dir of [stage, ...buildable.map((t) => join(pkgDir, 'npm', t.platformArchABI))]) {
  const [info] = JSON.parse(
    run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', outDir], dir),
  )
  packed.push(info)
  log(`packed ${info.filename}: ${info.files.map((f) => f.path).join(', ')}`)
}
writeFileSync(
  join(outDir, 'manifest.json'),
  `${JSON.stringify(
    {
      package: pkg.name,
      version: pkg.version,
      packageName,
      glibc: GLIBC_FLOOR,
      built: buildable.map((t) => t.triple),
      notBuilt: windows.map((t) => t.triple),
      tarballs: packed.map((p) => ({ name: p.name, file: p.filename, files: p.files.map((f) => f.path) })),
    },
    null,
    2,
  )}\n`,
)
log(`done: ${packed.length} tarballs in ${outDir}`)
