// The test matrix: one row per test. `wrk` holds wrk's arguments except duration, --latency and
// the URL, which the harness adds; `server` is passed to every server variant.
//
// Ids are the project plan's. t2 is the Go model's 1 kB keep-alive test (its seed README calls
// it "Test #1: Static 1kB content throughput test"; its later table row "1kB, keep-alive on").

export const tests = [
  {
    id: 't2',
    name: '1 kB keep-alive',
    description: '100 concurrent keep-alive connections, 1 kB body, one wrk thread',
    wrk: ['-t1', '-c100'],
    server: { bodySize: 1024 },
  },
  // Next rows, for example:
  // { id: 't1', name: '1 kB new connection per request', wrk: ['-t1', '-c100', '-H', 'Connection: close'], server: { bodySize: 1024 } },
  // { id: 't5', name: '16 kB keep-alive off', wrk: ['-t1', '-c100', '-H', 'Connection: close'], server: { bodySize: 16384 } },
]
