// The only TypeScript file that builds errors. `err.code` is the contract; messages may change.
import { constants as osConstants } from 'node:os'
import { getSystemErrorMap, getSystemErrorName, inspect } from 'node:util'
import type { BindingError } from '../binding.cjs'

/** Every `code` this package produces. OS errors keep Node's names. */
export type ErrorCode =
  | 'EADDRINUSE'
  | 'EADDRNOTAVAIL'
  | 'EACCES'
  | 'EPERM'
  | 'EAFNOSUPPORT'
  | 'EINVAL'
  | 'ECONNRESET'
  | 'ECONNABORTED'
  | 'ECONNREFUSED'
  | 'EPIPE'
  | 'ETIMEDOUT'
  | 'ENOTCONN'
  | 'EMFILE'
  | 'ENFILE'
  | 'ENOBUFS'
  | 'ENOMEM'
  | 'ENOENT'
  | 'EISDIR'
  | 'ENOTDIR'
  | 'ENOTFOUND'
  | 'ABORT_ERR'
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_OUT_OF_RANGE'
  | 'ERR_SOCKET_BAD_PORT'
  | 'ENAMETOOLONG'
  | 'ERR_SOCKET_CLOSED'
  | 'ERR_SERVER_NOT_RUNNING'
  | 'ERR_STREAM_WRITE_AFTER_END'
  | 'ERR_TCPSERVER_BUSY'
  | 'ERR_TCPSERVER_CLOSED'
  | 'ERR_TCPSERVER_CONCURRENT_READ'
  | 'ERR_TCPSERVER_FILE_TRUNCATED'
  | 'ERR_TCPSERVER_HANDLER_SETTLED'
  | 'ERR_TCPSERVER_IDLE_TIMEOUT'
  | 'ERR_TCPSERVER_NATIVE_LOAD'
  | 'ERR_TCPSERVER_NATIVE_MISSING'
  | 'ERR_TCPSERVER_NOT_A_FILE'
  | 'ERR_TCPSERVER_PANIC'
  | 'ERR_TCPSERVER_SHUTDOWN'
  | 'ERR_TCPSERVER_STREAM_LOCKED'
  | 'ERR_TCPSERVER_TLS'
  | 'ERR_TCPSERVER_TLS_HANDSHAKE'
  | 'ERR_TCPSERVER_UNSUPPORTED'
  | 'ERR_TCPSERVER_WORKER_LOAD'
  | 'ERR_TCPSERVER_WRITE_TIMEOUT'
  | (string & {})

/** An error from this package: a built-in `Error`/`TypeError`/`RangeError` with Node-style fields. */
export interface TcpServerError extends Error {
  /** Stable machine-readable code, e.g. `EADDRINUSE` or `ERR_INVALID_ARG_VALUE`. */
  code: ErrorCode
  /** The failing system call, for OS errors (`bind`, `listen`, `setsockopt`). */
  syscall?: string
  /** Negative OS error number, as Node reports it (`-98` for `EADDRINUSE` on Linux). */
  errno?: number
  /** The address involved. */
  address?: string
  /** The port involved. */
  port?: number
  /** The option at fault, for argument errors (`backlog`, `keepAlive.count`). */
  option?: string
  /** The file involved, for file system errors (`sendFile()`), as node:fs names it. */
  path?: string
}

type ErrorClass = 'Error' | 'TypeError' | 'RangeError'

// biome-ignore lint/complexity/noBannedTypes: the caller is only used to trim the stack
type Caller = Function

function make(cls: ErrorClass, code: ErrorCode, message: string, caller?: Caller): TcpServerError {
  const Ctor = cls === 'TypeError' ? TypeError : cls === 'RangeError' ? RangeError : Error
  const err = new Ctor(message) as TcpServerError
  err.code = code
  if (caller) Error.captureStackTrace(err, caller)
  return err
}

/** The class Node uses for each argument code (`ERR_INVALID_ARG_VALUE` is a TypeError in Node too). */
const ARG_CLASS: Readonly<Record<string, ErrorClass>> = {
  ERR_INVALID_ARG_TYPE: 'TypeError',
  ERR_INVALID_ARG_VALUE: 'TypeError',
  ERR_OUT_OF_RANGE: 'RangeError',
  ERR_SOCKET_BAD_PORT: 'RangeError',
}

