//! The envelope endpoint: every item type, policies, lengths, and fail-closed refusals.

use serde_json::{json, Value};

use crate::support::*;

const EVENT_ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

/// An envelope with one item of each kind scrubgate handles, canaries planted in each.
fn mixed_envelope() -> Vec<u8> {
    let header = json!({
        "event_id": EVENT_ID,
        "sent_at": "2024-01-01T00:00:00Z",
        "sdk": {"name": "sentry.javascript.browser", "version": "7.0.0"},
        "trace": {"trace_id": "4c79f60c11214eb38604f4ae0781bfb2", "public_key": KEY,
                  "user_id": CANARY_EMAIL}
    });
    let mut transaction = json!({
        "type": "transaction", "event_id": "0000000000000000000000000000abcd",
        "transaction": "/checkout", "start_timestamp": 1.0, "timestamp": 2.0,
        "contexts": {"trace": {"trace_id": "4c79f60c11214eb38604f4ae0781bfb2", "span_id": "fa90fdead5f74052"}}
    });
    plant_canaries(&mut transaction);
    let items = vec![
        (
            json!({"type": "event", "content_type": "application/json"}),
            canary_event().to_string().into_bytes(),
        ),
        (
            json!({"type": "transaction"}),
            transaction.to_string().into_bytes(),
        ),
        (
            json!({"type": "attachment", "filename": "log.txt", "attachment_type": "event.attachment"}),
            b"plain attachment bytes".to_vec(),
        ),
        (
            json!({"type": "session"}),
            json!({
                "sid": "7c7b6585f17f4cd1b2f2a5bc3a9a1b5a", "did": CANARY_EMAIL, "init": true,
                "started": "2024-01-01T00:00:00Z", "status": "ok",
                "attrs": {"release": "web@1.0", "ip_address": CANARY_IP}
            })
            .to_string()
            .into_bytes(),
        ),
        (
            json!({"type": "user_report"}),
            json!({
                "event_id": EVENT_ID, "name": "Jane Doe", "email": CANARY_EMAIL,
                "comments": format!("it broke, write to {CANARY_EMAIL}")
            })
            .to_string()
            .into_bytes(),
        ),
        (
            json!({"type": "client_report"}),
            json!({"timestamp": 1, "discarded_events": []})
                .to_string()
                .into_bytes(),
        ),
        (
            json!({"type": "replay_video"}),
            b"opaque replay bytes".to_vec(),
        ),
    ];
    build_envelope(&header, &items)
}

#[tokio::test]
async fn items_are_scrubbed_kept_or_dropped_and_lengths_are_exact() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let response = proxy.envelope(mixed_envelope()).await;
    assert_eq!(response.status, 200, "{}", response.text());

    let recorded = &upstream.wait_for(1).await[0];
    assert_eq!(recorded.path_and_query, format!("/api/{PROJECT}/envelope/"));
    assert_eq!(
        recorded.header("content-type"),
        Some("application/x-sentry-envelope")
    );
    assert_no_canary(&recorded.text(), "envelope");
    let (header, items) = parse_envelope(&recorded.body);
    assert_eq!(header["event_id"], EVENT_ID);
    assert_ne!(header["trace"]["user_id"], CANARY_EMAIL);
    assert_eq!(
        header["trace"]["trace_id"],
        "4c79f60c11214eb38604f4ae0781bfb2"
    );
    let types: Vec<&str> = items.iter().map(ParsedItem::ty).collect();
    // A client report is counts only: forwarded as it is. A replay video is not
    // scrubbed: dropped by default.
    assert_eq!(
        types,
        [
            "event",
            "transaction",
            "attachment",
            "session",
            "user_report",
            "client_report"
        ]
    );
    for item in &items {
        assert_eq!(
            item.header["length"].as_u64(),
            Some(item.payload.len() as u64),
            "{}: wrong length",
            item.ty()
        );
    }
    assert_eq!(items[2].payload, b"plain attachment bytes");
    assert_eq!(items[0].json()["message"], "checkout failed");
    assert_eq!(items[1].json()["transaction"], "/checkout");
    let report = items[4].json();
    assert_eq!(report["name"], "Jane Doe");
    assert!(report["comments"].as_str().unwrap().starts_with("it broke"));

    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"replay_video\",outcome=\"dropped_item\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    for item_type in [
        "event",
        "transaction",
        "attachment",
        "session",
        "user_report",
        "client_report",
    ] {
        assert_eq!(
            metric_value(
                &metrics,
                &format!(
                    "scrubgate_items_total{{item_type=\"{item_type}\",outcome=\"forwarded\"}}"
                )
            ),
            Some(1.0),
            "{item_type}"
        );
    }
}

