//! TLS termination with rustls: certificates from PEM, SNI (exact and wildcard names) over a
//! default certificate, ALPN, TLS 1.2/1.3 only, a handshake deadline and a cap on concurrent
//! handshakes, and a hot-swappable configuration (new handshakes use the new certificates,
//! open connections keep theirs).
//!
//! - **Server side**: describe the certificates in [`TlsSettings`] and build a
//!   [`TlsAcceptor`] once (every certificate problem is reported then, not at the first
//!   client). The handshake runs in the event-mode driver: pass
//!   [`TlsStart::Accept`](crate::driver::TlsStart::Accept) to
//!   [`Connections::drive`](crate::driver::Connections::drive), or upgrade a plain connection
//!   later with [`Connections::start_tls`](crate::driver::Connections::start_tls)
//!   (`examples/tls_echo.rs` is a complete server). A program that wants TLS on the
//!   `AsyncRead`/`AsyncWrite` [`Connection`](crate::Connection) instead can take the rustls
//!   configuration from [`server_config`] to a rustls-on-Tokio adapter of its choice.
//! - **Client side**: [`client_config`] from [`ClientTlsSettings`] (the Mozilla roots unless
//!   a CA is given, optional client certificate), then [`connect`] runs the handshake on a
//!   connected socket.
//!
//! Mozilla's roots come from `webpki-roots`; the crypto is rustls' `ring` provider.
//!
//! ```
//! use std::time::Duration;
//! use tcpserver_core::tls::{ClientTlsSettings, PemIdentity, TlsAcceptor, TlsSettings};
//!
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../__test__/fixtures/tls");
//! # let read = |name: &str| std::fs::read(format!("{dir}/{name}")).unwrap();
//! # let (cert_pem, key_pem, ca_pem) = (read("server.crt"), read("server.key"), read("ca.crt"));
//! # let (other_cert, other_key) = (read("other.crt"), read("other.key"));
//! let mut settings = TlsSettings::new(PemIdentity { cert: cert_pem, key: key_pem });
//! // Clients asking for `*.wild.test` (SNI) get another certificate.
//! settings.sni.push(("*.wild.test".into(), PemIdentity { cert: other_cert, key: other_key }));
//! settings.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
//! settings.handshake_timeout = Duration::from_secs(5);
//! // Mutual TLS: ask for a client certificate chaining to this CA, and insist on one.
//! settings.client_ca = Some(ca_pem.clone());
//! settings.require_client_cert = true;
//! let acceptor = TlsAcceptor::new(&settings)?;
//!
//! // Later (say on SIGHUP): new handshakes use new certificates, open connections keep theirs.
//! settings.tls12 = false;
//! acceptor.reload(&settings)?;
//! assert_eq!(acceptor.counts(), (0, vec![])); // handshakes completed, failures by reason
//!
//! // The client side, trusting the test CA instead of the Mozilla roots.
//! let client = tcpserver_core::tls::client_config(&ClientTlsSettings {
//!     ca: Some(ca_pem),
//!     alpn: vec![b"h2".to_vec()],
//!     ..Default::default()
//! })?;
//! assert_eq!(client.alpn_protocols, [b"h2".to_vec()]);
//!
//! // A key that does not belong to the certificate is refused up front, naming the option.
//! # let (cert_pem, other_key) = (read("server.crt"), read("other.key"));
//! let err = TlsAcceptor::new(&TlsSettings::new(PemIdentity { cert: cert_pem, key: other_key }))
//!     .unwrap_err();
//! assert_eq!(err.option(), Some("tls.key"));
//! # Ok::<(), tcpserver_core::Error>(())
//! ```

mod acceptor;
mod client;
mod config;
mod handshake;
mod info;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use acceptor::TlsAcceptor;
pub use client::{ClientTlsSettings, client_config, connect};
pub use config::server_config;
use config::{certified_key, provider, root_store, tls_error};
use handshake::{
    ConfigCache, first_byte, handshake, handshake_error, handshake_failed, read_handshake_bytes,
};
pub use info::TlsInfo;
pub(crate) use info::info;

/// Default time a client has to finish its handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on handshakes in progress at once.
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;

/// A certificate chain and its private key, as PEM.
#[derive(Debug, Clone)]
pub struct PemIdentity {
    /// The certificate chain (leaf first).
    pub cert: Vec<u8>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Vec<u8>,
}

/// Picks the certificate for a client's hello at handshake time, given its SNI name (if any);
/// `None` means the default certificate. For certificates that are not known up front.
#[derive(Clone)]
pub struct SniCallback(
    #[allow(clippy::type_complexity)]
    pub  Arc<
        dyn Fn(Option<String>) -> Pin<Box<dyn Future<Output = Option<PemIdentity>> + Send>>
            + Send
            + Sync,
    >,
);

impl std::fmt::Debug for SniCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniCallback")
    }
}

/// Server TLS settings.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The default certificate.
    pub identity: PemIdentity,
    /// Certificates chosen by server name: `"a.example"` or `"*.b.example"` (one label).
    pub sni: Vec<(String, PemIdentity)>,
    /// ALPN protocols in preference order.
    pub alpn: Vec<Vec<u8>>,
    /// Accept TLS 1.2 as well as 1.3 (default true).
    pub tls12: bool,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once; more wait. A client takes a slot when its first
    /// handshake byte arrives, so silent sockets hold none (the timeout closes them).
    pub max_handshakes: usize,
    /// CA certificates (PEM) that client certificates must chain to; asks clients for one.
    pub client_ca: Option<Vec<u8>>,
    /// Ask clients for a certificate, verified against `client_ca` (which it needs; the CA
    /// alone asks too). For front ends whose users ask explicitly, like Node's `requestCert`.
    pub request_client_cert: bool,
    /// Refuse clients without a valid certificate (needs `client_ca`).
    pub require_client_cert: bool,
    /// Chooses certificates at handshake time; `sni` and the default apply when it returns `None`.
    pub sni_callback: Option<SniCallback>,
}

impl TlsSettings {
    /// Settings with one certificate and the defaults.
    pub fn new(identity: PemIdentity) -> Self {
        Self {
            identity,
            sni: Vec::new(),
            alpn: Vec::new(),
            tls12: true,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            client_ca: None,
            request_client_cert: false,
            require_client_cert: false,
            sni_callback: None,
        }
    }
}
