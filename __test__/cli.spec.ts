// The `tcpserver` command line: spawns `node packages/tcpserver/dist/cli.js` with real clients
// (node:net, and curl when installed). Every child is killed at teardown; every wait is bounded.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import { collect, connect, roundTrip, sha256, within } from './helpers/index.ts'

const CLI = fileURLToPath(new URL('../packages/tcpserver/dist/cli.js', import.meta.url))
const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0

interface Cli {
  child: ChildProcess
  /** Every stdout line so far. */
  lines: string[]
  stderr(): string
  /** Resolves with the first stdout line (already printed or to come) matching `re`. */
  line(re: RegExp, ms?: number): Promise<RegExpMatchArray>
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>
}

function run(t: ExecutionContext, args: string[]): Cli {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let err = ''
  let partial = ''
  const waiters: Array<() => void> = []
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    const parts = (partial + s).split('\n')
    partial = parts.pop() ?? ''
    lines.push(...parts)
    for (const w of waiters.splice(0)) w()
  })
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    err += s
  })
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      for (const w of waiters.splice(0)) w()
      resolve(code ?? signal ?? -1)
    }),
  )
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const line = async (re: RegExp, ms = 10_000): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + ms
    for (;;) {
      for (const l of lines) {
        const m = re.exec(l)
        if (m) return m
      }
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        throw new Error(
          `no line matching ${re} (stdout: ${JSON.stringify(lines)}, stderr: ${JSON.stringify(err)})`,
        )
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1)
        waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }
  return { child, lines, stderr: () => err, line, exited: within(exited, 20_000, 'cli exit') }
}

/** The addresses of the "listening on" line: `[{ host, port }]`. */
async function listening(cli: Cli, command: string): Promise<Array<{ host: string; port: number }>> {
  const m = await cli.line(new RegExp(`^tcpserver ${command} listening on (.+)$`))
  return m[1]!.split(', ').map((a) => {
    const at = a.lastIndexOf(':')
    return { host: a.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(a.slice(at + 1)) }
  })
}

/** The first port of the "listening on" line. */
async function firstPort(cli: Cli, command: string): Promise<number> {
  const [first] = await listening(cli, command)
  if (first === undefined) throw new Error('no address in the listening line')
  return first.port
}

