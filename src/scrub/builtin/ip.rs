//! The `ip` pattern: IPv4 by hand on ASCII text (the regex otherwise), IPv6 by a scanner
//! validated with the standard address parser, an IPv4 inside an IPv6 reported once.

use std::net::Ipv6Addr;

use super::patterns::{push_matches, IPV4};
use super::Ranges;

/// The `ip` pattern's ranges: IPv4 where the value has three dots (`may_v4`), IPv6 where
/// it has two colons (`may_v6`), an IPv4 inside an IPv6 reported once.
pub(super) fn ip_ranges(value: &str, may_v4: bool, may_v6: bool, out: &mut Ranges) {
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
pub(super) fn ipv4_ascii(b: &[u8], out: &mut Ranges) {
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

/// Sorts `out[start..]` and merges overlapping ranges into their union, so ranges found by
/// two searches (IPv4 inside IPv6) are reported once.
pub(super) fn merge_overlaps(out: &mut Ranges, start: usize) {
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

/// The IPv6 scanner.
pub(super) mod ipv6 {
    use super::{Ipv6Addr, Ranges};
    use smallvec::SmallVec;

    /// Appends every IPv6 address in `value`: at each position that follows whitespace,
    /// ASCII punctuation or the string start, the longest text that parses as an address
    /// and is followed by whitespace, punctuation or the end, plus its `%zone` if any.
    pub(in crate::scrub::builtin) fn find(value: &str, out: &mut Ranges) {
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
            // A bare `::` carries no information; see the `builtin` module docs.
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
