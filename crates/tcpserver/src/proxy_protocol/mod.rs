//! The PROXY protocol (HAProxy's, versions 1 and 2) on listeners behind a load balancer:
//! every connection starts with a header naming the real client, read before the handler (and
//! before TLS) runs. Only trusted sources may send one; everything else is refused and
//! counted by reason. Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::stream::Stream;
use socket2::SockRef;
use tokio::io::{AsyncReadExt, Interest};

use crate::addr::network_of;

mod tlv;

use crate::error::{Error, Result};
use tlv::check_tlvs;
pub use tlv::crc32c;

/// Version 2's signature: the first 12 bytes of every v2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included (spec, section 2.1).
const V1_MAX: usize = 107;
/// Default time a trusted source has to send its header.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// An IP network such as `10.0.0.0/8` or `::1/128` (a bare address is a single host).
///
/// ```
/// let net: tcpserver_core::Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(net.contains("::ffff:10.1.2.3".parse().unwrap())); // IPv4-mapped counts as IPv4
/// assert!(!net.contains("192.0.2.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<tcpserver_core::Cidr>().is_err());
/// # Ok::<(), tcpserver_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && network_of(ip, self.prefix) == self.network
    }
}

impl FromStr for Cidr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::value(
                "proxyProtocol.trusted",
                format!("`{s}` is not an IP network like 10.0.0.0/8 or ::1/128: {why}"),
            )
        };
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = ip.parse().map_err(|_| bad("bad address"))?;
        let ip = ip.to_canonical();
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| bad("bad prefix length"))?,
        };
        let network = Self {
            network: ip,
            prefix,
        };
        // Host bits set (10.0.0.1/8) usually means a typo: refuse instead of guessing.
        if network_of(ip, prefix) != ip {
            return Err(bad("host bits are set"));
        }
        Ok(network)
    }
}

/// PROXY protocol settings of a listener, given to
/// [`ServerConfig::proxy_protocol`](crate::ServerConfig::proxy_protocol).
///
/// ```
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Only the load balancers (here: this machine) may send headers; others are refused.
/// let mut proxy = tcpserver_core::ProxyProtocol::new(&["127.0.0.1", "10.0.0.0/8"])?;
/// proxy.header_timeout = Duration::from_secs(2);
/// let mut config = tcpserver_core::ServerConfig::new("127.0.0.1:0".parse()?);
/// config.proxy_protocol(proxy);
/// let server = tcpserver_core::Server::bind(&config, |mut conn| async move {
///     // The real client, from the header; the balancer is in `proxied_by`.
///     let info = conn.info().clone();
///     let reply = format!("{} via {}", info.peer_addr, info.proxied_by.unwrap().ip());
///     let _ = conn.write_all(reply.as_bytes()).await;
/// })?;
///
/// // What HAProxy's `send-proxy` would send before the client's bytes.
/// let mut balancer = tokio::net::TcpStream::connect(server.local_addrs()[0]).await?;
/// balancer.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n").await?;
/// let mut reply = String::new();
/// balancer.read_to_string(&mut reply).await?;
/// assert_eq!(reply, "203.0.113.7:56324 via 127.0.0.1");
/// assert_eq!(server.stats().proxy_headers, 1);
/// server.shutdown(None).await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocol {
    /// Sources allowed to connect (and whose header is believed); others are refused.
    pub trusted: Vec<Cidr>,
    /// Time a trusted source has to send its complete header.
    pub header_timeout: Duration,
}

impl ProxyProtocol {
    /// Parses `trusted` networks (`10.0.0.0/8`, `::1/128`, `192.0.2.7`).
    pub fn new<S: AsRef<str>>(trusted: &[S]) -> Result<Self> {
        if trusted.is_empty() {
            return Err(Error::value(
                "proxyProtocol.trusted",
                "name at least one trusted network (the load balancers' addresses)",
            ));
        }
        Ok(Self {
            trusted: trusted
                .iter()
                .map(|s| s.as_ref().parse())
                .collect::<Result<_>>()?,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
        })
    }

