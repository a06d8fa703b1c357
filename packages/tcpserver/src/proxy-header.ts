// Builds PROXY protocol headers for outbound connections: a proxy written with `connect()` and
// `pipe({ head })` tells its upstream who the client is, as HAProxy's `send-proxy` does.
// (Parsing incoming headers is the Rust core's job: `listen({ proxyProtocol })`.)
import { isIPv4, isIPv6 } from 'node:net'
import { invalidArg } from './errors.js'
import type { AddressInfo } from './options.js'

/** The v2 signature (spec section 2.2). */
const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')

function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number))
  // Expand "::" and any embedded IPv4 tail into eight 16-bit groups.
  let text = ip
  const v4 = text.match(/(\d+\.\d+\.\d+\.\d+)$/)?.[1]
  if (v4) {
    const [a, b, c, d] = v4.split('.').map(Number) as [number, number, number, number]
    text = `${text.slice(0, -v4.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  const out = Buffer.alloc(16)
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2)
  return out
}

/** Canonical form of an IPv4-mapped IPv6 address (`::ffff:1.2.3.4` → `1.2.3.4`). */
function unmap(ip: string): string {
  const m = ip.match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i)
  return m ? (m[1] as string) : ip
}

/**
 * A PROXY protocol header (version 1 text or version 2 binary) announcing a connection from
 * `source` to `destination`, to send first on an upstream connection:
 * `await client.pipe(upstream, { head: proxyHeader('v2', client.remote, client.local) })`.
 * Addresses of different families (an IPv4 client on an IPv6 listener) are sent as IPv6.
 *
 * @throws {TcpServerError} `ERR_INVALID_ARG_VALUE` for an unknown version or a non-IP address.
 */
export function proxyHeader(version: 'v1' | 'v2', source: AddressInfo, destination: AddressInfo): Buffer {
  if (version !== 'v1' && version !== 'v2') throw invalidArg('version', "must be 'v1' or 'v2'", proxyHeader)
  let src = unmap(source.address)
  let dst = unmap(destination.address)
  for (const [name, ip] of [
    ['source', src],
    ['destination', dst],
  ] as const) {
    if (!isIPv4(ip) && !isIPv6(ip)) throw invalidArg(name, `must be an IP address, got '${ip}'`, proxyHeader)
  }
  for (const [name, port] of [
    ['source', source.port],
    ['destination', destination.port],
  ] as const) {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw invalidArg(`${name}.port`, `must be an integer from 0 to 65535, got ${port}`, proxyHeader)
    }
  }
  const six = isIPv6(src) || isIPv6(dst)
  if (six) {
    if (isIPv4(src)) src = `::ffff:${src}`
    if (isIPv4(dst)) dst = `::ffff:${dst}`
  }
  if (version === 'v1') {
    return Buffer.from(
      `PROXY ${six ? 'TCP6' : 'TCP4'} ${src} ${dst} ${source.port} ${destination.port}\r\n`,
      'latin1',
    )
  }
  const addresses = Buffer.concat([ipBytes(src), ipBytes(dst), Buffer.alloc(4)])
  addresses.writeUInt16BE(source.port, addresses.length - 4)
  addresses.writeUInt16BE(destination.port, addresses.length - 2)
  const fixed = Buffer.from([0x21, six ? 0x21 : 0x11, 0, 0])
  fixed.writeUInt16BE(addresses.length, 2)
  return Buffer.concat([V2_SIGNATURE, fixed, addresses])
}