#[tokio::test]
async fn project_policy_drops_attachments_and_may_forward_unknown_items() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(
            PROJECT,
            project_json(
                PROJECT,
                true,
                pii_config(),
                json!({"attachments": "drop", "forwardUnknownItems": true}),
            ),
        )
        .spawn()
        .await;
    assert_eq!(proxy.envelope(mixed_envelope()).await.status, 200);
    let recorded = &upstream.wait_for(1).await[0];
    let (_, items) = parse_envelope(&recorded.body);
    let types: Vec<&str> = items.iter().map(ParsedItem::ty).collect();
    assert_eq!(
        types,
        [
            "event",
            "transaction",
            "session",
            "user_report",
            "client_report",
            "replay_video"
        ]
    );
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"attachment\",outcome=\"dropped_item\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn items_without_length_are_accepted() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let body = format!(
        "{{\"event_id\":\"{EVENT_ID}\"}}\n{{\"type\":\"event\"}}\n{}\n",
        canary_event()
    );
    let response = proxy.envelope(body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let recorded = &upstream.wait_for(1).await[0];
    let (_, items) = parse_envelope(&recorded.body);
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].header["length"].as_u64(),
        Some(items[0].payload.len() as u64)
    );
    assert_no_canary(&recorded.text(), "envelope without length");
}

#[tokio::test]
async fn nothing_left_to_forward_is_answered_without_the_upstream() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let body = build_envelope(
        &json!({"event_id": EVENT_ID}),
        &[(json!({"type": "replay_video"}), b"opaque".to_vec())],
    );
    let response = proxy.envelope(body).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), json!({"id": EVENT_ID}));
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn one_unscrubbable_item_refuses_the_whole_envelope() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let body = build_envelope(
        &json!({"event_id": EVENT_ID}),
        &[
            (
                json!({"type": "event"}),
                canary_event().to_string().into_bytes(),
            ),
            (
                json!({"type": "user_report"}),
                format!("not json {CANARY_EMAIL}").into_bytes(),
            ),
        ],
    );
    let response = proxy.envelope(body).await;
    assert_eq!(response.status, 400);
    assert!(response.json()["detail"]
        .as_str()
        .unwrap()
        .contains("invalid"));
    assert!(!response.text().contains(CANARY_EMAIL));
    assert!(
        upstream.requests().is_empty(),
        "part of a refused envelope was forwarded"
    );
}

