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

/// Whether `TCP_DEFER_ACCEPT` is set on a listening socket: its clients are accepted only once
/// their first bytes arrived (an error reads as no).
pub(crate) fn defers_accept(socket: &impl AsRawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the fd is a live socket borrowed for the call; value and len point at properly
    // sized and aligned locals on our stack, and len says value's size.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    rc == 0 && value > 0
}

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl};

/// Capacity asked for each forwarding pipe: bigger pipes move more per `splice` call.
const PIPE_SIZE: i32 = 256 * 1024;
/// Idle pipe pairs kept for reuse.
const POOL_MAX: usize = 64;

/// A pipe pair used as the in-kernel buffer between two sockets.
#[derive(Debug)]
pub(crate) struct PipePair {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

static POOL: Mutex<Vec<PipePair>> = Mutex::new(Vec::new());

/// A pipe pair from the pool, or a new non-blocking one sized to [`PIPE_SIZE`].
pub(crate) fn take_pipe() -> io::Result<PipePair> {
    if let Some(p) = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop() {
        return Ok(p);
    }
    let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
    // Best effort: the per-user pipe budget may refuse a bigger size; 64 KiB still works.
    let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok(PipePair { read, write })
}

/// Returns an *empty* pipe pair to the pool (a pair that may hold bytes must be dropped).
pub(crate) fn give_back_pipe(p: PipePair) {
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOL_MAX {
        pool.push(p);
    }
}

/// Bytes the pipe can hold.
pub(crate) fn pipe_capacity() -> usize {
    PIPE_SIZE as usize
}

/// `splice(2)` without offsets, non-blocking.
pub(crate) fn splice(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SPLICE_MOVE;
    Ok(nix::fcntl::splice(from, None, to, None, len, flags)?)
}

const SPLICE_MOVE: SpliceFFlags = SpliceFFlags::SPLICE_F_MOVE;

/// `sendfile(2)` from `file` at `*offset` (advanced by the kernel) to `socket`.
pub(crate) fn sendfile(
    socket: impl AsFd,
    file: impl AsFd,
    offset: &mut i64,
    count: usize,
) -> io::Result<usize> {
    Ok(nix::sys::sendfile::sendfile64(
        socket,
        file,
        Some(offset),
        count,
    )?)
}

/// Zero-copy forwarding and file sending are available on this platform.
pub(crate) const ZERO_COPY: bool = true;
