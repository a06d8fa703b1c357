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
//! use tcpserver::tls::{ClientTlsSettings, PemIdentity, TlsAcceptor, TlsSettings};
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
//! let client = tcpserver::tls::client_config(&ClientTlsSettings {
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
//! # Ok::<(), tcpserver::Error>(())
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::stream::Stream;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConnection};
use rustls::sign::CertifiedKey;
use tokio::io::Interest;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::tls_io::{SocketIo, write_tls};

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
            require_client_cert: false,
            sni_callback: None,
        }
    }
}

fn tls_error(option: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        option,
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and key and checks that they belong together.
fn certified_key(
    (option, key_option): (&'static str, &'static str),
    id: &PemIdentity,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&id.cert)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_error(option, format!("certificate is not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error(option, "no certificate found in the PEM input"));
    }
    let key = PrivateKeyDer::from_pem_slice(&id.key)
        .map_err(|e| tls_error(key_option, format!("private key is not valid PEM: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| tls_error(key_option, format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(tls_error(
                key_option,
                "the private key does not belong to the certificate",
            ));
        }
        Err(e) => {
            return Err(tls_error(
                option,
                format!("certificate cannot be used: {e}"),
            ));
        }
    }
    Ok(Arc::new(certified))
}

/// Picks a certificate by SNI: exact name, then `*.parent` for one extra label, then the default.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return Some(k.clone());
        }
        Some(self.default.clone())
    }
}

