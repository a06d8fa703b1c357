// The certificate both TLS variants serve: the test PKI's ECDSA P-256 localhost certificate.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const file = (name) => fileURLToPath(new URL(`../../__test__/fixtures/tls/${name}`, import.meta.url))

export const certPath = file('server.crt')
export const keyPath = file('server.key')
export const cert = readFileSync(certPath)
export const key = readFileSync(keyPath)
