//! Property tests of the address parsing code: listen/connect addresses (`parse_address`,
//! `split_host_port`, `address_from_parts`). `ServerConfig::validate`: `fuzz_config.rs`.
//!
//! Case counts are bounded so the file runs in a few seconds under `cargo test --workspace`;
//! `PROPTEST_CASES=100000 cargo test -p tcpserver-core --test fuzz_addresses --release` digs deeper.
//! Failures are not persisted to a seeds file: CI runs in a fresh clone, so one written there
//! would be lost, and a shrunk counterexample reads better as a named regression test (at the
//! bottom of this file) than as an opaque seed.
//!
//! Nothing here may reach a DNS server: inputs whose host part is a name are only split,
//! never resolved (`localhost` aside, which the resolver answers from `/etc/hosts`).

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use proptest::prelude::*;
use tcpserver_core::{
    Error, ErrorKind, InvalidKind, address_from_parts, parse_address, split_host_port,
};

use support::fuzz::cases;

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
    #![proptest_config(cases(3000))]

    /// Arbitrary input never panics and either parses consistently or is refused with an
    /// `address` error.
    #[test]
    fn arbitrary_address_strings(input in address_text()) {
        check_address_string(&input);
    }
}

proptest! {
    #![proptest_config(cases(2000))]

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
