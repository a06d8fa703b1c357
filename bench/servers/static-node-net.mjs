// Static file server on node:net: each request gets the head by socket.write(), then the file by
// `fs.createReadStream(path).pipe(socket, { end: false })`; the next answer starts at the
// stream's end. Reads `--file path`.
import { createReadStream, statSync } from 'node:fs'
import net from 'node:net'
import { announceReady, reportStatsOnExit, serverOptions } from './options.mjs'
import { buildHead, createRequestSplitter } from './responder.mjs'

const { host, port, file } = serverOptions()
if (!file) throw new Error('static server needs --file path')
const head = buildHead(statSync(file).size, 'application/octet-stream')

const errors = {} // by code; peer resets mid-file at the end of a run are expected
let open = 0

const server = net.createServer({ noDelay: true }, (socket) => {
  open++
  const split = createRequestSplitter()
  let waiting = 0 // requests not answered yet
  let closing = false
  let current = null // the file stream being sent

  const next = () => {
    if (current !== null || socket.destroyed) return
    if (waiting === 0) {
      if (closing) socket.end()
      return
    }
    waiting--
    socket.write(head)
    current = createReadStream(file)
    current.on('error', (err) => socket.destroy(err))
    current.on('end', () => {
      current = null
      next()
    })
    current.pipe(socket, { end: false })
  }

  socket.on('data', (chunk) => {
    if (closing) return
    const { count, close } = split(chunk)
    waiting += count
    closing = close
    next()
  })
  socket.on('error', (err) => {
    errors[err.code ?? err.message] = (errors[err.code ?? err.message] ?? 0) + 1
  })
  socket.on('close', () => {
    open--
    current?.destroy() // unpiped by the close; release its descriptor
  })
})

reportStatsOnExit(() => ({ active: open, handlerErrors: errors, rss: process.memoryUsage().rss }))
server.listen(port, host, () => announceReady(server.address().port))
