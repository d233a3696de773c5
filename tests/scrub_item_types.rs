//! Per-item scrubbing on real SDK payloads (tests/fixtures/sdk-envelopes): which fields
//! each item type's schema lets rules reach, under `coverage = "relay"` and `"all"`.

mod common;
use common::defaults;
use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubError, ScrubOptions};
use serde_json::{json, Value};

/// The envelope header and the `(item header, payload)` pairs of a fixture envelope.
fn envelope(name: &str) -> (Value, Vec<(Value, Vec<u8>)>) {
    let path = format!(
        "{}/tests/fixtures/sdk-envelopes/{name}.envelope",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).expect("fixture readable");
    let (head, mut rest) = split_line(&bytes);
    let header = serde_json::from_slice(head).expect("envelope header");
    let mut items = Vec::new();
    while !rest.iter().all(u8::is_ascii_whitespace) {
        let (line, after) = split_line(rest);
        let item_header: Value = serde_json::from_slice(line).expect("item header");
        let (payload, after) = match item_header.get("length").and_then(Value::as_u64) {
            Some(n) => {
                let n = n as usize;
                let after = &after[n..];
                (
                    &after_payload(rest, line.len(), n)[..],
                    after.strip_prefix(b"\n").unwrap_or(after),
                )
            }
            None => split_line(after),
        };
        items.push((item_header, payload.to_vec()));
        rest = after;
    }
    (header, items)
}

fn after_payload(rest: &[u8], header_len: usize, n: usize) -> Vec<u8> {
    rest[header_len + 1..header_len + 1 + n].to_vec()
}

fn split_line(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

/// The payload of the first item of type `ty` in fixture `name`.
fn payload(name: &str, ty: &str) -> Vec<u8> {
    envelope(name)
        .1
        .into_iter()
        .find(|(h, _)| h["type"] == ty)
        .unwrap_or_else(|| panic!("{name} has no {ty} item"))
        .1
}

fn project(config: Value) -> ProjectConfig {
    ProjectConfig::from_config_value(config).expect("config compiles")
}

fn with_coverage(mut config: Value, coverage: &str) -> Value {
    config["scrubgate"] = json!({ "coverage": coverage });
    config
}

fn scrub(config: Value, kind: ItemKind, input: &[u8]) -> Value {
    let out = project(config)
        .rules
        .scrub(kind, input, &ScrubOptions::default())
        .expect("payload scrubs");
    serde_json::from_slice(&out.bytes).expect("output is JSON")
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn span_rules() -> Value {
    json!({"piiConfig": {"applications": {
        "$string": ["@email", "@ip"],
        "$user.id || $user.email": ["@anything:hash"]
    }}})
}

fn emails_ips() -> Value {
    json!({"piiConfig": {"applications": {"$string": ["@email", "@ip"]}}})
}

/// A container's records; never empty, so that a loop over them cannot pass vacuously.
fn items(v: &Value) -> &Vec<Value> {
    let list = v["items"].as_array().expect("container items");
    assert!(!list.is_empty(), "a container without records: {v}");
    list
}

fn attr<'a>(record: &'a Value, key: &str) -> &'a Value {
    &record["attributes"][key]["value"]
}

