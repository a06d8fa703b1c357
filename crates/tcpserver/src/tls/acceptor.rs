//! The server side of handshakes: slots, the timeout, SNI callbacks, reloads and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::server::ServerConnection;
use tokio::sync::Semaphore;

use super::*;
use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::tls_io::{SocketIo, write_tls};

/// A server's TLS state: the current configuration (swappable) and the handshake limits.
/// Share one per server (`Arc`) between all its connections; see the [module docs](super)
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
