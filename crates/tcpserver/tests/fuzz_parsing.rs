//! Property tests of the pure parsing and validation code: listen/connect addresses
//! (`parse_address`, `split_host_port`, `address_from_parts`) and `ServerConfig::validate`.
//!
//! Case counts are bounded so the file runs in a few seconds under `cargo test --workspace`;
//! `PROPTEST_CASES=100000 cargo test -p tcpserver-core --test fuzz_parsing --release` digs deeper.
//! Failures are not persisted to a seeds file: CI runs in a fresh clone, so one written there
//! would be lost, and a shrunk counterexample reads better as a named regression test (at the
//! bottom of this file) than as an opaque seed.
//!
//! Nothing here may reach a DNS server: inputs whose host part is a name are only split,
//! never resolved (`localhost` aside, which the resolver answers from `/etc/hosts`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use proptest::prelude::*;
use tcpserver_core::{
    DEFAULT_IPV6_PREFIX, Error, ErrorKind, InvalidKind, KeepAlive, LimitPolicy, MAX_LOOPS,
    ServerConfig, address_from_parts, parse_address, split_host_port,
};

/// `cases` unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------

/// The documented error contract of the address functions: an invalid-argument error about
/// `address` that echoes what was given.
fn assert_address_error(err: &Error, input: &str) {
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidArgument(InvalidKind::Value),
        "{input:?}: {err:?}"
    );
    assert_eq!(err.option(), Some("address"), "{input:?}: {err:?}");
    assert!(
        matches!(err, Error::InvalidAddress { input: i, .. } if i == input),
        "{input:?}: {err:?}"
    );
    assert!(!err.to_string().is_empty());
}

/// A host name as `split_host_port` admits it: RFC 1123 characters, at most 253 bytes, and
/// not ending in a number (which the resolver would read as a legacy IPv4 form).
fn is_name_shaped(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !ends_in_number(host)
}

/// The URL standard's "ends in a number": the last label (one trailing dot ignored) is
/// decimal digits, or `0x` and hex digits.
fn ends_in_number(host: &str) -> bool {
    let mut labels: Vec<&str> = host.split('.').collect();
    if labels.len() > 1 && labels.last() == Some(&"") {
        labels.pop();
    }
    let last = labels.last().copied().unwrap_or("");
    if let Some(hex) = last.strip_prefix("0x").or(last.strip_prefix("0X")) {
        return hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    !last.is_empty() && last.chars().all(|c| c.is_ascii_digit())
}

/// True when `parse_address(input)` would go to the resolver: the input is not a socket
/// address literal and its host part is a name. Such inputs are split but not resolved here.
fn would_resolve(input: &str) -> bool {
    input.parse::<SocketAddr>().is_err()
        && matches!(split_host_port(input), Ok((host, _))
            if !host.is_empty() && host.parse::<IpAddr>().is_err() && host != "localhost")
}

/// `host:port` as the string form spells it (IPv6 literals in brackets).
fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Checks everything that must hold for one input string, whatever it is.
fn check_address_string(input: &str) {
    let split = split_host_port(input);
    match &split {
        Ok((host, port)) => {
            // The host is empty, an IP literal or a name; never a bare IPv6 outside brackets.
            let ip = host.parse::<IpAddr>();
            assert!(
                host.is_empty() || ip.is_ok() || is_name_shaped(host),
                "{input:?} split into host {host:?}"
            );
            assert!(
                !host.contains(':') || input.starts_with('['),
                "{input:?}: unbracketed IPv6 host {host:?} accepted"
            );
            // Splitting is stable: the canonical spelling splits to the same parts.
            assert_eq!(
                split_host_port(&join(host, *port)).unwrap(),
                (host.clone(), *port),
                "{input:?}"
            );
        }
        Err(err) => assert_address_error(err, input),
    }
    if would_resolve(input) {
        return;
    }
    let literal = input.parse::<SocketAddr>();
    match parse_address(input) {
        Ok(addr) => {
            if let Ok(literal) = literal {
                assert_eq!(addr, literal, "{input:?}");
            }
            match &split {
                Ok((host, port)) => {
                    assert_eq!(addr.port(), *port, "{input:?}");
                    if host.is_empty() {
                        assert_eq!(addr.ip(), IpAddr::V6(Ipv6Addr::UNSPECIFIED), "{input:?}");
                    } else if let Ok(ip) = host.parse::<IpAddr>() {
                        assert_eq!(addr.ip(), ip, "{input:?}");
                    } else {
                        assert!(addr.ip().is_loopback(), "{input:?} gave {addr}");
                    }
                    // The `{ host, port }` form agrees with the string form.
                    assert_eq!(
                        address_from_parts(host, u32::from(*port)).unwrap(),
                        addr,
                        "{input:?}"
                    );
                }
                // Only a std socket address literal that the splitter does not take (an IPv6
                // scope id, `[fe80::1%2]:80`) parses without splitting.
                Err(_) => assert!(literal.is_ok(), "{input:?} parsed to {addr} but not split"),
            }
        }
        Err(err) => {
            assert_address_error(&err, input);
            assert!(literal.is_err(), "{input:?} is a socket address");
            // A literal host that splits always builds an address.
            if let Ok((host, _)) = &split {
                assert!(
                    !(host.is_empty() || host.parse::<IpAddr>().is_ok()),
                    "{input:?}: {err}"
                );
            }
        }
    }
}

/// Ports as text: in range, out of range, huge, signed, hex, padded, empty.
fn port_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u16>().prop_map(|p| p.to_string()),
        (65530u64..65600).prop_map(|p| p.to_string()),
        any::<u64>().prop_map(|p| p.to_string()),
        "[0-9]{0,30}",
        (any::<u16>(), 1usize..12).prop_map(|(p, w)| format!("{p:0>w$}")),
        Just(String::new()),
        Just("-1".to_owned()),
        Just("+80".to_owned()),
        Just("0x50".to_owned()),
        Just(" 80".to_owned()),
        Just("80 ".to_owned()),
        Just("٣".to_owned()),
        Just("80\0".to_owned()),
    ]
}

