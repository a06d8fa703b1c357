// Every option's validation error, with Node's codes and classes: ERR_INVALID_ARG_TYPE
// (TypeError) for a wrong type, ERR_OUT_OF_RANGE (RangeError) for a value out of range,
// ERR_INVALID_ARG_VALUE (TypeError) for a bad value, ERR_SOCKET_BAD_PORT (RangeError) for a bad
// port; `option` names the option and the message names it and the value received.
import test from 'ava'
import { type ListenOptions, listen } from 'tcpserver-rs'

const base = { address: '127.0.0.1:0' }

async function rejects(
  t: import('ava').ExecutionContext,
  options: unknown,
  option: string,
  cls: typeof TypeError | typeof RangeError,
  code: string,
): Promise<Error | undefined> {
  const err = await t.throwsAsync(listen(options as ListenOptions), { code })
  t.is((err as { option?: string }).option, option, `option name for ${JSON.stringify(options)}`)
  t.true(err instanceof cls, `${cls.name} for ${JSON.stringify(options)}, got ${err?.constructor.name}`)
  t.true(err?.message.includes(`options.${option}`), err?.message)
  t.regex(err?.message ?? '', /Received /)
  return err
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
  test(`${option}: wrong type is a TypeError ERR_INVALID_ARG_TYPE`, async (t) => {
    await rejects(t, { ...base, ...extra }, option, TypeError, 'ERR_INVALID_ARG_TYPE')
  })
}

const rangeCases: Array<[string, Record<string, unknown>]> = [
  ['loops', { loops: 0 }],
  ['loops', { loops: 1.5 }],
  ['loops', { loops: 100_000 }],
  ['fastOpen', { fastOpen: -1 }],
  ['fastOpen', { fastOpen: 70_000 }],
  ['deferAccept', { deferAccept: 4000 }],
  ['deferAccept', { deferAccept: Number.NaN }],
  ['backlog', { backlog: 1e300 }],
  ['loops', { loops: -0.5 }],
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
  test(`${option}: ${JSON.stringify(Object.values(extra)[0])} is a RangeError ERR_OUT_OF_RANGE`, async (t) => {
    await rejects(t, { ...base, ...extra }, option, RangeError, 'ERR_OUT_OF_RANGE')
  })
}

test('loops > 1 without reusePort is refused with a reason', async (t) => {
  await rejects(t, { ...base, loops: 2, reusePort: false }, 'loops', TypeError, 'ERR_INVALID_ARG_VALUE')
})

test("Node's message style: the option, the expectation and the value received", async (t) => {
  const type = await rejects(t, { ...base, loops: 'x' }, 'loops', TypeError, 'ERR_INVALID_ARG_TYPE')
  t.is(type?.message, `The "options.loops" property must be of type number. Received type string ('x')`)
  const range = await rejects(t, { ...base, backlog: 0 }, 'backlog', RangeError, 'ERR_OUT_OF_RANGE')
  t.is(
    range?.message,
    'The value of "options.backlog" is out of range. It must be between 1 and 65535. Received 0',
  )
  const value = await rejects(t, { ...base, onLimit: 'drop' }, 'onLimit', TypeError, 'ERR_INVALID_ARG_VALUE')
  t.is(value?.message, `The property 'options.onLimit' must be 'hold' or 'refuse'. Received 'drop'`)
  const port = await t.throwsAsync(listen({ address: { host: '127.0.0.1', port: 70_000 } }), {
    code: 'ERR_SOCKET_BAD_PORT',
    instanceOf: RangeError,
  })
  t.is(port?.message, 'options.address.port should be >= 0 and < 65536. Received type number (70000).')
})

const V = 'ERR_INVALID_ARG_VALUE'
const addressCases: Array<[string, unknown, string]> = [
  ['missing', undefined, V],
  ['empty list', [], V],
  ['number', 5000, 'ERR_INVALID_ARG_TYPE'],
  ['no port', '127.0.0.1', V],
  ['port out of range', '127.0.0.1:65536', V],
  ['negative port', '127.0.0.1:-1', V],
  ['unbracketed IPv6', '::1:5000', V],
  ['garbage', 'not an address', V],
  ['empty string', '', V],
  ['object port out of range', { host: '127.0.0.1', port: 70_000 }, 'ERR_SOCKET_BAD_PORT'],
  ['object port not integer', { host: '127.0.0.1', port: 1.5 }, 'ERR_SOCKET_BAD_PORT'],
]
for (const [name, address, code] of addressCases) {
  test(`address: ${name} is ${code}`, async (t) => {
    const err = await t.throwsAsync(listen({ address } as ListenOptions), { code })
    t.true(['address', 'address.port', 'port'].includes((err as { option?: string }).option ?? ''))
  })
}

test('an unknown option is refused (a typo never passes silently)', async (t) => {
  await rejects(t, { ...base, reuseport: true }, 'reuseport', TypeError, 'ERR_INVALID_ARG_VALUE')
})

test('options must be an object', async (t) => {
  const err = await t.throwsAsync(listen('opts' as unknown as ListenOptions), {
    code: 'ERR_INVALID_ARG_TYPE',
    instanceOf: TypeError,
  })
  t.is(err?.message, `The "options" argument must be of type object. Received type string ('opts')`)
})

test('shutdown timeout must be a number', async (t) => {
  const server = await listen({ ...base })
  t.teardown(() => server.halt())
  await t.throwsAsync(server.shutdown({ timeout: '1s' as unknown as number }), {
    code: 'ERR_INVALID_ARG_TYPE',
  })
  await t.throwsAsync(server.shutdown({ timeout: -1 }), { code: 'ERR_OUT_OF_RANGE', instanceOf: RangeError })
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
