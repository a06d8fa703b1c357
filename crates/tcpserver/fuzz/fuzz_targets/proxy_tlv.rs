//! The v2 TLV walker: `data` is a family selector byte and then whatever follows the
//! addresses. A CRC32C TLV in first place gets the right checksum filled in, so the fuzzer
//! reaches the accepting paths too. Checked against a reference: a header is accepted only
//! if its TLVs fill it exactly, and one whose TLVs do not is refused as `malformed`.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Whether `area` is a sequence of whole TLVs (type, 16-bit length, value).
fn tiles(mut area: &[u8]) -> bool {
    while !area.is_empty() {
        let Some(&[_, hi, lo]) = area.get(..3) else {
            return false;
        };
        let len = 3 + u16::from_be_bytes([hi, lo]) as usize;
        if area.len() < len {
            return false;
        }
        area = &area[len..];
    }
    true
}

fuzz_target!(|data: &[u8]| {
    let Some((&select, tlvs)) = data.split_first() else {
        return;
    };
    // TCP4, TCP6, UNIX stream, UDP4: address blocks of 12, 36, 216 and 12 bytes.
    let (family, addr_len) =
        [(0x11, 12), (0x21, 36), (0x31, 216), (0x12, 12)][usize::from(select % 4)];
    let Ok(len) = u16::try_from(addr_len + tlvs.len()) else {
        return;
    };
    let mut header = SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, family]);
    header.extend_from_slice(&len.to_be_bytes());
    header.extend((0..addr_len).map(|i| i as u8));
    header.extend_from_slice(tlvs);
    let sealed = tlvs.len() >= 7 && tlvs[..3] == [0x03, 0, 4];
    if sealed {
        let at = 16 + addr_len + 3;
        header[at..at + 4].fill(0);
        let crc = tcpserver_core::crc32c(&header);
        header[at..at + 4].copy_from_slice(&crc.to_be_bytes());
    }
    let result = tcpserver_core::fuzz_header(&header).expect("a whole header is framed");
    if !tiles(tlvs) {
        assert_eq!(result, Err("malformed"), "TLVs that do not fill the header");
    }
    if result.is_ok() {
        assert!(tiles(tlvs));
    }
    if sealed {
        assert_ne!(result, Err("bad_checksum"), "a correct checksum refused");
    }
});
