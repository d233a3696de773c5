//! Envelope items other than events.
//!
//! - User reports, sessions and the envelope header: their personal fields get the
//!   treatment the project's rules give the matching event fields, by scrubbing a small
//!   synthetic event.
//! - Spans, logs and trace metrics: each record is walked with its own schema (`$span`,
//!   `$log`, `$trace_metric`; attribute values by Sentry's semantic conventions) and gets
//!   its own `_meta`. The user fields the SDKs copy into attributes (`user.email`, ...)
//!   are first given the treatment of the matching `$user` fields.
//! - Profiles and OTLP items: walked with their own schemas.

use super::json::{self, Bump, Str, Value};
use super::meta::{MetaLog, MetaSeg};
use super::schema::{self, Schema};
use super::{CompiledRules, ScrubOptions, ScrubReport};

fn take<'a>(obj: &mut Value<'a>, key: &str) -> Option<Value<'a>> {
    let entries = obj.as_object_mut()?;
    // A key given twice: the last value counts, as serde (and so Relay) reads JSON, and
    // the earlier ones are dropped, so that none of them leaves unscrubbed.
    loop {
        let first = entries.iter().position(|(k, _)| k.eq_str(key))?;
        let last = entries.iter().rposition(|(k, _)| k.eq_str(key))?;
        if first == last {
            return Some(std::mem::replace(&mut entries[first].1, Value::Null));
        }
        json::remove(entries, first);
    }
}

fn put_back<'a>(obj: &mut Value<'a>, key: &str, value: Option<Value<'a>>) {
    let Some(entries) = obj.as_object_mut() else {
        return;
    };
    if let Some(i) = entries.iter().position(|(k, _)| k.eq_str(key)) {
        match value {
            Some(v) => entries[i].1 = v,
            None => {
                json::remove(entries, i);
            }
        }
    }
}

fn obj<'a>(bump: &'a Bump, fields: Vec<(&str, Value<'a>)>) -> Value<'a> {
    Value::object_in(
        bump,
        fields
            .into_iter()
            .map(|(k, v)| (Str::Decoded(bump.alloc_str(k)), v)),
    )
}

fn auto_ip<'a>(v: Value<'a>, bump: &'a Bump, opts: &ScrubOptions) -> Value<'a> {
    match (&v, opts.client_ip) {
        (Value::Str(s), Some(ip)) if s.eq_str("{{auto}}") => {
            Value::string_in(bump, &ip.to_string())
        }
        _ => v,
    }
}

/// Scrubs `pairs` (item field → user field) as `user.<field>` of a synthetic event and
/// writes the results back. A field deleted by a rule is removed from the item.
fn scrub_as_user<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    item: &mut Value<'a>,
    pairs: &[(&str, &str)],
    extra_top: Option<(&str, &str)>,
    opts: Option<&ScrubOptions>,
) -> ScrubReport {
    scrub_as_user_with_meta(rules, bump, item, pairs, extra_top, opts).0
}

/// [`scrub_as_user`], with the `_meta` entries of the synthetic event (paths from its
/// root: `user.<field>`, or the extra top-level key).
fn scrub_as_user_with_meta<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    item: &mut Value<'a>,
    pairs: &[(&str, &str)],
    extra_top: Option<(&str, &str)>,
    opts: Option<&ScrubOptions>,
) -> (ScrubReport, MetaLog<'a>) {
    let mut user = Vec::new();
    let mut taken = Vec::new();
    for (item_key, user_key) in pairs {
        if let Some(v) = take(item, item_key) {
            let v = match (opts, *user_key) {
                (Some(o), "ip_address") => auto_ip(v, bump, o),
                _ => v,
            };
            user.push((*user_key, v));
            taken.push((*item_key, *user_key));
        }
    }
    let mut top = vec![("user", obj(bump, user))];
    let mut top_taken = None;
    if let Some((item_key, event_key)) = extra_top {
        if let Some(v) = take(item, item_key) {
            top.push((event_key, v));
            top_taken = Some((item_key, event_key));
        }
    }
    let mut event = obj(bump, top);
    let (report, meta) = rules.walk_synthetic_with_meta(bump, &mut event);
    let mut user = take(&mut event, "user").unwrap_or(Value::Null);
    for (item_key, user_key) in taken {
        let v = take(&mut user, user_key).filter(|v| !matches!(v, Value::Null));
        put_back(item, item_key, v);
    }
    if let Some((item_key, event_key)) = top_taken {
        let v = take(&mut event, event_key).filter(|v| !matches!(v, Value::Null));
        put_back(item, item_key, v);
    }
    (report, meta)
}

