// An expired certificate still loads (clocks and clients may disagree), but listen() and
// setTlsConfig() warn once with a code.

import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { portOf, serve, within } from './helpers/index.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url))

function warnings(): { codes: string[]; stop(): void } {
  const codes: string[] = []
  const onWarning = (w: Error & { code?: string }): void => {
    codes.push(w.code ?? '')
  }
  process.on('warning', onWarning)
  return { codes, stop: () => process.off('warning', onWarning) }
}

test.serial('an expired certificate is served, with a TCPSERVER_CERT_EXPIRED warning', async (t) => {
  const seen = warnings()
  t.teardown(seen.stop)
  const server = await serve(t, {
    tls: { cert: fixture('expired.crt'), key: fixture('expired.key') },
    async handler(conn) {
      await conn.write('served')
    },
  })
  // process warnings are emitted on the next tick
  await new Promise((r) => setImmediate(r))
  t.true(seen.codes.includes('TCPSERVER_CERT_EXPIRED'))
  const client = tls.connect({ port: portOf(server), host: '127.0.0.1', rejectUnauthorized: false })
  const got = await within(
    new Promise<string>((resolve, reject) => {
      let text = ''
      client.on('data', (d: Buffer) => {
        text += d
      })
      client.on('end', () => resolve(text))
      client.on('error', reject)
    }),
    5000,
    'response',
  )
  t.is(got, 'served')
})

test.serial(
  'a valid certificate gives no warning, and setTlsConfig() warns about an expired one',
  async (t) => {
    const seen = warnings()
    t.teardown(seen.stop)
    const server = await serve(t, { tls: { cert: fixture('server.crt'), key: fixture('server.key') } })
    await new Promise((r) => setImmediate(r))
    t.deepEqual(seen.codes, [])
    server.setTlsConfig({ cert: fixture('expired.crt'), key: fixture('expired.key') })
    await new Promise((r) => setImmediate(r))
    t.deepEqual(seen.codes, ['TCPSERVER_CERT_EXPIRED'])
  },
)
