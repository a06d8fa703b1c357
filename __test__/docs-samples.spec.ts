// Docs that cannot rot: every ```ts / ```js sample of README.md and docs/*.md is written to a
// file (with 'tcpserver' pointing at this checkout), run in its own Node process and driven by a
// real client. A fence's info string names its sample (```ts gzip); each name has a driver
// below, and a sample without one (or a driver whose sample is gone) fails the first test.
// Info-string flags: `node>=24` (syntax newer Node only: older ones must refuse it with a
// SyntaxError), `no-run` (a fragment; the reason must follow on the fence line).
//
// Substitutions, the only edits made to a sample: remote addresses become local stand-ins.
//   '10.0.0.5:80'  →  a node:net echo server on 127.0.0.1 (the proxy sample's upstream)
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { gunzipSync } from 'node:zlib'
import test, { type ExecutionContext } from 'ava'
import { collect, sleep, within } from './helpers/index.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const PACKAGE = pathToFileURL(join(ROOT, 'packages/tcpserver/dist/index.js')).href
const NODE_MAJOR = Number(process.versions.node.split('.')[0])

interface Sample {
  file: string
  line: number
  name: string
  flags: string[]
  code: string
}

/** The ```ts / ```js blocks of the README and docs/, with their info strings. */
function samples(): Sample[] {
  const files = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ]
  const found: Sample[] = []
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), 'utf8')
    const fence = /^```(ts|js|typescript|javascript)(?=[ \t\n])([^\n]*)\n([\s\S]*?)^```/gm
    for (let m = fence.exec(text); m !== null; m = fence.exec(text)) {
      const [name = '', ...flags] = (m[2] ?? '').trim().split(/\s+/).filter(Boolean)
      found.push({ file, line: text.slice(0, m.index).split('\n').length, name, flags, code: m[3] ?? '' })
    }
  }
  return found
}

/** Substitutions: remote addresses → local stand-ins (see the header). */
const substitutions = (upstreamPort: number): Array<[string, string]> => [
  ["'10.0.0.5:80'", `'127.0.0.1:${upstreamPort}'`],
]

/** The sample as a runnable module file (in `dir`, as `name`, when another sample imports it). */
function materialize(sample: Sample, upstreamPort = 0, dir?: string, name?: string): string {
  let code = sample.code.replaceAll(/from 'tcpserver-rs'/g, `from '${PACKAGE}'`)
  for (const [from, to] of substitutions(upstreamPort)) code = code.replaceAll(from, to)
  const into = dir ?? mkdtempSync(join(tmpdir(), 'docs-sample-'))
  // ES modules also under a .js name, as the samples write them.
  writeFileSync(join(into, 'package.json'), '{ "type": "module" }\n')
  const file = join(into, name ?? `${sample.name || 'unnamed'}.mjs`)
  writeFileSync(file, code)
  return file
}

interface Run {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<number | string>
}

function run(t: ExecutionContext, file: string): Run {
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.setEncoding('utf8').on('data', (s: string) => {
    out += s
  })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    err += s
  })
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (c, s) => resolve(c ?? s ?? -1)),
  )
  // Killed, and gone, before the next sample binds the same port.
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await within(exited, 5000, 'sample process exit')
  })
  return { child, stdout: () => out, stderr: () => err, exited }
}

/** Waits until `host:port` accepts (the sample is up), failing with the child's stderr. */
async function listening(r: Run, port: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host, () => {
        s.destroy()
        resolve(true)
      })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (r.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`sample not listening on ${host}:${port}; stderr: ${r.stderr()}`)
    }
    await sleep(50)
  }
}

/** Sends `data`, half-closes, returns all the reply. */
async function exchange(port: number, data: string | Buffer, host = '127.0.0.1'): Promise<Buffer> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, host, () => resolve(s))
    s.once('error', reject)
  })
  const got = collect(socket)
  socket.end(data)
  return within(got, 5000, `reply from ${host}:${port}`)
}

/** A node:net echo server on 127.0.0.1: the stand-in for a remote upstream. */
async function echoStandIn(t: ExecutionContext): Promise<number> {
  const server = net.createServer((s) => s.pipe(s)).listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  t.teardown(() => server.close())
  return (server.address() as net.AddressInfo).port
}

/** A self-contained sample: runs to its end, printing `lines`. */
async function runsToEnd(t: ExecutionContext, sample: Sample, lines: string[]): Promise<void> {
  const r = run(t, materialize(sample))
  t.is(await within(r.exited, 15_000, `${sample.name} exits by itself`), 0, r.stderr())
  t.deepEqual(r.stdout().trim().split('\n'), lines)
}

type Driver = (t: ExecutionContext, sample: Sample) => Promise<void>

