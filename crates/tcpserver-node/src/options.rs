//! `BindingListenOptions` (what the TypeScript layer passes) → `tcpserver_core::ServerConfig`.
//! Only conversion happens here: numbers must be integers that fit; ranges are the core's.

use std::time::Duration;

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use tcpserver_core::driver::{DriveOptions, TimeoutKind};
use tcpserver_core::tls::{ClientTlsSettings, PemIdentity, TlsSettings};
use tcpserver_core::{
    Address, Error, InvalidKind, KeepAlive, LimitPolicy, ProxyProtocol, ServerConfig,
    address_from_parts, parse_listen_address,
};

/// One listen address: `address` (`"host:port"`) or `host` + `port`.
#[napi(object)]
pub struct BindingAddressInput {
    /// `"127.0.0.1:5000"`, `"[::1]:0"`, `":8080"`, `"unix:/path"`.
    pub address: Option<String>,
    /// Host name or IP literal.
    pub host: Option<String>,
    /// Port (0 picks a free one).
    pub port: Option<f64>,
}

/// Listen options, flattened. `undefined` means "the core's default".
#[napi(object)]
pub struct BindingListenOptions {
    /// Addresses to listen on.
    pub addresses: Vec<BindingAddressInput>,
    /// Hand connections to worker threads that attach with `attachWorker(workersKey)`.
    pub workers: Option<bool>,
    /// Permission bits of Unix socket files.
    pub unix_permissions: Option<f64>,
    /// Inherited listening sockets to accept on.
    pub fds: Option<Vec<f64>>,
    /// Accept loops per address.
    pub loops: Option<f64>,
    /// `SO_REUSEPORT`.
    pub reuse_port: Option<bool>,
    /// `TCP_FASTOPEN` queue length.
    pub fast_open: Option<f64>,
    /// `TCP_DEFER_ACCEPT` seconds.
    pub defer_accept: Option<f64>,
    /// Listen backlog.
    pub backlog: Option<f64>,
    /// `IPV6_V6ONLY`.
    pub ipv6_only: Option<bool>,
    /// `TCP_NODELAY` on accepted sockets.
    pub no_delay: Option<bool>,
    /// Keep-alive on accepted sockets.
    pub keep_alive: Option<bool>,
    /// Keep-alive idle time before the first probe, ms.
    pub keep_alive_initial_delay: Option<f64>,
    /// Keep-alive probe interval, ms.
    pub keep_alive_interval: Option<f64>,
    /// Keep-alive probe count.
    pub keep_alive_count: Option<f64>,
    /// Concurrent connection limit.
    pub max_connections: Option<f64>,
    /// `"hold"` (default) or `"refuse"`: new clients while `maxConnections` are open.
    pub on_limit: Option<String>,
    /// Concurrent connections per client address.
    pub max_connections_per_ip: Option<f64>,
    /// IPv6 prefix length grouping clients for `maxConnectionsPerIp`.
    pub max_connections_per_ip_v6_prefix: Option<f64>,
    /// Shut down after this many accepted connections.
    pub max_accept_connections: Option<f64>,
    /// Per-connection bound on unconsumed input and queued output, bytes.
    pub high_water_mark: Option<f64>,
    /// Idle timeout, ms (0 = off).
    pub idle_timeout: Option<f64>,
    /// Write timeout, ms (0 = off).
    pub write_timeout: Option<f64>,
    /// Read timeout, ms (0 = off); JavaScript applies it (reads wait there).
    pub read_timeout: Option<f64>,
    /// TLS termination.
    pub tls: Option<BindingTlsOptions>,
    /// PROXY protocol on every listener.
    pub proxy_protocol: Option<BindingProxyProtocol>,
}

/// PROXY protocol settings.
#[napi(object)]
pub struct BindingProxyProtocol {
    /// Networks allowed to connect and send headers (`10.0.0.0/8`, `::1/128`).
    pub trusted: Vec<String>,
    /// Time to send the header, ms.
    pub timeout: Option<f64>,
}

