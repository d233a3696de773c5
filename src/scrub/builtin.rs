//! Built-in value and key matchers: the patterns behind Relay's `@ip`, `@email`,
//! `@creditcard`, `@password` and friends, one compiled static each.
//!
//! A [`Pattern`] only *finds* what it would redact (byte ranges of a string value); the
//! engine decides how to redact it (remove, replace, mask, hash). The `password` rule also
//! looks at field keys: see [`password_key_matches`] and [`password_value_matches`].
//!
//! # Fast path
//!
//! Every value pattern first runs a cheap byte test (an `@` for email, three dots or two
//! colons for IP, enough digits for card numbers, ...) and returns without touching a regex
//! when that fails. The password keywords have none: they match with Unicode case folding. The tests are exact: they never reject a value the regex would match (a
//! property test checks this), including the Unicode corners Relay's regexes allow
//! (`\d` is any Unicode decimal digit; `(?i)[a-z]` also matches `K` U+212A and `ſ` U+017F).
//!
//! # Relationship to Relay
//!
//! The regexes mean the same as those in Relay's `relay-pii/src/regexes.rs` and
//! `builtin.rs`, with these deliberate differences:
//!
//! - **IPv6** is found by a scanner validated with [`Ipv6Addr`] parsing instead of Relay's
//!   alternation. Relay's alternation replaces only part of some addresses (for
//!   `2001:db8:85a3::8a2e:370:7334` it leaves `2001:db8:` in place, for `::ffff:1.2.3.4` it
//!   stops at `::ffff:1`); we take the longest valid address at each position, with its
//!   `%zone` if it has one. The boundary rule is Relay's: whitespace, ASCII punctuation or
//!   the string edge on both sides, so `foo::1` does not match. A bare `::` (the
//!   unspecified address, no information) is not matched, although Relay matches it; it
//!   appears in ordinary text such as `f :: Int`. An IPv4 address inside an IPv6 one is
//!   reported once, as part of the whole address.
//! - **userpath**: Relay's pattern is written in `x` mode, where the spaces in
//!   `documents and settings` are ignored, so Relay never matches
//!   `C:\Documents and Settings\<user>`. We match it, as Relay's docs intend.
//! - **bearer** reports the token only; Relay replaces the whole `Bearer <token>` with the
//!   text `Bearer [token]`. The visible output is the same for the usual single space, but
//!   the remark range starts at the token and whitespace between `Bearer` and the token is
//!   kept as sent.
//! - **password, value side**: [`password_value_matches`] is true for the bearer
//!   sub-pattern as well as for the keywords (as the engine contract asks). Relay redacts
//!   the whole value only for a keyword hit and only the `Bearer <token>` match otherwise;
//!   [`Pattern::PasswordValue`] reports exactly those ranges, so use it when the exact
//!   Relay output matters.
//!
//! Relay quirks we keep on purpose (compatibility): no Luhn or IBAN checksum; `uuid`
//! accepts any alphanumerics, not just hex; `mac` allows mixed `:`/`-` separators; the
//! `auth` keyword also matches `author`; a dotted quad inside a longer dotted string such as
//! `1.2.3.4.5` is reported (`1.2.3.4`); URL schemes are lowercase only.

use std::net::Ipv6Addr;
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use smallvec::SmallVec;

/// A built-in value pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// IMEI: 2-6-6-(1 or 2) digits, optional dashes, word-bounded, no check digit test.
    Imei,
    /// MAC address: six hex pairs separated by `:` or `-`.
    Mac,
    /// UUID: 8-4-4-4-12 alphanumerics, dashes optional (so 32-char hex ids match too).
    Uuid,
    /// Email address with a top-level domain of at least two letters.
    Email,
    /// IPv4 dotted quad or IPv6 address (whole address, with zone).
    Ip,
    /// Credit card number by issuer prefix and length, optional space/dash separators.
    Creditcard,
    /// IBAN: known country code, two check digits, 11 to 29 alphanumerics.
    Iban,
    /// The user name segment of a home directory path.
    Userpath,
    /// The body of a PEM private or public key (BEGIN/END lines are kept).
    Pemkey,
    /// The `user[:password]` part of `scheme://user[:password]@`.
    UrlAuth,
    /// Only the password of `scheme://user:password@` (Relay's `@urlauth:legacy`).
    UrlAuthLegacy,
    /// US social security number `ddd-dd-dddd`.
    UsSsn,
    /// The token after `Bearer` (case-insensitive) and whitespace.
    Bearer,
    /// The value side of the `password` rule: the whole value when it contains a
    /// sensitive keyword, otherwise each `Bearer <token>` match.
    PasswordValue,
}

/// Byte ranges of a value, as filled by [`Pattern::find_ranges`].
pub type Ranges = SmallVec<[Range<usize>; 4]>;

impl Pattern {
    /// Every pattern, in declaration order.
    pub const ALL: [Pattern; 14] = [
        Pattern::Imei,
        Pattern::Mac,
        Pattern::Uuid,
        Pattern::Email,
        Pattern::Ip,
        Pattern::Creditcard,
        Pattern::Iban,
        Pattern::Userpath,
        Pattern::Pemkey,
        Pattern::UrlAuth,
        Pattern::UrlAuthLegacy,
        Pattern::UsSsn,
        Pattern::Bearer,
        Pattern::PasswordValue,
    ];

