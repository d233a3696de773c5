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

/// The strict project of the leak check: emails and IPs in every string.
fn strict_project() -> &'static ProjectConfig {
    static STRICT: OnceLock<ProjectConfig> = OnceLock::new();
    STRICT.get_or_init(|| {
        ProjectConfig::from_config_value(json!({
            "piiConfig": {"applications": {"$string": ["@email", "@ip"]}},
            "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true}
        }))
        .expect("the strict project compiles")
    })
}

/// Fields Relay's table marks pii `true`, as JSON pointers into an event (the last
/// segment is where the planted text goes).
const PII_TRUE_FIELDS: [&str; 9] = [
    "/extra/note",
    "/user/username",
    "/user/email",
    "/logentry/formatted",
    "/server_name",
    "/request/data/comment",
    "/request/headers/X-Note",
    "/breadcrumbs/values/0/message",
    "/exception/values/0/value",
];

/// A generated email or IPv4 address, from the fuzzer's bytes.
fn planted_value(bytes: &[u8]) -> String {
    let pick = |set: &[u8], b: u8| char::from(set[usize::from(b) % set.len()]);
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    let get = |i: usize| bytes.get(i).copied().unwrap_or(i as u8);
    if get(0) % 2 == 0 {
        let local: String = (0..1 + usize::from(get(1) % 12))
            .map(|i| pick(ALNUM, get(2 + i)))
            .collect();
        let domain: String = (0..1 + usize::from(get(3) % 10))
            .map(|i| pick(ALNUM, get(16 + i)))
            .collect();
        let tld: String = (0..2 + usize::from(get(4) % 4))
            .map(|i| pick(ALPHA, get(28 + i)))
            .collect();
        format!("{local}@{domain}.{tld}")
    } else {
        format!("{}.{}.{}.{}", get(1), get(2), get(3), get(4))
    }
}

/// Leak property: under a strict project, a generated email or IPv4 address placed in
/// any pii-true field of an event, alone or inside text, never survives scrubbing.
pub fn leak(data: &[u8]) {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let value = planted_value(rest);
    let separators = [" ", "(", ": ", "\n", ", ", "="];
    let sep = separators[usize::from(choice / 16) % separators.len()];
    let text = match choice % 3 {
        0 => value.clone(),
        1 => format!("before{sep}{value}"),
        _ => format!("{value}{sep}after and more"),
    };
    let pointer = PII_TRUE_FIELDS[usize::from(choice) % PII_TRUE_FIELDS.len()];
    let mut event = json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"});
    let mut slot = &mut event;
    for key in pointer.split('/').skip(1) {
        slot = match key.parse::<usize>() {
            Ok(_) => {
                if !slot.is_array() {
                    *slot = json!([Value::Null]);
                }
                &mut slot[0]
            }
            Err(_) => &mut slot[key],
        };
    }
    *slot = Value::String(text.clone());
    let input = serde_json::to_vec(&event).expect("an event");
    let out = strict_project()
        .rules
        .scrub(ItemKind::Event, &input, &ScrubOptions::default())
        .expect("the event scrubs");
    let output = String::from_utf8_lossy(&out.bytes);
    assert!(
        !output.contains(&value),
        "{value} survived at {pointer} (planted as {text:?}): {output}"
    );
}

/// The replay-recording scrubber: a recording's text nodes, attribute values and custom
/// event payloads holding a generated email or IP never keep it, and the output is a
/// JSON array again.
pub fn recording_leak(data: &[u8]) {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let value = planted_value(rest);
    let text = format!("hello {value} there");
    let events = match choice % 3 {
        0 => json!([{"type": 2, "data": {"node": {"type": 0, "childNodes": [
            {"type": 3, "textContent": text}]}}, "timestamp": 1}]),
        1 => json!([{"type": 2, "data": {"node": {"type": 2, "tagName": "input",
            "attributes": {"value": text}, "childNodes": []}}, "timestamp": 1}]),
        _ => json!([{"type": 5, "timestamp": 1, "data": {"tag": "breadcrumb",
            "payload": {"message": text}}}]),
    };
    let input = serde_json::to_vec(&events).expect("a recording");
    let out = strict_project()
        .rules
        .scrub(ItemKind::ReplayRecording, &input, &ScrubOptions::default())
        .expect("the recording scrubs");
    let parsed: Value = serde_json::from_slice(&out.bytes).expect("the output is JSON");
    assert!(parsed.is_array(), "the output is an array again");
    let output = String::from_utf8_lossy(&out.bytes);
    assert!(!output.contains(&value), "{value} survived: {output}");
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

/// The strict project under `coverage = "all"`: attachments get the string rules.
fn strict_all_project() -> &'static ProjectConfig {
    static STRICT: OnceLock<ProjectConfig> = OnceLock::new();
    STRICT.get_or_init(|| {
        ProjectConfig::from_config_value(json!({
            "piiConfig": {"applications": {"$string": ["@email", "@ip", "@userpath"]}},
            "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true},
            "scrubgate": {"coverage": "all"}
        }))
        .expect("the strict project compiles")
    })
}

/// Multipart parsing and minidump uploads: never a panic; the parts are within the
/// body and within the part limit. The first byte picks the boundary's length.
pub fn multipart(data: &[u8]) {
    use scrubgate::protocol::{multipart, native};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let boundary = &"XyZzY0123456789abcdef"[..1 + usize::from(pick) % 20];
    let body = Bytes::copy_from_slice(body);
    if let Ok(parts) = multipart::parse(&body, boundary, 16) {
        assert!(parts.len() <= 16);
        for part in &parts {
            assert!(part.data.len() <= body.len());
        }
    }
    let limits = scrubgate::config::Config::default().limits;
    let content_type = format!("multipart/form-data; boundary={boundary}");
    if let Ok(upload) = native::minidump_upload(Some(&content_type), body, &limits, || {
        "0123456789abcdef0123456789abcdef".to_owned()
    }) {
        assert!(upload.envelope.to_bytes().is_ok());
    }
}

/// Minidump scrubbing: never a panic, and the scrubbed dump has the input's length (a
/// dump that does not parse is scrubbed as one binary). Inputs without the magic get
/// it, so the parser is reached.
pub fn minidump_scrub(data: &[u8]) {
    use scrubgate::scrub::AttachmentKind;
    let mut dump = if data.starts_with(b"MDMP") {
        data.to_vec()
    } else {
        [&b"MDMP"[..], data].concat()
    };
    let before = dump.len();
    let rules = &strict_all_project().rules;
    rules.scrub_attachment(AttachmentKind::Minidump, "crash.dmp", &mut dump, true);
    assert_eq!(dump.len(), before, "a scrubbed minidump changed length");
    let mut text = data.to_vec();
    rules.scrub_attachment(AttachmentKind::Text, "app.log", &mut text, false);
    assert_eq!(
        text.len(),
        data.len(),
        "a scrubbed text attachment changed length"
    );
}
