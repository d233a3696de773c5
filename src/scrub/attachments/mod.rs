//! Attachments scrubbed in place, with Relay's semantics: rules whose selectors reach
//! an attachment (`$attachments.'<filename>'`, `$attachments.**`, `$binary`,
//! `$minidump.stack_memory`, `$minidump.heap_memory`, `$minidump.code_file`,
//! `$minidump.debug_file`, and `**`) search the strings in its bytes (UTF-8, and
//! UTF-16LE of 5+ characters) and redact every match at its length, so a file keeps its
//! size and a minidump still parses.
//!
//! The selector paths are Relay's: `$attachments` > the file name (a `$minidump`, or a
//! `$binary`) > the part of a minidump (`stack_memory`: binary and stack memory,
//! `heap_memory`: binary and heap memory, `code_file` / `debug_file`: strings, of which
//! only the directory is scrubbed so the module's base name stays). A minidump that does
//! not parse is scrubbed as one binary.
//!
//! Under `coverage = "all"` text attachments, stack and heap memory and the Linux streams
//! of a minidump (`environ`, `cmdline`, `status`, `maps`, `lsb_release`) are strings too,
//! so `$string` rules and default scrubbing reach them; the rest of a minidump (other
//! streams, Crashpad annotations) gets their pattern rules, never a whole-value rule; and
//! in `environ` a variable named like a secret (`password`, `token`, `auth`, ... and
//! `sensitiveFields`) has its whole value filled.

use std::ops::Range;

use super::builtin::password_key_matches;
use super::rules::{RuleKind, RuleRef};
use super::schema::{Pii, Types, ValueType};
use super::selector::Step;
use super::{Change, CompiledRules, Coverage, Method, ScrubReport};

pub mod bytes;
pub mod minidump;

use bytes::{scrub_region, Encodings, RegionOptions};

/// What an attachment is, as far as scrubbing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachmentKind {
    /// A minidump (`event.minidump`, or `MDMP` magic).
    Minidump,
    /// A view hierarchy (`event.view_hierarchy`): JSON, every string scrubbed.
    ViewHierarchy,
    /// Text: logs, JSON, Apple crash reports, `text/*`.
    Text,
    /// Anything else: images, archives, unknown binaries.
    Binary,
    /// sentry-native's event or breadcrumbs in msgpack (`event.payload`,
    /// `event.breadcrumbs`): turned into the envelope's event.
    EventPayload,
}

impl AttachmentKind {
    /// Every kind, for metric labels.
    pub const ALL: [AttachmentKind; 5] = [
        AttachmentKind::Minidump,
        AttachmentKind::ViewHierarchy,
        AttachmentKind::Text,
        AttachmentKind::Binary,
        AttachmentKind::EventPayload,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Minidump => "minidump",
            AttachmentKind::ViewHierarchy => "view_hierarchy",
            AttachmentKind::Text => "text",
            AttachmentKind::Binary => "binary",
            AttachmentKind::EventPayload => "event_payload",
        }
    }

    /// The kind of an attachment item by its `attachment_type`, `content_type`, file
    /// name and, when those say nothing, its first bytes (a minidump's magic; UTF-8
    /// without NUL bytes is text).
    pub fn classify(
        attachment_type: Option<&str>,
        content_type: Option<&str>,
        filename: Option<&str>,
        payload: &[u8],
    ) -> AttachmentKind {
        match attachment_type {
            Some("event.payload" | "event.breadcrumbs") => return AttachmentKind::EventPayload,
            Some("event.minidump") => return AttachmentKind::Minidump,
            Some("event.view_hierarchy") => return AttachmentKind::ViewHierarchy,
            Some("event.applecrashreport") => return AttachmentKind::Text,
            _ => {}
        }
        if is_minidump(payload) {
            return AttachmentKind::Minidump;
        }
        let content_type = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|ct| ct.trim().to_ascii_lowercase());
        match content_type.as_deref() {
            Some(ct) if is_text_type(ct) => return AttachmentKind::Text,
            Some(ct) if ct != "application/octet-stream" && !ct.is_empty() => {
                return AttachmentKind::Binary
            }
            _ => {}
        }
        let extension = filename
            .and_then(|name| name.rsplit_once('.'))
            .map(|(_, ext)| ext.to_ascii_lowercase());
        if let Some(ext) = extension.as_deref() {
            if TEXT_EXTENSIONS.contains(&ext) {
                return AttachmentKind::Text;
            }
            if BINARY_EXTENSIONS.contains(&ext) {
                return AttachmentKind::Binary;
            }
        }
        let head = &payload[..payload.len().min(8192)];
        let text = match std::str::from_utf8(head) {
            Ok(_) => true,
            // A multi-byte character cut at the end of the sample.
            Err(error) => error.error_len().is_none(),
        };
        if text && !head.contains(&0) {
            AttachmentKind::Text
        } else {
            AttachmentKind::Binary
        }
    }
}

