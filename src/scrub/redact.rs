//! Redacting one string: matches become opaque chunks (so later rules never re-match an
//! earlier replacement), each with its remark; remove, replace, mask and (keyed) hash.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use smallvec::SmallVec;

use super::builtin::{self, Pattern};
use super::json::Bump;
use super::meta::{Remark, RemarkType};
use super::rules::{HashAlgorithm, Redaction, RuleKind, RuleRef};

/// A string being redacted: text pieces and opaque redactions, so that later rules
/// never re-match inside an earlier replacement.
pub(super) struct ChunkedValue<'t> {
    original: &'t str,
    /// `None` until the first change: the value is then just `original`.
    chunks: Option<Vec<Chunk<'t>>>,
    /// The search text of `chunks`, built once per change (every later rule searches it).
    search: std::cell::OnceCell<String>,
    pub(super) changed: bool,
    /// Whether `original` was split around the placeholders it holds (done when a rule
    /// first needs the value: most values are ruled out by their features before).
    prepared: bool,
    /// Keep the shape of each matched text (for samples; off in the proxy's hot path).
    pub(super) record_shapes: bool,
}

/// Replacement texts of the built-in rules.
const PLACEHOLDERS: &[&str] = &[
    "[Filtered]",
    "[ip]",
    "[imei]",
    "[mac]",
    "[uuid]",
    "[email]",
    "[iban]",
    "[creditcard]",
    "[pemkey]",
    "[auth]",
    "[us-ssn]",
    "[user]",
    "[password]",
    "[token]",
    "[device-id]",
];

/// Splits `text` around built-in placeholders; `None` when it has none.
fn split_placeholders(text: &str) -> Option<Vec<Chunk<'_>>> {
    let mut chunks = Vec::new();
    let mut rest = text;
    let mut found = false;
    while let Some(i) = rest.find('[') {
        match PLACEHOLDERS.iter().find(|p| rest[i..].starts_with(**p)) {
            Some(p) => {
                found = true;
                if i > 0 {
                    chunks.push(Chunk::Text(Cow::Borrowed(&rest[..i])));
                }
                chunks.push(Chunk::Opaque(p));
                rest = &rest[i + p.len()..];
            }
            None => {
                let next = i + 1;
                chunks.push(Chunk::Text(Cow::Borrowed(&rest[..next])));
                rest = &rest[next..];
            }
        }
    }
    if !rest.is_empty() {
        chunks.push(Chunk::Text(Cow::Borrowed(rest)));
    }
    found.then(|| merge_texts(chunks))
}

