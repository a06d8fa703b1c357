//! Listen addresses: `"127.0.0.1:5000"`, `"[::1]:5000"`, `"[::]:5000"`, `":5000"`,
//! `"localhost:5000"`, or a host and a port given separately; `"unix:/path"` for a Unix
//! domain socket.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The prefix that marks a Unix domain socket path in address strings.
pub const UNIX_PREFIX: &str = "unix:";

/// A socket address: an IP address and port, or a Unix domain socket path.
///
/// ```
/// use tcpserver_core::{Address, parse_listen_address};
///
/// let ip = parse_listen_address("127.0.0.1:80").unwrap();
/// assert_eq!(ip.port(), Some(80));
/// let unix = parse_listen_address("unix:/run/app.sock").unwrap();
/// assert_eq!(unix, Address::Unix("/run/app.sock".into()));
/// assert_eq!(unix.to_string(), "unix:/run/app.sock");
/// assert_eq!(unix.ip(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IP address and port.
    Ip(SocketAddr),
    /// A Unix domain socket path; empty for an unnamed socket (typically a client's).
    Unix(PathBuf),
}

impl Address {
    /// The IP address and port, for IP addresses.
    pub fn as_ip(&self) -> Option<SocketAddr> {
        match self {
            Self::Ip(a) => Some(*a),
            Self::Unix(_) => None,
        }
    }

    /// The IP address, for IP addresses.
    pub fn ip(&self) -> Option<IpAddr> {
        self.as_ip().map(|a| a.ip())
    }

    /// The port, for IP addresses.
    pub fn port(&self) -> Option<u16> {
        self.as_ip().map(|a| a.port())
    }

    /// The path, for Unix domain socket addresses.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Ip(_) => None,
            Self::Unix(p) => Some(p),
        }
    }

    /// A Unix socket address as seen by the OS (unnamed and abstract ones become empty paths).
    #[cfg(unix)]
    pub(crate) fn from_unix(a: &tokio::net::unix::SocketAddr) -> Self {
        Self::Unix(a.as_pathname().map(Path::to_path_buf).unwrap_or_default())
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Self::Ip(a)
    }
}

impl PartialEq<SocketAddr> for Address {
    fn eq(&self, other: &SocketAddr) -> bool {
        self.as_ip() == Some(*other)
    }
}

/// `127.0.0.1:80`, `[::1]:80`, or `unix:/path`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(a) => a.fmt(f),
            Self::Unix(p) => write!(f, "{UNIX_PREFIX}{}", p.display()),
        }
    }
}

/// Parses a listen address: `unix:/path` (absolute or relative) for a Unix domain socket,
/// anything else as [`parse_address`] does. A path must be non-empty, shorter than the 108
/// bytes `sockaddr_un` holds, and free of NUL and newline characters.
pub fn parse_listen_address(input: &str) -> Result<Address> {
    match input.strip_prefix(UNIX_PREFIX) {
        Some(path) => unix_path(input, path).map(Address::Unix),
        None => parse_address(input).map(Address::Ip),
    }
}

/// Checks a Unix socket path (`input` is the whole address, for the error message).
pub(crate) fn unix_path(input: &str, path: &str) -> Result<PathBuf> {
    let bad = |reason: &str| Error::InvalidAddress {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    if path.is_empty() {
        return Err(bad("a Unix socket path is required after `unix:`"));
    }
    if path.contains(['\0', '\n']) {
        return Err(bad(
            "a Unix socket path cannot contain NUL or newline characters",
        ));
    }
    // sun_path is 108 bytes on Linux (104 on the BSDs), including the terminating NUL.
    if path.len() >= 104 {
        return Err(bad("a Unix socket path must be shorter than 104 bytes"));
    }
    Ok(PathBuf::from(path))
}

/// Parses `host:port`. IPv6 literals must be bracketed. An empty host (`":5000"`) means every
/// interface (`[::]`, dual-stack unless `ipv6Only`). Host names are resolved once, here;
/// names ending in a number (`127.1`, `017.0.0.1`) are refused, not read as IPv4.
pub fn parse_address(input: &str) -> Result<SocketAddr> {
    if let Ok(addr) = input.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = split_host_port(input)?;
    resolve_host(&host, port).map_err(|reason| Error::InvalidAddress {
        input: input.to_owned(),
        reason,
    })
}

/// Splits `host:port` (IPv6 literals in brackets) without resolving anything; an empty host
/// stays empty. Used by `connect`, which resolves asynchronously.
pub fn split_host_port(input: &str) -> Result<(String, u16)> {
    let bad = |reason: &str| Error::InvalidAddress {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = if let Some(rest) = input.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("missing `]` after IPv6 address"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| bad("expected `:port` after `]`"))?;
        (host, port)
    } else {
        input
            .rsplit_once(':')
            .ok_or_else(|| bad("expected `host:port`"))?
    };
    if host.contains(':') && !input.starts_with('[') {
        return Err(bad(
            "IPv6 addresses must be written in brackets, like `[::1]:5000`",
        ));
    }
    let port = parse_port(port).map_err(bad)?;
    if !host.is_empty() && host.parse::<IpAddr>().is_err() && !is_host_name(host) {
        return Err(bad("not an IP address or a valid host name"));
    }
    Ok((host.to_owned(), port))
}

/// Builds an address from a separate host and port (the `{ host, port }` form).
pub fn address_from_parts(host: &str, port: u32) -> Result<SocketAddr> {
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let port = u16::try_from(port).map_err(|_| Error::InvalidAddress {
        input: shown.clone(),
        reason: "port must be between 0 and 65535".to_owned(),
    })?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    resolve_host(host, port).map_err(|reason| Error::InvalidAddress {
        input: shown,
        reason,
    })
}

/// A name worth resolving: RFC 1123 characters, at most 253 bytes, and a last label that is
/// not a number. The resolver would read `1`, `127.1`, `0x7f.1` or `017.0.0.1` as IPv4 in
/// the legacy `inet_aton` forms (the last one octal: 15.0.0.1), and no DNS name ends in a
/// number (RFC 3696), so such hosts are refused rather than silently rewritten.
fn is_host_name(host: &str) -> bool {
    if host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return false;
    }
    let last = host.strip_suffix('.').unwrap_or(host);
    let last = last.rsplit('.').next().unwrap_or(last);
    let numeric = match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    };
    !numeric
}

