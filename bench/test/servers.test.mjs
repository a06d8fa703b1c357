// Every server variant over real sockets: pipelined, split and Connection: close requests.
// A variant that is not available here (e.g. the library is not built) is skipped.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startServer, UnavailableError } from '../lib/server-process.mjs'
import { variants } from '../lib/variants.mjs'

const GET = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
const CLOSE = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'

/** Sends `parts` with a pause between them, returns everything read until the server closes. */
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

const count200 = (text) => text.split('HTTP/1.1 200 OK').length - 1

// The second run is t5's server: an async sleep before each answer must keep answers in order.
const settings = [{ bodySize: 1024 }, { bodySize: 128, delay: 20 }]

for (const variant of variants) {
  for (const options of settings) {
    const delayed = options.delay ? `, ${options.delay} ms async delay` : ''
    test(`${variant.id}${delayed}: pipelined, split and Connection: close requests`, async (t) => {
      let server
      try {
        server = await startServer(variant, options, 0)
      } catch (err) {
        if (err instanceof UnavailableError) return t.skip(err.message.split('\n')[0])
        throw err
      }
      try {
        // two pipelined requests in one write, one split in three writes, then a closing one
        const text = await exchange(server.port, [
          GET + GET,
          GET.slice(0, 7),
          GET.slice(7, 20),
          GET.slice(20),
          CLOSE,
        ])
        assert.equal(count200(text), 4)
        assert.equal(text.split(`Content-Length: ${options.bodySize}\r\n`).length - 1, 4)
        assert.ok(text.endsWith('x'.repeat(options.bodySize)), 'last body complete')
      } finally {
        await server.stop()
      }
    })
  }
}