/// Builds a rustls server configuration; every problem is an error here, never at the first
/// connection. [`TlsAcceptor`] calls it; use it directly to run rustls on your own I/O.
/// `ticketer` issues session tickets: keep one for the server's lifetime so that sessions
/// survive certificate reloads.
///
/// ```
/// use tcpserver::tls::{PemIdentity, TlsSettings};
///
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../__test__/fixtures/tls");
/// # let (cert, key) = (
/// #     std::fs::read(format!("{dir}/server.crt")).unwrap(),
/// #     std::fs::read(format!("{dir}/server.key")).unwrap(),
/// # );
/// let ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
/// let config = tcpserver::tls::server_config(&TlsSettings::new(PemIdentity { cert, key }), ticketer)?;
/// assert!(config.alpn_protocols.is_empty());
/// # Ok::<(), tcpserver::Error>(())
/// ```
pub fn server_config(
    s: &TlsSettings,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
) -> Result<Arc<rustls::ServerConfig>> {
    let provider = provider();
    let default = certified_key(("tls.cert", "tls.key"), &s.identity, &provider)?;
    let mut exact = HashMap::new();
    let mut wildcard = HashMap::new();
    for (pattern, id) in &s.sni {
        let key = certified_key(("tls.sni", "tls.sni"), id, &provider)?;
        let pattern = pattern.to_ascii_lowercase();
        match pattern.strip_prefix("*.") {
            Some(parent) if !parent.is_empty() && !parent.contains('*') => {
                wildcard.insert(parent.to_owned(), key);
            }
            _ if !pattern.is_empty() && !pattern.contains('*') => {
                exact.insert(pattern, key);
            }
            _ => {
                return Err(tls_error(
                    "tls.sni",
                    format!("`{pattern}` is not a host name or `*.name`"),
                ));
            }
        }
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if s.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let clients = match &s.client_ca {
        None if s.require_client_cert => {
            return Err(tls_error(
                "tls.ca",
                "requireCert needs the CA certificates that clients must chain to",
            ));
        }
        None => rustls::server::WebPkiClientVerifier::no_client_auth(),
        Some(ca) => {
            let roots = root_store("tls.ca", ca)?;
            let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            );
            let builder = if s.require_client_cert {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            builder.build().map_err(|e| tls_error("tls.ca", e))?
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| tls_error("tls.minVersion", e))?
        .with_client_cert_verifier(clients)
        .with_cert_resolver(Arc::new(SniResolver {
            exact,
            wildcard,
            default,
        }));
    config.alpn_protocols = s.alpn.clone();
    // Session resumption: rustls keeps a 256-entry session cache and sends TLS 1.3 tickets by
    // default; stateless tickets let TLS 1.2 clients resume too.
    // One ticketer for the server's lifetime: sessions survive certificate reloads.
    config.ticketer = ticketer;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// CA certificates from PEM.
fn root_store(option: &'static str, pem: &[u8]) -> Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert =
            cert.map_err(|e| tls_error(option, format!("CA certificate is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| tls_error(option, e))?;
    }
    if roots.is_empty() {
        return Err(tls_error(
            option,
            "no CA certificate found in the PEM input",
        ));
    }
    Ok(roots)
}

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

/// Builds a rustls client configuration.
pub fn client_config(s: &ClientTlsSettings) -> Result<Arc<rustls::ClientConfig>> {
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
/// use tcpserver::tls::{ClientTlsSettings, DEFAULT_HANDSHAKE_TIMEOUT};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn demo() -> tcpserver::Result<()> {
/// let config = tcpserver::tls::client_config(&ClientTlsSettings::default())?;
/// let conn = tcpserver::connect("example.com", 443, &Default::default(), 1, CancellationToken::new())
///     .await?;
/// let session =
///     tcpserver::tls::connect(conn.stream(), config, "example.com", DEFAULT_HANDSHAKE_TIMEOUT).await?;
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

/// Drives a handshake, either side, to its end on `stream`; a failure sends rustls' alert first.
async fn handshake<D>(conn: &mut rustls::ConnectionCommon<D>, stream: &Stream) -> Result<()> {
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
async fn first_byte(stream: &Stream) -> io::Result<()> {
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
async fn read_handshake_bytes(
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
type ConfigCache = HashMap<(Vec<u8>, Vec<u8>), Arc<rustls::ServerConfig>>;

/// A server's TLS state: the current configuration (swappable) and the handshake limits.
/// Share one per server (`Arc`) between all its connections; see the [module docs](self)
/// for an example.
#[derive(Debug)]
pub struct TlsAcceptor {
    config: RwLock<Arc<rustls::ServerConfig>>,
    /// The settings, for configurations built per identity an SNI callback returns.
    settings: Mutex<TlsSettings>,
    dynamic: Mutex<ConfigCache>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    timeout_ms: AtomicU64,
    handshakes: Arc<Semaphore>,
    max_handshakes: Mutex<usize>,
    /// Failed handshakes by reason.
    pub(crate) failures: Mutex<HashMap<String, u64>>,
    pub(crate) succeeded: AtomicU64,
}

impl TlsAcceptor {
    /// Validates `settings` and builds the acceptor.
    pub fn new(settings: &TlsSettings) -> Result<Self> {
        if settings.max_handshakes == 0 {
            return Err(Error::range("tls.maxHandshakes", "must be at least 1"));
        }
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| tls_error("tls", e))?;
        Ok(Self {
            config: RwLock::new(server_config(settings, ticketer.clone())?),
            settings: Mutex::new(settings.clone()),
            dynamic: Mutex::new(HashMap::new()),
            ticketer,
            timeout_ms: AtomicU64::new(settings.handshake_timeout.as_millis() as u64),
            handshakes: Arc::new(Semaphore::new(settings.max_handshakes)),
            max_handshakes: Mutex::new(settings.max_handshakes),
            failures: Mutex::new(HashMap::new()),
            succeeded: AtomicU64::new(0),
        })
    }

    /// Swaps the certificates, ALPN, versions and handshake limits for new handshakes; open
    /// connections keep theirs.
    pub fn reload(&self, settings: &TlsSettings) -> Result<()> {
        if settings.max_handshakes == 0 {
            return Err(Error::range("tls.maxHandshakes", "must be at least 1"));
        }
        let config = server_config(settings, self.ticketer.clone())?;
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings.clone();
        self.dynamic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.timeout_ms
            .store(settings.handshake_timeout.as_millis() as u64, Relaxed);
        let mut max = self
            .max_handshakes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if settings.max_handshakes > *max {
            self.handshakes.add_permits(settings.max_handshakes - *max);
        } else {
            // Permits in use come back and are then forgotten as they free up.
            self.handshakes
                .forget_permits(*max - settings.max_handshakes);
        }
        *max = settings.max_handshakes;
        Ok(())
    }

    /// Reads up to the client's hello, asks `cb` for a certificate, then goes on with the
    /// configuration for it (built once per certificate, cached) or the default one.
    async fn accept_dynamic(
        &self,
        stream: &Stream,
        head: &[u8],
        cb: &SniCallback,
        default: Arc<rustls::ServerConfig>,
    ) -> Result<ServerConnection> {
        let mut acceptor = rustls::server::Acceptor::default();
        let mut head = head;
        let accepted = loop {
            if head.is_empty() {
                if !read_handshake_bytes(stream, |io| acceptor.read_tls(io)).await? {
                    continue;
                }
            } else {
                acceptor.read_tls(&mut head)?;
            }
            match acceptor.accept() {
                Ok(Some(accepted)) => break accepted,
                Ok(None) => {}
                Err((e, mut alert)) => {
                    let _ = alert.write_all(&mut SocketIo(stream));
                    return Err(handshake_error(&e));
                }
            }
        };
        let name = accepted.client_hello().server_name().map(str::to_owned);
        let config = match (cb.0)(name).await {
            Some(identity) => self.config_for(identity)?,
            None => default,
        };
        accepted.into_connection(config).map_err(|(e, mut alert)| {
            let _ = alert.write_all(&mut SocketIo(stream));
            handshake_error(&e)
        })
    }

    /// The configuration serving `identity`, built once and cached (bounded).
    fn config_for(&self, identity: PemIdentity) -> Result<Arc<rustls::ServerConfig>> {
        let key = (identity.cert.clone(), identity.key.clone());
        if let Some(c) = self
            .dynamic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let mut settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        settings.identity = identity;
        settings.sni.clear();
        // A certificate the callback chose that cannot be used fails this handshake only.
        let config = server_config(&settings, self.ticketer.clone())
            .map_err(|e| handshake_failed("sni_callback_certificate", &e.to_string()))?;
        let mut cache = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(key, config.clone());
        Ok(config)
    }

    /// Handshakes completed, and failures by reason.
    pub fn counts(&self) -> (u64, Vec<(String, u64)>) {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = failures.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort();
        (self.succeeded.load(Relaxed), v)
    }

    /// Runs the server side of a handshake on `stream`, bounded by the deadline and the cap.
    pub(crate) async fn accept(&self, stream: &Stream) -> Result<ServerConnection> {
        self.accept_with(stream, &[]).await
    }

    /// Like `accept`, with `head` (bytes already read from the socket) fed to rustls first.
    pub(crate) async fn accept_with(
        &self,
        stream: &Stream,
        head: &[u8],
    ) -> Result<ServerConnection> {
        let config = self
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let callback = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sni_callback
            .clone();
        let work = async {
            // A slot is taken when the ClientHello begins, not at accept: sockets that connect
            // and say nothing wait here (bounded by the handshake timeout, which runs from
            // accept) without holding slots that real clients need.
            if head.is_empty() {
                first_byte(stream).await?;
            }
            let _slot = self
                .handshakes
                .acquire()
                .await
                .map_err(|_| Error::ServerClosed)?;
            let mut conn = match &callback {
                Some(cb) => self.accept_dynamic(stream, head, cb, config).await?,
                None => {
                    let mut conn =
                        ServerConnection::new(config).map_err(|e| handshake_error(&e))?;
                    let mut head = head;
                    while !head.is_empty() {
                        conn.read_tls(&mut head)?;
                        if let Err(e) = conn.process_new_packets() {
                            let _ = write_tls(&mut *conn, stream).await;
                            return Err(handshake_error(&e));
                        }
                    }
                    conn
                }
            };
            handshake(&mut *conn, stream).await?;
            Ok(conn)
        };
        let timeout = Duration::from_millis(self.timeout_ms.load(Relaxed));
        let result = match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(handshake_failed("timeout", "handshake timeout")),
        };
        match &result {
            Ok(_) => {
                self.succeeded.fetch_add(1, Relaxed);
            }
            Err(e) => {
                let reason = match e {
                    Error::TlsHandshake { reason, .. } => (*reason).to_owned(),
                    Error::Io(_) => "io".to_owned(),
                    _ => "other".to_owned(),
                };
                *self
                    .failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(reason)
                    .or_default() += 1;
            }
        }
        result
    }
}

fn handshake_failed(reason: &'static str, message: &str) -> Error {
    Error::TlsHandshake {
        reason,
        message: message.to_owned(),
    }
}

/// A rustls error as a stable reason (the counters' key) plus its message.
fn handshake_error(e: &rustls::Error) -> Error {
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

/// IANA names (`TLS_AES_128_GCM_SHA256`); rustls spells TLS 1.3 suites `TLS13_…`.
fn iana_cipher(name: &str) -> String {
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_owned(),
    }
}

/// Whether the peer's TLS input ended with a `close_notify` alert, asked once its input ended
/// (rustls reads a bare FIN as "unexpected EOF", a close_notify as a clean end). An error
/// rustls already reported counts as no close_notify.
pub(crate) fn peer_sent_close_notify(conn: &mut rustls::Connection) -> bool {
    conn.process_new_packets()
        .is_ok_and(|state| state.peer_has_closed())
}

/// What a TLS connection negotiated.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub protocol: String,
    /// The cipher suite's IANA name.
    pub cipher: String,
    /// The negotiated ALPN protocol.
    pub alpn_protocol: Option<String>,
    /// The SNI name the client sent.
    pub server_name: Option<String>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// The peer's verified certificate chain (DER), leaf first; empty without one.
    pub peer_certificates: Vec<Vec<u8>>,
}

pub(crate) fn info(conn: &rustls::Connection) -> TlsInfo {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(v) => format!("{v:?}"),
        None => String::new(),
    };
    TlsInfo {
        protocol,
        cipher: conn
            .negotiated_cipher_suite()
            .map(|c| iana_cipher(c.suite().as_str().unwrap_or("unknown")))
            .unwrap_or_default(),
        alpn_protocol: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        server_name: match conn {
            rustls::Connection::Server(s) => s.server_name().map(str::to_owned),
            rustls::Connection::Client(_) => None,
        },
        resumed: matches!(conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed)),
        peer_certificates: conn
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.to_vec()).collect())
            .unwrap_or_default(),
    }
}
