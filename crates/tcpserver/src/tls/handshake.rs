//! Driving a handshake over a non-blocking socket, and its failures as errors.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use tokio::io::Interest;

use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::tls_io::{SocketIo, write_tls};

/// Drives a handshake, either side, to its end on `stream`; a failure sends rustls' alert first.
pub(super) async fn handshake<D>(
    conn: &mut rustls::ConnectionCommon<D>,
    stream: &Stream,
) -> Result<()> {
    while conn.is_handshaking() {
        if conn.wants_write() {
            write_tls(conn, stream).await?;
            continue;
        }
        if !read_handshake_bytes(stream, |io| conn.read_tls(io)).await? {
            continue;
        }
        if let Err(e) = conn.process_new_packets() {
            // The alert (protocol_version, no_application_protocol...) goes out before failing.
            let _ = write_tls(conn, stream).await;
            return Err(handshake_error(&e));
        }
    }
    write_tls(conn, stream).await?;
    Ok(())
}

/// Waits until the peer has sent a byte (or closed): a look with `MSG_PEEK`, because a new
/// socket's readiness may be reported before anything arrived.
pub(super) async fn first_byte(stream: &Stream) -> io::Result<()> {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    loop {
        stream.readable().await?;
        // WouldBlock clears the readiness, so the next `readable()` waits for real bytes.
        match stream.try_io(Interest::READABLE, || {
            socket2::SockRef::from(stream).peek(&mut byte)
        }) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Waits until `stream` is readable and feeds what arrived to `read_tls` (a session, or an
/// `Acceptor` still waiting for the ClientHello). `Ok(false)`: the readiness was stale and
/// nothing came; wait again. The peer closing mid-handshake is a `peer_closed` failure.
pub(super) async fn read_handshake_bytes(
    stream: &Stream,
    mut read_tls: impl FnMut(&mut SocketIo<'_>) -> io::Result<usize>,
) -> Result<bool> {
    stream.readable().await?;
    match stream.try_io(Interest::READABLE, || read_tls(&mut SocketIo(stream))) {
        Ok(0) => Err(handshake_failed(
            "peer_closed",
            "peer closed during the handshake",
        )),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(Error::Io(e)),
    }
}

/// Configurations built for certificates an SNI callback chose, by (certificate, key) PEM.
pub(super) type ConfigCache = HashMap<(Vec<u8>, Vec<u8>), Arc<rustls::ServerConfig>>;

pub(super) fn handshake_failed(reason: &'static str, message: &str) -> Error {
    Error::TlsHandshake {
        reason,
        message: message.to_owned(),
    }
}

/// A rustls error as a stable reason (the counters' key) plus its message.
pub(super) fn handshake_error(e: &rustls::Error) -> Error {
    use rustls::Error as E;
    let reason = match e {
        E::InvalidMessage(_) => "bad_record",
        E::PeerIncompatible(_) => "peer_incompatible",
        E::NoApplicationProtocol => "no_application_protocol",
        E::NoCertificatesPresented => "no_client_certificate",
        E::InvalidCertificate(_) => "bad_certificate",
        E::AlertReceived(_) => "alert_received",
        E::PeerMisbehaved(_) => "peer_misbehaved",
        E::DecryptError => "decrypt_error",
        _ => "handshake_failed",
    };
    Error::TlsHandshake {
        reason,
        message: e.to_string(),
    }
}
