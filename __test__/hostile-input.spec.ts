// Every public function and setter called with hostile values: wrong types, out of range, NUL
// bytes in strings and paths, huge numbers, NaN, -0, Infinity, Symbols, BigInts, objects whose
// getters throw. Each call must settle within its deadline (no hang, no crash of the worker)
// with success or an error of Node's: a code from the allowed list with Node's class, never a
// napi status (InvalidArg, NumberExpected, GenericFailure...). A getter's own throw may pass
// through unchanged, as Node lets it.
import { connect as netConnect } from 'node:net'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import {
  type Connection,
  connect as dial,
  type ListenOptions,
  listen,
  proxyHeader,
  type Server,
} from 'tcpserver-rs'
import { portOf, serve, within } from './helpers/index.js'

/** The error a hostile getter throws: the only error allowed to pass through as it is. */
const GETTER = new Error('hostile getter')

const throwingGetter = (): object =>
  Object.defineProperty({}, 'port', {
    enumerable: true,
    get() {
      throw GETTER
    },
  })
const throwingProxy = (): object =>
  new Proxy(
    {},
    {
      get() {
        throw GETTER
      },
      ownKeys() {
        throw GETTER
      },
    },
  )

const HOSTILE: ReadonlyArray<[string, () => unknown]> = [
  ['undefined', () => undefined],
  ['null', () => null],
  ['true', () => true],
  ['false', () => false],
  ['0', () => 0],
  ['-0', () => -0],
  ['-1', () => -1],
  ['1.5', () => 1.5],
  ['NaN', () => Number.NaN],
  ['Infinity', () => Number.POSITIVE_INFINITY],
  ['-Infinity', () => Number.NEGATIVE_INFINITY],
  ['2**53', () => 2 ** 53],
  ['1e308', () => 1e308],
  ["''", () => ''],
  ["'x'", () => 'x'],
  ['NUL in a string', () => 'a\0b'],
  ['NUL in a path', () => '/tmp/a\0b'],
  ['NUL in a unix address', () => 'unix:/tmp/a\0b'],
  ['100 kB string', () => 'x'.repeat(100_000)],
  ['a path of 5000 bytes', () => `/${'d'.repeat(5000)}`],
  ['Symbol', () => Symbol('hostile')],
  ['BigInt', () => 10n],
  ['{}', () => ({})],
  ['[]', () => []],
  ['[1, "x"]', () => [1, 'x']],
  ['function', () => () => {}],
  ['Date', () => new Date(0)],
  ['Buffer', () => Buffer.from('x')],
  ['getter that throws', throwingGetter],
  ['Proxy that throws', throwingProxy],
  ['Object.create(null)', () => Object.create(null)],
]

const ARG_CLASSES: Readonly<Record<string, string>> = {
  ERR_INVALID_ARG_TYPE: 'TypeError',
  ERR_INVALID_ARG_VALUE: 'TypeError',
  ERR_OUT_OF_RANGE: 'RangeError',
  ERR_SOCKET_BAD_PORT: 'RangeError',
}
const OTHER_CODES = new Set([
  'ABORT_ERR',
  'ERR_SOCKET_CLOSED',
  'ERR_STREAM_WRITE_AFTER_END',
  'ERR_TCPSERVER_BUSY',
  'ERR_TCPSERVER_STREAM_LOCKED',
  'ERR_TCPSERVER_HANDLER_SETTLED',
  'ERR_TCPSERVER_TLS_HANDSHAKE',
  'ERR_TCPSERVER_UNSUPPORTED',
])
const NAPI =
  /^(InvalidArg|ObjectExpected|StringExpected|NameExpected|FunctionExpected|NumberExpected|BooleanExpected|ArrayExpected|GenericFailure|PendingException|BigintExpected|Unknown)$/

interface Tally {
  calls: number
  errors: Map<string, number>
}

