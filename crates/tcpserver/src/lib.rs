#![doc = include_str!("../README.md")]
//!
//! # API map
//!
//! | you want to | use |
//! | --- | --- |
//! | configure listeners, socket options and limits | [`ServerConfig`], [`KeepAlive`], [`LimitPolicy`], [`ProxyProtocol`] |
//! | run a server with an async handler | [`Server::bind`], [`Connection`], [`ConnectionInfo`] |
//! | read counters, pause, shut down | [`Server::stats`] ([`Stats`]), [`Server::pause`], [`Server::shutdown`] ([`ShutdownReport`]), [`Server::halt`] |
//! | open outbound connections | [`connect`], [`ConnectOptions`] |
//! | parse `host:port` the way the npm package does | [`parse_address`], [`split_host_port`], [`address_from_parts`] |
//! | terminate or originate TLS | [`tls`]: [`tls::TlsSettings`], [`tls::TlsAcceptor`], [`tls::ClientTlsSettings`] |
//! | drive connections from another thread, zero-copy `pipe`/`send_file` | [`driver::Connections`] |
//! | classify failures | [`Error::kind`], [`Error::os_error`], [`Error::option`] |
//!
//! # Configuration and limits
//!
//! [`ServerConfig`] setters take `&mut self` and chain; nothing is checked until
//! [`ServerConfig::validate`], which [`Server::bind`] calls. An invalid value names its option
//! (in the npm package's spelling):
//!
//! ```
//! use std::time::Duration;
//! use tcpserver_core::{ErrorKind, KeepAlive, LimitPolicy, ServerConfig};
//!
//! let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
//! config
//!     .address("[::1]:0".parse().unwrap()) // several addresses per server
//!     .loops(2) // two SO_REUSEPORT sockets and accept loops per address
//!     .backlog(1024)
//!     .fast_open(256)
//!     .no_delay(true)
//!     .keep_alive(Some(KeepAlive { time: Some(Duration::from_secs(60)), ..Default::default() }))
//!     .max_connections(10_000)
//!     .limit_policy(LimitPolicy::Refuse) // full: accept and close, instead of holding
//!     .max_connections_per_ip(100, None) // IPv6 clients grouped by /64
//!     .max_accept_connections(1_000_000);
//! config.validate()?;
//! assert_eq!(config.effective_loops(), 2);
//!
//! config.max_connections_per_ip(100, Some(0));
//! let err = config.validate().unwrap_err();
//! assert!(matches!(err.kind(), ErrorKind::InvalidArgument(_)));
//! assert_eq!(err.option(), Some("maxConnectionsPerIp.ipv6Prefix"));
//! # Ok::<(), tcpserver_core::Error>(())
//! ```
//!
//! A per-address limit at work: the second connection from the same address is accepted and
//! closed at once, and counted.
//!
//! ```
//! use tokio::io::AsyncReadExt;
//! use tokio::net::TcpStream;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = tcpserver_core::ServerConfig::new("127.0.0.1:0".parse()?);
//! config.loops(1).max_connections_per_ip(1, None);
//! // Each handler holds its connection until the client closes it.
//! let server = tcpserver_core::Server::bind(&config, |mut conn| async move {
//!     let _ = conn.read(&mut [0u8; 1]).await;
//! })?;
//! let addr = server.local_addrs()[0];
//!
//! let _first = TcpStream::connect(addr).await?;
//! while server.active_connections() < 1 {
//!     tokio::task::yield_now().await;
//! }
//! let mut second = TcpStream::connect(addr).await?;
//! // Closed by the server: end of stream (or a reset).
//! assert!(matches!(second.read(&mut [0u8; 1]).await, Ok(0) | Err(_)));
//! assert_eq!(server.stats().refused_per_ip, 1);
//! server.halt().await;
//! # Ok(()) }
//! ```
//!
//! # Serving, counters and shutdown
//!
//! ```
//! use std::time::Duration;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use tokio::net::TcpStream;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Port 0: the kernel picks a free port; `local_addrs` tells which.
//! let config = tcpserver_core::ServerConfig::new("127.0.0.1:0".parse()?);
//! let server = tcpserver_core::Server::bind(&config, |mut conn| async move {
//!     let who = conn.info().peer_addr.clone();
//!     let _ = conn.write_all(format!("hello {who}\n").as_bytes()).await;
//!     // Returning closes the connection.
//! })?;
//!
//! let mut client = TcpStream::connect(server.local_addrs()[0]).await?;
//! let mut greeting = String::new();
//! client.read_to_string(&mut greeting).await?;
//! assert!(greeting.starts_with("hello 127.0.0.1:"));
//!
//! // Stop accepting now, wait up to a second for running handlers, then abort the rest.
//! let report = server.shutdown(Some(Duration::from_secs(1))).await;
//! assert_eq!(report.forced, 0);
//! assert_eq!(server.stats().accepted, 1);
//! assert!(!server.is_accepting());
//! # Ok(()) }
//! ```
//!
//! Handlers that hold long-lived connections can end them cleanly: [`Connection::draining`]
//! fires when a graceful shutdown begins, [`Connection::abort_signal`] when the deadline
//! passed (the handler's future is then dropped, which closes the connection).
//!
//! ```
//! use std::time::Duration;
//! use tokio::io::AsyncWriteExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = tcpserver_core::ServerConfig::new("127.0.0.1:0".parse()?);
//! let server = tcpserver_core::Server::bind(&config, |mut conn| async move {
//!     let draining = conn.draining().clone();
//!     tokio::select! {
//!         // A long-lived session (say, a subscription) that never ends by itself...
//!         () = std::future::pending::<()>() => {}
//!         // ...says goodbye when the server begins to shut down.
//!         () = draining.cancelled() => {
//!             let _ = conn.write_all(b"server going away\n").await;
//!         }
//!     }
//! })?;
//! let _client = tokio::net::TcpStream::connect(server.local_addrs()[0]).await?;
//! while server.active_connections() < 1 {
//!     tokio::task::yield_now().await;
//! }
//! let report = server.shutdown(Some(Duration::from_secs(5))).await;
//! assert_eq!((report.completed, report.forced), (1, 0));
//! # Ok(()) }
//! ```
//!
//! # Outbound connections
//!
//! [`connect`] returns the same [`Connection`] type, so a proxy is a handler that connects
//! upstream and copies both ways (`examples/proxy.rs`):
//!
//! ```
//! use tcpserver_core::{ConnectOptions, Server, ServerConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let upstream = Server::bind(&ServerConfig::new("127.0.0.1:0".parse()?), |_| async {})?;
//! let port = upstream.local_addrs()[0].port();
//! let opts = ConnectOptions {
//!     timeout: Some(std::time::Duration::from_secs(5)),
//!     ..Default::default()
//! };
//! // `id` and the abort token are the caller's: outbound connections belong to no server.
//! let conn = tcpserver_core::connect("127.0.0.1", port, &opts, 1, CancellationToken::new()).await?;
//! assert_eq!(conn.info().peer_addr.port(), Some(port));
//! # Ok(()) }
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod accept;
mod addr;
mod config;
mod connect;
mod connection;
pub mod driver;
mod error;
mod file;
mod gate;
mod inherited;
mod lease;
mod listener;
mod panic;
mod per_ip;
mod proxy_protocol;
mod server;
mod socket;
mod stats;
mod stream;
mod sys;
pub mod tls;
mod tls_io;
#[cfg(unix)]
mod unix_listener;

pub use addr::{
    Address, UNIX_PREFIX, address_from_parts, parse_address, parse_listen_address, split_host_port,
};
pub use config::{
    DEFAULT_IPV6_PREFIX, KeepAlive, LimitPolicy, MAX_HIGH_WATER_MARK, MAX_LOOPS, MAX_TIMEOUT,
    MIN_HIGH_WATER_MARK, PerIpLimit, ServerConfig, check_timeout, default_loops,
};
pub use connect::{ConnectOptions, connect, connect_unix};
pub use connection::{Connection, ConnectionInfo};
pub use driver::PipeOptions;
pub use error::{Error, ErrorKind, InvalidKind, Result};
pub use file::{dup_for_send, open_for_send};
pub use inherited::{SD_LISTEN_FDS_START, systemd_listen_fds};
pub use proxy_protocol::{Cidr, DEFAULT_HEADER_TIMEOUT, ProxyProtocol};
// For the fuzz targets in `crates/tcpserver/fuzz` only; not part of the API.
#[doc(hidden)]
pub use proxy_protocol::{crc32c, fuzz_header};
pub use server::{Server, ShutdownReport};
pub use socket::set_keep_alive;
pub use stats::Stats;
pub use stream::Stream;
