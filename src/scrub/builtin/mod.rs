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
//! The regexes mean the same as Relay's built-in PII regexes and rules (its `relay-pii`
//! crate), with these deliberate differences:
//!
//! - **IPv6** is found by a scanner validated with [`Ipv6Addr`](std::net::Ipv6Addr) parsing instead of Relay's
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
//! - **password, value side**: [`password_value_matches`] is true for the bearer
//!   sub-pattern as well as for the keywords (the engine redacts the whole value on either). Relay redacts
//!   the whole value only for a keyword hit and only the `Bearer <token>` match otherwise;
//!   [`Pattern::PasswordValue`] reports exactly those ranges, so use it when the exact
//!   Relay output matters.
//!
//! Relay quirks we keep on purpose (compatibility): no Luhn or IBAN checksum; `uuid`
//! accepts any alphanumerics, not just hex; `mac` allows mixed `:`/`-` separators; the
//! `auth` keyword also matches `author`; a dotted quad inside a longer dotted string such as
//! `1.2.3.4.5` is reported (`1.2.3.4`); URL schemes are lowercase only.
//!
//! # Layout
//!
//! This module holds [`Pattern`] and its dispatch; `patterns` the compiled regexes,
//! `prefilter` the byte tests and the shared [`Features`], `password` the `password`
//! rule's keyword tests and `ip` the IPv4 and IPv6 matchers.

use std::ops::Range;

use smallvec::SmallVec;

mod ip;
mod password;
mod patterns;
mod prefilter;

use ip::ip_ranges;
pub use password::password_key_matches;
#[cfg(test)]
pub use password::password_value_matches;
use password::{may_hold_password_keyword, password_value_ranges};
use patterns::{
    push_bearer, push_group, push_matches, CREDITCARD, EMAIL, IBAN, IMEI, MAC, PEMKEY, URL_AUTH,
    URL_AUTH_LEGACY, USERPATH, US_SSN, UUID,
};
pub use prefilter::Features;
use prefilter::{
    contains_ascii_ci, count_at_least, has_chars, has_home_segment, maybe_digit, uuid_char,
};

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
    /// `Bearer` (case-insensitive), whitespace and the token, as one match: Relay's
    /// `@bearer` replaces it all with `Bearer [token]`.
    Bearer,
    /// The value side of the `password` rule: the whole value when it contains a
    /// sensitive keyword, otherwise each `Bearer <token>` match.
    PasswordValue,
    /// Device identifiers that can be told apart from other ids in free text (scrubgate's
    /// `@deviceid`, not Relay's): an IMEI of 15 digits with an allocated reporting body
    /// prefix and a right Luhn check digit (so order and card numbers of the same shape
    /// are not hit), and a MAC address. UUIDs and
    /// hex ids are not matched: trace, span and event ids look the same.
    DeviceId,
}

/// Byte ranges of a value, as filled by [`Pattern::find_ranges`].
pub type Ranges = SmallVec<[Range<usize>; 4]>;

impl Pattern {
    /// Every pattern, in declaration order.
    #[cfg(test)]
    pub const ALL: [Pattern; 15] = [
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
        Pattern::DeviceId,
    ];

    /// Lowercase name (Relay's rule type name where there is one).
    #[cfg(test)]
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
            Pattern::DeviceId => "device_id",
        }
    }

    /// Appends to `out` the byte ranges of `value` that this pattern redacts (the replaced
    /// group, not always the whole match: userpath = the user segment only; pemkey = the
    /// body between BEGIN/END lines; url_auth = `user[:pass]`; url_auth legacy = only the
    /// password; bearer = `Bearer <token>`; ip v6 = the whole address). The appended ranges are
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
            Pattern::DeviceId => {
                Pattern::Imei.may_match_features(f) || Pattern::Mac.may_match_features(f)
            }
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
            Pattern::DeviceId => Pattern::Imei.may_match(value) || Pattern::Mac.may_match(value),
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
            Pattern::Bearer => push_bearer(value, out),
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
            Pattern::DeviceId => device_id_ranges(value, out),
        }
    }
}

/// [`Pattern::DeviceId`]: Luhn-valid 15-digit IMEIs and MAC addresses, merged in order.
fn device_id_ranges(value: &str, out: &mut Ranges) {
    let mut found = Ranges::new();
    push_matches(&IMEI, value, &mut found);
    found.retain(|r| is_luhn_valid_imei(&value[r.clone()]));
    push_matches(&MAC, value, &mut found);
    found.sort_by_key(|r| r.start);
    let mut last_end = out.last().map_or(0, |r| r.end);
    for r in found {
        if r.start >= last_end {
            last_end = r.end;
            out.push(r);
        }
    }
}

/// The reporting body identifiers GSMA has allocated: an IMEI's first two digits are one
/// of these. 15-digit card numbers (American Express: 34, 37) pass Luhn too; they fail
/// here.
const IMEI_REPORTING_BODIES: [u8; 17] = [
    1, 10, 30, 33, 35, 44, 45, 49, 50, 51, 52, 53, 54, 86, 91, 98, 99,
];

/// Whether `text` (digits, maybe with dashes) is an IMEI: 15 ASCII digits that start with
/// an allocated reporting body identifier and end with a correct Luhn check digit.
/// 16-digit IMEISVs carry no check digit and are not told apart from other numbers, so
/// they are not matched.
pub fn is_luhn_valid_imei(text: &str) -> bool {
    let digits: SmallVec<[u8; 16]> = text
        .bytes()
        .filter(|b| *b != b'-')
        .map(|b| b.wrapping_sub(b'0'))
        .collect();
    if digits.len() != 15 || digits.iter().any(|d| *d > 9) {
        return false;
    }
    if !IMEI_REPORTING_BODIES.contains(&(digits[0] * 10 + digits[1])) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests;
