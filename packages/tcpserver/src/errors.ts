// The only TypeScript file that builds errors. `err.code` is the contract; messages may change.
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
  | 'ENOTFOUND'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_SOCKET_CLOSED'
  | 'ERR_STREAM_WRITE_AFTER_END'
  | 'ERR_TCPSERVER_BUSY'
  | 'ERR_TCPSERVER_CLOSED'
  | 'ERR_TCPSERVER_CONCURRENT_READ'
  | 'ERR_TCPSERVER_FILE_TRUNCATED'
  | 'ERR_TCPSERVER_IDLE_TIMEOUT'
  | 'ERR_TCPSERVER_NATIVE_LOAD'
  | 'ERR_TCPSERVER_NATIVE_MISSING'
  | 'ERR_TCPSERVER_PANIC'
  | 'ERR_TCPSERVER_SHUTDOWN'
  | 'ERR_TCPSERVER_STREAM_LOCKED'
  | 'ERR_TCPSERVER_TLS'
  | 'ERR_TCPSERVER_TLS_HANDSHAKE'
  | 'ERR_TCPSERVER_UNSUPPORTED'
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

/** Turns a `BindingError` value (from an async-style native call) into a thrown error. */
export function fromBinding(e: BindingError, caller?: Caller): TcpServerError {
  const err = make(e.class as ErrorClass, e.code, e.message, caller)
  if (e.syscall != null) err.syscall = e.syscall
  if (e.errno != null) err.errno = -e.errno
  if (e.address != null) err.address = e.address
  if (e.port != null) err.port = e.port
  if (e.option != null) err.option = e.option
  return err
}

/** An argument error found by the JavaScript-side shape checks. */
export function invalidArg(option: string, message: string, caller?: Caller): TcpServerError {
  const err = make('TypeError', 'ERR_INVALID_ARG_VALUE', `The option "${option}" ${message}`, caller)
  err.option = option
  return err
}

/** An error with a code and no further fields. */
export function codedError(code: ErrorCode, message: string): TcpServerError {
  return make('Error', code, message)
}

/**
 * Parses the one layout of every text event from the native side: `nFields` lines of fields,
 * then the error's code and message (both empty without an error) — `event_text` in
 * crates/tcpserver-node/src/events.rs.
 */
export function parseEventText(text: string, nFields: number): [string[], TcpServerError | null] {
  const lines = text.split('\n')
  const code = lines[nFields] ?? ''
  const error = code === '' ? null : codedError(code, lines.slice(nFields + 1).join('\n'))
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
