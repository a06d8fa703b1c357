// Command-line parsing for the `tcpserver` bin: subcommands, flags, help texts.
//
// Flags are parsed with `node:util` `parseArgs` (built in, strict mode rejects unknown flags and
// stray positionals with `ERR_PARSE_ARGS_*` codes). This file turns strings into numbers and
// booleans only; whether a value is in range is the library's call (`ERR_OUT_OF_RANGE`, `ERR_INVALID_ARG_VALUE`), so
// no rule is checked twice. Two exceptions the library cannot check before the first client
// arrives: the shape of `proxy --upstream` and whether the DIR of `static` is a directory.
import { statSync } from 'node:fs'
import { type ParseArgsConfig, parseArgs } from 'node:util'

/** The subcommands this CLI has. */
export type CommandName = 'echo' | 'http' | 'proxy' | 'static'

const COMMANDS: readonly CommandName[] = ['echo', 'http', 'proxy', 'static']

/** TLS termination (`--tls-cert`, `--tls-key`): paths of PEM files, read by `listen()`. */
export interface TlsFiles {
  cert: string
  key: string
}

/** What one subcommand needs beyond {@link CommonOptions}. */
export type CommandOptions =
  | { name: 'echo' }
  | {
      name: 'http'
      /** Response body size, bytes. */
      bodySize: number
    }
  | {
      name: 'proxy'
      /** `host:port` to forward every connection to. */
      upstream: string
      /** Speak TLS to the upstream (verified against `upstreamCa`, else the Mozilla roots). */
      upstreamTls: boolean
      /** PEM file of the CAs the upstream's certificate must chain to. */
      upstreamCa: string | undefined
      /** Milliseconds for resolving and connecting to the upstream; `undefined` = no limit. */
      connectTimeout: number | undefined
      /** Send a PROXY protocol header of this version to the upstream first. */
      proxyProtocol: 'v1' | 'v2' | undefined
    }
  | {
      name: 'static'
      /** The directory served (checked to be one; its realpath is taken at start). */
      root: string
    }

/** Options every subcommand takes. `undefined` leaves the library default. */
export interface CommonOptions {
  /** Addresses to listen on (at least one). */
  listen: string[]
  /** Handler threads (`listen({ workers })`); undefined: the main thread alone. */
  workers: number | 'auto' | undefined
  loops: number | undefined
  reusePort: boolean | undefined
  fastOpen: number | undefined
  deferAccept: number | undefined
  maxConnections: number | undefined
  /** Seconds between stats lines; 0 = none. */
  stats: number
  /** Milliseconds a graceful shutdown waits before closing the remaining connections. */
  shutdownTimeout: number
  /** TLS termination (`proxy` and `static` only). */
  tls: TlsFiles | undefined
  /** Expect PROXY protocol headers from these networks (and refuse other sources). */
  acceptProxy: string[] | undefined
}

/** What the command line asks for. */
export type Invocation =
  | { kind: 'help'; text: string }
  | { kind: 'version' }
  | { kind: 'run'; command: CommandOptions; options: CommonOptions }

/** A command-line mistake: printed with its code and a hint, exit status 2. */
export class UsageError extends Error {
  readonly code: string
  /** The subcommand whose help the user should read, if known. */
  readonly command: CommandName | undefined

  constructor(message: string, code: string, command?: CommandName) {
    super(message)
    this.name = 'UsageError'
    this.code = code
    this.command = command
  }
}

/** Default shutdown deadline, ms. */
export const DEFAULT_SHUTDOWN_TIMEOUT = 10_000
/** Default `http` body size, bytes (the benchmark's). */
export const DEFAULT_BODY_SIZE = 1024
/** Default `proxy --connect-timeout`, ms: a silent upstream must not hold clients for minutes. */
export const DEFAULT_CONNECT_TIMEOUT = 5000

/** setInterval's limit (a larger delay silently becomes 1 ms). */
const MAX_TIMER_MS = 0x7fff_ffff

const DEFAULT_LISTEN: Record<CommandName, string> = {
  echo: '127.0.0.1:7000',
  http: '127.0.0.1:8080',
  proxy: '127.0.0.1:9000',
  static: '127.0.0.1:8081',
}

