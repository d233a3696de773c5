//! Project settings, each tested against what it promises: hash keys (known answers,
//! rotation, empty keys), typo detection with "did you mean", Sentry's project-API
//! spellings, the client-IP decision, and the fields scrubgate reaches beyond Relay's
//! table (`contexts.trace.description`, `trace.user_segment`, `_meta` for `user.*`
//! attributes in containers).

mod common;
use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};
use serde_json::{json, Value};

/// A project file with `config` as its `config` object.
fn project(config: Value) -> Result<ProjectConfig, Vec<String>> {
    project_with_env(config, &|_| None)
}

fn project_with_env(
    config: Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProjectConfig, Vec<String>> {
    let doc = serde_json::to_vec(&json!({ "config": config })).unwrap();
    ProjectConfig::from_json(&doc, env).map_err(|e| e.0.iter().map(|i| i.to_string()).collect())
}

fn scrub(project: &ProjectConfig, kind: ItemKind, item: &Value) -> Value {
    let input = serde_json::to_vec(item).unwrap();
    let out = project
        .rules
        .scrub(kind, &input, &ScrubOptions::default())
        .expect("scrubs");
    serde_json::from_slice(&out.bytes).expect("output is JSON")
}

fn errors_of(config: Value) -> Vec<String> {
    match project(config) {
        Ok(_) => panic!("the config should be refused"),
        Err(errors) => errors,
    }
}

// ---- keyed hashes ----------------------------------------------------------------------

/// HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog"), the textbook vector.
const FOX: &str = "The quick brown fox jumps over the lazy dog";
const FOX_HMAC_SHA1_KEY: &str = "DE7C9B85B8B78AA6BC8A7A36F70A90701C9DB4D9";
/// HMAC-SHA1 with Relay's empty key of the same text.
const FOX_HMAC_SHA1_EMPTY: &str = "2BA7F707AD5F187C412DE3106583C3111D668DE8";

#[test]
fn vars_hash_key_keys_builtin_hash_rules() {
    let p = project(json!({"piiConfig": {
        "vars": {"hashKey": "key"},
        "applications": {"$user.email": ["@anything:hash"]}
    }}))
    .unwrap();
    let out = scrub(&p, ItemKind::Event, &json!({"user": {"email": FOX}}));
    assert_eq!(out["user"]["email"], FOX_HMAC_SHA1_KEY);
    assert!(
        p.warnings.is_empty(),
        "no unkeyed-hash warning when a key applies: {:?}",
        p.warnings
    );
}

#[test]
fn without_a_key_hashes_are_relays_and_check_warns() {
    let p = project(json!({"piiConfig": {
        "applications": {"$user.email": ["@anything:hash"]}
    }}))
    .unwrap();
    let out = scrub(&p, ItemKind::Event, &json!({"user": {"email": FOX}}));
    assert_eq!(out["user"]["email"], FOX_HMAC_SHA1_EMPTY);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.starts_with("hashes without a key")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn a_rules_own_key_wins_over_vars() {
    let p = project(json!({"piiConfig": {
        "vars": {"hashKey": "other"},
        "rules": {"h": {"type": "anything", "redaction": {"method": "hash", "key": "key"}}},
        "applications": {"$user.email": ["h"]}
    }}))
    .unwrap();
    let out = scrub(&p, ItemKind::Event, &json!({"user": {"email": FOX}}));
    assert_eq!(out["user"]["email"], FOX_HMAC_SHA1_KEY);
}

#[test]
fn hash_keys_rotation_hashes_with_the_first_key() {
    let env = |name: &str| (name == "KEY_NOW").then(|| "key".to_string());
    let p = project_with_env(
        json!({"piiConfig": {
            "vars": {"hashKeys": [
                {"id": "2026-12", "key": "${KEY_NOW}"},
                {"id": "2026-06", "key": "older"}
            ]},
            "applications": {"$user.email": ["@email:hash"]}
        }}),
        &env,
    )
    .unwrap();
    let ids: Vec<&str> = p.hash_keys.iter().map(|k| &*k.id).collect();
    assert_eq!(ids, ["2026-12", "2026-06"]);
    let out = scrub(
        &p,
        ItemKind::Event,
        &json!({"user": {"email": "jane@example.com"}}),
    );
    // HMAC-SHA1("key", "jane@example.com"); with the empty key it would be F928C1B5...
    assert_eq!(
        out["user"]["email"],
        "10E85523CCA75DA0550BE3E6F7A129AEFD07BF10"
    );
}

#[test]
fn empty_hash_keys_are_errors() {
    let errors = errors_of(json!({"piiConfig": {"vars": {"hashKey": ""}}}));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("config.piiConfig.vars.hashKey: a hash key must not be empty")),
        "{errors:?}"
    );
    let env = |name: &str| (name == "EMPTY").then(String::new);
    let errors = project_with_env(
        json!({"piiConfig": {"vars": {"hashKey": "${EMPTY}"}}}),
        &env,
    )
    .expect_err("refused");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("environment variable EMPTY is empty")),
        "{errors:?}"
    );
    let errors = errors_of(json!({"piiConfig": {"rules": {
        "h": {"type": "anything", "redaction": {"method": "hash", "key": ""}}
    }}}));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("config.piiConfig.rules.h.redaction.key:")),
        "{errors:?}"
    );
    let errors = errors_of(json!({"piiConfig": {"vars": {"hashKey": "a", "hashKeys": []}}}));
    assert!(errors.iter().any(|e| e.contains("not both")), "{errors:?}");
}