fn merge_texts(chunks: Vec<Chunk<'_>>) -> Vec<Chunk<'_>> {
    let mut out: Vec<Chunk> = Vec::with_capacity(chunks.len());
    for c in chunks {
        match (out.last_mut(), c) {
            (Some(Chunk::Text(prev)), Chunk::Text(t)) => prev.to_mut().push_str(&t),
            (_, c) => out.push(c),
        }
    }
    out
}

/// A piece of a value being redacted. Text borrows from the value, and replacement
/// texts from the rule, until a change needs an owned copy.
enum Chunk<'t> {
    Text(Cow<'t, str>),
    /// A placeholder that was already in the input: kept as is, never re-matched, no remark.
    Opaque(&'static str),
    Redaction {
        text: Cow<'t, str>,
        rule: std::sync::Arc<str>,
        ty: RemarkType,
        /// The matched text's shape, when recorded.
        shape: Option<String>,
    },
}

/// Facts about the leaf's key, computed once per value.
pub(super) struct KeyFacts {
    /// The `password` rule's key test holds.
    pub(super) password: bool,
}

/// A rule asked for the whole value to be deleted.
pub(super) struct DeleteValue;

impl<'t> ChunkedValue<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        ChunkedValue {
            original: text,
            chunks: None,
            search: std::cell::OnceCell::new(),
            changed: false,
            prepared: false,
            record_shapes: false,
        }
    }

    /// Splits the value around the placeholders it holds, once, before a rule looks at
    /// it. Replacement texts already in the value (from an earlier scrub, here or in
    /// another Relay) are opaque, like fresh redactions: `[auth]` must not trip the
    /// `auth` keyword. This keeps scrubbing idempotent.
    fn prepare(&mut self) {
        if !self.prepared {
            self.prepared = true;
            if memchr::memchr(b'[', self.original.as_bytes()).is_some() {
                self.chunks = split_placeholders(self.original);
            }
        }
    }

    /// The text rules search: redactions appear as NUL.
    fn search_text(&self) -> &str {
        let chunks = match &self.chunks {
            None => return self.original,
            Some(c) => c,
        };
        if let [Chunk::Text(t)] = chunks.as_slice() {
            return t;
        }
        self.search.get_or_init(|| build_search_text(chunks))
    }

    /// The search text, for a rule about to change the value (which makes it stale).
    fn take_search_text(&mut self) -> Cow<'t, str> {
        match &self.chunks {
            None => Cow::Borrowed(self.original),
            Some(chunks) => match chunks.as_slice() {
                [Chunk::Text(t)] => t.clone(),
                _ => Cow::Owned(
                    self.search
                        .take()
                        .unwrap_or_else(|| build_search_text(chunks)),
                ),
            },
        }
    }

    /// Sets new chunks after a change.
    fn set_chunks(&mut self, chunks: Vec<Chunk<'t>>) {
        self.chunks = Some(chunks);
        self.search = std::cell::OnceCell::new();
        self.changed = true;
    }

    fn has_text(&self) -> bool {
        match &self.chunks {
            None => !self.original.is_empty(),
            Some(chunks) => chunks
                .iter()
                .any(|c| matches!(c, Chunk::Text(t) if !t.is_empty())),
        }
    }

    /// Replaces `ranges` (sorted, non-overlapping byte ranges of the search text).
    /// A range that covers an earlier redaction absorbs it.
    fn replace_ranges(
        &mut self,
        search: Cow<'t, str>,
        ranges: &[std::ops::Range<usize>],
        rule: &'t RuleRef,
    ) {
        if ranges.is_empty() {
            return;
        }
        let mut old_redactions = self
            .chunks
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| matches!(c, Chunk::Redaction { .. } | Chunk::Opaque(_)))
            .collect::<Vec<_>>()
            .into_iter();
        let mut out = Vec::with_capacity(2 * (ranges.len() + old_redactions.len()) + 1);
        // The text between `from` and `to`, split at the NULs that stand for earlier
        // redactions (which go back in their place); borrowed when the search text is.
        let push_text = |out: &mut Vec<Chunk<'t>>,
                         from: usize,
                         to: usize,
                         reds: &mut std::vec::IntoIter<Chunk<'t>>| {
            let mut start = from;
            loop {
                let end =
                    memchr::memchr(0, &search.as_bytes()[start..to]).map_or(to, |i| start + i);
                if end > start {
                    out.push(Chunk::Text(match &search {
                        Cow::Borrowed(s) => Cow::Borrowed(&s[start..end]),
                        Cow::Owned(s) => Cow::Owned(s[start..end].to_string()),
                    }));
                }
                if end == to {
                    break;
                }
                if let Some(r) = reds.next() {
                    out.push(r);
                }
                start = end + 1;
            }
        };
        let mut pos = 0;
        for r in ranges {
            push_text(&mut out, pos, r.start, &mut old_redactions);
            let matched = &search[r.clone()];
            // Redactions swallowed by this match are dropped.
            for _ in matched.bytes().filter(|b| *b == 0) {
                old_redactions.next();
            }
            out.push(redact(rule, matched, self.record_shapes));
            pos = r.end;
        }
        push_text(&mut out, pos, search.len(), &mut old_redactions);
        self.set_chunks(out);
    }

    /// Replaces the whole value with one redaction.
    fn replace_all(&mut self, rule: &'t RuleRef) {
        let search = self.take_search_text();
        let redaction = redact(rule, &search, self.record_shapes);
        self.set_chunks(vec![redaction]);
    }

    /// The new text, written into `bump` (the tree's arena, where it stays), the remarks
    /// with their ranges in it, and each remark's matched-text shape (when recorded).
    pub(super) fn join_in(self, bump: &Bump) -> (&str, Vec<Remark>, Vec<Option<String>>) {
        let mut remarks = Vec::new();
        let mut shapes = Vec::new();
        let chunks = match self.chunks {
            None => return (bump.alloc_str(self.original), remarks, shapes),
            Some(c) => c,
        };
        // Replacements are mostly shorter than what they replace; hashes are 40+ bytes.
        let mut s = bumpalo::collections::String::with_capacity_in(self.original.len() + 48, bump);
        for c in chunks {
            match c {
                Chunk::Text(t) => s.push_str(&t),
                Chunk::Opaque(t) => s.push_str(t),
                Chunk::Redaction {
                    text,
                    rule,
                    ty,
                    shape,
                } => {
                    let start = s.len();
                    s.push_str(&text);
                    remarks.push(Remark {
                        rule,
                        ty,
                        range: Some((start, s.len())),
                    });
                    shapes.push(shape);
                }
            }
        }
        (s.into_bump_str(), remarks, shapes)
    }
}

