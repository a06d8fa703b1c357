// JavaScript-shape checks only (is it a number, a function...). Value and range checks live in
// the Rust core, once; napi's own conversion errors are not Node-style, hence these.
import { invalidArg } from './errors.js'
import type { ListenOptions } from './options.js'

const KNOWN: ReadonlySet<string> = new Set([
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

// biome-ignore lint/complexity/noBannedTypes: the caller is only used to trim the stack
type Caller = Function

function kind(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v
}

export function expectNumber(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'number')
    throw invalidArg(name, `must be a number, got ${kind(v)}`, caller)
}

export function expectBoolean(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'boolean')
    throw invalidArg(name, `must be a boolean, got ${kind(v)}`, caller)
}

function expectNumberOrBoolean(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'number' && typeof v !== 'boolean') {
    throw invalidArg(name, `must be a number or a boolean, got ${kind(v)}`, caller)
  }
}

function expectFunction(name: string, v: unknown, caller: Caller): void {
  if (v !== undefined && typeof v !== 'function')
    throw invalidArg(name, `must be a function, got ${kind(v)}`, caller)
}

function checkAddress(v: unknown, caller: Caller): void {
  if (typeof v === 'string') return
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const { host, port } = v as { host?: unknown; port?: unknown }
    if (host !== undefined && typeof host !== 'string')
      throw invalidArg('address.host', 'must be a string', caller)
    if (typeof port !== 'number')
      throw invalidArg('address.port', `must be a number, got ${kind(port)}`, caller)
    return
  }
  throw invalidArg('address', `must be a "host:port" string or { host, port }, got ${kind(v)}`, caller)
}

export function validateListenOptions(o: unknown, caller: Caller): asserts o is ListenOptions {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    throw invalidArg('options', `must be an object, got ${kind(o)}`, caller)
  }
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) throw invalidArg(key, 'is not a known option', caller)
  }
  const opts = o as Record<string, unknown>
  const address = opts.address
  const fd = opts.fd
  if (fd !== undefined && fd !== 'systemd') {
    const fds = Array.isArray(fd) ? fd : [fd]
    if (fds.length === 0 || fds.some((n) => typeof n !== 'number')) {
      throw invalidArg('fd', `must be a descriptor number, an array of them, or 'systemd'`, caller)
    }
  }
  if (address === undefined) {
    if (fd === undefined) throw invalidArg('address', 'is required (or fd)', caller)
  } else if (Array.isArray(address)) {
    if (address.length === 0) throw invalidArg('address', 'must name at least one address', caller)
    for (const a of address) checkAddress(a, caller)
  } else {
    checkAddress(address, caller)
  }
  // With workers the handler is a module (checked by workers.ts), else a function.
  if (opts.workers === undefined) expectFunction('handler', opts.handler, caller)
  expectFunction('onError', opts.onError, caller)
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
    expectNumber(n, opts[n], caller)
  }
  if (opts.onLimit !== undefined && typeof opts.onLimit !== 'string') {
    throw invalidArg('onLimit', `must be 'hold' or 'refuse', got ${kind(opts.onLimit)}`, caller)
  }
  const perIp = opts.maxConnectionsPerIp
  if (perIp !== undefined && typeof perIp !== 'number') {
    if (perIp === null || typeof perIp !== 'object' || Array.isArray(perIp)) {
      throw invalidArg(
        'maxConnectionsPerIp',
        `must be a number or { max, ipv6Prefix }, got ${kind(perIp)}`,
        caller,
      )
    }
    const p = perIp as Record<string, unknown>
    if (typeof p.max !== 'number') {
      throw invalidArg('maxConnectionsPerIp.max', `must be a number, got ${kind(p.max)}`, caller)
    }
    expectNumber('maxConnectionsPerIp.ipv6Prefix', p.ipv6Prefix, caller)
  }
  for (const n of ['reusePort', 'ipv6Only', 'noDelay']) expectBoolean(n, opts[n], caller)
  expectNumberOrBoolean('fastOpen', opts.fastOpen, caller)
  expectNumberOrBoolean('deferAccept', opts.deferAccept, caller)
  const ka = opts.keepAlive
  if (ka !== undefined && typeof ka !== 'boolean') {
    if (ka === null || typeof ka !== 'object' || Array.isArray(ka)) {
      throw invalidArg('keepAlive', `must be a boolean or an object, got ${kind(ka)}`, caller)
    }
    const k = ka as Record<string, unknown>
    for (const n of ['initialDelay', 'interval', 'count']) expectNumber(`keepAlive.${n}`, k[n], caller)
  }
  const pp = opts.proxyProtocol
  if (pp !== undefined) {
    if (pp === null || typeof pp !== 'object' || Array.isArray(pp)) {
      throw invalidArg('proxyProtocol', `must be { trusted, timeout? }, got ${kind(pp)}`, caller)
    }
    const trusted = (pp as Record<string, unknown>).trusted
    if (!Array.isArray(trusted) || trusted.some((c) => typeof c !== 'string')) {
      throw invalidArg('proxyProtocol.trusted', 'must be an array of CIDR strings', caller)
    }
    expectNumber('proxyProtocol.timeout', (pp as Record<string, unknown>).timeout, caller)
  }
  expectFunction('onTlsError', opts.onTlsError, caller)
  if (opts.tls !== undefined) validateTls(opts.tls, caller)
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) {
    throw invalidArg('signal', `must be an AbortSignal, got ${kind(opts.signal)}`, caller)
  }
}

