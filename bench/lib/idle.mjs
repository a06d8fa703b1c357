// The idle-connections measurement: the server's resident memory when settled, then again while
// the idle client (clients/idle.mjs, pinned, open-files limit raised) holds N connections that
// were each answered once. Bytes per connection = (loaded RSS - baseline RSS) / N. With `holdMs`,
// the loaded reading is taken after the connections sat idle that long more: garbage collectors
// give back what the burst of connections grew only some seconds after it (V8's memory reducer
// shrinks its young generation about 10 s after the burst), which the first settled reading,
// right after the burst, still holds.
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnClient } from './client-process.mjs'
import { rssBytes, socketCount } from './cpu.mjs'
import { withOpenFileLimit } from './server-process.mjs'

const OPEN_TIMEOUT_MS = 60_000
const CLOSE_TIMEOUT_MS = 30_000
/** How long the server may take to show the client's connections among its descriptors. */
const SOCKETS_TIMEOUT_MS = 10_000
/** RSS is settled when `SETTLE_READINGS` readings `SETTLE_EVERY_MS` apart stay within `SETTLE_SPREAD`. */
const SETTLE_EVERY_MS = 250
const SETTLE_READINGS = 4
const SETTLE_SPREAD = 0.01
const SETTLE_MAX_MS = 10_000

/**
 * Measures `pid`'s RSS before and while `connections` idle connections are open. Resolves to
 * { connections, answered, held, rssBaseline, rssLoaded, bytesPerConn, settled, errors }.
 */
export async function measureIdle({ core, pid, port, connections, bodySize, holdMs = 0 }) {
  const errors = []
  const baseline = await settledRss(pid)
  const socketsBefore = socketCount(pid)
  const client = startClient({ core, port, connections, bodySize })
  try {
    const opened = await client.next(OPEN_TIMEOUT_MS)
    if (opened.failed) errors.push(`${opened.failed} connections failed: ${reasons(opened.problems)}`)
    const held = (await waitForSockets(pid, socketsBefore + opened.answered)) - socketsBefore
    if (held < opened.answered) errors.push(`the server holds ${held} of the ${opened.answered} connections`)
    let loaded = await settledRss(pid)
    if (holdMs > 0) {
      await sleep(holdMs)
      loaded = await settledRss(pid)
      const still = (socketCount(pid) ?? 0) - socketsBefore
      if (still < opened.answered)
        errors.push(`the server holds ${still} of the ${opened.answered} connections after ${holdMs} ms`)
    }
    client.send('close')
    const closed = await client.next(CLOSE_TIMEOUT_MS)
    if (closed.closedEarly) errors.push(`${closed.closedEarly} connections closed by the server while idle`)
    if (Object.keys(closed.problems).length) errors.push(`client: ${reasons(closed.problems)}`)
    return {
      connections,
      answered: opened.answered,
      held,
      rssBaseline: baseline.rss,
      rssLoaded: loaded.rss,
      bytesPerConn: (loaded.rss - baseline.rss) / connections,
      settled: baseline.settled && loaded.settled,
      errors,
    }
  } finally {
    client.kill()
  }
}

/** The RSS of `pid` once it stopped moving (or after SETTLE_MAX_MS): { rss, settled }. */
export async function settledRss(pid) {
  const readings = []
  const deadline = Date.now() + SETTLE_MAX_MS
  for (;;) {
    const rss = rssBytes(pid)
    if (rss === null) throw new Error('the server is gone')
    readings.push(rss)
    const last = readings.slice(-SETTLE_READINGS)
    const settled =
      last.length === SETTLE_READINGS && Math.max(...last) - Math.min(...last) <= SETTLE_SPREAD * rss
    if (settled || Date.now() >= deadline) return { rss, settled }
    await sleep(SETTLE_EVERY_MS)
  }
}

/** Polls `pid`'s sockets until there are `want` (or the time is up); resolves to the last count. */
async function waitForSockets(pid, want) {
  const deadline = Date.now() + SOCKETS_TIMEOUT_MS
  for (;;) {
    const now = socketCount(pid) ?? 0
    if (now >= want || Date.now() >= deadline) return now
    await sleep(100)
  }
}

/** `taskset -c CORE node clients/idle.mjs PORT N BODY_SIZE`, read one JSON line at a time. */
function startClient({ core, port, connections, bodySize }) {
  const { child, stderr } = spawnClient({
    core,
    script: 'idle.mjs',
    args: [port, connections, bodySize],
    stdin: 'pipe',
    wrap: withOpenFileLimit,
  })
  child.stdin.on('error', () => {}) // a client that died is reported by next()
  const exited = once(child, 'close')
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  return {
    async next(timeoutMs) {
      let timer
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`idle client: no report within ${timeoutMs} ms`)),
          timeoutMs,
        )
      })
      try {
        const { value, done } = await Promise.race([lines.next(), timeout])
        if (done) {
          const [code, signal] = await exited
          throw new Error(
            `idle client exited (code ${code}, signal ${signal}): ${stderr().trim().slice(0, 500)}`,
          )
        }
        return JSON.parse(value)
      } finally {
        clearTimeout(timer)
      }
    },
    send: (line) => child.stdin.write(`${line}\n`),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}

function reasons(problems) {
  return Object.entries(problems)
    .map(([reason, n]) => `${reason} (${n})`)
    .join(', ')
}
