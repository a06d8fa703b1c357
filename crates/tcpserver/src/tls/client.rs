//! The client side: configurations for outbound connections and their handshake.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

use super::*;
use crate::error::Result;
use crate::stream::Stream;

/// Client-side TLS settings for outbound connections.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsSettings {
    /// Name to send as SNI and to verify the server's certificate against (default: the host).
    pub server_name: Option<String>,
    /// CA certificates (PEM) to trust; default: the Mozilla roots (`webpki-roots`).
    pub ca: Option<Vec<u8>>,
    /// ALPN protocols in preference order.
    pub alpn: Vec<Vec<u8>>,
    /// A client certificate (mutual TLS).
    pub identity: Option<PemIdentity>,
    /// Handshake deadline (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Option<Duration>,
}

/// Builds a rustls client configuration (after [`ClientTlsSettings::validate`]).
pub fn client_config(s: &ClientTlsSettings) -> Result<Arc<rustls::ClientConfig>> {
    s.validate()?;
    let provider = provider();
    let roots = match &s.ca {
        Some(ca) => root_store("tls.ca", ca)?,
        None => rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        },
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_error("tls", e))?
        .with_root_certificates(roots);
    let mut config = match &s.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let key = certified_key(("tls.cert", "tls.key"), id, &provider)?;
            let der =
                PrivateKeyDer::from_pem_slice(&id.key).map_err(|e| tls_error("tls.key", e))?;
            builder
                .with_client_auth_cert(key.cert.clone(), der)
                .map_err(|e| tls_error("tls.cert", e))?
        }
    };
    config.alpn_protocols = s.alpn.clone();
    Ok(Arc::new(config))
}

/// The client side of a handshake on a connected `stream`, within `timeout`. The returned
/// session holds the negotiated state; drive it with rustls' `read_tls`/`write_tls`, or hand
/// it to the driver as [`TlsStart::Session`](crate::driver::TlsStart::Session).
///
/// ```no_run
/// use std::time::Duration;
/// use tcpserver_core::tls::{ClientTlsSettings, DEFAULT_HANDSHAKE_TIMEOUT};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn demo() -> tcpserver_core::Result<()> {
/// let config = tcpserver_core::tls::client_config(&ClientTlsSettings::default())?;
/// let conn = tcpserver_core::connect("example.com", 443, &Default::default(), 1, CancellationToken::new())
///     .await?;
/// let session =
///     tcpserver_core::tls::connect(conn.stream(), config, "example.com", DEFAULT_HANDSHAKE_TIMEOUT).await?;
/// println!("negotiated {:?}", session.protocol_version());
/// # Ok(()) }
/// ```
pub async fn connect(
    stream: &Stream,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
    timeout: Duration,
) -> Result<rustls::ClientConnection> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
        .map_err(|e| tls_error("tls.servername", e))?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| handshake_error(&e))?;
    let work = handshake(&mut *conn, stream);
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r.map(|()| conn),
        Err(_) => Err(handshake_failed("timeout", "handshake timeout")),
    }
}
