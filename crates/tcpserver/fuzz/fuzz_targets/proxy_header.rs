//! The first bytes of a connection on a PROXY protocol listener: framing (v1 line or v2
//! length) and parsing, as `read_header` does them. Any panic, and any framing that a
//! shorter prefix contradicts (asserted inside `fuzz_header`), is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(Ok(Some((source, dest)))) = tcpserver_core::fuzz_header(data) else {
        return;
    };
    // A proxied client's addresses are one family, and a v1 line says them in text that
    // must read back as what was parsed.
    assert_eq!(source.is_ipv4(), dest.is_ipv4(), "{source} {dest}");
    if data.starts_with(b"PROXY ") {
        let line =
            std::str::from_utf8(&data[..data.iter().position(|&b| b == b'\r').unwrap()]).unwrap();
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 6, "{line:?}");
        assert_eq!(fields[2].parse::<std::net::IpAddr>().unwrap(), source.ip());
        assert_eq!(fields[3].parse::<std::net::IpAddr>().unwrap(), dest.ip());
        assert_eq!(fields[4], source.port().to_string());
        assert_eq!(fields[5], dest.port().to_string());
    }
});
