//! The `password` rule: its key and value tests, the keyword regexes, and the stem
//! search that keeps ASCII text without a keyword stem away from them.

use std::sync::LazyLock;

use regex::Regex;

#[cfg(test)]
use super::patterns::BEARER;
use super::patterns::{compile, push_bearer};
use super::prefilter::contains_ascii_ci;
use super::Ranges;

/// The `password` rule's key test: true when a field KEY is sensitive.
///
/// Relay runs two key patterns: `token` anywhere in the key (key only), and the
/// key-or-value keyword list (`password`, `secret`, `passwd`, `api-key`/`api_key`/`apikey`,
/// `auth`, `credentials`, `mysql_pwd`, `privatekey`, `private-key`/`private_key`, `token`
/// followed by `:` or `=`, exactly `otp`, exactly `two-factor`/`two_factor`). Both are
/// case-insensitive substring tests, so `author` matches (`auth`), as in Relay.
pub fn password_key_matches(key: &str) -> bool {
    may_hold_password_keyword(key) && PASSWORD_KEY.is_match(key)
}

/// Every password keyword (and `bearer`) contains one of these ASCII stems. Each comes
/// with an anchor: the offset of two consecutive letter pairs in it, chosen to be rare
/// in ordinary text (`ss`/`sw` of `passw`).
pub(super) const PASSWORD_STEMS: [(&[u8], usize); 11] = [
    (b"passw", 2),
    (b"secret", 1),
    (b"api", 0),
    (b"auth", 0),
    (b"credentials", 7),
    (b"mysql_pwd", 2),
    (b"private", 2),
    (b"token", 1),
    (b"otp", 0),
    (b"two", 0),
    (b"bearer", 0),
];

/// The anchor pairs of [`PASSWORD_STEMS`]: a bit set over the 65,536 byte pairs (ASCII
/// letters folded to lowercase by `| 0x20`), and the stems each pair anchors, grouped by
/// the pair's first letter (at most three per letter).
struct StemAnchors {
    bits: Box<[u64; 1024]>,
    /// For each first letter `a`..`z`: (pair, stem index, offset of the pair in the stem).
    by_first: [Vec<(u16, usize, usize)>; 26],
}

static STEM_ANCHORS: LazyLock<StemAnchors> = LazyLock::new(|| {
    let mut bits = Box::new([0u64; 1024]);
    let mut by_first: [Vec<(u16, usize, usize)>; 26] = Default::default();
    for (index, (stem, anchor)) in PASSWORD_STEMS.iter().enumerate() {
        for offset in [*anchor, anchor + 1] {
            // Only letters fold to themselves under `| 0x20`.
            assert!(stem[offset..offset + 2].iter().all(u8::is_ascii_lowercase));
            let pair = u16::from_le_bytes([stem[offset], stem[offset + 1]]);
            bits[usize::from(pair >> 6)] |= 1 << (pair & 63);
            by_first[usize::from(stem[offset] - b'a')].push((pair, index, offset));
        }
    }
    StemAnchors { bits, by_first }
});

/// True when ASCII `bytes` contain one of [`PASSWORD_STEMS`], in any case.
pub(super) fn has_password_stem(bytes: &[u8]) -> bool {
    any_password_stem(bytes, |_, _| true)
}

/// Calls `hit(start, stem index)` for the occurrences of [`PASSWORD_STEMS`] in ASCII
/// `bytes` (in any case) until it returns true; returns whether it did. Each occurrence is
/// visited once, and the occurrences of one stem in increasing order.
///
/// Every occurrence of a stem covers its two anchor pairs, which start at consecutive
/// offsets, so one of them starts at an even offset of `bytes`: checking the pairs at
/// even offsets only (one table lookup per two bytes) finds it. A hit is confirmed by
/// comparing the whole stem.
fn any_password_stem(bytes: &[u8], mut hit: impl FnMut(usize, usize) -> bool) -> bool {
    let anchors = &*STEM_ANCHORS;
    let is_anchor = |pair: u16| anchors.bits[usize::from(pair >> 6)] & (1 << (pair & 63)) != 0;
    // The stems that `pair` (an anchor pair at even offset `i`) may belong to.
    let mut confirm = |i: usize, pair: u16| {
        // A set bit means a letter pair, so the first byte is `a`..`z` once folded.
        let first = usize::from((pair as u8).wrapping_sub(b'a')).min(25);
        anchors.by_first[first].iter().any(|&(p, index, offset)| {
            let stem = PASSWORD_STEMS[index].0;
            p == pair
                && i >= offset
                && bytes
                    .get(i - offset..i - offset + stem.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(stem))
                && hit(i - offset, index)
        })
    };
    // Four bytes, two pairs, per step.
    let mut quads = bytes.chunks_exact(4);
    let mut i = 0;
    for q in &mut quads {
        let w = u32::from_le_bytes([q[0], q[1], q[2], q[3]]) | 0x2020_2020;
        let (low, high) = (w as u16, (w >> 16) as u16);
        let (low_hit, high_hit) = (is_anchor(low), is_anchor(high));
        if (low_hit && confirm(i, low)) || (high_hit && confirm(i + 2, high)) {
            return true;
        }
        i += 4;
    }
    match quads.remainder() {
        [a, b, ..] => {
            let pair = u16::from_le_bytes([*a, *b]) | 0x2020;
            is_anchor(pair) && confirm(i, pair)
        }
        _ => false,
    }
}

