//! Rules over bytes: the strings a binary holds (runs of valid UTF-8, and UTF-16LE
//! strings of at least [`MIN_CHARS`] characters) searched with a rule's pattern, and
//! every match redacted **in place, at its length**: a replacement or hash is cut or
//! padded with `*`, a removal or mask fills with `*`. The bytes around a match, and so a
//! binary's structure and size, never change.

use std::ops::Range;

use super::super::builtin::{password_key_matches, Pattern, Ranges};
use super::super::redact::hash_hex;
use super::super::rules::{Redaction, RuleKind, RuleRef};
use super::super::{Change, Method};

/// The fewest characters a UTF-16LE run must have to be searched (Relay's threshold).
pub const MIN_CHARS: usize = 5;

/// The character that pads cut replacements and fills removed or masked matches.
const FILL: char = '*';

/// Which encodings of text a region is searched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encodings {
    /// UTF-8 only (paths and text streams a format defines as UTF-8).
    Utf8,
    /// UTF-16LE only (a minidump's module names).
    Utf16,
    /// Both (memory, files of unknown encoding).
    Both,
}

/// What a region may have done to it.
#[derive(Debug, Clone, Copy)]
pub struct RegionOptions {
    /// The encodings searched.
    pub encodings: Encodings,
    /// `@anything` (a whole-value rule) may fill the region. False where the bytes are a
    /// format's structure, which only pattern matches may touch.
    pub whole: bool,
}

/// One match to redact, in the region's coordinates.
struct Hit<'r> {
    /// Byte range in the region (UTF-16: covering whole code units).
    range: Range<usize>,
    /// The matched text, decoded.
    text: String,
    utf16: bool,
    rule: &'r RuleRef,
    /// The rule's position in the region's list: earlier rules win overlaps.
    order: usize,
}

/// Redacts every match of `rules` (in order: a match overlapping an earlier rule's is
/// skipped) in `region`, adding one [`Change`] per match to `changes` with `path`.
pub fn scrub_region(
    region: &mut [u8],
    rules: &[&RuleRef],
    options: RegionOptions,
    path: &str,
    changes: &mut Vec<Change>,
) {
    if rules.is_empty() || region.is_empty() {
        return;
    }
    if options.whole {
        if let Some(rule) = rules
            .iter()
            .find(|rule| matches!(*rule.kind, RuleKind::Anything))
        {
            let text = String::from_utf8_lossy(region).into_owned();
            write_utf8(region, &replacement(rule, &text));
            changes.push(change(rule, path));
            return;
        }
    }
    let mut hits = Vec::new();
    if options.encodings != Encodings::Utf16 {
        for (offset, text) in utf8_runs(region) {
            find_hits(text, rules, &mut |order, rule, range| {
                hits.push(Hit {
                    text: text[range.clone()].to_owned(),
                    range: offset + range.start..offset + range.end,
                    utf16: false,
                    rule,
                    order,
                });
            });
        }
    }
    if options.encodings != Encodings::Utf8 {
        for alignment in 0..2 {
            for run in utf16_runs(region, alignment) {
                find_hits(&run.text, rules, &mut |order, rule, range| {
                    let units = run.units(range.clone());
                    hits.push(Hit {
                        text: run.text[range].to_owned(),
                        range: run.start + units.start * 2..run.start + units.end * 2,
                        utf16: true,
                        rule,
                        order,
                    });
                });
            }
        }
    }
    hits.sort_by_key(|hit| (hit.order, hit.range.start));
    // Redacted ranges by start; they never overlap, so the one starting last before a
    // hit's end is the only one that can overlap it.
    let mut taken: std::collections::BTreeMap<usize, usize> = std::collections::BTreeMap::new();
    for hit in hits {
        let overlaps = taken
            .range(..hit.range.end)
            .next_back()
            .is_some_and(|(_, &end)| end > hit.range.start);
        if overlaps {
            continue;
        }
        let target = &mut region[hit.range.clone()];
        let text = replacement(hit.rule, &hit.text);
        if hit.utf16 {
            write_utf16(target, &text);
        } else {
            write_utf8(target, &text);
        }
        changes.push(change(hit.rule, path));
        taken.insert(hit.range.start, hit.range.end);
    }
}

