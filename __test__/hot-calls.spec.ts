// The per-request native calls (crates/tcpserver-node/src/hot_calls.rs) are plain N-API
// functions that read their arguments themselves: hostile arguments must give a typed error,
// never a crash, and a connection that is gone must be answered as the #[napi] methods did.
import { createRequire } from 'node:module'
import test from 'ava'
import { errCode } from './helpers/index.js'

type Binding = typeof import('../packages/tcpserver/binding.cjs')
const binding = createRequire(import.meta.url)('../packages/tcpserver/binding.cjs') as Binding

function calls() {
  return binding.createHub(() => {}).connections.hotCalls()
}

/** What a call threw (or `undefined`), as `{ code, message }`. */
function thrown(f: () => unknown): { code: unknown; message: string } | undefined {
  try {
    f()
    return undefined
  } catch (e) {
    return { code: errCode(e), message: (e as Error).message }
  }
}

test('hostile arguments are ERR_INVALID_ARG_TYPE naming the argument, for every call', (t) => {
  const c = calls() as unknown as Record<string, (...args: unknown[]) => unknown>
  const cases: Array<[string, unknown[], string]> = [
    ['write', [], 'arguments'],
    ['write', [1], 'arguments'],
    ['write', ['1', Buffer.from('x')], 'id'],
    ['write', [1, 'a string'], 'data'],
    ['write', [1, {}], 'data'],
    ['write', [1, new Uint16Array(4)], 'data'],
    ['write', [1, Object.create(Uint8Array.prototype)], 'data'],
    ['write', [1, new DataView(new ArrayBuffer(4))], 'data'],
    ['release', [null], 'id'],
    ['ack', [1, '5'], 'n'],
    ['readNow', [1, 'zero', Buffer.alloc(8)], 'delivered'],
    ['readNow', [1, 0, [1, 2, 3]], 'buf'],
  ]
  for (const [i, [name, args, arg]] of cases.entries()) {
    const e = thrown(() => c[name]?.(...args))
    t.is(e?.code, 'ERR_INVALID_ARG_TYPE', `case ${i}: ${name}`)
    t.true(e?.message.startsWith(`${arg}:`), `${name}: ${e?.message}`)
  }
})

test('a connection that is gone: write throws ERR_SOCKET_CLOSED, the others are no-ops', (t) => {
  const c = calls()
  t.is(thrown(() => c.write(12345, Buffer.from('x')))?.code, 'ERR_SOCKET_CLOSED')
  t.is(
    thrown(() => c.release(12345)),
    undefined,
  )
  t.is(
    thrown(() => c.ack(12345, 100)),
    undefined,
  )
  t.is(c.readNow(12345, 0, Buffer.alloc(16)), 0)
  // Empty views (no memory behind them) are fine too.
  t.is(thrown(() => c.write(12345, new Uint8Array(0)))?.code, 'ERR_SOCKET_CLOSED')
  t.is(c.readNow(12345, 0, new Uint8Array(0)), 0)
})
