//! The acceptance examples of Relay's semantics (spec section 8), one test each, plus the
//! places where scrubgate deliberately does better than Relay.

mod common;
use common::defaults;
use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};
use serde_json::{json, Value};

fn scrub_with(config: Value, event: Value) -> Value {
    let project = ProjectConfig::from_config_value(config).expect("config compiles");
    let input = serde_json::to_vec(&event).unwrap();
    let out = project
        .rules
        .scrub(ItemKind::Event, &input, &ScrubOptions::default())
        .expect("event scrubs");
    serde_json::from_slice(&out.bytes).expect("output is JSON")
}

fn pii(apps: Value) -> Value {
    json!({"piiConfig": {"applications": apps}})
}

#[test]
fn a1_email_replace() {
    let out = scrub_with(
        pii(json!({"$string": ["@email"]})),
        json!({"user": {"email": "foo@example.com"}}),
    );
    assert_eq!(out["user"]["email"], "[email]");
    assert_eq!(
        out["_meta"]["user"]["email"][""],
        json!({"rem": [["@email", "s", 0, 7]], "len": 15})
    );
}

#[test]
fn a2_ip_hash_and_custom_replace() {
    let out = scrub_with(
        pii(json!({"$string": ["@ip:hash"]})),
        json!({"extra": {"x": "before 127.0.0.1 after"}}),
    );
    assert_eq!(
        out["extra"]["x"],
        "before AE12FE3B5F129B5CC4CDD2B136B7B7947C4D2741 after"
    );
    assert_eq!(
        out["_meta"]["extra"]["x"][""],
        json!({"rem": [["@ip:hash", "p", 7, 47]], "len": 22})
    );

    let cfg = json!({"piiConfig": {
        "rules": {"0": {"type": "ip", "redaction": {"method": "replace"}}},
        "applications": {"$string": ["0"]}}});
    let out = scrub_with(cfg, json!({"extra": {"x": "before 127.0.0.1 after"}}));
    assert_eq!(out["extra"]["x"], "before [Filtered] after");
    assert_eq!(
        out["_meta"]["extra"]["x"][""]["rem"],
        json!([["0", "s", 7, 17]])
    );
}

#[test]
fn a3_mask_rules() {
    let out = scrub_with(
        pii(json!({"$string": ["@mac"]})),
        json!({"extra": {"x": "ether 4a:00:04:10:9b:50"}}),
    );
    assert_eq!(out["extra"]["x"], "ether *****************");
    assert_eq!(
        out["_meta"]["extra"]["x"][""]["rem"],
        json!([["@mac", "m", 6, 23]])
    );

    let out = scrub_with(
        pii(json!({"$string": ["@uuid"]})),
        json!({"extra": {"x": "user id ceee0822-ed8f-4622-b2a3-789e73e75cd1"}}),
    );
    assert_eq!(out["extra"]["x"], format!("user id {}", "*".repeat(36)));
    assert_eq!(
        out["_meta"]["extra"]["x"][""]["rem"],
        json!([["@uuid", "m", 8, 44]])
    );

    let out = scrub_with(
        pii(json!({"$string": ["@usssn"]})),
        json!({"extra": {"x": "my SSN is 078-05-1120"}}),
    );
    assert_eq!(out["extra"]["x"], format!("my SSN is {}", "*".repeat(11)));
}

#[test]
fn a4_userpath_urlauth_pemkey() {
    let out = scrub_with(
        pii(json!({"$string": ["@userpath"]})),
        json!({"extra": {"x": "File in /Users/mitsuhiko/Development/x"}}),
    );
    assert_eq!(out["extra"]["x"], "File in /Users/[user]/Development/x");
    assert_eq!(
        out["_meta"]["extra"]["x"][""]["rem"],
        json!([["@userpath", "s", 15, 21]])
    );

    let out = scrub_with(
        pii(json!({"$string": ["@urlauth"]})),
        json!({"extra": {"x": "https://username:password@example.com/"}}),
    );
    assert_eq!(out["extra"]["x"], "https://[auth]@example.com/");
    assert_eq!(
        out["_meta"]["extra"]["x"][""]["rem"],
        json!([["@urlauth", "s", 8, 14]])
    );

    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA04up8hoqzS1+\n-----END RSA PRIVATE KEY-----";
    let out = scrub_with(
        pii(json!({"$string": ["@pemkey"]})),
        json!({"extra": {"x": pem}}),
    );
    assert_eq!(
        out["extra"]["x"],
        "-----BEGIN RSA PRIVATE KEY-----\n[pemkey]\n-----END RSA PRIVATE KEY-----"
    );
}

#[test]
fn a5_default_password_keys() {
    let out = scrub_with(
        defaults(),
        json!({"extra": {"foo": "bar", "password": "hello", "api_key": "secret_key", "a_password_here": "hello"}}),
    );
    assert_eq!(out["extra"]["foo"], "bar");
    for (k, len) in [("password", 5), ("api_key", 10), ("a_password_here", 5)] {
        assert_eq!(out["extra"][k], "[Filtered]", "{k}");
        assert_eq!(
            out["_meta"]["extra"][k][""],
            json!({"rem": [["@password:filter", "s", 0, 10]], "len": len}),
            "{k}"
        );
    }
}

