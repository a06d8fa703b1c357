#!/usr/bin/env node
// Installs and builds whatever is missing or stale, so that `npm start` and `npm test` work on
// a fresh clone: npm dependencies, the native addon (release build), the TypeScript output,
// and (as root, on Debian) the command-line tools the tests drive.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
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

// 1. npm dependencies.
if (
  !existsSync(join(root, 'node_modules/.bin/napi')) ||
  mtime(join(root, 'package-lock.json')) > mtime(join(root, 'node_modules/.package-lock.json'))
) {
  // `npm install` honours the lock; `npm ci` rejects locks that omit other platforms' optional
  // packages, which this machine's npm writes (omit-lockfile-registry-resolved).
  run('npm', ['install', '--no-audit', '--no-fund'])
}

// 2. The native addon, rebuilt when any Rust source is newer.
const addon = readdirSync(pkg).find((f) => f.endsWith('.node'))
const rustNewest = Math.max(
  newest(join(root, 'crates'), (p) => /\.(rs|toml)$/.test(p)),
  mtime(join(root, 'Cargo.lock')),
)
if (!addon || rustNewest > mtime(join(pkg, addon))) {
  run('npm', ['run', 'build:native', '-w', 'tcpserver'])
}

// 3. TypeScript output.
if (
  newest(join(pkg, 'src')) > mtime(join(pkg, 'dist/index.js')) ||
  mtime(join(pkg, 'binding.d.cts')) > mtime(join(pkg, 'dist/index.js'))
) {
  run('npx', ['tsc', '-b', 'packages/tcpserver'])
}

// 4. Debian tools the tests use (scripts/install-tools.sh holds the list).
if (process.argv.includes('--test-tools')) run('bash', [join(root, 'scripts/install-tools.sh')])
log('ready')
