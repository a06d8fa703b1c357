// Outbound connections. They live on one process-wide hub: a native BindingServer without
// listeners, whose events this module dispatches like a server's.
import type { Connection } from './connection.js'
import { codedError, fromBinding, invalidArg, parseEventText } from './errors.js'
import { type BindingServer, binding } from './native.js'
import type { AddressInput, ConnectOptions } from './options.js'
import { EventRouter } from './router.js'
import { toBindingClientTls } from './tls.js'
import { expectBoolean, expectNumber } from './validate.js'

const noop = (): void => {}

type Pending = [(conn: Connection) => void, (error: Error) => void]

class Hub {
  readonly native: BindingServer
  readonly #router: EventRouter
  readonly #pending = new Map<number, Pending>()
  #nextTag = 1
  #open = 0
  #keepAlive: NodeJS.Timeout | null = null

  constructor() {
    this.native = binding.createHub((events, payload) => this.#router.dispatch(events, payload))
    this.#router = new EventRouter(this.native, {
      open: (conn, tag) => this.#opened(conn, tag),
      closed: () => {
        this.#open--
        this.#update()
      },
      connectFailed: (_, text) => this.#failed(text),
    })
  }

  connect(options: Parameters<BindingServer['connect']>[0]): Promise<Connection> {
    const tag = this.#nextTag
    this.#nextTag = this.#nextTag >= 0xffffffff ? 1 : this.#nextTag + 1
    return new Promise<Connection>((resolve, reject) => {
      this.#pending.set(tag, [resolve, reject])
      const err = this.native.connect(options, tag)
      if (err) {
        this.#pending.delete(tag)
        reject(fromBinding(err, connect))
      }
      this.#update()
    })
  }

  #opened(conn: Connection, tag: number): void {
    this.#open++
    const pending = this.#pending.get(tag)
    this.#pending.delete(tag)
    if (pending) pending[0](conn)
    else conn.close()
    this.#update()
  }

  /** A CONNECT_FAILED event's fields: the attempt's tag; then the error. */
  #failed(text: string): void {
    const [[tag], error] = parseEventText(text, 1)
    const pending = this.#pending.get(Number(tag))
    this.#pending.delete(Number(tag))
    pending?.[1](error ?? codedError('ERR_SOCKET_CLOSED', 'connection attempt failed'))
    this.#update()
  }

  // Like Node sockets, open or pending outbound connections keep the process alive; the hub's
  // native wake-up function itself does not.
  #update(): void {
    const busy = this.#open + this.#pending.size > 0
    if (busy && this.#keepAlive === null) this.#keepAlive = setInterval(noop, 1 << 30)
    else if (!busy && this.#keepAlive !== null) {
      clearInterval(this.#keepAlive)
      this.#keepAlive = null
    }
  }
}

let hub: Hub | undefined

/**
 * Opens an outbound TCP connection (IPv4 or IPv6; host names are resolved asynchronously and
 * every address is tried in turn). The result is the same {@link Connection} type handlers
 * get, so it can be read, written, piped to (`conn.pipe(upstream)`) and sent files. Close it
 * when done (`conn.close()`, `await using upstream = await connect(...)`).
 *
 * @throws {TcpServerError} `ECONNREFUSED`, `ETIMEDOUT` (after `timeout`), `ENOTFOUND`-like
 * resolution errors (`code` from the resolver), `ERR_INVALID_ARG_VALUE` for a bad address.
 */
export function connect(address: AddressInput, options: ConnectOptions = {}): Promise<Connection> {
  try {
    if (options === null || typeof options !== 'object') {
      throw invalidArg('options', 'must be an object', connect)
    }
    expectNumber('timeout', options.timeout, connect)
    expectBoolean('noDelay', options.noDelay, connect)
    if (options.localAddress !== undefined && typeof options.localAddress !== 'string') {
      throw invalidArg('localAddress', 'must be a string', connect)
    }
    const target =
      typeof address === 'string'
        ? { address }
        : address !== null && typeof address === 'object' && typeof address.port === 'number'
          ? { host: address.host ?? 'localhost', port: address.port }
          : undefined
    if (target === undefined) throw invalidArg('address', 'must be "host:port" or { host, port }', connect)
    if (options.tls !== undefined && options.tls !== false && options.tls !== true) {
      if (options.tls === null || typeof options.tls !== 'object') {
        throw invalidArg('tls', 'must be a boolean or an object', connect)
      }
    }
    hub ??= new Hub()
    return hub.connect({
      ...target,
      timeout: options.timeout,
      noDelay: options.noDelay,
      localAddress: options.localAddress,
      tls: options.tls ? toBindingClientTls(options.tls) : undefined,
    })
  } catch (e) {
    return Promise.reject(e)
  }
}