fn is_hash(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Every field of `before` outside `attributes` and `_meta` equals the one in `after`,
/// except the listed ones.
fn assert_fields_unchanged(before: &Value, after: &Value, except: &[&str]) {
    for (k, v) in before.as_object().unwrap() {
        if k == "attributes" || except.contains(&k.as_str()) {
            continue;
        }
        assert_eq!(&after[k], v, "field {k} changed");
    }
}

// ---- span v2 container ----------------------------------------------------------------

#[test]
fn span_container_relay_coverage() {
    let input = payload("node-span", "span");
    let before = json_of(&input);
    let out = scrub(span_rules(), ItemKind::Span, &input);
    assert_eq!(items(&out).len(), items(&before).len());
    for (b, a) in items(&before).iter().zip(items(&out)) {
        // The span name is pii false: kept under relay even with an email in it.
        assert_fields_unchanged(b, a, &["_meta"]);
        assert!(is_hash(attr(a, "user.id")), "{a}");
        assert!(is_hash(attr(a, "user.email")), "{a}");
        assert_ne!(attr(a, "user.email"), attr(b, "user.email"));
        assert_eq!(attr(a, "user.ip_address"), "[ip]");
        for key in [
            "sentry.release",
            "sentry.environment",
            "sentry.segment.id",
            "sentry.op",
        ] {
            assert_eq!(attr(a, key), attr(b, key), "{key}");
        }
        // Attribute types are pii false.
        for (k, v) in b["attributes"].as_object().unwrap() {
            assert_eq!(a["attributes"][k]["type"], v["type"], "{k}.type");
        }
    }
    let first = &items(&out)[0];
    assert!(first["name"]
        .as_str()
        .unwrap()
        .contains("js.span.plant@example.com"));
    // An IP in an unknown attribute: replaced, with its own remark in this record's _meta.
    assert_eq!(attr(first, "client_ip"), "[ip]");
    assert_eq!(
        first["_meta"]["attributes"]["client_ip"]["value"][""]["rem"],
        json!([["@ip", "s", 0, 4]])
    );
    // The pii-false name of the second span keeps its IP under relay coverage.
    assert_eq!(items(&out)[1]["name"], "GET http://10.1.2.3/api");
}

#[test]
fn span_container_unknown_attribute_email_gets_meta_per_record() {
    let mut v = json_of(&payload("node-span", "span"));
    for (i, span) in v["items"].as_array_mut().unwrap().iter_mut().enumerate() {
        span["attributes"]["app.contact"] =
            json!({"type": "string", "value": format!("contact {i} me{i}@example.com")});
    }
    let out = scrub(
        span_rules(),
        ItemKind::Span,
        &serde_json::to_vec(&v).unwrap(),
    );
    for (i, span) in items(&out).iter().enumerate() {
        assert_eq!(
            attr(span, "app.contact"),
            format!("contact {i} [email]").as_str()
        );
        let rem = &span["_meta"]["attributes"]["app.contact"]["value"][""];
        assert_eq!(rem["rem"][0][0], "@email", "{span}");
        assert_eq!(
            rem["len"],
            json!(format!("contact {i} me{i}@example.com").len())
        );
    }
}

#[test]
fn span_container_all_coverage_scrubs_name() {
    let input = payload("node-span", "span");
    let before = json_of(&input);
    let out = scrub(with_coverage(span_rules(), "all"), ItemKind::Span, &input);
    for (b, a) in items(&before).iter().zip(items(&out)) {
        assert_fields_unchanged(b, a, &["_meta", "name"]);
        assert!(!a["name"].as_str().unwrap().contains("@example.com"), "{a}");
        assert_eq!(attr(a, "sentry.release"), attr(b, "sentry.release"));
        assert_eq!(attr(a, "sentry.environment"), attr(b, "sentry.environment"));
    }
    assert_eq!(items(&out)[0]["name"], "SELECT * FROM users WHERE [email]'");
    assert_eq!(items(&out)[1]["name"], "GET http://[ip]/api");
    assert_eq!(
        items(&out)[0]["_meta"]["name"][""]["rem"],
        json!([["@email", "s", 26, 33]])
    );
}

#[test]
fn span_container_explicit_selectors() {
    let input = payload("node-span", "span");
    // The span name is pii false: under relay not even an explicit `$span.name` reaches
    // it (Relay never scrubs pii-false fields).
    let cfg = json!({"piiConfig": {"applications": {"$span.name": ["@email:mask"]}}});
    let out = scrub(cfg, ItemKind::Span, &input);
    let name = items(&out)[0]["name"].as_str().unwrap();
    assert!(name.contains("js.span.plant@example.com"), "{name}");
}

#[test]
fn span_container_attribute_selector() {
    let input = payload("node-span", "span");
    // A quoted attribute key selects one attribute's value.
    let cfg = json!({"piiConfig": {"applications": {
        "$span.attributes.'user.name'.value": ["@anything:remove"]
    }}});
    let out = scrub(cfg, ItemKind::Span, &input);
    for span in items(&out) {
        assert!(attr(span, "user.name").is_null(), "{span}");
        assert_eq!(attr(span, "user.email"), "js.user.plant@example.com");
    }
}

#[test]
fn span_container_snapshot() {
    let out = scrub(span_rules(), ItemKind::Span, &payload("node-span", "span"));
    insta::assert_json_snapshot!(out);
}

// ---- legacy JSON span -------------------------------------------------------------------

#[test]
fn legacy_json_span() {
    let span = json!({
        "span_id": "9a3b41b84700165a", "trace_id": "9dcdef663b5448eb98e23d747a293824",
        "op": "db.query", "description": "SELECT * FROM t WHERE email='a@example.com'",
        "start_timestamp": 1796457773.409, "timestamp": 1796457773.459,
        "data": {"db.user": "b@example.com", "client": "10.0.0.1"}
    });
    let input = serde_json::to_vec(&span).unwrap();
    let out = scrub(emails_ips(), ItemKind::Span, &input);
    assert_eq!(
        out["description"], span["description"],
        "description is pii maybe"
    );
    assert_eq!(out["data"]["db.user"], "[email]");
    assert_eq!(out["data"]["client"], "[ip]");
    for k in ["span_id", "trace_id", "op", "start_timestamp", "timestamp"] {
        assert_eq!(out[k], span[k], "{k}");
    }
}

#[test]
fn legacy_json_span_description_selector() {
    let span = json!({"span_id": "9a3b41b84700165a", "description": "SELECT 'a@example.com'",
        "data": {"db.user": "b@example.com"}});
    let cfg = json!({"piiConfig": {"applications": {"$span.description": ["@email"]}}});
    let out = scrub(cfg, ItemKind::Span, &serde_json::to_vec(&span).unwrap());
    assert_eq!(out["description"], "SELECT '[email]'");
    assert_eq!(out["data"]["db.user"], "b@example.com");
}

// ---- log container ------------------------------------------------------------------------

#[test]
fn log_container_relay_keeps_body_under_string_rule() {
    for fixture in ["python-log", "node-log"] {
        let input = payload(fixture, "log");
        let before = json_of(&input);
        let out = scrub(emails_ips(), ItemKind::Log, &input);
        for (b, a) in items(&before).iter().zip(items(&out)) {
            assert_fields_unchanged(b, a, &["_meta"]);
            assert!(a["body"].as_str().unwrap().contains("plant@example.com"));
            assert_eq!(attr(a, "user.email"), "[email]", "{fixture}");
            assert_eq!(attr(a, "sentry.release"), attr(b, "sentry.release"));
            assert_eq!(attr(a, "sentry.environment"), attr(b, "sentry.environment"));
        }
    }
}

#[test]
fn log_container_all_coverage_scrubs_body() {
    let input = payload("python-log", "log");
    let before = json_of(&input);

    let out = scrub(with_coverage(emails_ips(), "all"), ItemKind::Log, &input);
    let (b, a) = (&items(&before)[0], &items(&out)[0]);
    assert_fields_unchanged(b, a, &["_meta", "body"]);
    assert_eq!(a["body"], "log line for [email]");
    assert_eq!(
        a["_meta"]["body"][""]["rem"],
        json!([["@email", "s", 13, 20]])
    );
    assert_eq!(attr(a, "user.ip_address"), "[ip]");
    assert_eq!(attr(a, "sentry.severity_text"), "info");
    assert_eq!(attr(a, "sentry.severity_number"), 9);
}

#[test]
fn log_container_body_selector() {
    let input = payload("python-log", "log");
    let cfg = json!({"piiConfig": {"applications": {"$log.body": ["@email"]}}});
    let out = scrub(cfg, ItemKind::Log, &input);
    assert_eq!(items(&out)[0]["body"], "log line for [email]");
    assert_eq!(
        attr(&items(&out)[0], "user.email"),
        "py.user.plant@example.com"
    );
}

#[test]
fn log_container_default_scrubbing() {
    let input = payload("python-log", "log");
    let out = scrub(defaults(), ItemKind::Log, &input);
    let a = &items(&out)[0];
    // Default scrubbing removes the known IP attribute and leaves emails in attributes
    // (Relay's defaults do not scrub emails outside the replace-only fields).
    assert!(attr(a, "user.ip_address").is_null(), "{a}");
    assert_eq!(attr(a, "user.email"), "py.user.plant@example.com");
}

#[test]
fn log_container_default_scrubbing_replaces_body_email() {
    let out = scrub(defaults(), ItemKind::Log, &payload("python-log", "log"));
    assert_eq!(items(&out)[0]["body"], "log line for [email]");
}

#[test]
fn log_container_snapshot() {
    let out = scrub(
        with_coverage(emails_ips(), "all"),
        ItemKind::Log,
        &payload("node-log", "log"),
    );
    insta::assert_json_snapshot!(out);
}

// ---- trace metric -------------------------------------------------------------------------

#[test]
fn trace_metric_container() {
    for fixture in ["node-trace_metric", "python-trace_metric"] {
        let input = payload(fixture, "trace_metric");
        let before = json_of(&input);
        for coverage in ["relay", "all"] {
            let out = scrub(
                with_coverage(emails_ips(), coverage),
                ItemKind::TraceMetric,
                &input,
            );
            let (b, a) = (&items(&before)[0], &items(&out)[0]);
            for k in ["name", "type", "unit", "value", "timestamp", "trace_id"] {
                assert_eq!(a[k], b[k], "{fixture} {coverage} {k}");
            }
            assert_eq!(attr(a, "email"), "[email]");
            assert_eq!(attr(a, "user.email"), "[email]");
            assert_eq!(attr(a, "sentry.release"), attr(b, "sentry.release"));
            assert_eq!(
                a["_meta"]["attributes"]["email"]["value"][""]["rem"][0][0],
                "@email"
            );
        }
    }
}

// ---- profile ------------------------------------------------------------------------------

#[test]
fn profile_transaction_names_and_paths() {
    let mut v = json_of(&payload("python-profile_transaction", "profile"));
    // The fixture was recorded under /srv/app; plant a home directory in one frame.
    v["profile"]["frames"][0]["abs_path"] = json!("/home/alice/app/worker.py");
    let input = serde_json::to_vec(&v).unwrap();
    let cfg = json!({"piiConfig": {"applications": {"$string": ["@email", "@userpath"]}}});
    let out = scrub(cfg, ItemKind::Profile, &input);
    assert_eq!(out["transactions"][0]["name"], "checkout [email]");
    assert_eq!(
        out["profile"]["frames"][0]["abs_path"],
        "/home/[user]/app/worker.py"
    );
    assert_eq!(out["profile"]["samples"], v["profile"]["samples"]);
    assert_eq!(out["profile"]["stacks"], v["profile"]["stacks"]);
    assert_eq!(out["event_id"], v["event_id"]);
    assert_eq!(out["transactions"][0]["id"], v["transactions"][0]["id"]);
    assert_eq!(
        out["transactions"][0]["trace_id"],
        v["transactions"][0]["trace_id"]
    );
    for (i, f) in v["profile"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .skip(1)
    {
        assert_eq!(&out["profile"]["frames"][i], f, "frame {i}");
    }
    // An explicit selector on the frame path works too.
    let cfg = json!({"piiConfig": {"applications": {"$frame.abs_path": ["@userpath"]}}});
    let out = scrub(cfg, ItemKind::Profile, &input);
    assert_eq!(
        out["profile"]["frames"][0]["abs_path"],
        "/home/[user]/app/worker.py"
    );
}

// ---- check_in, client_report --------------------------------------------------------------

#[test]
fn check_in_and_client_report_pass_through() {
    let everything =
        json!({"piiConfig": {"applications": {"** || $string": ["@anything:remove"]}}});
    let p = project(with_coverage(everything, "all"));
    let opts = ScrubOptions::default();
    for fixture in ["node-check_in", "python-check_in"] {
        let input = payload(fixture, "check_in");
        let out = p.rules.scrub(ItemKind::CheckIn, &input, &opts).unwrap();
        assert_eq!(out.bytes, input, "{fixture}");
        assert!(out.report.changes.is_empty());
    }
    let report = br#"{"timestamp":"2026-12-05T08:01:07Z","discarded_events":[{"reason":"sample_rate","category":"transaction","quantity":2}]}"#;
    let out = p
        .rules
        .scrub(ItemKind::ClientReport, report, &opts)
        .unwrap();
    assert_eq!(out.bytes, report.to_vec());
    for kind in [ItemKind::CheckIn, ItemKind::ClientReport] {
        assert_eq!(
            p.rules.scrub(kind, b"[1,2]", &opts).unwrap_err(),
            ScrubError::NotAnObject
        );
        assert!(p.rules.scrub(kind, b"{\"a\":", &opts).is_err());
    }
}

// ---- envelope header ----------------------------------------------------------------------

#[test]
fn envelope_header_transaction_by_coverage() {
    let (mut header, _) = envelope("node-span");
    header["trace"]["user_id"] = json!("jsuserid-PLANT-88");
    let input = serde_json::to_vec(&header).unwrap();
    let out = scrub(span_rules(), ItemKind::EnvelopeHeader, &input);
    assert_eq!(out["trace"]["transaction"], header["trace"]["transaction"]);
    assert!(is_hash(&out["trace"]["user_id"]), "{out}");
    for k in [
        "trace_id",
        "release",
        "environment",
        "public_key",
        "sample_rand",
    ] {
        assert_eq!(out["trace"][k], header["trace"][k], "{k}");
    }
    let out = scrub(
        with_coverage(span_rules(), "all"),
        ItemKind::EnvelopeHeader,
        &input,
    );
    assert_eq!(out["trace"]["transaction"], "checkout [email]");
    assert_eq!(out["trace"]["trace_id"], header["trace"]["trace_id"]);
    assert_eq!(out["sent_at"], header["sent_at"]);
    insta::assert_json_snapshot!(out);
}

// ---- event normalization ------------------------------------------------------------------

#[test]
fn cli_logentry_message_only_is_scrubbed_by_defaults() {
    let input = payload("cli-event", "event");
    let out = scrub(defaults(), ItemKind::Event, &input);
    let text = out["logentry"].to_string();
    assert!(!text.contains("cli.msg.plant@example.com"), "{out}");
    assert_eq!(
        out["logentry"]["formatted"],
        "cli event for [email] from 203.0.113.66"
    );
    assert_eq!(out["event_id"], "7eee3ff0019243bb8a477cfb6bbb7034");
    assert_eq!(out["release"], "sdktest-cli@1.0.0");
}

#[test]
fn request_url_query_and_query_string_leak_nothing() {
    let event = json!({"request": {
        "url": "https://shop.example/a?email=q1@example.com&token=abc",
        "query_string": "email=q2@example.com"
    }});
    let out = scrub(
        emails_ips(),
        ItemKind::Event,
        &serde_json::to_vec(&event).unwrap(),
    );
    let text = out.to_string();
    assert!(!text.contains("q1@example.com"), "{out}");
    assert!(!text.contains("q2@example.com"), "{out}");
    assert_eq!(out["request"]["url"], "https://shop.example/a");
}

#[test]
fn event_all_coverage_reaches_free_text() {
    let event = json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "release": "r@example.com", "environment": "e@example.com",
        "transaction": "GET /u/t@example.com",
        "tags": {"who": "tag@example.com"},
        "spans": [{"span_id": "9a3b41b84700165a", "description": "SELECT 'span@example.com'"}],
        "contexts": {"feedback": {"contact_email": "fb@example.com", "message": "hi"}},
        "exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": [{
            "function": "f", "pre_context": ["pre@example.com"],
            "context_line": "ctx@example.com", "post_context": ["post@example.com"]
        }]}}]}
    });
    let input = serde_json::to_vec(&event).unwrap();
    let relay = scrub(emails_ips(), ItemKind::Event, &input);
    let all = scrub(with_coverage(emails_ips(), "all"), ItemKind::Event, &input);
    let frame = "/exception/values/0/stacktrace/frames/0";
    for ptr in [
        "/transaction",
        "/spans/0/description",
        &format!("{frame}/context_line"),
        &format!("{frame}/pre_context/0"),
        &format!("{frame}/post_context/0"),
        "/tags/who",
    ] {
        let a = all.pointer(ptr).unwrap_or_else(|| panic!("{ptr} in {all}"));
        assert!(a.as_str().unwrap().contains("[email]"), "all {ptr}: {a}");
    }
    assert!(relay["transaction"]
        .as_str()
        .unwrap()
        .contains("t@example.com"));
    assert_eq!(all["contexts"]["feedback"]["contact_email"], "[email]");
    for k in ["event_id", "release", "environment"] {
        assert_eq!(all[k], event[k], "{k}");
        assert_eq!(relay[k], event[k], "{k}");
    }
}
