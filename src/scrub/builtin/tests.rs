use proptest::prelude::*;
use std::collections::HashSet;

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use super::ip::{ipv4_ascii, ipv6, merge_overlaps};
use super::password::{
    has_password_stem, password_keyword, PASSWORD_KEY, PASSWORD_STEMS, PASSWORD_VALUE,
};
use super::patterns::{BEARER, IPV4};
use super::prefilter::{
    contains_ascii_ci, count_at_least, has_chars, has_home_segment, has_iban_head, maybe_digit,
    uuid_char,
};
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
    // Exactly as long as the shortest match: the length prefilter must let it through.
    case("imei/whole-value-15-digits", Imei, "490154203237518", &["490154203237518"]),
    case("creditcard/whole-value-15-digits", Creditcard, "378282246310005", &["378282246310005"]),
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
    // device_id (scrubgate's detector: Luhn-checked IMEIs and MACs only)
    case("device_id/imei", DeviceId, "imei 490154203237518 here", &["490154203237518"]),
    case("device_id/imei-dashes", DeviceId, "imei 49-015420-323751-8", &["49-015420-323751-8"]),
    case("device_id/mac", DeviceId, "wlan0 4a:00:04:10:9b:50 up", &["4a:00:04:10:9b:50"]),
    case("device_id/both-in-order", DeviceId, "4A-00-04-10-9B-50 and 356938035643809", &["4A-00-04-10-9B-50", "356938035643809"]),
    case("device_id/miss-order-number-fails-luhn", DeviceId, "order 490154203237519 shipped", &[]),
    case("device_id/miss-fifteen-digits-not-luhn", DeviceId, "ref 123456789012345", &[]),
    case("device_id/miss-imeisv-sixteen-digits", DeviceId, "3569380356438091", &[]),
    case("device_id/miss-amex-card-passes-luhn", DeviceId, "card 340000000000009 declined", &[]),
    case("device_id/miss-uuid", DeviceId, "ceee0822-ed8f-4622-b2a3-789e73e75cd1", &[]),
    case("device_id/miss-trace-id", DeviceId, "trace 4bf92f3577b34da6a3ce929d0e0e4736", &[]),
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
    case("ip/v6-loopback-whole-value", Ip, "::1", &["::1"]),
    // A `%` with no zone id, or a zone id followed by a letter, is not part of the address.
    case("ip/v6-empty-zone", Ip, "fe80::1% done", &["fe80::1"]),
    case("ip/v6-zone-before-letter", Ip, "fe80::1%eth0\u{e9}", &["fe80::1"]),
    case("ip/v6-miss-letter-after", Ip, "::1g and 2001:db8::1zz", &[]),
    // `Å` ends in the byte 0x85, which read alone would be a whitespace character (NEL).
    case("ip/v6-miss-after-non-ascii-letter", Ip, "\u{c5}::1", &[]),
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
    case("bearer/jwt", Bearer, "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", &["Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"]),
    case("bearer/header-lowercase-spaces", Bearer, "authorization: bearer   abc123", &["bearer   abc123"]),
    case("bearer/in-message", Bearer, "API failed with Bearer ABC123TOKEN for user@example.com", &["Bearer ABC123TOKEN"]),
    case("bearer/placeholder-not-again", Bearer, "Bearer \0", &[]),
    case("bearer/token-after-placeholder", Bearer, "Bearer \0abc", &["Bearer \0abc"]),
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
    case("password/keyword-after-bearer", PasswordValue, "Bearer abc my secret", &["Bearer abc my secret"]),
    // The first `token` has whitespace before any `:`/`=`; a later one is still tried.
    case("password/second-token-assignment", PasswordValue, "some text token x token=1", &["some text token x token=1"]),
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
    assert!(
        !Pattern::Creditcard.may_match_features(&Features::scan("1795912872.172 1795912872.999"))
    );
    assert!(!Pattern::Iban.may_match_features(&Features::scan("Some Long Sentence With Capitals")));
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

/// Worked examples, checked as byte ranges (not just texts).
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
        (Bearer, "x Bearer eyJhbGciOiJIUzI1NiJ9", &[(2, 29)]),
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

