#!/usr/bin/env node
// The `tcpserver` command: `tcpserver echo|http|proxy|static [options]`. See docs/cli.md.
// The library (and with it the native addon) loads only to run a server: `--help`, `--version`
// and usage errors work even where no binary for this platform is installed.
import { readFileSync } from 'node:fs'
import { type Invocation, parseCommandLine, UsageError } from './args.js'

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

/** The first line of an error's message and of each of its causes. */
function causes(e: unknown): string[] {
  const out: string[] = []
  for (let c = e, depth = 0; c != null && depth < 10; c = (c as { cause?: unknown }).cause, depth++) {
    out.push(String((c as { message?: unknown }).message ?? c).split('\n')[0] as string)
  }
  return out
}

async function main(argv: readonly string[]): Promise<number> {
  let invocation: Invocation
  try {
    invocation = parseCommandLine(argv)
  } catch (e) {
    if (!(e instanceof UsageError)) throw e
    const help = e.command === undefined ? 'tcpserver --help' : `tcpserver ${e.command} --help`
    process.stderr.write(`tcpserver: error [${e.code}]: ${e.message}\nRun "${help}" for usage.\n`)
    return 2
  }
  switch (invocation.kind) {
    case 'help':
      process.stdout.write(`${invocation.text}\n`)
      return 0
    case 'version':
      process.stdout.write(`${packageVersion()}\n`)
      return 0
    case 'run': {
      let runServer: typeof import('./run.js').runServer
      try {
        ;({ runServer } = await import('./run.js'))
      } catch (e) {
        // The native addon did not load (no binary for this platform): say why, causes included.
        const code = (e as { code?: unknown }).code
        process.stderr.write(
          `tcpserver: error${typeof code === 'string' ? ` [${code}]` : ''}: ${causes(e).join('\n  cause: ')}\n`,
        )
        return 1
      }
      return runServer(invocation.command, invocation.options)
    }
  }
}

process.exitCode = await main(process.argv.slice(2))
