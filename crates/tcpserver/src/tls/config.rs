//! Server configurations: certificates from PEM, SNI choice, client-certificate roots.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::*;
use crate::error::{Error, Result};

pub(super) fn tls_error(option: &'static str, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        option,
        reason: reason.to_string(),
    }
}

pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and key and checks that they belong together.
pub(super) fn certified_key(
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
/// connection (the ranges first: [`TlsSettings::validate`]). [`TlsAcceptor`] calls it; use it directly to run rustls on your own I/O.
/// `ticketer` issues session tickets: keep one for the server's lifetime so that sessions
/// survive certificate reloads.
///
/// ```
/// use tcpserver_core::tls::{PemIdentity, TlsSettings};
///
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../__test__/fixtures/tls");
/// # let (cert, key) = (
/// #     std::fs::read(format!("{dir}/server.crt")).unwrap(),
/// #     std::fs::read(format!("{dir}/server.key")).unwrap(),
/// # );
/// let ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
/// let config = tcpserver_core::tls::server_config(&TlsSettings::new(PemIdentity { cert, key }), ticketer)?;
/// assert!(config.alpn_protocols.is_empty());
/// # Ok::<(), tcpserver_core::Error>(())
/// ```
pub fn server_config(
    s: &TlsSettings,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
) -> Result<Arc<rustls::ServerConfig>> {
    s.validate()?;
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
pub(super) fn root_store(option: &'static str, pem: &[u8]) -> Result<rustls::RootCertStore> {
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
