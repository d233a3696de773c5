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
        let rest = load_le_padded(chunks.remainder());
        self.u64(ascii_lower(rest) ^ ((key.len() as u64) << 56));
    }
    pub(super) fn finish(&self) -> u128 {
        (u128::from(self.1) << 64) | u128::from(self.0)
    }
}

/// The first eight bytes of `b` as a little-endian word, zero-padded when shorter,
/// without a variable-length copy (which compiles to a `memcpy` call): two overlapping
/// four-byte loads, or three single bytes below four.
#[inline]
pub(super) fn load_le_padded(b: &[u8]) -> u64 {
    if let Some(w) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*w);
    }
    let n = b.len();
    if n >= 4 {
        let low = u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let high = u64::from(u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]));
        // The loads overlap when n < 8; overlapping bytes are the same bytes.
        low | high << (8 * (n - 4))
    } else if n > 0 {
        u64::from(b[0])
            | u64::from(b[n / 2]) << (8 * (n / 2))
            | u64::from(b[n - 1]) << (8 * (n - 1))
    } else {
        0
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
    fn padded_loads_match_a_copy() {
        let bytes: Vec<u8> = (1..=12).collect();
        for start in 0..4 {
            for len in 0..=8 {
                let b = &bytes[start..start + len];
                let mut w = [0u8; 8];
                w[..len].copy_from_slice(b);
                assert_eq!(load_le_padded(b), u64::from_le_bytes(w), "{b:?}");
            }
        }
    }

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