/// File name extensions of text files.
const TEXT_EXTENSIONS: [&str; 14] = [
    "txt", "log", "json", "xml", "csv", "md", "ini", "yaml", "yml", "html", "htm", "crash", "ips",
    "ndjson",
];

/// File name extensions of binaries that are never text.
const BINARY_EXTENSIONS: [&str; 9] = [
    "png", "jpg", "jpeg", "gif", "webp", "heic", "zip", "gz", "mp4",
];

/// Media types of text.
fn is_text_type(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.ends_with("+json")
        || content_type.ends_with("+xml")
        || matches!(
            content_type,
            "application/json"
                | "application/xml"
                | "application/x-ndjson"
                | "application/javascript"
                | "application/x-sh"
        )
}

/// Whether `bytes` start with a minidump's magic (`MDMP`, or `PMDM` big-endian).
pub fn is_minidump(bytes: &[u8]) -> bool {
    bytes.starts_with(b"MDMP") || bytes.starts_with(b"PMDM")
}

/// The rule id recorded for an `environ` value filled for its secret-like name when no
/// password rule of the project reached it.
const ENVIRON_RULE: &str = "@password:filter";

impl CompiledRules {
    /// Scrubs an attachment of `kind` named `filename` in place (its length never
    /// changes) and reports the changes; paths (`$attachments.'<name>'.<part>`) are
    /// recorded when `record_paths` is set. View hierarchies and event payloads are
    /// JSON and msgpack, scrubbed as such by the caller; given here, they are scrubbed
    /// as text.
    pub fn scrub_attachment(
        &self,
        kind: AttachmentKind,
        filename: &str,
        data: &mut [u8],
        record_paths: bool,
    ) -> ScrubReport {
        let all = self.coverage == Coverage::All;
        let mut scrub = AttachmentScrub {
            rules: self,
            filename,
            record_paths,
            changes: Vec::new(),
        };
        let file_types = match kind {
            AttachmentKind::Minidump => Types::of(ValueType::Minidump),
            AttachmentKind::Text | AttachmentKind::ViewHierarchy if all => {
                Types::of(ValueType::Binary).with(ValueType::String)
            }
            _ => Types::of(ValueType::Binary),
        };
        let whole_file = RegionOptions {
            encodings: Encodings::Both,
            whole: true,
        };
        if kind != AttachmentKind::Minidump {
            scrub.region(data, 0..data.len(), file_types, None, whole_file);
            return scrub.report();
        }
        let Some(layout) = minidump::layout(data) else {
            // Not parseable: scrubbed as one binary (as Relay falls back).
            let types = if all {
                Types::of(ValueType::Binary).with(ValueType::String)
            } else {
                Types::of(ValueType::Binary)
            };
            scrub.region(data, 0..data.len(), types, None, whole_file);
            return scrub.report();
        };
        let memory = |ty: ValueType| {
            let types = Types::of(ValueType::Binary).with(ty);
            if all {
                types.with(ValueType::String)
            } else {
                types
            }
        };
        let minidump = Types::of(ValueType::Minidump);
        for range in &layout.stacks {
            let part = Some(("stack_memory", memory(ValueType::StackMemory)));
            scrub.region(data, range.clone(), minidump, part, whole_file);
        }
        for range in &layout.heaps {
            let part = Some(("heap_memory", memory(ValueType::HeapMemory)));
            scrub.region(data, range.clone(), minidump, part, whole_file);
        }
        let string = Types::of(ValueType::String);
        for (ranges, name, utf16) in [
            (&layout.code_files, "code_file", true),
            (&layout.debug_files, "debug_file", false),
        ] {
            let options = RegionOptions {
                encodings: if utf16 {
                    Encodings::Utf16
                } else {
                    Encodings::Utf8
                },
                whole: true,
            };
            for range in ranges {
                let directory = minidump::directory_part(&data[range.clone()], utf16);
                let directory = range.start..range.start + directory.end;
                scrub.region(data, directory, minidump, Some((name, string)), options);
            }
        }
        if !all {
            return scrub.report();
        }
        let text = Types::of(ValueType::Binary).with(ValueType::String);
        let utf8 = RegionOptions {
            encodings: Encodings::Utf8,
            whole: true,
        };
        for (name, range) in &layout.streams {
            if *name == "environ" {
                scrub.environ(data, range.clone(), minidump, text);
            }
            scrub.region(data, range.clone(), minidump, Some((name, text)), utf8);
        }
        // Everything else (other streams, Crashpad annotations, the structures): pattern
        // rules only, so the structures stay intact.
        let mut claimed: Vec<Range<usize>> = layout
            .stacks
            .iter()
            .chain(&layout.heaps)
            .chain(&layout.code_files)
            .chain(&layout.debug_files)
            .chain(layout.streams.iter().map(|(_, range)| range))
            .cloned()
            .collect();
        claimed.sort_by_key(|range| range.start);
        let patterns_only = RegionOptions {
            encodings: Encodings::Both,
            whole: false,
        };
        let mut at = 0;
        for range in claimed
            .iter()
            .chain(std::iter::once(&(data.len()..data.len())))
        {
            if range.start > at {
                scrub.region(
                    data,
                    at..range.start,
                    minidump,
                    Some(("other", text)),
                    patterns_only,
                );
            }
            at = at.max(range.end);
        }
        scrub.report()
    }