/** Checks one outcome; returns a problem, or null. */
function problem(outcome: unknown): string | null {
  if (outcome === GETTER) return null
  if (!(outcome instanceof Error)) return `not an Error: ${String(outcome)}`
  const code = (outcome as { code?: unknown }).code
  if (typeof code !== 'string') return `no code: ${outcome.constructor.name}: ${outcome.message}`
  if (NAPI.test(code) || /^E\d+$/.test(code)) return `raw code ${code}: ${outcome.message}`
  const cls = outcome.constructor.name
  if (ARG_CLASSES[code] !== undefined) {
    if (cls !== ARG_CLASSES[code]) return `${code} is a ${cls}, Node's is a ${ARG_CLASSES[code]}`
    if (!/Received|names no|is required|must name/.test(outcome.message))
      return `${code} without the value received: ${outcome.message}`
    return null
  }
  if (OTHER_CODES.has(code)) return null
  if (/^E[A-Z]+$/.test(code)) {
    if (cls !== 'Error') return `${code} is a ${cls}`
    return typeof (outcome as { errno?: unknown }).errno === 'number' || code === 'ENOTFOUND'
      ? null
      : `${code} without errno: ${outcome.message}`
  }
  return `unexpected code ${code}: ${outcome.message}`
}

/** Runs `call` (sync throw or promise), bounded; records the outcome. Returns the value if it succeeded. */
async function attempt(
  t: ExecutionContext,
  tally: Tally,
  what: string,
  call: () => unknown,
): Promise<unknown> {
  tally.calls++
  let outcome: unknown
  let ok = false
  let value: unknown
  try {
    value = await within(Promise.resolve().then(call), 5000, what)
    ok = true
  } catch (e) {
    outcome = e
  }
  if (ok) return value
  if ((outcome as Error | undefined)?.message?.endsWith('ms') && String(outcome).includes('did not finish')) {
    t.fail(`${what}: hung (${String(outcome)})`)
    return undefined
  }
  const p = problem(outcome)
  if (p !== null) t.fail(`${what}: ${p}`)
  const code = String((outcome as { code?: unknown } | undefined)?.code ?? 'getter')
  tally.errors.set(code, (tally.errors.get(code) ?? 0) + 1)
  return undefined
}

const report = (t: ExecutionContext, tally: Tally): void => {
  t.log(`${tally.calls} calls; errors by code: ${JSON.stringify(Object.fromEntries(tally.errors))}`)
  t.true(tally.calls > 0)
}

const cleanUp = async (v: unknown): Promise<void> => {
  if (v && typeof v === 'object' && 'halt' in v) await (v as Server).halt()
  if (v && typeof v === 'object' && 'close' in v && 'write' in v) (v as Connection).close()
}

const LISTEN_OPTIONS = [
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
]

/** Descriptors 0-2 belong to the test worker: a hostile value may not hand them to the server. */
const ownDescriptor = (v: unknown): boolean => typeof v === 'number' && v >= 0 && v < 3

const tlsDir = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))
const TLS = { cert: `${tlsDir}server.crt`, key: `${tlsDir}server.key` }

test.serial('listen(): every option, and the options argument, with hostile values', async (t) => {
  const tally: Tally = { calls: 0, errors: new Map() }
  for (const [name, make] of HOSTILE) {
    await cleanUp(await attempt(t, tally, `listen(${name})`, () => listen(make() as ListenOptions)))
    for (const option of LISTEN_OPTIONS) {
      const v = make()
      if (option === 'fd' && ownDescriptor(v)) continue
      const options = { address: '127.0.0.1:0', [option]: v }
      await cleanUp(
        await attempt(t, tally, `listen({ ${option}: ${name} })`, () => listen(options as ListenOptions)),
      )
    }
    for (const nested of ['keepAlive', 'maxConnectionsPerIp', 'proxyProtocol']) {
      const options = { address: '127.0.0.1:0', [nested]: { max: 1, trusted: ['127.0.0.1'], count: make() } }
      await cleanUp(
        await attempt(t, tally, `listen({ ${nested}: { ...: ${name} } })`, () =>
          listen(options as ListenOptions),
        ),
      )
    }
    for (const key of ['cert', 'key', 'ca', 'alpn', 'minVersion', 'handshakeTimeout', 'sni', 'requestCert']) {
      const options = { address: '127.0.0.1:0', tls: { ...TLS, [key]: make() } }
      await cleanUp(
        await attempt(t, tally, `listen({ tls: { ${key}: ${name} } })`, () =>
          listen(options as ListenOptions),
        ),
      )
    }
    const address = { address: [{ host: make(), port: 0 }] }
    await cleanUp(
      await attempt(t, tally, `listen({ address: [{ host: ${name} }] })`, () =>
        listen(address as ListenOptions),
      ),
    )
    const port = { address: { host: '127.0.0.1', port: make() } }
    await cleanUp(
      await attempt(t, tally, `listen({ address: { port: ${name} } })`, () => listen(port as ListenOptions)),
    )
  }
  report(t, tally)
})

