// The shared responder: pipelining, split requests, Connection: close.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { buildResponse, createResponder } from '../servers/responder.mjs'

const GET = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
const CLOSE = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
const response = buildResponse(1024)
const times = (n) => Buffer.concat(new Array(n).fill(response))

test('response is a 200 with a 1 kB body', () => {
  const text = response.toString('latin1')
  assert.ok(text.startsWith('HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: text/plain\r\n\r\n'))
  assert.equal(text.length - text.indexOf('\r\n\r\n') - 4, 1024)
})

test('one request, one response, connection stays open', () => {
  const { out, close } = createResponder()(Buffer.from(GET))
  assert.deepEqual(out, response)
  assert.equal(close, false)
})

test('pipelined requests get one buffer with every response', () => {
  const { out, close } = createResponder()(Buffer.from(GET + GET + GET))
  assert.deepEqual(out, times(3))
  assert.equal(close, false)
})

test('a request split at every position is answered once it is complete', () => {
  for (let cut = 1; cut < GET.length; cut++) {
    const respond = createResponder()
    const first = respond(Buffer.from(GET.slice(0, cut)))
    assert.equal(first.out, null, `cut ${cut}`)
    const second = respond(Buffer.from(GET.slice(cut) + GET))
    assert.deepEqual(second.out, times(2), `cut ${cut}`)
  }
})

test('a split chunk copy survives the transport reusing its buffer', () => {
  const respond = createResponder()
  const chunk = Buffer.from(GET.slice(0, 10))
  respond(chunk)
  chunk.fill(0)
  assert.deepEqual(respond(Buffer.from(GET.slice(10))).out, response)
})

test('Connection: close answers up to that request, then closes', () => {
  const { out, close } = createResponder()(Buffer.from(GET + CLOSE + GET))
  // The second answer announces the close, like node:http's.
  assert.deepEqual(out, Buffer.concat([times(1), buildResponse(1024, true)]))
  assert.match(out.toString('latin1'), /\r\nConnection: close\r\n\r\n/)
  assert.equal(close, true)
})

test('Connection header matching is case-insensitive and token-based', () => {
  const req = (value) => Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\n${value}\r\n\r\n`)
  assert.equal(createResponder()(req('CONNECTION: Close')).close, true)
  assert.equal(createResponder()(req('connection:close')).close, true)
  assert.equal(createResponder()(req('Connection: keep-alive, close')).close, true)
  assert.equal(createResponder()(req('Connection: keep-alive')).close, false)
  assert.equal(createResponder()(req('Connection: closed')).close, false)
  assert.equal(createResponder()(req('X-Connection: close')).close, false)
  assert.equal(createResponder()(req('X-Note: Connection: close')).close, false)
})

test('an endless request head closes the connection', () => {
  const { out, close } = createResponder()(Buffer.alloc(20_000, 'a'))
  assert.equal(out, null)
  assert.equal(close, true)
})
