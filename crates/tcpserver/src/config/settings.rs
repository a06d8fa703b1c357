//! The ranges of the settings that are not the server's own: a connection's (`DriveOptions`:
//! its high-water mark and timeouts) and TLS's (server and client). Part of `config.rs`, the one
//! place for every option's range.

use std::time::Duration;

use crate::driver::{DriveOptions, TimeoutKind};
use crate::error::{Error, Result};
use crate::tls::{ClientTlsSettings, TlsSettings};

/// Smallest per-connection `high_water_mark` ([`DriveOptions::validate`]).
pub const MIN_HIGH_WATER_MARK: usize = 1024;
/// Largest per-connection `high_water_mark` ([`DriveOptions::validate`]).
pub const MAX_HIGH_WATER_MARK: usize = 1 << 30;
/// Longest timeout of any kind ([`check_timeout`]): `u32::MAX` seconds, about 136 years, so
/// that no deadline computed from it overflows.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(u32::MAX as u64);

/// Checks a timeout named `option` (`None` is off): at most [`MAX_TIMEOUT`]. Every
/// per-connection timeout goes through it: [`DriveOptions::validate`],
/// [`Connections::set_timeout`](crate::driver::Connections::set_timeout), a pipe's idle
/// timeout, and the read timeout a consumer applies itself.
pub fn check_timeout(option: &'static str, timeout: Option<Duration>) -> Result<()> {
    if timeout.is_some_and(|t| t > MAX_TIMEOUT) {
        return Err(Error::range(
            option,
            format!("must be >= 0 and <= {}", MAX_TIMEOUT.as_millis()),
        ));
    }
    Ok(())
}

impl DriveOptions {
    /// Checks every per-connection setting once: `high_water_mark` between
    /// [`MIN_HIGH_WATER_MARK`] and [`MAX_HIGH_WATER_MARK`] bytes, each timeout as
    /// [`check_timeout`] (named by [`TimeoutKind::option`]).
    pub fn validate(&self) -> Result<()> {
        if !(MIN_HIGH_WATER_MARK..=MAX_HIGH_WATER_MARK).contains(&self.high_water_mark) {
            return Err(Error::range(
                "highWaterMark",
                format!("must be >= {MIN_HIGH_WATER_MARK} and <= {MAX_HIGH_WATER_MARK}"),
            ));
        }
        for kind in TimeoutKind::ALL {
            check_timeout(kind.option(), self.timeouts[kind])?;
        }
        Ok(())
    }
}

/// ALPN protocol names: 1 to 255 bytes each (RFC 7301).
fn check_alpn(alpn: &[Vec<u8>]) -> Result<()> {
    if alpn.iter().any(|p| p.is_empty() || p.len() > 255) {
        return Err(Error::value(
            "tls.alpn",
            "protocol names must be 1 to 255 bytes",
        ));
    }
    Ok(())
}

/// A TLS handshake deadline: 1 ms to [`MAX_TIMEOUT`].
fn check_handshake_timeout(timeout: Duration) -> Result<()> {
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(Error::range(
            "tls.handshakeTimeout",
            format!("must be >= 1 and <= {}", MAX_TIMEOUT.as_millis()),
        ));
    }
    Ok(())
}

impl TlsSettings {
    /// Checks the values that need no parsing: ALPN names of 1 to 255 bytes, a handshake
    /// timeout of 1 ms to [`MAX_TIMEOUT`], at least one handshake at a time, and CA
    /// certificates whenever client certificates are asked for. The certificates themselves are
    /// checked as they are loaded ([`server_config`](crate::tls::server_config), which calls
    /// this first).
    pub fn validate(&self) -> Result<()> {
        check_alpn(&self.alpn)?;
        check_handshake_timeout(self.handshake_timeout)?;
        if self.max_handshakes == 0 {
            return Err(Error::range("tls.maxHandshakes", "must be at least 1"));
        }
        if (self.request_client_cert || self.require_client_cert) && self.client_ca.is_none() {
            return Err(Error::value(
                "tls.ca",
                "requestCert/requireCert need the CA certificates that clients must chain to",
            ));
        }
        Ok(())
    }
}

impl ClientTlsSettings {
    /// Checks ALPN names (1 to 255 bytes) and the handshake timeout (1 ms to
    /// [`MAX_TIMEOUT`]); [`client_config`](crate::tls::client_config) calls this first.
    pub fn validate(&self) -> Result<()> {
        check_alpn(&self.alpn)?;
        self.handshake_timeout
            .map_or(Ok(()), check_handshake_timeout)
    }
}