test.serial('connect(): the address, the options and every option with hostile values', async (t) => {
  const tally: Tally = { calls: 0, errors: new Map() }
  for (const [name, make] of HOSTILE) {
    await cleanUp(await attempt(t, tally, `connect(${name})`, () => dial(make() as string)))
    await cleanUp(
      await attempt(t, tally, `connect({ port: ${name} })`, () =>
        dial({ host: '127.0.0.1', port: make() as number }),
      ),
    )
    await cleanUp(
      await attempt(t, tally, `connect({ host: ${name} })`, () => dial({ host: make() as string, port: 9 })),
    )
    await cleanUp(await attempt(t, tally, `connect(a, ${name})`, () => dial('127.0.0.1:9', make() as object)))
    for (const option of ['timeout', 'noDelay', 'localAddress', 'tls', 'signal']) {
      const options = { timeout: 1000, [option]: make() }
      await cleanUp(
        await attempt(t, tally, `connect(a, { ${option}: ${name} })`, () => dial('127.0.0.1:9', options)),
      )
    }
    for (const key of ['servername', 'ca', 'alpn', 'cert', 'handshakeTimeout']) {
      const options = { timeout: 1000, tls: { [key]: make() } }
      await cleanUp(
        await attempt(t, tally, `connect(a, { tls: { ${key}: ${name} } })`, () =>
          dial('127.0.0.1:9', options as object),
        ),
      )
    }
  }
  report(t, tally)
})

test.serial('Connection: every method and setter with hostile values', async (t) => {
  const tally: Tally = { calls: 0, errors: new Map() }
  const echo = await serve(t, {
    async handler(conn) {
      for await (const c of conn) await conn.write(c)
    },
  })
  const tasks: Array<(conn: Connection) => Promise<void>> = []
  const done: Array<Promise<void>> = []
  for (const [name, make] of HOSTILE) {
    const file = make()
    const calls: Array<[string, (c: Connection) => unknown]> = [
      [`write(${name})`, (c) => c.write(make() as string)],
      [`end(${name})`, (c) => c.end(make() as string)],
      [`sendFile(${name})`, (c) => (ownDescriptor(file) ? undefined : c.sendFile(file as string))],
      [`sendFile(path, ${name})`, (c) => c.sendFile('/etc/hostname', make() as object)],
      [
        `sendFile(path, { offset: ${name} })`,
        (c) => c.sendFile('/etc/hostname', { offset: make() as number }),
      ],
      [
        `sendFile(path, { length: ${name} })`,
        (c) => c.sendFile('/etc/hostname', { length: make() as number }),
      ],
      [`startTls(${name})`, (c) => c.startTls(make() as never)],
      [`toDuplex(${name})`, (c) => c.toDuplex(make() as object).destroy()],
      [`idleTimeout = ${name}`, (c) => (c.idleTimeout = make() as number)],
      [`readTimeout = ${name}`, (c) => (c.readTimeout = make() as number)],
      [`writeTimeout = ${name}`, (c) => (c.writeTimeout = make() as number)],
      [`setNoDelay(${name})`, (c) => c.setNoDelay(make() as boolean)],
      [`setKeepAlive(true, ${name})`, (c) => c.setKeepAlive(true, make() as number)],
      [`setKeepAlive(${name})`, (c) => c.setKeepAlive(make() as boolean)],
      [`pipe(${name})`, (c) => c.pipe(make() as Connection)],
      [
        `pipe(up, ${name})`,
        async (c) => {
          const up = await dial(`127.0.0.1:${portOf(echo)}`)
          try {
            // A valid call starts a real pipe: bounded, then both sides close.
            return await Promise.race([c.pipe(up, make() as object), new Promise((r) => setTimeout(r, 200))])
          } finally {
            up.close()
          }
        },
      ],
    ]
    for (const [what, call] of calls) {
      tasks.push(async (conn) => {
        await attempt(t, tally, `conn.${what}`, () => call(conn))
      })
    }
  }
  const server = await serve(t, {
    async handler(conn) {
      const task = tasks.shift()
      if (task) await task(conn)
    },
  })
  const total = tasks.length
  for (let i = 0; i < total; i++) {
    done.push(
      new Promise<void>((resolve) => {
        const s = netConnect(portOf(server), '127.0.0.1')
        s.on('error', () => {})
        s.on('close', () => resolve())
        s.resume()
      }),
    )
    await within(done[i] as Promise<void>, 10_000, `connection ${i} of ${total}`)
  }
  t.is(tally.calls, total)
  report(t, tally)
})

