// The echo variants with the real client (every byte checked, every connection closed by the
// server after the client's FIN), and that the check catches a short, wrong or unclosed echo.
// A variant that is not available here (e.g. the library is not built) is skipped.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkEcho, runEcho } from '../lib/echo.mjs'
import { startServer, UnavailableError } from '../lib/server-process.mjs'
import { tests } from '../lib/tests.mjs'
import { variantsFor } from '../lib/variants.mjs'

const echoTest = tests.find((t) => t.id === 'echo')

for (const variant of variantsFor(echoTest)) {
  test(`${variant.id} echo: every byte back on every connection, then closed`, async (t) => {
    let server
    try {
      server = await startServer(variant, {}, 0)
    } catch (err) {
      if (err instanceof UnavailableError) return t.skip(err.message.split('\n')[0])
      throw err
    }
    let result
    try {
      result = await runEcho({ core: 0, port: server.port, connections: 3, seconds: 0.3 })
    } finally {
      await server.stop()
    }
    assert.deepEqual(result.errors, [])
    assert.equal(result.connections.length, 3)
    assert.ok(result.bytes > 0)
    assert.equal(
      result.bytes,
      result.connections.reduce((sum, c) => sum + c.sent, 0),
    )
    assert.equal(server.stats()?.active ?? 0, 0, 'no connection left open')
  })
}

test('the echo check catches short, wrong, unclosed and failed connections', () => {
  const ok = { sent: 65536, received: 65536, mismatchAt: -1, error: null, closed: true }
  assert.deepEqual(checkEcho({ bytes: 65536, seconds: 1, connections: [ok], error: null }, 1), [])
  const bad = [
    { ...ok, received: 1000 },
    { ...ok, mismatchAt: 42 },
    { ...ok, closed: false },
    { ...ok, error: 'ECONNRESET' },
  ]
  const errors = checkEcho({ bytes: 1, seconds: 1, connections: bad, error: 'timeout' }, 5)
  assert.deepEqual(errors, [
    'client: timeout',
    '4 connections reported, expected 5',
    'connection 1: 1000 bytes echoed of 65536 sent',
    'connection 2: echo differs from what was sent at byte 42',
    'connection 3: not closed by the server after the client’s FIN',
    'connection 4: error ECONNRESET',
  ])
})