fn parse_port(port: &str) -> std::result::Result<u16, &'static str> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("port must be a number between 0 and 65535");
    }
    port.parse::<u16>()
        .map_err(|_| "port must be a number between 0 and 65535")
}

fn resolve_host(host: &str, port: u16) -> std::result::Result<SocketAddr, String> {
    if host.is_empty() {
        return Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if !is_host_name(host) {
        return Err("not an IP address or a valid host name".to_owned());
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve host: {e}"))?
        .next()
        .ok_or_else(|| "host name resolved to no address".to_owned())
}

/// `ip` with everything after its first `prefix` bits cleared (the network it belongs to).
/// IPv4-mapped IPv6 addresses are treated as the IPv4 addresses they carry.
pub(crate) fn network_of(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            parse_address("127.0.0.1:5000").unwrap(),
            "127.0.0.1:5000".parse().unwrap()
        );
        assert_eq!(
            parse_address("[::1]:5000").unwrap(),
            "[::1]:5000".parse().unwrap()
        );
        assert_eq!(parse_address("[::]:0").unwrap(), "[::]:0".parse().unwrap());
        assert_eq!(parse_address(":80").unwrap(), "[::]:80".parse().unwrap());
        assert!(parse_address("localhost:5000").unwrap().ip().is_loopback());
        assert_eq!(
            address_from_parts("::1", 7).unwrap(),
            "[::1]:7".parse().unwrap()
        );
        assert_eq!(address_from_parts("127.0.0.1", 0).unwrap().port(), 0);
    }

    #[test]
    fn parses_unix_paths() {
        assert_eq!(
            parse_listen_address("unix:/tmp/a.sock").unwrap(),
            Address::Unix("/tmp/a.sock".into())
        );
        assert_eq!(
            parse_listen_address("unix:rel/a.sock").unwrap(),
            Address::Unix("rel/a.sock".into())
        );
        assert_eq!(
            parse_listen_address("[::1]:5").unwrap(),
            Address::Ip("[::1]:5".parse().unwrap())
        );
        let long = format!("unix:/{}", "x".repeat(103));
        for bad in ["unix:", "unix:/a\nb", "unix:/a\0b", long.as_str()] {
            let err = parse_listen_address(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidAddress { .. }),
                "{bad:?} gave {err:?}"
            );
        }
        let a = Address::Unix("/x".into());
        assert_eq!(
            (a.to_string(), a.port(), a.path()),
            ("unix:/x".into(), None, Some(Path::new("/x")))
        );
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            "",
            "5000",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:65536",
            "127.0.0.1:-1",
            "::1:5000",
            "[::1:5000",
            "[::1]5000",
            "host name:1",
            "127.0.0.1:5x",
            "a\0b:1",
            // Legacy numeric IPv4 forms the resolver would rewrite (found writing fuzz_parsing).
            "1:80",
            "127.1:80",
            "0x7f.1:80",
            "0x7f000001:80",
            "017.0.0.1:80",
            "2130706433:80",
            "127.0.0.1.:80",
            "host.123:80",
        ] {
            let err = parse_address(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidAddress { .. }),
                "{bad:?} gave {err:?}"
            );
        }
        assert!(address_from_parts("127.0.0.1", 70000).is_err());
        assert!(address_from_parts("127.1", 80).is_err());
        assert!(split_host_port("[017.0.0.1]:80").is_err());
        // Names that merely contain digits are names.
        assert_eq!(
            split_host_port("h1.example-2.com:80").unwrap(),
            ("h1.example-2.com".to_owned(), 80)
        );
        assert_eq!(
            split_host_port("1x.0xg:80").unwrap(),
            ("1x.0xg".to_owned(), 80)
        );
    }
}
