use std::io;
use std::os::fd::AsRawFd;

use socket2::Socket;

fn set_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the fd is a live socket owned by `socket` for the duration of the call; the option
    // value points at a properly sized and aligned c_int on our stack.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Server-side `TCP_FASTOPEN` with a pending-request queue length.
pub(crate) fn set_fast_open(socket: &Socket, queue_len: u32) -> io::Result<()> {
    set_int(
        socket,
        libc::IPPROTO_TCP,
        libc::TCP_FASTOPEN,
        queue_len as libc::c_int,
    )
}

/// `TCP_DEFER_ACCEPT`: wake `accept` only once data arrived (or after `seconds`).
pub(crate) fn set_defer_accept(socket: &Socket, seconds: u32) -> io::Result<()> {
    set_int(
        socket,
        libc::IPPROTO_TCP,
        libc::TCP_DEFER_ACCEPT,
        seconds as libc::c_int,
    )
}
