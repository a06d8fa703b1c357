import { type ArgContext, argValue, fromBinding, inOptions } from './errors.js'
import { binding } from './native.js'
import type { ListenOptions } from './options.js'
import { Server } from './server.js'
import { toBindingTls } from './tls.js'
import type { AddressInput } from './types.js'
import { validateListenOptions } from './validate.js'
import { handlerModule, WorkerPool, workerCount } from './workers.js'

type BindingListenOptions = Parameters<typeof binding.listen>[0]

function toBindingAddress(a: AddressInput): BindingListenOptions['addresses'][number] {
  return typeof a === 'string' ? { address: a } : { host: a.host ?? '', port: a.port }
}

/** The descriptors of `fd`, systemd's looked up. */
function inheritedFds(fd: ListenOptions['fd']): number[] | undefined {
  if (fd === undefined) return undefined
  if (fd !== 'systemd') return typeof fd === 'number' ? [fd] : [...fd]
  const found = binding.systemdListenFds()
  if (!Array.isArray(found)) throw fromBinding(found, listen)
  if (found.length === 0) {
    throw argValue(
      'options.fd',
      'names no socket: systemd passed none (LISTEN_PID/LISTEN_FDS name no socket for this process)',
      fd,
      listen,
    )
  }
  return found.map((f) => f.fd)
}

/**
 * The value behind a native argument error: options by name, and for `port` the `{ host, port }`
 * addresses it came from (the core checks ports; with several, all of them are shown).
 */
function argContext(options: ListenOptions): (option: string) => ArgContext | undefined {
  const byName = inOptions(options)
  return (option) => {
    if (option !== 'port') return byName(option)
    const list = (Array.isArray(options.address) ? options.address : [options.address]) as unknown[]
    const ports = list
      .filter((a) => typeof a === 'object' && a !== null)
      .map((a) => (a as { port: number }).port)
    if (ports.length === 1) return { name: 'options.address.port', value: ports[0], allowZero: true }
    return { name: 'options.address[].port', value: ports, allowZero: true }
  }
}

function toBindingOptions(
  o: ListenOptions,
  fds: number[] | undefined,
  workers: boolean,
): BindingListenOptions {
  const addresses = (
    o.address === undefined ? [] : Array.isArray(o.address) ? o.address : [o.address]
  ) as AddressInput[]
  const ka = o.keepAlive
  return {
    addresses: addresses.map(toBindingAddress),
    workers,
    fds,
    loops: o.loops,
    reusePort: o.reusePort,
    fastOpen: o.fastOpen === true ? 256 : o.fastOpen === false ? 0 : o.fastOpen,
    deferAccept: o.deferAccept === true ? 1 : o.deferAccept === false ? 0 : o.deferAccept,
    backlog: o.backlog,
    ipv6Only: o.ipv6Only,
    unixPermissions: o.unixPermissions,
    noDelay: o.noDelay,
    keepAlive: ka === undefined ? undefined : ka !== false,
    keepAliveInitialDelay: typeof ka === 'object' ? ka.initialDelay : undefined,
    keepAliveInterval: typeof ka === 'object' ? ka.interval : undefined,
    keepAliveCount: typeof ka === 'object' ? ka.count : undefined,
    maxConnections: o.maxConnections,
    onLimit: o.onLimit,
    maxConnectionsPerIp:
      typeof o.maxConnectionsPerIp === 'object' ? o.maxConnectionsPerIp.max : o.maxConnectionsPerIp,
    maxConnectionsPerIpV6Prefix:
      typeof o.maxConnectionsPerIp === 'object' ? o.maxConnectionsPerIp.ipv6Prefix : undefined,
    maxAcceptConnections: o.maxAcceptConnections,
    highWaterMark: o.highWaterMark,
    idleTimeout: o.idleTimeout,
    writeTimeout: o.writeTimeout,
    readTimeout: o.readTimeout,
    tls: o.tls ? toBindingTls(o.tls) : undefined,
    proxyProtocol: o.proxyProtocol
      ? { trusted: o.proxyProtocol.trusted, timeout: o.proxyProtocol.timeout }
      : undefined,
  }
}

/**
 * Starts a server (TLS with `tls`): binds every address (with `loops` `SO_REUSEPORT` sockets each) and runs
 * `handler` once per connection, closing the connection when the handler settles.
 *
 * @example
 * ```ts
 * const server = await listen({
 *   address: '127.0.0.1:0',
 *   async handler(conn) {
 *     for await (const chunk of conn) await conn.write(chunk)
 *   },
 * })
 * console.log(server.addresses[0].port)
 * ```
 * @throws {TcpServerError} Node's argument errors naming the option (`err.option`):
 * `ERR_INVALID_ARG_TYPE` (a `TypeError`) for a wrong type or an unknown option's value,
 * `ERR_INVALID_ARG_VALUE` (a `TypeError`) for a bad value, `ERR_OUT_OF_RANGE` and
 * `ERR_SOCKET_BAD_PORT` (`RangeError`s); `EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL` with `syscall`,
 * `errno`, `address` and `port`; `ERR_TCPSERVER_UNSUPPORTED` for an option this platform lacks.
 */
export async function listen(input: ListenOptions): Promise<Server> {
  const options = validateListenOptions(input, listen)
  const workers = workerCount(options.workers, listen)
  const module = workers === undefined ? undefined : handlerModule(options.handler, listen)
  const fds = inheritedFds(options.fd)
  let server: Server | undefined
  const result = binding.listen(
    toBindingOptions(options, fds, workers !== undefined),
    (events: Buffer, payload: Buffer, words?: number) => server?.dispatch(events, payload, words),
  )
  if (!(result instanceof binding.BindingServer)) throw fromBinding(result, listen, argContext(options))
  if (options.fd === 'systemd') {
    // Taken: children of this process must not believe the sockets are theirs.
    delete process.env.LISTEN_PID
    delete process.env.LISTEN_FDS
    delete process.env.LISTEN_FDNAMES
  }
  const pool =
    module === undefined
      ? undefined
      : new WorkerPool(result.workersKey, workers as number, module, options.workerData)
  server = new Server(result, {
    handler: typeof options.handler === 'function' ? options.handler : undefined,
    onError: options.onError,
    onTlsError: options.onTlsError,
    sniCallback: options.tls?.sniCallback,
    pool,
  })
  if (pool) {
    try {
      await pool.start()
    } catch (e) {
      await server.halt()
      throw e
    }
  }
  const signal = options.signal
  if (signal) {
    const s = server
    if (signal.aborted) void s.shutdown()
    else signal.addEventListener('abort', () => void s.shutdown(), { once: true })
  }
  return server
}
