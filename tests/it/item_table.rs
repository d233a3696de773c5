//! The README's item table as one test: one envelope with a planted canary in every item
//! type and attachment kind the table lists, sent under `coverage` `relay` and `all`,
//! with `forwardUnknownItems` and `attachments` in each combination. Each row asserts
//! the documented outcome: scrubbed (arrives without the canary), forwarded as sent
//! (arrives byte for byte), or dropped (absent upstream, counted as `dropped_item`).
//! When the README's table changes, this table is where it shows.

use serde_json::{json, Value};

use crate::support::*;

/// What the README says happens to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Arrives, the canary gone.
    Scrubbed,
    /// Arrives byte for byte (the canary is still there: nothing of it is scrubbed).
    AsSent,
    /// Not forwarded; counted as dropped. With `forwardUnknownItems`, arrives as sent.
    DroppedUnlessForwarded,
    /// A text attachment (or a minidump: no rule of this project names `$binary` or
    /// `$minidump`): as sent under `coverage = "relay"` (only `$attachments`/`$binary`
    /// rules reach attachments, as in Relay), scrubbed under `"all"`; dropped under
    /// `attachments = "drop"`.
    TextAttachment,
    /// A view hierarchy: scrubbed (every string, as Relay); dropped under "drop".
    ScrubbedAttachment,
    /// An image: as sent under "forward", dropped under "scrubbed_only" and "drop".
    BinaryAttachment,
    /// sentry-native's msgpack event data: merged into the envelope's event (never an
    /// item of its own upstream, never dropped).
    MergedIntoEvent,
}

/// One row: the item header, its payload, the outcome, and the metric label.
struct Row {
    header: Value,
    payload: Vec<u8>,
    outcome: Outcome,
    label: String,
}

fn row(header: Value, payload: Value, outcome: Outcome, label: &str) -> Row {
    Row {
        header,
        payload: serde_json::to_vec(&payload).unwrap(),
        outcome,
        label: label.to_string(),
    }
}