    /// Whether connections from `ip` may send headers.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A proxied connection: the client's address and the address it connected to.
    Proxy {
        source: SocketAddr,
        dest: SocketAddr,
    },
    /// The proxy's own connection (health checks, `LOCAL`), or an address family the
    /// protocol carries but TCP servers cannot use (`UNKNOWN`, UNIX, UDP): the socket's own
    /// addresses stay.
    Local,
}

/// How much of the header the first bytes announce.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Too few bytes to tell yet.
    NeedMore,
    /// A header of this many bytes.
    Complete(usize),
}

/// Why a connection was refused; stable names for the counters.
pub(crate) type Reason = &'static str;

/// Finds the header's length in the first bytes of a connection (without consuming them).
pub(crate) fn framing(peeked: &[u8]) -> std::result::Result<Framing, Reason> {
    let sig = &V2_SIGNATURE[..peeked.len().min(12)];
    if peeked.starts_with(sig) {
        if peeked.len() < 16 {
            return Ok(Framing::NeedMore);
        }
        let len = u16::from_be_bytes([peeked[14], peeked[15]]) as usize;
        return Ok(Framing::Complete(16 + len));
    }
    let proxy = &b"PROXY "[..peeked.len().min(6)];
    if peeked.starts_with(proxy) {
        return match peeked.windows(2).position(|w| w == b"\r\n") {
            Some(pos) if pos + 2 <= V1_MAX => Ok(Framing::Complete(pos + 2)),
            Some(_) => Err("malformed"),
            None if peeked.len() >= V1_MAX => Err("malformed"),
            None => Ok(Framing::NeedMore),
        };
    }
    Err("not_proxy")
}

/// Parses a complete header (as framed by [`framing`]).
pub(crate) fn parse(header: &[u8]) -> std::result::Result<Header, Reason> {
    if header.starts_with(V2_SIGNATURE) {
        parse_v2(header)
    } else {
        parse_v1(header)
    }
}

fn parse_v1(header: &[u8]) -> std::result::Result<Header, Reason> {
    let line = header
        .strip_suffix(b"\r\n")
        .and_then(|l| std::str::from_utf8(l).ok())
        .ok_or("malformed")?;
    let mut parts = line.split(' ');
    if parts.next() != Some("PROXY") {
        return Err("malformed");
    }
    let family = parts.next().ok_or("malformed")?;
    if family == "UNKNOWN" {
        // The rest of the line is to be ignored (spec 2.1).
        return Ok(Header::Local);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err("malformed");
    };
    let ip = |s: &str| -> std::result::Result<IpAddr, Reason> {
        let ip = match family {
            "TCP4" => IpAddr::V4(s.parse().map_err(|_| "malformed")?),
            "TCP6" => IpAddr::V6(s.parse().map_err(|_| "malformed")?),
            _ => return Err("malformed"),
        };
        Ok(ip)
    };
    // Ports are decimal without leading zeros or signs (spec 2.1).
    let port = |s: &str| -> std::result::Result<u16, Reason> {
        if s.is_empty()
            || (s.len() > 1 && s.starts_with('0'))
            || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("malformed");
        }
        s.parse().map_err(|_| "malformed")
    };
    Ok(Header::Proxy {
        source: SocketAddr::new(ip(src)?, port(sport)?),
        dest: SocketAddr::new(ip(dst)?, port(dport)?),
    })
}