/** napi-rs's own statuses: a value that slipped past the shape checks. Never shown as such. */
const NAPI_STATUSES: ReadonlySet<string> = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'GenericFailure',
  'PendingException',
  'Cancelled',
  'EscapeCalledTwice',
  'HandleScopeMismatch',
  'CallbackScopeMismatch',
  'QueueFull',
  'Closing',
  'BigintExpected',
  'DateExpected',
  'ArrayBufferExpected',
  'DetachableArraybufferExpected',
  'WouldDeadlock',
  'NoExternalBuffersAllowed',
  'Unknown',
])

/** `options.port` is a property, `data` an argument (Node's wording). */
const noun = (name: string): string => (name.includes('.') ? 'property' : 'argument')

/** The option an error names, without the `options.` of its message. */
const optionOf = (name: string): string => (name.startsWith('options.') ? name.slice(8) : name)

/** How Node's ERR_INVALID_ARG_TYPE shows what it got (`determineSpecificType`). */
function specificType(value: unknown): string {
  if (value == null) return String(value)
  if (typeof value === 'function') return value.name ? `function ${value.name}` : 'function'
  if (typeof value === 'object') {
    const ctor = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor
      ?.name
    return typeof ctor === 'string' && ctor !== '' ? `an instance of ${ctor}` : inspect(value, { depth: -1 })
  }
  let shown = inspect(value, { colors: false })
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`
  return `type ${typeof value} (${shown})`
}

/** A value as ERR_INVALID_ARG_VALUE and ERR_OUT_OF_RANGE show it. */
function shown(value: unknown): string {
  const s =
    typeof value === 'number' && Object.is(value, -0)
      ? '-0'
      : inspect(value, { depth: 0, breakLength: Infinity })
  return s.length > 128 ? `${s.slice(0, 128)}...` : s
}

function argError(code: ErrorCode, name: string, message: string, caller?: Caller): TcpServerError {
  const err = make(ARG_CLASS[code] ?? 'TypeError', code, message, caller)
  err.option = optionOf(name)
  return err
}

/** `TypeError [ERR_INVALID_ARG_TYPE]: The "options.port" property must be of type number. Received type string ('x')` */
export function argType(name: string, expected: string, value: unknown, caller?: Caller): TcpServerError {
  return argError(
    'ERR_INVALID_ARG_TYPE',
    name,
    `The "${name}" ${noun(name)} must be ${expected}. Received ${specificType(value)}`,
    caller,
  )
}

/** `TypeError [ERR_INVALID_ARG_VALUE]: The property 'options.onLimit' must be 'hold' or 'refuse'. Received 'x'` */
export function argValue(name: string, reason: string, value: unknown, caller?: Caller): TcpServerError {
  const why = /^(must|is|has|needs|cannot|may) /.test(reason) ? reason : `is invalid (${reason})`
  return argError(
    'ERR_INVALID_ARG_VALUE',
    name,
    `The ${noun(name)} '${name}' ${why}. Received ${shown(value)}`,
    caller,
  )
}

/** `RangeError [ERR_OUT_OF_RANGE]: The value of "options.backlog" is out of range. It must be >= 1 and <= 65535. Received 0` */
export function outOfRange(name: string, reason: string, value: unknown, caller?: Caller): TcpServerError {
  const it = reason.startsWith('must ') ? `It ${reason}` : `(${reason})`
  return argError(
    'ERR_OUT_OF_RANGE',
    name,
    `The value of "${name}" is out of range. ${it}. Received ${shown(value)}`,
    caller,
  )
}

/** `RangeError [ERR_SOCKET_BAD_PORT]: options.port should be >= 0 and < 65536. Received type number (70000).` */
export function badPort(name: string, value: unknown, allowZero: boolean, caller?: Caller): TcpServerError {
  return argError(
    'ERR_SOCKET_BAD_PORT',
    name,
    `${name} should be ${allowZero ? '>=' : '>'} 0 and < 65536. Received ${specificType(value)}.`,
    caller,
  )
}

/** What an argument error from the native side refers to: its name in messages, and the value given. */
export interface ArgContext {
  /** `options.backlog`, `conn.idleTimeout`... */
  name: string
  /** The value the caller passed. */
  value: unknown
  /** Whether port 0 is a valid port here (listening: yes; connecting: no). */
  allowZero?: boolean
}

/** Looks `option` (`keepAlive.count`) up in an options object the caller passed (a plain snapshot). */
export function inOptions(root: unknown, prefix = 'options.'): (option: string) => ArgContext | undefined {
  return (option) => {
    let v: unknown = root
    for (const part of option.split('.')) {
      if (v === null || typeof v !== 'object' || !Object.hasOwn(v, part)) return undefined
      v = (v as Record<string, unknown>)[part]
    }
    // `maxConnectionsPerIp: { max }` reaches the core as `maxConnectionsPerIp`.
    if (v !== null && typeof v === 'object' && Object.hasOwn(v, 'max')) {
      return { name: `${prefix}${option}.max`, value: (v as { max: unknown }).max }
    }
    return { name: `${prefix}${option}`, value: v }
  }
}

/** An argument error worded the one way, from the native side's code, option and reason. */
function argFromNative(
  code: ErrorCode,
  option: string,
  reason: string,
  context: ArgContext | undefined,
  caller?: Caller,
): TcpServerError {
  const name = context?.name ?? option
  if (code === 'ERR_SOCKET_BAD_PORT') return badPort(name, context?.value, context?.allowZero ?? true, caller)
  if (code === 'ERR_OUT_OF_RANGE') return outOfRange(name, reason, context?.value, caller)
  if (code === 'ERR_INVALID_ARG_TYPE')
    return argType(name, reason.replace(/^must be /, ''), context?.value, caller)
  const err = argValue(name, reason, context?.value, caller)
  // Without the caller's value (a check the native side made on its own), say only why.
  if (context === undefined) err.message = err.message.slice(0, err.message.lastIndexOf('. Received '))
  return err
}

/**
 * Node's code for an errno-like code: the core names the common ones; any other (`E36`) gets
 * its name from libuv here.
 */
function systemCode(code: string): string {
  const n = /^E(\d+)$/.exec(code)?.[1]
  if (n === undefined) return code
  try {
    return getSystemErrorName(-Number(n))
  } catch {
    return code
  }
}

/** Node's (negative) errno for a system error code, if it is one. */
function errnoOf(code: string): number | undefined {
  const n = (osConstants.errno as Record<string, number | undefined>)[code]
  return n === undefined ? undefined : -n
}

/**
 * Turns a `BindingError` value (from a native call) into a thrown error. `context` finds the
 * value the caller passed for an argument error's option, so that the message shows it.
 */
export function fromBinding(
  e: BindingError,
  caller?: Caller,
  context?: (option: string) => ArgContext | undefined,
): TcpServerError {
  if (ARG_CLASS[e.code] !== undefined && e.option != null) {
    return argFromNative(e.code, e.option, e.reason ?? e.message, context?.(e.option), caller)
  }
  const code = systemCode(e.code)
  const err = make(
    e.class as ErrorClass,
    code,
    code === e.code ? e.message : e.message.replace(e.code, code),
    caller,
  )
  if (e.syscall != null) err.syscall = e.syscall
  const errno = e.errno != null ? -e.errno : errnoOf(code)
  if (errno !== undefined) err.errno = errno
  if (e.address != null) err.address = e.address
  if (e.port != null) err.port = e.port
  if (e.option != null) err.option = e.option
  if (e.path != null) err.path = e.path
  return err
}

/** Where a thrown native error came from, to word it as Node would. */
export interface NativeContext {
  caller?: Caller
  /** The argument the call checked (setters, `timeout`). */
  arg?: ArgContext
  /** The system call the native method made (`write`), for system errors. */
  syscall?: string
}

/**
 * A native method threw (napi sets only `code` and `message`): the same fields and wording as
 * {@link fromBinding}. A napi status (`InvalidArg`, `NumberExpected`...) means a value slipped
 * past the shape checks; it becomes ERR_INVALID_ARG_TYPE rather than leak.
 */
export function fromNative(e: unknown, context: NativeContext = {}): Error {
  const raw = e as { code?: unknown; message?: unknown } | null
  const code = typeof raw?.code === 'string' ? raw.code : ''
  const message = typeof raw?.message === 'string' ? raw.message : String(e)
  if (NAPI_STATUSES.has(code)) {
    const name = context.arg?.name ?? 'argument'
    return argError(
      'ERR_INVALID_ARG_TYPE',
      name,
      `The "${name}" ${noun(name)} is of the wrong type (${message})`,
      context.caller,
    )
  }
  if (ARG_CLASS[code] !== undefined) {
    const name = context.arg?.name ?? 'argument'
    return argFromNative(code, name, message, context.arg, context.caller)
  }
  if (code === '') return e instanceof Error ? e : new Error(message)
  const name = systemCode(code)
  const errno = errnoOf(name)
  if (errno === undefined) {
    const err = make('Error', name, message, context.caller)
    return err
  }
  const syscall = context.syscall ?? /^([a-z]+) E[A-Z0-9]+/.exec(message)?.[1]
  const err = make('Error', name, syscall ? `${syscall} ${name}` : message, context.caller)
  err.errno = errno
  if (syscall) err.syscall = syscall
  return err
}

/**
 * A failed outbound attempt as Node reports it: the core names the address it tried; an error
 * without one (a deadline that passed while resolving) gets the target that was asked for.
 */
export function connectFailure(err: TcpServerError, host: string, port: number | undefined): TcpServerError {
  if (err.errno === undefined || err.syscall === 'connect' || err.syscall === 'getaddrinfo') return err
  err.syscall = 'connect'
  err.address = host
  if (port !== undefined) err.port = port
  err.message = `connect ${err.code} ${port !== undefined ? `${host}:${port}` : host}`
  return err
}

/** A system error made on this side (a read that timed out): Node's fields and message, `read ETIMEDOUT`. */
export function systemError(code: ErrorCode, syscall: string): TcpServerError {
  const err = make('Error', code, `${syscall} ${code}`)
  err.syscall = syscall
  const errno = errnoOf(code)
  if (errno !== undefined) err.errno = errno
  return err
}

/**
 * A file system error as node:fs words it: `ENOENT: no such file or directory, open '/x'`,
 * with `syscall` and `path` (the native side's when it names them: `read` for `EISDIR`).
 * Errors that are not system errors, or name a call but no file, pass unchanged.
 */
export function fileError(err: TcpServerError, syscall: string, path: string): TcpServerError {
  if (err.errno === undefined || (err.syscall !== undefined && err.path === undefined)) return err
  const call = err.syscall ?? syscall
  const file = err.path ?? path
  const description = getSystemErrorMap().get(err.errno)?.[1] ?? err.message
  err.syscall = call
  err.path = file
  err.message = `${err.code}: ${description}, ${call} '${file}'`
  return err
}

/** An error with a code and no further fields. */
export function codedError(code: ErrorCode, message: string): TcpServerError {
  return make('Error', code, message)
}

/** An `AbortError` as Node's: `code: 'ABORT_ERR'`, `name: 'AbortError'`, `cause` the signal's reason. */
export function abortError(signal: AbortSignal, caller?: Caller): TcpServerError {
  const err = make('Error', 'ABORT_ERR', 'The operation was aborted', caller)
  err.name = 'AbortError'
  ;(err as Error & { cause?: unknown }).cause = signal.reason
  return err
}

/**
 * Parses the one layout of every text event from the native side: `nFields` lines of fields,
 * then the error's code, errno, syscall, address, port and option, then its message (the
 * code line is empty without an error) — `event_fields` in crates/tcpserver-node/src/error.rs.
 */
export function parseEventText(
  text: string,
  nFields: number,
  context?: (option: string) => ArgContext | undefined,
): [string[], TcpServerError | null] {
  const lines = text.split('\n')
  const code = lines[nFields] ?? ''
  if (code === '') return [lines.slice(0, nFields), null]
  const [errno = '', syscall = '', address = '', port = '', option = ''] = lines.slice(
    nFields + 1,
    nFields + 6,
  )
  const error = fromBinding(
    {
      code,
      class: 'Error',
      errno: errno === '' ? undefined : Number(errno),
      syscall: syscall === '' ? undefined : syscall,
      address: address === '' ? undefined : address,
      port: port === '' ? undefined : Number(port),
      option: option === '' ? undefined : option,
      message: lines.slice(nFields + 6).join('\n'),
    },
    undefined,
    context,
  )
  return [lines.slice(0, nFields), error]
}

/**
 * The native addon could not be loaded (the message, written by native.ts, says why and what to
 * do): `ERR_TCPSERVER_NATIVE_MISSING` when no binary for this platform is installed,
 * `ERR_TCPSERVER_NATIVE_LOAD` when one is there but the OS refused it. `cause` is the loader's
 * own error.
 */
export function nativeLoadError(
  code: 'ERR_TCPSERVER_NATIVE_MISSING' | 'ERR_TCPSERVER_NATIVE_LOAD',
  message: string,
  cause: unknown,
): TcpServerError {
  const err = make('Error', code, message)
  ;(err as Error & { cause?: unknown }).cause = cause
  return err
}

/** `true` for errors this package produced (checks the `code`, not the class). */
export function isTcpServerError(e: unknown): e is TcpServerError {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string'
}