/// An SNI entry: a host name (or `*.name`) and its certificate.
#[napi(object)]
pub struct BindingSniEntry {
    /// `a.example` or `*.b.example`.
    pub name: String,
    /// PEM certificate chain.
    pub cert: Buffer,
    /// PEM private key.
    pub key: Buffer,
}

/// TLS settings.
#[napi(object)]
pub struct BindingTlsOptions {
    /// PEM certificate chain.
    pub cert: Buffer,
    /// PEM private key.
    pub key: Buffer,
    /// Certificates by server name.
    pub sni: Option<Vec<BindingSniEntry>>,
    /// ALPN protocols in preference order.
    pub alpn: Option<Vec<String>>,
    /// `TLSv1.2` (default) or `TLSv1.3`.
    pub min_version: Option<String>,
    /// Handshake deadline, ms.
    pub handshake_timeout: Option<f64>,
    /// Handshakes in progress at once.
    pub max_handshakes: Option<f64>,
    /// CA certificates (PEM) for client certificates.
    pub ca: Option<Buffer>,
    /// Ask clients for a certificate (verified against `ca`).
    pub request_cert: Option<bool>,
    /// Refuse clients without a valid certificate.
    pub require_cert: Option<bool>,
    /// JavaScript chooses certificates at handshake time (TLS_SNI events, `resolveSni`).
    pub sni_callback: Option<bool>,
}

/// Client TLS settings of an outbound connection.
#[napi(object)]
pub struct BindingClientTlsOptions {
    /// SNI name and the name the server certificate must match (default: the host).
    pub servername: Option<String>,
    /// CA certificates (PEM) to trust (default: the Mozilla roots).
    pub ca: Option<Buffer>,
    /// ALPN protocols in preference order.
    pub alpn: Option<Vec<String>>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub cert: Option<Buffer>,
    /// Client private key (PEM).
    pub key: Option<Buffer>,
    /// Handshake deadline, ms.
    pub handshake_timeout: Option<f64>,
}

pub(crate) fn to_client_tls(o: &BindingClientTlsOptions) -> Result<ClientTlsSettings, Error> {
    let identity = match (&o.cert, &o.key) {
        (Some(cert), Some(key)) => Some(PemIdentity {
            cert: cert.to_vec(),
            key: key.to_vec(),
        }),
        (None, None) => None,
        _ => {
            return Err(Error::value(
                "tls.cert",
                "a client certificate needs both `cert` and `key`",
            ));
        }
    };
    Ok(ClientTlsSettings {
        server_name: o.servername.clone(),
        ca: o.ca.as_ref().map(|c| c.to_vec()),
        alpn: alpn(o.alpn.as_ref()),
        identity,
        handshake_timeout: o
            .handshake_timeout
            .map(|ms| millis("tls.handshakeTimeout", ms))
            .transpose()?,
    })
}

/// ALPN names as bytes (their lengths are the core's to check).
fn alpn(list: Option<&Vec<String>>) -> Vec<Vec<u8>> {
    list.into_iter()
        .flatten()
        .map(|p| p.as_bytes().to_vec())
        .collect()
}

/// A duration in ms (integers only; its range is the core's).
fn millis(option: &'static str, ms: f64) -> Result<Duration, Error> {
    Ok(Duration::from_millis(integer(option, ms, 0.0, MAX_SAFE)?))
}