/// `user_report`: `email`, `name` as the user's; `comments` as free text.
pub fn scrub_user_report<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    item: &mut Value<'a>,
) -> ScrubReport {
    scrub_as_user(
        rules,
        bump,
        item,
        &[("email", "email"), ("name", "name")],
        Some(("comments", "comments")),
        None,
    )
}

/// `session`: `did` as `user.id`, `attrs.ip_address` as `user.ip_address`.
pub fn scrub_session<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    item: &mut Value<'a>,
    opts: &ScrubOptions,
) -> ScrubReport {
    let mut report = scrub_as_user(rules, bump, item, &[("did", "id")], None, Some(opts));
    scrub_attrs_ip(rules, bump, item, opts, &mut report);
    report
}

/// `sessions`: each aggregate's `did`, and `attrs.ip_address`.
pub fn scrub_sessions<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    item: &mut Value<'a>,
    opts: &ScrubOptions,
) -> ScrubReport {
    let mut report = ScrubReport::default();
    if let Some(Value::Array(aggs)) = item.get_mut("aggregates") {
        for agg in aggs.iter_mut() {
            let r = scrub_as_user(rules, bump, agg, &[("did", "id")], None, Some(opts));
            report.changes.extend(r.changes);
        }
    }
    scrub_attrs_ip(rules, bump, item, opts, &mut report);
    report
}

/// A session's `attrs.ip_address` as `user.ip_address` (with `{{auto}}` resolved).
fn scrub_attrs_ip<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    item: &mut Value<'a>,
    opts: &ScrubOptions,
    report: &mut ScrubReport,
) {
    if let Some(attrs) = item.get_mut("attrs") {
        let ip = [("ip_address", "ip_address")];
        let r = scrub_as_user(rules, bump, attrs, &ip, None, Some(opts));
        report.changes.extend(r.changes);
    }
}

/// Envelope header: `trace.user_id` (and `trace.user.id`) as `user.id`,
/// `trace.user_segment` as `user.segment` and `trace.transaction` as the event's
/// `transaction`.
pub fn scrub_envelope_header<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    header: &mut Value<'a>,
) -> ScrubReport {
    let mut report = ScrubReport::default();
    if let Some(trace) = header.get_mut("trace") {
        let r = scrub_as_user(
            rules,
            bump,
            trace,
            &[("user_id", "id"), ("user_segment", "segment")],
            Some(("transaction", "transaction")),
            None,
        );
        report.changes.extend(r.changes);
        if let Some(user) = trace.get_mut("user") {
            let r = scrub_as_user(rules, bump, user, &[("id", "id")], None, None);
            report.changes.extend(r.changes);
        }
    }
    report
}

/// GraphQL: with `scrubData`, every variable becomes `[Filtered]`, and the response
/// data's fields of the same names too (or the whole response data when there were no
/// variables).
pub fn scrub_graphql(root: &mut Value<'_>) {
    let mut keys: Vec<String> = Vec::new();
    let Some(request) = root.get_mut("request") else {
        return;
    };
    let is_graphql = request
        .get("api_target")
        .and_then(|v| v.as_str())
        .is_some_and(|t| t.eq_ignore_ascii_case("graphql"));
    if !is_graphql {
        return;
    }
    if let Some(Value::Object(vars)) = request.get_mut("data").and_then(|d| d.get_mut("variables"))
    {
        for (k, v) in vars.iter_mut() {
            keys.push(k.decoded().into_owned());
            *v = Value::text("[Filtered]");
        }
    }
    let Some(data) = root
        .get_mut("contexts")
        .and_then(|c| c.get_mut("response"))
        .and_then(|r| r.get_mut("data"))
    else {
        return;
    };
    if keys.is_empty() {
        if let Some(entries) = data.as_object_mut() {
            json::retain(entries, |(k, _)| !k.eq_str("data"));
        }
        return;
    }
    if let Some(inner) = data.get_mut("data") {
        filter_keys(inner, &keys);
    }
}

fn filter_keys(v: &mut Value<'_>, keys: &[String]) {
    if let Value::Object(entries) = v {
        for (k, child) in entries.iter_mut() {
            if matches!(child, Value::Object(_)) {
                filter_keys(child, keys);
            } else if keys.iter().any(|key| k.eq_str(key)) {
                *child = Value::text("[Filtered]");
            }
        }
    }
}

