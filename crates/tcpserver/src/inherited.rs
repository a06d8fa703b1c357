//! Listening sockets handed over by another process: a process manager, a parent doing a
//! zero-downtime restart, or systemd socket activation (`LISTEN_FDS`, see `sd_listen_fds(3)`).
//! The server takes ownership of each descriptor and closes it at shutdown.

use std::net::SocketAddr;

use crate::error::{Error, Result};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const SD_LISTEN_FDS_START: i32 = 3;

/// The listening sockets systemd (or a compatible manager) passed to this process, with their
/// names from `LISTEN_FDNAMES` when given: descriptors 3, 4, ... when `LISTEN_PID` is this
/// process and `LISTEN_FDS` counts them. Empty when the variables are absent or meant for
/// another process. The variables are left as they are (changing the environment of a
/// multi-threaded process is unsound); callers that spawn children should not pass them on.
pub fn systemd_listen_fds() -> Result<Vec<(i32, Option<String>)>> {
    let var = |name: &str| std::env::var(name).ok();
    let (Some(pid), Some(count)) = (var("LISTEN_PID"), var("LISTEN_FDS")) else {
        return Ok(Vec::new());
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let count: i32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=1024).contains(n))
        .ok_or_else(|| Error::value("fd", format!("LISTEN_FDS is not a count: `{count}`")))?;
    let names: Vec<String> = var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    Ok((0..count)
        .map(|i| {
            let name = names.get(i as usize).filter(|n| !n.is_empty()).cloned();
            (SD_LISTEN_FDS_START + i, name)
        })
        .collect())
}

/// Adopts `fd`, which must be a listening TCP socket (IPv4 or IPv6): checked first, so a
/// wrong descriptor is an error naming the option `fd`, never a server accepting on a file.
#[cfg(unix)]
pub(crate) fn adopt(fd: i32) -> Result<(SocketAddr, std::net::TcpListener)> {
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

    use socket2::{Domain, SockRef, Type};

    let bad = |why: String| Error::value("fd", format!("descriptor {fd} {why}"));
    let os = |syscall: &'static str, source: std::io::Error| {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        Error::Listen {
            syscall,
            addr: unspecified,
            source,
        }
    };
    if fd < 0 {
        return Err(bad("is negative".into()));
    }
    // SAFETY: F_GETFD reads the descriptor's flags and touches no memory; it tells whether
    // `fd` is open before anything borrows it.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(os("fcntl", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is open (checked above) and stays open for this borrow's lifetime.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = SockRef::from(&borrowed);
    let kind = socket
        .r#type()
        .map_err(|e| bad(format!("is not a socket ({e})")))?;
    // The family comes from getsockname rather than SO_DOMAIN, which macOS does not have.
    let bound = socket.local_addr().map_err(|e| os("getsockname", e))?;
    let domain = bound.domain();
    if kind != Type::STREAM || !(domain == Domain::IPV4 || domain == Domain::IPV6) {
        return Err(bad("is not a TCP socket".into()));
    }
    if !is_listening(&socket).map_err(|e| os("getsockopt", e))? {
        return Err(bad(
            "is not listening (call listen() before passing it)".into()
        ));
    }
    let local = bound
        .as_socket()
        .ok_or_else(|| bad("has no IP address".into()))?;
    socket.set_nonblocking(true).map_err(|e| os("fcntl", e))?;
    // Children this process spawns must not inherit the listener.
    socket.set_cloexec(true).map_err(|e| os("fcntl", e))?;
    // SAFETY: the caller hands `fd` over; from here the listener owns and closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((local, std::net::TcpListener::from(owned)))
}

#[cfg(unix)]
fn is_listening(socket: &socket2::SockRef<'_>) -> std::io::Result<bool> {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        socket.is_listener()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // No SO_ACCEPTCONN query here: a socket with a local address and no peer is taken
        // for a listener (accept() on anything else fails at the first connection).
        Ok(socket.peer_addr().is_err())
    }
}

#[cfg(not(unix))]
pub(crate) fn adopt(_fd: i32) -> Result<(SocketAddr, std::net::TcpListener)> {
    Err(Error::Unsupported { option: "fd" })
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::fd::IntoRawFd;

    use super::*;

    #[test]
    fn adopts_a_listener_and_refuses_the_rest() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (local, adopted) = adopt(l.into_raw_fd()).unwrap();
        assert_eq!((local, adopted.local_addr().unwrap()), (addr, addr));

        let file = std::fs::File::open("/dev/null").unwrap();
        let err = adopt(file.into_raw_fd()).unwrap_err();
        assert_eq!(err.option(), Some("fd"), "{err}");

        let unbound =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let err = adopt(unbound.into_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("not listening"), "{err}");

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = adopt(udp.into_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("not a TCP socket"), "{err}");

        let err = adopt(987_654).unwrap_err();
        assert_eq!(
            err.os_error().and_then(|e| e.raw_os_error()),
            Some(libc::EBADF)
        );
        assert_eq!(adopt(-1).unwrap_err().option(), Some("fd"));
    }
}