pub(crate) fn to_tls(o: &BindingTlsOptions) -> Result<TlsSettings, Error> {
    let identity = |cert: &Buffer, key: &Buffer| PemIdentity {
        cert: cert.to_vec(),
        key: key.to_vec(),
    };
    let mut s = TlsSettings::new(identity(&o.cert, &o.key));
    for e in o.sni.iter().flatten() {
        s.sni.push((e.name.clone(), identity(&e.cert, &e.key)));
    }
    s.alpn = alpn(o.alpn.as_ref());
    // Like Node: a CA alone does not ask clients for certificates; requestCert does (and the
    // core refuses either without a CA).
    s.request_client_cert = o.request_cert == Some(true);
    s.require_client_cert = o.require_cert == Some(true);
    if s.request_client_cert || s.require_client_cert {
        s.client_ca = o.ca.as_ref().map(|c| c.to_vec());
    }
    s.tls12 = match o.min_version.as_deref() {
        None | Some("TLSv1.2") => true,
        Some("TLSv1.3") => false,
        Some(_) => {
            return Err(Error::value(
                "tls.minVersion",
                "must be 'TLSv1.2' or 'TLSv1.3'",
            ));
        }
    };
    if let Some(ms) = o.handshake_timeout {
        s.handshake_timeout = millis("tls.handshakeTimeout", ms)?;
    }
    if let Some(n) = o.max_handshakes {
        s.max_handshakes = integer("tls.maxHandshakes", n, 0.0, MAX_SAFE)? as usize;
    }
    Ok(s)
}

/// Per-connection settings the binding keeps: the driver's, and the read timeout that
/// JavaScript applies.
pub(crate) struct DriverSettings {
    pub(crate) drive: DriveOptions,
    pub(crate) read_timeout: Option<Duration>,
}

/// A JS number that must be an integer in `[min, max]` (representability, not policy).
pub(crate) fn integer(option: &'static str, v: f64, min: f64, max: f64) -> Result<u64, Error> {
    if !v.is_finite() || v.fract() != 0.0 {
        return Err(Error::InvalidOption {
            option,
            reason: "must be an integer".into(),
            invalid: InvalidKind::Range,
        });
    }
    if v < min || v > max {
        return Err(Error::InvalidOption {
            option,
            reason: format!("must be >= {min} and <= {max}"),
            invalid: InvalidKind::Range,
        });
    }
    Ok(v as u64)
}

const U32: f64 = u32::MAX as f64;
pub(crate) const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

fn secs(option: &'static str, ms: f64) -> Result<Duration, Error> {
    let ms = integer(option, ms, 0.0, MAX_SAFE)?;
    // The kernel counts keep-alive in whole seconds; round up so 1500 ms is 2 s, not 1 s.
    Ok(Duration::from_secs(ms.div_ceil(1000)))
}

