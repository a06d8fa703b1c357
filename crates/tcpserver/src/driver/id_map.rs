//! The maps from connection id to connection (the registry, the consumer loop). Ids are small
//! sequential integers that the server picks, not keys an attacker chooses, so SipHash (the
//! default, built against hash flooding) is cost without benefit on a lookup every operation
//! makes. A multiplication by an odd constant (Fx's) maps consecutive ids to distinct buckets
//! and spreads them over the table's control bytes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by connection id.
pub(crate) type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Hashes a `u32` id with one multiplication.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(SEED);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(SEED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_land_in_distinct_buckets_and_round_trip() {
        let mut m: IdMap<u32> = IdMap::default();
        for id in 1..=10_000u32 {
            m.insert(id, id * 2);
        }
        assert!((1..=10_000u32).all(|id| m.get(&id) == Some(&(id * 2))));
        let buckets: std::collections::HashSet<u64> = (1..=1024u32)
            .map(|id| {
                let mut h = IdHasher::default();
                h.write_u32(id);
                h.finish() & 1023
            })
            .collect();
        assert_eq!(
            buckets.len(),
            1024,
            "1,024 consecutive ids fill 1,024 buckets"
        );
    }
}
