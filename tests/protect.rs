//! `config.scrubgate.protect`: every category on real payloads, the device-identifier
//! detector (positive and negative), keyed hashes that agree across items, protocol
//! identifiers left alone, and how much else the expansion touches (over-scrubbing).

use std::collections::BTreeMap;
use std::net::IpAddr;

use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};
use serde_json::{json, Value};

const KEY: &str = "protect-test-key";

fn project(scrubgate: Value) -> ProjectConfig {
    project_with(json!({ "piiConfig": {"vars": {"hashKey": KEY}}, "scrubgate": scrubgate }))
}

fn project_with(config: Value) -> ProjectConfig {
    let doc = serde_json::to_vec(&json!({ "config": config })).unwrap();
    ProjectConfig::from_json(&doc, &|_| None).unwrap_or_else(|e| panic!("{:?}", e.0))
}

fn scrub(p: &ProjectConfig, kind: ItemKind, item: &Value) -> Value {
    let input = serde_json::to_vec(item).unwrap();
    let out = p
        .rules
        .scrub(kind, &input, &ScrubOptions::default())
        .expect("scrubs");
    serde_json::from_slice(&out.bytes).expect("output is JSON")
}

/// The hash a plain `@anything:hash` rule under `vars.hashKey = key` gives `value` (its
/// known answers are pinned in `project_settings.rs`): `protect` must give the same.
fn keyed_hash(key: &str, value: &str) -> String {
    let p = project_with(json!({"piiConfig": {
        "vars": {"hashKey": key},
        "applications": {"$user.email": ["@anything:hash"]}
    }}));
    let out = scrub(&p, ItemKind::Event, &json!({"user": {"email": value}}));
    out["user"]["email"].as_str().unwrap().to_string()
}

/// An iOS-style event carrying every kind `protect` is for.
fn mobile_event() -> Value {
    json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "timestamp": 1795912872.172,
        "platform": "cocoa",
        "release": "shop@2.4.1+88",
        "environment": "production",
        "message": "checkout failed for jane@example.com from 203.0.113.9",
        "user": {"id": "u-4711", "email": "jane@example.com", "username": "jdoe",
                 "ip_address": "198.51.100.7"},
        "tags": {"device_id": "A1B2C3D4", "region": "eu-west-1"},
        "contexts": {
            "device": {"model": "iPhone15,2",
                       "device_unique_identifier": "2A96FB1A-14A0-F9E7-7F1B-103CDF1582B0"},
            "app": {"device_app_hash": "a4f467651d38bc28f815a2cfd5f73748a6cb8853",
                    "app_version": "2.4.1"},
            "trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                      "span_id": "00f067aa0ba902b7", "type": "trace"}
        },
        "extra": {
            "imei": "490154203237518",
            "wifi_mac": "4a:00:04:10:9b:50",
            "idfa": "6D92078A-8246-4BA4-AE5B-76104861E7DC",
            "android_id": "9774d56d682e549c",
            "note": "modem 490154203237518 on 4A-00-04-10-9B-50",
            "order": "order 490154203237519 shipped",
            "trace_ref": "trace 4bf92f3577b34da6a3ce929d0e0e4736"
        }
    })
}

