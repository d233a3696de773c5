//! Envelope items beyond events get the treatment the project's rules give the matching
//! user fields (Relay forwards them untouched).

mod common;
use common::defaults;
use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};
use serde_json::{json, Value};

fn run(config: Value, kind: ItemKind, item: Value, opts: &ScrubOptions) -> Value {
    let p = ProjectConfig::from_config_value(config).unwrap();
    let out = p
        .rules
        .scrub(kind, &serde_json::to_vec(&item).unwrap(), opts)
        .unwrap();
    serde_json::from_slice(&out.bytes).unwrap()
}

#[test]
fn user_report_fields() {
    let cfg = json!({"piiConfig": {"applications": {
        "$user.email": ["@email:hash"], "$user.name": ["@anything:remove"], "$string": ["@ip"]
    }}});
    let out = run(
        cfg,
        ItemKind::UserReport,
        json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "email": "jane@example.com", "name": "Jane", "comments": "call me at 10.0.0.9"}),
        &ScrubOptions::default(),
    );
    assert_eq!(out["event_id"], "9ec79c33ec9942ab8353589fcb2e04dc");
    assert_eq!(out["email"].as_str().unwrap().len(), 40);
    assert!(
        out.get("name").is_none(),
        "removed fields are dropped: {out}"
    );
    assert_eq!(out["comments"], "call me at [ip]");
}

#[test]
fn session_did_and_ip_with_auto() {
    let opts = ScrubOptions {
        client_ip: Some("198.51.100.4".parse().unwrap()),
        ..Default::default()
    };
    let out = run(
        defaults(),
        ItemKind::Session,
        json!({"sid": "x", "did": "user-42", "attrs": {"release": "r@1", "ip_address": "{{auto}}"}}),
        &opts,
    );
    assert_eq!(out["did"], "user-42", "default scrubbing keeps ids");
    assert!(out["attrs"].get("ip_address").is_none(), "{out}");
    assert_eq!(out["attrs"]["release"], "r@1");

    let cfg = json!({"piiConfig": {"applications": {"$user.id": ["@anything:hash"]}}});
    let out = run(
        cfg,
        ItemKind::Session,
        json!({"did": "user-42", "attrs": {"ip_address": "{{auto}}"}}),
        &opts,
    );
    assert_eq!(out["did"].as_str().unwrap().len(), 40);
    assert_eq!(
        out["attrs"]["ip_address"], "198.51.100.4",
        "auto resolved, not scrubbed without an IP rule"
    );
}

#[test]
fn sessions_aggregates() {
    let cfg = json!({"piiConfig": {"applications": {"$user.id": ["@anything:mask"], "$user.ip_address": ["@ip:replace"]}}});
    let out = run(
        cfg,
        ItemKind::Sessions,
        json!({"aggregates": [{"started": "2020-02-07T14:16:00Z", "did": "abc", "exited": 2}], "attrs": {"ip_address": "1.2.3.4"}}),
        &ScrubOptions::default(),
    );
    assert_eq!(out["aggregates"][0]["did"], "***");
    assert_eq!(out["aggregates"][0]["exited"], 2);
    assert_eq!(out["attrs"]["ip_address"], "[ip]");
}

#[test]
fn envelope_header_trace_user_id() {
    let cfg = json!({"piiConfig": {"applications": {"$user.id": ["@anything:hash"]}}});
    let out = run(
        cfg,
        ItemKind::EnvelopeHeader,
        json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "dsn": "https://k@h/1", "trace": {"trace_id": "t", "user_id": "alice", "user": {"id": "alice"}}}),
        &ScrubOptions::default(),
    );
    assert_eq!(out["trace"]["user_id"].as_str().unwrap().len(), 40);
    assert_eq!(out["trace"]["user"]["id"], out["trace"]["user_id"]);
    assert_eq!(out["trace"]["trace_id"], "t");
    assert_eq!(out["dsn"], "https://k@h/1");
}

#[test]
fn items_without_rules_are_unchanged() {
    let item = json!({"did": "d", "attrs": {"ip_address": "1.2.3.4"}});
    let out = run(
        json!({}),
        ItemKind::Session,
        item.clone(),
        &ScrubOptions::default(),
    );
    assert_eq!(out, item);
}

