// The PROXY protocol (v1 and v2) against a real HAProxy in front (`send-proxy`,
// `send-proxy-v2`): the handler sees the real client's address, the balancer is `proxiedBy`,
// TLS passes through after the header, maxConnectionsPerIp counts real clients. Hand-written
// headers cover what HAProxy never sends: untrusted sources, no header, garbage, a stall.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test, { type ExecutionContext } from 'ava'
import { type Connection, type ListenOptions, proxyHeader, type Server } from 'tcpserver-rs'
import { firstPort, run } from './helpers/cli.js'
import { collect, connect, portOf, serve, sleep, until, within } from './helpers/index.js'

const haveHaproxy = spawnSync('haproxy', ['-v']).status === 0
const tlsDir = fileURLToPath(new URL('./fixtures/tls/', import.meta.url))

/** Replies with who the server thinks the client is, then closes. */
async function whoAmI(conn: Connection): Promise<void> {
  await conn.read()
  const p = conn.proxiedBy
  await conn.write(`${conn.remoteAddress} ${conn.remotePort} via ${p?.address ?? 'none'}\n`)
}

/** A free TCP port on `host` (closed again; HAProxy binds it next). */
async function freePort(host: string): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((resolve) => s.listen(0, host, resolve))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

interface Frontend {
  bind: string
  sendProxy: 'send-proxy' | 'send-proxy-v2'
  /** More keywords for the `server` line, e.g. `proxy-v2-options crc32c`. */
  options?: string
}

