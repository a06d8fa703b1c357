// The test matrix: one row per test.
//
// kind 'wrk' (the default): wrk drives the server under test. `wrk` holds wrk's arguments except
//   duration, --latency, -s and the URL, which the harness adds. `bodySize` is the body every
//   answer carries (checked against wrk's byte count and by the probe). `gbps: true` also
//   reports bytes/s (req/s × bodySize).
// kind 'download': one big download through the server under test by clients/download.mjs,
//   `download.bytes` long (`download.quickBytes` with --quick), after one of `warmupBytes`.
// kind 'echo': clients/echo.mjs sends 64 KiB chunks on `echo.connections` connections for the
//   run's duration (after a warm-up as long as wrk's) and checks every byte echoed back; GB/s.
// kind 'idle': clients/idle.mjs opens `idle.connections` connections, one checked request each,
//   and holds them idle; the server's RSS growth over its settled baseline, per connection.
// `server` is passed to every variant: `bodySize`, `delay` (ms of async sleep before each
//   answer) and `sha` (bytes hashed per request, t7). `serverCores` lets the server use more
//   cores than the default one (taskset list, e.g. '0,1'); `baseline` names the variant this
//   test's ratios compare with when it is not node:net. `upstream` is a fixed server the variants forward to (node:net, started once per
//   round, on the client core). `file` is a file of `size` pattern bytes the harness writes once
//   per run and passes with --file.
// `variants` maps variant ids to the script (and a note on how it does the job) for this test;
//   without it every variant runs its default script. Variants without a script here skip it.
//
// Ids are the project plan's. t2 is the Go model's 1 kB keep-alive test (its seed README calls
// it "Test #1: Static 1kB content throughput test"; its later table row "1kB, keep-alive on").
// proxy-rps, proxy-gbps and static-1m are issue 5's forwarding tests; t5, t6, echo and idle-rss
// the rest of its list.

const MiB = 2 ** 20

// TLS: our server terminates TLS in Rust; Node's own choice is node:tls (the ratio's baseline).
// Bun and uWS terminate TLS on their event loop (BoringSSL / OpenSSL).
const TLS = {
  tcpserver: { script: 'servers/tcpserver-tls.mjs', how: '(rustls)' },
  'node-net': { script: 'servers/node-tls.mjs', label: 'node:tls' },
  bun: { script: 'servers/bun-listen-tls.mjs', how: '(tls)' },
  uws: { script: 'servers/uws-tls.mjs', label: 'uWS.js SSLApp' },
}

// Not node:http: it closes idle keep-alive connections after 5 s.
const PLAIN = {
  tcpserver: { script: 'servers/tcpserver.mjs' },
  'node-net': { script: 'servers/node-net.mjs' },
  bun: { script: 'servers/bun-listen.mjs' },
  uws: { script: 'servers/uws.mjs' },
}

// Issue 14's tests on two cores: our workers against one thread and node:cluster (the baseline).
const TWO_CORES = {
  tcpserver: { script: 'servers/tcpserver.mjs', how: '(one thread)' },
  'tcpserver-workers': { script: 'servers/tcpserver-workers.mjs' },
  'node-cluster': { script: 'servers/node-cluster.mjs' },
}

const PROXIES = {
  tcpserver: { script: 'servers/proxy-tcpserver.mjs', how: 'pipe()' },
  'node-net': { script: 'servers/proxy-node-net.mjs', how: 'socket.pipe()' },
}