#[test]
fn a6_default_user() {
    let out = scrub_with(
        defaults(),
        json!({"user": {"username": "secret", "ip_address": "73.133.27.120"}}),
    );
    assert_eq!(
        out["user"],
        json!({"username": "[Filtered]", "ip_address": null})
    );
    assert_eq!(
        out["_meta"]["user"],
        json!({
            "username": {"": {"rem": [["@password:filter", "s", 0, 10]], "len": 6}},
            "ip_address": {"": {"rem": [["@ip:replace", "s", 0, 4], ["@anything:remove", "x"]], "len": 13}}
        })
    );
}

#[test]
fn a7_query_string_pairs() {
    let out = scrub_with(
        defaults(),
        json!({"request": {"query_string": "foo=bar&password=hello&api_key=secret_key"}}),
    );
    assert_eq!(
        out["request"]["query_string"],
        json!([
            ["foo", "bar"],
            ["password", "[Filtered]"],
            ["api_key", "[Filtered]"]
        ])
    );
    assert!(out["_meta"]["request"]["query_string"]["1"]["1"][""]["rem"].is_array());
    assert!(out["_meta"]["request"]["query_string"]["2"]["1"][""]["rem"].is_array());
    assert!(out["_meta"]["request"]["query_string"]["0"].is_null());
}

#[test]
fn a8_creditcard_and_legacy_urlauth() {
    let out = scrub_with(
        defaults(),
        json!({"extra": {"foo": "foo 4571234567890111"}}),
    );
    assert_eq!(out["extra"]["foo"], "foo [Filtered]");
    assert_eq!(
        out["_meta"]["extra"]["foo"][""],
        json!({"rem": [["@creditcard:filter", "s", 4, 14]], "len": 20})
    );
    let out = scrub_with(defaults(), json!({"extra": {"foo": "1453843029218310"}}));
    assert_eq!(out["extra"]["foo"], "1453843029218310");
    assert!(out.get("_meta").is_none());
    let out = scrub_with(
        defaults(),
        json!({"extra": {"foo": "pg://matt:pass@localhost/1"}}),
    );
    assert_eq!(out["extra"]["foo"], "pg://matt:[Filtered]@localhost/1");
    assert_eq!(
        out["_meta"]["extra"]["foo"][""],
        json!({"rem": [["@urlauth:legacy", "s", 10, 20]], "len": 26})
    );
}

#[test]
fn a9_defaults_keep_emails_in_data_and_messages_readable() {
    let out = scrub_with(
        defaults(),
        json!({"request": {"data": {"email": "zzzz@gmail.com", "password": "zzzzz"}}}),
    );
    assert_eq!(
        out["request"]["data"],
        json!({"email": "zzzz@gmail.com", "password": "[Filtered]"})
    );

    let msg =
        "API failed with Bearer ABC123TOKEN for user@example.com using card 4111-1111-1111-1111";
    let out = scrub_with(defaults(), json!({"logentry": {"formatted": msg}}));
    assert_eq!(
        out["logentry"]["formatted"],
        "API failed with Bearer [token] for [email] using card [creditcard]"
    );
    let out = scrub_with(
        defaults(),
        json!({"logentry": {"formatted": "User's password is 12345"}}),
    );
    assert_eq!(out["logentry"]["formatted"], "User's password is 12345");
    // A plain top-level `message` is the formatted message too.
    let out = scrub_with(
        defaults(),
        json!({"message": "User's password is 12345 mail a@b.io"}),
    );
    assert_eq!(out["message"], "User's password is 12345 mail [email]");

    let out = scrub_with(
        defaults(),
        json!({"exception": {"values": [{"type": "E", "value": "password=hunter2"}]}}),
    );
    assert_eq!(out["exception"]["values"][0]["value"], "password=hunter2");
}

#[test]
fn a10_redact_pair_and_maybe_tags() {
    let cfg = json!({"piiConfig": {
        "rules": {"rbh": {"type": "redact_pair", "keyPattern": "(?i)cookie|secret[-_]?key"}},
        "applications": {"$string": ["@ip"], "$object.**": ["rbh"]}}});
    let out = scrub_with(
        cfg,
        json!({
            "request": {
                "headers": [["Cookie", "super secret"], ["X-Forwarded-For", "127.0.0.1"]],
                "env": {"SECRET_KEY": "134141231231231231231312"}
            },
            "tags": [["forwarded_for", "127.0.0.1"]]
        }),
    );
    assert_eq!(out["request"]["headers"][0], json!(["Cookie", null]));
    assert_eq!(
        out["_meta"]["request"]["headers"]["0"]["1"][""]["rem"],
        json!([["rbh", "x"]])
    );
    assert_eq!(
        out["request"]["headers"][1],
        json!(["X-Forwarded-For", "[ip]"])
    );
    assert_eq!(
        out["_meta"]["request"]["headers"]["1"]["1"][""],
        json!({"rem": [["@ip", "s", 0, 4]], "len": 9})
    );
    assert_eq!(out["request"]["env"]["SECRET_KEY"], Value::Null);
    assert_eq!(
        out["tags"],
        json!([["forwarded_for", "127.0.0.1"]]),
        "tags are pii=maybe"
    );
}