/** Starts HAProxy (foreground, TCP mode) with one frontend per entry, each to `backendPort`. */
async function haproxy(t: ExecutionContext, backendPort: number, frontends: Frontend[]): Promise<number[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tcpserver-haproxy-'))
  const ports: number[] = []
  let cfg =
    'global\n  maxconn 256\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n'
  for (const [i, f] of frontends.entries()) {
    const port = await freePort(f.bind)
    ports.push(port)
    const bind = f.bind.includes(':') ? `[${f.bind}]` : f.bind
    cfg += `frontend f${i}\n  bind ${bind}:${port}\n  default_backend b${i}\n`
    cfg += `backend b${i}\n  server s 127.0.0.1:${backendPort} ${f.sendProxy} ${f.options ?? ''}\n`
  }
  writeFileSync(join(dir, 'haproxy.cfg'), cfg)
  const child: ChildProcess = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (d) => {
    stderr += d
  })
  t.teardown(() => {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  for (const [i, f] of frontends.entries()) {
    const deadline = Date.now() + 5000
    for (;;) {
      if (child.exitCode !== null) throw new Error(`haproxy exited: ${stderr}`)
      const up = await connect(ports[i] as number, f.bind).then(
        (s) => {
          s.destroy()
          return true
        },
        () => false,
      )
      if (up) break
      if (Date.now() > deadline)
        throw new Error(`haproxy is not listening on ${f.bind}:${ports[i]}: ${stderr}`)
      await sleep(20)
    }
  }
  return ports
}

/** One request through `host:port` from `localAddress`: the server's answer and the client's port. */
async function ask(
  host: string,
  port: number,
  localAddress: string,
): Promise<{ reply: string; localPort: number }> {
  const s = await new Promise<net.Socket>((resolve, reject) => {
    const c = net.connect({ host, port, localAddress }, () => resolve(c))
    c.once('error', reject)
  })
  const localPort = s.localPort as number
  const reply = collect(s)
  s.write('hi')
  return { reply: (await within(reply, 5000, 'reply')).toString(), localPort }
}

async function proxied(t: ExecutionContext, extra: Partial<ListenOptions> = {}): Promise<Server> {
  return serve(t, { handler: whoAmI, proxyProtocol: { trusted: ['127.0.0.1/32', '::1'] }, ...extra })
}

test('behind HAProxy send-proxy (v1) and send-proxy-v2, the handler sees the real client, IPv4 and IPv6', async (t) => {
  if (!haveHaproxy) return t.pass('skipped: haproxy is not installed (scripts/install-tools.sh installs it)')
  const server = await proxied(t)
  const [v1, v2, v1six, v2six] = await haproxy(t, portOf(server), [
    { bind: '127.0.0.1', sendProxy: 'send-proxy' },
    { bind: '127.0.0.1', sendProxy: 'send-proxy-v2' },
    { bind: '::1', sendProxy: 'send-proxy' },
    { bind: '::1', sendProxy: 'send-proxy-v2' },
  ])
  for (const [port, host, from] of [
    [v1, '127.0.0.1', '127.0.0.2'],
    [v2, '127.0.0.1', '127.0.0.3'],
    [v1six, '::1', '::1'],
    [v2six, '::1', '::1'],
  ] as const) {
    const { reply, localPort } = await ask(host, port as number, from)
    // The balancer connects from 127.0.0.1; the header names the client.
    t.is(reply, `${from} ${localPort} via 127.0.0.1\n`, `${host}:${port}`)
  }
  // The readiness probes went through HAProxy too: they add headers (or, cut short, `closed`).
  const stats = server.stats().proxyProtocol
  t.true(stats.headers >= 4)
  t.deepEqual(
    Object.keys(stats.failures).filter((r) => r !== 'closed'),
    [],
  )
})

test('TLS passes through HAProxy after the v2 header; maxConnectionsPerIp counts real clients', async (t) => {
  if (!haveHaproxy) return t.pass('skipped: haproxy is not installed')
  const held: Connection[] = []
  const server = await proxied(t, {
    tls: { cert: join(tlsDir, 'server.crt'), key: join(tlsDir, 'server.key') },
    maxConnectionsPerIp: 1,
    async handler(conn) {
      held.push(conn)
      await whoAmI(conn)
      await conn.read()
    },
  })
  const [port] = (await haproxy(t, portOf(server), [{ bind: '127.0.0.1', sendProxy: 'send-proxy-v2' }])) as [
    number,
  ]
  // The TCP socket first: `localAddress` picks the client's address.
  const open = async (localAddress: string): Promise<tls.TLSSocket> => {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port, localAddress }, () => resolve(c))
      c.once('error', reject)
    })
    return new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect(
        { socket, ca: readFileSync(join(tlsDir, 'ca.crt')), servername: 'localhost' },
        () => resolve(s),
      )
      s.once('error', reject)
    })
  }
  const line = (s: tls.TLSSocket) =>
    within(
      new Promise<string>((resolve) => {
        let got = ''
        s.on('data', (d) => {
          got += d
          if (got.endsWith('\n')) resolve(got)
        })
        s.on('close', () => resolve(got))
        s.on('error', () => {})
        s.write('hi')
      }),
      5000,
      'line',
    )
  const a = await open('127.0.0.2')
  t.is(await line(a), `127.0.0.2 ${a.localPort} via 127.0.0.1\n`)
  t.is(a.getProtocol(), 'TLSv1.3')
  // All connections come from HAProxy's 127.0.0.1; only the real clients' addresses count.
  const b = await open('127.0.0.3')
  t.is(await line(b), `127.0.0.3 ${b.localPort} via 127.0.0.1\n`)
  const c = await open('127.0.0.2').catch((e: unknown) => e)
  if (c instanceof tls.TLSSocket) t.is(await line(c), '', 'second connection of 127.0.0.2 refused')
  else t.truthy(c, 'second connection of 127.0.0.2 refused during the handshake')
  await until(() => server.stats().refusedBy.maxConnectionsPerIp === 1, 5000, 'per-IP refusal counted')
  for (const s of [a, b]) s.destroy()
})

/** A raw client that sends `bytes` and resolves with what came back before the close. */
async function raw(port: number, bytes: Buffer | string | null, host = '127.0.0.1'): Promise<string> {
  const s = await connect(port, host)
  s.on('error', () => {})
  const got = collect(s).catch(() => Buffer.alloc(0))
  if (bytes !== null) s.write(bytes)
  return (await within(got, 5000, 'server closes')).toString()
}