#[test]
fn graphql_variables_filtered() {
    let out = run(
        defaults(),
        ItemKind::Event,
        json!({
            "request": {"api_target": "graphql", "data": {"query": "{ q }", "variables": {"login": "bob", "n": 3}}},
            "contexts": {"response": {"type": "response", "data": {"data": {"user": {"login": "bob", "x": 1}}}}}
        }),
        &ScrubOptions::default(),
    );
    assert_eq!(
        out["request"]["data"]["variables"],
        json!({"login": "[Filtered]", "n": "[Filtered]"})
    );
    assert_eq!(
        out["contexts"]["response"]["data"]["data"]["user"],
        json!({"login": "[Filtered]", "x": 1})
    );
}

#[test]
fn hashed_keys_differ_by_key_and_algorithm() {
    std::env::set_var("SCRUBGATE_TEST_HASH_KEY", "pepper");
    let project = |redaction: Value| {
        let cfg = json!({"config": {"piiConfig": {
            "rules": {"h": {"type": "email", "redaction": redaction}},
            "applications": {"$string": ["h"]}
        }}});
        ProjectConfig::from_json(&serde_json::to_vec(&cfg).unwrap(), &|n| {
            std::env::var(n).ok()
        })
        .unwrap()
    };
    let input = br#"{"extra":{"e":"a@b.io"}}"#;
    let hash_of = |p: &ProjectConfig| {
        let out = p
            .rules
            .scrub(ItemKind::Event, input, &ScrubOptions::default())
            .unwrap();
        let v: Value = serde_json::from_slice(&out.bytes).unwrap();
        v["extra"]["e"].as_str().unwrap().to_string()
    };
    let plain = hash_of(&project(json!({"method": "hash"})));
    let keyed = hash_of(&project(
        json!({"method": "hash", "key": "${SCRUBGATE_TEST_HASH_KEY}"}),
    ));
    let sha256 = hash_of(&project(
        json!({"method": "hash", "algorithm": "HMAC-SHA256", "key": "pepper"}),
    ));
    let keyed_literal = hash_of(&project(json!({"method": "hash", "key": "pepper"})));
    assert_eq!(plain.len(), 40);
    assert_ne!(plain, keyed);
    assert_eq!(keyed, keyed_literal, "the env key is the literal key");
    assert_eq!(sha256.len(), 64);
    assert!(sha256
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
}

#[test]
fn a_records_own_meta_is_not_scrubbed_as_data() {
    // Found by the scrub fuzz target: the `_meta` a first scrub writes into a log record
    // names the attribute, whose key matches `@password`; a second scrub must leave the
    // `_meta` alone (it is metadata) and so change nothing.
    let cfg =
        json!({"piiConfig": {"applications": {"$string": ["@email"], "$object": ["@password"]}}});
    let logs = json!({"version": 2, "items": [{
        "timestamp": 1.5, "level": "info", "body": "hello",
        "attributes": {"my_password_email": {"value": "jane@example.com", "type": "string"}}
    }]});
    let once = run(cfg.clone(), ItemKind::Log, logs, &ScrubOptions::default());
    assert!(once["items"][0]["_meta"].is_object(), "{once}");
    let twice = run(cfg, ItemKind::Log, once.clone(), &ScrubOptions::default());
    assert_eq!(once, twice);
}

#[test]
fn a_user_field_given_twice_never_leaves_unscrubbed() {
    // Found by the scrub fuzz target: a session with `did` twice kept the second one.
    // The last value counts (as serde, and so Relay, reads JSON); the others are dropped.
    let cfg = json!({"piiConfig": {"applications": {"$user.id": ["@anything:remove"]}}});
    let session =
        br#"{"sid":"","did":"first-PLANT","errors":1,"did":"second-PLANT","status":"ok"}"#;
    let p = ProjectConfig::from_config_value(cfg.clone()).unwrap();
    let out = p
        .rules
        .scrub(ItemKind::Session, session, &ScrubOptions::default())
        .unwrap();
    let text = String::from_utf8(out.bytes.clone()).unwrap();
    assert!(!text.contains("PLANT"), "{text}");
    let twice = p
        .rules
        .scrub(ItemKind::Session, &out.bytes, &ScrubOptions::default())
        .unwrap();
    assert_eq!(out.bytes, twice.bytes);

    let hash = json!({"piiConfig": {"applications": {"$user.id": ["@anything:hash"]}}});
    let out = run(
        hash,
        ItemKind::Session,
        serde_json::from_slice(session).unwrap(),
        &ScrubOptions::default(),
    );
    assert_eq!(out["did"].as_str().unwrap().len(), 40, "{out}");
}
