//! # tcpserver
//!
//! A fast TCP server core on Tokio: several accept loops per address on `SO_REUSEPORT`
//! sockets, TCP tuning (`TCP_FASTOPEN`, `TCP_DEFER_ACCEPT`, `TCP_NODELAY`, keep-alive),
//! connection limits, one handler per connection (closed when it completes), counters, and a
//! graceful shutdown with a deadline. It is the core of the `tcpserver` npm package and a
//! plain Rust crate of its own.
//!
//! ```no_run
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! #[tokio::main]
//! async fn main() -> tcpserver::Result<()> {
//!     let mut config = tcpserver::ServerConfig::new("[::1]:0".parse().unwrap());
//!     config.loops(2).fast_open(256);
//!     let server = tcpserver::Server::bind(&config, |mut conn| async move {
//!         let mut buf = vec![0; 16 * 1024];
//!         while let Ok(n @ 1..) = conn.read(&mut buf).await {
//!             if conn.write_all(&buf[..n]).await.is_err() { break }
//!         }
//!     })?;
//!     println!("echo on {:?}", server.local_addrs());
//!     tokio::signal::ctrl_c().await.ok();
//!     server.shutdown(Some(std::time::Duration::from_secs(10))).await;
//!     Ok(())
//! }
//! ```
//!
//! [`driver`] offers an event-mode connection for front ends on another thread (bindings):
//! credit-based reads into a caller-provided batch buffer and synchronous writes.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod accept;
mod addr;
mod config;
mod connect;
mod connection;
pub mod driver;
mod error;
mod file;
mod forward;
mod inherited;
mod listener;
mod per_ip;
mod proxy_protocol;
mod server;
mod stats;
mod sys;
pub mod tls;

pub use addr::{address_from_parts, parse_address, split_host_port};
pub use config::{
    DEFAULT_IPV6_PREFIX, KeepAlive, LimitPolicy, MAX_LOOPS, PerIpLimit, ServerConfig, default_loops,
};
pub use connect::{ConnectOptions, connect};
pub use connection::{Connection, ConnectionInfo};
pub use error::{Error, ErrorKind, InvalidKind, Result};
pub use file::{dup_for_send, open_for_send};
pub use forward::PipeOptions;
pub use inherited::{SD_LISTEN_FDS_START, systemd_listen_fds};
pub use proxy_protocol::{Cidr, DEFAULT_HEADER_TIMEOUT, ProxyProtocol};
pub use server::{Server, ShutdownReport, set_keep_alive};
pub use stats::Stats;