    /// Lowercase name (Relay's rule type name where there is one).
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Imei => "imei",
            Pattern::Mac => "mac",
            Pattern::Uuid => "uuid",
            Pattern::Email => "email",
            Pattern::Ip => "ip",
            Pattern::Creditcard => "creditcard",
            Pattern::Iban => "iban",
            Pattern::Userpath => "userpath",
            Pattern::Pemkey => "pemkey",
            Pattern::UrlAuth => "url_auth",
            Pattern::UrlAuthLegacy => "url_auth_legacy",
            Pattern::UsSsn => "us_ssn",
            Pattern::Bearer => "bearer",
            Pattern::PasswordValue => "password",
        }
    }

    /// Appends to `out` the byte ranges of `value` that this pattern redacts (the replaced
    /// group, not always the whole match: userpath = the user segment only; pemkey = the
    /// body between BEGIN/END lines; url_auth = `user[:pass]`; url_auth legacy = only the
    /// password; bearer = the token; ip v6 = the whole address). The appended ranges are
    /// non-empty, on char boundaries, sorted and non-overlapping; ranges already in `out`
    /// are left alone.
    ///
    /// Cheap: a byte prefilter runs first and most values never reach a regex.
    pub fn find_ranges(self, value: &str, out: &mut Ranges) {
        if self.may_match(value) {
            self.find_ranges_unfiltered(value, out);
        }
    }

    /// [`Pattern::find_ranges`] for a value whose `features` (of the value, or of a longer
    /// text it was cut from) passed [`Pattern::may_match_features`]: the per-pattern byte
    /// prefilter is skipped where it would only recount what the features counted.
    pub fn find_ranges_after_features(self, value: &str, f: &Features<'_>, out: &mut Ranges) {
        match self {
            // An IPv6 address has seven colons, six before an embedded dotted quad, or
            // a `::`: URLs with a port and timestamps never reach the scanner.
            Pattern::Ip => ip_ranges(
                value,
                f.dots >= 3,
                f.colons >= 6 || (f.colons >= 2 && f.double_colon()),
                out,
            ),
            Pattern::Imei
            | Pattern::Creditcard
            | Pattern::Mac
            | Pattern::Email
            | Pattern::Iban
            | Pattern::UsSsn => self.find_ranges_unfiltered(value, out),
            _ => self.find_ranges(value, out),
        }
    }

    /// Like the byte prefilter of [`Pattern::find_ranges`], from features computed once
    /// per value and shared by every pattern: false only when the pattern certainly does
    /// not match a value with these features.
    pub fn may_match_features(self, f: &Features<'_>) -> bool {
        if f.non_ascii {
            // Unicode digits and case variants: leave it to the per-pattern test.
            return true;
        }
        match self {
            // Card numbers (15-16) and IMEIs (15-16) are digit runs with at most single
            // separators in between; timestamps and hex ids break much earlier.
            Pattern::Imei | Pattern::Creditcard => f.digits >= 15 && f.digit_run() >= 15,
            Pattern::Mac => f.len >= 17 && f.colons + f.dashes >= 5,
            Pattern::Uuid => f.alnum >= 32,
            Pattern::Email => f.len >= 6 && f.at,
            // IPv4 needs four digit groups; IPv6 is either full (7 colons) or compressed
            // (`::`), so timestamps like `08:00:00` never reach the scanners.
            Pattern::Ip => {
                (f.dots >= 3 && f.digits >= 4)
                    || f.colons >= 7
                    || (f.colons >= 2 && f.double_colon())
            }
            // Two capitals, two digits: the country code and check digits.
            Pattern::Iban => f.len >= 15 && f.upper && f.digits >= 2 && f.iban_head(),
            Pattern::Userpath => f.slashes > 0,
            Pattern::Pemkey => f.dashes >= 10,
            Pattern::UrlAuth | Pattern::UrlAuthLegacy => f.at && f.slashes >= 2,
            Pattern::UsSsn => f.dashes >= 2 && f.digits >= 9 && f.digit_run() >= 9,
            Pattern::Bearer => f.len >= 8,
            Pattern::PasswordValue => f.len > 0,
        }
    }

    /// The fast path: false only when the pattern certainly does not match `value`.
    fn may_match(self, value: &str) -> bool {
        let bytes = value.as_bytes();
        match self {
            // 15+ digits; an IMEI has two runs of six, a card number may be spaced out.
            Pattern::Imei => has_chars(value, 15, 6, maybe_digit),
            Pattern::Creditcard => has_chars(value, 15, 1, maybe_digit),
            Pattern::Mac => {
                bytes.len() >= 17 && count_at_least(bytes, 5, |b| b == b':' || b == b'-')
            }
            // 32 id chars, the last 12 of them consecutive.
            Pattern::Uuid => has_chars(value, 32, 12, uuid_char),
            Pattern::Email => bytes.len() >= 6 && bytes.contains(&b'@'),
            Pattern::Ip => {
                count_at_least(bytes, 3, |b| b == b'.') || count_at_least(bytes, 2, |b| b == b':')
            }
            Pattern::Iban => bytes.len() >= 15 && bytes.iter().any(u8::is_ascii_uppercase),
            // Every alternative of the regex ends its home-directory word with a
            // separator; on non-ASCII text `ſ` folds to `s`, so only ASCII is filtered.
            Pattern::Userpath => !value.is_ascii() || has_home_segment(bytes),
            Pattern::Pemkey => value.contains("-----BEGIN"),
            Pattern::UrlAuth | Pattern::UrlAuthLegacy => {
                bytes.contains(&b'@') && value.contains("//")
            }
            Pattern::UsSsn => {
                count_at_least(bytes, 2, |b| b == b'-')
                    && count_at_least(bytes, 9, |b| b.is_ascii_digit())
            }
            Pattern::Bearer => contains_ascii_ci(bytes, b"bearer"),
            // Keywords are matched with Unicode case folding (`ſecret`), so no byte test.
            Pattern::PasswordValue => !value.is_empty() && may_hold_password_keyword(value),
        }
    }

    /// The slow path: the full match, without the prefilter.
    fn find_ranges_unfiltered(self, value: &str, out: &mut Ranges) {
        match self {
            Pattern::Imei => push_matches(&IMEI, value, out),
            Pattern::Mac => push_matches(&MAC, value, out),
            Pattern::Uuid => push_matches(&UUID, value, out),
            Pattern::Email => push_matches(&EMAIL, value, out),
            Pattern::Iban => push_matches(&IBAN, value, out),
            Pattern::Creditcard => push_matches(&CREDITCARD, value, out),
            Pattern::UsSsn => push_matches(&US_SSN, value, out),
            Pattern::Userpath => push_group(&USERPATH, value, out),
            Pattern::Pemkey => push_group(&PEMKEY, value, out),
            Pattern::UrlAuth => push_group(&URL_AUTH, value, out),
            Pattern::UrlAuthLegacy => push_group(&URL_AUTH_LEGACY, value, out),
            Pattern::Bearer => push_group(&BEARER, value, out),
            Pattern::Ip => {
                let bytes = value.as_bytes();
                ip_ranges(
                    value,
                    count_at_least(bytes, 3, |b| b == b'.'),
                    count_at_least(bytes, 2, |b| b == b':'),
                    out,
                );
            }
            Pattern::PasswordValue => password_value_ranges(value, out),
        }
    }
}

/// Byte counts of one value, shared by every pattern's prefilter (see
/// [`Pattern::may_match_features`]). The counts come from one table-driven pass; the
/// sequential features (digit runs, IBAN heads, `::`) are computed only when a pattern
/// asks and the counts have not already ruled it out.
#[derive(Debug, Clone)]
pub struct Features<'v> {
    bytes: &'v [u8],
    len: usize,
    digits: u32,
    alnum: u32,
    dots: u32,
    colons: u32,
    dashes: u32,
    slashes: u32,
    at: bool,
    upper: bool,
    non_ascii: bool,
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
    /// [`Pattern::PasswordValue`]); false also for the empty text.
    pub fn may_hold_password_keyword(&self) -> bool {
        // Every stem has three ASCII letters or more.
        self.non_ascii || (self.alnum - self.digits >= 3 && has_password_stem(self.bytes))
    }

    fn digit_run(&self) -> u32 {
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

    fn iban_head(&self) -> bool {
        *self.iban_head.get_or_init(|| has_iban_head(self.bytes))
    }

    fn double_colon(&self) -> bool {
        *self
            .double_colon
            .get_or_init(|| memchr::memmem::find(self.bytes, b"::").is_some())
    }
}

/// Two ASCII capitals followed by two ASCII digits somewhere in `b`. The candidate
/// digit pair is checked second digit first: a non-digit there rules out two starting
/// positions at once.
fn has_iban_head(b: &[u8]) -> bool {
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
const PASSWORD_STEMS: [(&[u8], usize); 11] = [
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
fn has_password_stem(bytes: &[u8]) -> bool {
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
fn may_hold_password_keyword(text: &str) -> bool {
    !text.is_ascii() || has_password_stem(text.as_bytes())
}

/// The `password` rule's value test: true when the value contains one of the keywords of
/// [`password_key_matches`] (except the key-only bare `token`), or a `Bearer <token>`.
///
/// The engine redacts the whole value when this is true. Relay does so for a keyword hit;
/// for a bearer-only hit Relay redacts just `Bearer <token>`, which is what
/// [`Pattern::PasswordValue`] reports.
pub fn password_value_matches(value: &str) -> bool {
    PASSWORD_VALUE.is_match(value) || BEARER.is_match(value)
}

// ---------------------------------------------------------------------------------------
// Regexes. Written to mean the same as Relay's; `\b`, `\d` and `\s` are Unicode-aware, as
// in Relay (the `regex` crate's defaults).
// ---------------------------------------------------------------------------------------

/// Compiles a built-in pattern; they are constants, covered by tests.
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in pattern is a valid regex")
}

/// 15 or 16 digits grouped 2-6-6-(1|2), dashes optional between groups.
static IMEI: LazyLock<Regex> = LazyLock::new(|| compile(r"\b\d{2}-?\d{6}-?\d{6}-?\d{1,2}\b"));

/// Six hex pairs; each of the five separators may be `:` or `-` independently.
static MAC: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b(?:[[:xdigit:]]{2}[:-]){5}[[:xdigit:]]{2}\b"));

/// 8-4-4-4-12 alphanumerics (not only hex), each dash optional, any case.
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"(?i)\b[a-z0-9]{8}-?[a-z0-9]{4}-?[a-z0-9]{4}-?[a-z0-9]{4}-?[a-z0-9]{12}\b")
});