// ---- no silent typos -------------------------------------------------------------------

#[test]
fn unknown_scrubgate_keys_are_errors_with_a_suggestion() {
    let errors = errors_of(json!({"scrubgate": {"coverge": "all", "attachment": "drop"}}));
    assert_eq!(errors.len(), 2, "{errors:?}");
    for (key, hint) in [("attachment", "attachments"), ("coverge", "coverage")] {
        let prefix = format!("config.scrubgate.{key}: unknown key");
        let hint = format!("did you mean {hint:?}?");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&prefix) && e.ends_with(&hint)),
            "{key}: {errors:?}"
        );
    }
}

#[test]
fn unknown_datascrubbing_keys_are_errors_with_a_suggestion() {
    let errors = errors_of(json!({"datascrubbingSettings": {
        "scrubData": true, "scrubDefault": true
    }}));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("config.datascrubbingSettings.scrubDefault: unknown key"),
        "{errors:?}"
    );
    assert!(errors[0].ends_with("did you mean \"scrubDefaults\"?"));
}

#[test]
fn every_error_is_reported_at_once() {
    let errors = errors_of(json!({
        "scrubgate": {"coverage": "most", "forwardUnknownItems": "yes"},
        "datascrubbingSettings": {"scrubData": "on"},
        "piiConfig": {"applications": {"$string": ["@nope"]}}
    }));
    for path in [
        "config.scrubgate.coverage:",
        "config.scrubgate.forwardUnknownItems:",
        "config.datascrubbingSettings.scrubData:",
        "config.piiConfig.applications.'$string'.0:",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(path)),
            "{path} missing from {errors:?}"
        );
    }
}

#[test]
fn sentry_project_api_spellings_are_accepted() {
    let api = project(json!({
        "datascrubbingSettings": {
            "dataScrubber": true,
            "dataScrubberDefaults": true,
            "scrubIPAddresses": true,
            "safeFields": ["public_note"]
        },
        "relayPiiConfig": "{\"applications\": {\"$user.username\": [\"@anything:remove\"]}}"
    }))
    .unwrap();
    let event = json!({
        "user": {"username": "jane", "ip_address": "198.51.100.7"},
        "extra": {"password": "hunter2", "public_note": "password hunter2"}
    });
    let out = scrub(&api, ItemKind::Event, &event);
    assert_eq!(
        out["user"]["username"],
        Value::Null,
        "relayPiiConfig applies"
    );
    assert_eq!(
        out["user"]["ip_address"],
        Value::Null,
        "scrubIPAddresses applies"
    );
    assert_eq!(
        out["extra"]["password"], "[Filtered]",
        "dataScrubber applies"
    );
    assert_eq!(
        out["extra"]["public_note"], "password hunter2",
        "safeFields applies"
    );
    assert!(api.scrubs_ip_addresses);

    let errors = errors_of(json!({"datascrubbingSettings": {
        "scrubIpAddresses": true, "scrubIPAddresses": false
    }}));
    assert!(errors[0].contains("two names"), "{errors:?}");
    let errors = errors_of(json!({"relayPiiConfig": "{not json"}));
    assert!(
        errors[0].starts_with("config.relayPiiConfig: invalid JSON"),
        "{errors:?}"
    );
}

