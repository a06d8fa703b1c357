// The wrk report parser, and that an unclean run is detected.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { checkBytes, parseWrk, wrkConnections } from '../lib/wrk.mjs'

const CLEAN = `Running 3s test @ http://127.0.0.1:40000/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  312.45us   9.87ms   91.20%
    Req/Sec    47.95k     1.20k   50.11k    74.00%
  Latency Distribution
     50%    2.05ms
     75%    2.20ms
     90%    2.40ms
     99%    3.10ms
  143120 requests in 3.00s, 155.70MB read
Requests/sec:  47706.51
Transfer/sec:     51.90MB
`

const DIRTY = `Running 10s test @ http://127.0.0.1:40000/
  1 threads and 100 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   850.00us    1.02ms   1.20s    99.10%
    Req/Sec    60.01k     3.00k   65.00k    80.00%
  Latency Distribution
     50%  812.00us
     75%    0.90ms
     90%    1.00ms
     99%    1.21s
  600100 requests in 10.00s, 650.00MB read
  Socket errors: connect 0, read 12, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  60008.12
Transfer/sec:     65.00MB
`

test('clean run: numbers in ms, no errors', () => {
  const r = parseWrk(CLEAN)
  assert.equal(r.requests, 143120)
  assert.equal(r.seconds, 3)
  assert.equal(r.rps, 47706.51)
  assert.deepEqual(r.latency, { p50: 2.05, p99: 3.1 })
  assert.equal(r.non2xx, 0)
  assert.deepEqual(r.errors, [])
})

test('socket errors and non-2xx make the run invalid', () => {
  const r = parseWrk(DIRTY)
  assert.deepEqual(r.socketErrors, { connect: 0, read: 12, write: 0, timeout: 3 })
  assert.equal(r.non2xx, 7)
  assert.equal(r.latency.p50, 0.812)
  assert.equal(r.latency.p99, 1210)
  assert.deepEqual(r.errors, ['socket errors: read 12, timeout 3', 'non-2xx or 3xx responses: 7'])
})

test('garbage is invalid, not zero', () => {
  const r = parseWrk('unable to connect to 127.0.0.1:1 Connection refused\n')
  assert.equal(r.rps, null)
  assert.deepEqual(r.errors, ['unparsable wrk output'])
})

test('the exact byte count from wrk-report.lua is read and checked', () => {
  const r = parseWrk(`${CLEAN}Bytes read: 163266976\n`)
  assert.equal(r.bytes, 163266976)
  const bench = { bodySize: 1024, connections: 100 }
  assert.deepEqual(checkBytes(r, bench), [])
  assert.match(checkBytes({ ...r, bytes: 1000 }, bench)[0], /fewer than 143120 bodies/)
  assert.match(checkBytes({ ...r, bytes: 10 ** 10 }, bench)[0], /more than/)
  assert.deepEqual(checkBytes(parseWrk(CLEAN), bench), ['no byte count from wrk'])
})

test('connection count from wrk arguments', () => {
  assert.equal(wrkConnections(['-t1', '-c100']), 100)
  assert.equal(wrkConnections(['-c', '7']), 7)
  assert.equal(wrkConnections(['--connections', '3']), 3)
  assert.equal(wrkConnections(['-t1']), 10)
})