/// RFC 5322-ish local part, `@`, dot-separated labels, a TLD of two or more letters.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"\b[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}\b")
});

/// One IPv4 octet, 0 to 255, tried in this order (leftmost-first, as in Relay).
macro_rules! octet {
    () => {
        "(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
    };
}

/// Four octets joined by dots, word-bounded.
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!(r"\b", octet!(), r"(?:\.", octet!(), r"){3}\b")));

/// Issuer prefix (Amex 34/37 + 1 digit, Visa 4 + 3, Mastercard 51-55 + 2, Discover 65 + 2
/// or 6011) and then twelve digits, each optionally preceded by a space or dash.
static CREDITCARD: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b(?:3[47]\d|4\d{3}|5[1-5]\d\d|65\d\d|6011)(?:[-\s]?\d){12}\b"));

/// Country code (case-sensitive, the list Relay knows), two digits, 11 to 29 alphanumerics.
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"\b(?:",
        "AD|AE|AL|AO|AT|AZ|BA|BE|BF|BG|BH|BI|BJ|BR|BY|CF|CG|CH|CI|CM|CR|CV|CY|CZ|DE|DJ|DK|DO|DZ|",
        "EE|EG|ES|FI|FO|FR|GA|GB|GE|GI|GL|GQ|GR|GT|GW|HN|HR|HU|IE|IL|IQ|IR|IS|IT|JO|KM|KW|KZ|",
        "LB|LC|LI|LT|LU|LV|LY|MA|MC|MD|ME|MG|MK|ML|MR|MT|MU|MZ|NE|NI|NL|NO|PK|PL|PS|PT|QA|RO|",
        "RS|RU|SA|SC|SE|SI|SK|SM|SN|ST|SV|TD|TG|TL|TN|TR|UA|VA|VG|XK",
        r")\d{2}[a-zA-Z0-9]{11,29}\b",
    ))
});

/// A home directory prefix, then the user segment (group 1) up to the next separator,
/// line break or NUL. Any case. Prefixes: an optional drive, then `users`, `home`,
/// `documents and settings` or `<anything>\profiles`, then a separator; or `/home/` and
/// `/users/` anywhere.
static USERPATH: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)(?:\b(?:[a-z]:[\\/])?(?:users|home|documents and settings|[^/\\]+[/\\]profiles)[\\/]|/(?:home|users)/)([^/\\\r\n\x00]+)",
    )
});

/// PEM key: BEGIN line (group-less), body (group 1, shortest), END line. The newline after
/// the BEGIN marker and before the END marker stay outside the body.
static PEMKEY: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?s)-----BEGIN[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----[\t ]*\r?\n?(.+?)\r?\n?-----END[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----",
    )
});

/// Optional lowercase scheme, `//`, then `user` or `user:password` (group 1), then `@`.
static URL_AUTH: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b(?:[a-z0-9+-]+:)?//([a-zA-Z0-9%_.-]+(?::[a-zA-Z0-9%_.-]+)?)@"));

/// Sentry's old `URL_PASSWORD_RE`: `scheme://user:` then the password (group 1) and `@`.
static URL_AUTH_LEGACY: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b(?:[a-z0-9]+:)?//[a-zA-Z0-9%_.-]+:([a-zA-Z0-9%_.-]+)@"));

/// `ddd-dd-dddd`, ASCII digits, word-bounded.
static US_SSN: LazyLock<Regex> = LazyLock::new(|| compile(r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"));

/// `Bearer` in any case, whitespace, then the token (group 1): everything up to whitespace.
static BEARER: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)\bbearer\s+(\S+)"));

/// The keywords shared by the key and the value test of the `password` rule.
macro_rules! password_keywords {
    () => {
        "password|secret|passwd|api[-_]key|apikey|auth|credentials|mysql_pwd|privatekey|\
         private[-_]key|token[^\\s]*[:=]|^otp$|^two[-_]factor$"
    };
}

/// Key test: the keywords, plus Relay's key-only `token` anywhere (which subsumes the
/// `token...[:=]` keyword on keys).
static PASSWORD_KEY: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!("(?i)token|", password_keywords!())));

/// Value test: the keywords only.
static PASSWORD_VALUE: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!("(?i)", password_keywords!())));

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

/// Appends every whole match of `re`.
fn push_matches(re: &Regex, value: &str, out: &mut Ranges) {
    out.extend(
        re.find_iter(value)
            .map(|m| m.range())
            .filter(|r| !r.is_empty()),
    );
}

/// Appends capture group 1 of every match of `re`.
fn push_group(re: &Regex, value: &str, out: &mut Ranges) {
    for caps in re.captures_iter(value) {
        if let Some(g) = caps.get(1) {
            if !g.is_empty() {
                out.push(g.range());
            }
        }
    }
}

/// Sorts `out[start..]` and merges overlapping ranges into their union, so ranges found by
/// two searches (IPv4 inside IPv6) are reported once.
fn merge_overlaps(out: &mut Ranges, start: usize) {
    if out.len() - start < 2 {
        return;
    }
    out[start..].sort_unstable_by_key(|r| (r.start, r.end));
    let mut write = start;
    for read in start + 1..out.len() {
        let next = out[read].clone();
        if next.start < out[write].end {
            out[write].end = out[write].end.max(next.end);
        } else {
            write += 1;
            out[write] = next;
        }
    }
    out.truncate(write + 1);
}

