// uWebSockets.js's SSLApp (OpenSSL/BoringSSL on uSockets) + an 'x' body, like uws.mjs.
import { serveUws } from './uws.mjs'

serveUws({ tls: true })