/// An attachment's item header: its `filename` as a free-text string.
pub fn scrub_attachment_header<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    header: &mut Value<'a>,
) -> ScrubReport {
    scrub_as_user(rules, bump, header, &[], Some(("filename", "extra")), None)
}

/// The attributes SDKs fill from the scope's user, and the `$user` field each one is.
const USER_ATTRIBUTES: [(&str, &str); 10] = [
    ("user.id", "id"),
    ("sentry.user.id", "id"),
    ("user.email", "email"),
    ("sentry.user.email", "email"),
    ("user.name", "username"),
    ("user.username", "username"),
    ("sentry.user.username", "username"),
    ("user.full_name", "name"),
    ("user.ip_address", "ip_address"),
    ("sentry.user.ip", "ip_address"),
];

/// A span item: a v2 container (`{"items": [...]}`), whose spans are walked as `$span`
/// records, or one legacy JSON span, walked as an event's `spans[]` element.
pub fn scrub_spans<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    root: &mut Value<'a>,
    opts: &ScrubOptions,
) -> ScrubReport {
    let schemas = rules.schemas();
    if root.get("items").is_some() {
        return scrub_records(rules, bump, root, &schemas.span, opts);
    }
    let mut report = scrub_user_attributes(rules, bump, root, "data", opts);
    walk_with_meta(
        rules,
        bump,
        root,
        &schemas.event,
        schemas.span_in_event,
        opts,
        &mut report,
    );
    report
}

/// A container (`{"items": [...]}`): every record scrubbed with `schema`. The container's
/// other keys (`version`, ...) are left as they are.
pub fn scrub_records<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    root: &mut Value<'a>,
    schema: &'static Schema,
    opts: &ScrubOptions,
) -> ScrubReport {
    let mut report = ScrubReport::default();
    if let Some(Value::Array(records)) = root.get_mut("items") {
        for record in records.iter_mut() {
            let r = scrub_record(rules, bump, record, schema, opts);
            report.changes.extend(r.changes);
        }
    }
    report
}

/// One record walked with `schema`; its `_meta` is written into it.
pub fn scrub_record<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    record: &mut Value<'a>,
    schema: &'static Schema,
    opts: &ScrubOptions,
) -> ScrubReport {
    if !matches!(record, Value::Object(_)) || rules.is_empty() {
        return ScrubReport::default();
    }
    let mut report = scrub_user_attributes(rules, bump, record, "attributes", opts);
    walk_with_meta(rules, bump, record, schema, schema::ROOT, opts, &mut report);
    report
}

/// A view hierarchy (an attachment's JSON tree of the screen): every string is
/// reachable, as Relay scrubs it, and no `_meta` is written into the file.
pub fn scrub_view_hierarchy<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    root: &mut Value<'a>,
    opts: &ScrubOptions,
) -> ScrubReport {
    if rules.is_empty() {
        return ScrubReport::default();
    }
    let mut walker = rules.record_walker(bump, &rules.schemas().otel, opts);
    walker.walk_record(root, schema::ROOT);
    walker.return_thread_memo(rules.id);
    walker.report
}

/// Walks `record` from `node` of `schema`, writes its `_meta` into it and adds the
/// changes to `report`.
fn walk_with_meta<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    record: &mut Value<'a>,
    schema: &'static Schema,
    node: schema::NodeId,
    opts: &ScrubOptions,
    report: &mut ScrubReport,
) {
    // A record's own `_meta` (as a scrubbed record carries it) is metadata, not data:
    // it is set aside while the record is walked, and the new entries merge into it.
    let incoming_meta = record.get_mut("_meta").map(std::mem::take);
    let mut walker = rules.record_walker(bump, schema, opts);
    walker.walk_record(record, node);
    walker.return_thread_memo(rules.id);
    if let (Some(meta), Some(slot)) = (incoming_meta, record.get_mut("_meta")) {
        *slot = meta;
    }
    let super::processor::Walker {
        meta, report: r, ..
    } = walker;
    meta.merge_into(record, bump);
    report.changes.extend(r.changes);
}

