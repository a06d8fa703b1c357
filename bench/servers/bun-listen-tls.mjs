// Bun.listen with TLS (BoringSSL, on Bun's event loop) + the shared responder.
import { serveBun } from './bun-listen.mjs'

serveBun({ tls: true })
