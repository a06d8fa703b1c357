//! Platforms other than Linux: TCP_FASTOPEN uses the BSD/macOS form (an on/off flag),
//! TCP_DEFER_ACCEPT does not exist and is reported as unsupported by the caller.

use std::io;

use socket2::Socket;

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
pub(crate) fn set_fast_open(socket: &Socket, _queue_len: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: live fd owned by `socket`; the value is a c_int on our stack.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_FASTOPEN,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(any(target_os = "macos", target_os = "freebsd")))]
pub(crate) fn set_fast_open(_socket: &Socket, _queue_len: u32) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

pub(crate) fn set_defer_accept(_socket: &Socket, _seconds: u32) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// No `splice`/`sendfile` here: forwarding and file sending use copy loops.
pub(crate) const ZERO_COPY: bool = false;