    /// The rules of every application whose selector reaches `steps` (everything in an
    /// attachment is `pii = true`), in application order.
    fn rules_reaching(&self, steps: &[Step<'_>]) -> Vec<&RuleRef> {
        self.applications
            .iter()
            .filter(|application| application.selector.matches(Pii::True, steps))
            .flat_map(|application| &application.rules)
            .collect()
    }
}

/// One attachment being scrubbed.
struct AttachmentScrub<'r, 'n> {
    rules: &'r CompiledRules,
    filename: &'n str,
    record_paths: bool,
    changes: Vec<Change>,
}

impl AttachmentScrub<'_, '_> {
    /// The selector path of the file (`$attachments` > the file name, of `file_types`) and,
    /// for a minidump's part, the part's name and types.
    fn steps<'s>(&'s self, file_types: Types, part: Option<(&'s str, Types)>) -> Vec<Step<'s>> {
        let mut steps = vec![
            Step {
                key: None,
                index: None,
                types: Types::of(ValueType::Attachments),
            },
            Step {
                key: Some(self.filename),
                index: None,
                types: file_types,
            },
        ];
        if let Some((name, types)) = part {
            steps.push(Step {
                key: Some(name),
                index: None,
                types,
            });
        }
        steps
    }

    fn path(&self, part: Option<&str>) -> String {
        if !self.record_paths {
            return String::new();
        }
        let name = self.filename.replace('\'', "''");
        match part {
            Some(part) => format!("$attachments.'{name}'.{part}"),
            None => format!("$attachments.'{name}'"),
        }
    }

    /// Scrubs `data[range]` with the rules that reach it.
    fn region(
        &mut self,
        data: &mut [u8],
        range: Range<usize>,
        file_types: Types,
        part: Option<(&str, Types)>,
        options: RegionOptions,
    ) {
        if range.is_empty() {
            return;
        }
        let rules = self.rules.rules_reaching(&self.steps(file_types, part));
        if rules.is_empty() {
            return;
        }
        let path = self.path(part.map(|(name, _)| name));
        scrub_region(&mut data[range], &rules, options, &path, &mut self.changes);
    }

    /// `environ`'s `NAME=value` entries (NUL-separated): the value of every name that
    /// is a password key or a `sensitiveFields` (redact-pair) key is filled.
    fn environ(&mut self, data: &mut [u8], range: Range<usize>, file_types: Types, types: Types) {
        let rules = self
            .rules
            .rules_reaching(&self.steps(file_types, Some(("environ", types))));
        let pairs: Vec<&RuleRef> = rules
            .iter()
            .copied()
            .filter(|rule| matches!(*rule.kind, RuleKind::RedactPair { .. }))
            .collect();
        let password = rules
            .iter()
            .find(|rule| matches!(*rule.kind, RuleKind::Password));
        let path = self.path(Some("environ"));
        let mut at = range.start;
        while at < range.end {
            let end = memchr::memchr(0, &data[at..range.end]).map_or(range.end, |i| at + i);
            let entry = &data[at..end];
            if let Some(eq) = memchr::memchr(b'=', entry) {
                let name = String::from_utf8_lossy(&entry[..eq]);
                let pair = pairs.iter().find(|rule| match &*rule.kind {
                    RuleKind::RedactPair { key } => key.is_match(&name),
                    _ => false,
                });
                let rule = match (pair, password_key_matches(&name)) {
                    (Some(rule), _) => Some(rule.origin.clone()),
                    (None, true) => Some(
                        password
                            .map(|rule| rule.origin.clone())
                            .unwrap_or_else(|| ENVIRON_RULE.into()),
                    ),
                    (None, false) => None,
                };
                if let Some(rule) = rule {
                    if eq + 1 < entry.len() {
                        data[at + eq + 1..end].fill(b'*');
                        self.changes.push(Change {
                            path: path.clone(),
                            rule,
                            method: Method::Remove,
                            shape: None,
                        });
                    }
                }
            }
            at = end + 1;
        }
    }

    fn report(self) -> ScrubReport {
        ScrubReport {
            changes: self.changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small Linux minidump built by hand: one thread whose stack holds an e-mail,
    /// an IP and a home path (UTF-8, and the e-mail in UTF-16LE), one module under
    /// `/home/fuzzuser/app/`, and an `environ` stream with `API_TOKEN`.
    const DUMP: &[u8] = include_bytes!("../../../fuzz/corpus/minidump_scrub/synthetic-linux.dmp");

    fn rules(pii: serde_json::Value, coverage: Coverage) -> CompiledRules {
        crate::scrub::compile_pii(&pii, "piiConfig", coverage, &[], &|_| None).unwrap()
    }

    fn count(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    }

    fn utf16(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn the_synthetic_dump_has_its_parts() {
        let layout = minidump::layout(DUMP).expect("parses");
        assert_eq!(layout.stacks.len(), 1);
        assert_eq!(layout.code_files.len(), 1);
        assert_eq!(layout.streams.len(), 1);
        assert_eq!(layout.streams[0].0, "environ");
    }

    #[test]
    fn coverage_all_scrubs_every_part_and_keeps_base_names() {
        let rules = rules(
            json!({"applications": {"$string": ["@email", "@ip", "@userpath"]}}),
            Coverage::All,
        );
        let mut dump = DUMP.to_vec();
        let report = rules.scrub_attachment(AttachmentKind::Minidump, "c.dmp", &mut dump, true);
        assert_eq!(dump.len(), DUMP.len());
        for plant in [
            "jane.fuzz@example.com",
            "203.0.113.9",
            "fuzzuser",
            "tok_abcdef123456",
        ] {
            assert!(count(DUMP, plant.as_bytes()) > 0, "{plant} planted");
            assert_eq!(count(&dump, plant.as_bytes()), 0, "{plant} left");
        }
        assert_eq!(count(&dump, &utf16("jane.fuzz@example.com")), 0);
        assert_eq!(count(&dump, &utf16("fuzzuser")), 0);
        assert_eq!(
            count(&dump, &utf16("/app/crashy")),
            1,
            "the module's base name stays"
        );
        let paths: Vec<&str> = report.changes.iter().map(|c| c.path.as_str()).collect();
        for part in ["stack_memory", "code_file", "environ"] {
            assert!(
                paths
                    .iter()
                    .any(|p| p == &format!("$attachments.'c.dmp'.{part}")),
                "{part}: {paths:?}"
            );
        }
    }

    #[test]
    fn relay_coverage_needs_selectors_that_name_the_parts() {
        let strings = rules(
            json!({"applications": {"$string": ["@email"]}}),
            Coverage::Relay,
        );
        let mut dump = DUMP.to_vec();
        let report = strings.scrub_attachment(AttachmentKind::Minidump, "c.dmp", &mut dump, false);
        // `$string` reaches module paths (strings, as in Relay), not memory.
        assert_eq!(dump, DUMP, "{report:?}");
        let stack = rules(
            json!({"applications": {"$minidump.stack_memory": ["@email:mask"]}}),
            Coverage::Relay,
        );
        stack.scrub_attachment(AttachmentKind::Minidump, "c.dmp", &mut dump, false);
        assert_eq!(count(&dump, b"jane.fuzz@example.com"), 0);
        assert_eq!(count(&dump, &utf16("jane.fuzz@example.com")), 0);
        assert_eq!(
            count(&dump, b"tok_abcdef123456"),
            1,
            "environ is not stack memory"
        );
        let named = rules(
            json!({"applications": {"$attachments.'c.dmp'": ["@anything:remove"]}}),
            Coverage::Relay,
        );
        let mut other = DUMP.to_vec();
        named.scrub_attachment(AttachmentKind::Minidump, "other.dmp", &mut other, false);
        assert_eq!(other, DUMP, "another file name is not selected");
    }

    #[test]
    fn binary_selector_reaches_plain_attachments() {
        let rules = rules(
            json!({"applications": {"$binary": ["@ip:replace"]}}),
            Coverage::Relay,
        );
        let mut data = b"\x89PNG\x00peer 10.20.30.40\x00".to_vec();
        rules.scrub_attachment(AttachmentKind::Binary, "s.png", &mut data, false);
        assert_eq!(&data[..], b"\x89PNG\x00peer [ip]*******\x00");
    }

    #[test]
    fn attachment_kinds() {
        let kind = |at, ct, name, payload: &[u8]| AttachmentKind::classify(at, ct, name, payload);
        assert_eq!(
            kind(Some("event.minidump"), None, None, b"x"),
            AttachmentKind::Minidump
        );
        assert_eq!(
            kind(None, None, Some("a.bin"), b"MDMP...."),
            AttachmentKind::Minidump
        );
        assert_eq!(
            kind(Some("event.view_hierarchy"), None, None, b"{}"),
            AttachmentKind::ViewHierarchy
        );
        assert_eq!(
            kind(Some("event.payload"), None, None, b""),
            AttachmentKind::EventPayload
        );
        assert_eq!(
            kind(None, Some("text/plain; charset=utf-8"), None, b"\x00"),
            AttachmentKind::Text
        );
        assert_eq!(
            kind(None, Some("image/png"), Some("a.txt"), b"x"),
            AttachmentKind::Binary
        );
        assert_eq!(
            kind(None, None, Some("app.LOG"), b"\x00"),
            AttachmentKind::Text
        );
        assert_eq!(
            kind(None, None, Some("shot.png"), b"plain"),
            AttachmentKind::Binary
        );
        assert_eq!(
            kind(None, Some("application/octet-stream"), None, b"plain text"),
            AttachmentKind::Text
        );
        assert_eq!(
            kind(None, None, None, b"bin\x00ary"),
            AttachmentKind::Binary
        );
    }
}