#[test]
fn a11_anything_hash_and_container_delete() {
    let out = scrub_with(
        pii(json!({"$string": ["@anything:hash"]})),
        json!({"extra": {"myvalue": "foobar"}}),
    );
    assert_eq!(
        out["extra"]["myvalue"],
        "168197CA3A9D4FE60EDE05116B0A125DA1AB3BD0"
    );
    assert_eq!(
        out["_meta"]["extra"]["myvalue"][""],
        json!({"rem": [["@anything:hash", "p", 0, 40]], "len": 6})
    );
    let out = scrub_with(
        pii(json!({"$object": ["@anything:hash"]})),
        json!({"extra": {"myvalue": "foobar"}}),
    );
    assert_eq!(out["extra"], Value::Null);
    assert_eq!(
        out["_meta"]["extra"][""]["rem"],
        json!([["@anything:hash", "x"]])
    );
}

/// A key pattern deletes a whole object or array under a matching key; containers under
/// other keys are only walked.
#[test]
fn redact_pair_deletes_containers_by_key() {
    let out = scrub_with(
        json!({"piiConfig": {
            "rules": {"secrets": {"type": "redact_pair", "keyPattern": "(?i)^secret"}},
            "applications": {"extra.**": ["secrets"]}
        }}),
        json!({"extra": {
            "Secret_Config": {"token": "abc"},
            "secret_list": [1, 2],
            "other": {"secret_nested": {"x": 1}, "keep": {"y": 2}}
        }}),
    );
    assert_eq!(out["extra"]["Secret_Config"], Value::Null);
    assert_eq!(out["extra"]["secret_list"], Value::Null);
    assert_eq!(out["extra"]["other"]["secret_nested"], Value::Null);
    assert_eq!(out["extra"]["other"]["keep"], json!({"y": 2}));
    assert_eq!(
        out["_meta"]["extra"]["Secret_Config"][""]["rem"],
        json!([["secrets", "x"]])
    );
}

#[test]
fn a12_hashed_ip_moves_to_user_id() {
    let out = scrub_with(
        pii(json!({"$user.ip_address": ["@ip:hash"]})),
        json!({"user": {"ip_address": "127.0.0.1"}}),
    );
    assert_eq!(
        out["user"],
        json!({"id": "AE12FE3B5F129B5CC4CDD2B136B7B7947C4D2741"})
    );
    assert!(out["_meta"]["user"]["id"][""]["rem"].is_array());
    // With an id present nothing moves.
    let out = scrub_with(
        pii(json!({"$user.ip_address": ["@ip:hash"]})),
        json!({"user": {"id": "7", "ip_address": "127.0.0.1"}}),
    );
    assert_eq!(out["user"]["id"], "7");
    assert_eq!(
        out["user"]["ip_address"],
        "AE12FE3B5F129B5CC4CDD2B136B7B7947C4D2741"
    );
}

#[test]
fn a13_unknown_context_deleted_known_untouched() {
    let out = scrub_with(
        defaults(),
        json!({"contexts": {"secret": {"a": "b"}, "os": {"name": "secret os"}, "device": {"name": "x"}}}),
    );
    assert_eq!(out["contexts"]["secret"], Value::Null);
    assert_eq!(
        out["_meta"]["contexts"]["secret"][""]["rem"],
        json!([["@password:filter", "x"]])
    );
    assert_eq!(out["contexts"]["os"], json!({"name": "secret os"}));
}

#[test]
fn better_than_relay_whole_ipv6_replaced() {
    let out = scrub_with(
        pii(json!({"$string": ["@ip"]})),
        json!({"extra": {"x": "from 2001:db8:85a3::8a2e:370:7334 ok"}}),
    );
    assert_eq!(
        out["extra"]["x"], "from [ip] ok",
        "Relay leaves `2001:db8:` in place"
    );
}

#[test]
fn auto_ip_resolved_before_scrubbing() {
    let project = ProjectConfig::from_config_value(defaults()).unwrap();
    let input = br#"{"user":{"ip_address":"{{auto}}"}}"#;
    let opts = ScrubOptions {
        client_ip: Some("10.1.2.3".parse().unwrap()),
        ..Default::default()
    };
    let out = project.rules.scrub(ItemKind::Event, input, &opts).unwrap();
    let v: Value = serde_json::from_slice(&out.bytes).unwrap();
    assert_eq!(v["user"]["ip_address"], Value::Null);
    assert!(!String::from_utf8(out.bytes).unwrap().contains("10.1.2.3"));
    // Without scrubbing the resolved IP is kept.
    let project = ProjectConfig::from_config_value(json!({})).unwrap();
    let out = project.rules.scrub(ItemKind::Event, input, &opts).unwrap();
    assert!(String::from_utf8(out.bytes).unwrap().contains("10.1.2.3"));
}

