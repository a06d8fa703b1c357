/**
 * tcpserver: an extremely fast TCP server for Node.js with a Rust core.
 *
 * @packageDocumentation
 */
export { Connection } from './connection.js'
export { type ErrorCode, isTcpServerError, type TcpServerError } from './errors.js'
export { listen } from './listen.js'
export type {
  AddressInfo,
  AddressInput,
  Handler,
  KeepAliveOptions,
  ListenOptions,
  ServerStats,
  ShutdownOptions,
  ShutdownResult,
} from './options.js'
export { Server } from './server.js'
