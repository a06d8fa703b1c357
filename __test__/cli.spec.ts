// The `tcpserver` command line: spawns `node packages/tcpserver/dist/cli/main.js` with real clients
// (node:net, and curl when installed). Every child is killed at teardown; every wait is bounded.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { firstPort, hasCurl, listening, rawExchange, run, runToExit } from './helpers/cli.ts'
import { collect, connect, roundTrip, sha256, within } from './helpers/index.ts'

const count = (s: string, sub: string): number => s.split(sub).length - 1

test('--help: the program and each subcommand, exit 0', (t) => {
  const main = runToExit(['--help'])
  t.is(main.status, 0)
  t.regex(main.stdout, /Usage: tcpserver <command>/)
  const common = ['--listen', '--loops', '--reuse-port', '--no-reuse-port', '--fast-open', '--defer-accept']
  const more = ['--max-connections', '--stats', '--shutdown-timeout']
  const tls = ['--tls-cert', '--tls-key']
  const proxy = ['--upstream', '--upstream-tls', '--upstream-ca', '--connect-timeout']
  // Each command's help: its usage line, its flags and no other command's.
  const helps: Array<[string, string, string[], string[]]> = [
    ['echo', 'echo [options]', [...common, ...more], ['--body-size', ...tls, ...proxy]],
    ['http', 'http [options]', [...common, ...more, '--body-size'], [...tls, ...proxy]],
    [
      'proxy',
      'proxy --upstream HOST:PORT [options]',
      [...common, ...more, ...tls, ...proxy],
      ['--body-size'],
    ],
    ['static', 'static DIR [options]', [...common, ...more, ...tls], ['--body-size', ...proxy]],
  ]
  for (const [command, usage, present, absent] of helps) {
    t.regex(main.stdout, new RegExp(`^  ${command} `, 'm'))
    const help = runToExit([command, command === 'http' ? '-h' : '--help'])
    t.is(help.status, 0, command)
    t.true(help.stdout.startsWith(`Usage: tcpserver ${usage}\n`), command)
    for (const flag of present) t.true(help.stdout.includes(flag), `${command} ${flag}`)
    for (const flag of absent) t.false(help.stdout.includes(flag), `${command} ${flag}`)
    t.is(runToExit(['help', command]).stdout, help.stdout)
  }
  // --help wins even over a missing DIR or --upstream, or a bad flag.
  t.is(runToExit(['proxy', '--bogus', '--help']).status, 0)
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
    [['echo', '--tls-cert', 'c.pem', '--tls-key', 'k.pem'], 'ERR_PARSE_ARGS_UNKNOWN_OPTION'],
    [['proxy'], 'ERR_USAGE'], // no --upstream
    [['proxy', '--listen', '127.0.0.1:0'], 'ERR_USAGE'],
    [['proxy', '--upstream', 'no-port'], 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'],
    [['proxy', '--upstream', '127.0.0.1:65536'], 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'],
    [['proxy', '--upstream', '::1:80'], 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'],
    [['proxy', '-u', '127.0.0.1:1', '--connect-timeout', 'soon'], 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'],
    [['proxy', '-u', '127.0.0.1:1', '--upstream-ca', 'ca.pem'], 'ERR_USAGE'], // without --upstream-tls
    [['proxy', '-u', '127.0.0.1:1', '--tls-cert', 'c.pem'], 'ERR_USAGE'], // without --tls-key
    [['proxy', '-u', '127.0.0.1:1', 'stray'], 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'],
    [['static'], 'ERR_USAGE'], // no DIR
    [['static', '/no/such/dir'], 'ENOENT'],
    [['static', fileURLToPath(import.meta.url)], 'ENOTDIR'],
    [['static', '.', '.'], 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'],
    [['static', '.', '--tls-key', 'k.pem'], 'ERR_USAGE'],
    [['static', '.', '--upstream', '127.0.0.1:1'], 'ERR_PARSE_ARGS_UNKNOWN_OPTION'],
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
  t.true(r.stderr.includes('[ERR_OUT_OF_RANGE]'), r.stderr)
})

test('a file that cannot be read at the start exits 1 with its code', (t) => {
  const missing = '/no/such/file.pem'
  for (const args of [
    ['static', '.', '--listen', '127.0.0.1:0', '--tls-cert', missing, '--tls-key', missing],
    ['proxy', '-u', '127.0.0.1:1', '--listen', '127.0.0.1:0', '--upstream-tls', '--upstream-ca', missing],
  ]) {
    const r = runToExit(args)
    t.is(r.status, 1, args.join(' '))
    t.regex(r.stderr, /^tcpserver: error \[ENOENT\]: /, args.join(' '))
    t.is(r.stdout, '')
  }
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
