// What a connection knows about itself: its addresses (as node:net's strings and numbers, and
// as AddressInfo objects), what TLS negotiated, when it started. Read from the native side
// while the connection is open, from its CLOSED event afterwards.
import { X509Certificate } from 'node:crypto'
import { eventAddress } from '../address.js'
import { parseEventText, type TcpServerError } from '../errors.js'
import type { BindingConnectionInfo } from '../native.js'
import type { AddressInfo, PeerCertificate, TlsInfo } from '../types.js'

function parseCertificate(der: Buffer): PeerCertificate {
  const x = new X509Certificate(der)
  return {
    der,
    subject: x.subject,
    issuer: x.issuer,
    validFrom: x.validFrom,
    validTo: x.validTo,
    fingerprint256: x.fingerprint256,
  }
}

/** Addresses recovered from a CLOSED event (the native side forgets the connection then). */
export interface ClosedInfo {
  remote: AddressInfo
  local: AddressInfo
}

/** A CLOSED event's fields: remote ip, port, local ip, port; then the error if any. */
export function parseClosed(text: string): [ClosedInfo, TcpServerError | null] {
  const [[rip = '', rport, lip = '', lport], error] = parseEventText(text, 4)
  const info = {
    remote: eventAddress(rip, rport),
    local: eventAddress(lip, lport),
  }
  return [info, error]
}

/**
 * A CLOSED event's error alone, without parsing its addresses (they are parsed only if asked
 * for after the close): `null`, the common case, when the line after the four address fields
 * is empty.
 */
export function errorOfClosed(text: string): TcpServerError | null {
  let at = -1
  for (let field = 0; field < 4; field++) {
    at = text.indexOf('\n', at + 1)
    if (at < 0) return null
  }
  const next = text.charCodeAt(at + 1)
  if (Number.isNaN(next) || next === 10) return null
  return parseClosed(text)[1]
}

/**
 * The clock `startTime` falls back on counts from here: for 24 days after the module loaded, a
 * connection's opening time is then a small integer kept in its field, not a heap number of its
 * own (16 bytes per connection).
 */
const CLOCK_BASE = Date.now()

/** A TLS connection's facts as JavaScript has them, made at the first question or TLS_END. */
class TlsState {
  info: TlsInfo | null | undefined = undefined
  /** How the TLS peer ended its input: 0 not yet, 1 with close_notify, 2 without (truncated). */
  end: 0 | 1 | 2 = 0
}

/** The address, TLS and time getters of {@link Connection}, over the facts it provides. */
export abstract class ConnectionFacts {
  /** ms since `CLOCK_BASE`. */
  readonly #openedAt = sinceClockBase()
  /** `null`: plain TCP (known once asked); `undefined`: not asked yet. */
  #tls: TlsState | null | undefined = undefined

  /** @internal The native side's facts while open, the CLOSED event's afterwards; `null` if never known. */
  protected abstract facts(): BindingConnectionInfo | ClosedInfo | null

  /** @internal The TLS peer's input ended, with or without `close_notify` (a TLS_END event). */
  protected tlsEnded(closeNotify: boolean): void {
    if (!this.#tls) this.#tls = new TlsState()
    this.#tls.end = closeNotify ? 1 : 2
  }

  /** @internal After StartTLS: the next `tls` read asks again. */
  protected forgetTls(): void {
    if (this.#tls) this.#tls.info = undefined
    else this.#tls = undefined
  }

  /**
   * The client's address as an object (on `proxyProtocol` listeners: the one the PROXY
   * header named); `null` if the connection closed before it was known. The string and number
   * forms are {@link Connection.remoteAddress}, {@link Connection.remotePort},
   * {@link Connection.remoteFamily}.
   */
  get remote(): AddressInfo | null {
    return (this.facts()?.remote as AddressInfo | undefined) ?? null
  }

  /** The server-side address the client connected to, as an object (the PROXY header's, behind a balancer). */
  get local(): AddressInfo | null {
    return (this.facts()?.local as AddressInfo | undefined) ?? null
  }

  /**
   * The client's IP address as text, like `net.Socket#remoteAddress` (`'::1'`,
   * `'127.0.0.1'`); a Unix socket's peer path (usually `''`). Known after close too.
   */
  get remoteAddress(): string | undefined {
    return this.remote?.address
  }

  /** The client's port, like `net.Socket#remotePort` (0 for Unix sockets). */
  get remotePort(): number | undefined {
    return this.remote?.port
  }

  /** `'IPv4'`, `'IPv6'` (as `net.Socket#remoteFamily`), or `'unix'` for Unix domain sockets. */
  get remoteFamily(): AddressInfo['family'] | undefined {
    return this.remote?.family
  }

  /** The local IP address as text, like `net.Socket#localAddress` (the socket file's path for Unix sockets). */
  get localAddress(): string | undefined {
    return this.local?.address
  }

  /** The local port, like `net.Socket#localPort` (0 for Unix sockets). */
  get localPort(): number | undefined {
    return this.local?.port
  }

  /** The local address's family: `'IPv4'`, `'IPv6'` or `'unix'`. */
  get localFamily(): AddressInfo['family'] | undefined {
    return this.local?.family
  }

  /** The local address as `net.Socket#address()` returns it (`{}` if never known). */
  address(): AddressInfo | Record<string, never> {
    return this.local ?? {}
  }

  /**
   * On `proxyProtocol` listeners: the load balancer that sent the PROXY header (the socket's
   * peer); `null` elsewhere. Known while the connection is open.
   */
  get proxiedBy(): AddressInfo | null {
    const info = this.facts()
    return info && 'proxiedBy' in info ? ((info.proxiedBy as AddressInfo | undefined) ?? null) : null
  }

  /** What TLS negotiated, or `null` for plain TCP. */
  get tls(): TlsInfo | null {
    const known = this.#tls
    if (known === null) return null
    if (known === undefined || known.info === undefined) {
      const info = this.facts()
      const t = info && 'tls' in info ? info.tls : null
      if (!t && known === undefined) {
        this.#tls = null
        return null
      }
      const state = known ?? new TlsState()
      this.#tls = state
      state.info = t
        ? {
            protocol: t.protocol,
            cipher: t.cipher,
            alpnProtocol: t.alpnProtocol ?? null,
            serverName: t.serverName ?? null,
            resumed: t.resumed,
            peerCertificates: t.peerCertificates.map(parseCertificate),
            get closeNotify() {
              return state.end === 1
            },
            get truncated() {
              return state.end === 2
            },
          }
        : null
      return state.info
    }
    return known.info
  }

  /** When the connection was accepted (ms since the epoch). */
  get startTime(): number {
    const info = this.facts()
    return info && 'startTime' in info ? info.startTime : CLOCK_BASE + this.#openedAt
  }
}

/** Now, in ms since `CLOCK_BASE`: an int32 (a small integer to V8) for the first 24 days. */
function sinceClockBase(): number {
  const ms = Date.now() - CLOCK_BASE
  return ms <= 0x7fffffff ? ms | 0 : ms
}
