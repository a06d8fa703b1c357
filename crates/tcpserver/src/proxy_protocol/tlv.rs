//! PROXY v2's TLV area (spec 2.2): the walker that checks it fills the header exactly, and the
//! CRC-32C checksum (`PP2_TYPE_CRC32C`) verified over the whole header.

use super::Reason;

/// TLV types (spec 2.2.1 to 2.2.8) that the walker checks; others are skipped.
pub(super) const PP2_TYPE_CRC32C: u8 = 0x03;
pub(super) const PP2_TYPE_UNIQUE_ID: u8 = 0x05;
pub(super) const PP2_TYPE_SSL: u8 = 0x20;
/// The longest unique ID the spec allows.
pub(super) const UNIQUE_ID_MAX: usize = 128;

/// One TLV: its type and value.
type Tlv<'a> = (u8, &'a [u8]);

/// Splits `area` into TLVs, which must fill it exactly: a length that runs past the end, or
/// a stray byte or two too short for a TLV's 3-byte head, makes the header malformed.
pub(super) fn tlvs(area: &[u8]) -> impl Iterator<Item = Result<Tlv<'_>, Reason>> {
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
pub(super) fn check_tlvs(header: &[u8], offset: usize) -> Result<(), Reason> {
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
pub(super) fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
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