/// Each built-in finds its part of one mixed message.
#[test]
fn mixed_message() {
    let msg =
        "API failed with Bearer ABC123TOKEN for user@example.com using card 4111-1111-1111-1111";
    let texts = |p| {
        scan(p, msg)
            .iter()
            .map(|r| msg[r.clone()].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(Bearer), ["Bearer ABC123TOKEN"]);
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

/// The fast path does its job: each condition of each prefilter rules out the values
/// that pass every other condition. A prefilter that let these through would still give
/// the right ranges (the regex decides), but every ordinary value would pay for a regex.
#[test]
fn each_prefilter_condition_rules_out_its_near_misses() {
    // Shared features (`may_match_features`): each input fails exactly one condition.
    let by_features: &[(Pattern, &str)] = &[
        // 20 digits, but no run of 15: a timestamp.
        (Creditcard, "2024-01-01T12:00:00.123456Z"),
        (Imei, "2024-01-01T12:00:00.123456Z"),
        // Long without separators; separators but short.
        (Mac, "a long sentence without separators"),
        (Mac, "a:b:c:d:e:f"),
        (Uuid, "short-id-1234"),
        (Email, "no at sign in here"),
        (Email, "a@b.c"),
        // Dots without digits; digits with two dots; two colons without `::`.
        (Ip, "a.b.c.d.e"),
        (Ip, "12.34.56"),
        (Ip, "12:34:56"),
        // Too short; no capitals; no digits; capitals and digits but never `AA00`.
        (Iban, "DE89 short"),
        (Iban, "de89 a long lowercase sentence"),
        (Iban, "Some Long Sentence With Capitals"),
        (Iban, "Long Sentence 12 With Capitals"),
        (Userpath, "no separators here"),
        (Pemkey, "a-b-c"),
        (UrlAuth, "path/to/some/file"),
        (UrlAuth, "user@host"),
        (UrlAuthLegacy, "user@host"),
        // Dashes without digits; digits without dashes; both, but no run of 9.
        (UsSsn, "a-b-c"),
        (UsSsn, "123456789"),
        (UsSsn, "12-34 56.78.90 12"),
        (Bearer, "Bear"),
        (PasswordValue, ""),
        (DeviceId, "2024-01-01T12:00:00.123456Z"),
    ];
    for (pattern, input) in by_features {
        assert!(
            !pattern.may_match_features(&Features::scan(input)),
            "{}: the shared features let {input:?} through",
            pattern.as_str()
        );
    }
    // Each pattern's own byte test (`may_match`).
    let by_bytes: &[(Pattern, &str)] = &[
        (Imei, "12345 12345 12345"),
        (Creditcard, "12345678901234"),
        (Mac, "a long sentence without separators"),
        (Mac, "a:b:c:d:e:f"),
        (Uuid, "short-id-1234"),
        (Email, "no at sign in here"),
        (Email, "a@b.c"),
        (Ip, "1.2.3"),
        (Ip, "a:b"),
        (Iban, "DE89 short"),
        (Iban, "de89 a long lowercase sentence"),
        (Userpath, "/var/log/app"),
        (Pemkey, "-----END KEY-----"),
        (UrlAuth, "user@host"),
        (UrlAuth, "http://host/path"),
        (UsSsn, "a-b-c"),
        (UsSsn, "123456789"),
        (Bearer, "bear with me"),
        (PasswordValue, ""),
        (PasswordValue, "hello world"),
        (DeviceId, "12345678901234"),
    ];
    for (pattern, input) in by_bytes {
        assert!(
            !pattern.may_match(input),
            "{}: the byte test lets {input:?} through",
            pattern.as_str()
        );
    }
}

/// The shared counts are exact, also past the 255-byte chunks the counter flushes at.
#[test]
fn features_count_each_byte_class_exactly() {
    let value = "Ab1.:-/\\@ x9Z";
    let f = Features::scan(value);
    assert_eq!(
        (f.len, f.digits, f.alnum, f.dots, f.colons, f.dashes, f.slashes),
        (13, 2, 6, 1, 1, 1, 2)
    );
    assert!(f.at && f.upper && !f.non_ascii);
    let f = Features::scan("lower only, no digits");
    assert!(!f.at && !f.upper);
    assert_eq!((f.digits, f.alnum), (0, 17));
    assert!(Features::scan("caf\u{e9}").non_ascii);
    // 600 bytes: three chunks.
    let long = "1.a:".repeat(150);
    let f = Features::scan(&long);
    assert_eq!(
        (f.len, f.digits, f.alnum, f.dots, f.colons),
        (600, 150, 300, 150, 150)
    );
    assert_eq!(Features::scan("12-34 56\t7x8").digit_run(), 7);
    assert_eq!(Features::scan("12--34").digit_run(), 2);
    assert_eq!(Features::scan("-12").digit_run(), 2);
    assert!(Features::scan("a::b").double_colon());
    assert!(!Features::scan("a:b:c").double_colon());
    assert!(Features::scan("xx DE89 yy").iban_head());
    assert!(!Features::scan("xx De89 D8 9").iban_head());
}

#[test]
fn byte_test_helpers_are_exact() {
    assert!(count_at_least(b"a.b.c", 2, |b| b == b'.'));
    assert!(!count_at_least(b"a.b", 2, |b| b == b'.'));
    assert!(!count_at_least(b"", 1, |_| true));
    // 15 digits in runs of 5: enough in total, not in one run of 6.
    assert!(!has_chars("12345 12345 12345", 15, 6, maybe_digit));
    assert!(has_chars("123456 123456 123", 15, 6, maybe_digit));
    assert!(!has_chars("12345678901234", 15, 1, maybe_digit));
    assert!(has_chars("١٢٣٤٥٦٧٨٩٠١٢٣٤٥", 15, 15, maybe_digit));
    assert!(!has_chars("abc", 2, 4, |c| c.is_ascii_alphabetic()));
    assert!(maybe_digit('7') && maybe_digit('٣') && !maybe_digit('x'));
    assert!(uuid_char('K') && uuid_char('\u{212A}') && uuid_char('\u{17F}') && !uuid_char('-'));
    for home in [
        "/home/x",
        "C:\\Users\\x",
        "/PROFILES/x",
        "c:\\documents and settings\\x",
    ] {
        assert!(has_home_segment(home.as_bytes()), "{home}");
    }
    for other in ["/var/log/x", "home", "ome/x", "/homes/x", "/"] {
        assert!(!has_home_segment(other.as_bytes()), "{other}");
    }
    assert!(contains_ascii_ci(b"x BeArEr y", b"bearer"));
    assert!(!contains_ascii_ci(b"bear", b"bearer"));
}

/// The IMEI test of `@deviceid`: 15 digits, an allocated reporting body, the Luhn digit.
#[test]
fn imei_check_digit_and_reporting_body() {
    assert!(is_luhn_valid_imei("490154203237518"));
    assert!(is_luhn_valid_imei("49-015420-323751-8"));
    // Wrong check digit; unallocated body (a 15-digit card number); 16 digits that pass
    // Luhn (an IMEISV has no check digit); a non-digit.
    assert!(!is_luhn_valid_imei("490154203237519"));
    assert!(!is_luhn_valid_imei("378282246310005"));
    assert!(!is_luhn_valid_imei("4901542032375183"));
    assert!(!is_luhn_valid_imei("49015420323751x"));
}

/// Ranges found by two searches are merged where they overlap, not where they touch;
/// ranges before `start` are left alone.
#[test]
fn merge_overlaps_merges_only_overlapping_ranges() {
    let mut out: Ranges = smallvec::smallvec![0..2, 9..12, 3..5, 5..7, 4..6];
    merge_overlaps(&mut out, 1);
    assert_eq!(out.as_slice(), [0..2, 3..7, 9..12]);
    let mut out: Ranges = smallvec::smallvec![0..3, 3..5];
    merge_overlaps(&mut out, 0);
    assert_eq!(out.as_slice(), [0..3, 3..5]);
    let mut out: Ranges = smallvec::smallvec![2..9];
    merge_overlaps(&mut out, 0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0], 2..9);
}

/// The password prefilter lets every keyword through and rules out text without one.
#[test]
fn password_prefilter_rules_out_text_without_a_keyword() {
    for text in [
        "my secret",
        "PASSWORD",
        "x-api-key: 1",
        "\u{17F}ecret",
        "auth",
    ] {
        assert!(Features::scan(text).may_hold_password_keyword(), "{text:?}");
    }
    for text in ["hello world", "", "12345 678", "ab", "order 7 shipped"] {
        assert!(
            !Features::scan(text).may_hold_password_keyword(),
            "{text:?}"
        );
    }
}
