//! The byte prefilters that keep most values away from the regexes: [`Features`], the
//! counts of one value shared by every pattern, and the per-pattern byte tests.

use super::password::has_password_stem;

/// Byte counts of one value, shared by every pattern's prefilter (see
/// [`Pattern::may_match_features`](super::Pattern::may_match_features)). The counts come from one table-driven pass; the
/// sequential features (digit runs, IBAN heads, `::`) are computed only when a pattern
/// asks and the counts have not already ruled it out.
#[derive(Debug, Clone)]
pub struct Features<'v> {
    bytes: &'v [u8],
    pub(super) len: usize,
    pub(super) digits: u32,
    pub(super) alnum: u32,
    pub(super) dots: u32,
    pub(super) colons: u32,
    pub(super) dashes: u32,
    pub(super) slashes: u32,
    pub(super) at: bool,
    pub(super) upper: bool,
    pub(super) non_ascii: bool,
    /// Longest run of ASCII digits where single `-` or whitespace bytes may separate them.
    digit_run: std::cell::OnceCell<u32>,
    /// Two ASCII capitals followed by two digits somewhere.
    iban_head: std::cell::OnceCell<bool>,
    /// `::` somewhere.
    double_colon: std::cell::OnceCell<bool>,
}

/// For each byte, a one-hot lane of [`Features::scan`]'s counters: 0 digits, 1 lowercase,
/// 2 uppercase, 3 `.`, 4 `:`, 5 `-`, 6 `/` or `\\`, 7 `@`.
static BYTE_CLASS: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let lane = match byte {
            b'0'..=b'9' => 0,
            b'a'..=b'z' => 1,
            b'A'..=b'Z' => 2,
            b'.' => 3,
            b':' => 4,
            b'-' => 5,
            b'/' | b'\\' => 6,
            b'@' => 7,
            _ => 8,
        };
        if lane < 8 {
            table[b] = 1 << (8 * lane);
        }
        b += 1;
    }
    table
};

impl<'v> Features<'v> {
    /// Counts the bytes of `value` the prefilters need.
    pub fn scan(value: &'v str) -> Features<'v> {
        let bytes = value.as_bytes();
        // SWAR counting: each byte adds its class's one-hot lane (8 lanes of 8 bits) to an
        // accumulator, flushed into the counters before any lane can overflow.
        let mut lanes = [0u32; 8];
        for chunk in bytes.chunks(255) {
            let mut acc = 0u64;
            for &b in chunk {
                acc += BYTE_CLASS[usize::from(b)];
            }
            for (i, lane) in lanes.iter_mut().enumerate() {
                *lane += ((acc >> (8 * i)) & 0xff) as u32;
            }
        }
        let [digits, lower, upper, dots, colons, dashes, slashes, at] = lanes;
        Features {
            bytes,
            len: bytes.len(),
            digits,
            alnum: digits + lower + upper,
            dots,
            colons,
            dashes,
            slashes,
            at: at > 0,
            upper: upper > 0,
            non_ascii: !value.is_ascii(),
            digit_run: std::cell::OnceCell::new(),
            iban_head: std::cell::OnceCell::new(),
            double_colon: std::cell::OnceCell::new(),
        }
    }

    /// Whether the text may hold a password keyword or `bearer` (see
    /// [`Pattern::PasswordValue`](super::Pattern::PasswordValue)); false also for the empty text.
    pub fn may_hold_password_keyword(&self) -> bool {
        // Every stem has three ASCII letters or more.
        self.non_ascii || (self.alnum - self.digits >= 3 && has_password_stem(self.bytes))
    }

    pub(super) fn digit_run(&self) -> u32 {
        *self.digit_run.get_or_init(|| {
            let (mut best, mut run, mut gap) = (0u32, 0u32, false);
            for &b in self.bytes {
                if b.is_ascii_digit() {
                    run += 1;
                    gap = false;
                    best = best.max(run);
                } else if matches!(b, b'-' | b' ' | b'\t'..=b'\r') && run > 0 && !gap {
                    // A single `-` or whitespace byte may separate the digits of a run.
                    gap = true;
                } else {
                    run = 0;
                    gap = false;
                }
            }
            best
        })
    }

    pub(super) fn iban_head(&self) -> bool {
        *self.iban_head.get_or_init(|| has_iban_head(self.bytes))
    }

    pub(super) fn double_colon(&self) -> bool {
        *self
            .double_colon
            .get_or_init(|| memchr::memmem::find(self.bytes, b"::").is_some())
    }
}

/// Two ASCII capitals followed by two ASCII digits somewhere in `b`. The candidate
/// digit pair is checked second digit first: a non-digit there rules out two starting
/// positions at once.
pub(super) fn has_iban_head(b: &[u8]) -> bool {
    // `i` is where the digit pair would start.
    let mut i = 2;
    while i + 1 < b.len() {
        if !b[i + 1].is_ascii_digit() {
            i += 2;
        } else if !b[i].is_ascii_digit() {
            i += 1;
        } else if b[i - 1].is_ascii_uppercase() && b[i - 2].is_ascii_uppercase() {
            return true;
        } else {
            i += 1;
        }
    }
    false
}

/// True when at least `n` bytes satisfy `pred` (stops early).
pub(super) fn count_at_least(bytes: &[u8], n: usize, pred: impl Fn(u8) -> bool) -> bool {
    let mut seen = 0;
    for &b in bytes {
        if pred(b) {
            seen += 1;
            if seen >= n {
                return true;
            }
        }
    }
    false
}

/// True when at least `total` chars of `value` satisfy `pred` and at least `run` of them
/// are consecutive (stops early).
pub(super) fn has_chars(
    value: &str,
    total: usize,
    run: usize,
    pred: impl Fn(char) -> bool,
) -> bool {
    if value.len() < total {
        return false;
    }
    let (mut seen, mut current, mut longest) = (0, 0, 0);
    for c in value.chars() {
        if pred(c) {
            seen += 1;
            current += 1;
            longest = longest.max(current);
            if seen >= total && longest >= run {
                return true;
            }
        } else {
            current = 0;
        }
    }
    false
}

/// A char `\d` may match: `char::is_numeric` is a superset of Unicode decimal digits.
pub(super) fn maybe_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// A char `(?i)[a-z0-9]` may match: ASCII alphanumerics plus the two non-ASCII case
/// variants, `K` (Kelvin sign) and `ſ` (long s).
pub(super) fn uuid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '\u{212A}' || c == '\u{17F}'
}

/// True when a `/` or `\\` directly follows `users`, `home`, `profiles` or `documents and
/// settings` (ASCII, any case): the necessary core of every [`USERPATH`](super::patterns::USERPATH) match.
pub(super) fn has_home_segment(bytes: &[u8]) -> bool {
    const WORDS: [&[u8]; 4] = [b"users", b"home", b"profiles", b"documents and settings"];
    memchr::memchr2_iter(b'/', b'\\', bytes).any(|sep| {
        let before = &bytes[..sep];
        WORDS.iter().any(|word| {
            before.len() >= word.len()
                && before[before.len() - word.len()..].eq_ignore_ascii_case(word)
        })
    })
}

/// ASCII case-insensitive substring test.
pub(super) fn contains_ascii_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}
