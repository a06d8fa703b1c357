// Addresses as the native side reports them in event text, and as people read them.
import type { AddressInfo } from './types.js'

/** The prefix that marks a Unix domain socket path in address strings. */
export const UNIX_PREFIX = 'unix:'

/** An address from event text fields: an IP and a port, or `unix:<path>` (port 0). */
export function eventAddress(address: string, port: string | undefined): AddressInfo {
  if (address.startsWith(UNIX_PREFIX))
    return { address: address.slice(UNIX_PREFIX.length), port: 0, family: 'unix' }
  return { address, port: Number(port), family: address.includes(':') ? 'IPv6' : 'IPv4' }
}

/** `127.0.0.1:7000`, `[::1]:7000`, `unix:/run/app.sock`. */
export function formatAddress(a: AddressInfo): string {
  if (a.family === 'unix') return `${UNIX_PREFIX}${a.address}`
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`
}
