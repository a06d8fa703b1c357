// Static file server on our library: each request gets the head by write(), then the file by
// sendFile() (sendfile(2) on Linux), awaited before the next answer. Reads `--file path`.
import { statSync } from 'node:fs'
import { loadLibrary, serve } from './library.mjs'
import { serverOptions } from './options.mjs'
import { buildHead, createRequestSplitter } from './responder.mjs'

const { host, port, file } = serverOptions()
if (!file) throw new Error('static server needs --file path')
const head = buildHead(statSync(file).size, 'application/octet-stream')

async function handler(conn) {
  const split = createRequestSplitter()
  for await (const chunk of conn) {
    const { count, close } = split(chunk)
    for (let i = 0; i < count; i++) {
      conn.write(head)
      await conn.sendFile(file)
    }
    if (close) return
  }
}

// Handler errors are counted by serve(): peer resets mid-file at the end of a run are expected.
const library = await loadLibrary()
if (library) await serve(library, { host, port, handler })
