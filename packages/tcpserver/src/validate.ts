// JavaScript-shape checks only (is it a number, a function...), worded as Node words them.
// Value and range checks live in the Rust core, once; their errors are mapped in errors.ts.
// napi's own conversion errors are not Node-style, hence these checks before every native call.
//
// Option objects are copied (one read of each property) before they are checked, and only the
// copy is used afterwards: a getter cannot pass the checks with one value and reach the native
// side with another.
import { argType, argValue } from './errors.js'
import type { ConnectionDuplexOptions, ConnectOptions, PipeOptions, SendFileOptions } from './types.js'

// biome-ignore lint/complexity/noBannedTypes: the caller is only used to trim the stack
type Caller = Function

const LISTEN_KEYS: ReadonlySet<string> = new Set([
  'address',
  'fd',
  'handler',
  'workers',
  'workerData',
  'onError',
  'loops',
  'reusePort',
  'fastOpen',
  'deferAccept',
  'backlog',
  'ipv6Only',
  'unixPermissions',
  'noDelay',
  'keepAlive',
  'maxConnections',
  'onLimit',
  'maxConnectionsPerIp',
  'maxAcceptConnections',
  'highWaterMark',
  'idleTimeout',
  'readTimeout',
  'writeTimeout',
  'signal',
  'proxyProtocol',
  'tls',
  'onTlsError',
])

const CONNECT_KEYS: ReadonlySet<string> = new Set(['timeout', 'noDelay', 'localAddress', 'tls', 'signal'])

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * A plain copy of an options object (`undefined` allowed when `optional`), with unknown keys
 * refused the same way for every function.
 */
export function optionsObject(
  name: string,
  v: unknown,
  known: ReadonlySet<string> | null,
  caller: Caller,
  optional = true,
): Record<string, unknown> {
  if (v === undefined && optional) return {}
  if (!isObject(v)) throw argType(name, 'of type object', v, caller)
  const copy: Record<string, unknown> = { ...v }
  if (known) {
    for (const key of Object.keys(copy)) {
      if (!known.has(key)) throw argValue(`${name}.${key}`, 'is not a known option', copy[key], caller)
    }
  }
  return copy
}

export function expectNumber(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'number') throw argType(name, 'of type number', v, caller)
}

export function expectBoolean(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'boolean') throw argType(name, 'of type boolean', v, caller)
}

export function expectString(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'string') throw argType(name, 'of type string', v, caller)
}

function expectNumberOrBoolean(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'number' && typeof v !== 'boolean') {
    throw argType(name, 'of type number or boolean', v, caller)
  }
}

function expectFunction(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'function') throw argType(name, 'of type function', v, caller)
}

/** Bytes to write: a string or a Uint8Array (Buffer). */
export function expectData(name: string, v: unknown, caller: Caller): void {
  if (typeof v !== 'string' && !(v instanceof Uint8Array)) {
    throw argType(name, 'of type string or an instance of Buffer or Uint8Array', v, caller)
  }
}

/** A file system path: a string without NUL bytes (as node:fs requires). */
export function expectPath(name: string, v: string, caller: Caller): void {
  if (v.includes('\0')) throw argValue(name, 'must be a string without null bytes', v, caller)
}

/** `{ host?, port }` copied, or the string; anything else refused. */
function address(name: string, v: unknown, caller: Caller): unknown {
  if (typeof v === 'string') return v
  if (isObject(v)) {
    const { host, port } = v
    expectString(`${name}.host`, host, caller)
    if (typeof port !== 'number') throw argType(`${name}.port`, 'of type number', port, caller)
    return { host, port }
  }
  throw argType(name, "of type string ('host:port') or an object ({ host, port })", v, caller)
}

/** An array copied, or the one value as is. */
const listOf = (v: unknown): unknown[] | null => (Array.isArray(v) ? [...v] : null)

/**
 * Checks the shape of `listen()`'s options and returns the copy to use, typed as what was
 * given (`ListenOptions`: generic because that type names Connection, whose module imports
 * this one).
 */
