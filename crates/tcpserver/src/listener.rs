//! Listening sockets: socket2 → options → bind → listen → tokio `TcpListener` (or, for
//! `unix:` paths, a `UnixListener` whose socket file is removed when it closes).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::addr::Address;
use crate::config::{ListenerOptions, ServerConfig};
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::sys;

/// A listening socket of either kind.
#[derive(Debug)]
pub(crate) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(crate::unix_listener::UnixListener),
}

impl Listener {
    pub(crate) async fn accept(&self) -> io::Result<(Stream, Address)> {
        match self {
            Self::Tcp(l) => l
                .accept()
                .await
                .map(|(s, peer)| (Stream::Tcp(s), Address::Ip(peer))),
            #[cfg(unix)]
            Self::Unix(l) => l.accept().await,
        }
    }
}

/// Opens every listening socket of `config`: `loops` sockets per address (one when
/// `reusePort` is off). Port 0 is resolved on the first socket and reused by the others, so
/// all loops of an address share the port the kernel picked. Must run inside a Tokio runtime.
pub(crate) fn open_all(config: &ServerConfig) -> Result<Vec<(Address, Listener)>> {
    let loops = config.effective_loops();
    let per_address = if config.shares_port() { loops } else { 1 };
    let mut out = Vec::with_capacity(config.addresses.len() * per_address);
    // Ports this server already claimed: a later address on one of them (`0.0.0.0:7000` and a
    // dual-stack `[::]:7000`) overlaps the server's own sockets and joins them like its loops.
    let mut own_ports: Vec<u16> = Vec::new();
    for &requested in &config.addresses {
        let mut addr = requested;
        let joins_own = requested.port() != 0 && own_ports.contains(&requested.port());
        for n in 0..per_address {
            let reuse = match config.listener.reuse_port {
                Some(on) => ReusePort::from(on),
                // The first socket claims the port for this server alone; the others join it.
                None if n == 0 && !joins_own => ReusePort::AfterBind {
                    required: per_address > 1,
                },
                None => ReusePort::BeforeBind,
            };
            let std_listener = bind(addr, &config.listener, reuse)?;
            let local = std_listener.local_addr().map_err(|source| Error::Listen {
                syscall: "getsockname",
                addr,
                source,
            })?;
            addr = local;
            let listener = TcpListener::from_std(std_listener).map_err(|source| Error::Listen {
                syscall: "epoll_ctl",
                addr,
                source,
            })?;
            out.push((Address::Ip(local), Listener::Tcp(listener)));
        }
        own_ports.push(addr.port());
    }
    #[cfg(unix)]
    for path in &config.unix_paths {
        let listener = crate::unix_listener::UnixListener::bind(
            path,
            config.listener.backlog,
            config.unix_permissions,
        )?;
        out.push((Address::Unix(path.clone()), Listener::Unix(listener)));
    }
    for &fd in &config.inherited {
        let (local, std_listener) = crate::inherited::adopt(fd)?;
        let listener = TcpListener::from_std(std_listener).map_err(|source| Error::Listen {
            syscall: "epoll_ctl",
            addr: local,
            source,
        })?;
        out.push((Address::Ip(local), Listener::Tcp(listener)));
    }
    Ok(out)
}

/// When a listening socket gets `SO_REUSEPORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReusePort {
    /// Never.
    Off,
    /// Before `bind`: the socket may join a port other sockets with the option hold.
    BeforeBind,
    /// After `bind`, before `listen`: `bind` fails with `EADDRINUSE` if any socket holds the
    /// port, and once bound, sockets with the option (this server's other accept loops) may
    /// join it. Linux checks the option of the sockets already on a port at each new `bind`,
    /// not when they were bound. `required`: failing to set it is an error (more loops must
    /// join); otherwise a platform without it just has no sharing.
    AfterBind { required: bool },
}

impl From<bool> for ReusePort {
    fn from(on: bool) -> Self {
        if on { Self::BeforeBind } else { Self::Off }
    }
}

/// One listening socket with every listener option applied before `bind`.
pub(crate) fn bind(
    addr: SocketAddr,
    opts: &ListenerOptions,
    reuse: ReusePort,
) -> Result<std::net::TcpListener> {
    let os = |syscall: &'static str| {
        move |source| Error::Listen {
            syscall,
            addr,
            source,
        }
    };
    let opt = |option: &'static str| {
        move |source| Error::SocketOption {
            option,
            addr,
            source,
        }
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(os("socket"))?;
    socket.set_nonblocking(true).map_err(os("fcntl"))?;
    // Like Node and Go: rebinding a port with connections in TIME_WAIT must work.
    socket
        .set_reuse_address(true)
        .map_err(opt("reuseAddress"))?;
    if reuse == ReusePort::BeforeBind {
        set_reuse_port(&socket).map_err(opt("reusePort"))?;
    }
    if addr.is_ipv6() {
        socket
            .set_only_v6(opts.ipv6_only)
            .map_err(opt("ipv6Only"))?;
    }
    if let Some(queue_len) = opts.fast_open {
        sys::set_fast_open(&socket, queue_len).map_err(|e| unsupported_or("fastOpen", addr, e))?;
    }
    if let Some(seconds) = opts.defer_accept {
        sys::set_defer_accept(&socket, seconds)
            .map_err(|e| unsupported_or("deferAccept", addr, e))?;
    }
    socket.bind(&addr.into()).map_err(os("bind"))?;
    if let ReusePort::AfterBind { required } = reuse
        && let Err(e) = set_reuse_port(&socket)
        && required
    {
        return Err(opt("reusePort")(e));
    }
    socket.listen(opts.backlog as i32).map_err(os("listen"))?;
    Ok(socket.into())
}

#[cfg(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(all(
    unix,
    not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
)))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

fn unsupported_or(option: &'static str, addr: SocketAddr, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::Unsupported {
        Error::Unsupported { option }
    } else {
        Error::SocketOption {
            option,
            addr,
            source: e,
        }
    }
}
