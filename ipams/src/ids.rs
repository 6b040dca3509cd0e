//! A fast hasher for pool-id lookups, done on every address call.
//!
//! Pool ids are short strings made by the IPAM itself, so a multiplicative
//! word-at-a-time hash (as in rustc's FxHash) beats SipHash here.

use std::hash::{BuildHasherDefault, Hasher};

/// The multiplier of the hash (from FxHash).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// A word-at-a-time multiplicative hasher.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdHasher {
    /// The running hash.
    hash: u64,
}

impl IdHasher {
    /// Mixes one word into the hash.
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Builds [`IdHasher`]s for the pool map.
pub(crate) type BuildIdHasher = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_ids_hash_differently() {
        let b = BuildIdHasher::default();
        let ids = [
            "LocalDefault/10.0.0.0/24",
            "LocalDefault/10.0.1.0/24",
            "LocalDefault/10.0.0.0/24/10.0.0.0/25",
            "GlobalDefault/10.0.0.0/24",
        ];
        let hashes: std::collections::HashSet<u64> = ids.iter().map(|i| b.hash_one(i)).collect();
        assert_eq!(hashes.len(), ids.len());
        assert_eq!(b.hash_one("x"), b.hash_one("x"));
    }
}