// ---- the client-IP decision ------------------------------------------------------------

#[test]
fn a_project_scrubs_ips_when_any_rule_changes_the_users_ip() {
    let scrubs = |config: Value| project(config).unwrap().scrubs_ip_addresses;
    assert!(scrubs(
        json!({"piiConfig": {"applications": {"$string": ["@ip"]}}})
    ));
    assert!(scrubs(json!({"piiConfig": {"applications": {
        "$user.ip_address": ["@anything:remove"]
    }}})));
    assert!(scrubs(
        json!({"piiConfig": {"applications": {"$string": ["@ip:hash"]}}})
    ));
    assert!(scrubs(
        json!({"datascrubbingSettings": {"scrubIpAddresses": true}})
    ));
    assert!(scrubs(json!({"scrubgate": {"protect": ["ip_addresses"]}})));
    // Rules that leave the user's IP alone do not.
    assert!(!scrubs(
        json!({"piiConfig": {"applications": {"$string": ["@email"]}}})
    ));
    assert!(!scrubs(json!({"piiConfig": {"applications": {
        "$user.email": ["@anything:remove"]
    }}})));
    assert!(!scrubs(json!({"datascrubbingSettings": {
        "scrubData": true, "scrubDefaults": true
    }})));
}

// ---- fields beyond Relay's table -------------------------------------------------------

