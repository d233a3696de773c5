use super::escape::next_special_byte;
use super::*;
use crate::scrub::schema;
use crate::scrub::ScrubError;

fn roundtrip(s: &str) -> String {
    let bump = Bump::new();
    let v = parse(s, &bump, 64).unwrap();
    let mut out = Vec::new();
    write(&mut out, &v);
    String::from_utf8(out).unwrap()
}

#[test]
fn keeps_numbers_and_order() {
    assert_eq!(
        roundtrip(r#"{"z":1.50,"a":[1e3,-0,2E-7],"m":{"b":null,"a":true}}"#),
        r#"{"z":1.50,"a":[1e3,-0,2E-7],"m":{"b":null,"a":true}}"#
    );
}

#[test]
fn keeps_escapes_raw() {
    let s = r#"{"k\u00e9y":"line\nbreak \"q\" \ud83d\ude00"}"#;
    assert_eq!(roundtrip(s), s);
    let bump = Bump::new();
    let v = parse(s, &bump, 8).unwrap();
    let (k, val) = &v.as_object().unwrap()[0];
    assert_eq!(k.decoded(), "kéy");
    assert_eq!(val.as_str().unwrap(), "line\nbreak \"q\" 😀");
}

proptest::proptest! {
    /// Any string is escaped exactly as serde_json escapes it.
    #[test]
    fn escaping_matches_serde_json(text in "[\\x00-\\x7f\u{80}-\u{10ffff}]{0,40}") {
        let mut ours = Vec::new();
        write_escaped(&mut ours, &text);
        proptest::prop_assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_json::to_string(&text).unwrap()
        );
    }
}