const COMMON_FLAGS = {
  listen: { type: 'string', short: 'l', multiple: true },
  workers: { type: 'string', short: 'w' },
  loops: { type: 'string' },
  'reuse-port': { type: 'boolean' },
  // Declared on its own (not `allowNegative`, which needs Node >= 20.16) so every Node 20 parses it.
  'no-reuse-port': { type: 'boolean' },
  'fast-open': { type: 'string' },
  'defer-accept': { type: 'string' },
  'max-connections': { type: 'string' },
  'accept-proxy': { type: 'string', multiple: true },
  stats: { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

const TLS_FLAGS = {
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

const FLAGS = {
  echo: COMMON_FLAGS,
  http: { ...COMMON_FLAGS, 'body-size': { type: 'string' } },
  proxy: {
    ...COMMON_FLAGS,
    ...TLS_FLAGS,
    upstream: { type: 'string', short: 'u' },
    'upstream-tls': { type: 'boolean' },
    'upstream-ca': { type: 'string' },
    'connect-timeout': { type: 'string' },
    'proxy-protocol': { type: 'string' },
  },
  static: { ...COMMON_FLAGS, ...TLS_FLAGS },
} as const satisfies Record<CommandName, NonNullable<ParseArgsConfig['options']>>

const COMMON_HELP = `  -l, --listen ADDR            listen on ADDR; repeat for several addresses. Forms: 127.0.0.1:7000,
                               [::1]:7000, [::]:7000 (dual-stack), :7000 (every interface),
                               unix:/path/to.sock (Unix domain socket); port 0 picks a free port
                               (the "listening on" line names it)
  -w, --workers N|auto         run the handlers on N worker threads ('auto': one per CPU), fed
                               by the accept loops [default: the main thread alone]
      --loops N                accept loops per address, one SO_REUSEPORT socket each
                               [default: the CPUs this process may use]
      --reuse-port             SO_REUSEPORT on the listening sockets [default]
      --no-reuse-port          without SO_REUSEPORT (then --loops must be 1)
      --fast-open N            TCP_FASTOPEN queue length; 0 = off [default: off]
      --defer-accept N         TCP_DEFER_ACCEPT: wait up to N s for the client's first bytes (Linux)
                               [default: off]
      --max-connections N      stop accepting while N connections are open [default: unlimited]
      --accept-proxy CIDR      behind a load balancer: every connection starts with a PROXY
                               protocol header (v1 or v2) naming the real client; only sources in
                               CIDR (repeat for several: 10.0.0.0/8, ::1/128) may connect
      --stats SECONDS          print a stats line every SECONDS (fractions allowed) [default: off];
                               SIGUSR1 prints one at any time
      --shutdown-timeout MS    on SIGINT/SIGTERM stop accepting, wait up to MS for open connections,
                               then close them; a second signal closes them at once
                               [default: ${DEFAULT_SHUTDOWN_TIMEOUT}]`

const TLS_HELP = `      --tls-cert FILE          terminate TLS with this certificate chain (PEM, leaf first); needs
                               --tls-key
      --tls-key FILE           the certificate's private key (PEM)`

const HELP: Record<CommandName | 'main', string> = {
  main: `Usage: tcpserver <command> [options]

Commands:
  echo    echo server: every byte a client sends comes back
  http    minimal HTTP/1.1 responder (keep-alive, pipelining, Connection: close), fixed body
  proxy   TCP proxy: forwards every connection to an upstream (splice(2) zero-copy), TLS optional
  static  HTTP/1.1 file server for one directory (sendfile(2) zero-copy, GET/HEAD, Range)

Run "tcpserver <command> --help" for the options of a command.

Options:
  -h, --help      show this help
  -v, --version   print the version

Exit status: 0 after a shutdown by signal, 1 when the server cannot start (the error's code is
printed, e.g. EADDRINUSE), 2 for a bad command line.`,
  echo: `Usage: tcpserver echo [options]

Echo server: every byte a client sends is written back, with backpressure (a client that does not
read slows its own echo down). Prints "tcpserver echo listening on ADDR[, ADDR...]" once bound.

Options:
${COMMON_HELP}
  -h, --help                   show this help

Default address: ${DEFAULT_LISTEN.echo}`,
  http: `Usage: tcpserver http [options]

Minimal HTTP/1.1 responder (the benchmark's): answers every request with "200 OK" and a fixed body
of --body-size bytes. Keep-alive, pipelined requests, "Connection: close" (and HTTP/1.0 without
keep-alive) close after the response. Not an HTTP parser: request bodies are not supported.
Prints "tcpserver http listening on ADDR[, ADDR...]" once bound.

Options:
${COMMON_HELP}
      --body-size N            response body size in bytes [default: ${DEFAULT_BODY_SIZE}]
  -h, --help                   show this help

Default address: ${DEFAULT_LISTEN.http}`,
  proxy: `Usage: tcpserver proxy --upstream HOST:PORT [options]

TCP proxy: every accepted connection gets its own connection to the upstream, and bytes flow both
ways in the Rust core until both sides are done: splice(2), never entering JavaScript, when both
sides are plain TCP; a copy loop when either speaks TLS. With --tls-cert/--tls-key it terminates
TLS (clients speak TLS, the upstream gets plaintext unless --upstream-tls). An upstream that
refuses or does not answer in time closes the client's connection and prints one warning line on
stderr. Prints "tcpserver proxy listening on ADDR[, ADDR...]" once bound.

Options:
  -u, --upstream HOST:PORT     where to forward connections (required): 127.0.0.1:8080,
                               [::1]:8080, backend.internal:8080, or unix:/path/to.sock
      --upstream-tls           speak TLS to the upstream, verifying its certificate for HOST
                               against the Mozilla roots (or --upstream-ca)
      --upstream-ca FILE       PEM file of the CAs the upstream's certificate must chain to
                               (needs --upstream-tls)
      --connect-timeout MS     give up on an upstream connection after MS, and on its TLS
                               handshake after MS more; 0 = no limit (the handshake's own 10 s
                               still applies) [default: ${DEFAULT_CONNECT_TIMEOUT}]
      --proxy-protocol v1|v2   send the upstream a PROXY protocol header naming the client first
                               (for backends behind this proxy that accept it)
${TLS_HELP}
${COMMON_HELP}
  -h, --help                   show this help

Default address: ${DEFAULT_LISTEN.proxy}`,
  static: `Usage: tcpserver static DIR [options]

HTTP/1.1 file server for DIR: GET and HEAD, keep-alive and pipelining, Content-Type from the file
extension, single byte ranges ("Range: bytes=A-B", 206/416). Files go out with sendfile(2) on plain
TCP. Paths that leave DIR ("..", encoded or not, or a symbolic link pointing outside) are refused
with 403; a directory is served by its index.html. Prints "tcpserver static listening on
ADDR[, ADDR...]" once bound.

Options:
${TLS_HELP}
${COMMON_HELP}
  -h, --help                   show this help

Default address: ${DEFAULT_LISTEN.static}`,
}

/** The help text of a subcommand, or of the program. */
export function helpText(command?: CommandName): string {
  return HELP[command ?? 'main']
}

const isCommand = (s: string | undefined): s is CommandName => COMMANDS.includes(s as CommandName)

/** A whole number written in decimal digits (what a count, port or millisecond flag takes). */
function integer(flag: string, value: string | undefined, command: CommandName): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value.trim())) {
    throw new UsageError(
      `option --${flag} expects a whole number, got '${value}'`,
      'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
      command,
    )
  }
  return Number(value)
}

