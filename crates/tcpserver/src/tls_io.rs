//! TLS record I/O over a connection's socket, in one place for the handshakes, the driver and
//! the pipe and file jobs: plaintext in and out of a maybe-TLS socket (reading ciphertext or
//! writing records as needed), and rustls' records to and from the socket.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

use tokio::io::Interest;

use crate::stream::Stream;

pub(crate) fn lock_tls(tls: &Mutex<rustls::Connection>) -> MutexGuard<'_, rustls::Connection> {
    tls.lock().unwrap_or_else(|e| e.into_inner())
}

/// Plaintext from a TLS session: what rustls already decrypted, else ciphertext pulled from the
/// socket and decrypted. Alerts, tickets and key updates rustls wants to send go out too.
pub(crate) fn tls_read(
    stream: &Stream,
    tls: &Mutex<rustls::Connection>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    let mut t = lock_tls(tls);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let want = max.min(chunk.len());
        match io::Read::read(&mut t.reader(), &mut chunk[..want]) {
            Ok(n) => {
                // 0: the peer's close_notify.
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // EOF without close_notify: like Node, an end of input (reported as such by
            // `Event::TlsEnd { close_notify: false }`).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        let got = stream.try_io(Interest::READABLE, || t.read_tls(&mut SocketIo(stream)))?;
        if got == 0 {
            return Ok(0);
        }
        if let Err(e) = t.process_new_packets() {
            let _ = try_write_tls(&mut *t, stream);
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        try_write_tls(&mut *t, stream)?;
    }
}

/// Appends up to `max` plaintext bytes of a connection to `buf`, waiting for the socket; 0 at the end.
pub(crate) async fn read_plain(
    stream: &Stream,
    tls: Option<&Mutex<rustls::Connection>>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
    loop {
        let r = match tls {
            Some(tls) => tls_read(stream, tls, buf, max),
            None => {
                let start = buf.len();
                buf.resize(start + max, 0);
                let r = stream.try_read(&mut buf[start..]);
                buf.truncate(start + *r.as_ref().unwrap_or(&0));
                r
            }
        };
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            other => return other,
        }
    }
}

/// Writes all of `data` as plaintext of a connection (encrypted for TLS), waiting for the socket.
pub(crate) async fn write_plain(
    stream: &Stream,
    tls: Option<&Mutex<rustls::Connection>>,
    data: &[u8],
) -> io::Result<()> {
    let Some(tls) = tls else {
        return write_all(stream, data, &AtomicU64::new(0)).await;
    };
    let mut off = 0;
    loop {
        // The lock is never held across an await.
        let blocked = {
            let mut t = lock_tls(tls);
            loop {
                if try_write_tls(&mut *t, stream)? {
                    break true;
                }
                if off == data.len() {
                    break false;
                }
                let n = io::Write::write(&mut t.writer(), &data[off..])?;
                off += n;
                if n == 0 {
                    break true;
                }
            }
        };
        if !blocked {
            return Ok(());
        }
        stream.writable().await?;
    }
}

/// Sends every pending TLS record of a connection.
pub(crate) async fn flush_tls(
    stream: &Stream,
    tls: Option<&Mutex<rustls::Connection>>,
) -> io::Result<()> {
    let Some(tls) = tls else { return Ok(()) };
    while try_write_tls(&mut *lock_tls(tls), stream)? {
        stream.writable().await?;
    }
    Ok(())
}

/// Writes all of `data` with readiness, counting into `moved`.
pub(crate) async fn write_all(dst: &Stream, data: &[u8], moved: &AtomicU64) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        dst.writable().await?;
        match dst.try_write(&data[off..]) {
            Ok(n) => {
                off += n;
                moved.fetch_add(n as u64, Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `io::Read`/`io::Write` over a non-blocking socket, for rustls' `read_tls`/`write_tls`.
pub(crate) struct SocketIo<'a>(pub(crate) &'a Stream);

// Raw syscalls: the callers run inside `try_io`, which owns Tokio's readiness bookkeeping.
impl io::Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(&mut &*socket2::SockRef::from(self.0), buf)
    }
}

impl io::Write for SocketIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(&mut &*socket2::SockRef::from(self.0), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes every pending TLS record, waiting for writability.
pub(crate) async fn write_tls(conn: &mut impl TlsSession, stream: &Stream) -> io::Result<()> {
    while conn.wants_write() {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || conn.write_tls(&mut SocketIo(stream))) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes pending TLS records without waiting; returns whether some remain.
pub(crate) fn try_write_tls(conn: &mut impl TlsSession, stream: &Stream) -> io::Result<bool> {
    while conn.wants_write() {
        match stream.try_io(Interest::WRITABLE, || conn.write_tls(&mut SocketIo(stream))) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// What the socket helpers need from a rustls session (server, client, or either).
pub(crate) trait TlsSession {
    fn wants_write(&self) -> bool;
    fn write_tls(&mut self, wr: &mut dyn io::Write) -> io::Result<usize>;
}

impl<D> TlsSession for rustls::ConnectionCommon<D> {
    fn wants_write(&self) -> bool {
        rustls::CommonState::wants_write(self)
    }
    fn write_tls(&mut self, wr: &mut dyn io::Write) -> io::Result<usize> {
        rustls::ConnectionCommon::write_tls(self, wr)
    }
}

impl TlsSession for rustls::Connection {
    fn wants_write(&self) -> bool {
        rustls::CommonState::wants_write(self)
    }
    fn write_tls(&mut self, wr: &mut dyn io::Write) -> io::Result<usize> {
        rustls::Connection::write_tls(self, wr)
    }
}

/// Whether the peer's TLS input ended with a `close_notify` alert, asked once its input ended
/// (rustls reads a bare FIN as "unexpected EOF", a close_notify as a clean end). An error
/// rustls already reported counts as no close_notify.
pub(crate) fn peer_sent_close_notify(conn: &mut rustls::Connection) -> bool {
    conn.process_new_packets()
        .is_ok_and(|state| state.peer_has_closed())
}
