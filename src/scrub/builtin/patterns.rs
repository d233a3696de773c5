//! The compiled regexes of the built-ins, one static each, and how their matches become
//! ranges. Written to mean the same as Relay's; `\b`, `\d` and `\s` are Unicode-aware,
//! as in Relay (the `regex` crate's defaults).

use std::sync::LazyLock;

use regex::Regex;

use super::Ranges;

/// Compiles a built-in pattern; they are constants, covered by tests.
pub(super) fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in pattern is a valid regex")
}

/// 15 or 16 digits grouped 2-6-6-(1|2), dashes optional between groups.
pub(super) static IMEI: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b\d{2}-?\d{6}-?\d{6}-?\d{1,2}\b"));

/// Six hex pairs; each of the five separators may be `:` or `-` independently.
pub(super) static MAC: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b(?:[[:xdigit:]]{2}[:-]){5}[[:xdigit:]]{2}\b"));

/// 8-4-4-4-12 alphanumerics (not only hex), each dash optional, any case.
pub(super) static UUID: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"(?i)\b[a-z0-9]{8}-?[a-z0-9]{4}-?[a-z0-9]{4}-?[a-z0-9]{4}-?[a-z0-9]{12}\b")
});

/// RFC 5322-ish local part, `@`, dot-separated labels, a TLD of two or more letters.
pub(super) static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"\b[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,}\b")
});

/// One IPv4 octet, 0 to 255, tried in this order (leftmost-first, as in Relay).
macro_rules! octet {
    () => {
        "(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
    };
}

/// Four octets joined by dots, word-bounded.
pub(super) static IPV4: LazyLock<Regex> =
    LazyLock::new(|| compile(concat!(r"\b", octet!(), r"(?:\.", octet!(), r"){3}\b")));

/// Issuer prefix (Amex 34/37 + 1 digit, Visa 4 + 3, Mastercard 51-55 + 2, Discover 65 + 2
/// or 6011) and then twelve digits, each optionally preceded by a space or dash.
pub(super) static CREDITCARD: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b(?:3[47]\d|4\d{3}|5[1-5]\d\d|65\d\d|6011)(?:[-\s]?\d){12}\b"));

/// Country code (case-sensitive, the list Relay knows), two digits, 11 to 29 alphanumerics.
pub(super) static IBAN: LazyLock<Regex> = LazyLock::new(|| {
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
pub(super) static USERPATH: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?i)(?:\b(?:[a-z]:[\\/])?(?:users|home|documents and settings|[^/\\]+[/\\]profiles)[\\/]|/(?:home|users)/)([^/\\\r\n\x00]+)",
    )
});

/// PEM key: BEGIN line (group-less), body (group 1, shortest), END line. The newline after
/// the BEGIN marker and before the END marker stay outside the body.
pub(super) static PEMKEY: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"(?s)-----BEGIN[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----[\t ]*\r?\n?(.+?)\r?\n?-----END[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----",
    )
});

/// Optional lowercase scheme, `//`, then `user` or `user:password` (group 1), then `@`.
pub(super) static URL_AUTH: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b(?:[a-z0-9+-]+:)?//([a-zA-Z0-9%_.-]+(?::[a-zA-Z0-9%_.-]+)?)@"));

/// Sentry's old `URL_PASSWORD_RE`: `scheme://user:` then the password (group 1) and `@`.
pub(super) static URL_AUTH_LEGACY: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b(?:[a-z0-9]+:)?//[a-zA-Z0-9%_.-]+:([a-zA-Z0-9%_.-]+)@"));

/// `ddd-dd-dddd`, ASCII digits, word-bounded.
pub(super) static US_SSN: LazyLock<Regex> =
    LazyLock::new(|| compile(r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"));

/// `Bearer` in any case, whitespace, then the token: everything up to whitespace.
pub(super) static BEARER: LazyLock<Regex> = LazyLock::new(|| compile(r"(?i)\bbearer\s+\S+"));

/// Appends every `Bearer <token>` match, except where the token is only earlier
/// redactions (NULs in the search text): `Bearer [token]` is not redacted again.
pub(super) fn push_bearer(value: &str, out: &mut Ranges) {
    out.extend(
        BEARER
            .find_iter(value)
            .filter(|m| {
                let token = m.as_str().trim_end_matches('\0');
                token.ends_with(|c: char| !c.is_whitespace())
            })
            .map(|m| m.range()),
    );
}

/// Appends every whole match of `re`.
pub(super) fn push_matches(re: &Regex, value: &str, out: &mut Ranges) {
    out.extend(
        re.find_iter(value)
            .map(|m| m.range())
            .filter(|r| !r.is_empty()),
    );
}

/// Appends capture group 1 of every match of `re`.
pub(super) fn push_group(re: &Regex, value: &str, out: &mut Ranges) {
    for caps in re.captures_iter(value) {
        if let Some(g) = caps.get(1) {
            if !g.is_empty() {
                out.push(g.range());
            }
        }
    }
}