#[test]
fn untouched_values_keep_their_bytes() {
    let project = ProjectConfig::from_config_value(defaults()).unwrap();
    let input = br#"{"z":1.50,"a":[1e3,-0],"extra":{"k\u00e9y":"caf\u00e9 \"q\""},"user":{"email":"a@b.io"}}"#;
    let out = project
        .rules
        .scrub(ItemKind::Event, input, &ScrubOptions::default())
        .unwrap();
    assert_eq!(
        std::str::from_utf8(&out.bytes).unwrap(),
        std::str::from_utf8(input).unwrap()
    );
}

#[test]
fn bad_input_is_an_error_never_output() {
    let project = ProjectConfig::from_config_value(defaults()).unwrap();
    let opts = ScrubOptions {
        max_depth: 5,
        ..Default::default()
    };
    for bad in [
        &b"[1,2]"[..],
        b"{\"a\":",
        b"\xff\xfe",
        b"{\"a\":[[[[[[[1]]]]]]]}",
    ] {
        assert!(
            project.rules.scrub(ItemKind::Event, bad, &opts).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn existing_meta_is_merged() {
    let out = scrub_with(
        pii(json!({"$string": ["@email"]})),
        json!({"user": {"email": "a@b.io"}, "_meta": {"user": {"email": {"": {"err": ["invalid_data"]}}}, "x": {"": {"len": 3}}}}),
    );
    assert_eq!(out["_meta"]["x"], json!({"": {"len": 3}}));
    assert_eq!(
        out["_meta"]["user"]["email"][""]["err"],
        json!(["invalid_data"])
    );
    assert_eq!(
        out["_meta"]["user"]["email"][""]["rem"],
        json!([["@email", "s", 0, 7]])
    );
}

#[test]
fn cookie_header_scrubbed_like_request_cookies() {
    let out = scrub_with(
        defaults(),
        json!({"request": {"headers": [["Cookie", "theme=dark; sessionid=abc123; lang=en"], ["Accept", "*/*"]]}}),
    );
    assert_eq!(
        out["request"]["headers"][0],
        json!(["Cookie", "theme=dark; sessionid=[Filtered]; lang=en"])
    );
    let rem = &out["_meta"]["request"]["headers"]["0"]["1"][""];
    assert_eq!(rem["rem"][0], json!(["@anything:filter", "s", 22, 32]));
    assert_eq!(rem["len"], 37);
    // Object form too.
    let out = scrub_with(
        defaults(),
        json!({"request": {"headers": {"cookie": "sessionid=abc123"}}}),
    );
    assert_eq!(out["request"]["headers"]["cookie"], "sessionid=[Filtered]");
}

#[test]
fn every_filtered_cookie_of_a_header_gets_its_remark() {
    let out = scrub_with(
        defaults(),
        json!({"request": {"headers": [["Cookie", "sessionid=abc; theme=dark; csrf=xyz1; sudo=1; lang=en"]]}}),
    );
    let header = out["request"]["headers"][0][1].as_str().unwrap();
    assert_eq!(
        header,
        "sessionid=[Filtered]; theme=dark; csrf=[Filtered]; sudo=[Filtered]; lang=en"
    );
    let starts: Vec<usize> = header.match_indices("[Filtered]").map(|(i, _)| i).collect();
    let rem = out["_meta"]["request"]["headers"]["0"]["1"][""]["rem"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rem.len(), 3, "{rem:?}");
    for (r, start) in rem.iter().zip(starts) {
        assert_eq!(r[0], "@anything:filter");
        assert_eq!(r[2], start);
        assert_eq!(r[3], start + "[Filtered]".len());
    }
}

#[test]
fn original_values_in_meta_are_scrubbed_too() {
    let out = scrub_with(
        defaults(),
        json!({
            "user": {"username": "x"},
            "extra": {"note": "ok", "password": "p"},
            "_meta": {
                "extra": {"note": {"": {"val": "card 4571234567890111", "len": 21}}, "password": {"": {"val": "hunter2"}}},
                "user": {"username": {"": {"val": "mail bob@example.com", "err": ["invalid_data"]}}}
            }
        }),
    );
    assert_eq!(out["_meta"]["extra"]["note"][""]["val"], "card [Filtered]");
    assert_eq!(out["_meta"]["extra"]["password"][""]["val"], "[Filtered]");
    // Default scrubbing keeps emails (Relay), so this one stays; the structure is kept.
    assert_eq!(
        out["_meta"]["user"]["username"][""]["err"],
        json!(["invalid_data"])
    );
    let out = scrub_with(
        pii(json!({"$string": ["@email:remove"], "$user.username": ["@anything:remove"]})),
        json!({"user": {"username": "x"}, "_meta": {"user": {"username": {"": {"val": "bob@example.com"}}}}}),
    );
    assert!(
        out["_meta"]["user"]["username"][""].get("val").is_none(),
        "{out}"
    );
}

#[test]
fn original_values_in_a_wide_meta_object_follow_the_event() {
    // More than eight keys: the `_meta` object is matched to the event's through an index.
    let mut extra = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    for i in 0..20 {
        extra.insert(format!("k{i}"), json!("v"));
        meta.insert(
            format!("k{i}"),
            json!({"": {"val": format!("{i} is 078-05-1120")}}),
        );
    }
    extra.insert("password".into(), json!("p"));
    meta.insert("password".into(), json!({"": {"val": "hunter2"}}));
    // A list in the event: the key `1` is its second element, a frame's `vars`.
    meta.insert(
        "list".into(),
        json!({"1": {"": {"val": "card 4571234567890111"}}}),
    );
    extra.insert("list".into(), json!(["a", "b"]));
    let out = scrub_with(
        defaults(),
        json!({"extra": extra, "_meta": {"extra": meta}}),
    );
    let m = &out["_meta"]["extra"];
    assert_eq!(m["password"][""]["val"], "[Filtered]");
    assert_eq!(m["list"]["1"][""]["val"], "card [Filtered]");
    for i in 0..20 {
        assert_eq!(m[format!("k{i}")][""]["val"], format!("{i} is [Filtered]"));
    }
    // The event's types along the path decide: `list` is an array in the event, so
    // `$array.*` reaches its original value, and nothing else.
    let out = scrub_with(
        pii(json!({"$array.*": ["@anything:replace"]})),
        json!({"extra": extra, "_meta": {"extra": meta}}),
    );
    let m = &out["_meta"]["extra"];
    assert_eq!(m["list"]["1"][""]["val"], "[Filtered]", "{m}");
    assert_eq!(m["k3"][""]["val"], "3 is 078-05-1120");
}

#[test]
fn numeric_user_id_is_scrubbed_as_its_text() {
    let out = scrub_with(
        pii(json!({"$user.id": ["@anything:hash"]})),
        json!({"user": {"id": 12345}}),
    );
    // HMAC-SHA1("", "12345"), checked with Python's hmac module.
    assert_eq!(
        out["user"]["id"],
        "774472F0DC892F0B3299CAE8DADACD0A74BA59D7"
    );
    let out = scrub_with(
        pii(json!({"$string": ["@anything:remove"]})),
        json!({"user": {"id": 7}, "extra": {"n": 7}}),
    );
    assert_eq!(out["user"]["id"], Value::Null);
    assert_eq!(out["extra"]["n"], 7, "other numbers are not strings");
}

#[test]
fn message_object_is_a_logentry() {
    let out = scrub_with(
        pii(json!({"$logentry.formatted": ["@email"], "$string": ["@ip"]})),
        json!({"message": {"formatted": "from a@b.io at 10.0.0.1", "message": "from %s at %s"}}),
    );
    assert_eq!(out["message"]["formatted"], "from [email] at [ip]");
    assert_eq!(
        out["message"]["message"], "from %s at %s",
        "the template is pii false"
    );
}

#[test]
fn transaction_spans_are_scrubbed() {
    let out = scrub_with(
        defaults(),
        json!({
            "type": "transaction",
            "spans": [{
                "op": "db", "description": "SELECT",
                "data": {"password": "hunter2", "db.user": "app"},
                "sentry_tags": {"user.ip": "10.1.1.1", "release": "r1"}
            }]
        }),
    );
    assert_eq!(out["spans"][0]["data"]["password"], "[Filtered]");
    assert_eq!(out["spans"][0]["sentry_tags"]["user.ip"], Value::Null);
    assert_eq!(out["spans"][0]["sentry_tags"]["release"], "r1");
}

#[test]
fn legacy_and_alternative_event_shapes() {
    let cfg = json!({
        "piiConfig": {"applications": {"$string": ["@email"], "$error.value": ["@ip"], "$frame.vars.secret": ["@anything:remove"]}},
        "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true}
    });
    let out = scrub_with(
        cfg,
        json!({
            "sentry.interfaces.Exception": {"values": [{"type": "E", "value": "from 10.0.0.1 by a@b.io",
                "stacktrace": {"frames": [{"function": "f", "vars": {"secret": "s3", "n": "c@d.io"}}]}}]},
            "exception": [{"type": "E", "value": "x 10.0.0.2"}],
            "breadcrumbs": [{"message": "login e@f.io", "category": "auth"}],
            "threads": [{"id": 1, "stacktrace": {"frames": [{"vars": {"secret": "t"}}]}}],
            "sentry.interfaces.User": {"email": "g@h.io", "custom_field": "i@j.io"},
            "request": {
                "headers": {"Authorization": "Bearer abc.def", "X-Api-Key": "k-123"},
                "cookies": "sessionid=zz; theme=dark",
                "data": "{\"password\":\"p\",\"mail\":\"k@l.io\"}",
                "query_string": {"token": "abc", "q": "m@n.io"},
                "env": {"REMOTE_ADDR": "10.9.9.9"}
            },
            "tags": [["user_email", "o@p.io"]],
            "contexts": {"mine": {"type": "mine", "owner": "q@r.io"}},
            "extra": {"list": [["pw", "s@t.io"], 1, null, {"deep": ["u@v.io"]}]}
        }),
    );
    let text = out.to_string();
    let meta = out["_meta"].to_string();
    let payload = text.replace(&meta, "");
    for secret in [
        "a@b.io", "c@d.io", "e@f.io", "g@h.io", "i@j.io", "k@l.io", "m@n.io", "q@r.io", "s@t.io",
        "u@v.io", "10.0.0.1", "10.9.9.9", "abc.def", "k-123", "\"zz\"", "s3",
    ] {
        assert!(!payload.contains(secret), "{secret} survived: {payload}");
    }
    assert_eq!(
        out["exception"][0]["value"], "x [ip]",
        "bare-array exception is exception.values"
    );
    assert_eq!(
        out["threads"][0]["stacktrace"]["frames"][0]["vars"]["secret"],
        Value::Null
    );
    assert_eq!(
        out["tags"],
        json!([["user_email", "o@p.io"]]),
        "tags stay pii maybe"
    );
    assert_eq!(
        out["request"]["cookies"],
        json!([["sessionid", "[Filtered]"], ["theme", "dark"]])
    );
}

#[test]
fn misplaced_applications_are_refused_with_their_path() {
    let cfg = json!({"config": {"applications": {"$string": ["@ip"]}, "piiConfig": {}}});
    let err = ProjectConfig::from_json(&serde_json::to_vec(&cfg).unwrap(), &|_| None).unwrap_err();
    assert!(
        err.0.iter().any(|i| i.path == "config.applications"),
        "{err:?}"
    );
    let cfg = json!({"config": {"rules": {}}});
    let err = ProjectConfig::from_json(&serde_json::to_vec(&cfg).unwrap(), &|_| None).unwrap_err();
    assert!(err.0.iter().any(|i| i.path == "config.rules"), "{err:?}");
}

#[test]
fn sdk_client_ip_is_a_known_ip_field() {
    let out = scrub_with(
        defaults(),
        json!({"sdk": {"name": "s", "client_ip": "10.2.3.4"}}),
    );
    assert_eq!(out["sdk"]["client_ip"], Value::Null);
    assert_eq!(out["sdk"]["name"], "s");
}

#[test]
fn string_logentry_is_the_formatted_message() {
    for key in ["logentry", "sentry.interfaces.Message", "message"] {
        let out = scrub_with(
            defaults(),
            json!({key: "mail me: a@b.io, card 4111-1111-1111-1111"}),
        );
        assert_eq!(out[key], "mail me: [email], card [creditcard]", "{key}");
    }
}

#[test]
fn single_item_where_a_list_is_expected() {
    let cfg = json!({
        "piiConfig": {"applications": {"$error.value": ["@email"], "$frame.vars.**": ["@anything:remove"]}},
        "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true}
    });
    let out = scrub_with(
        cfg,
        json!({
            "exception": {"type": "E", "value": "for a@b.io",
                "stacktrace": {"frames": [{"function": "f", "vars": {"n": "v", "password": "p"}}]}},
            "breadcrumbs": {"message": "pw", "data": {"password": "hunter2"}}
        }),
    );
    assert_eq!(out["exception"]["value"], "for [email]");
    assert_eq!(
        out["exception"]["stacktrace"]["frames"][0]["vars"]["n"],
        Value::Null
    );
    assert_eq!(out["breadcrumbs"]["data"]["password"], "[Filtered]");
    assert!(
        out["_meta"]["exception"]["value"][""]["rem"].is_array(),
        "meta follows the JSON as sent"
    );
}

#[test]
fn contexts_are_typed_by_their_type_field() {
    let out = scrub_with(
        pii(json!({"$string": ["@email"]})),
        json!({"contexts": {
            "device": {"type": "mything", "owner": "a@b.io"},
            "mine": {"type": "os", "name": "c@d.io", "build": "e@f.io"},
            "os": {"name": "g@h.io"}
        }}),
    );
    assert_eq!(
        out["contexts"]["device"]["owner"], "[email]",
        "an unknown type is a custom context"
    );
    assert_eq!(
        out["contexts"]["mine"]["name"], "c@d.io",
        "typed as os: name is pii false"
    );
    assert_eq!(
        out["contexts"]["mine"]["build"], "e@f.io",
        "os.build is pii maybe"
    );
    assert_eq!(out["contexts"]["os"]["name"], "g@h.io");
}

#[test]
fn url_query_is_scrubbed_per_parameter_like_relay() {
    let out = scrub_with(
        defaults(),
        json!({"request": {"url": "https://shop.example.com/pay?item=3&api_key=s3cr3t#section"}}),
    );
    assert_eq!(out["request"]["url"], "https://shop.example.com/pay");
    assert_eq!(
        out["request"]["query_string"],
        json!([["item", "3"], ["api_key", "[Filtered]"]])
    );
    assert_eq!(out["request"]["fragment"], "section");
    // An explicit query_string is kept; the URL's own query is dropped, so nothing in it
    // leaves unscrubbed.
    let out = scrub_with(
        defaults(),
        json!({"request": {"url": "https://x/?a=1&password=hunter2", "query_string": "b=2"}}),
    );
    assert_eq!(out["request"]["url"], "https://x/");
    assert_eq!(out["request"]["query_string"], "b=2");
    // Without rules nothing is rewritten.
    let out = scrub_with(json!({}), json!({"request": {"url": "https://x/?a=1"}}));
    assert_eq!(out["request"]["url"], "https://x/?a=1");
}

/// More than 64 selectors: the walker memoizes the first 64 as bits of a mask; the rest
/// must still apply, each only where its own selector matches.
#[test]
fn configs_with_more_than_64_selectors_apply_every_selector() {
    let mut apps = serde_json::Map::new();
    for i in 0..70 {
        apps.insert(format!("extra.field{i}"), json!(["@anything:remove"]));
    }
    // The last selectors are past the mask; their rules must act, and only on their own
    // fields (application 64 must not borrow application 0's matches).
    apps.insert("extra.zz_last".to_owned(), json!(["@email"]));
    let event = json!({"extra": {
        "field0": "a",
        "field65": "b",
        "field69": {"nested": true},
        "untouched": "c",
        "zz_last": "mail me at jane@example.com"
    }});
    let out = scrub_with(pii(Value::Object(apps)), event);
    assert_eq!(out["extra"]["field0"], Value::Null);
    assert_eq!(out["extra"]["field65"], Value::Null);
    assert_eq!(out["extra"]["field69"], Value::Null);
    assert_eq!(out["extra"]["untouched"], "c");
    assert_eq!(out["extra"]["zz_last"], "mail me at [email]");
    assert_eq!(
        out["_meta"]["extra"]["field65"][""]["rem"],
        json!([["@anything:remove", "x"]])
    );
}

/// Path facts are memoized per thread and per rule set: alternating rule sets (and a
/// rule set compiled again, as on a reload) on one thread never borrow each other's.
#[test]
fn rule_sets_used_alternately_on_one_thread_keep_their_own_results() {
    let event = json!({"extra": {"a": "jane@example.com", "b": "10.1.2.3"}});
    for round in 0..3 {
        let email_only = scrub_with(pii(json!({"extra.a": ["@email"]})), event.clone());
        let ip_only = scrub_with(pii(json!({"extra.b": ["@ip"]})), event.clone());
        assert_eq!(email_only["extra"]["a"], "[email]", "round {round}");
        assert_eq!(email_only["extra"]["b"], "10.1.2.3", "round {round}");
        assert_eq!(ip_only["extra"]["a"], "jane@example.com", "round {round}");
        assert_eq!(ip_only["extra"]["b"], "[ip]", "round {round}");
    }
}

// Known answers from Relay itself: each expected value and remark below is what PyPI
// `sentry-relay` 0.10.1's `pii_strip_event` returned for the same config and event.

#[test]
fn bearer_rules_redact_the_keyword_and_the_token_as_one() {
    let event = json!({"extra": {"a": "Bearer abc123def", "b": "x Bearer  abc123def y"}});
    let cases = [
        (
            "@bearer",
            "Bearer [token]",
            "x Bearer [token] y",
            json!(["@bearer", "s", 0, 14]),
            json!(["@bearer", "s", 2, 16]),
        ),
        (
            "@bearer:mask",
            "****************",
            "x ***************** y",
            json!(["@bearer:mask", "m", 0, 16]),
            json!(["@bearer:mask", "m", 2, 19]),
        ),
        (
            "@bearer:remove",
            "",
            "x  y",
            json!(["@bearer:remove", "x", 0, 0]),
            json!(["@bearer:remove", "x", 2, 2]),
        ),
        (
            "@bearer:filter",
            "[Filtered]",
            "x [Filtered] y",
            json!(["@bearer:filter", "s", 0, 10]),
            json!(["@bearer:filter", "s", 2, 12]),
        ),
        (
            "@bearer:hash",
            "2E5CA52BB37BA192F3E3E158B79DF733E7D65C2F",
            "x 1931879A8A2A30A3BC78FC001E2FB4E4DA32D1C9 y",
            json!(["@bearer:hash", "p", 0, 40]),
            json!(["@bearer:hash", "p", 2, 42]),
        ),
    ];
    for (rule, a, b, rem_a, rem_b) in cases {
        let out = scrub_with(pii(json!({"$string": [rule]})), event.clone());
        assert_eq!(out["extra"]["a"], a, "{rule}");
        assert_eq!(out["extra"]["b"], b, "{rule}");
        assert_eq!(
            out["_meta"]["extra"]["a"][""]["rem"],
            json!([rem_a]),
            "{rule}"
        );
        assert_eq!(
            out["_meta"]["extra"]["b"][""]["rem"],
            json!([rem_b]),
            "{rule}"
        );
    }
}

#[test]
fn common_rules_include_bearer() {
    let event = json!({"extra": {"a": "Bearer abc123def", "auth": "Bearer abcdef1234"}});
    let out = scrub_with(pii(json!({"$string": ["@common:filter"]})), event.clone());
    assert_eq!(
        out["extra"],
        json!({"a": "[Filtered]", "auth": "[Filtered]"})
    );
    assert_eq!(
        out["_meta"]["extra"]["a"][""]["rem"],
        json!([["@bearer:filter", "s", 0, 10]])
    );
    // `@bearer` comes before `@password` (rules apply by id): the token is replaced, then
    // the `auth` key removes the value.
    let out = scrub_with(pii(json!({"$string": ["@common"]})), event);
    assert_eq!(out["extra"]["a"], "Bearer [token]");
    assert_eq!(out["extra"]["auth"], Value::Null);
    assert_eq!(
        out["_meta"]["extra"]["auth"][""]["rem"],
        json!([["@bearer", "s", 0, 14], ["@password", "x"]])
    );
}

#[test]
fn a_scrubbed_bearer_token_is_not_scrubbed_again() {
    let out = scrub_with(
        pii(json!({"$string": ["@bearer"]})),
        json!({"extra": {"a": "Bearer [token]"}}),
    );
    assert_eq!(out["extra"]["a"], "Bearer [token]");
    assert_eq!(out["_meta"], Value::Null);
}

/// Applications run in the order of Relay's `BTreeMap<SelectorSpec, _>`: `&&`, `||`, `!`,
/// then paths by their parts, with `$type` items (in Relay's order of value types) before
/// keys. Where two applications change the same value, the first one wins.
#[test]
fn applications_apply_in_relays_selector_order() {
    let event = json!({
        "exception": {"values": [{"type": "E", "stacktrace": {"frames": [
            {"function": "f", "vars": {"a": "id 550e8400-e29b-41d4-a716-446655440000 x"}}
        ]}}]},
        "extra": {"K": "mail a@b.com"}
    });
    let frame_var =
        |out: &Value| out["exception"]["values"][0]["stacktrace"]["frames"][0]["vars"]["a"].clone();
    // `$string` sorts before `$frame.vars.**` (the text order is the other way round).
    for apps in [
        json!({"$string": ["@uuid"], "$frame.vars.**": ["@uuid:remove"]}),
        json!({"$frame.vars.**": ["@uuid:remove"], "$string": ["@uuid"]}),
    ] {
        let out = scrub_with(pii(apps), event.clone());
        assert_eq!(frame_var(&out), "id ************************************ x");
    }
    // A type before a key.
    let out = scrub_with(
        pii(json!({"extra.K": ["@email:hash"], "$string": ["@email"]})),
        event.clone(),
    );
    assert_eq!(out["extra"]["K"], "mail [email]");
    // Keys by their text as written: `K` before `k`. Both apply (they are two selectors).
    let out = scrub_with(
        pii(json!({"extra.k": ["@email:hash"], "extra.K": ["@email:remove"]})),
        event.clone(),
    );
    assert_eq!(out["extra"]["K"], "mail ");
    assert_eq!(
        out["_meta"]["extra"]["K"][""]["rem"],
        json!([["@email:remove", "x", 5, 5]])
    );
    // `&&` before `||` before `!` before a path.
    let out = scrub_with(
        pii(
            json!({"!extra.K": ["@email:hash"], "extra.K || $string": ["@email:mask"], "$string && extra.*": ["@email:remove"]}),
        ),
        event.clone(),
    );
    assert_eq!(out["extra"]["K"], "mail ");
}

/// Two selectors that parse the same are one key of Relay's map: the later one in the
/// config replaces the earlier, and the config check says so.
#[test]
fn a_later_selector_that_parses_the_same_replaces_the_earlier() {
    let event = json!({"extra": {"K": "mail a@b.com"}});
    let out = scrub_with(
        pii(json!({"freeform": ["@email:hash"], "$string": ["@email:remove"]})),
        event.clone(),
    );
    assert_eq!(out["extra"]["K"], "mail ");
    let out = scrub_with(
        pii(json!({"$string": ["@email:remove"], "freeform": ["@email:hash"]})),
        event,
    );
    assert_eq!(
        out["extra"]["K"],
        "mail 61B3201A382D592BE35539FDC89B1D3DD75CE6E1"
    );
    let project = ProjectConfig::from_config_value(pii(
        json!({"$string": ["@email:remove"], "freeform": ["@email:hash"]}),
    ))
    .unwrap();
    let warnings = format!("{:?}", project.warnings);
    assert!(
        warnings.contains("$string") && warnings.contains("replaces it"),
        "{warnings}"
    );
}
