// The idle measurement with the real client, on a few connections: every connection answered and
// held, none closed while idle, RSS read before and after; and that a server closing idle
// connections makes it fail. A variant that is not available here is skipped.
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import { measureIdle } from '../lib/idle.mjs'
import { startServer, UnavailableError } from '../lib/server-process.mjs'
import { tests } from '../lib/tests.mjs'
import { variantsFor } from '../lib/variants.mjs'
import { buildResponse } from '../servers/responder.mjs'

const idleTest = tests.find((t) => t.id === 'idle-rss')
const CONNECTIONS = 40

for (const variant of variantsFor(idleTest)) {
  test(`${variant.id} idle: connections answered, held, closed at the end`, async (t) => {
    let server
    try {
      server = await startServer(variant, { bodySize: 1024 }, 0)
    } catch (err) {
      if (err instanceof UnavailableError) return t.skip(err.message.split('\n')[0])
      throw err
    }
    try {
      const r = await measureIdle({
        core: 0,
        pid: server.pid,
        port: server.port,
        connections: CONNECTIONS,
        bodySize: 1024,
      })
      assert.deepEqual(r.errors, [])
      assert.equal(r.answered, CONNECTIONS)
      assert.equal(r.held, CONNECTIONS)
      assert.ok(r.rssBaseline > 0 && r.rssLoaded > 0)
      assert.equal(r.bytesPerConn, (r.rssLoaded - r.rssBaseline) / CONNECTIONS)
    } finally {
      await server.stop()
    }
  })
}

/** measureIdle against an in-process node:net server that serves each connection with `serve`. */
async function measureAgainst(serve, connections) {
  const server = net.createServer(serve)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const port = server.address().port
    return await measureIdle({ core: 0, pid: process.pid, port, connections, bodySize: 1024 })
  } finally {
    server.close()
  }
}

test('a server that closes idle connections fails the measurement', async () => {
  const response = buildResponse(1024)
  const r = await measureAgainst((socket) => {
    socket.once('data', () => {
      socket.write(response)
      setTimeout(() => socket.destroy(), 50)
    })
  }, 5)
  assert.ok(
    r.errors.some((e) => /closed by the server while idle/.test(e)),
    r.errors.join('; '),
  )
})

test('a wrong answer fails the measurement', async () => {
  const r = await measureAgainst((socket) => socket.once('data', () => socket.write(buildResponse(1000))), 3)
  assert.ok(
    r.errors.some((e) => e.startsWith('3 connections failed: Content-Length 1000, expected 1024')),
    r.errors.join('; '),
  )
})

test('holdMs: the loaded reading comes after the connections sat idle that long, all still held', async () => {
  const response = buildResponse(1024)
  const server = net.createServer((socket) => socket.once('data', () => socket.write(response)))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const port = server.address().port
    const started = Date.now()
    const r = await measureIdle({
      core: 0,
      pid: process.pid,
      port,
      connections: 5,
      bodySize: 1024,
      holdMs: 1500,
    })
    assert.deepEqual(r.errors, [])
    assert.ok(r.held >= 5, `held ${r.held}`) // in-process: other tests' sockets count too
    assert.ok(Date.now() - started >= 1500, 'held before the reading')
  } finally {
    server.close()
  }
})
