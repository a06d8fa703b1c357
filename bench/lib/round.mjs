// One measured round of one (test, variant): start, warm up, measure, stop.
import { setTimeout as sleep } from 'node:timers/promises'
import { busyPercent, coreTicks, processCpuSeconds, reapedChildrenCpuSeconds } from './cpu.mjs'
import { startServer } from './server-process.mjs'
import { parseWrk, runWrk } from './wrk.mjs'

export const SERVER_CORE = 0
export const CLIENT_CORE = 1
/** Busy % of a core not spent by the process pinned to it, above which a round is flagged. */
const OTHER_LOAD_LIMIT = 10
/** CPU % of wrk above which the client, not the server, may be the bottleneck. */
const CLIENT_BUSY_LIMIT = 95

/** Resolves to the round's record; throws UnavailableError if the server cannot start. */
export async function runRound({ test, variant, round, duration, warmup }) {
  const server = await startServer(variant, test, SERVER_CORE)
  const url = `http://127.0.0.1:${server.port}/`
  const record = { test: test.id, variant: variant.id, round, valid: false, errors: [], warnings: [] }
  try {
    await runWrk({ core: CLIENT_CORE, args: test.wrk, duration: warmup, url })

    const cpuBefore = processCpuSeconds(server.pid)
    const wrkCpuBefore = reapedChildrenCpuSeconds() // wrk is reaped before runWrk resolves
    const coresBefore = coreTicks()
    const t0 = process.hrtime.bigint()
    const output = await runWrk({ core: CLIENT_CORE, args: test.wrk, duration, url })
    const wall = Number(process.hrtime.bigint() - t0) / 1e9
    const coresAfter = coreTicks()
    const cpuAfter = processCpuSeconds(server.pid)
    const wrkCpuAfter = reapedChildrenCpuSeconds()

    const wrk = parseWrk(output)
    const serverCpuSeconds = cpuAfter - cpuBefore
    Object.assign(record, {
      rps: wrk.rps,
      requests: wrk.requests,
      seconds: wrk.seconds,
      latency: wrk.latency,
      socketErrors: wrk.socketErrors,
      non2xx: wrk.non2xx,
      serverCpuSeconds,
      cpuUsPerReq: wrk.requests ? (serverCpuSeconds * 1e6) / wrk.requests : null,
      serverCpuPercent: (100 * serverCpuSeconds) / wall,
      clientCpuPercent: (100 * (wrkCpuAfter - wrkCpuBefore)) / wall,
      coreBusy: {
        server: busyPercent(coresBefore, coresAfter, `cpu${SERVER_CORE}`),
        client: busyPercent(coresBefore, coresAfter, `cpu${CLIENT_CORE}`),
      },
      errors: [...wrk.errors],
      wrkOutput: output,
    })
    record.warnings = warnings(record)
  } catch (err) {
    record.errors.push(err.message)
  } finally {
    if (!server.alive()) record.errors.push(`server exited during the round: ${server.stderr().trim()}`)
    await server.stop()
    await sleep(500) // let the previous server's sockets go before the next variant starts
  }
  record.valid = record.errors.length === 0
  return record
}

/** Signs the round measured something other than the server alone (kept valid, but reported). */
function warnings({ coreBusy, serverCpuPercent, clientCpuPercent }) {
  const out = []
  const serverOther = coreBusy.server - serverCpuPercent
  const clientOther = coreBusy.client - clientCpuPercent
  if (serverOther > OTHER_LOAD_LIMIT) out.push(`server core ${serverOther.toFixed(0)}% busy with other work`)
  if (clientOther > OTHER_LOAD_LIMIT) out.push(`wrk core ${clientOther.toFixed(0)}% busy with other work`)
  if (clientCpuPercent > CLIENT_BUSY_LIMIT)
    out.push(`wrk used ${clientCpuPercent.toFixed(0)}% of its core (client-bound?)`)
  return out
}
