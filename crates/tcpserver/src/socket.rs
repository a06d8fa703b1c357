//! Options set on connected sockets (accepted or outbound): `TCP_NODELAY` and keep-alive.

use socket2::{SockRef, TcpKeepalive};

use crate::config::SocketOptions;
use crate::stream::Stream;

/// Failing to set `TCP_NODELAY` or keep-alive on an accepted socket is not worth dropping the
/// client for (the peer may already be gone); the connection proceeds with OS defaults. Unix
/// domain sockets have neither.
pub(crate) fn apply_socket_options(stream: &Stream, opts: &SocketOptions) {
    if stream.is_tcp() {
        apply_socket_options_on(SockRef::from(stream), opts);
    }
}

/// [`apply_socket_options`] on a TCP socket that is not a [`Stream`] (the consumer loop's).
pub(crate) fn apply_socket_options_on(sock: SockRef<'_>, opts: &SocketOptions) {
    if opts.no_delay {
        let _ = sock.set_tcp_nodelay(true);
    }
    if let Some(k) = &opts.keep_alive {
        let _ = set_keep_alive_on(sock, k);
    }
}

/// Applies keep-alive probe settings to a connected TCP socket (Unix domain sockets refuse
/// them with an OS error).
pub fn set_keep_alive(stream: &Stream, k: &crate::config::KeepAlive) -> std::io::Result<()> {
    set_keep_alive_on(SockRef::from(stream), k)
}

/// [`set_keep_alive`] on any socket (the consumer loop's connections are not [`Stream`]s).
pub(crate) fn set_keep_alive_on(
    sock: SockRef<'_>,
    k: &crate::config::KeepAlive,
) -> std::io::Result<()> {
    let mut ka = TcpKeepalive::new();
    if let Some(t) = k.time {
        ka = ka.with_time(t);
    }
    #[cfg(not(any(target_os = "openbsd", target_os = "haiku")))]
    if let Some(i) = k.interval {
        ka = ka.with_interval(i);
    }
    #[cfg(not(any(target_os = "openbsd", target_os = "haiku", target_os = "windows")))]
    if let Some(r) = k.retries {
        ka = ka.with_retries(r);
    }
    sock.set_tcp_keepalive(&ka)
}