/// Exact prefilter for the keyword regexes: on ASCII text, Unicode case folding equals
/// ASCII case folding, so no stem means no match. Non-ASCII text (`ſecret`) goes to the
/// regex.
pub(super) fn may_hold_password_keyword(text: &str) -> bool {
    !text.is_ascii() || has_password_stem(text.as_bytes())
}

/// The `password` rule's value test: true when the value contains one of the keywords of
/// [`password_key_matches`] (except the key-only bare `token`), or a `Bearer <token>`.
///
/// The engine redacts the whole value when this is true. Relay does so for a keyword hit;
/// for a bearer-only hit Relay redacts just `Bearer <token>`, which is what
/// [`Pattern::PasswordValue`](super::Pattern::PasswordValue) reports.
#[cfg(test)]
pub fn password_value_matches(value: &str) -> bool {
    PASSWORD_VALUE.is_match(value) || BEARER.is_match(value)
}

/// The keywords shared by the key and the value test of the `password` rule.
macro_rules! password_keywords {
    () => {
        "password|secret|passwd|api[-_]key|apikey|auth|credentials|mysql_pwd|privatekey|\
         private[-_]key|token[^\\s]*[:=]|^otp$|^two[-_]factor$"
    };
}

/// Key test: the keywords, plus Relay's key-only `token` anywhere (which subsumes the
/// `token...[:=]` keyword on keys).
pub(super) static PASSWORD_KEY: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!("(?i)token|", password_keywords!())));

/// Value test: the keywords only.
pub(super) static PASSWORD_VALUE: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!("(?i)", password_keywords!())));

/// The value side of the `password` rule, as Relay applies it: first each `Bearer <token>`
/// match is redacted; then, if a keyword is still found in what is left (redactions seen
/// as a NUL, as Relay's chunk search does), the whole value.
pub(super) fn password_value_ranges(value: &str, out: &mut Ranges) {
    let mut bearer = Ranges::new();
    // `bearer` has no non-ASCII case variant, so ASCII text without it cannot match.
    if !value.is_ascii() || contains_ascii_ci(value.as_bytes(), b"bearer") {
        push_bearer(value, &mut bearer);
    }
    let keyword = if bearer.is_empty() {
        password_keyword(value)
    } else {
        let mut rest = String::with_capacity(value.len());
        let mut pos = 0;
        for r in &bearer {
            rest.extend(value[pos..r.start].chars().filter(|&c| c != '\0'));
            rest.push('\0');
            pos = r.end;
        }
        rest.extend(value[pos..].chars().filter(|&c| c != '\0'));
        password_keyword(&rest)
    };
    if keyword {
        out.push(0..value.len());
    } else {
        out.extend(bearer);
    }
}

/// [`PASSWORD_VALUE`]'s test: by hand on ASCII text (where `(?i)` is ASCII case folding
/// and `\s` is ASCII whitespace), by the regex otherwise.
pub(super) fn password_keyword(value: &str) -> bool {
    if !value.is_ascii() {
        return PASSWORD_VALUE.is_match(value);
    }
    let b = value.as_bytes();
    let n = b.len();
    let at = |i: usize, word: &[u8]| {
        b.get(i..i + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    let dash_key = |i: usize| matches!(b.get(i), Some(b'-' | b'_')) && at(i + 1, b"key");
    // `^otp$` and `^two[-_]factor$`: the whole value.
    if b.eq_ignore_ascii_case(b"otp") {
        return true;
    }
    if n == 10 && at(0, b"two") && matches!(b[3], b'-' | b'_') && at(4, b"factor") {
        return true;
    }
    // Every other keyword starts with its stem: look only where a stem is.
    // `token[^\s]*[:=]`: a `:` or `=` after `token` before any whitespace. The `token`
    // stems come in increasing order, and positions already scanned without success are
    // not scanned again (linear time).
    let mut token_scanned_to = 0;
    any_password_stem(b, |i, stem| match PASSWORD_STEMS[stem].0 {
        b"passw" => at(i, b"password") || at(i, b"passwd"),
        b"private" => at(i, b"privatekey") || dash_key(i + 7),
        b"api" => at(i, b"apikey") || dash_key(i + 3),
        b"secret" | b"auth" | b"credentials" | b"mysql_pwd" => true,
        b"token" if i + 5 >= token_scanned_to => {
            let rest = &b[i + 5..];
            let stop = rest
                .iter()
                .position(|&c| {
                    matches!(c, b':' | b'=' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
                })
                .unwrap_or(rest.len());
            token_scanned_to = i + 5 + stop;
            matches!(rest.get(stop), Some(b':' | b'='))
        }
        // `otp` and `two` count only as the whole value (above); `bearer` is no keyword.
        _ => false,
    })
}