/// The user fields SDKs copy into a record's attributes (`{"user.email": {"value": ..}}`,
/// or plain values in a legacy span's `data`) scrubbed as the matching `$user` fields.
fn scrub_user_attributes<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    record: &mut Value<'a>,
    map: &str,
    opts: &ScrubOptions,
) -> ScrubReport {
    let mut report = ScrubReport::default();
    let Some(attributes) = record.get_mut(map) else {
        return report;
    };
    let Some(entries) = attributes.as_object_mut() else {
        return report;
    };
    // The remarks of every changed attribute, with the path it has in the record.
    let mut remarks = MetaLog::default();
    for (key, attribute) in entries.iter_mut() {
        let Some(&(_, user_key)) = USER_ATTRIBUTES.iter().find(|(name, _)| key.eq_str(name)) else {
            continue;
        };
        let key: &'a str = bump.alloc_str(&key.decoded());
        let (r, meta) = if matches!(attribute, Value::Object(_)) {
            let (r, mut meta) = scrub_as_user_with_meta(
                rules,
                bump,
                attribute,
                &[("value", user_key)],
                None,
                Some(opts),
            );
            meta.rename(
                &[MetaSeg::Key("user".into()), MetaSeg::Key(user_key.into())],
                &[
                    MetaSeg::Key(map.to_string().into()),
                    MetaSeg::Key(key.into()),
                    MetaSeg::Key("value".into()),
                ],
            );
            (r, meta)
        } else {
            let mut holder = obj(
                bump,
                vec![("value", std::mem::replace(attribute, Value::Null))],
            );
            let (r, mut meta) = scrub_as_user_with_meta(
                rules,
                bump,
                &mut holder,
                &[("value", user_key)],
                None,
                Some(opts),
            );
            meta.rename(
                &[MetaSeg::Key("user".into()), MetaSeg::Key(user_key.into())],
                &[
                    MetaSeg::Key(map.to_string().into()),
                    MetaSeg::Key(key.into()),
                ],
            );
            *attribute = take(&mut holder, "value").unwrap_or(Value::Null);
            (r, meta)
        };
        report.changes.extend(r.changes);
        let mut meta = meta;
        for (path, entry) in meta.split_off(0) {
            *remarks.entry(path) = entry;
        }
    }
    remarks.merge_into(record, bump);
    report
}

/// A replay recording's rrweb events, as Relay's recording scrubber treats them: the text
/// of DOM text nodes (`textContent`, mutation `texts[].value`), attribute values (DOM
/// nodes' `attributes`, mutation `attributes[].attributes`), and the `payload` of Sentry's
/// custom events (type 5: breadcrumbs and spans) are scrubbed as pii `true` strings.
/// Structure, ids, timestamps and tags are left as they are. No `_meta` is written
/// (rrweb has no place for it); changes are reported.
pub fn scrub_recording<'a>(
    rules: &CompiledRules,
    bump: &'a Bump,
    root: &mut Value<'a>,
    opts: &ScrubOptions,
) -> ScrubReport {
    if rules.is_empty() {
        return ScrubReport::default();
    }
    let mut walker = rules.record_walker(bump, &rules.schemas().otel, opts);
    if let Value::Array(events) = root {
        for event in events.iter_mut() {
            let custom = matches!(event.get("type"), Some(Value::Number(n)) if *n == "5");
            if custom {
                if let Some(payload) = event.get_mut("data").and_then(|d| d.get_mut("payload")) {
                    // Every string of a custom event's payload is pii `true`.
                    walker.walk_text("payload", payload);
                }
            } else {
                scrub_dom(&mut walker, event, 0);
            }
        }
    }
    walker.return_thread_memo(rules.id);
    walker.report
}

/// Deepest DOM nesting followed (the parser's depth limit holds anyway).
const MAX_DOM_DEPTH: usize = 256;

/// Finds the text and attribute values in an rrweb snapshot or mutation, at any depth.
fn scrub_dom<'a>(
    walker: &mut super::processor::Walker<'_, 'a>,
    value: &mut Value<'a>,
    depth: usize,
) {
    if depth > MAX_DOM_DEPTH {
        return;
    }
    match value {
        Value::Object(entries) => {
            for (key, child) in entries.iter_mut() {
                // Text nodes' `textContent`, mutations' `texts[].value` and input values.
                let text = key.eq_str("textContent") || key.eq_str("text") || key.eq_str("value");
                if text && matches!(child, Value::Str(_)) {
                    walker.walk_text("textContent", child);
                } else if key.eq_str("attributes") {
                    match child {
                        // A DOM node's attributes: name -> value.
                        Value::Object(attributes) => {
                            for (_, attribute) in attributes.iter_mut() {
                                if matches!(attribute, Value::Str(_)) {
                                    walker.walk_text("attributes", attribute);
                                }
                            }
                        }
                        // A mutation's list of attribute changes.
                        _ => scrub_dom(walker, child, depth + 1),
                    }
                } else {
                    scrub_dom(walker, child, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                scrub_dom(walker, item, depth + 1);
            }
        }
        _ => {}
    }
}
