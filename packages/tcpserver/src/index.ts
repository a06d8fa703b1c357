/**
 * tcpserver: an extremely fast TCP server for Node.js with a Rust core.
 *
 * @packageDocumentation
 */
export { connect } from './connect.js'
export { Connection } from './connection.js'
export { type ErrorCode, isTcpServerError, type TcpServerError } from './errors.js'
export { listen } from './listen.js'
export type {
  AddressInfo,
  AddressInput,
  ChunkCallback,
  ConnectOptions,
  ConnectTlsOptions,
  DataPathStats,
  Handler,
  KeepAliveOptions,
  ListenOptions,
  PeerCertificate,
  PemInput,
  PipeOptions,
  PipeResult,
  SendFileOptions,
  ServerStats,
  ShutdownOptions,
  ShutdownResult,
  SniCertificate,
  TlsInfo,
  TlsOptions,
  WorkerStats,
} from './options.js'
export { proxyHeader } from './proxy-header.js'
export { Server } from './server.js'
export { ConnectionDuplex, type ConnectionDuplexOptions, type StreamedConnection } from './streams.js'