/** Runs the CLI to completion (for commands that exit by themselves). */
function runToExit(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Sends raw bytes and returns everything the server sends until it closes. */
async function rawExchange(port: number, writes: string[]): Promise<string> {
  const socket = await connect(port)
  const received = collect(socket)
  for (const w of writes) {
    socket.write(w)
    await new Promise((r) => setTimeout(r, 20))
  }
  return (await within(received, 10_000, 'server close')).toString('latin1')
}

const count = (s: string, sub: string): number => s.split(sub).length - 1

test('--help: the program and each subcommand, exit 0', (t) => {
  const main = runToExit(['--help'])
  t.is(main.status, 0)
  t.regex(main.stdout, /Usage: tcpserver <command>/)
  t.regex(main.stdout, /echo/)
  t.regex(main.stdout, /http/)
  t.notRegex(main.stdout, /proxy|static/)

  const echo = runToExit(['echo', '--help'])
  t.is(echo.status, 0)
  for (const flag of [
    '--listen',
    '--loops',
    '--reuse-port',
    '--no-reuse-port',
    '--fast-open',
    '--defer-accept',
    '--max-connections',
    '--stats',
    '--shutdown-timeout',
  ]) {
    t.true(echo.stdout.includes(flag), flag)
  }
  t.false(echo.stdout.includes('--body-size'))

  const http = runToExit(['http', '-h'])
  t.is(http.status, 0)
  t.true(http.stdout.includes('--body-size'))
  t.is(runToExit(['help', 'http']).stdout, http.stdout)
  t.regex(runToExit(['--version']).stdout, /^\d+\.\d+\.\d+/)
})

test('bad command lines exit 2 and name the problem with a code', (t) => {
  const cases: Array<[string[], string]> = [
    [[], 'ERR_USAGE'],
    [['nope'], 'ERR_USAGE'],
    [['proxy'], 'ERR_USAGE'],
    [['echo', '--bogus'], 'ERR_PARSE_ARGS_UNKNOWN_OPTION'],
    [['echo', 'stray'], 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'],
    [['echo', '--loops'], 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'],
    [['echo', '--loops', 'four'], 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'],
    [['echo', '--stats', '-1'], 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'],
    [['echo', '--body-size', '10'], 'ERR_PARSE_ARGS_UNKNOWN_OPTION'],
    [['echo', '--reuse-port', '--no-reuse-port'], 'ERR_USAGE'],
  ]
  for (const [args, code] of cases) {
    const r = runToExit(args)
    t.is(r.status, 2, args.join(' '))
    t.true(r.stderr.includes(`[${code}]`), `${args.join(' ')}: ${r.stderr}`)
    t.regex(r.stderr, /--help/)
  }
})

test('a value the library rejects exits 1 with its code', (t) => {
  const r = runToExit(['echo', '--listen', '127.0.0.1:0', '--loops', '0'])
  t.is(r.status, 1)
  t.true(r.stderr.includes('[ERR_INVALID_ARG_VALUE]'), r.stderr)
})

test('echo on port 0, IPv4 and IPv6: real clients, 1 MiB intact; SIGTERM exits 0', async (t) => {
  const cli = run(t, ['echo', '--listen', '127.0.0.1:0', '--listen', '[::1]:0', '--loops', '2'])
  const [v4, v6] = await listening(cli, 'echo')
  t.is(v4!.host, '127.0.0.1')
  t.is(v6!.host, '::1')
  t.true(v4!.port > 0 && v6!.port > 0)

  const data = randomBytes(1 << 20)
  const back = await within(roundTrip(v4!.port, data), 10_000, 'echo round trip')
  t.is(sha256(back), sha256(data))
  t.is((await within(roundTrip(v6!.port, 'six', '::1'), 10_000, 'v6 round trip')).toString(), 'six')

  cli.child.kill('SIGTERM')
  t.is(await cli.exited, 0)
  await cli.line(/^tcpserver: closed \(completed=\d+ forced=0\)$/)
  t.is(cli.stderr(), '')
})

test('http: keep-alive, pipelining, split requests, Connection: close and HTTP/1.0', async (t) => {
  const cli = run(t, ['http', '--listen', '127.0.0.1:0', '--body-size', '11'])
  const port = await firstPort(cli, 'http')

  // Three pipelined requests in one write, the third asks to close: three answers, then FIN.
  const request = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
  const pipelined = await rawExchange(port, [
    `${request}${request}GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n`,
  ])
  t.is(count(pipelined, 'HTTP/1.1 200 OK\r\n'), 3)
  t.is(count(pipelined, 'Content-Length: 11\r\n'), 3)
  t.is(count(pipelined, 'xxxxxxxxxxx'), 3)
  t.true(pipelined.endsWith('Connection: close\r\n\r\nxxxxxxxxxxx'))

  // A request head split across writes, then one with `connection: Keep-Alive, CLOSE`.
  const split = await rawExchange(port, [
    'GET / HT',
    'TP/1.1\r\nHost: x\r',
    '\n\r\n',
    'GET / HTTP/1.1\r\nconnection: Keep-Alive, CLOSE\r\n\r\n',
  ])
  t.is(count(split, '200 OK'), 2)

  // HTTP/1.0 closes unless it asks for keep-alive.
  const http10 = await rawExchange(port, ['GET / HTTP/1.0\r\n\r\n'])
  t.is(count(http10, '200 OK'), 1)
  t.true(http10.includes('Connection: close\r\n'))

  if (hasCurl) {
    const curl = spawnSync(
      'curl',
      [
        '-sS',
        '--max-time',
        '10',
        '-w',
        '%{http_code} %{num_connects}\\n',
        `http://127.0.0.1:${port}/a`,
        `http://127.0.0.1:${port}/b`,
      ],
      { encoding: 'utf8', timeout: 15_000 },
    )
    t.is(curl.status, 0, curl.stderr)
    // Two responses over one connection (keep-alive): the second reports 0 new connects.
    t.is(curl.stdout, 'xxxxxxxxxxx200 1\nxxxxxxxxxxx200 0\n')
  } else {
    t.log('curl not installed: the curl part is skipped')
  }

  cli.child.kill('SIGINT')
  t.is(await cli.exited, 0)
})

test('--stats prints a line on its timer and on SIGUSR1', async (t) => {
  const cli = run(t, ['http', '--listen', '127.0.0.1:0', '--stats', '0.2'])
  const port = await firstPort(cli, 'http')
  await rawExchange(port, ['GET / HTTP/1.1\r\nConnection: close\r\n\r\n'])
  const m = await cli.line(
    /^tcpserver stats accepted=1 active=0 bytes_in=\d+ bytes_out=(\d+) requests=1 .*interval_s=/,
  )
  t.true(Number(m[1]) > 1024)

  const quiet = run(t, ['echo', '--listen', '127.0.0.1:0'])
  await listening(quiet, 'echo')
  t.false(quiet.lines.some((l) => l.startsWith('tcpserver stats')))
  quiet.child.kill('SIGUSR1')
  await quiet.line(/^tcpserver stats accepted=0 active=0 bytes_in=0 bytes_out=0 conn_per_s=/)

  cli.child.kill('SIGTERM')
  quiet.child.kill('SIGTERM')
  t.is(await cli.exited, 0)
  t.is(await quiet.exited, 0)
})

test('EADDRINUSE is reported with its code and exit status 1', async (t) => {
  const holder = net.createServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  t.teardown(() => holder.close())
  const { port } = holder.address() as net.AddressInfo
  const cli = run(t, ['echo', '--listen', `127.0.0.1:${port}`])
  t.is(await cli.exited, 1)
  t.regex(cli.stderr(), /^tcpserver: error \[EADDRINUSE\]: /)
  t.deepEqual(cli.lines, [])
})

test('SIGTERM waits for open connections up to --shutdown-timeout, then closes them and exits 0', async (t) => {
  const cli = run(t, ['echo', '--listen', '127.0.0.1:0', '--shutdown-timeout', '300'])
  const port = await firstPort(cli, 'echo')
  const idle = await connect(port)
  const echoed = new Promise((resolve) => idle.once('data', resolve))
  const ended = collect(idle).catch(() => Buffer.alloc(0))
  idle.write('still here')
  await within(echoed, 5_000, 'echo') // the server has accepted it, not just the kernel
  const started = Date.now()
  cli.child.kill('SIGTERM')
  t.is(await cli.exited, 0)
  t.true(Date.now() - started >= 250, 'waited for the deadline')
  await cli.line(/^tcpserver: SIGTERM: shutting down \(deadline 300 ms\)$/)
  await cli.line(/^tcpserver: closed \(completed=0 forced=1\)$/)
  await within(ended, 5_000, 'client sees the close')
  idle.destroy()
})

test('a second signal closes every connection at once', async (t) => {
  const cli = run(t, ['echo', '--listen', '127.0.0.1:0', '--shutdown-timeout', '60000'])
  const port = await firstPort(cli, 'echo')
  const idle = await connect(port)
  const echoed = new Promise((resolve) => idle.once('data', resolve))
  const ended = collect(idle).catch(() => Buffer.alloc(0))
  idle.write('accepted?')
  await within(echoed, 5_000, 'echo') // the server has accepted it, not just the kernel
  cli.child.kill('SIGINT')
  await cli.line(/^tcpserver: SIGINT: shutting down \(deadline 60000 ms\)$/)
  cli.child.kill('SIGINT')
  t.is(await cli.exited, 0)
  await cli.line(/^tcpserver: SIGINT again: closing every connection now$/)
  await cli.line(/^tcpserver: closed \(completed=0 forced=1\)$/)
  await within(ended, 5_000, 'client sees the close')
  idle.destroy()
})