test('hand-written headers: v1 and v2 accepted; untrusted, missing, garbage and stalled headers refused by reason', async (t) => {
  const server = await proxied(t, { proxyProtocol: { trusted: ['127.0.0.1'], timeout: 200 } })
  const port = portOf(server)
  t.is(
    await raw(port, 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhi'),
    '192.0.2.1 56324 via 127.0.0.1\n',
  )
  // Header and data in separate segments, the header itself split.
  const s = await connect(port)
  const reply = collect(s)
  for (const part of ['PROX', 'Y TCP6 2001:db8::1 2001:db8::2 7 ', '8\r\n', 'hi']) {
    s.write(part)
    await sleep(20)
  }
  t.is((await within(reply, 5000, 'split header')).toString(), '2001:db8::1 7 via 127.0.0.1\n')
  const v2 = Buffer.concat([
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
    Buffer.from([0x21, 0x11, 0, 12, 203, 0, 113, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80]),
    Buffer.from('hi'),
  ])
  t.is(await raw(port, v2), '203.0.113.9 8080 via 127.0.0.1\n')
  // LOCAL (a health check): the socket's own addresses stay.
  const local = Buffer.concat([
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
    Buffer.from([0x20, 0, 0, 0]),
    Buffer.from('hi'),
  ])
  t.regex(await raw(port, local), /^127\.0\.0\.1 \d+ via 127\.0\.0\.1\n$/)

  t.is(await raw(port, 'GET / HTTP/1.1\r\n\r\n'), '', 'no header')
  t.is(await raw(port, 'PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\nhi'), '', 'bad port')
  t.is(await raw(port, `PROXY ${'x'.repeat(200)}`), '', 'too long')
  t.is(await raw(port, null), '', 'nothing sent: timeout')
  t.deepEqual(server.stats().proxyProtocol, {
    headers: 4,
    failures: { not_proxy: 1, malformed: 2, timeout: 1 },
  })

  // A source outside `trusted` is refused before anything is read.
  const strict = await proxied(t, { proxyProtocol: { trusted: ['10.0.0.0/8'] } })
  t.is(await raw(portOf(strict), 'PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nhi'), '')
  t.deepEqual(strict.stats().proxyProtocol.failures, { untrusted: 1 })
})

/** CRC-32C (Castagnoli), bit by bit: the test's own reference, independent of the server's. */
function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff
  for (const byte of data) {
    crc ^= byte
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1
  }
  return (crc ^ 0xffffffff) >>> 0
}

const tlv = (type: number, value: Buffer): Buffer =>
  Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), value])

/** A v2 PROXY TCP4 header for 203.0.113.9:8080 → 10.0.0.1:80 whose addresses are followed by `tlvs`. */
function v2With(tlvs: Buffer): Buffer {
  const addrs = Buffer.from([203, 0, 113, 9, 10, 0, 0, 1, 0x1f, 0x90, 0, 80])
  const len = addrs.length + tlvs.length
  return Buffer.concat([
    Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
    Buffer.from([0x21, 0x11, len >> 8, len & 0xff]),
    addrs,
    tlvs,
  ])
}

/** Fills the CRC32C TLV (the last 7 bytes of `header`) with the header's checksum. */
function sealed(header: Buffer): Buffer {
  const h = Buffer.from(header)
  h.writeUInt32BE(0, h.length - 4)
  h.writeUInt32BE(crc32c(h), h.length - 4)
  return h
}

test('PROXY v2 TLVs: an overrun, a stray trailing byte and a wrong CRC32C are refused (handler not called, counted); valid TLVs with a correct CRC32C pass', async (t) => {
  t.is(crc32c(Buffer.from('123456789')), 0xe3069283, "the reference's check value")
  let handled = 0
  const server = await proxied(t, {
    async handler(conn) {
      handled++
      await whoAmI(conn)
    },
  })
  const port = portOf(server)
  const hi = Buffer.from('hi')
  const alpn = tlv(0x01, Buffer.from('h2'))
  const ssl = tlv(0x20, Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), tlv(0x21, Buffer.from('TLSv1.3'))]))
  const good = sealed(
    v2With(
      Buffer.concat([
        alpn,
        tlv(0x02, Buffer.from('example.com')),
        tlv(0x05, Buffer.alloc(16, 7)),
        ssl,
        tlv(0x30, Buffer.from('ns1')),
        tlv(0xe0, Buffer.from('custom')),
        tlv(0x03, Buffer.alloc(4)),
      ]),
    ),
  )
  t.is(
    await raw(port, Buffer.concat([good, hi])),
    '203.0.113.9 8080 via 127.0.0.1\n',
    'valid TLVs, good CRC32C',
  )
  t.is(handled, 1)

  // The ALPN TLV says 10 bytes; 2 follow before the header ends.
  const overrun = v2With(Buffer.from([0x01, 0, 10, 0x68, 0x32]))
  t.is(await raw(port, Buffer.concat([overrun, hi])), '', 'TLV overruns the header')
  const trailing = v2With(Buffer.concat([alpn, Buffer.from([0])]))
  t.is(await raw(port, Buffer.concat([trailing, hi])), '', 'a stray byte after the TLVs')
  const badCrc = Buffer.from(good)
  badCrc[16] ^= 1 // 203.0.113.9 → 202.0.113.9: the checksum no longer matches
  t.is(await raw(port, Buffer.concat([badCrc, hi])), '', 'wrong CRC32C')
  t.is(handled, 1, 'the handler never saw the three bad headers')
  t.deepEqual(server.stats().proxyProtocol, { headers: 1, failures: { malformed: 2, bad_checksum: 1 } })
})

