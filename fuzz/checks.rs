//! The properties every fuzz target checks, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, nightly) and by `tests/fuzz_corpus.rs`, which replays the
//! committed corpora on stable in `cargo test`.
//!
//! Each function takes the fuzzer's bytes and panics when a property fails; an error
//! returned for bad input is fine, a panic, a hang or unbounded memory is not.

use std::sync::OnceLock;

use bytes::Bytes;
use scrubgate::body::{decode_as, decode_as_watched, store::decode_store_body, ContentEncoding};
use scrubgate::projects::ProjectConfig;
use scrubgate::protocol::envelope::{Envelope, ItemType};
use scrubgate::protocol::item_scan::ItemSizeScan;
use scrubgate::scrub::{ItemKind, ScrubOptions};
use serde_json::{json, Value};

/// Decoded bodies are capped here (the proxy's event limit).
const MAX_DECODED: usize = 1 << 20;

/// Envelope framing: parsing never panics, and what parses writes back to bytes that
/// parse to the same items; the streaming item scan agrees with the parse.
pub fn envelope(data: &[u8]) {
    item_scan(data);
    let Ok(envelope) = Envelope::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let Ok(written) = envelope.to_bytes() else {
        return;
    };
    let again = Envelope::parse(written.clone()).expect("a written envelope parses");
    assert_eq!(again.items().len(), envelope.items().len());
    for (a, b) in again.items().iter().zip(envelope.items()) {
        assert_eq!(a.ty(), b.ty());
        assert_eq!(a.payload(), b.payload());
    }
    assert_eq!(again.to_bytes().expect("writes again"), written);
}

/// Every body decoder: the first byte picks the coding; output never passes the cap.
pub fn decode(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let coding = match selector % 6 {
        0 => ContentEncoding::Identity,
        1 => ContentEncoding::Gzip,
        2 => ContentEncoding::Deflate,
        3 => ContentEncoding::Br,
        4 => ContentEncoding::Zstd,
        _ => {
            // The legacy store body: base64, then zlib.
            if let Ok(decoded) = decode_store_body(Bytes::copy_from_slice(body), MAX_DECODED) {
                assert!(decoded.len() <= MAX_DECODED);
            }
            return;
        }
    };
    let plain = decode_as(coding, Bytes::copy_from_slice(body), MAX_DECODED);
    if let Ok(decoded) = &plain {
        assert!(decoded.len() <= MAX_DECODED, "{coding:?} passed the cap");
    }
    // Watched: each look is a longer prefix of the same output, and watching changes
    // nothing of the result.
    let mut seen: Vec<u8> = Vec::new();
    let watched = decode_as_watched(
        coding,
        Bytes::copy_from_slice(body),
        MAX_DECODED,
        &mut |so_far| {
            assert!(
                so_far.len() > seen.len(),
                "{coding:?}: the watch saw no growth"
            );
            assert!(
                so_far.starts_with(&seen),
                "{coding:?}: earlier output changed"
            );
            seen.clear();
            seen.extend_from_slice(so_far);
            true
        },
    );
    match (&plain, &watched) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b);
            if coding != ContentEncoding::Identity && !a.is_empty() {
                assert_eq!(&seen[..], &a[..], "{coding:?}: the last look is the output");
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("{coding:?}: watched {watched:?} but plain {plain:?}"),
    }
}

/// The item limit the envelope check holds every scrubbed type to.
const ITEM_LIMIT: usize = 64;

fn scan_limit(item_type: ItemType) -> Option<usize> {
    (!matches!(item_type, ItemType::Attachment | ItemType::Unknown)).then_some(ITEM_LIMIT)
}

/// The streaming item scan never refuses an envelope that parses with every limited
/// item within its limit, however the bytes are cut into chunks.
fn item_scan(data: &[u8]) {
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut scan = ItemSizeScan::new(scan_limit);
    let mut given = 0;
    let mut refused = None;
    while given < data.len() {
        given = (given + step).min(data.len());
        if let Err(error) = scan.advance(&data[..given]) {
            refused = Some(error);
            break;
        }
    }
    let Some(refused) = refused else {
        return;
    };
    if let Ok(envelope) = Envelope::parse(Bytes::copy_from_slice(data)) {
        let over = envelope.items().iter().any(|item| {
            scan_limit(item.item_type()).is_some_and(|limit| item.payload().len() > limit)
        });
        assert!(over, "{refused} but the envelope parses within its limits");
    }
}

