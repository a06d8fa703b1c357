//! A connected stream socket: TCP, or (on Unix) a Unix domain socket. Everything above the
//! socket (handlers, the driver, TLS, pipes, `sendfile`) works on either through this type.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;

use crate::addr::Address;

/// A connected socket of a [`Connection`](crate::Connection).
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    #[cfg(unix)]
    Unix(UnixStream),
}

/// Calls `$body` with `$s` bound to the inner stream, whatever its kind.
macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            Stream::Tcp($s) => $body,
            #[cfg(unix)]
            Stream::Unix($s) => $body,
        }
    };
}

impl Stream {
    /// Waits until the socket is readable (see [`TcpStream::readable`]).
    pub async fn readable(&self) -> io::Result<()> {
        each!(self, s => s.readable().await)
    }

    /// Waits until the socket is writable (see [`TcpStream::writable`]).
    pub async fn writable(&self) -> io::Result<()> {
        each!(self, s => s.writable().await)
    }

    /// Runs `f` as a non-blocking operation of `interest` (see [`TcpStream::try_io`]).
    pub fn try_io<R>(
        &self,
        interest: Interest,
        f: impl FnOnce() -> io::Result<R>,
    ) -> io::Result<R> {
        each!(self, s => s.try_io(interest, f))
    }

    /// Reads without waiting (see [`TcpStream::try_read`]).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        each!(self, s => s.try_read(buf))
    }

    /// Bytes written that the peer has not taken yet: see [`unacknowledged`].
    pub(crate) fn unacknowledged(&self) -> Option<u64> {
        each!(self, s => unacknowledged(SockRef::from(s)))
    }

    /// The socket holds no unread input: see [`nothing_unread`].
    pub(crate) fn nothing_unread(&self) -> bool {
        each!(self, s => nothing_unread(SockRef::from(s)))
    }

    /// Writes without waiting (see [`TcpStream::try_write`]).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        each!(self, s => s.try_write(buf))
    }

    /// Sets `TCP_NODELAY`; a no-op on Unix domain sockets, which have no Nagle algorithm.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nodelay(on),
            #[cfg(unix)]
            Self::Unix(_) => Ok(()),
        }
    }

    /// `true` for TCP connections.
    pub fn is_tcp(&self) -> bool {
        matches!(self, Self::Tcp(_))
    }

    /// The peer's address (an unnamed Unix socket has an empty path).
    pub fn peer_addr(&self) -> io::Result<Address> {
        match self {
            Self::Tcp(s) => s.peer_addr().map(Address::Ip),
            #[cfg(unix)]
            Self::Unix(s) => s.peer_addr().map(|a| Address::from_unix(&a)),
        }
    }

    /// This side's address.
    pub fn local_addr(&self) -> io::Result<Address> {
        match self {
            Self::Tcp(s) => s.local_addr().map(Address::Ip),
            #[cfg(unix)]
            Self::Unix(s) => s.local_addr().map(|a| Address::from_unix(&a)),
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Self {
        Self::Tcp(s)
    }
}

#[cfg(unix)]
impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Self {
        Self::Unix(s)
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for Stream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        each!(self, s => s.as_fd())
    }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for Stream {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        each!(self, s => s.as_raw_fd())
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for Stream {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        each!(self, s => s.as_socket())
    }
}

// Both inner streams are `Unpin`, so pinning simply reborrows.
impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        each!(self, s => s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}

/// Whether a socket holds no unread input: a non-blocking peek finds it empty, the peer's FIN
/// first (nothing can follow it), or an error (the connection is gone: no bytes left to
/// protect). Closing a socket with unread input makes the kernel send RST, which can destroy
/// the last bytes we wrote before the peer reads them; a connection whose handler finished is
/// closed at once only when this holds, and lingers otherwise.
pub(crate) fn nothing_unread(sock: SockRef<'_>) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match sock.peek(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => e.kind() != io::ErrorKind::Interrupted,
    }
}

/// Bytes written to a socket that its peer has not taken yet: for TCP, those it has not
/// acknowledged; for a Unix socket, those it has not read (`SIOCOUTQ`). `None` if the kernel
/// does not say. See [`write_probe`].
pub(crate) fn unacknowledged(sock: SockRef<'_>) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through the pointer, which points to `n`;
    // the descriptor is borrowed for the call.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (r == 0 && n >= 0).then_some(n as u64)
}

/// The write deadline came and nothing was flushed since it was armed. The peer may still be
/// taking bytes: a slow reader drains the kernel's queue for a long while before the socket
/// reports room again (its low-water mark), which is progress too. So the first time, this
/// notes what the peer has not taken yet (`unacked`, from [`unacknowledged`]) in `probe` and
/// asks to look again after a quarter of the timeout (a sample taken when the deadline was
/// armed would count the bytes still in flight then). The second time, the peer took bytes if
/// that fell: the deadline starts over. Returns how long to wait, or `None`: the write timed
/// out (also when the kernel does not say).
pub(crate) fn write_probe(
    probe: &mut Option<u64>,
    unacked: Option<u64>,
    timeout_ms: u64,
) -> Option<std::time::Duration> {
    let unacked = unacked?;
    match probe.replace(unacked) {
        None => Some(std::time::Duration::from_millis((timeout_ms / 4).max(1))),
        Some(before) if unacked < before => {
            *probe = None;
            Some(std::time::Duration::from_millis(timeout_ms))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::write_probe;
    use std::time::Duration;

    #[test]
    fn write_probe_looks_again_then_starts_over_on_progress_or_times_out() {
        let mut probe = None;
        // First look: a quarter of the timeout later, again.
        assert_eq!(
            write_probe(&mut probe, Some(1000), 400),
            Some(Duration::from_millis(100))
        );
        // The peer took bytes meanwhile: a whole timeout from now.
        assert_eq!(
            write_probe(&mut probe, Some(900), 400),
            Some(Duration::from_millis(400))
        );
        assert_eq!(probe, None);
        // It took none: timed out.
        assert!(write_probe(&mut probe, Some(900), 400).is_some());
        assert_eq!(write_probe(&mut probe, Some(900), 400), None);
        // The kernel does not say: timed out, as before the probe.
        assert_eq!(write_probe(&mut None, None, 400), None);
    }
}