test('HAProxy send-proxy-v2 with proxy-v2-options crc32c: its checksum verifies, and a tampered copy of its header is refused', async (t) => {
  if (!haveHaproxy) return t.pass('skipped: haproxy is not installed')
  // First a plain node:net backend records the header HAProxy sends.
  const captured = new Promise<Buffer>((resolve) => {
    const tap = net.createServer((s) => {
      const chunks: Buffer[] = []
      s.on('data', (d: Buffer) => {
        chunks.push(d)
        const all = Buffer.concat(chunks)
        if (all.length >= 16 && all.length >= 16 + all.readUInt16BE(14)) {
          // The client's (from 127.0.0.4), not one of the readiness probes' (from 127.0.0.1).
          if (all.subarray(16, 20).equals(Buffer.from([127, 0, 0, 4])))
            resolve(all.subarray(0, 16 + all.readUInt16BE(14)))
          s.destroy()
        }
      })
      s.on('error', () => {})
    })
    tap.listen(0, '127.0.0.1', async () => {
      const tapPort = (tap.address() as net.AddressInfo).port
      const [front] = await haproxy(t, tapPort, [
        { bind: '127.0.0.1', sendProxy: 'send-proxy-v2', options: 'proxy-v2-options crc32c' },
      ])
      const c = net.connect({ host: '127.0.0.1', port: front as number, localAddress: '127.0.0.4' })
      c.on('error', () => {})
      c.write('hi')
    })
    t.teardown(() => {
      tap.close()
    })
  })
  const header = await within(captured, 10000, "HAProxy's header")
  // Addresses (12 bytes) then a CRC32C TLV (type 3, length 4).
  const at = header.indexOf(Buffer.from([0x03, 0, 4]), 28)
  t.true(at >= 28, `a CRC32C TLV in ${header.toString('hex')}`)
  const zeroed = Buffer.from(header)
  zeroed.writeUInt32BE(0, at + 3)
  t.is(header.readUInt32BE(at + 3), crc32c(zeroed), "HAProxy's checksum, by the test's reference")

  const server = await proxied(t)
  const port = portOf(server)
  t.regex(
    await raw(port, Buffer.concat([header, Buffer.from('hi')])),
    /^127\.0\.0\.4 \d+ via 127\.0\.0\.1\n$/,
  )
  const tampered = Buffer.from(header)
  tampered[19] ^= 1 // the source address's last byte: 127.0.0.4 → 127.0.0.5
  t.is(await raw(port, Buffer.concat([tampered, Buffer.from('hi')])), '', 'tampered header refused')
  t.deepEqual(server.stats().proxyProtocol.failures, { bad_checksum: 1 })

  // And end to end: HAProxy with crc32c in front of the server.
  const [front] = await haproxy(t, port, [
    { bind: '127.0.0.1', sendProxy: 'send-proxy-v2', options: 'proxy-v2-options crc32c' },
  ])
  const { reply, localPort } = await ask('127.0.0.1', front as number, '127.0.0.6')
  t.is(reply, `127.0.0.6 ${localPort} via 127.0.0.1\n`)
  t.deepEqual(
    Object.keys(server.stats().proxyProtocol.failures).filter((r) => r !== 'closed'),
    ['bad_checksum'],
  )
})

