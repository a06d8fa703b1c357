// tls.sniCallback: certificates chosen at handshake time, sync or async, with the default
// certificate as the fallback (null, a throw, a rejection).

import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { portOf, serve, sleep, until, within } from './helpers/index.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url))
const DEFAULT = { cert: fixture('server.crt'), key: fixture('server.key') }
const OTHER = { cert: fixture('other.crt'), key: fixture('other.key') }

/** The CN of the certificate served for `servername` (undefined: no SNI at all). */
function servedCn(port: number, servername?: string): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const socket = tls.connect({
        port,
        host: '127.0.0.1',
        rejectUnauthorized: false,
        ...(servername === undefined ? {} : { servername }),
      })
      socket.once('secureConnect', () => {
        resolve(String(socket.getPeerCertificate().subject?.CN))
        // end(), not destroy(): the client's Finished must reach the server first.
        socket.end()
      })
      socket.once('error', reject)
    }),
    5000,
    'handshake',
  )
}

test('a sync callback picks the certificate by name; null means the default', async (t) => {
  const asked: Array<string | null> = []
  const server = await serve(t, {
    tls: {
      ...DEFAULT,
      sniCallback: (name) => {
        asked.push(name)
        return name === 'other.test' ? OTHER : null
      },
    },
  })
  t.is(await servedCn(portOf(server), 'other.test'), 'other.test')
  t.is(await servedCn(portOf(server), 'localhost'), 'localhost')
  t.is(await servedCn(portOf(server)), 'localhost', 'no SNI: the default')
  t.deepEqual(asked, ['other.test', 'localhost', null])
  // The server finishes a TLS 1.3 handshake a moment after the client does.
  await until(() => server.stats().tls.handshakes === 3, 5000, 'three handshakes')
})

test('an async callback is awaited; a throw or a rejection falls back to the default', async (t) => {
  const server = await serve(t, {
    tls: {
      ...DEFAULT,
      async sniCallback(name) {
        await sleep(20)
        if (name === 'boom.test') throw new Error('no certificate store today')
        if (name === 'reject.test') return Promise.reject(new Error('nope'))
        return name?.endsWith('.wild.test') ? OTHER : undefined
      },
    },
  })
  t.is(await servedCn(portOf(server), 'a.wild.test'), 'other.test')
  t.is(await servedCn(portOf(server), 'boom.test'), 'localhost')
  t.is(await servedCn(portOf(server), 'reject.test'), 'localhost')
  t.is(await servedCn(portOf(server), 'plain.test'), 'localhost')
})

test('a synchronous throw falls back to the default', async (t) => {
  const server = await serve(t, {
    tls: {
      ...DEFAULT,
      sniCallback: () => {
        throw new Error('sync failure')
      },
    },
  })
  t.is(await servedCn(portOf(server), 'other.test'), 'localhost')
})

test('setTlsConfig() replaces the callback for new handshakes', async (t) => {
  const server = await serve(t, { tls: { ...DEFAULT, sniCallback: () => null } })
  t.is(await servedCn(portOf(server), 'other.test'), 'localhost')
  server.setTlsConfig({ ...DEFAULT, sniCallback: () => OTHER })
  t.is(await servedCn(portOf(server), 'other.test'), 'other.test')
})

test('a certificate the callback returns that cannot be used fails only that handshake', async (t) => {
  const codes: string[] = []
  const server = await serve(t, {
    tls: {
      ...DEFAULT,
      sniCallback: (name) =>
        name === 'bad.test' ? { cert: fixture('server.crt'), key: fixture('other.key') } : null,
    },
    onTlsError: (e) => codes.push((e as Error & { code: string }).code),
  })
  await t.throwsAsync(servedCn(portOf(server), 'bad.test'))
  t.is(await servedCn(portOf(server), 'localhost'), 'localhost', 'the server serves on')
  t.deepEqual(codes, ['ERR_TCPSERVER_TLS_HANDSHAKE'])
  t.deepEqual(server.stats().tls.failures, { sni_callback_certificate: 1 })
})

test('sniCallback must be a function', async (t) => {
  const { listen } = await import('tcpserver-rs')
  const err = await t.throwsAsync(
    listen({ address: '127.0.0.1:0', tls: { ...DEFAULT, sniCallback: 'other' as never } }),
    { code: 'ERR_INVALID_ARG_TYPE' },
  )
  t.is((err as { option?: string }).option, 'tls.sniCallback')
})