/// The search text of `chunks`: their text (without NULs, which mark redactions) with one
/// NUL per redaction or placeholder.
fn build_search_text(chunks: &[Chunk<'_>]) -> String {
    let mut s = String::new();
    for c in chunks {
        match c {
            // NUL is ASCII, so dropping it keeps the text valid UTF-8.
            Chunk::Text(t) => t.split('\0').for_each(|piece| s.push_str(piece)),
            Chunk::Redaction { .. } | Chunk::Opaque(_) => s.push('\0'),
        }
    }
    s
}

fn redact<'t>(rule: &'t RuleRef, matched: &str, record_shape: bool) -> Chunk<'t> {
    // A match can span earlier redactions (NUL marks in the search text): not text.
    let shape = record_shape.then(|| crate::scrub::shape_of(&matched.replace('\0', "")));
    let (text, ty) = match &rule.redaction {
        Redaction::Default | Redaction::Remove => (Cow::Borrowed(""), RemarkType::Removed),
        Redaction::Replace(t) => (Cow::Borrowed(t.as_str()), RemarkType::Substituted),
        Redaction::Mask => (
            Cow::Owned("*".repeat(matched.chars().count())),
            RemarkType::Masked,
        ),
        Redaction::Hash { algorithm, key } => (
            Cow::Owned(hash_hex(
                *algorithm,
                key.as_deref().unwrap_or(b""),
                matched.as_bytes(),
            )),
            RemarkType::Pseudonymized,
        ),
    };
    Chunk::Redaction {
        text,
        rule: rule.origin.clone(),
        ty,
        shape,
    }
}

/// Uppercase hex HMAC of `data` (Relay: HMAC-SHA1 with an empty key).
pub fn hash_hex(algorithm: HashAlgorithm, key: &[u8], data: &[u8]) -> String {
    fn hex(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(DIGITS[usize::from(b >> 4)] as char);
            s.push(DIGITS[usize::from(b & 15)] as char);
        }
        s
    }
    match algorithm {
        HashAlgorithm::Sha1 => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("hmac takes any key size");
            mac.update(data);
            hex(&mac.finalize().into_bytes())
        }
        HashAlgorithm::Sha256 => {
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac takes any key size");
            mac.update(data);
            hex(&mac.finalize().into_bytes())
        }
        HashAlgorithm::Sha512 => {
            let mut mac =
                Hmac::<sha2::Sha512>::new_from_slice(key).expect("hmac takes any key size");
            mac.update(data);
            hex(&mac.finalize().into_bytes())
        }
    }
}

