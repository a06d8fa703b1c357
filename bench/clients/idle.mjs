// The idle test's client: `node clients/idle.mjs PORT CONNECTIONS BODY_SIZE` opens CONNECTIONS
// connections to 127.0.0.1:PORT, sends one GET on each and checks its answer (status 200,
// Content-Length, every body byte), then leaves them open and idle. It prints
// `{"answered":N,"failed":N,"problems":{…}}` once every connection was answered or failed, then
// waits for `close` on stdin, closes every connection (FIN), waits until the server closed each
// and prints `{"closed":N,"closedEarly":N,"problems":{…}}`. `closedEarly` counts connections the
// server closed while they were idle. Run it with the open-files limit raised.
import net from 'node:net'
import { createInterface } from 'node:readline'

/** Connects in flight at once: well under the servers' listen backlogs (511). */
const PARALLEL = 256
const CLOSE_TIMEOUT_MS = 20_000
const GET = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')

const port = Number(process.argv[2])
const count = Number(process.argv[3])
const bodySize = Number(process.argv[4] ?? 1024)
if (!Number.isInteger(port) || !Number.isInteger(count) || count < 1 || !Number.isInteger(bodySize)) {
  console.error('usage: node clients/idle.mjs PORT CONNECTIONS BODY_SIZE')
  process.exit(2)
}
const body = Buffer.alloc(bodySize, 'x')

const problems = {} // reason → connections
const note = (reason) => {
  problems[reason] = (problems[reason] ?? 0) + 1
}
const open = [] // { socket, closed } of every answered connection
let closing = false
let closedEarly = 0

let next = 0
let failed = 0
await Promise.all(Array.from({ length: Math.min(PARALLEL, count) }, worker))
print({ answered: open.length, failed, problems })

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === 'close') break
}
closing = true
for (const c of open) c.socket.end()
const all = Promise.all(open.map((c) => c.closed))
const timeout = new Promise((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref())
await Promise.race([all, timeout])
const stillOpen = open.filter((c) => !c.socket.closed).length
if (stillOpen) note(`${stillOpen} not closed by the server within ${CLOSE_TIMEOUT_MS} ms of the FIN`)
print({ closed: open.length - stillOpen, closedEarly, problems })
process.exit(0)

async function worker() {
  while (next < count) {
    next++
    const problem = await connectAndAsk()
    if (problem) {
      failed++
      note(problem)
    }
  }
}

/** One connection, one checked request; resolves to a problem, or null once it idles. */
function connectAndAsk() {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true })
    let buf = Buffer.alloc(0)
    let answered = false
    const fail = (problem) => {
      if (answered) return
      answered = true
      socket.destroy()
      resolve(problem)
    }
    socket.on('connect', () => socket.write(GET))
    socket.on('data', (chunk) => {
      if (answered) return note('bytes while idle')
      buf = Buffer.concat([buf, chunk])
      const end = buf.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = buf.subarray(0, end).toString('latin1')
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? -1)
      if (buf.length < end + 4 + length) return
      if (!head.startsWith('HTTP/1.1 200 ')) return fail(`status line ${head.split('\r\n')[0]}`)
      if (length !== bodySize) return fail(`Content-Length ${length}, expected ${bodySize}`)
      if (buf.length !== end + 4 + length) return fail('bytes after the answer')
      if (!buf.subarray(end + 4).equals(body)) return fail('body differs')
      answered = true
      buf = null
      const closed = new Promise((done) => socket.once('close', done))
      open.push({ socket, closed })
      resolve(null)
    })
    socket.on('error', (err) => {
      if (answered) note(`error while idle: ${err.code ?? err.message}`)
      else fail(err.code ?? err.message)
    })
    socket.on('close', () => {
      if (!answered) fail('closed before the answer')
      else if (!closing) closedEarly++
    })
  })
}

function print(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}
