//! Outbound connections: resolve, optionally bind a local address, connect with a deadline,
//! and hand back the same [`Connection`] type that accepted connections use.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpSocket;
use tokio_util::sync::CancellationToken;

use crate::config::KeepAlive;
use crate::connection::{Connection, ConnectionInfo};
use crate::error::{Error, Result};
use crate::stream::Stream;

/// Options of [`connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Give up after this long (resolving and connecting together).
    pub timeout: Option<Duration>,
    /// `TCP_NODELAY` (default on).
    pub no_delay: bool,
    /// Local address to bind before connecting (port chosen by the kernel).
    pub local_address: Option<IpAddr>,
    /// TCP keep-alive.
    pub keep_alive: Option<KeepAlive>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            no_delay: true,
            local_address: None,
            keep_alive: None,
        }
    }
}

/// Connects to `host:port`. Names are resolved asynchronously and every address is tried in
/// order until one connects; the error of the last attempt is returned. `id` becomes the
/// connection's id and `abort` its abort signal.
///
/// ```
/// use std::time::Duration;
/// use tcpserver_core::{ConnectOptions, ErrorKind};
/// use tokio::io::AsyncReadExt;
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let config = tcpserver_core::ServerConfig::new("127.0.0.1:0".parse()?);
/// # let server = tcpserver_core::Server::bind(&config, |_| async {})?;
/// # let port = server.local_addrs()[0].port();
/// let opts = ConnectOptions {
///     timeout: Some(Duration::from_secs(3)),
///     local_address: Some("127.0.0.1".parse()?),
///     ..Default::default()
/// };
/// // A proxy would pass the client connection's id and `abort_signal()` here.
/// let mut conn = tcpserver_core::connect("localhost", port, &opts, 1, CancellationToken::new()).await?;
/// assert_eq!(conn.info().peer_addr.port(), Some(port));
/// assert_eq!(conn.read(&mut [0u8; 1]).await?, 0); // that server closes at once
///
/// let err = tcpserver_core::connect("127.0.0.1", 0, &opts, 2, CancellationToken::new()).await;
/// assert!(matches!(err.unwrap_err().kind(), ErrorKind::InvalidArgument(_)));
/// # Ok(()) }
/// ```
pub async fn connect(
    host: &str,
    port: u16,
    opts: &ConnectOptions,
    id: u64,
    abort: CancellationToken,
) -> Result<Connection> {
    if port == 0 {
        return Err(Error::range(
            "port",
            "a connection needs a port between 1 and 65535",
        ));
    }
    // Like Node: no host means this machine.
    let host = if host.is_empty() { "localhost" } else { host };
    // The address being tried, for the error if the deadline passes (none while resolving).
    let trying = std::sync::Mutex::new(None);
    let attempt = async {
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|source| Error::Resolve {
                    host: host.to_owned(),
                    source,
                })?
                .collect(),
        };
        let mut last = None;
        for addr in addrs {
            if opts
                .local_address
                .is_some_and(|l| l.is_ipv4() != addr.is_ipv4())
            {
                continue;
            }
            *trying
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(addr);
            match connect_one(addr, opts).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::value(
                "localAddress",
                format!("no address of `{host}` has the family of the local address"),
            )
        }))
    };
    let stream = match opts.timeout {
        Some(t) => tokio::time::timeout(t, attempt).await.map_err(|_| {
            let source = std::io::Error::from_raw_os_error(libc::ETIMEDOUT);
            match *trying
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                Some(addr) => Error::Connect {
                    addr: crate::Address::Ip(addr),
                    source,
                },
                None => Error::Io(source),
            }
        })??,
        None => attempt.await?,
    };
    let stream = Stream::Tcp(stream);
    if opts.no_delay {
        let _ = stream.set_nodelay(true);
    }
    if let Some(k) = &opts.keep_alive {
        let _ = crate::socket::set_keep_alive(&stream, k);
    }
    outbound(stream, id, abort)
}

/// Connects to the Unix domain socket at `path`. Of `opts` only `timeout` applies.
/// `id` becomes the connection's id and `abort` its abort signal.
#[cfg(unix)]
pub async fn connect_unix(
    path: &Path,
    opts: &ConnectOptions,
    id: u64,
    abort: CancellationToken,
) -> Result<Connection> {
    let failed = |source| Error::Connect {
        addr: crate::Address::Unix(path.to_owned()),
        source,
    };
    let attempt = tokio::net::UnixStream::connect(path);
    let stream = match opts.timeout {
        Some(t) => tokio::time::timeout(t, attempt)
            .await
            .map_err(|_| failed(std::io::Error::from_raw_os_error(libc::ETIMEDOUT)))?
            .map_err(failed)?,
        None => attempt.await.map_err(failed)?,
    };
    let mut conn = outbound(Stream::Unix(stream), id, abort)?;
    // The OS reports the listener's path only on some systems; the caller knows it anyway.
    conn.info_mut().peer_addr = crate::Address::Unix(path.to_owned());
    Ok(conn)
}

/// Unix domain sockets are a Unix notion: elsewhere a `unix:` address is unsupported.
#[cfg(not(unix))]
pub async fn connect_unix(
    _path: &Path,
    _opts: &ConnectOptions,
    _id: u64,
    _abort: CancellationToken,
) -> Result<Connection> {
    Err(Error::Unsupported { option: "address" })
}

/// Wraps a connected outbound stream.
fn outbound(stream: Stream, id: u64, abort: CancellationToken) -> Result<Connection> {
    let peer_addr = stream.peer_addr()?;
    let local_addr = stream.local_addr()?;
    let info = ConnectionInfo::starting_now(id, peer_addr, local_addr);
    // Outbound connections belong to no server: nothing drains them.
    Ok(Connection::new(
        stream,
        info,
        abort,
        CancellationToken::new(),
    ))
}

async fn connect_one(addr: SocketAddr, opts: &ConnectOptions) -> Result<tokio::net::TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(local) = opts.local_address {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.connect(addr).await.map_err(|source| Error::Connect {
        addr: crate::Address::Ip(addr),
        source,
    })
}