/** A non-negative decimal number (seconds may have fractions). */
function decimal(flag: string, value: string | undefined, command: CommandName): number | undefined {
  if (value === undefined) return undefined
  if (!/^(\d+\.?\d*|\.\d+)$/.test(value.trim())) {
    throw new UsageError(
      `option --${flag} expects a non-negative number, got '${value}'`,
      'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
      command,
    )
  }
  return Number(value)
}

/** A `host:port` or `[v6]:port` to connect to (resolution and reachability are checked per connection). */
function upstreamAddress(value: string | undefined, command: CommandName): string {
  if (value === undefined) {
    throw new UsageError('missing --upstream HOST:PORT (where to forward connections)', 'ERR_USAGE', command)
  }
  // A Unix domain socket upstream; connect() checks the path itself.
  if (value.startsWith('unix:') && value.length > 'unix:'.length) return value
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(value)
  if (m === null || Number(m[2]) < 1 || Number(m[2]) > 65_535) {
    throw new UsageError(
      `option --upstream expects HOST:PORT with a port from 1 to 65535, got '${value}'`,
      'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
      command,
    )
  }
  return value
}

/** The DIR argument of `static`: it must name a directory (the error code is the OS's). */
function directory(positionals: readonly string[], command: CommandName): string {
  const [dir, extra] = positionals
  if (dir === undefined) throw new UsageError('missing DIR (the directory to serve)', 'ERR_USAGE', command)
  if (extra !== undefined) {
    throw new UsageError(
      `unexpected argument '${extra}': static serves one DIR`,
      'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL',
      command,
    )
  }
  let isDirectory: boolean
  try {
    isDirectory = statSync(dir).isDirectory()
  } catch (e) {
    const code = (e as { code?: unknown }).code
    throw new UsageError(
      `cannot serve '${dir}': ${(e as Error).message}`,
      typeof code === 'string' ? code : 'ERR_USAGE',
      command,
    )
  }
  if (!isDirectory) throw new UsageError(`cannot serve '${dir}': not a directory`, 'ENOTDIR', command)
  return dir
}

