//! TLS record I/O over a connection's socket, for the driver and the pipe job: plaintext out of
//! a session (reading ciphertext as needed) and records into the socket.

use std::io;
use std::sync::{Mutex, MutexGuard};

use tokio::io::Interest;

use crate::stream::Stream;
pub(crate) use crate::tls::{SocketIo, try_write_tls};

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
            // EOF without close_notify: like Node, an ordinary end of input.
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