/// Host parts: literals (bracketed or not, with zone ids), names, nothing, and junk.
fn host_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| ip.to_string()),
        any::<Ipv6Addr>().prop_map(|ip| format!("[{ip}]")),
        any::<Ipv4Addr>().prop_map(|ip| format!("[{ip}]")),
        (
            any::<Ipv6Addr>(),
            prop_oneof![
                any::<u32>().prop_map(|z| z.to_string()),
                "[a-z0-9]{0,8}",
                Just(String::new())
            ]
        )
            .prop_map(|(ip, zone)| format!("[{ip}%{zone}]")),
        Just(String::new()),
        Just("[]".to_owned()),
        Just("localhost".to_owned()),
        Just("[localhost]".to_owned()),
        r"[a-z0-9][a-z0-9.\-]{0,30}",
        "[a-z]{250,260}",
        r"[\[\]:%.0-9a-fA-F]{0,16}",
    ]
}

/// Strings that look a bit like addresses, or not at all.
fn address_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (host_text(), prop_oneof![
            8 => Just(":"),
            1 => Just(""),
            1 => Just("::"),
            1 => Just("]:"),
            1 => Just(" :"),
            1 => Just(":\0"),
        ], port_text())
            .prop_map(|(h, sep, p)| format!("{h}{sep}{p}")),
        // Bracket soup, many colons, zone ids, NUL.
        2 => r"[\[\]:%.0-9a-fx\- \x00]{0,48}",
        // Any Unicode.
        2 => any::<String>(),
        1 => r"\PC{0,8}:[0-9]{1,6}",
        // Very long.
        1 => r"[0-9a-z.:\[\]]{200,1000}",
        1 => (r"[a-z.]{1,40}", 1usize..500).prop_map(|(s, n)| format!("{}:80", s.repeat(n))),
    ]
}

