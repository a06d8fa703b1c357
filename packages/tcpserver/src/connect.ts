// Outbound connections. They live on one process-wide hub: a native BindingHub without
// listeners, whose events this module dispatches like a server's.
import type { Connection } from './connection.js'
import {
  type ArgContext,
  abortError,
  codedError,
  connectFailure,
  fromBinding,
  inOptions,
  parseEventText,
} from './errors.js'
import { type BindingHub, binding } from './native.js'
import { EventRouter } from './router.js'
import { toBindingClientTls } from './tls.js'
import type { AddressInput, ConnectOptions } from './types.js'
import { validateConnectAddress, validateConnectOptions } from './validate.js'

const noop = (): void => {}

interface Pending {
  resolve: (conn: Connection) => void
  reject: (error: Error) => void
  /** What was asked for, for errors that come without an address. */
  host: string
  port: number | undefined
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  /** Names and values for argument errors found by the attempt (a port 0 after resolving). */
  context: ArgLookup
}

type ArgLookup = (option: string) => ArgContext | undefined

class Hub {
  readonly native: BindingHub
  readonly #router: EventRouter
  readonly #pending = new Map<number, Pending>()
  #nextTag = 1
  #open = 0
  #keepAlive: NodeJS.Timeout | null = null

  constructor() {
    this.native = binding.createHub((events, payload) => this.#router.dispatch(events, payload))
    this.#router = new EventRouter(this.native.connections, {
      open: (conn, tag) => this.#opened(conn, tag),
      closed: () => {
        this.#open--
        this.#update()
      },
      connectFailed: (_, text) => this.#failed(text),
    })
  }

  connect(
    options: Parameters<BindingHub['connect']>[0],
    signal: AbortSignal | undefined,
    context: ArgLookup,
  ): Promise<Connection> {
    const tag = this.#nextTag
    this.#nextTag = this.#nextTag >= 0xffffffff ? 1 : this.#nextTag + 1
    return new Promise<Connection>((resolve, reject) => {
      const host = options.address ?? options.host ?? ''
      const pending: Pending = {
        resolve,
        reject,
        host,
        port: options.port,
        signal,
        onAbort: undefined,
        context,
      }
      const err = this.native.connect(options, tag)
      if (err) {
        reject(fromBinding(err, connect, context))
        return
      }
      this.#pending.set(tag, pending)
      if (signal) {
        // Like net.connect({ signal }): the attempt stops, the call rejects with an AbortError.
        pending.onAbort = () => {
          if (this.#take(tag) === undefined) return
          this.native.cancelConnect(tag)
          reject(abortError(signal))
          this.#update()
        }
        signal.addEventListener('abort', pending.onAbort, { once: true })
      }
      this.#update()
    })
  }

  /** The pending attempt `tag`, no longer pending. */
  #take(tag: number): Pending | undefined {
    const pending = this.#pending.get(tag)
    if (pending === undefined) return undefined
    this.#pending.delete(tag)
    if (pending.onAbort) pending.signal?.removeEventListener('abort', pending.onAbort)
    return pending
  }

  #opened(conn: Connection, tag: number): void {
    this.#open++
    const pending = this.#take(tag)
    if (pending) pending.resolve(conn)
    else conn.close()
    this.#update()
  }

  /** A CONNECT_FAILED event's fields: the attempt's tag; then the error. */
  #failed(text: string): void {
    const [tag] = text.split('\n', 1)
    const pending = this.#take(Number(tag))
    const [, error] = parseEventText(text, 1, pending?.context)
    if (pending) {
      pending.reject(
        error
          ? connectFailure(error, pending.host, pending.port)
          : codedError('ERR_SOCKET_CLOSED', 'connection attempt failed'),
      )
    }
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
 * @throws {TcpServerError} errors shaped like Node's: `ECONNREFUSED`, `ETIMEDOUT` (after
 * `timeout`), `EHOSTUNREACH`... with `errno`, `syscall: 'connect'`, `address` and `port`
 * (message `connect ECONNREFUSED 127.0.0.1:1`); `ENOTFOUND` for a name that does not resolve;
 * an `AbortError` (`code: 'ABORT_ERR'`) when `signal` aborts first; Node's argument errors
 * (`ERR_INVALID_ARG_TYPE`, `ERR_INVALID_ARG_VALUE`, `ERR_SOCKET_BAD_PORT`...) for bad input,
 * unknown options included.
 */
export function connect(address: AddressInput, options?: ConnectOptions): Promise<Connection> {
  try {
    const target = validateConnectAddress(address, connect)
    const opts = validateConnectOptions(options, connect)
    const signal = opts.signal
    if (signal?.aborted) return Promise.reject(abortError(signal, connect))
    const context = inOptions(opts)
    hub ??= new Hub()
    return hub.connect(
      {
        ...(typeof target === 'string'
          ? { address: target }
          : { host: target.host ?? 'localhost', port: target.port }),
        timeout: opts.timeout,
        noDelay: opts.noDelay,
        localAddress: opts.localAddress,
        tls: opts.tls ? toBindingClientTls(opts.tls) : undefined,
      },
      signal,
      (option) =>
        option === 'port'
          ? { name: 'address.port', value: typeof target === 'object' ? target.port : 0, allowZero: false }
          : option === 'address'
            ? { name: 'address', value: target }
            : context(option),
    )
  } catch (e) {
    return Promise.reject(e)
  }
}
