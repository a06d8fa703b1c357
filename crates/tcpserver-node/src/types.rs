//! Every object shape the binding hands to JavaScript (`#[napi(object)]`), with its conversions
//! from the core's types: pure conversion, no behaviour.

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::options::BindingClientTlsOptions;

/// An address as Node reports it.
#[napi(object)]
pub struct BindingAddress {
    /// IP address text, or the Unix socket path (empty for an unnamed socket).
    pub address: String,
    /// Port (0 for Unix sockets).
    pub port: u32,
    /// `IPv4`, `IPv6` or `unix`.
    pub family: String,
}

impl From<&tcpserver_core::Address> for BindingAddress {
    fn from(a: &tcpserver_core::Address) -> Self {
        match a {
            tcpserver_core::Address::Ip(a) => (*a).into(),
            tcpserver_core::Address::Unix(p) => Self {
                address: p.to_string_lossy().into_owned(),
                port: 0,
                family: "unix".into(),
            },
        }
    }
}

impl From<std::net::SocketAddr> for BindingAddress {
    fn from(a: std::net::SocketAddr) -> Self {
        Self {
            address: a.ip().to_string(),
            port: u32::from(a.port()),
            family: if a.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        }
    }
}

/// Accept-time facts and counters of one connection.
#[napi(object)]
pub struct BindingConnectionInfo {
    /// The client.
    pub remote: BindingAddress,
    /// The server side.
    pub local: BindingAddress,
    /// The load balancer, on PROXY protocol listeners.
    pub proxied_by: Option<BindingAddress>,
    /// Accept time, ms since the epoch.
    pub start_time: f64,
    /// Bytes read from the socket.
    pub bytes_read: f64,
    /// Bytes in the kernel.
    pub bytes_written: f64,
    /// Bytes queued in the process.
    pub queued: f64,
    /// What TLS negotiated (`null` for plain TCP).
    pub tls: Option<BindingTlsInfo>,
}

/// Counters of a server.
#[napi(object)]
pub struct BindingStats {
    /// Connections accepted.
    pub accepted: f64,
    /// Connections open.
    pub active: f64,
    /// Connections closed at once by any limit.
    pub refused: f64,
    /// ... because `maxConnections` were open (`onLimit: 'refuse'`).
    pub refused_max_connections: f64,
    /// ... because the client's address held its `maxConnectionsPerIp`.
    pub refused_per_ip: f64,
    /// ... because `maxAcceptConnections` was reached.
    pub refused_max_accept: f64,
    /// Connections closed by the idle timeout.
    pub idle_timeouts: f64,
    /// Reads that timed out.
    pub read_timeouts: f64,
    /// Connections closed by the write timeout.
    pub write_timeouts: f64,
    /// PROXY protocol headers accepted.
    pub proxy_headers: f64,
    /// PROXY protocol refusals: `[reason, count]` pairs.
    pub proxy_failures: Vec<BindingCount>,
    /// Connections closed by a forced shutdown.
    pub forced: f64,
    /// Connection tasks that panicked.
    pub panics: f64,
    /// Accept errors: `[code, count]` pairs.
    pub accept_errors: Vec<BindingCount>,
}

/// One worker thread of a server.
#[napi(object)]
pub struct BindingWorker {
    /// Its index (0..workers).
    pub index: u32,
    /// Connections it has open.
    pub active: f64,
    /// Connections handed to it (by this thread; a restarted worker counts from 0).
    pub accepted: f64,
}

/// The worker threads of a server.
#[napi(object)]
pub struct BindingWorkerStats {
    /// Attached workers, by index.
    pub workers: Vec<BindingWorker>,
    /// Connections closed because the worker serving them ended.
    pub orphaned: f64,
}

/// A named counter.
#[napi(object)]
pub struct BindingCount {
    /// Error code (`EMFILE`...).
    pub code: String,
    /// How many times.
    pub count: f64,
}

/// Options of an outbound connection.
#[napi(object)]
pub struct BindingConnectOptions {
    /// `"host:port"` or `"unix:/path"`.
    pub address: Option<String>,
    /// Host name or IP literal.
    pub host: Option<String>,
    /// Port.
    pub port: Option<f64>,
    /// Give up after this many ms.
    pub timeout: Option<f64>,
    /// `TCP_NODELAY` (default on).
    pub no_delay: Option<bool>,
    /// Local IP address to bind.
    pub local_address: Option<String>,
    /// TLS (client side).
    pub tls: Option<BindingClientTlsOptions>,
}

/// TLS counters.
#[napi(object)]
pub struct BindingTlsStats {
    /// Handshakes completed.
    pub handshakes: f64,
    /// Failed handshakes by reason.
    pub failures: Vec<BindingCount>,
}

/// What a TLS connection negotiated.
#[napi(object)]
pub struct BindingTlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// Cipher suite (IANA name).
    pub cipher: String,
    /// Negotiated ALPN protocol.
    pub alpn_protocol: Option<String>,
    /// SNI name the client sent.
    pub server_name: Option<String>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// The peer's verified certificate chain (DER), leaf first.
    pub peer_certificates: Vec<Buffer>,
}

/// Counters of the zero-copy paths.
#[napi(object)]
pub struct BindingDataStats {
    /// Pipes forwarded with `splice(2)`.
    pub pipes_spliced: f64,
    /// Pipes forwarded with a copy loop.
    pub pipes_copied: f64,
    /// Bytes forwarded by pipes.
    pub bytes_piped: f64,
    /// Files sent completely.
    pub files_sent: f64,
    /// File bytes sent with `sendfile(2)`.
    pub file_bytes_zero_copy: f64,
    /// File bytes sent with a read/write loop.
    pub file_bytes_copied: f64,
    /// Chunks read on the JavaScript thread (`readNow`).
    pub direct_reads: f64,
}

/// A listening socket systemd passed.
#[napi(object)]
pub struct BindingListenFd {
    /// The descriptor.
    pub fd: i32,
    /// Its name from `LISTEN_FDNAMES`, if given.
    pub name: Option<String>,
}