function checkPem(name: string, v: unknown, caller: Caller): void {
  if (typeof v !== 'string' && !(v instanceof Uint8Array)) {
    throw invalidArg(name, `must be PEM text, PEM bytes or a file path, got ${kind(v)}`, caller)
  }
}

export function validateTls(tls: unknown, caller: Caller): void {
  if (tls === null || typeof tls !== 'object' || Array.isArray(tls)) {
    throw invalidArg('tls', `must be an object, got ${kind(tls)}`, caller)
  }
  const t = tls as Record<string, unknown>
  checkPem('tls.cert', t.cert, caller)
  checkPem('tls.key', t.key, caller)
  if (t.sni !== undefined) {
    if (t.sni === null || typeof t.sni !== 'object' || Array.isArray(t.sni)) {
      throw invalidArg(
        'tls.sni',
        `must be an object of { cert, key } by host name, got ${kind(t.sni)}`,
        caller,
      )
    }
    for (const [name, id] of Object.entries(t.sni as Record<string, unknown>)) {
      if (id === null || typeof id !== 'object')
        throw invalidArg(`tls.sni.${name}`, 'must be { cert, key }', caller)
      checkPem(`tls.sni.${name}.cert`, (id as Record<string, unknown>).cert, caller)
      checkPem(`tls.sni.${name}.key`, (id as Record<string, unknown>).key, caller)
    }
  }
  expectFunction('tls.sniCallback', t.sniCallback, caller)
  if (t.alpn !== undefined && (!Array.isArray(t.alpn) || t.alpn.some((p) => typeof p !== 'string'))) {
    throw invalidArg('tls.alpn', 'must be an array of strings', caller)
  }
  if (t.minVersion !== undefined && typeof t.minVersion !== 'string') {
    throw invalidArg('tls.minVersion', `must be a string, got ${kind(t.minVersion)}`, caller)
  }
  expectNumber('tls.handshakeTimeout', t.handshakeTimeout, caller)
  expectNumber('tls.maxHandshakes', t.maxHandshakes, caller)
  expectBoolean('tls.requestCert', t.requestCert, caller)
  expectBoolean('tls.requireCert', t.requireCert, caller)
  if (t.ca !== undefined) {
    for (const [i, c] of (Array.isArray(t.ca) ? t.ca : [t.ca]).entries()) checkPem(`tls.ca[${i}]`, c, caller)
  }
}