test('proxyProtocol options are validated', async (t) => {
  for (const [pp, option, code] of [
    [{ trusted: [] }, 'proxyProtocol.trusted', 'ERR_INVALID_ARG_VALUE'],
    [{ trusted: ['10.0.0.1/8'] }, 'proxyProtocol.trusted', 'ERR_INVALID_ARG_VALUE'],
    [{ trusted: ['not-an-ip'] }, 'proxyProtocol.trusted', 'ERR_INVALID_ARG_VALUE'],
    [{ trusted: 'x' }, 'proxyProtocol.trusted', 'ERR_INVALID_ARG_TYPE'],
    [{ trusted: ['::1'], timeout: 0 }, 'proxyProtocol.timeout', 'ERR_OUT_OF_RANGE'],
    [true, 'proxyProtocol', 'ERR_INVALID_ARG_TYPE'],
  ] as const) {
    const err = await t.throwsAsync(serve(t, { proxyProtocol: pp as never }))
    t.is((err as { code?: string }).code, code, JSON.stringify(pp))
    t.is((err as { option?: string }).option, option, JSON.stringify(pp))
  }
})

test('proxyHeader() v1 and v2 round-trip through a proxyProtocol listener (IPv4, IPv6, mapped, mixed)', async (t) => {
  const server = await proxied(t, { proxyProtocol: { trusted: ['127.0.0.1'] } })
  const port = portOf(server)
  const a = (address: string, p: number) => ({
    address,
    port: p,
    family: address.includes(':') ? ('IPv6' as const) : ('IPv4' as const),
  })
  for (const [src, dst, seen] of [
    [a('192.0.2.1', 1), a('198.51.100.2', 443), '192.0.2.1 1'],
    [a('2001:db8::1', 65535), a('2001:db8:0:0:1::2', 80), '2001:db8::1 65535'],
    [a('::ffff:203.0.113.5', 7), a('::ffff:10.0.0.1', 8), '203.0.113.5 7'],
    // Mixed families go as IPv6, the IPv4 side mapped (as a dual-stack socket shows it).
    [a('203.0.113.5', 7), a('fd00::1', 8), '::ffff:203.0.113.5 7'],
    [a('fe80::1:2:3:4', 9), a('::', 0), 'fe80::1:2:3:4 9'],
  ] as const) {
    for (const version of ['v1', 'v2'] as const) {
      const reply = await raw(port, Buffer.concat([proxyHeader(version, src, dst), Buffer.from('hi')]))
      t.is(reply, `${seen} via 127.0.0.1\n`, `${version} ${src.address} → ${dst.address}`)
    }
  }
  // The spec's v1 example, byte for byte.
  t.is(
    proxyHeader('v1', a('192.168.0.1', 56324), a('192.168.0.11', 443)).toString(),
    'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n',
  )
  t.is(
    proxyHeader('v2', a('192.168.0.1', 56324), a('192.168.0.11', 443)).toString('hex'),
    '0d0a0d0a000d0a515549540a2111000cc0a80001c0a8000bdc0401bb',
  )
  t.throws(() => proxyHeader('v3' as 'v1', src0, src0), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => proxyHeader('v1', a('example.com', 1), src0), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => proxyHeader('v1', a('1.2.3.4', 70000), src0), {
    code: 'ERR_SOCKET_BAD_PORT',
    instanceOf: RangeError,
  })
})
const src0 = { address: '127.0.0.1', port: 1, family: 'IPv4' as const }

test('CLI: proxy --proxy-protocol v2 tells the upstream the client; echo --accept-proxy sits behind HAProxy', async (t) => {
  // The upstream is a proxyProtocol listener that reports who it thinks the client is.
  const upstream = await proxied(t)
  const cli = run(t, [
    'proxy',
    '--listen',
    '127.0.0.1:0',
    '--upstream',
    `127.0.0.1:${portOf(upstream)}`,
    '--proxy-protocol',
    'v2',
  ])
  const port = await firstPort(cli, 'proxy')
  const { reply, localPort } = await ask('127.0.0.1', port, '127.0.0.2')
  t.is(reply, `127.0.0.2 ${localPort} via 127.0.0.1\n`)

  if (!haveHaproxy) return t.pass('haproxy part skipped: haproxy is not installed')
  const echo = run(t, ['echo', '--listen', '127.0.0.1:0', '--accept-proxy', '127.0.0.1/32'])
  const echoPort = await firstPort(echo, 'echo')
  const [front] = (await haproxy(t, echoPort, [{ bind: '127.0.0.1', sendProxy: 'send-proxy' }])) as [number]
  const s = await connect(front)
  const back = collect(s)
  s.end('through haproxy')
  t.is((await within(back, 5000, 'echo through haproxy')).toString(), 'through haproxy')
  t.is(await raw(echoPort, 'direct'), '', 'a direct client sends no header: refused')
})
