// The proxy variants over real sockets: HTTP through them to the node:net responder (pipelined,
// split, Connection: close passed on), and a download checked byte by byte. A variant that is not
// available here (e.g. the library is not built) is skipped.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { runDownload } from '../lib/download.mjs'
import { probe } from '../lib/probe.mjs'
import { startServer, UnavailableError } from '../lib/server-process.mjs'
import { tests } from '../lib/tests.mjs'
import { variantsFor } from '../lib/variants.mjs'

const GET = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
const CLOSE = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
const proxyRps = tests.find((t) => t.id === 'proxy-rps')
const proxyGbps = tests.find((t) => t.id === 'proxy-gbps')

/** Starts `upstreamScript`, then the proxy in front of it; null if the proxy is unavailable. */
async function startPair(t, variant, upstreamScript, bodySize) {
  const upstream = await startServer({ id: 'upstream', script: upstreamScript }, { bodySize }, 0)
  try {
    const proxy = await startServer(variant, { upstream: `127.0.0.1:${upstream.port}` }, 0)
    return { upstream, proxy }
  } catch (err) {
    await upstream.stop()
    if (err instanceof UnavailableError) {
      t.skip(err.message.split('\n')[0])
      return null
    }
    throw err
  }
}

async function exchange(port, parts) {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const closed = once(socket, 'close')
  const chunks = []
  socket.on('data', (c) => chunks.push(c))
  for (const part of parts) {
    socket.write(part)
    await sleep(50)
  }
  await closed
  return Buffer.concat(chunks).toString('latin1')
}

for (const variant of variantsFor(proxyRps)) {
  test(`${variant.id} proxy: requests pass through, Connection: close too, nothing left open`, async (t) => {
    const pair = await startPair(t, variant, proxyRps.upstream.script, 1024)
    if (!pair) return
    try {
      const text = await exchange(pair.proxy.port, [GET + GET, GET.slice(0, 7), GET.slice(7), CLOSE])
      assert.equal(text.split('HTTP/1.1 200 OK').length - 1, 4)
      assert.ok(text.endsWith('x'.repeat(1024)), 'last body complete')
      assert.deepEqual(await probe(pair.proxy.port, Buffer.alloc(1024, 'x')), [])
      await sleep(200) // the probe's close reaches the proxy
    } finally {
      await pair.proxy.stop()
      await pair.upstream.stop()
    }
    const stats = pair.proxy.stats()
    assert.ok(stats, 'the proxy printed its stats when stopped')
    assert.equal(stats.active, 0, 'no client connection left open')
  })

  test(`${variant.id} proxy: a download arrives whole and in order`, async (t) => {
    const pair = await startPair(t, variant, proxyGbps.upstream.script)
    if (!pair) return
    try {
      const bytes = 5_000_000 + 7 // several pattern blocks, not a multiple of any buffer
      const result = await runDownload({ core: 0, port: pair.proxy.port, bytes })
      assert.deepEqual(result.errors, [])
      assert.equal(result.bytes, bytes)
    } finally {
      await pair.proxy.stop()
      await pair.upstream.stop()
    }
    const dataPath = pair.proxy.stats()?.dataPath
    if (dataPath) assert.equal(dataPath.pipesSpliced + dataPath.pipesCopied, 1, 'one pipe() per client')
  })
}
