// TLS options → the binding's shape: PEM files are read here, once, so that a missing file is
// an ENOENT at listen() and not at the first connection.
import { X509Certificate } from 'node:crypto'
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs'
import { codedError } from './errors.js'
import type { BindingClientTlsOptions, BindingTlsOptions } from './native.js'
import type { ConnectTlsOptions, PemInput, TlsOptions } from './types.js'

export function pem(input: PemInput): Buffer {
  if (input instanceof Uint8Array) return Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  return input.includes('-----BEGIN') ? Buffer.from(input) : readPemFile(input)
}

/** Certificate files are small: a bigger one is a mistake (a disk image, a log). */
const PEM_FILE_MAX = 16 << 20

/**
 * Reads a PEM file given by path. It is opened non-blocking (a FIFO without a writer would
 * otherwise hold the event loop in `open`) and checked on the open descriptor: regular files
 * only (a device such as `/dev/zero` would be read without end), at most 16 MiB.
 * Node's own errors keep their codes (`ENOENT`, `EACCES`, `ENAMETOOLONG`, and
 * `ERR_INVALID_ARG_VALUE` for a NUL byte); anything else is `ERR_TCPSERVER_NOT_A_FILE`.
 */
function readPemFile(path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0))
  try {
    const st = fstatSync(fd)
    const why = st.isDirectory()
      ? 'a directory'
      : !st.isFile()
        ? 'not a regular file (a FIFO, socket or device)'
        : st.size > PEM_FILE_MAX
          ? `${st.size} bytes, more than a PEM file holds (16 MiB)`
          : null
    if (why !== null) {
      throw Object.assign(codedError('ERR_TCPSERVER_NOT_A_FILE', `${path} is ${why}: give a PEM file`), {
        path,
      })
    }
    return readFileSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * An expired (or not yet valid) certificate still loads, since the clock or the client may
 * disagree, but the operator hears about it once, at listen() or setTlsConfig().
 */
function warnIfOutOfDate(cert: Buffer, what: string): void {
  let x: X509Certificate
  try {
    x = new X509Certificate(cert)
  } catch {
    return // not parseable here: the Rust side reports bad PEM precisely
  }
  const now = Date.now()
  if (Date.parse(x.validTo) < now) {
    process.emitWarning(`${what} expired on ${x.validTo} (${x.subject})`, { code: 'TCPSERVER_CERT_EXPIRED' })
  } else if (Date.parse(x.validFrom) > now) {
    process.emitWarning(`${what} is not valid before ${x.validFrom} (${x.subject})`, {
      code: 'TCPSERVER_CERT_NOT_YET_VALID',
    })
  }
}

export function toBindingTls(tls: TlsOptions): BindingTlsOptions {
  const cert = pem(tls.cert)
  warnIfOutOfDate(cert, 'tls.cert')
  for (const [name, id] of Object.entries(tls.sni ?? {})) warnIfOutOfDate(pem(id.cert), `tls.sni.${name}`)
  return {
    cert,
    key: pem(tls.key),
    sni: tls.sni
      ? Object.entries(tls.sni).map(([name, id]) => ({ name, cert: pem(id.cert), key: pem(id.key) }))
      : undefined,
    alpn: tls.alpn,
    minVersion: tls.minVersion,
    handshakeTimeout: tls.handshakeTimeout,
    maxHandshakes: tls.maxHandshakes,
    ca: pemList(tls.ca),
    requestCert: tls.requestCert,
    requireCert: tls.requireCert,
    sniCallback: tls.sniCallback ? true : undefined,
  }
}

function pemList(ca: PemInput | PemInput[] | undefined): Buffer | undefined {
  if (ca === undefined) return undefined
  return Array.isArray(ca)
    ? Buffer.concat(ca.map((c) => Buffer.concat([pem(c), Buffer.from('\n')])))
    : pem(ca)
}

export function toBindingClientTls(tls: true | ConnectTlsOptions): BindingClientTlsOptions {
  const t = tls === true ? {} : tls
  return {
    servername: t.servername,
    ca: pemList(t.ca),
    alpn: t.alpn,
    cert: t.cert === undefined ? undefined : pem(t.cert),
    key: t.key === undefined ? undefined : pem(t.key),
    handshakeTimeout: t.handshakeTimeout,
  }
}
