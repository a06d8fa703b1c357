// Every option's validation error: TypeError for a wrong type, RangeError for a value out of
// range, always `code: 'ERR_INVALID_ARG_VALUE'` and `option` naming the option.
import test from 'ava'
import { type ListenOptions, listen } from 'tcpserver'

const base = { address: '127.0.0.1:0' }

async function rejects(
  t: import('ava').ExecutionContext,
  options: unknown,
  option: string,
  cls: typeof TypeError | typeof RangeError,
): Promise<void> {
  const err = await t.throwsAsync(listen(options as ListenOptions), { code: 'ERR_INVALID_ARG_VALUE' })
  t.is((err as { option?: string }).option, option, `option name for ${JSON.stringify(options)}`)
  t.true(err instanceof cls, `${cls.name} for ${JSON.stringify(options)}, got ${err?.constructor.name}`)
}

const typeCases: Array<[string, Record<string, unknown>]> = [
  ['loops', { loops: '2' }],
  ['reusePort', { reusePort: 1 }],
  ['fastOpen', { fastOpen: '256' }],
  ['deferAccept', { deferAccept: 'yes' }],
  ['backlog', { backlog: null }],
  ['ipv6Only', { ipv6Only: 'true' }],
  ['noDelay', { noDelay: 0 }],
  ['keepAlive', { keepAlive: 'on' }],
  ['keepAlive.initialDelay', { keepAlive: { initialDelay: '1s' } }],
  ['maxConnections', { maxConnections: [] }],
  ['maxAcceptConnections', { maxAcceptConnections: {} }],
  ['highWaterMark', { highWaterMark: '64k' }],
  ['idleTimeout', { idleTimeout: true }],
  ['handler', { handler: 'fn' }],
  ['onError', { onError: 1 }],
  ['signal', { signal: {} }],
]
for (const [option, extra] of typeCases) {
  test(`${option}: wrong type is a TypeError`, (t) => rejects(t, { ...base, ...extra }, option, TypeError))
}

const rangeCases: Array<[string, Record<string, unknown>]> = [
  ['loops', { loops: 0 }],
  ['loops', { loops: 1.5 }],
  ['loops', { loops: 100_000 }],
  ['fastOpen', { fastOpen: -1 }],
  ['fastOpen', { fastOpen: 70_000 }],
  ['deferAccept', { deferAccept: 4000 }],
  ['deferAccept', { deferAccept: Number.NaN }],
  ['backlog', { backlog: 0 }],
  ['backlog', { backlog: 65_536 }],
  ['keepAlive.initialDelay', { keepAlive: { initialDelay: 0 } }],
  ['keepAlive.interval', { keepAlive: { interval: -5 } }],
  ['keepAlive.count', { keepAlive: { count: 128 } }],
  ['maxConnections', { maxConnections: 0 }],
  ['maxAcceptConnections', { maxAcceptConnections: -1 }],
  ['highWaterMark', { highWaterMark: 10 }],
  ['idleTimeout', { idleTimeout: -1 }],
  ['idleTimeout', { idleTimeout: Number.POSITIVE_INFINITY }],
]
for (const [option, extra] of rangeCases) {
  test(`${option}: ${JSON.stringify(Object.values(extra)[0])} is a RangeError`, (t) =>
    rejects(t, { ...base, ...extra }, option, RangeError))
}

test('loops > 1 without reusePort is refused with a reason', (t) =>
  rejects(t, { ...base, loops: 2, reusePort: false }, 'loops', TypeError))

const addressCases: Array<[string, unknown]> = [
  ['missing', undefined],
  ['empty list', []],
  ['number', 5000],
  ['no port', '127.0.0.1'],
  ['port out of range', '127.0.0.1:65536'],
  ['negative port', '127.0.0.1:-1'],
  ['unbracketed IPv6', '::1:5000'],
  ['garbage', 'not an address'],
  ['empty string', ''],
  ['object port out of range', { host: '127.0.0.1', port: 70_000 }],
  ['object port not integer', { host: '127.0.0.1', port: 1.5 }],
]
for (const [name, address] of addressCases) {
  test(`address: ${name}`, async (t) => {
    const err = await t.throwsAsync(listen({ address } as ListenOptions), { code: 'ERR_INVALID_ARG_VALUE' })
    t.true(['address', 'address.port', 'port'].includes((err as { option?: string }).option ?? ''))
  })
}

test('an unknown option is refused (a typo never passes silently)', (t) =>
  rejects(t, { ...base, reuseport: true }, 'reuseport', TypeError))

test('options must be an object', (t) => rejects(t, 'opts', 'options', TypeError))

test('shutdown timeout must be a number', async (t) => {
  const server = await listen({ ...base })
  t.teardown(() => server.halt())
  t.throws(() => server.shutdown({ timeout: '1s' as unknown as number }), { code: 'ERR_INVALID_ARG_VALUE' })
})

test('valid tuning options are accepted together', async (t) => {
  const server = await listen({
    ...base,
    loops: 2,
    reusePort: true,
    fastOpen: 128,
    deferAccept: 1,
    backlog: 1024,
    noDelay: false,
    keepAlive: { initialDelay: 30_000, interval: 5000, count: 4 },
    maxConnections: 100,
    maxAcceptConnections: 1000,
    highWaterMark: 1 << 20,
    idleTimeout: 60_000,
  })
  t.teardown(() => server.halt())
  t.true(server.addresses[0]!.port > 0)
})
