// Runs the `tcpserver` command line (`node packages/tcpserver/dist/cli/main.js`) for the cli*.spec.ts
// files: a child killed at teardown, its stdout lines awaited with deadlines, the address of its
// "listening on" line, and raw exchanges with what it serves.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ExecutionContext } from 'ava'
import { collect, connect, within } from './index.ts'

const CLI = fileURLToPath(new URL('../../packages/tcpserver/dist/cli/main.js', import.meta.url))
export const hasCurl = spawnSync('curl', ['--version'], { stdio: 'ignore' }).status === 0

export interface Cli {
  child: ChildProcess
  /** Every stdout line so far. */
  lines: string[]
  stderr(): string
  /** Resolves with the first stdout line (already printed or to come) matching `re`. */
  line(re: RegExp, ms?: number): Promise<RegExpMatchArray>
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>
}

/** Starts the CLI with `args`; SIGKILLed at teardown if still running. */
export function run(t: ExecutionContext, args: string[]): Cli {
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
export async function listening(cli: Cli, command: string): Promise<Array<{ host: string; port: number }>> {
  const m = await cli.line(new RegExp(`^tcpserver ${command} listening on (.+)$`))
  return m[1]!.split(', ').map((a) => {
    const at = a.lastIndexOf(':')
    return { host: a.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(a.slice(at + 1)) }
  })
}

/** The first port of the "listening on" line. */
export async function firstPort(cli: Cli, command: string): Promise<number> {
  const [first] = await listening(cli, command)
  if (first === undefined) throw new Error('no address in the listening line')
  return first.port
}

/** Runs the CLI to completion (for commands that exit by themselves). */
export function runToExit(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** Sends raw bytes and returns everything the server sends until it closes. */
export async function rawExchange(port: number, writes: string[]): Promise<string> {
  const socket = await connect(port)
  const received = collect(socket)
  for (const w of writes) {
    socket.write(w)
    await new Promise((r) => setTimeout(r, 20))
  }
  return (await within(received, 10_000, 'server close')).toString('latin1')
}

/** Sends `signal` (a graceful shutdown) and checks the CLI exits with status 0. */
export async function terminate(
  t: ExecutionContext,
  cli: Cli,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  cli.child.kill(signal)
  t.is(await cli.exited, 0)
}