/// The rule sets the scrub target runs: default scrubbing, `$string` built-ins,
/// selectors with removal and masking, and everything hashed.
fn rule_sets() -> &'static [ProjectConfig] {
    static RULES: OnceLock<Vec<ProjectConfig>> = OnceLock::new();
    RULES.get_or_init(|| {
        [
            json!({"datascrubbingSettings": {"scrubData": true, "scrubDefaults": true,
                "scrubIpAddresses": true, "sensitiveFields": ["token"]}}),
            json!({"piiConfig": {"applications": {"$string": ["@email", "@ip", "@mac",
                "@creditcard", "@iban"], "$object": ["@password"]}}}),
            json!({"piiConfig": {"applications": {"$user.*": ["@anything:remove"],
                "$log.body || $span.description": ["@email:mask"],
                "**.token": ["@anything:replace"]}}}),
            json!({"piiConfig": {"applications": {"**": ["@anything:hash"]}}}),
        ]
        .into_iter()
        .map(|c| ProjectConfig::from_config_value(c).expect("the fuzz rules compile"))
        .collect()
    })
}

const KINDS: [ItemKind; 12] = [
    ItemKind::Event,
    ItemKind::Transaction,
    ItemKind::Security,
    ItemKind::Session,
    ItemKind::EnvelopeHeader,
    ItemKind::Span,
    ItemKind::Log,
    ItemKind::TraceMetric,
    ItemKind::Otel,
    ItemKind::Profile,
    ItemKind::ReplayEvent,
    ItemKind::ReplayRecording,
];

/// True when `value` holds a two-element array starting with a string: Relay's
/// `[key, value]` pair heuristic, which is not idempotent when it removes the value.
fn has_pair(value: &Value) -> bool {
    match value {
        Value::Array(items) => {
            (items.len() == 2 && items[0].is_string()) || items.iter().any(has_pair)
        }
        Value::Object(map) => map.values().any(has_pair),
        _ => false,
    }
}

/// The JSON parser plus scrub: the first byte picks the item kind, the rest is the
/// payload. Scrubbed output is valid JSON, and scrubbing it again changes nothing (for
/// every rule set but hashing, and outside `[key, value]` pairs).
pub fn scrub(data: &[u8]) {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(selector) % KINDS.len()];
    let options = ScrubOptions::default();
    for (n, project) in rule_sets().iter().enumerate() {
        let Ok(once) = project.rules.scrub(kind, payload, &options) else {
            continue;
        };
        if kind == ItemKind::ReplayRecording {
            // Recordings are a header line plus JSON, not one JSON document.
            continue;
        }
        let parsed: Value = serde_json::from_slice(&once.bytes).expect("scrubbed output is JSON");
        let hashing = n == 3;
        if hashing || has_pair(&parsed) {
            continue;
        }
        let input: Result<Value, _> = serde_json::from_slice(payload);
        if input.as_ref().is_ok_and(has_pair) {
            continue;
        }
        let twice = project
            .rules
            .scrub(kind, &once.bytes, &options)
            .expect("scrubbed output scrubs again");
        assert_eq!(
            String::from_utf8_lossy(&once.bytes),
            String::from_utf8_lossy(&twice.bytes),
            "a second scrub ({kind:?}, rule set {n}) changed the output"
        );
    }
}

/// The project-config loader: any bytes load or fail with errors that name a path.
pub fn project_config(data: &[u8]) {
    if let Err(errors) = ProjectConfig::from_json(data, &|_| None) {
        assert!(!errors.0.is_empty(), "a failure names at least one problem");
        for issue in &errors.0 {
            assert!(!issue.path.is_empty(), "every problem has a path");
        }
    }
}

/// The selector parser: the bytes as a selector of a `piiConfig` application.
pub fn selector(data: &[u8]) {
    let Ok(selector) = std::str::from_utf8(data) else {
        return;
    };
    let config = json!({"piiConfig": {"applications": {selector: ["@email"]}}});
    match ProjectConfig::from_config_value(config) {
        Ok(project) => {
            // A selector that compiles can run.
            let event = br#"{"message":"a@b.example","user":{"email":"c@d.example"},"extra":{"k":["x","y"]}}"#;
            let out = project
                .rules
                .scrub(ItemKind::Event, event, &ScrubOptions::default())
                .expect("a fixed event scrubs");
            let _: Value = serde_json::from_slice(&out.bytes).expect("valid JSON");
        }
        Err(errors) => assert!(!errors.0.is_empty()),
    }
}