fn parse_v2(header: &[u8]) -> std::result::Result<Header, Reason> {
    let ver_cmd = header[12];
    if ver_cmd >> 4 != 2 {
        return Err("unsupported_version");
    }
    let body = &header[16..];
    match ver_cmd & 0x0f {
        0 => return Ok(Header::Local),
        1 => {}
        _ => return Err("unsupported_command"),
    }
    let addr =
        |ip: IpAddr, port: &[u8]| SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]]));
    // The family byte: address family in the high nibble, transport in the low one. Only
    // TCP over IPv4/IPv6 gives addresses a TCP server can use; the others are accepted with
    // their addresses ignored (spec 2.2). Whatever follows the addresses is TLVs.
    let (addr_len, header_says) = match header[13] {
        0x11 => {
            let b = body.get(..12).ok_or("malformed")?;
            let ip = |o: usize| IpAddr::V4(Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]));
            let h = Header::Proxy {
                source: addr(ip(0), &b[8..10]),
                dest: addr(ip(4), &b[10..12]),
            };
            (12, h)
        }
        0x21 => {
            let b = body.get(..36).ok_or("malformed")?;
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&b[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let h = Header::Proxy {
                source: addr(ip(0), &b[32..34]),
                dest: addr(ip(16), &b[34..36]),
            };
            (36, h)
        }
        0x12 => (12, Header::Local),
        0x22 => (36, Header::Local),
        0x31 | 0x32 => (216, Header::Local),
        // UNSPEC: the whole block is to be ignored (spec 2.2), as HAProxy does.
        0x00 => return Ok(Header::Local),
        _ => return Err("malformed"),
    };
    if body.len() < addr_len {
        return Err("malformed");
    }
    check_tlvs(header, 16 + addr_len)?;
    Ok(header_says)
}

/// For the fuzz targets (`crates/tcpserver/fuzz`), not an API: treats `data` as the first
/// bytes of a connection, frames a header as [`read_header`] does (which peeks at most
/// 107 bytes) and parses it when complete. `None`: more bytes needed; `Some(Ok(None))`: a
/// header that keeps the socket's addresses; `Some(Ok(Some((source, dest))))`: a proxied
/// client. Checks on the way that the framing never contradicts itself on a shorter prefix.
#[doc(hidden)]
#[allow(clippy::type_complexity)]
pub fn fuzz_header(
    data: &[u8],
) -> Option<std::result::Result<Option<(SocketAddr, SocketAddr)>, &'static str>> {
    let peeked = &data[..data.len().min(V1_MAX)];
    let framed = framing(peeked);
    for k in 0..peeked.len() {
        let earlier = framing(&peeked[..k]);
        assert!(
            earlier == Ok(Framing::NeedMore) || earlier == framed,
            "framing {k} bytes gave {earlier:?}, all {} gave {framed:?}",
            peeked.len()
        );
    }
    match framed {
        Ok(Framing::NeedMore) => None,
        Err(reason) => Some(Err(reason)),
        Ok(Framing::Complete(n)) => {
            assert!(n >= 8, "a header of {n} bytes");
            let header = data.get(..n)?;
            Some(parse(header).map(|h| match h {
                Header::Proxy { source, dest } => Some((source, dest)),
                Header::Local => None,
            }))
        }
    }
}

/// Reads exactly the header from `stream` (bytes after it stay in the socket for the
/// handler): peeks until the header's length is known, then reads that many bytes.
pub(crate) async fn read_header(stream: &mut Stream) -> std::result::Result<Header, Reason> {
    let mut peek = [MaybeUninit::<u8>::uninit(); V1_MAX];
    let total = loop {
        if stream.readable().await.is_err() {
            return Err("io");
        }
        let res = stream.try_io(Interest::READABLE, || {
            let n = SockRef::from(&*stream).peek(&mut peek)?;
            // SAFETY: `peek` (recv with MSG_PEEK) initialised the first `n` bytes.
            let peeked = unsafe { std::slice::from_raw_parts(peek.as_ptr().cast::<u8>(), n) };
            match (n, framing(peeked)) {
                (0, _) => Ok(Err("closed")),
                (_, Ok(Framing::Complete(total))) => Ok(Ok(total)),
                (_, Err(reason)) => Ok(Err(reason)),
                // Reporting WouldBlock clears readiness: the next `readable()` waits for
                // more bytes instead of spinning on the ones already here.
                (_, Ok(Framing::NeedMore)) => Err(io::ErrorKind::WouldBlock.into()),
            }
        });
        match res {
            Ok(Ok(total)) => break total,
            Ok(Err(reason)) => return Err(reason),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err("io"),
        }
    };
    let mut header = vec![0u8; total];
    match stream.read_exact(&mut header).await {
        Ok(_) => parse(&header),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err("closed"),
        Err(_) => Err("io"),
    }
}

#[cfg(test)]
mod tests;