/// Whether the rule redacts whole values (replace/mask/hash) rather than deleting.
fn redacts_chunks(rule: &RuleRef) -> bool {
    !matches!(rule.redaction, Redaction::Default | Redaction::Remove)
}

pub(super) fn apply_rule<'t>(
    rule: &'t RuleRef,
    key: &str,
    key_facts: &KeyFacts,
    value: &mut ChunkedValue<'t>,
    features: &builtin::Features<'_>,
) -> Result<(), DeleteValue> {
    // Most values are ruled out by the features of their original text (which only
    // overstate what the search text holds), before the value is prepared.
    match &*rule.kind {
        RuleKind::Builtin(p) if !p.may_match_features(features) => return Ok(()),
        RuleKind::Password if !key_facts.password && !features.may_hold_password_keyword() => {
            return Ok(())
        }
        _ => {}
    }
    value.prepare();
    let has_text = value.has_text();
    let mut ranges: SmallVec<[std::ops::Range<usize>; 4]> = SmallVec::new();
    match &*rule.kind {
        RuleKind::Anything => {
            if !redacts_chunks(rule) {
                return Err(DeleteValue);
            }
            if !has_text {
                return Ok(());
            }
            let search = value.take_search_text();
            // `.*` without the `s` flag: each line is redacted on its own, like Relay.
            let mut pos = 0;
            for line in search.split('\n') {
                if !line.is_empty() {
                    ranges.push(pos..pos + line.len());
                }
                pos += line.len() + 1;
            }
            value.replace_ranges(search, &ranges, rule);
        }
        RuleKind::Password => {
            if key_facts.password {
                return whole_value(rule, value, has_text);
            }
            if has_text {
                Pattern::PasswordValue.find_ranges(value.search_text(), &mut ranges);
                if !ranges.is_empty() {
                    let search = value.take_search_text();
                    value.replace_ranges(search, &ranges, rule);
                }
            }
        }
        RuleKind::RedactPair { key: re } => {
            if re.is_match(key) {
                return whole_value(rule, value, has_text);
            }
            if has_text && re.is_match(value.search_text()) {
                value.replace_all(rule);
            }
        }
        _ if !has_text => {}
        RuleKind::Builtin(p) => {
            p.find_ranges_after_features(value.search_text(), features, &mut ranges);
            if !ranges.is_empty() {
                let search = value.take_search_text();
                value.replace_ranges(search, &ranges, rule);
            }
        }
        RuleKind::Regex { regex, groups } => {
            if !regex.is_match(value.search_text()) {
                return Ok(());
            }
            let search = value.take_search_text();
            for caps in regex.captures_iter(&search) {
                for (idx, g) in caps.iter().enumerate() {
                    if let Some(g) = g {
                        if groups.contains(&(idx as u8))
                            && ranges.last().is_none_or(|l| l.end <= g.start())
                        {
                            ranges.push(g.range());
                        }
                    }
                }
            }
            value.replace_ranges(search, &ranges, rule);
        }
    }
    Ok(())
}