/** The workers sample with its handler module (`handler.js` beside it), answering a client. */
const workersPair: Driver = async (t) => {
  const all = samples()
  const main = all.find((s) => s.name === 'workers') as Sample
  const handler = all.find((s) => s.name === 'workers-handler') as Sample
  const dir = mkdtempSync(join(tmpdir(), 'docs-sample-'))
  materialize(handler, 0, dir, 'handler.js')
  const r = run(t, materialize(main, 0, dir, 'main.mjs'))
  await listening(r, 8080)
  t.regex((await exchange(8080, '')).toString(), /^hello from worker \d+ \(thread \d+\)\n$/)
}

const drivers: Record<string, Driver> = {
  'quick-start': async (t, sample) => {
    const r = run(t, materialize(sample))
    await listening(r, 7000)
    t.is((await exchange(7000, 'echo over IPv4')).toString(), 'echo over IPv4')
    t.is((await exchange(7000, 'echo over IPv6', '::1')).toString(), 'echo over IPv6')
    t.regex(r.stdout(), /port: 7000/)
    // Its SIGTERM handler shuts the server down; nothing else keeps the process alive.
    r.child.kill('SIGTERM')
    t.is(await within(r.exited, 10_000, 'exit after SIGTERM'), 0)
  },
  proxy: async (t, sample) => {
    const upstream = await echoStandIn(t)
    const r = run(t, materialize(sample, upstream))
    await listening(r, 9000)
    t.is((await exchange(9000, 'through the proxy')).toString(), 'through the proxy')
  },
  receive: async (t, sample) => {
    const r = run(t, materialize(sample))
    await listening(r, 7001)
    t.is((await exchange(7001, 'hello\nwor')).toString(), 'HELLO\n')
    t.is((await exchange(7001, 'a\nb\nQUIT\nnot read\n')).toString(), 'A\nB\nBYE\n')
  },
  gzip: async (t, sample) => {
    const r = run(t, materialize(sample))
    await listening(r, 7000)
    const data = Buffer.from('compress me '.repeat(10_000))
    t.deepEqual(gunzipSync(await exchange(7000, data)), data)
  },
  'node-http': async (t, sample) => {
    const r = run(t, materialize(sample))
    await listening(r, 8080)
    const body = await within(
      new Promise<string>((resolve, reject) => {
        http
          .get('http://127.0.0.1:8080/', (res) => {
            let b = ''
            res.setEncoding('utf8').on('data', (c: string) => {
              b += c
            })
            res.on('end', () => resolve(b))
          })
          .on('error', reject)
      }),
      5000,
      'GET /',
    )
    t.is(body, 'hello\n')
  },
  'web-streams': async (t, sample) => {
    const r = run(t, materialize(sample))
    await listening(r, 7001)
    await listening(r, 7002)
    t.is((await exchange(7001, 'web echo')).toString(), 'web echo')
    // 'é' split across two writes: TextDecoderStream joins it.
    const socket = net.connect(7002, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    const bytes = Buffer.from('h\u00e9llo')
    socket.write(bytes.subarray(0, 2))
    await sleep(50)
    socket.end(bytes.subarray(2))
    const deadline = Date.now() + 5000
    while (!r.stdout().includes('llo') && Date.now() < deadline) await sleep(20)
    t.is(r.stdout().replaceAll('\n', ''), 'h\u00e9llo')
  },
  'await-using': async (t, sample) => {
    if (NODE_MAJOR >= 24) return runsToEnd(t, sample, ['hi', 'done'])
    // What the README says about Node 20: a SyntaxError before anything runs.
    const check = spawnSync(process.execPath, ['--check', materialize(sample)], { encoding: 'utf8' })
    t.not(check.status, 0)
    t.regex(check.stderr, /SyntaxError/)
  },
  'try-finally': (t, sample) => runsToEnd(t, sample, ['hi', 'done']),
  workers: workersPair,
  // Imported by the workers sample, and run there.
  'workers-handler': async (t) => {
    t.truthy(drivers.workers && samples().some((s) => s.name === 'workers'), 'run by the workers sample')
  },
}

test('every sample of README.md and docs/ is named and has a driver here (and every driver a sample)', (t) => {
  const all = samples()
  for (const s of all) {
    if (s.flags.includes('no-run') || s.name === 'no-run') {
      t.true(s.flags.length > 1, `${s.file}:${s.line}: a no-run sample says why on its fence line`)
    } else {
      t.truthy(
        drivers[s.name],
        `${s.file}:${s.line}: sample "${s.name}" has no driver in docs-samples.spec.ts`,
      )
    }
  }
  const names = all.map((s) => s.name)
  for (const name of Object.keys(drivers)) t.true(names.includes(name), `driver "${name}" has no sample`)
  t.is(new Set(names).size, names.length, 'sample names are unique')
})

for (const sample of samples()) {
  const driver = drivers[sample.name]
  if (driver === undefined) continue
  test.serial(`${sample.file}:${sample.line} (${sample.name}) runs as written`, (t) => driver(t, sample))
}