/// Calls `hit(order, rule, range)` for every range of `text` a rule matches.
fn find_hits<'r>(
    text: &str,
    rules: &[&'r RuleRef],
    hit: &mut dyn FnMut(usize, &'r RuleRef, Range<usize>),
) {
    if text.len() < MIN_CHARS {
        return;
    }
    let mut ranges = Ranges::new();
    // The same matcher often comes with several rules (`@email` in default scrubbing and
    // in the project's own rules): searched once per text.
    let mut searched: Vec<(&RuleKind, Ranges)> = Vec::new();
    for (order, rule) in rules.iter().enumerate() {
        ranges.clear();
        if let Some((_, found)) = searched
            .iter()
            .find(|(kind, _)| same_matcher(kind, &rule.kind))
        {
            for range in found.iter().cloned() {
                hit(order, rule, range);
            }
            continue;
        }
        match &*rule.kind {
            // Whole-region rules were handled by the caller (or may not apply here).
            RuleKind::Anything => {}
            RuleKind::Builtin(pattern) => pattern.find_ranges(text, &mut ranges),
            RuleKind::Regex { regex, groups } => {
                for captures in regex.captures_iter(text) {
                    for group in groups {
                        if let Some(m) = captures.get(usize::from(*group)) {
                            if !m.is_empty() {
                                ranges.push(m.range());
                            }
                        }
                    }
                }
            }
            RuleKind::Password => {
                Pattern::Bearer.find_ranges(text, &mut ranges);
                key_value_ranges(text, &password_key_matches, &mut ranges);
            }
            RuleKind::RedactPair { key } => {
                key_value_ranges(text, &|name| key.is_match(name), &mut ranges);
            }
        }
        for range in ranges.iter().cloned() {
            hit(order, rule, range);
        }
        searched.push((&rule.kind, ranges.clone()));
    }
}

/// Whether two rule kinds find the same ranges.
fn same_matcher(a: &RuleKind, b: &RuleKind) -> bool {
    match (a, b) {
        (RuleKind::Builtin(a), RuleKind::Builtin(b)) => a == b,
        (RuleKind::Password, RuleKind::Password) => true,
        _ => std::ptr::eq(a, b),
    }
}

/// The values of `name=value` and `name: value` pairs in `text` whose name `is_key`
/// accepts (`password=hunter2`, `"api_key": "abc"`, `--token=xyz`): the value up to
/// whitespace, a quote or `&`, `;`, `,`.
pub fn key_value_ranges(text: &str, is_key: &dyn Fn(&str) -> bool, out: &mut Ranges) {
    let bytes = text.as_bytes();
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
    let value_end = |b: u8| {
        b.is_ascii_whitespace()
            || b.is_ascii_control()
            || matches!(b, b'"' | b'\'' | b'&' | b';' | b',')
    };
    for sep in memchr::memchr2_iter(b'=', b':', bytes) {
        // The name: before optional spaces and a closing quote.
        let mut end = sep;
        while end > 0 && bytes[end - 1] == b' ' {
            end -= 1;
        }
        if end > 0 && matches!(bytes[end - 1], b'"' | b'\'') {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && end - start < 64 && name_byte(bytes[start - 1]) {
            start -= 1;
        }
        if start == end || !is_key(&text[start..end]) {
            continue;
        }
        let mut value = sep + 1;
        while value < bytes.len() && bytes[value] == b' ' {
            value += 1;
        }
        if value < bytes.len() && matches!(bytes[value], b'"' | b'\'') {
            value += 1;
        }
        let mut value_stop = value;
        while value_stop < bytes.len() && !value_end(bytes[value_stop]) {
            value_stop += 1;
        }
        // `:` of a URL scheme or a time (`http://`, `12:30`) has no plain value here.
        if value_stop > value && !text[value..value_stop].starts_with("//") {
            if out.last().is_some_and(|last| last.end > value) {
                continue;
            }
            out.push(value..value_stop);
        }
    }
}

/// The text a match becomes, before it is fitted to the match's length.
fn replacement(rule: &RuleRef, matched: &str) -> String {
    match &rule.redaction {
        Redaction::Default | Redaction::Remove | Redaction::Mask => String::new(),
        Redaction::Replace(text) => text.clone(),
        Redaction::Hash { algorithm, key } => hash_hex(
            *algorithm,
            key.as_deref().unwrap_or(b""),
            matched.as_bytes(),
        ),
    }
}

fn change(rule: &RuleRef, path: &str) -> Change {
    let method = match rule.redaction {
        Redaction::Default | Redaction::Remove => Method::Remove,
        Redaction::Replace(_) => Method::Replace,
        Redaction::Mask => Method::Mask,
        Redaction::Hash { .. } => Method::Hash,
    };
    Change {
        path: path.to_owned(),
        rule: rule.origin.clone(),
        method,
        shape: None,
    }
}

/// Writes `text` over `target`: cut at a character boundary where it is longer, padded
/// with [`FILL`] where it is shorter.
fn write_utf8(target: &mut [u8], text: &str) {
    let mut cut = text.len().min(target.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    target[..cut].copy_from_slice(&text.as_bytes()[..cut]);
    target[cut..].fill(FILL as u8);
}

/// Writes `text` as UTF-16LE over `target` (an even number of bytes): cut (never inside
/// a surrogate pair) or padded with [`FILL`].
fn write_utf16(target: &mut [u8], text: &str) {
    let room = target.len() / 2;
    let mut units: Vec<u16> = Vec::with_capacity(room);
    for c in text.chars() {
        let mut buffer = [0u16; 2];
        let encoded = c.encode_utf16(&mut buffer);
        if units.len() + encoded.len() > room {
            break;
        }
        units.extend_from_slice(encoded);
    }
    units.resize(room, FILL as u16);
    for (pair, unit) in target.chunks_exact_mut(2).zip(units) {
        pair.copy_from_slice(&unit.to_le_bytes());
    }
}

/// The runs of valid UTF-8 in `bytes` of at least [`MIN_CHARS`] bytes, with their offsets.
pub fn utf8_runs(bytes: &[u8]) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    bytes.utf8_chunks().filter_map(move |chunk| {
        let start = offset;
        offset += chunk.valid().len() + chunk.invalid().len();
        (chunk.valid().len() >= MIN_CHARS).then_some((start, chunk.valid()))
    })
}

/// A UTF-16LE run decoded: its text and, for each character, its code unit index.
pub struct Utf16Run {
    /// Byte offset of the run's first unit in the region.
    pub start: usize,
    /// The decoded text.
    pub text: String,
    /// The byte offset in `text` of each character, and `text.len()` last.
    char_starts: Vec<usize>,
}

impl Utf16Run {
    /// The code units of a byte range of `text` (every character is one unit).
    fn units(&self, range: Range<usize>) -> Range<usize> {
        let start = self.char_starts.partition_point(|&b| b < range.start);
        let end = self.char_starts.partition_point(|&b| b < range.end);
        start..end
    }
}

/// Whether a UTF-16 code unit is a text character [`utf16_runs`] keeps: tab, newline,
/// carriage return and printable characters up to U+07FF (Latin, Greek, Cyrillic,
/// Armenian, Hebrew, Arabic and their punctuation). Wider ranges would read most 8-bit
/// data as CJK text: ASCII pairs are units of U+2020 and above.
fn is_text_unit(unit: u16) -> bool {
    matches!(unit, 0x09 | 0x0A | 0x0D | 0x20..=0x7E | 0xA0..=0x07FF)
}

/// The UTF-16LE strings of at least [`MIN_CHARS`] text characters in `bytes`, reading
/// units from byte `alignment` (0 or 1).
pub fn utf16_runs(bytes: &[u8], alignment: usize) -> impl Iterator<Item = Utf16Run> + '_ {
    let units = bytes.get(alignment..).unwrap_or_default().chunks_exact(2);
    let mut units = units
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .enumerate();
    std::iter::from_fn(move || {
        let mut run: Option<Utf16Run> = None;
        for (index, unit) in units.by_ref() {
            if is_text_unit(unit) {
                let run = run.get_or_insert_with(|| Utf16Run {
                    start: alignment + index * 2,
                    text: String::new(),
                    char_starts: Vec::new(),
                });
                run.char_starts.push(run.text.len());
                run.text
                    .push(char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}'));
                continue;
            }
            match run.take() {
                Some(done) if done.char_starts.len() >= MIN_CHARS => return Some(finish(done)),
                _ => {}
            }
        }
        run.filter(|r| r.char_starts.len() >= MIN_CHARS).map(finish)
    })
}

fn finish(mut run: Utf16Run) -> Utf16Run {
    run.char_starts.push(run.text.len());
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn rule(kind: RuleKind, redaction: Redaction) -> RuleRef {
        RuleRef {
            id: Arc::from("r"),
            origin: Arc::from("r"),
            kind: Arc::new(kind),
            redaction,
        }
    }

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    fn scrub(bytes: &mut [u8], rule: &RuleRef) -> usize {
        let mut changes = Vec::new();
        let options = RegionOptions {
            encodings: Encodings::Both,
            whole: true,
        };
        scrub_region(bytes, &[rule], options, "", &mut changes);
        changes.len()
    }

    #[test]
    fn utf8_match_is_replaced_at_its_length() {
        let email = rule(
            RuleKind::Builtin(Pattern::Email),
            Redaction::Replace("[email]".into()),
        );
        let mut bytes = b"\x00\x01from jane.doe@example.com\xff\xfe".to_vec();
        let before = bytes.len();
        assert_eq!(scrub(&mut bytes, &email), 1);
        assert_eq!(bytes.len(), before);
        assert_eq!(&bytes[..], b"\x00\x01from [email]*************\xff\xfe");
    }

    #[test]
    fn utf16_match_is_replaced_in_utf16() {
        let email = rule(RuleKind::Builtin(Pattern::Email), Redaction::Remove);
        let mut bytes = vec![0xFFu8, 0xFF, 0x01];
        bytes.extend(utf16("mail jane@example.com!"));
        bytes.push(0);
        let expected_len = bytes.len();
        assert_eq!(scrub(&mut bytes, &email), 1);
        assert_eq!(bytes.len(), expected_len);
        let expected: Vec<u8> = [0xFFu8, 0xFF, 0x01]
            .into_iter()
            .chain(utf16("mail ****************!"))
            .chain([0])
            .collect();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn hash_is_cut_to_the_match() {
        let ip = rule(
            RuleKind::Builtin(Pattern::Ip),
            Redaction::Hash {
                algorithm: crate::scrub::HashAlgorithm::Sha1,
                key: None,
            },
        );
        let mut bytes = b"peer 10.1.2.3 end".to_vec();
        scrub(&mut bytes, &ip);
        let expected = &hash_hex(crate::scrub::HashAlgorithm::Sha1, b"", b"10.1.2.3")[..8];
        assert_eq!(&bytes[5..13], expected.as_bytes());
        assert_eq!(&bytes[13..], b" end");
    }

    #[test]
    fn sensitive_pairs_lose_their_values() {
        let password = rule(RuleKind::Password, Redaction::Remove);
        let mut bytes = b"API_TOKEN=tok_1234\0HOME=/root\0--password=hunter22 x".to_vec();
        assert_eq!(scrub(&mut bytes, &password), 2);
        assert_eq!(
            &bytes[..],
            b"API_TOKEN=********\0HOME=/root\0--password=******** x"
        );
    }

    #[test]
    fn anything_fills_the_region_only_when_allowed() {
        let anything = rule(RuleKind::Anything, Redaction::Remove);
        let mut bytes = b"whole region".to_vec();
        scrub(&mut bytes, &anything);
        assert_eq!(&bytes[..], b"************");
        let mut bytes = b"whole region".to_vec();
        let mut changes = Vec::new();
        let options = RegionOptions {
            encodings: Encodings::Both,
            whole: false,
        };
        scrub_region(&mut bytes, &[&anything], options, "", &mut changes);
        assert_eq!(&bytes[..], b"whole region");
        assert!(changes.is_empty());
    }

    #[test]
    fn short_and_wide_runs() {
        let runs: Vec<_> = utf16_runs(&utf16("abcd"), 0).collect();
        assert!(runs.is_empty(), "4 characters are not a string");
        // ASCII read as UTF-16 is U+2020 and up: not text.
        assert_eq!(utf16_runs(b"plain ascii text here", 0).count(), 0);
        assert_eq!(utf16_runs(b"plain ascii text here", 1).count(), 0);
        let mut odd = vec![0u8];
        odd.extend(utf16("odd offset"));
        let run = utf16_runs(&odd, 1).next().expect("found at odd alignment");
        assert_eq!(run.text, "odd offset");
        assert_eq!(run.start, 1);
    }

    #[test]
    fn utf8_runs_skip_invalid_bytes() {
        let runs: Vec<_> = utf8_runs(b"hello world\xff\xfeab\xc3cd more text").collect();
        assert_eq!(runs, vec![(0, "hello world"), (16, "cd more text")]);
        assert_eq!(utf8_runs(b"h\xc3\xa9llo").next(), Some((0, "h\u{e9}llo")));
    }
}