#[tokio::test]
async fn malformed_envelopes_are_400() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let long_length = format!(
        "{{}}\n{{\"type\":\"event\",\"length\":500}}\n{}\n",
        canary_event()
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("header not json", b"not json\n".to_vec()),
        ("item header not json", b"{}\n{type: event}\n{}\n".to_vec()),
        ("length past the end", long_length.into_bytes()),
        ("no item type", b"{}\n{\"length\":2}\n{}\n".to_vec()),
    ];
    for (name, body) in cases {
        let response = proxy.envelope(body).await;
        assert_eq!(response.status, 400, "{name}: {}", response.text());
        assert!(response.json()["detail"].is_string());
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn envelope_events_from_sdk_shapes_arrive_scrubbed() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let payloads = sdk_payloads();
    for (name, mut event) in payloads.clone() {
        plant_canaries(&mut event);
        let id = event.get("event_id").cloned().unwrap_or(Value::Null);
        let body = build_envelope(
            &json!({"event_id": id}),
            &[(json!({"type": "event"}), event.to_string().into_bytes())],
        );
        let response = proxy
            .post(&format!("/api/{PROJECT}/envelope/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-encoding", "zstd")
            .body(zstd(&body))
            .send()
            .await;
        assert_eq!(response.status, 200, "{name}: {}", response.text());
    }
    for (recorded, (name, _)) in upstream
        .wait_for(payloads.len())
        .await
        .iter()
        .zip(&payloads)
    {
        assert_no_canary(&recorded.text(), name);
        let (_, items) = parse_envelope(&recorded.body);
        assert_eq!(items.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn replay_recordings_are_scrubbed_and_go_back_the_way_they_came() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let events = json!([
        {"type": 4, "timestamp": 1, "data": {"href": "https://shop.example/", "width": 800}},
        {"type": 2, "timestamp": 2, "data": {"node": {"type": 0, "id": 1, "childNodes": [
            {"type": 2, "id": 2, "tagName": "input",
             "attributes": {"value": CANARY_EMAIL, "class": "email"}, "childNodes": []},
            {"type": 3, "id": 3, "textContent": format!("hello {CANARY_EMAIL}")}
        ]}}},
        {"type": 3, "timestamp": 3, "data": {"source": 0,
            "texts": [{"id": 3, "value": format!("mail {CANARY_EMAIL}")}],
            "attributes": [{"id": 2, "attributes": {"title": CANARY_IP}}]}},
        {"type": 3, "timestamp": 4, "data": {"source": 5, "id": 2, "text": CANARY_EMAIL}},
        {"type": 5, "timestamp": 5, "data": {"tag": "breadcrumb", "payload": {
            "category": "console", "message": format!("user {CANARY_EMAIL}"),
            "data": {"ip": CANARY_IP}}}}
    ]);
    let plain = serde_json::to_vec(&events).unwrap();
    for compressed in [false, true] {
        let mut payload = b"{\"segment_id\":3}\n".to_vec();
        if compressed {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, &plain).unwrap();
            payload.extend(enc.finish().unwrap());
        } else {
            payload.extend(&plain);
        }
        let body = build_envelope(
            &json!({"event_id": EVENT_ID}),
            &[(json!({"type": "replay_recording"}), payload)],
        );
        let response = proxy.envelope(body).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let recorded = upstream.wait_for(2).await;
    for (i, request) in recorded.iter().enumerate() {
        let (_, items) = parse_envelope(&request.body);
        assert_eq!(items[0].ty(), "replay_recording");
        let payload = &items[0].payload;
        let newline = payload.iter().position(|&b| b == b'\n').unwrap();
        assert_eq!(&payload[..newline], b"{\"segment_id\":3}");
        let rest = &payload[newline + 1..];
        let json = if i == 1 {
            assert_eq!(rest[0], 0x78, "recompressed as zlib");
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(rest), &mut out)
                .unwrap();
            out
        } else {
            rest.to_vec()
        };
        let text = String::from_utf8(json.clone()).unwrap();
        assert_no_canary(&text, "replay recording");
        let events: serde_json::Value = serde_json::from_slice(&json).unwrap();
        // Structure, ids, tags and non-text values are kept.
        assert_eq!(events[0]["data"]["href"], "https://shop.example/");
        assert_eq!(
            events[1]["data"]["node"]["childNodes"][0]["tagName"],
            "input"
        );
        assert_eq!(
            events[1]["data"]["node"]["childNodes"][0]["attributes"]["class"],
            "email"
        );
        assert_eq!(
            events[1]["data"]["node"]["childNodes"][1]["textContent"],
            "hello [email]"
        );
        assert_eq!(events[4]["data"]["tag"], "breadcrumb");
        assert_eq!(events[4]["data"]["payload"]["category"], "console");
    }

    // A recording without its header line cannot be scrubbed: the envelope is refused.
    let body = build_envelope(
        &json!({"event_id": EVENT_ID}),
        &[(json!({"type": "replay_recording"}), plain.clone())],
    );
    assert_eq!(proxy.envelope(body).await.status, 400);
}
