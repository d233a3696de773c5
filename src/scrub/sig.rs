//! Path signatures: a 128-bit hash of the selector-relevant path of a value (keys with
//! ASCII case folded, array positions, value types, schema node), built incrementally as
//! the walker descends, so that selector results can be memoized per path shape.

/// Selector results shared across events of one rule set.
pub type SharedMemo = dashmap::DashMap<u128, u64, BuildSigHasher>;

/// Bound on the shared memo: distinct path shapes beyond this are evaluated each time.
pub(super) const SHARED_MEMO_CAP: usize = 1 << 16;

/// Two independent 64-bit FNV-style lanes: a collision needs both to collide.
pub(super) struct SigHasher(u64, u64);

impl SigHasher {
    pub(super) fn new(parent: u128) -> Self {
        SigHasher(parent as u64, (parent >> 64) as u64)
    }
    #[inline]
    pub(super) fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        self.1 = (self.1 ^ u64::from(b))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x0000_0100_0000_01B3);
        self.1 = (self.1 ^ v)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    /// Hashes a key with ASCII letters folded to lowercase (selectors compare keys
    /// case-insensitively), eight bytes at a time. Non-ASCII bytes are hashed as they are:
    /// keys that differ only in non-ASCII case get different signatures, which only costs
    /// a memo miss.
    pub(super) fn key(&mut self, key: &[u8]) {
        let mut chunks = key.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.u64(ascii_lower(u64::from_le_bytes(w)));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.u64(ascii_lower(u64::from_le_bytes(w)) ^ ((key.len() as u64) << 56));
    }
    pub(super) fn finish(&self) -> u128 {
        (u128::from(self.1) << 64) | u128::from(self.0)
    }
}

/// Lowercases the ASCII letters of eight packed bytes (SWAR); other bytes are unchanged.
fn ascii_lower(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let b = w & LOW7;
    // High bit set in each byte that is >= 'A' and in each byte that is > 'Z'.
    let ge_a = b + 0x3f3f_3f3f_3f3f_3f3f;
    let gt_z = b + 0x2525_2525_2525_2525;
    let upper = ge_a & !gt_z & !w & HIGH;
    w | (upper >> 2)
}

/// The memo keys are already hashes: pass them through.
#[derive(Default, Clone, Copy, Debug)]
pub struct BuildSigHasher;

/// Hasher for keys that are hashes already.
pub struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

impl std::hash::BuildHasher for BuildSigHasher {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_lowercase_matches_bytewise() {
        let samples: [&[u8]; 5] = [
            b"ABCDEFGH",
            b"X-Forwa@",
            b"[Z]a`z{\x7f",
            b"\xc3\x89t\xc3\xa9AZ",
            b"@[`{0129",
        ];
        for s in samples {
            let mut w = [0u8; 8];
            w[..s.len().min(8)].copy_from_slice(&s[..s.len().min(8)]);
            let expected: Vec<u8> = w.iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(
                ascii_lower(u64::from_le_bytes(w)).to_le_bytes().to_vec(),
                expected,
                "{s:?}"
            );
        }
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b; 8]);
            assert_eq!(
                ascii_lower(w).to_le_bytes()[0],
                b.to_ascii_lowercase(),
                "byte {b}"
            );
        }
    }
}