#[test]
fn coverage_all_reaches_the_trace_contexts_description() {
    let config = |coverage: &str| {
        json!({"piiConfig": {"applications": {"$string": ["@email"]}},
               "scrubgate": {"coverage": coverage}})
    };
    let event = json!({"contexts": {"trace": {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "description": "GET /users for jane@example.com"
    }}});
    let all = scrub(&project(config("all")).unwrap(), ItemKind::Event, &event);
    assert_eq!(
        all["contexts"]["trace"]["description"],
        "GET /users for [email]"
    );
    assert_eq!(
        all["contexts"]["trace"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    // Under Relay's coverage the description is `maybe`, as Relay has it.
    let relay = scrub(&project(config("relay")).unwrap(), ItemKind::Event, &event);
    assert_eq!(
        relay["contexts"]["trace"]["description"],
        "GET /users for jane@example.com"
    );
}

#[test]
fn the_envelope_headers_user_segment_is_scrubbed_as_user_segment() {
    let header = json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "trace": {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "user_segment": "seg jane@example.com"
    }});
    let all = project(
        json!({"piiConfig": {"applications": {"$string": ["@email"]}},
                             "scrubgate": {"coverage": "all"}}),
    )
    .unwrap();
    let out = scrub(&all, ItemKind::EnvelopeHeader, &header);
    assert_eq!(out["trace"]["user_segment"], "seg [email]");
    let named = project(json!({"piiConfig": {"applications": {
        "$user.segment": ["@anything:remove"]
    }}}))
    .unwrap();
    let out = scrub(&named, ItemKind::EnvelopeHeader, &header);
    assert_eq!(out["trace"].get("user_segment"), None);
    assert_eq!(out["trace"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // And in an event, a named selector reaches `user.segment` too.
    // And in an event, a named selector reaches `user.segment` too (removed values are
    // `null` with a remark, as Relay writes them).
    let out = scrub(
        &named,
        ItemKind::Event,
        &json!({"user": {"segment": "vip"}}),
    );
    assert_eq!(out["user"]["segment"], Value::Null);
    assert_eq!(
        out["_meta"]["user"]["segment"][""]["rem"],
        json!([["@anything:remove", "x"]])
    );
}

#[test]
fn container_records_get_meta_for_their_user_attributes() {
    let p = project(json!({"piiConfig": {"applications": {
        "$user.email || $user.username": ["@anything:hash"],
        "$user.ip_address": ["@anything:remove"],
        "$string": ["@email"]
    }}}))
    .unwrap();
    let attrs = json!({
        "user.email": {"type": "string", "value": "jane@example.com"},
        "user.name": {"type": "string", "value": "jane"},
        "user.ip_address": {"type": "string", "value": "198.51.100.7"},
        "http.method": {"type": "string", "value": "GET"},
        "note": {"type": "string", "value": "from jane@example.com"}
    });
    for kind in [ItemKind::Span, ItemKind::Log] {
        let record = json!({
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "body": "x",
            "attributes": attrs
        });
        let out = scrub(&p, kind, &json!({"items": [record]}));
        let rec = &out["items"][0];
        let meta = &rec["_meta"]["attributes"];
        assert_eq!(
            meta["user.email"]["value"][""]["rem"],
            json!([["@anything:hash", "p", 0, 40]]),
            "{kind:?}: {rec}"
        );
        assert_eq!(
            meta["user.name"]["value"][""]["rem"],
            json!([["@anything:hash", "p", 0, 40]]),
            "{kind:?}"
        );
        assert_eq!(
            meta["user.ip_address"]["value"][""]["rem"],
            json!([["@anything:remove", "x"]]),
            "{kind:?}"
        );
        assert_eq!(
            meta["note"]["value"][""]["rem"],
            json!([["@email", "s", 5, 12]]),
            "{kind:?}"
        );
        assert_eq!(meta.get("http.method"), None, "{kind:?}");
        assert_ne!(rec["attributes"]["user.email"]["value"], "jane@example.com");
    }
}

// ---- every data-scrubbing setting ------------------------------------------------------

/// [`common::defaults`] with `extra` settings added or replaced.
fn defaults_with(extra: Value) -> Value {
    let mut config = common::defaults();
    for (k, v) in extra.as_object().unwrap() {
        config["datascrubbingSettings"][k] = v.clone();
    }
    config
}

/// An event with a password, a card number, an IP and a custom secret field.
fn settings_event() -> Value {
    json!({
        "user": {"ip_address": "198.51.100.7"},
        "extra": {
            "password": "hunter2",
            "card": "4111 1111 1111 1111",
            "customer_ref": "CR-42",
            "note": "from 198.51.100.8"
        }
    })
}

#[test]
fn default_scrubbing_filters_passwords_cards_and_ips() {
    let out = scrub(
        &project(defaults_with(json!({}))).unwrap(),
        ItemKind::Event,
        &settings_event(),
    );
    assert_eq!(out["extra"]["password"], "[Filtered]");
    assert_eq!(out["extra"]["card"], "[Filtered]");
    assert_eq!(out["extra"]["note"], "from [ip]");
    assert_eq!(out["user"]["ip_address"], Value::Null);
    assert_eq!(out["extra"]["customer_ref"], "CR-42");
}

#[test]
fn scrub_data_false_turns_default_scrubbing_off_but_not_ip_scrubbing() {
    let out = scrub(
        &project(defaults_with(json!({"scrubData": false}))).unwrap(),
        ItemKind::Event,
        &settings_event(),
    );
    assert_eq!(out["extra"]["password"], "hunter2");
    assert_eq!(out["extra"]["card"], "4111 1111 1111 1111");
    assert_eq!(out["extra"]["note"], "from [ip]");
    assert_eq!(out["user"]["ip_address"], Value::Null);
}

#[test]
fn scrub_defaults_false_keeps_only_sensitive_fields_and_ips() {
    let out = scrub(
        &project(defaults_with(
            json!({"scrubDefaults": false, "sensitiveFields": ["customer_ref"]}),
        ))
        .unwrap(),
        ItemKind::Event,
        &settings_event(),
    );
    assert_eq!(
        out["extra"]["password"], "hunter2",
        "no default password rule"
    );
    assert_eq!(out["extra"]["card"], "4111 1111 1111 1111");
    assert_eq!(
        out["extra"]["customer_ref"], "[Filtered]",
        "sensitiveFields still apply"
    );
    assert_eq!(out["user"]["ip_address"], Value::Null);
}

#[test]
fn scrub_ip_addresses_false_keeps_ips() {
    let p = project(defaults_with(json!({"scrubIpAddresses": false}))).unwrap();
    let out = scrub(&p, ItemKind::Event, &settings_event());
    assert_eq!(out["user"]["ip_address"], "198.51.100.7");
    assert_eq!(out["extra"]["note"], "from 198.51.100.8");
    assert_eq!(out["extra"]["password"], "[Filtered]");
    assert!(!p.scrubs_ip_addresses);
}

#[test]
fn sensitive_fields_filter_matching_keys_case_insensitively() {
    let p = project(defaults_with(
        json!({"sensitiveFields": ["customer_ref", "Api_Token"]}),
    ))
    .unwrap();
    let event = json!({"extra": {"customer_ref": "CR-42", "api_token": "t-1", "CUSTOMER_REF_OLD": "CR-1", "other": "keep"}});
    let out = scrub(&p, ItemKind::Event, &event);
    assert_eq!(out["extra"]["customer_ref"], "[Filtered]");
    assert_eq!(out["extra"]["api_token"], "[Filtered]");
    // As Relay: a sensitive field matches any key that contains it.
    assert_eq!(out["extra"]["CUSTOMER_REF_OLD"], "[Filtered]");
    assert_eq!(out["extra"]["other"], "keep");
}

#[test]
fn exclude_fields_keep_their_values_and_a_double_star_switches_defaults_off() {
    let p = project(defaults_with(json!({"excludeFields": ["password"]}))).unwrap();
    let out = scrub(&p, ItemKind::Event, &settings_event());
    assert_eq!(
        out["extra"]["password"], "hunter2",
        "an excluded field is kept"
    );
    assert_eq!(out["extra"]["card"], "[Filtered]");
    let p = project(defaults_with(json!({"excludeFields": ["**"]}))).unwrap();
    let out = scrub(&p, ItemKind::Event, &settings_event());
    for key in ["password", "card", "note"] {
        assert_eq!(out["extra"][key], settings_event()["extra"][key], "{key}");
    }
    // The known IP fields are removed by their own application.
    assert_eq!(out["user"]["ip_address"], Value::Null);
}

#[test]
fn bad_values_of_scrubgate_options_are_errors_with_their_path() {
    for (options, path) in [
        (json!({"coverage": "most"}), "config.scrubgate.coverage:"),
        (json!({"coverage": true}), "config.scrubgate.coverage:"),
        (
            json!({"attachments": "keep"}),
            "config.scrubgate.attachments:",
        ),
        (
            json!({"forwardUnknownItems": "yes"}),
            "config.scrubgate.forwardUnknownItems:",
        ),
        (json!({"samples": 1}), "config.scrubgate.samples:"),
        (
            json!({"protectMethod": "mask"}),
            "config.scrubgate.protectMethod:",
        ),
        (
            json!({"shadow": {"applications": {"$string": ["nope"]}}}),
            "config.scrubgate.shadow.applications",
        ),
    ] {
        let errors = errors_of(json!({ "scrubgate": options }));
        assert!(
            errors.iter().any(|e| e.starts_with(path)),
            "{options}: {errors:?}"
        );
    }
    let errors = errors_of(json!({"scrubgate": "all"}));
    assert!(
        errors[0].starts_with("config.scrubgate: must be an object"),
        "{errors:?}"
    );
}
