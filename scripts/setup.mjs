#!/usr/bin/env node
// Installs and builds whatever is missing or stale, so that `npm start` and `npm test` work on
// a fresh clone: npm dependencies, the native addon (release build), the TypeScript output,
// and (as root, on Debian) the command-line tools the tests drive.
import { execFileSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const pkg = join(root, 'packages/tcpserver')
const quiet = process.argv.includes('--quiet')
const log = (msg) => quiet || console.log(`setup: ${msg}`)

function run(cmd, args, cwd = root) {
  log(`${cmd} ${args.join(' ')}`)
  execFileSync(cmd, args, { cwd, stdio: 'inherit' })
}

/** Newest mtime under `dir` for files passing `filter`. */
function newest(dir, filter = () => true) {
  let t = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'target' || entry.name === 'dist') continue
    const p = join(dir, entry.name)
    if (entry.isDirectory()) t = Math.max(t, newest(p, filter))
    else if (filter(p)) t = Math.max(t, statSync(p).mtimeMs)
  }
  return t
}

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0)

// 0. `--check-lock`: the committed package-lock.json is the one npm writes for package.json, with
// the optional packages of every platform (a lock trimmed to one platform makes `npm ci` fail
// elsewhere: "Missing: @biomejs/cli-darwin-arm64 from lock file"). npm re-resolves the lock in a
// temp copy of the manifests (`npm install --package-lock-only`, registry metadata only, nothing
// installed) and `npm ci --dry-run` must accept it; any change fails.
if (process.argv.includes('--check-lock')) {
  const tmp = mkdtempSync(join(tmpdir(), 'tcpserver-lock-'))
  try {
    const manifests = ['package.json', 'package-lock.json']
    for (const ws of readdirSync(join(root, 'packages'))) {
      if (existsSync(join(root, 'packages', ws, 'package.json')))
        manifests.push(`packages/${ws}/package.json`)
    }
    for (const f of manifests) {
      mkdirSync(dirname(join(tmp, f)), { recursive: true })
      copyFileSync(join(root, f), join(tmp, f))
    }
    const npm = ['--no-audit', '--no-fund', '--ignore-scripts', '--no-update-notifier']
    run('npm', ['install', '--package-lock-only', ...npm], tmp)
    const before = readFileSync(join(root, 'package-lock.json'), 'utf8')
    const after = readFileSync(join(tmp, 'package-lock.json'), 'utf8')
    if (before !== after) {
      const a = JSON.parse(before).packages
      const b = JSON.parse(after).packages
      const added = Object.keys(b).filter((k) => !(k in a))
      const changed = Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
      console.error(
        `setup: package-lock.json is not what npm writes for package.json: ${added.length} entries missing ` +
          `(${added.slice(0, 5).join(', ')}${added.length > 5 ? ', ...' : ''}), ${changed.length} differ ` +
          `(${changed.slice(0, 5).join(', ')}). Regenerate it: npm install --package-lock-only (and commit it).`,
      )
      process.exit(1)
    }
    run('npm', ['ci', '--dry-run', ...npm], tmp)
    log('package-lock.json is the one npm writes, and npm ci accepts it')
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  process.exit(0)
}

// 1. npm dependencies.
if (
  !existsSync(join(root, 'node_modules/.bin/napi')) ||
  mtime(join(root, 'package-lock.json')) > mtime(join(root, 'node_modules/.package-lock.json'))
) {
  // `npm install` honours the lock and, the lock being complete (every platform's optional
  // packages, as npm writes it; `--check-lock` below keeps it so), leaves it unchanged. CI uses
  // `npm ci` on a fresh clone; here `npm install` keeps node_modules/.cache (Node 24, arm64 Node).
  run('npm', ['install', '--no-audit', '--no-fund'])
}

// 2. The native addon, rebuilt when any Rust source is newer.
const addon = readdirSync(pkg).find((f) => f.endsWith('.node'))
const rustNewest = Math.max(
  newest(join(root, 'crates'), (p) => /\.(rs|toml)$/.test(p)),
  mtime(join(root, 'Cargo.lock')),
)
if (!addon || rustNewest > mtime(join(pkg, addon))) {
  const { name } = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'))
  run('npm', ['run', 'build:native', '-w', name])
}

// 3. TypeScript output.
if (
  newest(join(pkg, 'src')) > mtime(join(pkg, 'dist/index.js')) ||
  mtime(join(pkg, 'binding.d.cts')) > mtime(join(pkg, 'dist/index.js'))
) {
  // Without its output, tsc -b would still trust its build info and emit nothing.
  if (!existsSync(join(pkg, 'dist/index.js'))) rmSync(join(pkg, 'tsconfig.tsbuildinfo'), { force: true })
  run('npx', ['tsc', '-b', 'packages/tcpserver'])
}

// 4. Debian tools the tests use (scripts/install-tools.sh holds the list).
if (process.argv.includes('--test-tools')) run('bash', [join(root, 'scripts/install-tools.sh')])
log('ready')