proptest! {
    #![proptest_config(config(3000))]

    /// Arbitrary input never panics and either parses consistently or is refused with an
    /// `address` error.
    #[test]
    fn arbitrary_address_strings(input in address_text()) {
        check_address_string(&input);
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Every socket address survives `to_string` and back (flow info is not part of the
    /// text form, so it cannot come back).
    #[test]
    fn socket_addresses_round_trip(addr in any::<SocketAddr>()) {
        let expected = match addr {
            SocketAddr::V4(_) => addr,
            SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(
                *v6.ip(), v6.port(), 0, v6.scope_id(),
            )),
        };
        let text = addr.to_string();
        prop_assert_eq!(parse_address(&text).unwrap(), expected, "{}", text);
        check_address_string(&text);
    }

    /// `v4:port` and `[v6]:port`, and the same split into `{ host, port }`.
    #[test]
    fn literal_forms(v4 in any::<Ipv4Addr>(), v6 in any::<Ipv6Addr>(), port in any::<u16>()) {
        let a4 = SocketAddr::V4(SocketAddrV4::new(v4, port));
        let a6 = SocketAddr::V6(SocketAddrV6::new(v6, port, 0, 0));
        prop_assert_eq!(parse_address(&format!("{v4}:{port}")).unwrap(), a4);
        prop_assert_eq!(parse_address(&format!("[{v6}]:{port}")).unwrap(), a6);
        prop_assert_eq!(split_host_port(&format!("{v4}:{port}")).unwrap(), (v4.to_string(), port));
        prop_assert_eq!(split_host_port(&format!("[{v6}]:{port}")).unwrap(), (v6.to_string(), port));
        prop_assert_eq!(address_from_parts(&v4.to_string(), port.into()).unwrap(), a4);
        prop_assert_eq!(address_from_parts(&v6.to_string(), port.into()).unwrap(), a6);
        prop_assert_eq!(address_from_parts(&format!("[{v6}]"), port.into()).unwrap(), a6);
        // An empty host is every interface, dual-stack.
        let any6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
        prop_assert_eq!(parse_address(&format!(":{port}")).unwrap(), any6);
        prop_assert_eq!(address_from_parts("", port.into()).unwrap(), any6);
        // IPv6 must be bracketed in the string form.
        let bare = format!("{v6}:{port}");
        assert_address_error(&parse_address(&bare).unwrap_err(), &bare);
        assert_address_error(&split_host_port(&bare).unwrap_err(), &bare);
    }

    /// Ports: accepted exactly up to 65535, in text and as a number, leading zeros allowed.
    #[test]
    fn port_range(port in prop_oneof![any::<u64>(), 0u64..70_000], zeros in 0usize..4) {
        let text = format!("127.0.0.1:{}{port}", "0".repeat(zeros));
        let host_text = format!("localhost:{}{port}", "0".repeat(zeros));
        match (u16::try_from(port), parse_address(&text), split_host_port(&host_text)) {
            (Ok(p), Ok(addr), Ok((host, split_port))) => {
                prop_assert_eq!(addr, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p));
                prop_assert_eq!((host.as_str(), split_port), ("localhost", p));
            }
            (Err(_), Err(e1), Err(e2)) => {
                assert_address_error(&e1, &text);
                assert_address_error(&e2, &host_text);
            }
            (expected, got, split) => {
                prop_assert!(false, "{text}: expected {expected:?}, got {got:?} / {split:?}");
            }
        }
        if let Ok(port32) = u32::try_from(port) {
            let got = address_from_parts("127.0.0.1", port32);
            match u16::try_from(port32) {
                Ok(p) => prop_assert_eq!(got.unwrap().port(), p),
                Err(_) => assert_address_error(&got.unwrap_err(), &format!("127.0.0.1:{port32}")),
            }
        }
    }

    /// Names with RFC 1123 characters split into themselves without being resolved; longer
    /// than 253 bytes or with any other character they are refused.
    #[test]
    fn host_names_split(
        name in r"[a-zA-Z0-9][a-zA-Z0-9\-]{0,20}(\.[a-zA-Z0-9\-]{1,20}){0,4}",
        junk in r"[^a-zA-Z0-9.\-:\[\]]",
        at in any::<prop::sample::Index>(),
        port in any::<u16>(),
    ) {
        // A dotted-number name is an IPv4 literal, checked elsewhere.
        prop_assume!(name.parse::<IpAddr>().is_err());
        for text in [format!("{name}:{port}"), format!("[{name}]:{port}")] {
            if ends_in_number(&name) {
                assert_address_error(&split_host_port(&text).unwrap_err(), &text);
            } else {
                prop_assert_eq!(split_host_port(&text).unwrap(), (name.clone(), port));
            }
        }

        let long = format!("{}:{port}", format!("{name}.").repeat(254 / (name.len() + 1) + 1));
        assert_address_error(&split_host_port(&long).unwrap_err(), &long);

        let i = at.index(name.len() + 1);
        let bad = format!("{}{junk}{}:{port}", &name[..i], &name[i..]);
        assert_address_error(&split_host_port(&bad).unwrap_err(), &bad);
        assert_address_error(&parse_address(&bad).unwrap_err(), &bad);
    }

    /// Hosts the resolver would take for IPv4 in a legacy form (`1`, `127.1`, `0x7f.1`,
    /// octal `017.0.0.1`, `2130706433`) or names ending in a number are refused, not rewritten.
    #[test]
    fn numeric_hosts_refused(
        parts in prop::collection::vec(
            prop_oneof![
                any::<u32>().prop_map(|n| n.to_string()),
                any::<u8>().prop_map(|n| format!("0{n:o}")),
                any::<u32>().prop_map(|n| format!("0x{n:x}")),
                any::<u16>().prop_map(|n| format!("0X{n:X}")),
                Just("0x".to_owned()),
            ],
            1..=4,
        ),
        name in prop::option::of(r"[a-z][a-z0-9\-]{0,10}"),
        trailing_dot in any::<bool>(),
        port in any::<u16>(),
    ) {
        let mut host = parts.join(".");
        if let Some(name) = name {
            host = format!("{name}.{host}");
        }
        if trailing_dot {
            host.push('.');
        }
        // Four plain decimal octets can be a real IPv4 literal.
        prop_assume!(host.parse::<IpAddr>().is_err());
        let text = format!("{host}:{port}");
        assert_address_error(&split_host_port(&text).unwrap_err(), &text);
        assert_address_error(&parse_address(&text).unwrap_err(), &text);
        assert_address_error(&address_from_parts(&host, port.into()).unwrap_err(), &text);
    }

    /// `address_from_parts` with any host and port: without a name to resolve, it succeeds
    /// exactly when the port fits 16 bits and the host (brackets stripped) is empty or an IP.
    #[test]
    fn arbitrary_parts(
        host in prop_oneof![host_text(), any::<String>(), r"[\[\]:%.0-9a-f\x00]{0,24}"],
        port in prop_oneof![any::<u16>().prop_map(u32::from), any::<u32>()],
    ) {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&host);
        let is_literal = bare.is_empty() || bare.parse::<IpAddr>().is_ok();
        if !is_literal && is_name_shaped(bare) && bare != "localhost" {
            return Ok(()); // would resolve
        }
        let shown = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        match address_from_parts(&host, port) {
            Ok(addr) => {
                prop_assert!(port <= 65535 && (is_literal || bare == "localhost"), "{:?} {}", host, port);
                prop_assert_eq!(u32::from(addr.port()), port);
                if let Ok(ip) = bare.parse::<IpAddr>() {
                    prop_assert_eq!(addr.ip(), ip);
                }
            }
            Err(err) => {
                prop_assert!(port > 65535 || !is_literal, "{:?} {}: {}", host, port, err);
                assert_address_error(&err, &shown);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// ServerConfig
// ---------------------------------------------------------------------------------------

/// One setter call.
#[derive(Debug, Clone)]
enum Op {
    Address(SocketAddr),
    ReusePort(bool),
    Loops(usize),
    FastOpen(u32),
    DeferAccept(u32),
    Backlog(u32),
    Ipv6Only(bool),
    NoDelay(bool),
    KeepAlive(Option<KeepAlive>),
    MaxConnections(usize),
    LimitPolicy(LimitPolicy),
    MaxConnectionsPerIp(u32, Option<u8>),
    MaxAcceptConnections(u64),
}

/// An independent model of the documented ranges: the options a configuration violates,
/// each with the kind of error it deserves.
#[derive(Debug, Default)]
struct Model {
    addresses: usize,
    reuse_port: Option<bool>,
    loops: Option<usize>,
    fast_open: Option<u32>,
    defer_accept: Option<u32>,
    backlog: Option<u32>,
    keep_alive: Option<KeepAlive>,
    max_connections: Option<usize>,
    per_ip: Option<(u32, Option<u8>)>,
    max_accept: Option<u64>,
}

impl Model {
    fn apply(&mut self, op: &Op, c: &mut ServerConfig) {
        match *op {
            Op::Address(a) => {
                self.addresses += 1;
                c.address(a);
            }
            Op::ReusePort(on) => {
                self.reuse_port = Some(on);
                c.reuse_port(on);
            }
            Op::Loops(n) => {
                self.loops = Some(n);
                c.loops(n);
            }
            Op::FastOpen(q) => {
                self.fast_open = Some(q);
                c.fast_open(q);
            }
            Op::DeferAccept(s) => {
                self.defer_accept = Some(s);
                c.defer_accept(s);
            }
            Op::Backlog(b) => {
                self.backlog = Some(b);
                c.backlog(b);
            }
            Op::Ipv6Only(on) => _ = c.ipv6_only(on),
            Op::NoDelay(on) => _ = c.no_delay(on),
            Op::KeepAlive(k) => {
                self.keep_alive = k;
                c.keep_alive(k);
            }
            Op::MaxConnections(n) => {
                self.max_connections = Some(n);
                c.max_connections(n);
            }
            Op::LimitPolicy(p) => _ = c.limit_policy(p),
            Op::MaxConnectionsPerIp(max, prefix) => {
                self.per_ip = Some((max, prefix));
                c.max_connections_per_ip(max, prefix);
            }
            Op::MaxAcceptConnections(n) => {
                self.max_accept = Some(n);
                c.max_accept_connections(n);
            }
        }
    }

    fn violations(&self) -> Vec<(&'static str, InvalidKind)> {
        use InvalidKind::{Range, Value};
        // Keep-alive times reach the kernel as whole seconds, which must be 1..=32767.
        let bad_secs = |d: Option<Duration>| {
            d.is_some_and(|d| d < Duration::from_secs(1) || d >= Duration::from_secs(32768))
        };
        let mut v = Vec::new();
        if self.addresses == 0 {
            v.push(("address", Value));
        }
        if let Some(n) = self.loops {
            if n == 0 || n > 1024 {
                v.push(("loops", Range));
            }
            // Several loops need several SO_REUSEPORT sockets.
            if n > 1 && self.reuse_port == Some(false) {
                v.push(("loops", Value));
            }
        }
        if self.backlog.is_some_and(|b| b == 0 || b > 65535) {
            v.push(("backlog", Range));
        }
        if self.fast_open.is_some_and(|q| q > 65535) {
            v.push(("fastOpen", Range));
        }
        if self.defer_accept.is_some_and(|s| s > 3600) {
            v.push(("deferAccept", Range));
        }
        if let Some(k) = self.keep_alive {
            if bad_secs(k.time) {
                v.push(("keepAlive.initialDelay", Range));
            }
            if bad_secs(k.interval) {
                v.push(("keepAlive.interval", Range));
            }
            if k.retries.is_some_and(|r| r == 0 || r > 127) {
                v.push(("keepAlive.count", Range));
            }
        }
        if self.max_connections == Some(0) {
            v.push(("maxConnections", Range));
        }
        if let Some((max, prefix)) = self.per_ip {
            if max == 0 {
                v.push(("maxConnectionsPerIp", Range));
            }
            if prefix.is_some_and(|p| p == 0 || p > 128) {
                v.push(("maxConnectionsPerIp.ipv6Prefix", Range));
            }
        }
        if self.max_accept == Some(0) {
            v.push(("maxAcceptConnections", Range));
        }
        v
    }
}

/// Numbers around the interesting edges, and anywhere.
fn edgy_u32(edges: &'static [u32]) -> impl Strategy<Value = u32> {
    prop_oneof![
        prop::sample::select(edges),
        prop::sample::select(edges).prop_map(|e| e.wrapping_add(1)),
        prop::sample::select(edges).prop_map(|e| e.wrapping_sub(1)),
        0u32..70_000,
        any::<u32>(),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (
            prop::sample::select(&[0u64, 1, 2, 32766, 32767, 32768, u64::MAX][..]),
            prop_oneof![Just(0u32), Just(999_999_999), 0u32..1_000_000_000]
        )
            .prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..40_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        any::<u64>().prop_map(Duration::from_millis),
    ]
}

fn keep_alive() -> impl Strategy<Value = KeepAlive> {
    (
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop::option::of(edgy_u32(&[0, 1, 127, 128, u32::MAX])),
    )
        .prop_map(|(time, interval, retries)| KeepAlive {
            time,
            interval,
            retries,
        })
}

fn op() -> impl Strategy<Value = Op> {
    let loops = prop_oneof![
        prop::sample::select(
            &[
                0usize,
                1,
                2,
                MAX_LOOPS - 1,
                MAX_LOOPS,
                MAX_LOOPS + 1,
                usize::MAX
            ][..]
        ),
        0usize..2000,
        any::<usize>(),
    ];
    let prefix = prop::option::of(prop_oneof![
        prop::sample::select(&[0u8, 1, 63, 64, 127, 128, 129, 255][..]),
        any::<u8>(),
    ]);
    prop_oneof![
        2 => any::<SocketAddr>().prop_map(Op::Address),
        1 => any::<bool>().prop_map(Op::ReusePort),
        1 => loops.prop_map(Op::Loops),
        1 => edgy_u32(&[0, 1, 256, 65535, u32::MAX]).prop_map(Op::FastOpen),
        1 => edgy_u32(&[0, 1, 3600, u32::MAX]).prop_map(Op::DeferAccept),
        1 => edgy_u32(&[0, 1, 511, 65535, u32::MAX]).prop_map(Op::Backlog),
        1 => any::<bool>().prop_map(Op::Ipv6Only),
        1 => any::<bool>().prop_map(Op::NoDelay),
        1 => prop::option::of(keep_alive()).prop_map(Op::KeepAlive),
        1 => prop_oneof![Just(0usize), Just(1), any::<usize>()].prop_map(Op::MaxConnections),
        1 => prop_oneof![Just(LimitPolicy::Hold), Just(LimitPolicy::Refuse)].prop_map(Op::LimitPolicy),
        1 => (prop_oneof![Just(0u32), Just(1), any::<u32>()], prefix)
            .prop_map(|(max, prefix)| Op::MaxConnectionsPerIp(max, prefix)),
        1 => prop_oneof![Just(0u64), Just(1), any::<u64>()].prop_map(Op::MaxAcceptConnections),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    /// Any sequence of setter calls: `validate()` accepts exactly the configurations within
    /// the documented ranges, and a refusal names an option that is out of range, with the
    /// matching kind.
    #[test]
    fn validate_matches_documented_ranges(ops in prop::collection::vec(op(), 0..16)) {
        let mut model = Model::default();
        let mut c = ServerConfig::default();
        for op in &ops {
            model.apply(op, &mut c);
        }
        let violations = model.violations();
        let result = c.validate();
        // Pure: the same answer twice, and for a clone.
        prop_assert_eq!(format!("{result:?}"), format!("{:?}", c.clone().validate()));
        match result {
            Ok(()) => {
                prop_assert!(violations.is_empty(), "accepted, but {:?} out of range", violations);
                prop_assert_eq!(c.addresses().len(), model.addresses);
                let loops = c.effective_loops();
                prop_assert!((1..=MAX_LOOPS).contains(&loops));
                if let Some(n) = model.loops {
                    prop_assert_eq!(loops, n);
                }
            }
            Err(err) => {
                let option = err.option().expect("a validation error names its option");
                let kind = match err.kind() {
                    ErrorKind::InvalidArgument(k) => k,
                    other => panic!("{err}: kind {other:?}"),
                };
                prop_assert!(
                    violations.contains(&(option, kind)),
                    "refused for {:?} ({:?}: {}), but the model sees only {:?}", option, kind, err, violations
                );
                prop_assert!(!err.to_string().is_empty());
            }
        }
    }
}

/// The default prefix the per-IP limit falls back to is a valid one.
#[test]
fn default_ipv6_prefix_is_in_range() {
    assert!((1..=128).contains(&DEFAULT_IPV6_PREFIX));
}