fn whole_value<'t>(
    rule: &'t RuleRef,
    value: &mut ChunkedValue<'t>,
    has_text: bool,
) -> Result<(), DeleteValue> {
    if redacts_chunks(rule) {
        if has_text {
            value.replace_all(rule);
        }
        Ok(())
    } else {
        Err(DeleteValue)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};

    use super::*;
    use crate::scrub::scrub_event_with;

    /// `extra.v` after scrubbing `value` with `applications`, and its `_meta` entry.
    fn scrub_value(applications: Json, value: &str) -> (Json, Json) {
        let config = json!({"piiConfig": {"applications": applications}});
        let event = json!({"extra": {"v": value}}).to_string();
        let out = scrub_event_with(&config, event.as_bytes());
        (
            out["extra"]["v"].clone(),
            out["_meta"]["extra"]["v"][""].clone(),
        )
    }

    /// Replacement texts already in a value (from an earlier scrub) are opaque: never
    /// matched again, kept byte for byte with the text around them, and given no remark.
    #[test]
    fn placeholders_in_the_input_are_opaque() {
        for value in [
            "[auth] failed for [email]",
            "login [auth] for user [email] from [ip] done",
            "[Filtered]",
            "x[password]y[token]",
        ] {
            let (out, meta) = scrub_value(
                json!({"$string": ["@password:replace", "@email", "@ip"]}),
                value,
            );
            assert_eq!(out, value, "{value:?}");
            assert!(meta.is_null(), "{value:?}: {meta}");
        }
    }

    /// Text around placeholders and brackets that are not placeholders is still
    /// searched, with the right ranges.
    #[test]
    fn text_around_placeholders_is_still_scrubbed() {
        let apps = json!({"$string": ["@email"]});
        let (out, meta) = scrub_value(apps.clone(), "[x] [ip] a@b.co [email] tail");
        assert_eq!(out, "[x] [ip] [email] [email] tail");
        assert_eq!(meta["rem"], json!([["@email", "s", 9, 16]]));
        let (out, _) = scrub_value(apps.clone(), "[[ip]] jane@example.com");
        assert_eq!(out, "[[ip]] [email]");
        let (out, _) = scrub_value(apps, "[email]jane@example.com[");
        assert_eq!(out, "[email][email][");
        // A keyword next to a placeholder is a keyword.
        let (out, meta) = scrub_value(json!({"$string": ["@password:replace"]}), "[auth] secret");
        assert_eq!(out, "[password]");
        assert_eq!(meta["rem"], json!([["@password:replace", "s", 0, 10]]));
    }

    #[test]
    fn relay_hash_vector() {
        assert_eq!(
            hash_hex(HashAlgorithm::Sha1, b"", b"127.0.0.1"),
            "AE12FE3B5F129B5CC4CDD2B136B7B7947C4D2741"
        );
        assert_eq!(
            hash_hex(HashAlgorithm::Sha1, b"", b"foobar"),
            "168197CA3A9D4FE60EDE05116B0A125DA1AB3BD0"
        );
        assert_eq!(hash_hex(HashAlgorithm::Sha256, b"k", b"x").len(), 64);
        assert_eq!(hash_hex(HashAlgorithm::Sha512, b"k", b"x").len(), 128);
        assert_ne!(
            hash_hex(HashAlgorithm::Sha256, b"k1", b"x"),
            hash_hex(HashAlgorithm::Sha256, b"k2", b"x")
        );
    }

    /// Each method, on a match after a multi-byte character: the text and the remark
    /// (type, and range in bytes of the output) are Relay's (sentry-relay 0.10.1).
    #[test]
    fn each_method_redacts_the_match_with_its_remark() {
        let value = "müll jane@example.com now";
        let cases = [
            (
                "@email:replace",
                "müll [email] now",
                json!(["@email:replace", "s", 6, 13]),
            ),
            (
                "@email:mask",
                "müll **************** now",
                json!(["@email:mask", "m", 6, 22]),
            ),
            (
                "@email:remove",
                "müll  now",
                json!(["@email:remove", "x", 6, 6]),
            ),
            (
                "@email:hash",
                "müll F928C1B59170A978137BB69D2EF993131D4CCDC2 now",
                json!(["@email:hash", "p", 6, 46]),
            ),
        ];
        for (rule, want, remark) in cases {
            let (out, meta) = scrub_value(json!({"$string": [rule]}), value);
            assert_eq!(out, want, "{rule}");
            assert_eq!(meta["rem"], json!([remark]), "{rule}");
            assert_eq!(meta["len"], 25, "{rule}");
        }
    }

    /// A later rule's match that covers an earlier redaction absorbs it; matches on both
    /// sides of an earlier redaction keep it in place.
    #[test]
    fn later_rules_work_around_or_over_earlier_redactions() {
        let (out, meta) = scrub_value(
            json!({"$string": ["@ip", "@email"]}),
            "a@b.co 10.0.0.1 c@d.co 10.0.0.2 e@f.co",
        );
        assert_eq!(out, "[email] [ip] [email] [ip] [email]");
        assert_eq!(meta["rem"].as_array().map(Vec::len), Some(5), "{meta}");
        // `@anything` replaces each line, earlier redactions included.
        let (out, meta) = scrub_value(
            json!({"$string": ["@email", "@anything:replace"]}),
            "a@b.co\nsecond line\n\nlast",
        );
        assert_eq!(out, "[Filtered]\n[Filtered]\n\n[Filtered]");
        assert_eq!(meta["rem"].as_array().map(Vec::len), Some(3), "{meta}");
        // A custom regex with a group: only the group, each match.
        let config = json!({"piiConfig": {
            "rules": {"order": {"type": "pattern", "pattern": "ord_([a-z0-9]+)", "replaceGroups": [1],
                                 "redaction": {"method": "replace", "text": "[order]"}}},
            "applications": {"$string": ["order"]}}});
        let out = scrub_event_with(&config, br#"{"extra":{"v":"ord_abc1 and ord_zz9"}}"#);
        assert_eq!(out["extra"]["v"], "ord_[order] and ord_[order]");
    }

    /// A value that holds only replacement texts has no text left for `@anything`.
    #[test]
    fn a_value_of_placeholders_only_is_left_alone() {
        let (out, meta) = scrub_value(json!({"$string": ["@anything:replace"]}), "[email]");
        assert_eq!(out, "[email]");
        assert!(meta.is_null(), "{meta}");
        let (out, meta) = scrub_value(json!({"$string": ["@anything:replace"]}), "");
        assert_eq!(out, "");
        assert!(meta.is_null(), "{meta}");
        // Nor for a pattern that would match anything, the marks of redactions included.
        let config = json!({"piiConfig": {
            "rules": {"any": {"type": "pattern", "pattern": "(?s).+", "redaction": {"method": "replace", "text": "[x]"}}},
            "applications": {"$string": ["any"]}}});
        let out = scrub_event_with(&config, br#"{"extra":{"v":"[email][ip]"}}"#);
        assert_eq!(out["extra"]["v"], "[email][ip]");
    }

    /// The password rule, with Relay's answers: a sensitive key takes the whole value
    /// (deleted, or replaced when the method keeps a value); a keyword in the value the
    /// whole text; a bearer token only itself.
    #[test]
    fn password_rule_by_key_and_by_value() {
        let event = br#"{"extra":{"api_key":"k-123","note":"my secret is out","hdr":"x Bearer abc y","plain":"hello"}}"#;
        let scrub = |rule: &str| -> Json {
            let config = json!({"piiConfig": {"applications": {"$string": [rule]}}});
            scrub_event_with(&config, event)
        };
        let out = scrub("@password:replace");
        assert_eq!(out["extra"]["api_key"], "[password]");
        assert_eq!(out["extra"]["note"], "[password]");
        assert_eq!(out["extra"]["hdr"], "x [password] y");
        assert_eq!(out["extra"]["plain"], "hello");
        assert_eq!(
            out["_meta"]["extra"]["hdr"][""]["rem"],
            json!([["@password:replace", "s", 2, 12]])
        );
        // As in Relay: a sensitive key deletes the value; a keyword in the value
        // removes the text, leaving an empty string.
        let out = scrub("@password:remove");
        assert!(out["extra"]["api_key"].is_null(), "{out}");
        assert_eq!(out["extra"]["note"], "");
        assert_eq!(out["extra"]["hdr"], "x  y");
        assert_eq!(
            out["_meta"]["extra"]["api_key"][""]["rem"],
            json!([["@password:remove", "x"]])
        );
        assert_eq!(
            out["_meta"]["extra"]["note"][""]["rem"],
            json!([["@password:remove", "x", 0, 0]])
        );
    }
}
