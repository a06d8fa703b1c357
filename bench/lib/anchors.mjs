// The reference servers every row is also compared with: Bun's `Bun.listen` (raw TCP, like ours)
// and uWebSockets.js (its HTTP app). Both come from the npm registry at pinned versions and are
// installed on first use into node_modules/.cache/bench-anchors, outside the project's lock file:
// they are measuring sticks, not dependencies.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BUN_VERSION = '1.4.5'
export const UWS_VERSION = '20.30.0-unofficial.0'
const UWS_PACKAGE = '@trufflesuite/uws-js-unofficial'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const ANCHORS_DIR = join(ROOT, 'node_modules/.cache/bench-anchors')

/**
 * Bun's binary comes in a per-platform optional package (`@oven/bun-linux-x64`, `-baseline`,
 * `-musl`...); the `bun` package's own `bin/bun.exe` is a placeholder until its postinstall
 * runs, which this install skips. The first that runs here wins.
 */
const bunCandidates = () => {
  const oven = join(ANCHORS_DIR, 'node_modules/@oven')
  if (!existsSync(oven)) return []
  return readdirSync(oven)
    .map((dir) => join(oven, dir, 'bin/bun'))
    .filter((bin) => existsSync(bin))
}
const bunBinary = () => bunCandidates()[0] ?? join(ANCHORS_DIR, 'node_modules/@oven/missing/bin/bun')
const uwsEntry = () => join(ANCHORS_DIR, 'node_modules', UWS_PACKAGE)

/**
 * Installs the anchors when missing (npm, pinned versions, no lock file of ours touched).
 * Returns the reason they cannot be had, or null. Install scripts stay off: Bun's npm package
 * ships its binary in a per-platform optional dependency, uWS its binaries in the tarball.
 */
export function ensureAnchors({ log = () => {} } = {}) {
  if (existsSync(bunBinary()) && existsSync(uwsEntry())) return null
  mkdirSync(ANCHORS_DIR, { recursive: true })
  log(`installing bun@${BUN_VERSION} and ${UWS_PACKAGE}@${UWS_VERSION} into ${ANCHORS_DIR}`)
  try {
    execFileSync(
      'npm',
      [
        'install',
        '--prefix',
        ANCHORS_DIR,
        '--no-save',
        '--no-package-lock',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        `bun@${BUN_VERSION}`,
        `${UWS_PACKAGE}@${UWS_VERSION}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' },
    )
  } catch (err) {
    return `npm install failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-1)[0]}`
  }
  return existsSync(bunBinary()) && existsSync(uwsEntry()) ? null : 'installed, but a binary is missing'
}

/** The `bun` executable, or null when it is not installed (or does not run here). */
export function bunPath() {
  for (const bin of bunCandidates()) {
    try {
      execFileSync(bin, ['--version'], { stdio: 'ignore' })
      return bin
    } catch {
      // another CPU level or libc: try the next
    }
  }
  return null
}

/** uWebSockets.js loaded in this (Node) process; throws when it is not installed. */
export function loadUws() {
  return createRequire(import.meta.url)(uwsEntry())
}
