// The static file variants over real sockets: every answer is the head plus the whole file, in
// order, for pipelined requests and up to a Connection: close. A variant that is not available
// here (e.g. the library is not built) is skipped.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { test } from 'node:test'
import { writeTestFiles } from '../lib/files.mjs'
import { probe } from '../lib/probe.mjs'
import { startServer, UnavailableError } from '../lib/server-process.mjs'
import { tests } from '../lib/tests.mjs'
import { variantsFor } from '../lib/variants.mjs'
import { patternBytes } from '../servers/pattern.mjs'
import { buildHead } from '../servers/responder.mjs'

const GET = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
const CLOSE = 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
const staticTest = tests.find((t) => t.id === 'static-1m')

for (const variant of variantsFor(staticTest)) {
  test(`${variant.id} static: head + whole file per request, in order, then close`, async (t) => {
    const files = writeTestFiles([staticTest])
    let server
    try {
      server = await startServer(variant, { file: files.path(staticTest.id) }, 0)
    } catch (err) {
      files.remove()
      if (err instanceof UnavailableError) return t.skip(err.message.split('\n')[0])
      throw err
    }
    try {
      const body = patternBytes(staticTest.file.size)
      const answer = Buffer.concat([buildHead(body.length, 'application/octet-stream'), body])

      const socket = net.connect(server.port, '127.0.0.1')
      const chunks = []
      socket.on('data', (c) => chunks.push(c))
      socket.write(GET + GET + CLOSE) // pipelined: three answers, then the server closes
      await once(socket, 'close')
      assert.deepEqual(Buffer.concat(chunks), Buffer.concat([answer, answer, answer]))

      assert.deepEqual(await probe(server.port, body), [])
    } finally {
      await server.stop()
      files.remove()
    }
  })
}