export const tests = [
  {
    id: 't1',
    name: '1 kB, new connection per request',
    description: '100 concurrent clients, each request on a new connection (Connection: close), 1 kB body',
    kind: 'wrk',
    wrk: ['-t1', '-c100', '-H', 'Connection: close'],
    bodySize: 1024,
    server: { bodySize: 1024 },
  },
  {
    id: 't1.1',
    name: '1 kB over TLS, new connection per request',
    description: 'as t1, every connection a full TLS 1.3 handshake (ECDSA P-256), no resumption',
    kind: 'wrk',
    tls: true,
    wrk: ['-t1', '-c100', '-H', 'Connection: close'],
    bodySize: 1024,
    server: { bodySize: 1024 },
    variants: TLS,
  },
  {
    id: 't2',
    name: '1 kB keep-alive',
    description: '100 concurrent keep-alive connections, 1 kB body, one wrk thread',
    kind: 'wrk',
    wrk: ['-t1', '-c100'],
    bodySize: 1024,
    server: { bodySize: 1024 },
  },
  {
    id: 't2.1',
    name: '1 kB keep-alive over TLS',
    description: '100 concurrent keep-alive TLS connections, 1 kB body, one wrk thread',
    kind: 'wrk',
    tls: true,
    wrk: ['-t1', '-c100'],
    bodySize: 1024,
    server: { bodySize: 1024 },
    variants: TLS,
  },
  {
    id: 't5',
    name: '128 B keep-alive, 1 ms async work',
    description:
      '100 concurrent keep-alive connections, 128 B body, the handler awaits a 1 ms setTimeout promise before each answer',
    kind: 'wrk',
    wrk: ['-t1', '-c100'],
    bodySize: 128,
    server: { bodySize: 128, delay: 1 },
  },
  {
    id: 't6',
    name: '16 kB, new connection per request',
    description: 'as t1 with a 16 kB body: 100 concurrent clients, each request on a new connection',
    kind: 'wrk',
    wrk: ['-t1', '-c100', '-H', 'Connection: close'],
    bodySize: 16 * 1024,
    server: { bodySize: 16 * 1024 },
  },
  {
    id: 't7',
    name: '1 kB keep-alive, SHA-256 of 64 KiB per request, two cores',
    description:
      'the Go model’s -sha test: 64 keep-alive connections, every request hashes 64 KiB with SHA-256 on the handler’s thread and gets the hex digest; the server may use both cores (wrk shares core 1)',
    kind: 'wrk',
    wrk: ['-t1', '-c64'],
    bodySize: 64,
    server: { bodySize: 64, sha: 64 * 1024 },
    serverCores: '0,1',
    baseline: 'node-cluster',
    variants: TWO_CORES,
  },
  {
    id: 't2.2',
    name: '1 kB keep-alive, two cores',
    description:
      'as t2, with the server allowed both cores (wrk shares core 1): workers against node:cluster',
    kind: 'wrk',
    wrk: ['-t1', '-c100'],
    bodySize: 1024,
    server: { bodySize: 1024 },
    serverCores: '0,1',
    baseline: 'node-cluster',
    variants: TWO_CORES,
  },
  {
    id: 'proxy-rps',
    name: 'proxied 1 kB keep-alive',
    description:
      'wrk (100 keep-alive connections, one thread) → proxy under test → node:net responder (1 kB body); one upstream connection per client connection',
    kind: 'wrk',
    wrk: ['-t1', '-c100'],
    bodySize: 1024,
    upstream: { script: 'servers/node-net.mjs', bodySize: 1024 },
    variants: PROXIES,
  },
  {
    id: 'proxy-gbps',
    name: '1 GiB through a proxy',
    description:
      'one 1 GiB HTTP download (256 MiB with --quick) from a node:net server sending pattern bytes from memory, through the proxy under test, every byte checked by the client',
    kind: 'download',
    download: { bytes: 1024 * MiB, quickBytes: 256 * MiB, warmupBytes: 64 * MiB },
    upstream: { script: 'servers/upstream-blob.mjs' },
    variants: PROXIES,
  },
  {
    id: 'static-1m',
    name: 'static 1 MiB file',
    description:
      '100 concurrent keep-alive connections, one wrk thread; every answer is a head + a 1 MiB file',
    kind: 'wrk',
    wrk: ['-t1', '-c100'],
    bodySize: MiB,
    gbps: true,
    file: { size: MiB },
    variants: {
      tcpserver: { script: 'servers/static-tcpserver.mjs', how: 'sendFile()' },
      'node-net': { script: 'servers/static-node-net.mjs', how: 'createReadStream().pipe()' },
    },
  },
  {
    id: 'echo',
    name: 'echo, 64 KiB chunks',
    description:
      '4 connections, each sending 64 KiB chunks of pattern bytes as fast as the socket takes them and reading the echo back; every byte checked',
    kind: 'echo',
    echo: { connections: 4 },
    variants: {
      tcpserver: { script: 'servers/echo-tcpserver.mjs', how: 'receive → write()' },
      'node-net': { script: 'servers/echo-node-net.mjs', how: 'socket.pipe(socket)' },
    },
  },
  {
    id: 'idle-rss',
    name: '10,000 idle connections',
    description:
      'server RSS growth per connection while 10,000 keep-alive connections, each answered once (1 kB, checked), sit idle',
    kind: 'idle',
    idle: { connections: 10_000 },
    bodySize: 1024,
    server: { bodySize: 1024 },
    // With workers too: issue 14 bounds their cost per idle connection (≤ 1.1× one thread's).
    variants: { ...PLAIN, 'tcpserver-workers': { script: 'servers/tcpserver-workers.mjs' } },
  },
  {
    id: 'idle-held',
    name: '10,000 idle connections, 20 s later',
    description:
      'as idle-rss, with the RSS read after the connections sat idle 20 s more: what holding them costs once the garbage collectors gave back what the burst of connections grew',
    kind: 'idle',
    idle: { connections: 10_000, holdMs: 20_000 },
    bodySize: 1024,
    server: { bodySize: 1024 },
    // Not uWS.js: its HTTP app closes connections idle for 10 s.
    variants: { tcpserver: PLAIN.tcpserver, 'node-net': PLAIN['node-net'], bun: PLAIN.bun },
  },
]
