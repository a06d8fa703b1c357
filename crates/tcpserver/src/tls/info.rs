//! What a TLS connection negotiated.

/// IANA names (`TLS_AES_128_GCM_SHA256`); rustls spells TLS 1.3 suites `TLS13_…`.
fn iana_cipher(name: &str) -> String {
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_owned(),
    }
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
