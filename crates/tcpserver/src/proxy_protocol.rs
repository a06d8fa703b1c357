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
use crate::error::{Error, Result};

/// Version 2's signature: the first 12 bytes of every v2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included (spec, section 2.1).
const V1_MAX: usize = 107;
/// Default time a trusted source has to send its header.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// An IP network such as `10.0.0.0/8` or `::1/128` (a bare address is a single host).
///
/// ```
/// let net: tcpserver::Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(net.contains("::ffff:10.1.2.3".parse().unwrap())); // IPv4-mapped counts as IPv4
/// assert!(!net.contains("192.0.2.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<tcpserver::Cidr>().is_err());
/// # Ok::<(), tcpserver::Error>(())
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
/// let mut proxy = tcpserver::ProxyProtocol::new(&["127.0.0.1", "10.0.0.0/8"])?;
/// proxy.header_timeout = Duration::from_secs(2);
/// let mut config = tcpserver::ServerConfig::new("127.0.0.1:0".parse()?);
/// config.proxy_protocol(proxy);
/// let server = tcpserver::Server::bind(&config, |mut conn| async move {
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

/// TLV types (spec 2.2.1 to 2.2.8) that the walker checks; others are skipped.
const PP2_TYPE_CRC32C: u8 = 0x03;
const PP2_TYPE_UNIQUE_ID: u8 = 0x05;
const PP2_TYPE_SSL: u8 = 0x20;
/// The longest unique ID the spec allows.
const UNIQUE_ID_MAX: usize = 128;

/// One TLV: its type and value.
type Tlv<'a> = (u8, &'a [u8]);

/// Splits `area` into TLVs, which must fill it exactly: a length that runs past the end, or
/// a stray byte or two too short for a TLV's 3-byte head, makes the header malformed.
fn tlvs(area: &[u8]) -> impl Iterator<Item = std::result::Result<Tlv<'_>, Reason>> {
    let mut rest = area;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(&[kind, hi, lo]) = rest.get(..3) else {
            rest = &[];
            return Some(Err("malformed"));
        };
        let len = u16::from_be_bytes([hi, lo]) as usize;
        let Some(value) = rest.get(3..3 + len) else {
            rest = &[];
            return Some(Err("malformed"));
        };
        rest = &rest[3 + len..];
        Some(Ok((kind, value)))
    })
}

/// Walks the TLVs of a version 2 `header` from `offset` (the end of the addresses): they
/// must fill the header exactly; a unique ID is at most 128 bytes; an SSL one's sub-TLVs
/// must fill it exactly; a CRC32C one (at most one) must hold the checksum of the whole
/// header (`bad_checksum` otherwise: the spec says to drop such a connection). ALPN,
/// authority, NETNS, NOOP and unknown types are skipped: nothing here uses them.
fn check_tlvs(header: &[u8], offset: usize) -> std::result::Result<(), Reason> {
    let mut at = offset;
    let mut checksum = None;
    for tlv in tlvs(&header[offset..]) {
        let (kind, value) = tlv?;
        match kind {
            PP2_TYPE_CRC32C => {
                let sent = <[u8; 4]>::try_from(value).map_err(|_| "malformed")?;
                if checksum
                    .replace((at + 3, u32::from_be_bytes(sent)))
                    .is_some()
                {
                    return Err("malformed");
                }
            }
            PP2_TYPE_UNIQUE_ID if value.len() > UNIQUE_ID_MAX => return Err("malformed"),
            PP2_TYPE_SSL => {
                // client (1 byte) and verify (4 bytes), then sub-TLVs (version, CN, cipher...).
                let subs = value.get(5..).ok_or("malformed")?;
                tlvs(subs).try_for_each(|t| t.map(drop))?;
            }
            _ => {}
        }
        at += 3 + value.len();
    }
    // Checked once the whole header is known to be well formed, so that a malformed one is
    // `malformed` whatever its checksum (found by the fuzz target `proxy_tlv`).
    if let Some((field, sent)) = checksum {
        // The checksum covers the whole header with its own 4 bytes as zeroes.
        let crc = crc32c_update(!0, &header[..field]);
        let crc = crc32c_update(crc, &[0; 4]);
        let crc = !crc32c_update(crc, &header[field + 4..]);
        if crc != sent {
            return Err("bad_checksum");
        }
    }
    Ok(())
}