export function validateListenOptions<T>(o: T, caller: Caller): T {
  const opts = optionsObject('options', o, LISTEN_KEYS, caller, false)
  const fd = opts.fd
  if (fd !== undefined && fd !== 'systemd') {
    const fds = listOf(fd) ?? [fd]
    if (fds.length === 0 || fds.some((n) => typeof n !== 'number')) {
      throw argType('options.fd', "a descriptor number, an array of them, or 'systemd'", fd, caller)
    }
    if (Array.isArray(fd)) opts.fd = fds
  }
  const a = opts.address
  if (a === undefined) {
    if (fd === undefined) throw argValue('options.address', 'is required (or options.fd)', a, caller)
  } else {
    const list = listOf(a)
    if (list === null) opts.address = address('options.address', a, caller)
    else {
      if (list.length === 0) throw argValue('options.address', 'must name at least one address', a, caller)
      opts.address = list.map((x, i) => address(`options.address[${i}]`, x, caller))
    }
  }
  // With workers the handler is a module (checked by workers.ts), else a function.
  if (opts.workers === undefined) expectFunction('options.handler', opts.handler, caller)
  expectFunction('options.onError', opts.onError, caller)
  expectFunction('options.onTlsError', opts.onTlsError, caller)
  for (const n of [
    'loops',
    'backlog',
    'maxConnections',
    'maxAcceptConnections',
    'highWaterMark',
    'idleTimeout',
    'readTimeout',
    'writeTimeout',
    'unixPermissions',
  ]) {
    expectNumber(`options.${n}`, opts[n], caller)
  }
  expectString('options.onLimit', opts.onLimit, caller)
  const perIp = opts.maxConnectionsPerIp
  if (perIp !== undefined && typeof perIp !== 'number') {
    const p = optionsObject('options.maxConnectionsPerIp', perIp, new Set(['max', 'ipv6Prefix']), caller)
    if (typeof p.max !== 'number')
      throw argType('options.maxConnectionsPerIp.max', 'of type number', p.max, caller)
    expectNumber('options.maxConnectionsPerIp.ipv6Prefix', p.ipv6Prefix, caller)
    opts.maxConnectionsPerIp = p
  }
  for (const n of ['reusePort', 'ipv6Only', 'noDelay']) expectBoolean(`options.${n}`, opts[n], caller)
  expectNumberOrBoolean('options.fastOpen', opts.fastOpen, caller)
  expectNumberOrBoolean('options.deferAccept', opts.deferAccept, caller)
  const ka = opts.keepAlive
  if (ka !== undefined && typeof ka !== 'boolean') {
    if (!isObject(ka)) throw argType('options.keepAlive', 'of type boolean or object', ka, caller)
    const k = optionsObject('options.keepAlive', ka, new Set(['initialDelay', 'interval', 'count']), caller)
    for (const n of ['initialDelay', 'interval', 'count'])
      expectNumber(`options.keepAlive.${n}`, k[n], caller)
    opts.keepAlive = k
  }
  const pp = opts.proxyProtocol
  if (pp !== undefined) {
    const p = optionsObject('options.proxyProtocol', pp, new Set(['trusted', 'timeout']), caller, false)
    const trusted = listOf(p.trusted)
    if (trusted === null || trusted.some((c) => typeof c !== 'string')) {
      throw argType('options.proxyProtocol.trusted', 'an array of CIDR strings', p.trusted, caller)
    }
    expectNumber('options.proxyProtocol.timeout', p.timeout, caller)
    opts.proxyProtocol = { trusted, timeout: p.timeout }
  }
  if (opts.tls !== undefined) opts.tls = validateTls(opts.tls, caller)
  expectSignal('options.signal', opts.signal, caller)
  return opts as T
}

/** Checks the shape of `connect()`'s options (refusing unknown ones, as `listen()` does). */
export function validateConnectOptions(o: unknown, caller: Caller): ConnectOptions {
  const opts = optionsObject('options', o, CONNECT_KEYS, caller)
  expectNumber('options.timeout', opts.timeout, caller)
  expectBoolean('options.noDelay', opts.noDelay, caller)
  expectString('options.localAddress', opts.localAddress, caller)
  const tls = opts.tls
  if (tls !== undefined && typeof tls !== 'boolean') {
    opts.tls = validateClientTls(tls, caller)
  }
  expectSignal('options.signal', opts.signal, caller)
  return opts as ConnectOptions
}

/** `connect()`'s address: a string, or `{ host?, port }` (copied). */
export function validateConnectAddress(a: unknown, caller: Caller): string | { host?: string; port: number } {
  return address('address', a, caller) as string | { host?: string; port: number }
}

function expectSignal(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && !(v instanceof AbortSignal))
    throw argType(name, 'an instance of AbortSignal', v, caller)
}

function checkPem(name: string, v: unknown, caller: Caller): void {
  if (v instanceof Uint8Array) return
  if (typeof v !== 'string') throw argType(name, 'PEM text, PEM bytes or a file path', v, caller)
  if (!v.includes('-----BEGIN')) expectPath(name, v, caller)
}

function checkPemList(name: string, v: unknown, caller: Caller): unknown {
  if (v === undefined) return undefined
  const list = listOf(v)
  if (list === null) {
    checkPem(name, v, caller)
    return v
  }
  for (const [i, c] of list.entries()) checkPem(`${name}[${i}]`, c, caller)
  return list
}

function checkAlpn(name: string, v: unknown, caller: Caller): unknown {
  if (v === undefined) return undefined
  const list = listOf(v)
  if (list === null || list.some((p) => typeof p !== 'string')) {
    throw argType(name, 'an array of strings', v, caller)
  }
  return list
}

