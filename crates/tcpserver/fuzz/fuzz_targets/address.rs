//! The address parsers: `split_host_port`, `parse_address`, `parse_listen_address`,
//! `address_from_parts`. Nothing may reach a resolver: inputs whose host is a name are only
//! split, never resolved. Anything parsed must print as text that parses back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use tcpserver_core::{
    Address, address_from_parts, parse_address, parse_listen_address, split_host_port,
};

/// A host that `parse_address` would look up in DNS.
fn is_name(host: &str) -> bool {
    !host.is_empty() && host.parse::<IpAddr>().is_err()
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let split = split_host_port(input);
    if let Ok((host, _)) = &split {
        assert!(!host.contains(':') || input.starts_with('['), "{input:?}");
    }
    let resolves = matches!(&split, Ok((host, _)) if is_name(host));
    if let Some(path) = input.strip_prefix("unix:") {
        if let Ok(Address::Unix(p)) = parse_listen_address(input) {
            assert_eq!(p.to_str(), Some(path));
            assert!(!path.is_empty() && path.len() < 104 && !path.contains(['\0', '\n']));
        }
    } else if !resolves {
        let parsed = parse_address(input);
        if let Ok(addr) = parsed {
            assert_eq!(
                parse_address(&addr.to_string()).ok(),
                Some(addr),
                "{input:?}"
            );
            assert_eq!(parse_listen_address(input).ok(), Some(Address::Ip(addr)));
        }
    }
    // The `{ host, port }` form, for a host that is empty or an IP literal.
    if let Some((host, port)) = input.split_once('|') {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if !is_name(bare) {
            let port = port.parse::<u32>().unwrap_or(u32::MAX);
            match address_from_parts(host, port) {
                Ok(addr) => assert_eq!(u32::from(addr.port()), port),
                Err(e) => assert_eq!(e.option(), Some("address")),
            }
        }
    }
});