#[test]
fn protect_all_hashes_or_replaces_every_planted_identifier() {
    let p = project(json!({"protect": ["all"]}));
    let out = scrub(&p, ItemKind::Event, &mobile_event());
    let h = |v: &str| keyed_hash(KEY, v);
    assert_eq!(out["user"]["email"], h("jane@example.com"));
    assert_eq!(out["user"]["username"], h("jdoe"));
    assert_eq!(out["user"]["id"], h("u-4711"));
    assert_ne!(out["user"]["ip_address"], "198.51.100.7");
    assert_eq!(
        out["contexts"]["device"]["device_unique_identifier"],
        h("2A96FB1A-14A0-F9E7-7F1B-103CDF1582B0")
    );
    assert_eq!(
        out["contexts"]["app"]["device_app_hash"],
        h("a4f467651d38bc28f815a2cfd5f73748a6cb8853")
    );
    assert_eq!(out["tags"]["device_id"], h("A1B2C3D4"));
    for key in ["imei", "wifi_mac", "idfa", "android_id"] {
        let before = mobile_event()["extra"][key].as_str().unwrap().to_string();
        assert_eq!(out["extra"][key], h(&before), "extra.{key}");
    }
    // Free text keeps its shape.
    assert_eq!(
        out["logentry"]["formatted"]
            .as_str()
            .or(out["message"].as_str())
            .unwrap(),
        "checkout failed for [email] from [ip]"
    );
    assert_eq!(out["extra"]["note"], "modem [device-id] on [device-id]");
    // Not device ids: a 15-digit number failing Luhn, a trace id in text.
    assert_eq!(out["extra"]["order"], "order 490154203237519 shipped");
    assert_eq!(
        out["extra"]["trace_ref"],
        "trace 4bf92f3577b34da6a3ce929d0e0e4736"
    );
    // Nothing planted survives anywhere.
    let text = out.to_string();
    for planted in [
        "jane@example.com",
        "jdoe",
        "198.51.100.7",
        "203.0.113.9",
        "2A96FB1A-14A0",
        "a4f467651d38bc28f815",
        "A1B2C3D4",
        "490154203237518",
        "4a:00:04:10:9b:50",
        "4A-00-04-10-9B-50",
        "6D92078A-8246",
        "9774d56d682e549c",
    ] {
        assert!(!text.contains(planted), "{planted} survived: {text}");
    }
}

#[test]
fn protocol_identifiers_are_never_altered() {
    let p = project(json!({"protect": ["all"], "coverage": "all"}));
    let out = scrub(&p, ItemKind::Event, &mobile_event());
    let before = mobile_event();
    for key in [
        "event_id",
        "timestamp",
        "platform",
        "release",
        "environment",
    ] {
        assert_eq!(out[key], before[key], "{key}");
    }
    assert_eq!(out["contexts"]["trace"], before["contexts"]["trace"]);
    assert_eq!(out["contexts"]["app"]["app_version"], "2.4.1");

    // And across the whole corpus.
    let corpus = corpus();
    assert!(corpus.len() >= 100, "the corpus is there");
    let protected = [
        "event_id",
        "timestamp",
        "start_timestamp",
        "release",
        "dist",
        "environment",
        "platform",
        "sdk",
        "level",
        "type",
    ];
    let mut compared = 0;
    for event in &corpus {
        let out = scrub(&p, ItemKind::Event, event);
        for key in protected {
            if let Some(v) = event.get(key) {
                assert_eq!(&out[key], v, "{key} in {}", event["event_id"]);
                compared += 1;
            }
        }
        if let Some(trace) = event.pointer("/contexts/trace") {
            for id in ["trace_id", "span_id", "parent_span_id", "op"] {
                if let Some(v) = trace.get(id) {
                    assert_eq!(&out["contexts"]["trace"][id], v);
                    compared += 1;
                }
            }
        }
        if let Some(Value::Array(spans)) = event.get("spans") {
            for (i, span) in spans.iter().enumerate() {
                for id in ["trace_id", "span_id", "parent_span_id", "op", "timestamp"] {
                    if let Some(v) = span.get(id) {
                        assert_eq!(&out["spans"][i][id], v);
                        compared += 1;
                    }
                }
            }
        }
    }
    assert!(compared > 1000, "{compared} identifiers compared");

    // Check-ins are forwarded as sent: ids and slugs are never touched.
    let check_in = json!({"check_in_id": "83a7c03ed0a04e1b97e2e3b18d38f244",
                          "monitor_slug": "nightly-jane@example.com", "status": "ok",
                          "environment": "production"});
    assert_eq!(scrub(&p, ItemKind::CheckIn, &check_in), check_in);
}