const TLS_KEYS: ReadonlySet<string> = new Set([
  'cert',
  'key',
  'sni',
  'sniCallback',
  'alpn',
  'minVersion',
  'handshakeTimeout',
  'maxHandshakes',
  'ca',
  'requestCert',
  'requireCert',
])

/** Checks server TLS settings (`listen({ tls })`, `setTlsConfig()`, `startTls()`) and returns a copy. */
export function validateTls(tls: unknown, caller: Caller, name = 'options.tls'): Record<string, unknown> {
  const t = optionsObject(name, tls, TLS_KEYS, caller, false)
  checkPem(`${name}.cert`, t.cert, caller)
  checkPem(`${name}.key`, t.key, caller)
  if (t.sni !== undefined) {
    if (!isObject(t.sni))
      throw argType(`${name}.sni`, 'an object of { cert, key } by host name', t.sni, caller)
    const sni: Record<string, unknown> = {}
    for (const [host, id] of Object.entries(t.sni)) {
      const entry = optionsObject(`${name}.sni.${host}`, id, new Set(['cert', 'key']), caller, false)
      checkPem(`${name}.sni.${host}.cert`, entry.cert, caller)
      checkPem(`${name}.sni.${host}.key`, entry.key, caller)
      sni[host] = entry
    }
    t.sni = sni
  }
  expectFunction(`${name}.sniCallback`, t.sniCallback, caller)
  t.alpn = checkAlpn(`${name}.alpn`, t.alpn, caller)
  expectString(`${name}.minVersion`, t.minVersion, caller)
  expectNumber(`${name}.handshakeTimeout`, t.handshakeTimeout, caller)
  expectNumber(`${name}.maxHandshakes`, t.maxHandshakes, caller)
  expectBoolean(`${name}.requestCert`, t.requestCert, caller)
  expectBoolean(`${name}.requireCert`, t.requireCert, caller)
  t.ca = checkPemList(`${name}.ca`, t.ca, caller)
  return t
}

const CLIENT_TLS_KEYS: ReadonlySet<string> = new Set([
  'servername',
  'ca',
  'alpn',
  'cert',
  'key',
  'handshakeTimeout',
])

function validateClientTls(tls: unknown, caller: Caller): Record<string, unknown> {
  const name = 'options.tls'
  if (!isObject(tls)) throw argType(name, 'of type boolean or object', tls, caller)
  const t = optionsObject(name, tls, CLIENT_TLS_KEYS, caller)
  expectString(`${name}.servername`, t.servername, caller)
  t.ca = checkPemList(`${name}.ca`, t.ca, caller)
  t.alpn = checkAlpn(`${name}.alpn`, t.alpn, caller)
  if (t.cert !== undefined) checkPem(`${name}.cert`, t.cert, caller)
  if (t.key !== undefined) checkPem(`${name}.key`, t.key, caller)
  expectNumber(`${name}.handshakeTimeout`, t.handshakeTimeout, caller)
  return t
}

/** `conn.pipe()`'s options, copied. */
export function validatePipeOptions(o: unknown, caller: Caller): PipeOptions {
  const options = optionsObject('options', o, new Set(['head', 'idleTimeout']), caller)
  if (options.head !== undefined && !(options.head instanceof Uint8Array)) {
    throw argType('options.head', 'an instance of Buffer or Uint8Array', options.head, caller)
  }
  expectNumber('options.idleTimeout', options.idleTimeout, caller)
  return options as PipeOptions
}

/** `conn.sendFile()`'s file (a path without NUL bytes, or a descriptor) and options, copied. */
export function validateSendFileArgs(file: unknown, o: unknown, caller: Caller): SendFileOptions {
  if (typeof file === 'string') expectPath('file', file, caller)
  else if (typeof file !== 'number') {
    throw argType('file', 'of type string (a path) or number (a descriptor)', file, caller)
  }
  const options = optionsObject('options', o, new Set(['offset', 'length']), caller)
  expectNumber('options.offset', options.offset, caller)
  expectNumber('options.length', options.length, caller)
  return options as SendFileOptions
}

/** `conn.toDuplex()`'s options, copied (their ranges are node:stream's to check). */
export function validateDuplexOptions(o: unknown, caller: Caller): ConnectionDuplexOptions {
  const options = optionsObject(
    'options',
    o,
    new Set(['allowHalfOpen', 'readableHighWaterMark', 'writableHighWaterMark']),
    caller,
  )
  expectBoolean('options.allowHalfOpen', options.allowHalfOpen, caller)
  expectNumber('options.readableHighWaterMark', options.readableHighWaterMark, caller)
  expectNumber('options.writableHighWaterMark', options.writableHighWaterMark, caller)
  return options as ConnectionDuplexOptions
}