/// Every row of the README's item table, each with the canary email planted where
/// the table says rules reach (or anywhere, for items forwarded or dropped unread).
fn rows() -> Vec<Row> {
    let mail = CANARY_EMAIL;
    let text = format!("contact {mail}");
    let record = |extra: Value| {
        let mut r = json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
                           "timestamp": 1795912872.1, "attributes": {"user.email": {"type": "string", "value": mail}}});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let event = json!({"message": text, "user": {"email": mail}});
    let mut rows = vec![
        row(
            json!({"type": "event"}),
            event.clone(),
            Outcome::Scrubbed,
            "event",
        ),
        row(
            json!({"type": "transaction"}),
            json!({"type": "transaction", "transaction": "/checkout", "user": {"email": mail},
            "start_timestamp": 1795912871.0, "timestamp": 1795912872.0, "contexts": {"trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}}}),
            Outcome::Scrubbed,
            "transaction",
        ),
        row(
            json!({"type": "security"}),
            json!({"csp": {"document-uri": "https://shop.example/", "effective-directive": "script-src"}, "user": {"email": mail}}),
            Outcome::Scrubbed,
            "security",
        ),
        row(
            json!({"type": "raw_security"}),
            json!({"csp-report": {"document-uri": "https://shop.example/"}, "user": {"email": mail}}),
            Outcome::Scrubbed,
            "raw_security",
        ),
        row(
            json!({"type": "feedback"}),
            json!({"contexts": {"feedback": {"message": "hi"}}, "user": {"email": mail}}),
            Outcome::Scrubbed,
            "feedback",
        ),
        row(
            json!({"type": "replay_event"}),
            json!({"replay_id": "d2132d31b39445f1938d7e21b6bf0ec4", "user": {"email": mail}}),
            Outcome::Scrubbed,
            "replay_event",
        ),
        row(
            json!({"type": "span", "content_type": "application/vnd.sentry.items.span.v2+json", "item_count": 1}),
            json!({"items": [record(json!({"name": "GET", "is_segment": true}))]}),
            Outcome::Scrubbed,
            "span",
        ),
        row(
            json!({"type": "log", "content_type": "application/vnd.sentry.items.log+json", "item_count": 1}),
            json!({"items": [record(json!({"level": "info", "body": "ok"}))]}),
            Outcome::Scrubbed,
            "log",
        ),
        row(
            json!({"type": "trace_metric", "content_type": "application/vnd.sentry.items.trace-metric+json", "item_count": 1}),
            json!({"items": [record(json!({"name": "orders", "type": "counter", "value": 1}))]}),
            Outcome::Scrubbed,
            "trace_metric",
        ),
        row(
            json!({"type": "otel_log"}),
            json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": text}}]}]}]}),
            Outcome::Scrubbed,
            "otel_log",
        ),
        row(
            json!({"type": "profile"}),
            json!({"platform": "python", "transaction": {"name": text}, "device": {"model": "x"}}),
            Outcome::Scrubbed,
            "profile",
        ),
        row(
            json!({"type": "user_report"}),
            json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "email": mail, "name": "Jane", "comments": text}),
            Outcome::Scrubbed,
            "user_report",
        ),
        row(
            json!({"type": "session"}),
            json!({"sid": "7ee8f2a2c4f74c6e8c1f6c1e0c9b7a3d", "did": mail, "status": "ok", "attrs": {"release": "r@1"}}),
            Outcome::Scrubbed,
            "session",
        ),
        row(
            json!({"type": "sessions"}),
            json!({"aggregates": [{"started": "2026-12-06T10:00:00Z", "did": mail, "exited": 1}], "attrs": {"release": "r@1"}}),
            Outcome::Scrubbed,
            "sessions",
        ),
        // Validated and forwarded as sent: identifiers only (a slug may hold anything).
        row(
            json!({"type": "check_in"}),
            json!({"check_in_id": "83a7c03ed0a04e1b97e2e3b18d38f244", "monitor_slug": format!("nightly-{mail}"), "status": "ok"}),
            Outcome::AsSent,
            "check_in",
        ),
        row(
            json!({"type": "client_report"}),
            json!({"timestamp": 1795912872.1, "discarded_events": [{"reason": "sample_rate", "category": "error", "quantity": 1}]}),
            Outcome::AsSent,
            "client_report",
        ),
    ];
    // Attachments, by kind.
    let mut dump = b"MDMP\x93\xa7\x00\x00garbage ".to_vec();
    dump.extend_from_slice(format!("user {mail} ").as_bytes());
    dump.extend(
        format!("wide {mail}")
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    for (header, payload, outcome) in [
        (
            json!({"type": "attachment", "filename": "log.txt", "content_type": "text/plain"}),
            format!("log line for {mail}\n").into_bytes(),
            Outcome::TextAttachment,
        ),
        (
            json!({"type": "attachment", "filename": "crash.dmp", "attachment_type": "event.minidump"}),
            dump,
            Outcome::TextAttachment,
        ),
        (
            json!({"type": "attachment", "filename": "view-hierarchy.json",
                   "attachment_type": "event.view_hierarchy", "content_type": "application/json"}),
            serde_json::to_vec(&json!({"windows": [{"type": "UILabel", "text": mail}]})).unwrap(),
            Outcome::ScrubbedAttachment,
        ),
        (
            json!({"type": "attachment", "filename": "screenshot.png", "content_type": "image/png"}),
            [&b"\x89PNG\r\n\x1a\n"[..], mail.as_bytes()].concat(),
            Outcome::BinaryAttachment,
        ),
        (
            json!({"type": "attachment", "attachment_type": "event.payload", "filename": "__sentry-event"}),
            rmp_serde::to_vec_named(&json!({"extra": {"note": text}, "user": {"email": mail}}))
                .unwrap(),
            Outcome::MergedIntoEvent,
        ),
        (
            json!({"type": "attachment", "attachment_type": "event.breadcrumbs", "filename": "__sentry-breadcrumb1"}),
            rmp_serde::to_vec_named(&json!({"message": text, "timestamp": 1.0})).unwrap(),
            Outcome::MergedIntoEvent,
        ),
    ] {
        rows.push(Row {
            header,
            payload,
            outcome,
            label: "attachment".into(),
        });
    }
    for (ty, payload) in [
        (
            "replay_video",
            format!("\u{0093}\u{00a3}abc{mail}").into_bytes(),
        ),
        ("statsd", format!("orders:1|c|#email:{mail}").into_bytes()),
        (
            "metric_buckets",
            serde_json::to_vec(&json!([{"name": "c:orders", "tags": {"email": mail}}])).unwrap(),
        ),
        (
            "nel",
            serde_json::to_vec(&json!([{"body": {"url": format!("https://x/?e={mail}")}}]))
                .unwrap(),
        ),
        ("form_data", format!("email={mail}").into_bytes()),
        ("unreal_report", format!("unreal {mail}").into_bytes()),
        (
            "brand_new_type",
            format!("{{\"email\": \"{mail}\"}}").into_bytes(),
        ),
    ] {
        let label = if ty == "brand_new_type" { "other" } else { ty };
        rows.push(Row {
            header: json!({ "type": ty }),
            payload,
            outcome: Outcome::DroppedUnlessForwarded,
            label: label.into(),
        });
    }
    rows
}

/// What arrives of a row: `None` when it does not arrive as an item, else whether its
/// canary is still there (as sent) or gone (scrubbed).
fn expected(
    outcome: Outcome,
    coverage: &str,
    attachments: &str,
    forward_unknown: bool,
) -> Option<bool> {
    let attachment = matches!(
        outcome,
        Outcome::TextAttachment | Outcome::ScrubbedAttachment | Outcome::BinaryAttachment
    );
    match outcome {
        // A project that drops attachments drops every one of them.
        _ if attachment && attachments == "drop" => None,
        Outcome::Scrubbed | Outcome::ScrubbedAttachment => Some(false),
        Outcome::AsSent => Some(true),
        Outcome::DroppedUnlessForwarded => forward_unknown.then_some(true),
        Outcome::TextAttachment => Some(coverage == "relay"),
        Outcome::BinaryAttachment => (attachments == "forward").then_some(true),
        Outcome::MergedIntoEvent => None,
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_item_type_of_the_readme_table_has_its_documented_outcome() {
    let table = rows();
    assert!(table.len() >= 26, "{} rows", table.len());
    // Rows that carry no personal data by design, and so no canary: a client report
    // holds counts only.
    const NO_CANARY: [&str; 1] = ["client_report"];
    for row in &table {
        let exempt = NO_CANARY.iter().any(|t| row.header["type"] == *t);
        assert!(
            exempt || contains(&row.payload, CANARY_EMAIL),
            "{}: the row plants no canary",
            row.header
        );
    }
    let mut combinations = 0;
    for coverage in ["relay", "all"] {
        for forward_unknown in [false, true] {
            for attachments in ["forward", "scrubbed_only", "drop"] {
                combinations += 1;
                let upstream = RecordingUpstream::spawn().await;
                let project = project_json(
                    PROJECT,
                    true,
                    json!({"applications": {
                        "$string": ["@email"],
                        "$user.email || $user.id": ["@anything:hash"]
                    }}),
                    json!({"coverage": coverage, "forwardUnknownItems": forward_unknown, "attachments": attachments}),
                );
                let proxy = TestProxy::builder(&upstream)
                    .project(PROJECT, project)
                    .spawn()
                    .await;
                let items: Vec<(Value, Vec<u8>)> = table
                    .iter()
                    .map(|r| (r.header.clone(), r.payload.clone()))
                    .collect();
                let envelope = build_envelope(
                    &json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"}),
                    &items,
                );
                let response = proxy.envelope(envelope).await;
                let context = format!(
                    "coverage {coverage}, forwardUnknownItems {forward_unknown}, attachments {attachments}"
                );
                assert_eq!(response.status, 200, "{context}: {}", response.text());
                let recorded = upstream.wait_for(1).await;
                let (_, arrived) = parse_envelope(&recorded[0].body);
                let metrics = proxy.scrape_metrics().await;
                let mut next = 0;
                for row in &table {
                    let expected = expected(row.outcome, coverage, attachments, forward_unknown);
                    let what = format!("{context}: {}", row.header);
                    // Items keep their order: the next one upstream must be this row
                    // when it is forwarded; a dropped row must not appear (checked by the
                    // count after the loop and the type of every forwarded row).
                    if let Some(canary_kept) = expected {
                        let item = arrived
                            .get(next)
                            .unwrap_or_else(|| panic!("{what}: missing upstream"));
                        next += 1;
                        assert_eq!(item.header["type"], row.header["type"], "{what}");
                        assert_eq!(
                            item.header.get("attachment_type"),
                            row.header.get("attachment_type"),
                            "{what}"
                        );
                        if canary_kept {
                            assert_eq!(item.payload, row.payload, "{what}: not as sent");
                        } else {
                            assert!(
                                !contains(&item.payload, CANARY_EMAIL),
                                "{what}: the canary survived: {}",
                                String::from_utf8_lossy(&item.payload)
                            );
                        }
                    }
                }
                assert_eq!(next, arrived.len(), "{context}: unexpected items upstream");
                // Every drop is counted under its type.
                let dropped: usize = table
                    .iter()
                    .filter(|r| {
                        r.outcome != Outcome::MergedIntoEvent
                            && expected(r.outcome, coverage, attachments, forward_unknown).is_none()
                    })
                    .count();
                let counted: f64 = metrics
                    .lines()
                    .filter(|l| {
                        l.starts_with("scrubgate_items_total{")
                            && l.contains("outcome=\"dropped_item\"")
                    })
                    .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                    .sum();
                assert_eq!(
                    counted as usize, dropped,
                    "{context}: dropped items counted"
                );
                for row in table
                    .iter()
                    .filter(|r| r.outcome == Outcome::DroppedUnlessForwarded && !forward_unknown)
                {
                    let series = format!(
                        "scrubgate_items_total{{item_type=\"{}\",outcome=\"dropped_item\"}}",
                        row.label
                    );
                    assert!(
                        metric_value(&metrics, &series).unwrap_or(0.0) >= 1.0,
                        "{context}: {series}"
                    );
                }
                proxy.shutdown().await;
            }
        }
    }
    assert_eq!(combinations, 12);
}