#[test]
fn device_key_names_are_matched_as_a_whole_name_or_its_last_part() {
    let p = project(json!({"protect": ["device_ids"]}));
    let hits = [
        "device_id",
        "deviceId",
        "DeviceID",
        "device.id",
        "udid",
        "idfa",
        "idfv",
        "gaid",
        "adid",
        "advertising_id",
        "android_id",
        "imei",
        "meid",
        "serial_number",
        "mac",
        "mac_address",
        "wifi_mac",
        "primary-device-id",
    ];
    let misses = [
        "machine",
        "macro",
        "imac_model",
        "device_model",
        "identifier",
        "id",
        "paid",
        "serial",
        "adidas",
    ];
    let mut extra = serde_json::Map::new();
    for key in hits.iter().chain(&misses) {
        extra.insert(key.to_string(), json!("value-1"));
    }
    let out = scrub(&p, ItemKind::Event, &json!({ "extra": extra }));
    for key in hits {
        assert_ne!(out["extra"][key], "value-1", "{key} should be protected");
    }
    for key in misses {
        assert_eq!(out["extra"][key], "value-1", "{key} should be kept");
    }
}

#[test]
fn one_email_hashes_the_same_in_every_item_and_differently_under_another_key() {
    let p = project(json!({"protect": ["all"]}));
    let expected = keyed_hash(KEY, "jane@example.com");
    let event = scrub(
        &p,
        ItemKind::Event,
        &json!({"user": {"email": "jane@example.com"}}),
    );
    assert_eq!(event["user"]["email"], expected);
    let header = scrub(
        &p,
        ItemKind::EnvelopeHeader,
        &json!({"trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                          "user_id": "jane@example.com"}}),
    );
    assert_eq!(header["trace"]["user_id"], expected);
    let spans = scrub(
        &p,
        ItemKind::Span,
        &json!({"items": [{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7", "name": "GET",
            "attributes": {"user.email": {"type": "string", "value": "jane@example.com"}}}]}),
    );
    assert_eq!(
        spans["items"][0]["attributes"]["user.email"]["value"],
        expected
    );
    let session = scrub(
        &p,
        ItemKind::Session,
        &json!({"sid": "7ee8f2a2c4f74c6e8c1f6c1e0c9b7a3d", "did": "jane@example.com",
                "status": "ok", "attrs": {"release": "shop@2.4.1"}}),
    );
    assert_eq!(session["did"], expected);
    assert_eq!(session["attrs"]["release"], "shop@2.4.1");

    let other = project_with(json!({
        "piiConfig": {"vars": {"hashKey": "another-key"}},
        "scrubgate": {"protect": ["emails"]}
    }));
    let out = scrub(
        &other,
        ItemKind::Event,
        &json!({"user": {"email": "jane@example.com"}}),
    );
    assert_ne!(out["user"]["email"], expected);
    assert_eq!(out["user"]["email"].as_str().unwrap().len(), 40);
}

#[test]
fn protect_method_replace_and_remove() {
    let event = mobile_event();
    let replace = project(json!({"protect": ["all"], "protectMethod": "replace"}));
    let out = scrub(&replace, ItemKind::Event, &event);
    assert_eq!(out["user"]["email"], "[email]");
    assert_eq!(out["user"]["username"], "[user]");
    assert_eq!(
        out["contexts"]["device"]["device_unique_identifier"],
        "[device-id]"
    );
    assert_eq!(out["tags"]["device_id"], "[device-id]");
    let remove = project(json!({"protect": ["all"], "protectMethod": "remove"}));
    let out = scrub(&remove, ItemKind::Event, &event);
    assert_eq!(out["user"]["email"], Value::Null);
    assert_eq!(
        out["_meta"]["user"]["email"][""]["rem"],
        json!([["protect-emails", "x"]])
    );
    assert_eq!(out["extra"]["imei"], Value::Null);
}

#[test]
fn each_category_touches_only_its_own_kind() {
    let event = mobile_event();
    let only = |category: &str| {
        let p = project(json!({ "protect": [category] }));
        scrub(&p, ItemKind::Event, &event)
    };
    let emails = only("emails");
    assert_ne!(emails["user"]["email"], "jane@example.com");
    assert_eq!(emails["user"]["username"], "jdoe");
    assert_eq!(emails["user"]["ip_address"], "198.51.100.7");
    assert_eq!(emails["extra"]["imei"], "490154203237518");
    let ids = only("user_ids");
    assert_eq!(ids["user"]["email"], "jane@example.com");
    assert_ne!(ids["user"]["username"], "jdoe");
    let ips = only("ip_addresses");
    assert_ne!(ips["user"]["ip_address"], "198.51.100.7");
    assert_eq!(ips["user"]["email"], "jane@example.com");
    assert!(ips["message"]
        .as_str()
        .or(ips["logentry"]["formatted"].as_str())
        .unwrap()
        .ends_with("from [ip]"));
    let devices = only("device_ids");
    assert_eq!(devices["user"]["email"], "jane@example.com");
    assert_ne!(devices["extra"]["imei"], "490154203237518");
}

#[test]
fn bad_protect_values_are_errors_with_their_path() {
    let errors = |scrubgate: Value| {
        let doc = serde_json::to_vec(&json!({"config": {"scrubgate": scrubgate}})).unwrap();
        ProjectConfig::from_json(&doc, &|_| None)
            .expect_err("refused")
            .0
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
    };
    let e = errors(json!({"protect": ["emails", "emial"]}));
    assert!(
        e[0].starts_with("config.scrubgate.protect.1: unknown category \"emial\""),
        "{e:?}"
    );
    assert!(e[0].ends_with("did you mean \"emails\"?"), "{e:?}");
    let e = errors(json!({"protect": "all"}));
    assert!(e[0].starts_with("config.scrubgate.protect: must be an array"));
    let e = errors(json!({"protect": ["all"], "protectMethod": "mask"}));
    assert!(e[0].starts_with("config.scrubgate.protectMethod:"));
}

/// Device ids in the mobile SDK fixtures: with `protect: ["device_ids"]` the device
/// fields change and nothing else does.
#[test]
fn device_ids_on_mobile_sdk_payloads_change_nothing_else() {
    let p = project(json!({"protect": ["device_ids"]}));
    let mut changed_device_fields = 0;
    for name in [
        "cocoa",
        "android",
        "unity_android",
        "unity_ios",
        "legacy_swift",
    ] {
        let path = format!(
            "{}/tests/fixtures/sdk-payloads/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let event: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let out = scrub(&p, ItemKind::Event, &event);
        let before = leaves(&event);
        let after = leaves(&out);
        for (path, value) in &before {
            if after.get(path) == Some(value) {
                continue;
            }
            let device_field = [
                "contexts.device.device_unique_identifier",
                "contexts.device.id",
                "contexts.app.device_app_hash",
            ]
            .contains(&path.as_str());
            assert!(device_field, "{name}: {path} changed ({value})");
            changed_device_fields += 1;
        }
    }
    assert!(
        changed_device_fields >= 2,
        "the fixtures carry device ids ({changed_device_fields} changed)"
    );
}

// ---- over-scrubbing -------------------------------------------------------------------

fn corpus() -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/corpus/events.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The SDK-payload fixtures (events as current SDKs send them).
fn sdk_payloads() -> Vec<Value> {
    let dir = format!("{}/tests/fixtures/sdk-payloads", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<Value> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert!(out.len() >= 20, "{} SDK payloads", out.len());
    out.retain(Value::is_object);
    out
}

/// Every scalar leaf of `v` by its dotted path.
fn leaves(v: &Value) -> BTreeMap<String, Value> {
    fn walk(v: &Value, path: &mut String, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if k == "_meta" {
                        continue;
                    }
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                    walk(child, path, out);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!(".{i}"));
                    walk(child, path, out);
                    path.truncate(len);
                }
            }
            other => {
                out.insert(path.clone(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(v, &mut String::new(), &mut out);
    out
}

/// Whether an original value is one of the four kinds, judged without the engine's
/// detectors: by its field, by its key name, or by what its words parse as.
fn is_personal(path: &str, value: &Value) -> bool {
    let key = path.rsplit('.').next().unwrap_or(path).to_ascii_lowercase();
    let identifier_field = [
        "user.id",
        "user.email",
        "user.username",
        "user.name",
        "user.ip_address",
        "user.segment",
        "contexts.device.device_unique_identifier",
        "contexts.device.id",
        "contexts.app.device_app_hash",
    ]
    .contains(&path)
        || path.starts_with("request.env.REMOTE_ADDR");
    let device_key = [
        "device_id",
        "deviceid",
        "udid",
        "idfa",
        "idfv",
        "gaid",
        "adid",
        "advertising_id",
        "android_id",
        "imei",
        "meid",
        "serial_number",
        "mac",
        "mac_address",
    ]
    .iter()
    .any(|k| key == *k || key.ends_with(&format!("_{k}")));
    if identifier_field || device_key {
        return true;
    }
    let Some(text) = value.as_str() else {
        return false;
    };
    text.split(|c: char| c.is_whitespace() || "\"'<>()[]{},;=&?/".contains(c))
        .any(|word| {
            let word = word.trim_matches(|c: char| ".:!".contains(c));
            let at = word.find('@');
            let email = at.is_some_and(|i| i > 0 && word[i + 1..].contains('.'));
            let ip = word.parse::<IpAddr>().is_ok()
                || word
                    .rsplit_once(':')
                    .is_some_and(|(host, _)| host.parse::<IpAddr>().is_ok());
            let mac = word.len() == 17
                && word.split([':', '-']).count() == 6
                && word
                    .split([':', '-'])
                    .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
            email || ip || mac
        })
}

/// With `protect: ["all"]` and nothing else, the share of the values of the corpus and
/// the SDK payloads changed that are none of the four kinds. Run with `--nocapture` to see the figures.
#[test]
fn over_scrubbing_stays_under_one_percent() {
    for coverage in ["relay", "all"] {
        let p = project(json!({"protect": ["all"], "coverage": coverage}));
        let (mut values, mut changed, mut over) = (0usize, 0usize, Vec::new());
        for event in corpus().into_iter().chain(sdk_payloads()) {
            let out = scrub(&p, ItemKind::Event, &event);
            let after = leaves(&out);
            for (path, value) in leaves(&event) {
                values += 1;
                if after.get(&path) == Some(&value) {
                    continue;
                }
                changed += 1;
                if !is_personal(&path, &value) {
                    over.push(format!("{path} = {value}"));
                }
            }
        }
        let share = over.len() as f64 / values as f64;
        println!(
            "coverage {coverage}: {values} values, {changed} changed, {} of them none of the four kinds ({:.3}% of all values)",
            over.len(),
            share * 100.0
        );
        for line in over.iter().take(10) {
            println!("  over-scrubbed: {line}");
        }
        assert!(values > 10_000, "{values}");
        assert!(changed > 500, "{changed}");
        assert!(share < 0.01, "{share}");
    }
}

#[test]
fn device_id_attributes_of_spans_logs_and_metrics_are_protected() {
    let p = project(json!({"protect": ["device_ids"]}));
    let attributes = json!({
        "device.id": {"type": "string", "value": "dev-PLANT-77"},
        "device.model": {"type": "string", "value": "Pixel 8"}
    });
    let record = json!({
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "name": "checkout",
        "body": "ok",
        "type": "counter",
        "value": 1,
        "attributes": attributes
    });
    for kind in [ItemKind::Span, ItemKind::Log, ItemKind::TraceMetric] {
        let out = scrub(&p, kind, &json!({ "items": [record] }));
        let attrs = &out["items"][0]["attributes"];
        assert_eq!(
            attrs["device.id"]["value"],
            keyed_hash(KEY, "dev-PLANT-77"),
            "{kind:?}: {out}"
        );
        assert_eq!(attrs["device.model"]["value"], "Pixel 8", "{kind:?}");
        assert_eq!(
            out["items"][0]["trace_id"],
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