test.serial('Server methods and proxyHeader() with hostile values', async (t) => {
  const tally: Tally = { calls: 0, errors: new Map() }
  const tlsServer = await serve(t, { tls: TLS })
  const src = { address: '127.0.0.1', port: 1, family: 'IPv4' as const }
  for (const [name, make] of HOSTILE) {
    const fresh = await listen({ address: '127.0.0.1:0' })
    await attempt(t, tally, `shutdown(${name})`, () => fresh.shutdown(make() as object))
    const other = await listen({ address: '127.0.0.1:0' })
    await attempt(t, tally, `shutdown({ timeout: ${name} })`, () =>
      other.shutdown({ timeout: make() as number }),
    )
    await Promise.all([fresh.halt(), other.halt()])
    await attempt(t, tally, `setTlsConfig(${name})`, () => tlsServer.setTlsConfig(make() as never))
    for (const key of ['cert', 'key', 'alpn', 'minVersion', 'sni', 'ca']) {
      await attempt(t, tally, `setTlsConfig({ ${key}: ${name} })`, () =>
        tlsServer.setTlsConfig({ ...TLS, [key]: make() }),
      )
    }
    await attempt(t, tally, `proxyHeader(${name})`, () => proxyHeader(make() as 'v1', src, src))
    await attempt(t, tally, `proxyHeader(v1, ${name})`, () => proxyHeader('v1', make() as typeof src, src))
    await attempt(t, tally, `proxyHeader(v2, src, ${name})`, () =>
      proxyHeader('v2', src, make() as typeof src),
    )
    await attempt(t, tally, `proxyHeader({ address: ${name} })`, () =>
      proxyHeader('v1', { ...src, address: make() as string }, src),
    )
    await attempt(t, tally, `proxyHeader({ port: ${name} })`, () =>
      proxyHeader('v2', { ...src, port: make() as number }, src),
    )
  }
  // The TLS server still serves after all of it.
  t.true(portOf(tlsServer) > 0)
  report(t, tally)
})

test.serial(
  'issue 16 item 7, the reported instances: write(5), idleTimeout = "x", a NUL path, an over-long path',
  async (t) => {
    const seen: unknown[] = []
    const server = await serve(t, {
      async handler(conn) {
        const c = (e: unknown): unknown[] => [(e as { code?: unknown }).code, (e as Error).constructor.name]
        seen.push(c(await conn.write(5 as unknown as string).catch((e: unknown) => e)))
        try {
          conn.idleTimeout = 'x' as unknown as number
        } catch (e) {
          seen.push(c(e))
        }
        seen.push(c(await conn.sendFile('/tmp/a\0b').catch((e: unknown) => e)))
        seen.push(c(await conn.sendFile(`/${'d'.repeat(5000)}`).catch((e: unknown) => e)))
      },
    })
    const s = netConnect(portOf(server), '127.0.0.1')
    s.on('error', () => {})
    await within(new Promise((r) => s.once('close', r)), 5000, 'handler done')
    t.deepEqual(seen, [
      ['ERR_INVALID_ARG_TYPE', 'TypeError'], // was InvalidArg
      ['ERR_INVALID_ARG_TYPE', 'TypeError'], // was NumberExpected
      ['ERR_INVALID_ARG_VALUE', 'TypeError'], // was EIO
      ['ENAMETOOLONG', 'Error'], // was E36
    ])
  },
)
