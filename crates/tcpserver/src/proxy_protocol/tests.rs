//! Unit tests of the PROXY protocol parser, the framing and the TLV walker.

use super::tlv::*;
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
