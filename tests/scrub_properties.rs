//! Properties of the engine over generated events: output is valid JSON, scrubbing is
//! idempotent, and planted emails, IPs and MACs never survive `$string` rules.

use proptest::prelude::*;
use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};
use serde_json::{json, Map, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::String),
        "[a-z]{1,6}(=| |:|@|\\.)[a-z0-9.:@/-]{0,20}".prop_map(Value::String),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z_]{1,10}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Events with the shapes SDKs send, filled with generated values.
fn event() -> impl Strategy<Value = Value> {
    (tree(), tree(), tree(), tree(), ".{0,30}", tree()).prop_map(|(extra, data, vars, crumb, msg, ctx)| {
        json!({
            "message": msg,
            "extra": {"x": extra},
            "request": {"data": data, "headers": [["X-Test", "a"], ["Cookie", "session=1"]], "query_string": "a=1&token=2"},
            "exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": [{"function": "f", "vars": vars}]}}]},
            "breadcrumbs": {"values": [{"message": "m", "data": crumb}]},
            "contexts": {"custom": ctx},
            "user": {"id": "1", "email": "u@example.com", "ip_address": "10.0.0.1"},
            "tags": {"a": "b"}
        })
    })
}

fn configs() -> Vec<ProjectConfig> {
    [
        json!({"datascrubbingSettings": {"scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true, "sensitiveFields": ["x"]}}),
        json!({"piiConfig": {"applications": {"$string": ["@email", "@ip", "@mac"], "$object": ["@password"]}}}),
        json!({"piiConfig": {"applications": {"**": ["@anything:remove"], "$user.*": ["@email:mask"]}}}),
        json!({"piiConfig": {"applications": {"$string": ["@common"], "$array.**": ["@creditcard:mask"]}}}),
    ]
    .into_iter()
    .map(|c| ProjectConfig::from_config_value(c).expect("compiles"))
    .collect()
}

const EMAILS: &[&str] = &["alice.smith@example.com", "bob+tag@mail.example.org"];
const IPS: &[&str] = &[
    "192.168.10.77",
    "2001:db8:85a3::8a2e:370:7334",
    "fe80::1ff:fe23:4567:890a",
    "::ffff:10.2.3.4",
];
const MACS: &[&str] = &["4a:00:04:10:9b:50", "00-1B-63-84-45-E6"];

/// Puts `secret` into a random `$string`-reachable spot of the event.
fn plant(event: &mut Value, spot: usize, secret: &str, wrap: usize) -> String {
    let text = match wrap % 4 {
        0 => secret.to_string(),
        1 => format!("contact {secret} now"),
        2 => format!("({secret})"),
        _ => format!("x={secret};"),
    };
    match spot % 7 {
        0 => event["extra"]["planted"] = json!(text),
        1 => event["request"]["data"] = json!({"deep": [{"v": text}]}),
        2 => {
            event["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"] =
                json!({"local": text})
        }
        3 => event["breadcrumbs"]["values"][0]["message"] = json!(text),
        4 => event["contexts"]["custom"] = json!({"note": text}),
        5 => event["user"]["name"] = json!(text),
        _ => event["server_name"] = json!(text),
    }
    text
}

fn has_pair_with_container(v: &Value) -> bool {
    match v {
        Value::Array(items) => {
            (items.len() == 2 && items[0].is_string() && !items[1].is_null())
                || items.iter().any(has_pair_with_container)
        }
        Value::Object(map) => map.values().any(has_pair_with_container),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn output_is_valid_json_and_idempotent(ev in event()) {
        // Relay's `[key, value]` heuristic is not idempotent when it deletes the value (a
        // second pass sees `[key, null]` and scrubs the key as a plain string); scrubgate
        // keeps Relay's output there, so such arrays are excluded from this property.
        let generated = [
            &ev["extra"],
            &ev["request"]["data"],
            &ev["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"],
            &ev["breadcrumbs"]["values"][0]["data"],
            &ev["contexts"]["custom"],
        ];
        prop_assume!(!generated.iter().any(|v| has_pair_with_container(v)));
        let input = serde_json::to_vec(&ev).unwrap();
        for p in configs() {
            let once = p.rules.scrub(ItemKind::Event, &input, &ScrubOptions::default()).unwrap();
            let parsed: Value = serde_json::from_slice(&once.bytes).expect("valid JSON");
            prop_assert!(parsed.is_object());
            let twice = p.rules.scrub(ItemKind::Event, &once.bytes, &ScrubOptions::default()).unwrap();
            prop_assert_eq!(
                String::from_utf8_lossy(&once.bytes),
                String::from_utf8_lossy(&twice.bytes),
                "second scrub changed the output"
            );
            prop_assert!(twice.report.changes.is_empty());
        }
        // Hashing everything is not idempotent by design (a hash of a hash), but its
        // output is still valid JSON.
        let hash_all = ProjectConfig::from_config_value(
            json!({"piiConfig": {"applications": {"**": ["@anything:hash"]}}}),
        ).unwrap();
        let out = hash_all.rules.scrub(ItemKind::Event, &input, &ScrubOptions::default()).unwrap();
        let _: Value = serde_json::from_slice(&out.bytes).expect("valid JSON");
    }

    #[test]
    fn planted_identifiers_never_survive(
        ev in event(),
        spot in 0usize..7,
        wrap in 0usize..4,
        kind in 0usize..3,
        which in 0usize..4,
    ) {
        let p = ProjectConfig::from_config_value(
            json!({"piiConfig": {"applications": {"$string": ["@email", "@ip", "@mac"]}}}),
        ).unwrap();
        let secret = match kind {
            0 => EMAILS[which % EMAILS.len()],
            1 => IPS[which % IPS.len()],
            _ => MACS[which % MACS.len()],
        };
        let mut ev = ev;
        plant(&mut ev, spot, secret, wrap);
        let input = serde_json::to_vec(&ev).unwrap();
        let out = p.rules.scrub(ItemKind::Event, &input, &ScrubOptions::default()).unwrap();
        let text = String::from_utf8(out.bytes).unwrap();
        prop_assert!(!text.contains(secret), "{} survived in {}", secret, text);
        // The user's email and IP are always reached too.
        prop_assert!(!text.contains("u@example.com"));
        prop_assert!(!text.contains("10.0.0.1"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes: an error or valid JSON, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), json_ish in "[\\[\\]{}\":,a-z0-9 \\\\@.]{0,80}") {
        for p in configs() {
            for input in [&bytes[..], json_ish.as_bytes()] {
                if let Ok(out) = p.rules.scrub(ItemKind::Event, input, &ScrubOptions::default()) {
                    let _: Value = serde_json::from_slice(&out.bytes).expect("valid JSON");
                }
                for kind in [ItemKind::UserReport, ItemKind::Session, ItemKind::Sessions, ItemKind::EnvelopeHeader] {
                    if let Ok(out) = p.rules.scrub(kind, input, &ScrubOptions::default()) {
                        let _: Value = serde_json::from_slice(&out.bytes).expect("valid JSON");
                    }
                }
            }
        }
    }

    /// Arbitrary events scrubbed as any item kind stay valid JSON.
    #[test]
    fn items_stay_valid_json(ev in event(), extra in tree()) {
        let mut ev = ev;
        ev["did"] = extra.clone();
        ev["attrs"] = json!({"ip_address": extra.clone()});
        ev["aggregates"] = json!([{"did": extra}]);
        ev["trace"] = json!({"user_id": "u", "user": {"id": 3}});
        let input = serde_json::to_vec(&ev).unwrap();
        for p in configs() {
            for kind in [ItemKind::Event, ItemKind::UserReport, ItemKind::Session, ItemKind::Sessions, ItemKind::EnvelopeHeader] {
                let out = p.rules.scrub(kind, &input, &ScrubOptions::default()).unwrap();
                let _: Value = serde_json::from_slice(&out.bytes).expect("valid JSON");
            }
        }
    }
}

/// Arbitrary selectors and rule specs: half the selectors are known ones (so that enough
/// configs compile), half random text.
fn config_strategy() -> impl Strategy<Value = Value> {
    let selector = prop_oneof![
        prop::sample::select(vec![
            "$string",
            "$user.email",
            "extra.**",
            "$http.headers.*",
            "**",
            "$frame.vars.*",
            "$string && !$user.id",
            "$user.email || $user.id",
            "contexts.device.id",
        ])
        .prop_map(str::to_string),
        "[$a-z*.|&!~()' 0-9_-]{0,30}",
    ];
    (
        selector,
        "(pattern|email|ip|redact_pair|multiple|alias|anything|password|bogus)",
        "[a-z()\\[\\]*+?.\\\\|{}0-9]{0,12}",
        "(remove|replace|mask|hash|default|shred)",
    )
        .prop_map(|(selector, rule_type, pattern, method)| {
            json!({"piiConfig": {
                "rules": {"r": {"type": rule_type, "pattern": pattern, "keyPattern": pattern,
                                 "rules": ["@ip"], "rule": "@email", "redaction": {"method": method}}},
                "applications": {selector: ["r"]}
            }})
        })
}

proptest! {
    /// Arbitrary configs: a config error or a working rule set.
    #[test]
    fn arbitrary_configs_compile_or_fail_cleanly(cfg in config_strategy()) {
        if let Ok(p) = ProjectConfig::from_config_value(cfg) {
            let out = p.rules.scrub(ItemKind::Event, br#"{"extra":{"a":"x 1.2.3.4 a@b.io"},"user":{"id":"1"}}"#, &ScrubOptions::default()).unwrap();
            let _: Value = serde_json::from_slice(&out.bytes).expect("valid JSON");
        }
    }
}

/// The generator above is worth something only if enough of its configs compile: a
/// property that only ever sees config errors would pass without testing a rule.
#[test]
fn the_config_generator_makes_enough_valid_configs() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = config_strategy();
    let total = 400;
    let compiled = (0..total)
        .filter(|_| {
            let cfg = strategy.new_tree(&mut runner).unwrap().current();
            ProjectConfig::from_config_value(cfg).is_ok()
        })
        .count();
    assert!(
        compiled * 5 >= total,
        "only {compiled} of {total} generated configs compile"
    );
}