/// The CRC-32C (Castagnoli) table, built at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78 // the Castagnoli polynomial, reflected
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Feeds `data` to a running CRC-32C (start with `!0`, finish with `!`).
fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The CRC-32C (Castagnoli) of `data`, as PROXY v2's `PP2_TYPE_CRC32C` carries it.
#[doc(hidden)]
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
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
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let h: Cidr = "::1".parse().unwrap();
        assert!(h.contains("::1".parse().unwrap()));
        assert!(!h.contains("::2".parse().unwrap()));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        assert!(
            !all.contains("127.0.0.1".parse().unwrap()),
            "v6 nets hold no v4 clients"
        );
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::1/129",
            "x/8",
            "10.0.0.0/",
            "",
            "/8",
        ] {
            let e = bad.parse::<Cidr>().unwrap_err();
            assert_eq!(e.option(), Some("proxyProtocol.trusted"), "{bad}");
        }
        assert!(ProxyProtocol::new::<&str>(&[]).is_err());
    }

    #[test]
    fn v1_headers() {
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
        assert_eq!(framing(&h[..10]), Ok(Framing::NeedMore));
        assert_eq!(framing(h), Ok(Framing::Complete(h.len())));
        assert_eq!(
            parse(h),
            Ok(Header::Proxy {
                source: sa("192.0.2.1:56324"),
                dest: sa("198.51.100.2:443")
            })
        );
        let h6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\nGET /";
        let Ok(Framing::Complete(n)) = framing(h6) else {
            panic!()
        };
        assert_eq!(
            parse(&h6[..n]),
            Ok(Header::Proxy {
                source: sa("[2001:db8::1]:1"),
                dest: sa("[2001:db8::2]:65535")
            })
        );
        assert_eq!(parse(b"PROXY UNKNOWN whatever\r\n"), Ok(Header::Local));
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 056324 443\r\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1 65536\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
            b"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err("malformed"),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(framing(&[b'P'; 200][..]), Err("not_proxy"));
        let mut long = b"PROXY ".to_vec();
        long.resize(200, b'x');
        assert_eq!(framing(&long), Err("malformed"));
        assert_eq!(framing(b"GET / HTTP/1.1\r\n"), Err("not_proxy"));
        assert_eq!(framing(b"\x16\x03\x01"), Err("not_proxy"));
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v2_headers() {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0, 1, 0xaa]); // a TLV (NOOP) to skip
        let h = v2(1, 0x11, &body);
        assert_eq!(framing(&h[..5]), Ok(Framing::NeedMore));
        assert_eq!(framing(&h[..15]), Ok(Framing::NeedMore));
        assert_eq!(framing(&h[..16]), Ok(Framing::Complete(h.len())));
        assert_eq!(
            parse(&h),
            Ok(Header::Proxy {
                source: sa("192.0.2.1:56324"),
                dest: sa("198.51.100.2:443")
            })
        );
        let mut body6 = vec![0u8; 36];
        body6[15] = 1;
        body6[31] = 2;
        body6[32..34].copy_from_slice(&7u16.to_be_bytes());
        body6[34..36].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(
            parse(&v2(1, 0x21, &body6)),
            Ok(Header::Proxy {
                source: sa("[::1]:7"),
                dest: sa("[::2]:8")
            })
        );
        assert_eq!(parse(&v2(0, 0x00, &[])), Ok(Header::Local));
        assert_eq!(parse(&v2(1, 0x31, &[0; 216])), Ok(Header::Local));
        assert_eq!(parse(&v2(1, 0x11, &[1, 2, 3])), Err("malformed"));
        assert_eq!(parse(&v2(1, 0x21, &[0; 12])), Err("malformed"));
        assert_eq!(parse(&v2(2, 0x11, &[0; 12])), Err("unsupported_command"));
        assert_eq!(parse(&v2(1, 0x41, &[0; 12])), Err("malformed"));
        let mut v3 = v2(1, 0x11, &[0; 12]);
        v3[12] = 0x31;
        assert_eq!(parse(&v3), Err("unsupported_version"));
    }

    /// A bit-at-a-time CRC-32C, independent of the table the parser uses.
    fn crc32c_bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0x82F6_3B78 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }

    fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut t = vec![kind];
        t.extend_from_slice(&(value.len() as u16).to_be_bytes());
        t.extend_from_slice(value);
        t
    }

    /// A PROXY TCP4 header (192.0.2.1:56324 → 198.51.100.2:443) followed by `tlvs`.
    fn v4_with(tlvs: &[u8]) -> Vec<u8> {
        let mut body = vec![192, 0, 2, 1, 198, 51, 100, 2];
        body.extend_from_slice(&56324u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(tlvs);
        v2(1, 0x11, &body)
    }

    /// Fills the CRC32C TLV's value (found at `at`) of `h` with the header's checksum.
    fn seal(mut h: Vec<u8>, at: usize) -> Vec<u8> {
        assert_eq!(&h[at..at + 3], &[PP2_TYPE_CRC32C, 0, 4]);
        h[at + 3..at + 7].fill(0);
        let crc = crc32c_bitwise(&h);
        h[at + 3..at + 7].copy_from_slice(&crc.to_be_bytes());
        h
    }

    fn proxied() -> std::result::Result<Header, Reason> {
        Ok(Header::Proxy {
            source: sa("192.0.2.1:56324"),
            dest: sa("198.51.100.2:443"),
        })
    }

    #[test]
    fn crc32c_matches_the_check_value() {
        // The CRC catalogue's check value for CRC-32/ISCSI (Castagnoli).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c_bitwise(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        assert_eq!(crc32c(&long), crc32c_bitwise(&long));
    }

    #[test]
    fn v2_tlvs_that_fill_the_header_are_accepted() {
        let mut ssl = vec![0x07, 0, 0, 0, 0]; // client: SSL, cert seen and verified; verify: 0
        ssl.extend(tlv(0x21, b"TLSv1.3"));
        ssl.extend(tlv(0x22, b"client.example"));
        let mut tlvs = Vec::new();
        tlvs.extend(tlv(0x01, b"h2"));
        tlvs.extend(tlv(0x02, b"example.com"));
        tlvs.extend(tlv(0x05, &[0xab; 128]));
        tlvs.extend(tlv(0x20, &ssl));
        tlvs.extend(tlv(0x30, b"blue"));
        tlvs.extend(tlv(0x04, &[])); // NOOP
        tlvs.extend(tlv(0xe0, b"custom")); // PP2_TYPE_MIN_CUSTOM: skipped
        let crc_at = 16 + 12 + tlvs.len();
        tlvs.extend(tlv(PP2_TYPE_CRC32C, &[0; 4]));
        let h = seal(v4_with(&tlvs), crc_at);
        assert_eq!(framing(&h), Ok(Framing::Complete(h.len())));
        assert_eq!(parse(&h), proxied());
        // The checksum first, as HAProxy sends it.
        let h = seal(v4_with(&tlv(PP2_TYPE_CRC32C, &[0; 4])), 28);
        assert_eq!(parse(&h), proxied());
        // IPv6 and UNIX blocks carry TLVs after their addresses too.
        let mut body6 = vec![0u8; 36];
        body6.extend(tlv(PP2_TYPE_CRC32C, &[0; 4]));
        assert!(matches!(
            parse(&seal(v2(1, 0x21, &body6), 52)),
            Ok(Header::Proxy { .. })
        ));
        let mut unix = vec![0u8; 216];
        unix.extend(tlv(0x01, b"http/1.1"));
        assert_eq!(parse(&v2(1, 0x31, &unix)), Ok(Header::Local));
        // LOCAL and UNSPEC blocks are discarded unread (spec 2.2), as HAProxy does.
        assert_eq!(parse(&v2(0, 0x11, &[1, 2, 3])), Ok(Header::Local));
        assert_eq!(parse(&v2(1, 0x00, &[9, 9])), Ok(Header::Local));
    }

    #[test]
    fn v2_tlvs_that_overrun_or_leave_bytes_are_malformed() {
        // A TLV claiming 10 bytes with 2 left.
        assert_eq!(
            parse(&v4_with(&[0x01, 0, 10, b'h', b'2'])),
            Err("malformed")
        );
        // A TLV whose length field itself is cut off.
        assert_eq!(parse(&v4_with(&[0x01, 0])), Err("malformed"));
        // A stray trailing byte (and two) after a complete TLV.
        let mut t = tlv(0x01, b"h2");
        t.push(0);
        assert_eq!(parse(&v4_with(&t)), Err("malformed"));
        t.push(0);
        assert_eq!(parse(&v4_with(&t)), Err("malformed"));
        // A lone byte where TLVs start.
        assert_eq!(parse(&v4_with(&[0x04])), Err("malformed"));
        // Addresses cut short by the header length are malformed, TLVs or not.
        assert_eq!(parse(&v2(1, 0x31, &[0; 215])), Err("malformed"));
        // A unique ID over 128 bytes.
        assert_eq!(parse(&v4_with(&tlv(0x05, &[1; 129]))), Err("malformed"));
        // An SSL TLV shorter than its fixed part, or whose sub-TLVs overrun it.
        assert_eq!(parse(&v4_with(&tlv(0x20, &[0; 4]))), Err("malformed"));
        assert_eq!(
            parse(&v4_with(&tlv(0x20, &[0, 0, 0, 0, 0, 0x22, 0, 9, b'x']))),
            Err("malformed")
        );
        // A CRC32C TLV must be 4 bytes, and there is at most one.
        assert_eq!(parse(&v4_with(&tlv(0x03, &[0; 3]))), Err("malformed"));
        let mut two = tlv(PP2_TYPE_CRC32C, &[0; 4]);
        two.extend(tlv(PP2_TYPE_CRC32C, &[0; 4]));
        assert_eq!(parse(&seal(v4_with(&two), 28)), Err("malformed"));
        // A wrong checksum before an overrun: malformed comes first (a fuzzer's finding).
        let mut t = tlv(PP2_TYPE_CRC32C, &[1; 4]);
        t.extend([0x01, 0, 10]);
        assert_eq!(parse(&v4_with(&t)), Err("malformed"));
    }

    #[test]
    fn v2_wrong_checksums_are_refused() {
        let good = seal(v4_with(&tlv(PP2_TYPE_CRC32C, &[0; 4])), 28);
        assert_eq!(parse(&good), proxied());
        // Any flipped bit, in the addresses, the ports or the checksum itself, is caught.
        for byte in [16usize, 19, 26, 27, 31, good.len() - 1] {
            let mut bad = good.clone();
            bad[byte] ^= 0x01;
            assert_eq!(
                parse(&bad),
                Err("bad_checksum"),
                "bit flipped in byte {byte}"
            );
        }
        // All zeroes (a sender that forgot to fill the field).
        assert_eq!(
            parse(&v4_with(&tlv(PP2_TYPE_CRC32C, &[0; 4]))),
            Err("bad_checksum")
        );
    }

    #[test]
    fn the_fuzz_entry_frames_and_parses() {
        let h = seal(v4_with(&tlv(PP2_TYPE_CRC32C, &[0; 4])), 28);
        assert_eq!(
            fuzz_header(&h),
            Some(Ok(Some((sa("192.0.2.1:56324"), sa("198.51.100.2:443")))))
        );
        assert_eq!(fuzz_header(&h[..20]), None);
        assert_eq!(fuzz_header(b"PROXY UNKNOWN\r\n"), Some(Ok(None)));
        assert_eq!(fuzz_header(b"GET /"), Some(Err("not_proxy")));
    }
}