/// The value side of the `password` rule, as Relay applies it: first each `Bearer <token>`
/// match is redacted; then, if a keyword is still found in what is left (redactions seen
/// as a NUL, as Relay's chunk search does), the whole value.
fn password_value_ranges(value: &str, out: &mut Ranges) {
    let mut bearer = Ranges::new();
    // `bearer` has no non-ASCII case variant, so ASCII text without it cannot match.
    if !value.is_ascii() || contains_ascii_ci(value.as_bytes(), b"bearer") {
        push_matches(&BEARER, value, &mut bearer);
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
fn password_keyword(value: &str) -> bool {
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

/// The `ip` pattern's ranges: IPv4 where the value has three dots (`may_v4`), IPv6 where
/// it has two colons (`may_v6`), an IPv4 inside an IPv6 reported once.
fn ip_ranges(value: &str, may_v4: bool, may_v6: bool, out: &mut Ranges) {
    let start = out.len();
    if may_v4 {
        if value.is_ascii() {
            ipv4_ascii(value.as_bytes(), out);
        } else {
            push_matches(&IPV4, value, out);
        }
    }
    if may_v6 {
        ipv6::find(value, out);
    }
    merge_overlaps(out, start);
}

/// [`IPV4`]'s matches on ASCII text, by hand: a match starts at a digit after a non-word
/// byte, its first three octets are forced by the dots after them, and the last octet
/// must take every following digit (the closing `\b`). Octets are 1-3 digits, three-digit
/// ones at most 255, as the regex's alternatives allow.
///
/// Every match has a dot one to three digits after its start, and that start is the
/// beginning of the digit run before the dot; so only the runs before dots are tried,
/// found with `memchr` (most text has few dots, and was scanned byte by byte before).
fn ipv4_ascii(b: &[u8], out: &mut Ranges) {
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let digits_at = |pos: usize| {
        b[pos.min(b.len())..]
            .iter()
            .take(4)
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let octet_ok = |pos: usize, len: usize| {
        (1..=3).contains(&len) && (len < 3 || &b[pos..pos + 3] <= b"255".as_slice())
    };
    // Where the scan may start again: after the last match.
    let mut resume = 0;
    for dot in memchr::memchr_iter(b'.', b) {
        // The digit run before the dot, at most three long, after a non-word byte.
        let run = b[dot.saturating_sub(3)..dot]
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let i = dot - run;
        if run == 0 || i < resume || (i > 0 && is_word(b[i - 1])) {
            continue;
        }
        let mut pos = i;
        let mut matched = true;
        for octet in 0..4 {
            let len = digits_at(pos);
            if !octet_ok(pos, len) {
                matched = false;
                break;
            }
            pos += len;
            if octet < 3 {
                if b.get(pos) != Some(&b'.') {
                    matched = false;
                    break;
                }
                pos += 1;
            } else if b.get(pos).is_some_and(|&c| is_word(c)) {
                matched = false;
            }
        }
        if matched {
            out.push(i..pos);
            resume = pos;
        }
    }
}

/// True when at least `n` bytes satisfy `pred` (stops early).
fn count_at_least(bytes: &[u8], n: usize, pred: impl Fn(u8) -> bool) -> bool {
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
fn has_chars(value: &str, total: usize, run: usize, pred: impl Fn(char) -> bool) -> bool {
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
fn maybe_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// A char `(?i)[a-z0-9]` may match: ASCII alphanumerics plus the two non-ASCII case
/// variants, `K` (Kelvin sign) and `ſ` (long s).
fn uuid_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '\u{212A}' || c == '\u{17F}'
}

/// True when a `/` or `\\` directly follows `users`, `home`, `profiles` or `documents and
/// settings` (ASCII, any case): the necessary core of every [`USERPATH`] match.
fn has_home_segment(bytes: &[u8]) -> bool {
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
fn contains_ascii_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The IPv6 scanner.
mod ipv6 {
    use super::{Ipv6Addr, Ranges};
    use smallvec::SmallVec;

    /// Appends every IPv6 address in `value`: at each position that follows whitespace,
    /// ASCII punctuation or the string start, the longest text that parses as an address
    /// and is followed by whitespace, punctuation or the end, plus its `%zone` if any.
    pub(super) fn find(value: &str, out: &mut Ranges) {
        let bytes = value.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if (b == b':' || b.is_ascii_hexdigit()) && boundary_before(value, i) {
                if let Some(end) = longest_at(value, i) {
                    out.push(i..end);
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
    }

    /// Whitespace or ASCII punctuation (Relay's `[\s]|[[:punct:]]`).
    fn is_boundary_char(c: char) -> bool {
        c.is_whitespace() || c.is_ascii_punctuation()
    }

    /// The character before byte `i` is a boundary, or `i` is the start. An ASCII byte
    /// before `i` is that character, tested without decoding.
    fn boundary_before(value: &str, i: usize) -> bool {
        match i.checked_sub(1).map(|j| value.as_bytes()[j]) {
            None => true,
            Some(b) if b.is_ascii() => is_boundary_char(char::from(b)),
            Some(_) => value[..i].chars().next_back().is_none_or(is_boundary_char),
        }
    }

    /// The character at byte `i` is a boundary, or `i` is the end.
    fn boundary_after(value: &str, i: usize) -> bool {
        value[i..].chars().next().is_none_or(is_boundary_char)
    }

    /// The end of the longest address starting at `start` (zone included), if any.
    fn longest_at(value: &str, start: usize) -> Option<usize> {
        let bytes = value.as_bytes();
        let mut ends: SmallVec<[usize; 16]> = SmallVec::new();
        candidate_ends(bytes, start, &mut ends);
        for &end in ends.iter().rev() {
            let text = &value[start..end];
            // A bare `::` carries no information; see the module docs.
            if text == "::" || !boundary_after(value, end) {
                continue;
            }
            if text.parse::<Ipv6Addr>().is_ok() {
                return Some(zone_end(value, end).unwrap_or(end));
            }
        }
        None
    }

    /// Pushes, in increasing order, the positions where an address starting at `start` could
    /// end: after each group of 1 to 4 hex digits, after the `::`, and after an embedded
    /// dotted quad. Stops where the text can no longer be an address (a second `::`, a
    /// group of 5 hex digits, more than 8 groups), which bounds the work per position.
    fn candidate_ends(bytes: &[u8], start: usize, ends: &mut SmallVec<[usize; 16]>) {
        let len = bytes.len();
        let mut pos = start;
        let mut double = false;
        if bytes[pos..].starts_with(b"::") {
            double = true;
            pos += 2;
            ends.push(pos);
        } else if bytes[pos] == b':' {
            return;
        }
        let mut groups = 0;
        loop {
            let group_start = pos;
            while pos < len && pos - group_start < 5 && bytes[pos].is_ascii_hexdigit() {
                pos += 1;
            }
            let digits = pos - group_start;
            if digits == 0 || digits > 4 {
                return;
            }
            groups += 1;
            ends.push(pos);
            if pos < len && bytes[pos] == b'.' {
                // An embedded IPv4 tail, or the address ends before a full stop.
                if let Some(end) = dotted_quad_end(bytes, group_start) {
                    ends.push(end);
                }
                return;
            }
            if groups == 8 || pos >= len || bytes[pos] != b':' {
                return;
            }
            if bytes.get(pos + 1) == Some(&b':') {
                if double {
                    return;
                }
                double = true;
                pos += 2;
                ends.push(pos);
            } else {
                pos += 1;
            }
        }
    }

    /// The end of `d{1,3}.d{1,3}.d{1,3}.d{1,3}` starting at `start`; range checks are left
    /// to the address parser.
    fn dotted_quad_end(bytes: &[u8], start: usize) -> Option<usize> {
        let mut pos = start;
        for part in 0..4 {
            if part > 0 {
                if bytes.get(pos) != Some(&b'.') {
                    return None;
                }
                pos += 1;
            }
            let digits_start = pos;
            while pos < bytes.len() && pos - digits_start < 3 && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            if pos == digits_start {
                return None;
            }
        }
        Some(pos)
    }

    /// `%` plus one or more ASCII alphanumerics right after the address, followed by a
    /// boundary: the end of that zone id.
    fn zone_end(value: &str, end: usize) -> Option<usize> {
        let bytes = value.as_bytes();
        if bytes.get(end) != Some(&b'%') {
            return None;
        }
        let zone_len = bytes[end + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let zone_end = end + 1 + zone_len;
        (zone_len > 0 && boundary_after(value, zone_end)).then_some(zone_end)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    /// One table case: `input` scanned by `pattern` must redact exactly `expect`, in order
    /// (empty = a near-miss that must not match).
    struct Case {
        name: &'static str,
        pattern: Pattern,
        input: &'static str,
        expect: &'static [&'static str],
    }

    const fn case(
        name: &'static str,
        pattern: Pattern,
        input: &'static str,
        expect: &'static [&'static str],
    ) -> Case {
        Case {
            name,
            pattern,
            input,
            expect,
        }
    }

    use Pattern::*;

    const PEM_RSA: &str = "my key\n-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFh\nD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\nbye";
    const PEM_CRLF: &str = "-----BEGIN PUBLIC KEY-----  \r\nAAAAB3Nza\r\n-----END PUBLIC KEY-----";

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // imei
        case("imei/plain", Imei, "before 356938035643809 after", &["356938035643809"]),
        case("imei/dashes", Imei, "imei 35-693803-564380-9", &["35-693803-564380-9"]),
        case("imei/two-check-digits", Imei, "356938035643809 1", &["356938035643809"]),
        case("imei/sixteen-digits", Imei, "3569380356438091", &["3569380356438091"]),
        case("imei/miss-too-short", Imei, "35693803564380", &[]),
        case("imei/miss-too-long", Imei, "35693803564380912", &[]),
        case("imei/miss-inside-word", Imei, "a356938035643809", &[]),
        // mac
        case("mac/colons", Mac, "ether 4a:00:04:10:9b:50", &["4a:00:04:10:9b:50"]),
        case("mac/dashes-upper", Mac, "4A-00-04-10-9B-50.", &["4A-00-04-10-9B-50"]),
        case("mac/mixed-separators-relay-quirk", Mac, "4a:00-04:10-9b:50", &["4a:00-04:10-9b:50"]),
        case("mac/miss-five-pairs", Mac, "ether 4a:00:04:10:9b", &[]),
        case("mac/miss-non-hex", Mac, "4a:00:04:10:9b:5g", &[]),
        case("mac/miss-inside-word", Mac, "x4a:00:04:10:9b:50", &[]),
        case("mac/miss-dots", Mac, "4a.00.04.10.9b.50", &[]),
        // uuid
        case("uuid/dashed", Uuid, "user id ceee0822-ed8f-4622-b2a3-789e73e75cd1", &["ceee0822-ed8f-4622-b2a3-789e73e75cd1"]),
        case("uuid/undashed-event-id", Uuid, "event 0123456789abcdef0123456789ABCDEF!", &["0123456789abcdef0123456789ABCDEF"]),
        case("uuid/upper", Uuid, "CEEE0822-ED8F-4622-B2A3-789E73E75CD1", &["CEEE0822-ED8F-4622-B2A3-789E73E75CD1"]),
        case("uuid/non-hex-alnum-relay-quirk", Uuid, "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", &["zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"]),
        case("uuid/kelvin-sign-unicode-fold", Uuid, "\u{212A}eee0822-ed8f-4622-b2a3-789e73e75cd1", &["\u{212A}eee0822-ed8f-4622-b2a3-789e73e75cd1"]),
        case("uuid/miss-31-chars", Uuid, "0123456789abcdef0123456789abcde", &[]),
        case("uuid/miss-33-chars", Uuid, "0123456789abcdef0123456789abcdef0", &[]),
        case("uuid/miss-underscores", Uuid, "ceee0822_ed8f_4622_b2a3_789e73e75cd1", &[]),
        // email
        case("email/angle-brackets", Email, "John Appleseed <john@appleseed.com>", &["john@appleseed.com"]),
        case("email/plus-and-subdomains", Email, "to foo.bar+tag@mail.example.co.uk now", &["foo.bar+tag@mail.example.co.uk"]),
        case("email/two", Email, "a@b.io,c@d.org", &["a@b.io", "c@d.org"]),
        case("email/miss-no-tld", Email, "foo@localhost", &[]),
        case("email/miss-one-letter-tld", Email, "foo@example.c", &[]),
        case("email/miss-numeric-tld", Email, "foo@123.456", &[]),
        case("email/miss-no-local-part", Email, "@example.com", &[]),
        // ip
        case("ip/v4", Ip, "before 127.0.0.1 after", &["127.0.0.1"]),
        case("ip/v4-max", Ip, "255.255.255.255", &["255.255.255.255"]),
        case("ip/v4-two", Ip, "ip=10.0.0.1,10.0.0.2", &["10.0.0.1", "10.0.0.2"]),
        case("ip/v4-prefix-of-longer-dotted-relay-quirk", Ip, "1.2.3.4.5", &["1.2.3.4"]),
        case("ip/v6-loopback", Ip, "before ::1 after", &["::1"]),
        case("ip/v6-full-bracketed", Ip, "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]", &["2001:0db8:85a3:0000:0000:8a2e:0370:7334"]),
        case("ip/v6-compressed-whole-address", Ip, "from 2001:db8:85a3::8a2e:370:7334 ok", &["2001:db8:85a3::8a2e:370:7334"]),
        case("ip/v6-trailing-double-colon", Ip, "net 2001:db8:: end", &["2001:db8::"]),
        case("ip/v6-link-local-zone", Ip, "via fe80::1%eth0.", &["fe80::1%eth0"]),
        case("ip/v6-v4-mapped-whole", Ip, "peer ::ffff:192.168.1.1 up", &["::ffff:192.168.1.1"]),
        case("ip/v6-url-with-port", Ip, "http://[::1]:8080/x", &["::1"]),
        case("ip/v6-sentence-end", Ip, "addr 2001:db8::1.", &["2001:db8::1"]),
        case("ip/v4-and-v6", Ip, "1.2.3.4 and ::2", &["1.2.3.4", "::2"]),
        case("ip/miss-foo-colon-colon-1", Ip, "foo::1", &[]),
        case("ip/miss-octet-256", Ip, "256.1.1.1", &[]),
        case("ip/miss-three-octets", Ip, "1.2.3", &[]),
        case("ip/miss-inside-word", Ip, "a1.2.3.4", &[]),
        case("ip/miss-time", Ip, "at 12:30:45 today", &[]),
        case("ip/miss-mac", Ip, "4a:00:04:10:9b:50", &[]),
        case("ip/miss-bare-double-colon", Ip, "f :: Int -> Int", &[]),
        case("ip/miss-cpp-path", Ip, "std::vector", &[]),
        case("ip/v6-split-at-second-double-colon", Ip, "x 1::2::3 y", &["1::2"]),
        case("ip/miss-five-hex-digit-group", Ip, "x 12345::1 y", &[]),
        case("ip/overlapping-v4-v6-hits-are-unioned", Ip, "1.2.3.4::1 x", &["1.2.3.4::1"]),
        // creditcard
        case("creditcard/visa", Creditcard, "foo 4571234567890111", &["4571234567890111"]),
        case("creditcard/spaces", Creditcard, "John Appleseed 4571 2345 6789 0111!", &["4571 2345 6789 0111"]),
        case("creditcard/dashes", Creditcard, "card 4111-1111-1111-1111.", &["4111-1111-1111-1111"]),
        case("creditcard/amex", Creditcard, "amex 378282246310005", &["378282246310005"]),
        case("creditcard/mastercard", Creditcard, "5555555555554444", &["5555555555554444"]),
        case("creditcard/discover-6011", Creditcard, "6011111111111117", &["6011111111111117"]),
        case("creditcard/discover-65", Creditcard, "6500000000000002", &["6500000000000002"]),
        case("creditcard/no-luhn-relay-quirk", Creditcard, "4111111111111112", &["4111111111111112"]),
        case("creditcard/miss-unknown-issuer", Creditcard, "1453843029218310", &[]),
        case("creditcard/miss-too-long", Creditcard, "45712345678901112", &[]),
        case("creditcard/miss-too-short", Creditcard, "4571234567890", &[]),
        case("creditcard/miss-inside-word", Creditcard, "x4571234567890111", &[]),
        case("creditcard/miss-underscores", Creditcard, "4571_2345_6789_0111", &[]),
        // iban
        case("iban/de", Iban, "some iban: DE89370400440532013000!", &["DE89370400440532013000"]),
        case("iban/no-shortest", Iban, "some iban: NO9386011117945!", &["NO9386011117945"]),
        case("iban/gb-letters", Iban, "GB24NWBK56308374074647", &["GB24NWBK56308374074647"]),
        case("iban/ru-longest", Iban, "RU0204452560040702810412345678901", &["RU0204452560040702810412345678901"]),
        case("iban/miss-inside-word", Iban, "fooNO9386011117945bar", &[]),
        case("iban/miss-too-short", Iban, "NO938601111794", &[]),
        case("iban/miss-too-long", Iban, "RU02044525600407028104123456789010", &[]),
        case("iban/miss-digit-in-country", Iban, "N19386011117945", &[]),
        case("iban/miss-unknown-country", Iban, "ZZ89370400440532013000", &[]),
        case("iban/miss-lowercase-country", Iban, "de89370400440532013000", &[]),
        // userpath
        case("userpath/macos", Userpath, "File in /Users/mitsuhiko/Development/x", &["mitsuhiko"]),
        case("userpath/windows", Userpath, "C:\\Users\\mitsuhiko\\Desktop", &["mitsuhiko"]),
        case("userpath/linux-home", Userpath, "/home/jane/.bashrc", &["jane"]),
        case("userpath/uppercase", Userpath, "/HOME/Jane/x", &["Jane"]),
        case("userpath/profiles", Userpath, "C:\\Windows\\Profiles\\Armin\\Temp", &["Armin"]),
        case("userpath/env-home", Userpath, "export PATH=$PATH:$HOME/collectd_exporter\nlog", &["collectd_exporter"]),
        case("userpath/documents-and-settings", Userpath, "C:\\Documents and Settings\\bob\\x", &["bob"]),
        case("userpath/segment-with-space", Userpath, "/home/bob smith/x", &["bob smith"]),
        case("userpath/two-paths", Userpath, "/home/a/x /home/b/y", &["a", "b"]),
        case("userpath/miss-usr", Userpath, "/usr/local/bin", &[]),
        case("userpath/miss-homework", Userpath, "/homework/x", &[]),
        case("userpath/miss-empty-segment", Userpath, "/Users/", &[]),
        // pemkey
        case("pemkey/rsa-private", Pemkey, PEM_RSA, &["MIIBOgIBAAJBAKj34GkxFh\nD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu"]),
        case("pemkey/public-crlf", Pemkey, PEM_CRLF, &["AAAAB3Nza"]),
        case("pemkey/miss-no-end", Pemkey, "-----BEGIN RSA PRIVATE KEY-----\nMIIB", &[]),
        case("pemkey/miss-certificate", Pemkey, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", &[]),
        // url_auth
        case("url_auth/user-pass", UrlAuth, "https://username:password@example.com/", &["username:password"]),
        case("url_auth/user-only", UrlAuth, "ftp://anonymous@ftp.example.com", &["anonymous"]),
        case("url_auth/percent-encoded", UrlAuth, "redis://u%40x:p%2Fw@h:6379", &["u%40x:p%2Fw"]),
        case("url_auth/miss-at-in-path", UrlAuth, "https://example.com/@foo", &[]),
        case("url_auth/miss-mailto", UrlAuth, "mailto:user@example.com", &[]),
        case("url_auth/miss-uppercase-scheme-relay-quirk", UrlAuth, "HTTPS://u:p@example.com", &[]),
        // url_auth legacy
        case("url_auth_legacy/password-only", UrlAuthLegacy, "pg://matt:pass@localhost/1", &["pass"]),
        case("url_auth_legacy/https", UrlAuthLegacy, "https://username:password@example.com/", &["password"]),
        case("url_auth_legacy/miss-no-password", UrlAuthLegacy, "https://user@example.com", &[]),
        case("url_auth_legacy/miss-empty-password", UrlAuthLegacy, "https://user:@example.com", &[]),
        case("url_auth_legacy/miss-no-slashes", UrlAuthLegacy, "user:pass@example.com", &[]),
        // us_ssn
        case("us_ssn/plain", UsSsn, "Hi I'm Hilda and my SSN is 078-05-1120", &["078-05-1120"]),
        case("us_ssn/two-in-list", UsSsn, "ssn=078-05-1120;219-09-9999", &["078-05-1120", "219-09-9999"]),
        case("us_ssn/miss-no-dashes", UsSsn, "078051120", &[]),
        case("us_ssn/miss-too-long", UsSsn, "078-05-11200", &[]),
        case("us_ssn/miss-inside-word", UsSsn, "a078-05-1120", &[]),
        // bearer
        case("bearer/jwt", Bearer, "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", &["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"]),
        case("bearer/header-lowercase-spaces", Bearer, "authorization: bearer   abc123", &["abc123"]),
        case("bearer/in-message", Bearer, "API failed with Bearer ABC123TOKEN for user@example.com", &["ABC123TOKEN"]),
        case("bearer/miss-no-token", Bearer, "Bearer ", &[]),
        case("bearer/miss-no-space", Bearer, "Bearertoken", &[]),
        case("bearer/miss-inside-word", Bearer, "xBearer abc", &[]),
        // password, value side
        case("password/keyword-whole-value", PasswordValue, "User's password is 12345", &["User's password is 12345"]),
        case("password/secret", PasswordValue, "my secret", &["my secret"]),
        case("password/token-assignment", PasswordValue, "token=abc", &["token=abc"]),
        case("password/exact-otp", PasswordValue, "OTP", &["OTP"]),
        case("password/bearer-only-match", PasswordValue, "x Bearer abc y", &["Bearer abc"]),
        case("password/keyword-inside-bearer-token", PasswordValue, "x Bearer secret123", &["Bearer secret123"]),
        case("password/bearer-and-keyword", PasswordValue, "auth: Bearer abc", &["auth: Bearer abc"]),
        case("password/miss-plain", PasswordValue, "hello world", &[]),
        case("password/miss-tokens-word", PasswordValue, "tokens are nice", &[]),
        case("password/miss-otp-in-text", PasswordValue, "my otp code", &[]),
    ];

    fn scan(pattern: Pattern, input: &str) -> Ranges {
        let mut out = Ranges::new();
        pattern.find_ranges(input, &mut out);
        out
    }

    fn spans(ranges: &[Range<usize>]) -> Vec<(usize, usize)> {
        ranges.iter().map(|r| (r.start, r.end)).collect()
    }

    fn assert_well_formed(input: &str, ranges: &[Range<usize>], what: &str) {
        for (i, r) in ranges.iter().enumerate() {
            assert!(r.start < r.end, "{what}: empty range {r:?}");
            assert!(r.end <= input.len(), "{what}: {r:?} out of bounds");
            assert!(
                input.is_char_boundary(r.start) && input.is_char_boundary(r.end),
                "{what}: {r:?} splits a char"
            );
            if i > 0 {
                assert!(
                    ranges[i - 1].end <= r.start,
                    "{what}: {ranges:?} unsorted or overlapping"
                );
            }
        }
    }

    #[test]
    fn password_stems_are_found_at_every_offset_and_case() {
        for (stem, _) in PASSWORD_STEMS {
            let stem = std::str::from_utf8(stem).unwrap();
            for variant in [stem.to_owned(), stem.to_uppercase(), {
                // Alternate case: pAsSw.
                stem.chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i % 2 == 1 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect()
            }] {
                for pad in 0..4 {
                    for tail in ["", "x", "xy"] {
                        let text = format!("{}{variant}{tail}", "-".repeat(pad));
                        assert!(has_password_stem(text.as_bytes()), "{text:?}");
                    }
                }
                // One letter short at either end is no stem.
                let bytes = variant.as_bytes();
                assert!(!has_password_stem(&bytes[1..]), "{variant}");
                assert!(!has_password_stem(&bytes[..bytes.len() - 1]), "{variant}");
            }
        }
        for clean in [
            "",
            "a",
            "checkout failed",
            "Sessions",
            "user_name",
            "pas_sw",
            "mysql-pwd",
        ] {
            assert!(!has_password_stem(clean.as_bytes()), "{clean:?}");
        }
    }

    #[test]
    fn shared_features_never_hide_a_table_match() {
        for c in CASES.iter().filter(|c| !c.expect.is_empty()) {
            assert!(
                c.pattern.may_match_features(&Features::scan(c.input)),
                "{}: features hide a match in {:?}",
                c.name,
                c.input
            );
        }
        // The separators a card number may carry.
        for card in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "378282246310005",
            "4111\t1111\n1111 1111",
        ] {
            assert!(
                Pattern::Creditcard.may_match_features(&Features::scan(card)),
                "{card:?}"
            );
        }
        assert!(Pattern::UsSsn.may_match_features(&Features::scan("ssn 078-05-1120")));
        assert!(Pattern::Iban.may_match_features(&Features::scan("acct DE89370400440532013000")));
        // What the features rule out.
        assert!(!Pattern::Creditcard
            .may_match_features(&Features::scan("d272d1371c17149d439536b3216fdaee")));
        assert!(!Pattern::Creditcard
            .may_match_features(&Features::scan("1795912872.172 1795912872.999")));
        assert!(
            !Pattern::Iban.may_match_features(&Features::scan("Some Long Sentence With Capitals"))
        );
    }

    #[test]
    fn table() {
        for c in CASES {
            let ranges = scan(c.pattern, c.input);
            assert_well_formed(c.input, &ranges, c.name);
            let found: Vec<&str> = ranges.iter().map(|r| &c.input[r.clone()]).collect();
            assert_eq!(found, c.expect, "case {}", c.name);
        }
    }

    #[test]
    fn case_names_are_unique() {
        let mut seen = HashSet::new();
        for c in CASES {
            assert!(seen.insert(c.name), "duplicate case name {}", c.name);
        }
        for c in KEY_CASES {
            assert!(seen.insert(c.0), "duplicate case name {}", c.0);
        }
        for c in VALUE_CASES {
            assert!(seen.insert(c.0), "duplicate case name {}", c.0);
        }
    }

    #[test]
    fn every_pattern_has_hits_and_near_misses() {
        for p in Pattern::ALL {
            let hits = CASES
                .iter()
                .filter(|c| c.pattern == p && !c.expect.is_empty())
                .count();
            let misses = CASES
                .iter()
                .filter(|c| c.pattern == p && c.expect.is_empty())
                .count();
            assert!(
                hits >= 2 && misses >= 2,
                "{}: {hits} hits, {misses} misses",
                p.as_str()
            );
            // Case names are prefixed with the pattern name, so a miss-filed case shows.
            for c in CASES.iter().filter(|c| c.pattern == p) {
                let prefix = c.name.split('/').next().unwrap_or_default();
                assert!(
                    prefix == p.as_str(),
                    "case {} filed under {}",
                    c.name,
                    p.as_str()
                );
            }
        }
    }

    /// The acceptance examples of the reference (byte ranges, not just texts).
    #[test]
    fn reference_ranges() {
        #[rustfmt::skip]
        type RangeCase = (Pattern, &'static str, &'static [(usize, usize)]);
        let cases: &[RangeCase] = &[
            (Mac, "ether 4a:00:04:10:9b:50", &[(6, 23)]),
            (
                Uuid,
                "user id ceee0822-ed8f-4622-b2a3-789e73e75cd1",
                &[(8, 44)],
            ),
            (
                Userpath,
                "File in /Users/mitsuhiko/Development/x",
                &[(15, 24)],
            ),
            (
                UrlAuth,
                "https://username:password@example.com/",
                &[(8, 25)],
            ),
            (UrlAuthLegacy, "pg://matt:pass@localhost/1", &[(10, 14)]),
            (Creditcard, "foo 4571234567890111", &[(4, 20)]),
            (Creditcard, "1453843029218310", &[]),
            (Ip, "before 127.0.0.1 after", &[(7, 16)]),
            (Ip, "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]", &[(1, 40)]),
            (UsSsn, "Hi I'm Hilda and my SSN is 078-05-1120", &[(27, 38)]),
            (Iban, "some iban: DE89370400440532013000!", &[(11, 33)]),
            (Email, "John Appleseed <john@appleseed.com>", &[(16, 34)]),
            (Bearer, "Bearer eyJhbGciOiJIUzI1NiJ9", &[(7, 27)]),
        ];
        for (pattern, input, expect) in cases {
            assert_eq!(
                spans(&scan(*pattern, input)),
                *expect,
                "{} on {input:?}",
                pattern.as_str()
            );
        }
    }

    /// A9 of the reference: each built-in finds its part of one message.
    #[test]
    fn mixed_message() {
        let msg = "API failed with Bearer ABC123TOKEN for user@example.com using card 4111-1111-1111-1111";
        let texts = |p| {
            scan(p, msg)
                .iter()
                .map(|r| msg[r.clone()].to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(Bearer), ["ABC123TOKEN"]);
        assert_eq!(texts(Email), ["user@example.com"]);
        assert_eq!(texts(Creditcard), ["4111-1111-1111-1111"]);
        assert!(texts(Ip).is_empty());
    }

    #[test]
    fn pem_body_keeps_marker_lines() {
        let ranges = scan(Pemkey, PEM_RSA);
        assert_eq!(ranges.len(), 1);
        let mut redacted = PEM_RSA.to_owned();
        redacted.replace_range(ranges[0].clone(), "[pemkey]");
        assert_eq!(
            redacted,
            "my key\n-----BEGIN RSA PRIVATE KEY-----\n[pemkey]\n-----END RSA PRIVATE KEY-----\nbye"
        );
    }

    #[test]
    fn appends_without_touching_existing_ranges() {
        let mut out = Ranges::new();
        out.push(100..200);
        Ip.find_ranges("1.2.3.4 ::1", &mut out);
        assert_eq!(spans(&out), [(100, 200), (0, 7), (8, 11)]);
    }

    #[test]
    fn ipv4_inside_ipv6_is_reported_once() {
        assert_eq!(spans(&scan(Ip, "::ffff:10.0.0.1")), [(0, 15)]);
        assert_eq!(spans(&scan(Ip, "1:2:3:4:5:6:10.0.0.1 x")), [(0, 20)]);
        // The same through the shared features, whose IPv6 gate needs six colons or `::`.
        let after_features = |text: &str| {
            let mut out = Ranges::new();
            Ip.find_ranges_after_features(text, &Features::scan(text), &mut out);
            spans(&out)
        };
        assert_eq!(after_features("1:2:3:4:5:6:10.0.0.1 x"), [(0, 20)]);
        assert_eq!(after_features("at 12:00:01 from 1.2.3.4"), [(17, 24)]);
        assert_eq!(after_features("fe80::1 and 1.2.3.4"), [(0, 7), (12, 19)]);
        assert_eq!(after_features("1:2:3:4:5:6:7:8"), [(0, 15)]);
    }

    #[test]
    fn merge_overlaps_unions_and_sorts() {
        let mut out: Ranges = [9..10, 5..8, 0..4, 2..6].into_iter().collect();
        merge_overlaps(&mut out, 1);
        assert_eq!(spans(&out), [(9, 10), (0, 8)]);
    }

    /// Key cases: (name, key, sensitive?).
    #[rustfmt::skip]
    const KEY_CASES: &[(&str, &str, bool)] = &[
        ("key/password", "password", true),
        ("key/api_key", "api_key", true),
        ("key/api-key-upper", "API-KEY", true),
        ("key/apikey", "apikey", true),
        ("key/a_password_here", "a_password_here", true),
        ("key/x-auth-token", "X-Auth-Token", true),
        ("key/authorization", "Authorization", true),
        ("key/author-relay-quirk", "author", true),
        ("key/secret", "client_secret", true),
        ("key/passwd", "passwd", true),
        ("key/credentials", "aws_credentials", true),
        ("key/mysql_pwd", "MYSQL_PWD", true),
        ("key/privatekey", "privateKey", true),
        ("key/private-key", "private-key", true),
        ("key/token-anywhere", "csrftoken", true),
        ("key/access_token", "access_token", true),
        ("key/otp-exact", "otp", true),
        ("key/otp-upper", "OTP", true),
        ("key/two-factor", "two-factor", true),
        ("key/two_factor", "two_factor", true),
        ("key/long-s-unicode-fold", "\u{17F}ecret", true),
        ("key/miss-foo", "foo", false),
        ("key/miss-username", "username", false),
        ("key/miss-email", "email", false),
        ("key/miss-otp-prefix", "otp_code", false),
        ("key/miss-two-factor-inside", "my-two-factor", false),
        ("key/miss-pwd", "pwd", false),
        ("key/miss-key", "key", false),
        ("key/miss-empty", "", false),
    ];

    #[test]
    fn password_keys() {
        for (name, key, expect) in KEY_CASES {
            assert_eq!(password_key_matches(key), *expect, "case {name}: {key:?}");
        }
    }

    /// Value cases: (name, value, matches?).
    #[rustfmt::skip]
    const VALUE_CASES: &[(&str, &str, bool)] = &[
        ("value/password-sentence", "User's password is 12345", true),
        ("value/secret", "secret_key", true),
        ("value/token-colon", "token: abc", true),
        ("value/token-equals-later", "mytoken_v2=abc", true),
        ("value/bearer", "Bearer abc", true),
        ("value/otp-exact", "otp", true),
        ("value/author-relay-quirk", "written by the author", true),
        ("value/miss-hello", "hello", false),
        ("value/miss-token-word", "tokens are fine", false),
        ("value/miss-token-space-before-equals", "token =x", false),
        ("value/miss-otp-in-text", "my otp", false),
        ("value/miss-empty", "", false),
    ];

    #[test]
    fn password_values() {
        for (name, value, expect) in VALUE_CASES {
            assert_eq!(
                password_value_matches(value),
                *expect,
                "case {name}: {value:?}"
            );
            // The ranges agree with the boolean: something is redacted exactly when it is true.
            assert_eq!(
                !scan(PasswordValue, value).is_empty(),
                *expect,
                "case {name} ranges"
            );
        }
    }

    #[test]
    fn all_regexes_compile() {
        for re in [
            &IMEI,
            &MAC,
            &UUID,
            &EMAIL,
            &IPV4,
            &CREDITCARD,
            &IBAN,
            &USERPATH,
            &PEMKEY,
            &URL_AUTH,
            &URL_AUTH_LEGACY,
            &US_SSN,
            &BEARER,
            &PASSWORD_KEY,
            &PASSWORD_VALUE,
        ] {
            LazyLock::force(re);
        }
    }

    #[test]
    fn names_are_unique() {
        let names: HashSet<_> = Pattern::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names.len(), Pattern::ALL.len());
    }

    /// Fragments that make the generated strings likely to hit (or nearly hit) a pattern.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("4571 2345 6789 0111".to_owned()),
            Just("356938035643809".to_owned()),
            Just("4a:00:04:10:9b:50".to_owned()),
            Just("ceee0822-ed8f-4622-b2a3-789e73e75cd1".to_owned()),
            Just("john@appleseed.com".to_owned()),
            Just("127.0.0.1".to_owned()),
            Just("2001:db8:85a3::8a2e:370:7334".to_owned()),
            Just("fe80::1%eth0".to_owned()),
            Just("::ffff:1.2.3.4".to_owned()),
            Just("DE89370400440532013000".to_owned()),
            Just("/Users/jane/".to_owned()),
            Just("C:\\Users\\jane\\".to_owned()),
            Just("-----BEGIN RSA PRIVATE KEY-----\nAB\n-----END RSA PRIVATE KEY-----".to_owned()),
            Just("https://u:p@h".to_owned()),
            Just("078-05-1120".to_owned()),
            Just("Bearer ".to_owned()),
            Just("password".to_owned()),
            Just("token=".to_owned()),
            Just("home/".to_owned()),
            Just("HOME\\".to_owned()),
            Just("Documents and Settings\\".to_owned()),
            Just("x\\Profiles\\".to_owned()),
            Just("/users/".to_owned()),
            Just("apiKEY".to_owned()),
            Just("Private-Key".to_owned()),
            Just("Two_Factor".to_owned()),
            Just("otp".to_owned()),
            Just("MYSQL_PWD ".to_owned()),
            Just("Credentials".to_owned()),
            Just("seCret".to_owned()),
            Just("passwd".to_owned()),
            "[a-zA-Z_ -]{0,12}",
            Just("\u{212A}\u{17F}\u{0664}\u{00A0}é\0".to_owned()),
            "[0-9a-fA-F:.%@/\\\\ -]{0,24}",
            "[0-9\u{0660}-\u{0669} -]{0,20}",
            any::<String>(),
        ]
    }

    /// ASCII text rich in IPv4 shapes and password keywords.
    fn ascii_text() -> impl Strategy<Value = String> {
        let fragment = prop_oneof![
            "[0-9.]{1,16}",
            "(25[0-9]|2[0-9][0-9]|[0-9]{1,4})(\\.[0-9]{1,4}){0,4}",
            "[a-z_ .:=-]{0,6}",
            Just("password".to_owned()),
            Just("PassWD".to_owned()),
            Just("api-key".to_owned()),
            Just("API_KEY".to_owned()),
            Just("apikey".to_owned()),
            Just("api key".to_owned()),
            Just("privatekey".to_owned()),
            Just("private_KEY".to_owned()),
            Just("private key".to_owned()),
            Just("secret".to_owned()),
            Just("auth".to_owned()),
            Just("credentials".to_owned()),
            Just("mysql_pwd".to_owned()),
            Just("token".to_owned()),
            Just("TOKEN".to_owned()),
            Just("otp".to_owned()),
            Just("OTP".to_owned()),
            Just("two-factor".to_owned()),
            Just("Two_Factor".to_owned()),
            Just("\u{b}".to_owned()),
            Just("\t".to_owned()),
            Just("=".to_owned()),
            Just(":".to_owned()),
            "(?i)tok(en)?[a-z\t =:]{0,3}[:= ]",
            "[ -~]{0,8}",
        ];
        prop::collection::vec(fragment, 0..5).prop_map(|parts| parts.concat())
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(fragment(), 0..6).prop_map(|parts| parts.concat())
    }

    proptest! {
        // Cheap, and the hand-written matchers must agree with the regexes they replace.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The hand-written IPv4 scanner finds exactly what the regex finds on ASCII text.
        #[test]
        fn ipv4_by_hand_equals_the_regex(value in ascii_text()) {
            let mut by_hand = Ranges::new();
            ipv4_ascii(value.as_bytes(), &mut by_hand);
            let mut by_regex = Ranges::new();
            push_matches(&IPV4, &value, &mut by_regex);
            prop_assert_eq!(by_hand, by_regex, "{:?}", value);
        }

        /// The hand-written keyword test agrees with the regex on ASCII text.
        #[test]
        fn password_keyword_by_hand_equals_the_regex(value in ascii_text()) {
            prop_assert_eq!(
                password_keyword(&value),
                PASSWORD_VALUE.is_match(&value),
                "{:?}", value
            );
        }
    }

    proptest! {
        /// The skipping IBAN-head scan finds what a scan of every window finds.
        #[test]
        fn iban_head_scan_matches_windows(value in "[A-Z0-9a -]{0,24}") {
            let b = value.as_bytes();
            let expected = b.windows(4).any(|w| {
                w[0].is_ascii_uppercase()
                    && w[1].is_ascii_uppercase()
                    && w[2].is_ascii_digit()
                    && w[3].is_ascii_digit()
            });
            prop_assert_eq!(has_iban_head(b), expected, "{}", value);
        }

        #[test]
        fn ranges_are_well_formed(value in text()) {
            for p in Pattern::ALL {
                let ranges = scan(p, &value);
                assert_well_formed(&value, &ranges, p.as_str());
            }
        }

        #[test]
        fn ranges_are_well_formed_on_any_string(value in any::<String>()) {
            for p in Pattern::ALL {
                let ranges = scan(p, &value);
                assert_well_formed(&value, &ranges, p.as_str());
            }
        }

        /// The fast path never hides a match.
        #[test]
        fn prefilter_is_exact(value in text()) {
            for p in Pattern::ALL {
                let mut slow = Ranges::new();
                p.find_ranges_unfiltered(&value, &mut slow);
                prop_assert_eq!(scan(p, &value), slow.clone(), "{}", p.as_str());
                let features = Features::scan(&value);
                if !slow.is_empty() {
                    prop_assert!(
                        p.may_match_features(&features),
                        "shared features hide a {} match", p.as_str()
                    );
                }
                if p.may_match_features(&features) {
                    let mut after = Ranges::new();
                    p.find_ranges_after_features(&value, &features, &mut after);
                    prop_assert_eq!(after, slow.clone(), "{} after features", p.as_str());
                }
            }
        }

        /// IPv6 scanner hits are real addresses (zone aside), well formed.
        #[test]
        fn ipv6_hits_parse(value in text()) {
            let mut hits = Ranges::new();
            ipv6::find(&value, &mut hits);
            assert_well_formed(&value, &hits, "ipv6");
            for r in hits {
                let hit = &value[r.clone()];
                let addr = hit.split('%').next().unwrap_or_default();
                prop_assert!(addr.parse::<Ipv6Addr>().is_ok(), "{:?} in {:?}", hit, value);
            }
        }
    }
}
