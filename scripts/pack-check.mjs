#!/usr/bin/env node
// Packs packages/tcpserver the way `npm publish` would, installs the tarball into a fresh
// project and uses it from there: the ESM import, the types, the `tcpserver` bin, and a real
// client round trip. Nothing here reads the workspace's sources, so a file missing from
// "files"/"exports" fails the check.
//
// The per-platform packages are not part of this check (`npm run build:dist` and `npm run
// test:dist` build, pack and install those), so the install has none and the check copies the
// locally built <binary>.<platform>.node next to the installed binding.cjs, where the generated
// loader looks first. Before that copy it checks what the loader says when no binary matches.
//
// `node scripts/pack-check.mjs [--keep]`. Exit status: 0 passed, 1 failed, 77 skipped (npm
// cannot pack here); the last line says which. Works offline (the ava suite runs it in a
// private network namespace): the install is `npm install --offline`.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const pkgDir = join(root, 'packages/tcpserver')
const keep = process.argv.includes('--keep')
const started = Date.now()
const STEP_TIMEOUT = 60_000
// Windows runs npm and bin shims (.cmd) only through a shell (Node >= 20.12 refuses otherwise).
const windows = process.platform === 'win32'
const quote = (a) => (windows && /[\s"]/.test(a) ? `"${a.replaceAll('"', '\\"')}"` : a)
let checks = 0

const log = (msg) => console.log(`pack-check: ${msg}`)
class Skip extends Error {}

function ok(cond, what) {
  if (!cond) throw new Error(what)
  checks++
  log(`ok   ${what}`)
}

/** Runs a command; returns stdout. Throws with stderr on a non-zero exit or after the timeout. */
function run(cmd, args, cwd, env = process.env) {
  try {
    const shell = windows && !cmd.endsWith('.exe')
    return execFileSync(cmd, shell ? args.map(quote) : args, {
      cwd,
      env,
      encoding: 'utf8',
      timeout: STEP_TIMEOUT,
      stdio: 'pipe',
      shell,
    })
  } catch (e) {
    const detail = `${e.stderr ?? ''}${e.stdout ?? ''}`.trim().split('\n').slice(-15).join('\n')
    throw new Error(`${cmd} ${args.join(' ')} failed (${e.code ?? e.status ?? e.signal}):\n${detail}`)
  }
}

async function main() {
  // 0. What there is to pack. A tarball without the compiled output or a binary to run proves nothing.
  try {
    run('npm', ['--version'], root)
  } catch (e) {
    throw new Skip(`npm is not usable here: ${e.message.split('\n')[0]}`)
  }
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  const binaries = readdirSync(pkgDir).filter(
    (f) => f.startsWith(`${pkg.napi.binaryName}.`) && f.endsWith('.node'),
  )
  ok(
    binaries.length > 0,
    `a built binary in packages/tcpserver (${binaries.join(', ') || 'none: run node scripts/setup.mjs'})`,
  )
  const src = readdirSync(join(pkgDir, 'src')).filter((f) => f.endsWith('.ts'))
  const distJs = existsSync(join(pkgDir, 'dist'))
    ? readdirSync(join(pkgDir, 'dist')).filter((f) => f.endsWith('.js'))
    : []
  const stale = distJs.filter((f) => !src.includes(f.replace(/\.js$/, '.ts')))
  ok(
    stale.length === 0,
    `dist/ has no output of deleted sources${stale.length ? ` (stale: ${stale.join(', ')})` : ''}`,
  )
  const unbuilt = src.filter((f) => !distJs.includes(f.replace(/\.ts$/, '.js')))
  ok(
    unbuilt.length === 0,
    `dist/ has the output of every source${unbuilt.length ? ` (run node scripts/setup.mjs; missing: ${unbuilt})` : ''}`,
  )

  // The platform packages: one per napi target, named `<napi.packageName or name>-<platform>`. The
  // repository's package.json lists none as optionalDependencies (napi pre-publish adds them at
  // publish time; build-dist.mjs does the same for its tarballs); if some are listed, all must be.
  const { parseTriple } = await import('@napi-rs/cli')
  const packageName = pkg.napi.packageName ?? pkg.name
  const expected = Object.fromEntries(
    pkg.napi.targets.map((t) => [`${packageName}-${parseTriple(t).platformArchABI}`, pkg.version]),
  )
  ok(
    pkg.optionalDependencies === undefined ||
      JSON.stringify(Object.entries(pkg.optionalDependencies).sort()) ===
        JSON.stringify(Object.entries(expected).sort()),
    `optionalDependencies are absent (added at publish) or name one package per napi target at ${pkg.version}`,
  )

  // 1. npm pack.
  const work = mkdtempSync(join(tmpdir(), 'tcpserver-pack-'))
  try {
    let packed
    try {
      packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], pkgDir))[0]
    } catch (e) {
      if (/EACCES|EROFS|ENOSPC/.test(e.message)) throw new Skip(`npm pack cannot write here: ${e.message}`)
      throw e
    }
    const tarball = join(work, packed.filename)
    const files = packed.files.map((f) => f.path)
    log(`packed ${packed.filename}: ${files.length} files, ${packed.size} bytes`)
    const targets = [
      'package.json',
      'binding.cjs',
      'binding.d.cts',
      pkg.main,
      pkg.types,
      ...Object.values(pkg.bin ?? {}),
      ...Object.values(pkg.exports).flatMap((v) => (typeof v === 'string' ? [v] : Object.values(v))),
    ].map((p) => p.replace(/^\.\//, ''))
    targets.push('README.md', 'LICENSE')
    const missing = [...new Set(targets)].filter((p) => !files.includes(p))
    ok(
      missing.length === 0,
      `the tarball has every main/types/bin/exports target, README.md and LICENSE${missing.length ? ` (missing ${missing})` : ''}`,
    )
    const unwanted = files.filter((f) => /\.node$|^src\/|^npm\/|^artifacts\/|tsbuildinfo/.test(f))
    ok(
      unwanted.length === 0,
      `the tarball has no binaries, sources or build state${unwanted.length ? ` (${unwanted})` : ''}`,
    )

    // 2. A fresh project that installs the tarball, offline. The platform packages are not
    // published, so npm skips them; the loader must then fail and say why.
    const app = join(work, 'app')
    mkdirSync(app, { recursive: true })
    writeFileSync(
      join(app, 'package.json'),
      `${JSON.stringify({ name: 'pack-check-app', private: true, type: 'module' })}\n`,
    )
    run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--no-update-notifier', tarball], app)
    const installed = join(app, 'node_modules', pkg.name)
    ok(
      existsSync(join(installed, 'binding.cjs')),
      `npm install <tarball> installed ${pkg.name} (offline, without platform packages)`,
    )

    const probe = `try { await import(${JSON.stringify(pkg.name)}); console.log(JSON.stringify({ loaded: true })) }
      catch (e) { const m = []; for (let c = e, i = 0; c && i < 20; c = c.cause, i++) m.push(String(c.message)); console.log(JSON.stringify({ loaded: false, code: e.code, messages: m })) }`
    const noBinary = JSON.parse(run(process.execPath, ['--input-type=module', '-e', probe], app))
    ok(!noBinary.loaded, 'without a binary, importing the package fails')
    const [top, ...causes] = noBinary.messages
    const platformPackage = new RegExp(
      `${packageName}-(${Object.keys(expected)
        .map((n) => n.slice(packageName.length + 1))
        .join('|')})\\b`,
    )
    const named = [top, ...causes].find((m) => platformPackage.test(m))?.split('\n')[0]
    ok(
      named !== undefined,
      `...and the error (with its causes) names the missing platform package: "${named}"`,
    )
    ok(
      noBinary.code === 'ERR_TCPSERVER_NATIVE_MISSING' && platformPackage.test(top),
      `the top-level error has code ERR_TCPSERVER_NATIVE_MISSING and names the package: "${top.slice(0, 120)}"`,
    )
    const binShim = join(app, 'node_modules/.bin', windows ? 'tcpserver.cmd' : 'tcpserver')
    const help = run(binShim, ['--help'], app)
    ok(/Usage: tcpserver/.test(help), 'the tcpserver bin is linked and --help works without the binary')
    const noBin = spawnSync(binShim, ['echo', '--listen', '127.0.0.1:0'], {
      cwd: app,
      shell: windows,
      encoding: 'utf8',
      timeout: STEP_TIMEOUT,
    })
    ok(
      noBin.status === 1 && platformPackage.test(noBin.stderr),
      `without the binary, "tcpserver echo" exits 1 naming the platform package (${noBin.status})`,
    )

    // 3. The locally built binary next to the installed loader, as a platform package would provide it.
    for (const b of binaries) copyFileSync(join(pkgDir, b), join(installed, b))
    const smoke = `import { createHash, randomBytes } from 'node:crypto'
  import net from 'node:net'
  import { isTcpServerError, listen } from ${JSON.stringify(pkg.name)}

  const server = await listen({
    address: '127.0.0.1:0',
    async handler(conn) {
      for await (const chunk of conn) await conn.write(chunk)
    },
  })
  const port = server.addresses[0].port
  const data = randomBytes(512 * 1024)
  const back = await new Promise((resolve, reject) => {
    const chunks = []
    const socket = net.connect(port, '127.0.0.1', () => socket.end(data))
    socket.on('data', (c) => chunks.push(c))
    socket.on('end', () => resolve(Buffer.concat(chunks)))
    socket.on('error', reject)
  })
  const sha = (b) => createHash('sha256').update(b).digest('hex')
  let code = null
  try {
    await listen({ address: '127.0.0.1:' + port, reusePort: false })
  } catch (e) {
    code = isTcpServerError(e) ? e.code : 'not a TcpServerError'
  }
  const result = await server.shutdown({ timeout: 1000 })
  console.log(JSON.stringify({ intact: sha(back) === sha(data), bytes: back.length, code, result }))
  `
    writeFileSync(join(app, 'smoke.mjs'), smoke)
    const s = JSON.parse(run(process.execPath, ['smoke.mjs'], app).trim().split('\n').pop())
    ok(
      s.intact && s.bytes === 512 * 1024,
      `ESM import { listen } from '${pkg.name}': echo round trip of 512 KiB intact`,
    )
    ok(
      s.code === 'EADDRINUSE',
      `a second bind of the port throws a TcpServerError with code EADDRINUSE (${s.code})`,
    )

    // 4. The shipped types, as a TypeScript user compiles against them.
    writeFileSync(
      join(app, 'check.ts'),
      `import { type Connection, listen, type ListenOptions, type Server, type TcpServerError } from '${pkg.name}'
  const options: ListenOptions = { address: '127.0.0.1:0', handler: async (c: Connection) => { await c.write('x') } }
  export const started: Promise<Server> = listen(options)
  export const code = (e: TcpServerError): string => e.code
  `,
    )
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          lib: ['ES2023', 'ESNext.Disposable'],
          types: ['node'],
          typeRoots: [join(root, 'node_modules/@types')],
          skipLibCheck: false,
        },
        files: ['check.ts'],
      }),
    )
    run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], app)
    ok(true, 'the shipped .d.ts files type-check a strict NodeNext user (skipLibCheck off)')

    // 5. The bin, from the installed package: listen on port 0, serve, exit 0 on SIGTERM.
    // Windows has no SIGTERM to send (kill() terminates), so there the bin was checked above only.
    if (windows) {
      log('skip the bin serving check on Windows (no SIGTERM)')
      return
    }
    const bin = await new Promise((resolve, reject) => {
      const child = spawn(binShim, ['echo', '--listen', '127.0.0.1:0'], { cwd: app })
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(new Error(`the bin did not finish in time: ${out}`))
      }, STEP_TIMEOUT)
      let out = ''
      let asked = false
      child.stderr.on('data', (d) => {
        out += d
      })
      child.stdout.on('data', (d) => {
        out += d
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out)
        if (!m || asked) return
        asked = true
        const socket = net.connect(Number(m[1]), '127.0.0.1', () => socket.end('bin'))
        const chunks = []
        socket.on('data', (c) => chunks.push(c))
        socket.on('error', reject)
        socket.on('close', () => {
          child.kill('SIGTERM')
          child.once('exit', (code) => {
            clearTimeout(timer)
            resolve({ echoed: Buffer.concat(chunks).toString(), code })
          })
        })
      })
    })
    ok(
      bin.echoed === 'bin' && bin.code === 0,
      `node_modules/.bin/tcpserver echo serves a client and exits 0 on SIGTERM`,
    )
  } finally {
    if (keep) log(`kept ${work}`)
    else rmSync(work, { recursive: true, force: true })
  }
}

try {
  await main()
  log(`passed: ${checks} checks in ${((Date.now() - started) / 1000).toFixed(1)} s`)
} catch (e) {
  if (e instanceof Skip) {
    log(`skipped: ${e.message}`)
    process.exitCode = 77
  } else {
    log(`FAILED: ${e.message}`)
    process.exitCode = 1
  }
}