/**
 * Parses `argv` (without the node and script paths) into what to do.
 *
 * @throws {UsageError} for an unknown command, flag or a value that is not a number; `code` is
 * Node's `ERR_PARSE_ARGS_*` code or `ERR_USAGE`; for `static`, the OS's code (`ENOENT`, `ENOTDIR`)
 * when DIR is not a directory.
 */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const [first, ...rest] = argv
  if (first === undefined) throw new UsageError(`missing command (${COMMANDS.join(', ')})`, 'ERR_USAGE')
  if (first === '-h' || first === '--help') return { kind: 'help', text: helpText() }
  if (first === '-v' || first === '--version') return { kind: 'version' }
  if (first === 'help') {
    const topic = rest[0]
    if (topic === undefined) return { kind: 'help', text: helpText() }
    if (!isCommand(topic)) throw new UsageError(`unknown command '${topic}'`, 'ERR_USAGE')
    return { kind: 'help', text: helpText(topic) }
  }
  if (!isCommand(first)) {
    const what = first.startsWith('-') ? 'option' : 'command'
    throw new UsageError(`unknown ${what} '${first}' (commands: ${COMMANDS.join(', ')})`, 'ERR_USAGE')
  }
  const command = first
  // --help wins over anything else on the line, even flags that would not parse.
  if (rest.includes('-h') || rest.includes('--help')) return { kind: 'help', text: helpText(command) }

  let values: Record<string, string | boolean | (string | boolean)[] | undefined>
  let positionals: string[]
  try {
    const options: NonNullable<ParseArgsConfig['options']> = FLAGS[command]
    ;({ values, positionals } = parseArgs({
      args: [...rest],
      options,
      strict: true,
      allowPositionals: command === 'static', // DIR
    }))
  } catch (e) {
    const code = (e as { code?: unknown }).code
    throw new UsageError((e as Error).message, typeof code === 'string' ? code : 'ERR_USAGE', command)
  }

  const str = (k: string): string | undefined => values[k] as string | undefined
  if (values['reuse-port'] && values['no-reuse-port']) {
    throw new UsageError('--reuse-port and --no-reuse-port contradict each other', 'ERR_USAGE', command)
  }
  const listen = (values.listen as string[] | undefined) ?? [DEFAULT_LISTEN[command]]
  const stats = decimal('stats', str('stats'), command) ?? 0
  if (stats * 1000 > MAX_TIMER_MS) {
    throw new UsageError(
      `option --stats is too large: ${stats}`,
      'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
      command,
    )
  }
  const cert = str('tls-cert')
  const key = str('tls-key')
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together', 'ERR_USAGE', command)
  }
  return {
    kind: 'run',
    command: commandOptions(command, str, values, positionals),
    options: {
      listen,
      workers: str('workers') === 'auto' ? 'auto' : integer('workers', str('workers'), command),
      loops: integer('loops', str('loops'), command),
      reusePort: values['no-reuse-port'] ? false : values['reuse-port'] ? true : undefined,
      fastOpen: integer('fast-open', str('fast-open'), command),
      deferAccept: integer('defer-accept', str('defer-accept'), command),
      maxConnections: integer('max-connections', str('max-connections'), command),
      stats,
      shutdownTimeout:
        integer('shutdown-timeout', str('shutdown-timeout'), command) ?? DEFAULT_SHUTDOWN_TIMEOUT,
      tls: cert !== undefined && key !== undefined ? { cert, key } : undefined,
      acceptProxy: values['accept-proxy'] as string[] | undefined,
    },
  }
}

/** The options only `command` has. */
function commandOptions(
  command: CommandName,
  str: (flag: string) => string | undefined,
  values: Record<string, unknown>,
  positionals: readonly string[],
): CommandOptions {
  switch (command) {
    case 'echo':
      return { name: 'echo' }
    case 'http': {
      const bodySize = integer('body-size', str('body-size'), command) ?? DEFAULT_BODY_SIZE
      if (!Number.isSafeInteger(bodySize) || bodySize > 0x7fff_ffff) {
        throw new UsageError(
          `option --body-size is too large: ${bodySize}`,
          'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
          command,
        )
      }
      return { name: 'http', bodySize }
    }
    case 'proxy': {
      const upstream = upstreamAddress(str('upstream'), command)
      const upstreamTls = values['upstream-tls'] === true
      const upstreamCa = str('upstream-ca')
      if (upstreamCa !== undefined && !upstreamTls) {
        throw new UsageError('--upstream-ca needs --upstream-tls', 'ERR_USAGE', command)
      }
      const timeout = integer('connect-timeout', str('connect-timeout'), command) ?? DEFAULT_CONNECT_TIMEOUT
      const proxyProtocol = str('proxy-protocol')
      if (proxyProtocol !== undefined && proxyProtocol !== 'v1' && proxyProtocol !== 'v2') {
        throw new UsageError(
          `option --proxy-protocol expects v1 or v2, got '${proxyProtocol}'`,
          'ERR_PARSE_ARGS_INVALID_OPTION_VALUE',
          command,
        )
      }
      // 0 means no limit; connect() itself wants at least 1 ms.
      return {
        name: 'proxy',
        upstream,
        upstreamTls,
        upstreamCa,
        connectTimeout: timeout || undefined,
        proxyProtocol,
      }
    }
    case 'static':
      return { name: 'static', root: directory(positionals, command) }
  }
}