pub(crate) fn to_config(o: &BindingListenOptions) -> Result<(ServerConfig, DriverSettings), Error> {
    let mut c = ServerConfig::default();
    for a in &o.addresses {
        let addr = match (&a.address, &a.host, a.port) {
            (Some(s), None, None) => match parse_listen_address(s)? {
                Address::Ip(a) => a,
                Address::Unix(path) => {
                    c.unix_address(path);
                    continue;
                }
            },
            (None, host, Some(port)) => {
                let port = integer("port", port, 0.0, 65535.0)?;
                address_from_parts(host.as_deref().unwrap_or(""), port as u32)?
            }
            _ => {
                return Err(Error::InvalidOption {
                    option: "address",
                    reason: "give either `address: 'host:port'` or `{ host, port }`".into(),
                    invalid: InvalidKind::Value,
                });
            }
        };
        c.address(addr);
    }
    if let Some(mode) = o.unix_permissions {
        c.unix_permissions(integer("unixPermissions", mode, 0.0, U32)? as u32);
    }
    for &fd in o.fds.iter().flatten() {
        c.listener_fd(integer("fd", fd, 0.0, f64::from(i32::MAX))? as i32);
    }
    if let Some(v) = o.loops {
        c.loops(integer("loops", v, 0.0, U32)? as usize);
    }
    if let Some(v) = o.reuse_port {
        c.reuse_port(v);
    }
    if let Some(v) = o.fast_open {
        c.fast_open(integer("fastOpen", v, 0.0, U32)? as u32);
    }
    if let Some(v) = o.defer_accept {
        c.defer_accept(integer("deferAccept", v, 0.0, U32)? as u32);
    }
    if let Some(v) = o.backlog {
        c.backlog(integer("backlog", v, 0.0, U32)? as u32);
    }
    if let Some(v) = o.ipv6_only {
        c.ipv6_only(v);
    }
    if let Some(v) = o.no_delay {
        c.no_delay(v);
    }
    if o.keep_alive == Some(true) {
        c.keep_alive(Some(keep_alive(o)?));
    }
    if let Some(v) = o.max_connections {
        c.max_connections(integer("maxConnections", v, 0.0, U32)? as usize);
    }
    match o.on_limit.as_deref() {
        None | Some("hold") => {}
        Some("refuse") => _ = c.limit_policy(LimitPolicy::Refuse),
        Some(_) => {
            return Err(Error::value("onLimit", "must be 'hold' or 'refuse'"));
        }
    }
    if let Some(v) = o.max_connections_per_ip {
        let prefix = o
            .max_connections_per_ip_v6_prefix
            .map(|p| integer("maxConnectionsPerIp.ipv6Prefix", p, 0.0, 255.0))
            .transpose()?;
        c.max_connections_per_ip(
            integer("maxConnectionsPerIp", v, 0.0, U32)? as u32,
            prefix.map(|p| p as u8),
        );
    }
    if let Some(p) = &o.proxy_protocol {
        let mut proxy = ProxyProtocol::new(&p.trusted)?;
        if let Some(ms) = p.timeout {
            proxy.header_timeout = millis("proxyProtocol.timeout", ms)?;
        }
        c.proxy_protocol(proxy);
    }
    if let Some(v) = o.max_accept_connections {
        c.max_accept_connections(integer("maxAcceptConnections", v, 0.0, MAX_SAFE)?);
    }
    c.validate()?;
    let mut drive = DriveOptions::default();
    if let Some(v) = o.high_water_mark {
        drive.high_water_mark = integer("highWaterMark", v, 0.0, MAX_SAFE)? as usize;
    }
    for (kind, ms) in [
        (TimeoutKind::Idle, o.idle_timeout),
        (TimeoutKind::Write, o.write_timeout),
    ] {
        drive.timeouts[kind] = timeout(kind.option(), ms)?;
    }
    drive.validate()?;
    let read_timeout = read_timeout(o.read_timeout)?;
    Ok((
        c,
        DriverSettings {
            drive,
            read_timeout,
        },
    ))
}

/// A timeout in ms as a `Duration` (`None` or 0: off). Conversion only: its range is the
/// core's (`DriveOptions::validate`, `Connections::set_timeout`, `check_timeout`).
pub(crate) fn timeout(option: &'static str, ms: Option<f64>) -> Result<Option<Duration>, Error> {
    let t = ms.map(|ms| millis(option, ms)).transpose()?;
    Ok(t.filter(|t| !t.is_zero()))
}

/// The read timeout (JavaScript applies it; no core structure holds it), checked by the core.
pub(crate) fn read_timeout(ms: Option<f64>) -> Result<Option<Duration>, Error> {
    let t = timeout("readTimeout", ms)?;
    tcpserver_core::check_timeout("readTimeout", t)?;
    Ok(t)
}

fn keep_alive(o: &BindingListenOptions) -> Result<KeepAlive, Error> {
    keep_alive_from(
        o.keep_alive_initial_delay,
        o.keep_alive_interval,
        o.keep_alive_count,
    )
}

pub(crate) fn keep_alive_from(
    delay: Option<f64>,
    interval: Option<f64>,
    count: Option<f64>,
) -> Result<KeepAlive, Error> {
    Ok(KeepAlive {
        time: delay
            .map(|v| secs("keepAlive.initialDelay", v))
            .transpose()?,
        interval: interval
            .map(|v| secs("keepAlive.interval", v))
            .transpose()?,
        retries: count
            .map(|v| integer("keepAlive.count", v, 0.0, U32).map(|n| n as u32))
            .transpose()?,
    })
}