/// A JSON document built from generated parts (numbers as text, so that `1.50` and
/// `1e3` come through as written).
fn json_doc() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        "-?(0|[1-9][0-9]{0,3})(\\.[0-9]{1,2})?([eE][+-]?[0-9])?",
        "[a-z\"\\\\\n\u{e9}]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec(("[a-z\"]{0,4}", inner), 0..6).prop_map(|entries| {
                let body: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

/// Changes a parsed tree the way a walk may: values replaced, nulled, deleted or
/// swapped with a neighbour, keys renamed. `choices` drives the decisions.
fn mutate(v: &mut Value<'_>, choices: &mut impl Iterator<Item = u8>) {
    match v {
        Value::Array(items) => {
            let mut i = 0;
            while i < items.len() {
                match choices.next().unwrap_or(9) % 10 {
                    0 => items[i] = Value::text("new \"value\""),
                    1 => items[i] = Value::Null,
                    2 => {
                        remove(items, i);
                        continue;
                    }
                    3 if i + 1 < items.len() => items.swap(i, i + 1),
                    _ => mutate(&mut items[i], choices),
                }
                i += 1;
            }
        }
        Value::Object(entries) => {
            let mut i = 0;
            while i < entries.len() {
                match choices.next().unwrap_or(9) % 10 {
                    0 => entries[i].1 = Value::text("[Filtered]"),
                    1 => entries[i].1 = Value::Bool(true),
                    2 => {
                        remove(entries, i);
                        continue;
                    }
                    3 if i + 1 < entries.len() => entries.swap(i, i + 1),
                    4 => entries[i].0 = Str::Decoded("id"),
                    _ => mutate(&mut entries[i].1, choices),
                }
                i += 1;
            }
        }
        _ => {}
    }
}

proptest::proptest! {
    /// Copying untouched runs from the source writes exactly what the plain writer
    /// writes, for compact and spaced-out input, whatever the walk changed.
    #[test]
    fn span_copy_writes_what_write_writes(
        doc in json_doc(),
        spaced in proptest::bool::ANY,
        choices in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
    ) {
        let text = if spaced {
            let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            doc
        };
        let bump = Bump::new();
        let mut tree = parse(&text, &bump, 64).unwrap();
        mutate(&mut tree, &mut choices.into_iter());
        let (mut plain, mut copied) = (Vec::new(), Vec::new());
        write(&mut plain, &tree);
        write_from(&mut copied, &tree, &text);
        proptest::prop_assert_eq!(
            String::from_utf8(copied).unwrap(),
            String::from_utf8(plain).unwrap()
        );
    }
}

#[test]
fn span_copy_skips_changed_and_moved_leaves() {
    let text = r#"{"a":"x","b":1,"c":[1,2,3],"d":{"e":null,"f":"y"}}"#;
    let bump = Bump::new();
    let mut tree = parse(text, &bump, 8).unwrap();
    let written = |tree: &Value<'_>| {
        let mut out = Vec::new();
        write_from(&mut out, tree, text);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(written(&tree), text);
    let entries = tree.as_object_mut().unwrap();
    entries[0].1 = Value::text("[Filtered]");
    remove(entries, 1);
    if let Value::Array(items) = &mut entries[1].1 {
        items.swap(0, 2);
    }
    assert_eq!(
        written(&tree),
        r#"{"a":"[Filtered]","c":[3,2,1],"d":{"e":null,"f":"y"}}"#
    );
    // A leaf of another buffer with the same bytes is written, not taken for the
    // source's.
    let other = text.to_string();
    let bump = Bump::new();
    let copy = parse(&other, &bump, 8).unwrap();
    let mut out = Vec::new();
    write_from(&mut out, &copy, text);
    assert_eq!(String::from_utf8(out).unwrap(), text);
}

#[test]
fn event_keys_carry_their_schema_node_for_their_parent_only() {
    let schema = schema::event_schema();
    let text = r#"{"user":{"email":"a@b.c"},"extra":{"email":"x"}}"#;
    let bump = Bump::new();
    let tree = parse_event(text, &bump, 16).unwrap();
    let user_node = schema.top_level_child("user", true);
    let user = tree.get("user").unwrap().as_object().unwrap();
    assert_eq!(
        user[0].0.hinted_child(user_node),
        Some(schema.key_child(user_node, "email"))
    );
    // Another parent gets no hint: the walker resolves the key itself.
    let extra_node = schema.top_level_child("extra", true);
    assert_eq!(user[0].0.hinted_child(extra_node), None);
    // Top-level keys are resolved by the walker's own rules, never hinted.
    let (top_key, _) = &tree.as_object().unwrap()[0];
    assert_eq!(top_key.hinted_child(schema::ROOT), None);
    // A hint is not part of the string.
    assert_eq!(
        user[0].0,
        parse(text, &Bump::new(), 16).unwrap().as_object().unwrap()[0]
            .1
            .as_object()
            .unwrap()[0]
            .0
    );
}

#[test]
fn escapes_owned_strings() {
    let mut out = Vec::new();
    write_escaped(&mut out, "a\"b\\c\n\u{1}é\u{8}\u{c}");
    assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\n\u0001é\b\f""#);
    // The same escapes as serde_json, so rewritten values match Relay's output.
    let tricky = "q\"\\/\u{0}\u{1f}\u{7f}\u{2028}\t\r";
    let mut ours = Vec::new();
    write_escaped(&mut ours, tricky);
    assert_eq!(
        String::from_utf8(ours).unwrap(),
        serde_json::to_string(tricky).unwrap()
    );
}

#[test]
fn rejects_malformed() {
    for bad in [
        "",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "[1,]",
        "{\"a\":1,}",
        "01",
        "1.",
        "-",
        "tru",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "{} {}",
        "\"a\u{1}\"",
        "{'a':1}",
    ] {
        assert!(parse(bad, &Bump::new(), 8).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn numbers_a_double_cannot_hold_are_refused_as_serde_json_refuses_them() {
    let huge_integer = "9".repeat(400);
    for bad in [
        "1e999",
        "-1.5E+400",
        "1796457881.34E04868",
        huge_integer.as_str(),
    ] {
        assert!(
            serde_json::from_str::<serde_json::Value>(bad).is_err(),
            "serde_json reads {bad}"
        );
        assert!(parse(bad, &Bump::new(), 8).is_err(), "accepted {bad:?}");
        let in_raw_subtree = format!(r#"{{"modules":{{"a":{bad}}}}}"#);
        assert!(parse_event(&in_raw_subtree, &Bump::new(), 8).is_err());
    }
    let long_integer = "9".repeat(300);
    for good in [
        "1e308",
        "1e-999",
        "-0.0e0",
        "123456789012345678901234567890",
        &long_integer,
    ] {
        assert_eq!(roundtrip(good), good);
    }
}

#[test]
fn depth_limit() {
    let deep = "[".repeat(10) + &"]".repeat(10);
    assert!(parse(&deep, &Bump::new(), 10).is_ok());
    assert_eq!(
        parse(&deep, &Bump::new(), 9).unwrap_err(),
        ScrubError::TooDeep { limit: 9 }
    );
}

#[test]
fn event_parse_keeps_unscrubbable_subtrees_raw_but_validated() {
    let src = r#"{"modules":{"a": "1.0" , "b":[1,2]},"extra":{"k":"v"}}"#;
    let bump = Bump::new();
    let v = parse_event(src, &bump, 16).unwrap();
    assert_eq!(
        v.get("modules"),
        Some(&Value::Raw(r#"{"a": "1.0" , "b":[1,2]}"#))
    );
    assert!(matches!(v.get("extra"), Some(Value::Object(_))));
    let mut out = Vec::new();
    write(&mut out, &v);
    assert_eq!(String::from_utf8(out).unwrap(), src);
    // Raw subtrees are still validated and depth-limited.
    for bad in [
        r#"{"modules":{"a":}}"#,
        r#"{"modules":{"a":"x\q"}}"#,
        r#"{"modules":[1,]}"#,
    ] {
        assert!(
            parse_event(bad, &Bump::new(), 16).is_err(),
            "accepted {bad}"
        );
    }
    let deep = format!(r#"{{"modules":{}{}}}"#, "[".repeat(20), "]".repeat(20));
    assert_eq!(
        parse_event(&deep, &Bump::new(), 10).unwrap_err(),
        ScrubError::TooDeep { limit: 10 }
    );
}

#[test]
fn string_ends_and_control_bytes_are_found_wherever_they_are() {
    // Bytes next to the specials (0x21, 0x23, 0x5b, 0x5d, 0x20, 0x7f, 0x80+) must never
    // be mistaken for them, even right after one (the SWAR borrows).
    let filler = b"!#[] \x7fa~Z0\x80\xff\x01";
    for len in 0..40 {
        let clean: Vec<u8> = (0..len)
            .map(|i| filler[i % filler.len()])
            .filter(|&b| b >= 0x20)
            .collect();
        assert_eq!(next_special_byte(&clean), None, "{clean:?}");
        for at in 0..clean.len() {
            for special in [b'"', b'\\', 0u8, 0x09, 0x1f] {
                let mut bad = clean.clone();
                bad[at] = special;
                assert_eq!(next_special_byte(&bad), Some(at), "{bad:?}");
                // A later special never hides an earlier one.
                if at + 1 < bad.len() {
                    bad[at + 1] = b'"';
                    assert_eq!(next_special_byte(&bad), Some(at), "{bad:?}");
                }
            }
        }
    }
}

#[test]
fn lone_surrogate_decodes_to_replacement() {
    assert_eq!(unescape(r"a\ud800b"), "a\u{FFFD}b");
}

#[test]
fn arena_slice_edits_behave_like_vec_edits() {
    let bump = Bump::new();
    let mut slot: &mut [u32] = bump.alloc_slice_copy(&[1, 2, 3]);
    let mut model = vec![1, 2, 3];
    push(&mut slot, &bump, 4);
    model.push(4);
    assert_eq!(slot, model.as_slice());
    insert(&mut slot, &bump, 0, 0);
    model.insert(0, 0);
    insert(&mut slot, &bump, 3, 9);
    model.insert(3, 9);
    assert_eq!(slot, model.as_slice());
    assert_eq!(remove(&mut slot, 3), model.remove(3));
    assert_eq!(remove(&mut slot, 0), model.remove(0));
    let last = slot.len() - 1;
    assert_eq!(remove(&mut slot, last), model.pop().unwrap());
    assert_eq!(slot, model.as_slice());
    extend(&mut slot, &bump, [7, 8]);
    model.extend([7, 8]);
    assert_eq!(slot, model.as_slice());
    retain(&mut slot, |x| x % 2 == 1);
    model.retain(|x| x % 2 == 1);
    assert_eq!(slot, model.as_slice());
    let mut empty: &mut [u32] = &mut [];
    push(&mut empty, &bump, 5);
    assert_eq!(empty, &[5]);
}

#[test]
fn parsed_containers_hold_their_children_in_order() {
    let bump = Bump::new();
    let v = parse(r#"{"a":[1,"x",{"b":null}],"c":{},"d":[]}"#, &bump, 8).unwrap();
    let entries = v.as_object().unwrap();
    assert_eq!(entries.len(), 3);
    let Value::Array(items) = &entries[0].1 else {
        panic!("not an array")
    };
    assert_eq!(items[0], Value::Number("1"));
    assert_eq!(items[1].as_str().as_deref(), Some("x"));
    assert_eq!(items[2].get("b"), Some(&Value::Null));
    assert_eq!(entries[1].1, Value::empty_object());
    assert_eq!(entries[2].1, Value::Array(&mut []));
    // A value is three words, an entry six: the tree is read by four passes.
    assert_eq!(std::mem::size_of::<Value<'_>>(), 24);
    assert_eq!(std::mem::size_of::<Entry<'_>>(), 48);
}
