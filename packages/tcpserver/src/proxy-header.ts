// Builds PROXY protocol headers for outbound connections: a proxy written with `connect()` and
// `pipe({ head })` tells its upstream who the client is, as HAProxy's `send-proxy` does.
// (Parsing incoming headers is the Rust core's job: `listen({ proxyProtocol })`.)
import { isIPv4, isIPv6 } from 'node:net'
import { argType, argValue, badPort } from './errors.js'
import type { AddressInfo } from './types.js'

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
 * @throws {TcpServerError} `ERR_INVALID_ARG_VALUE` for an unknown version or a non-IP address,
 * `ERR_INVALID_ARG_TYPE` for a wrong type, `ERR_SOCKET_BAD_PORT` for a port outside 0 to 65535.
 */
export function proxyHeader(version: 'v1' | 'v2', source: AddressInfo, destination: AddressInfo): Buffer {
  if (version !== 'v1' && version !== 'v2')
    throw argValue('version', "must be 'v1' or 'v2'", version, proxyHeader)
  const ends: Array<[string, unknown]> = [
    ['source', source],
    ['destination', destination],
  ]
  const found: Array<{ address: string; port: number }> = []
  for (const [name, end] of ends) {
    if (end === null || typeof end !== 'object') {
      throw argType(name, 'an object ({ address, port, family })', end, proxyHeader)
    }
    // One read of each field: what is checked is what is used.
    const { address, port } = end as { address?: unknown; port?: unknown }
    if (typeof address !== 'string') throw argType(`${name}.address`, 'of type string', address, proxyHeader)
    if (typeof port !== 'number') throw argType(`${name}.port`, 'of type number', port, proxyHeader)
    const ip = unmap(address)
    if (!isIPv4(ip) && !isIPv6(ip))
      throw argValue(`${name}.address`, 'must be an IP address', address, proxyHeader)
    // The header's own limit (a 16-bit field), not a socket option's: no core checks it.
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw badPort(`${name}.port`, port, true, proxyHeader)
    found.push({ address: ip, port })
  }
  const [s, d] = found as [{ address: string; port: number }, { address: string; port: number }]
  let src = s.address
  let dst = d.address
  const six = isIPv6(src) || isIPv6(dst)
  if (six) {
    if (isIPv4(src)) src = `::ffff:${src}`
    if (isIPv4(dst)) dst = `::ffff:${dst}`
  }
  if (version === 'v1') {
    return Buffer.from(`PROXY ${six ? 'TCP6' : 'TCP4'} ${src} ${dst} ${s.port} ${d.port}\r\n`, 'latin1')
  }
  const addresses = Buffer.concat([ipBytes(src), ipBytes(dst), Buffer.alloc(4)])
  addresses.writeUInt16BE(s.port, addresses.length - 4)
  addresses.writeUInt16BE(d.port, addresses.length - 2)
  const fixed = Buffer.from([0x21, six ? 0x21 : 0x11, 0, 0])
  fixed.writeUInt16BE(addresses.length, 2)
  return Buffer.concat([V2_SIGNATURE, fixed, addresses])
}
