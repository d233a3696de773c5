//! The store endpoint: SDK payload shapes, legacy bodies, every content coding.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn every_sdk_shape_arrives_scrubbed() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let payloads = sdk_payloads();
    assert!(payloads.len() >= 10, "fixtures missing");
    for (name, mut event) in payloads.clone() {
        plant_canaries(&mut event);
        let response = proxy
            .post(&format!("/api/{PROJECT}/store/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzip(event.to_string().as_bytes()))
            .send()
            .await;
        assert_eq!(response.status, 200, "{name}: {}", response.text());
    }
    let received = upstream.wait_for(payloads.len()).await;
    assert_eq!(received.len(), payloads.len());
    for (recorded, (name, original)) in received.iter().zip(&payloads) {
        assert_eq!(recorded.path_and_query, format!("/api/{PROJECT}/store/"));
        assert_eq!(recorded.header("content-type"), Some("application/json"));
        assert_no_canary(&recorded.text(), name);
        let event: Value = serde_json::from_slice(&recorded.body).expect("upstream got JSON");
        // The rest of the event survives (same id, same platform).
        assert_eq!(event.get("event_id"), original.get("event_id"), "{name}");
        assert_eq!(event.get("platform"), original.get("platform"), "{name}");
        // The scrubbed e-mail leaves a remark for Sentry's UI.
        assert!(event.get("_meta").is_some(), "{name}: no _meta remarks");
    }
}

#[tokio::test]
async fn the_answer_is_the_upstreams() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let response = proxy.store(&canary_event()).await;
    assert_eq!(response.status, 200);
    // The recording upstream answers with the event id it received.
    assert_eq!(
        response.json(),
        json!({"id": "9ec79c33ec9942ab8353589fcb2e04dc"})
    );
    let recorded = upstream.wait_for(1).await;
    let event: Value = serde_json::from_slice(&recorded[0].body).unwrap();
    assert_eq!(event["message"], "checkout failed");
    assert_ne!(event["user"]["email"], CANARY_EMAIL);
}

#[tokio::test]
async fn a_store_event_without_an_id_gets_one() {
    let mut event = canary_event();
    event.as_object_mut().unwrap().remove("event_id");

    // Upstream: the event arrives with a new id, and the SDK gets the upstream's answer.
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let response = proxy.store(&event).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let recorded = upstream.wait_for(1).await;
    let forwarded: Value = serde_json::from_slice(&recorded[0].body).unwrap();
    let id = forwarded["event_id"]
        .as_str()
        .expect("an event id was added");
    assert_eq!(id.len(), 32);
    assert_eq!(response.json(), json!({ "id": id }));
    assert_eq!(forwarded["message"], "checkout failed");

    // Outbox: the answer names the id written with the event.
    let proxy = TestProxy::builder_without_upstream()
        .project(PROJECT, default_project())
        .spawn()
        .await;
    let response = proxy.store(&event).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let id = response.json()["id"].as_str().unwrap().to_owned();
    let line: Value = serde_json::from_str(proxy.outbox().lines().next().unwrap()).unwrap();
    assert_eq!(line["event_id"], id.as_str());
    let body: Value = serde_json::from_str(line["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["event_id"], id.as_str());
}

/// `"event_id": null` is no id: the event gets a fresh one, and only one `event_id` key.
#[tokio::test]
async fn a_null_event_id_is_replaced_not_duplicated() {
    let mut event = canary_event();
    event["event_id"] = Value::Null;
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let response = proxy.store(&event).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let recorded = upstream.wait_for(1).await;
    let body = &recorded[0].body;
    let keys = body
        .windows(b"\"event_id\"".len())
        .filter(|w| *w == b"\"event_id\"")
        .count();
    assert_eq!(keys, 1, "{}", String::from_utf8_lossy(body));
    let forwarded: Value = serde_json::from_slice(body).unwrap();
    let id = forwarded["event_id"].as_str().expect("a fresh id");
    assert_eq!(id.len(), 32);
    assert_eq!(response.json(), json!({ "id": id }));
}

#[tokio::test]
async fn corpus_events_arrive_scrubbed() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let corpus = fixture("corpus/events.jsonl");
    let events: Vec<Value> = corpus
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .take(12)
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    for (i, event) in events.iter().enumerate() {
        let mut event = event.clone();
        plant_canaries(&mut event);
        let response = proxy
            .post(&format!("/api/{PROJECT}/store/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-encoding", "gzip")
            .body(gzip(event.to_string().as_bytes()))
            .send()
            .await;
        assert_eq!(
            response.status,
            200,
            "corpus event {i}: {}",
            response.text()
        );
    }
    for (i, recorded) in upstream.wait_for(events.len()).await.iter().enumerate() {
        assert_no_canary(&recorded.text(), &format!("corpus event {i}"));
    }
}

#[tokio::test]
async fn legacy_base64_and_base64_zlib_bodies() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let event = canary_event().to_string();
    let b64 = base64::engine::general_purpose::STANDARD;
    let bodies = [
        ("base64", b64.encode(event.as_bytes())),
        ("base64+zlib", b64.encode(deflate(event.as_bytes()))),
    ];
    for (name, body) in &bodies {
        let response = proxy
            .post(&format!("/api/{PROJECT}/store/"))
            .header("x-sentry-auth", &auth_header())
            .body(body.clone())
            .send()
            .await;
        assert_eq!(response.status, 200, "{name}: {}", response.text());
    }
    for recorded in upstream.wait_for(2).await {
        let event: Value = serde_json::from_slice(&recorded.body).expect("decoded to JSON");
        assert_eq!(event["event_id"], "9ec79c33ec9942ab8353589fcb2e04dc");
        assert_no_canary(&recorded.text(), "legacy body");
    }
}

#[tokio::test]
async fn every_content_encoding() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let event = canary_event().to_string();
    let raw = event.as_bytes();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("gzip", gzip(raw)),
        ("x-gzip", gzip(raw)),
        ("GZIP", gzip(raw)),
        ("deflate", deflate(raw)),
        ("br", brotli(raw)),
        ("zstd", zstd(raw)),
        ("identity", raw.to_vec()),
        // SDK quirks: ignored.
        ("", raw.to_vec()),
        ("UTF-8", raw.to_vec()),
    ];
    for (encoding, body) in &cases {
        let response = proxy
            .post(&format!("/api/{PROJECT}/store/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-encoding", encoding)
            .body(body.clone())
            .send()
            .await;
        assert_eq!(response.status, 200, "{encoding:?}: {}", response.text());
    }
    let received = upstream.wait_for(cases.len()).await;
    for (recorded, (encoding, _)) in received.iter().zip(&cases) {
        let event: Value = serde_json::from_slice(&recorded.body)
            .unwrap_or_else(|_| panic!("{encoding:?}: upstream body is not JSON"));
        assert_eq!(event["event_id"], "9ec79c33ec9942ab8353589fcb2e04dc");
        assert_no_canary(&recorded.text(), encoding);
    }
}

#[tokio::test]
async fn upstream_encoding_is_applied() {
    for (setting, header) in [
        (scrubgate::config::UpstreamEncoding::Gzip, Some("gzip")),
        (scrubgate::config::UpstreamEncoding::Zstd, Some("zstd")),
        (scrubgate::config::UpstreamEncoding::Identity, None),
    ] {
        let upstream = RecordingUpstream::spawn().await;
        let proxy = TestProxy::builder(&upstream)
            .project(PROJECT, default_project())
            .configure(move |c| c.upstream.encoding = setting)
            .spawn()
            .await;
        assert_eq!(proxy.store(&canary_event()).await.status, 200);
        let recorded = &upstream.wait_for(1).await[0];
        assert_eq!(recorded.header("content-encoding"), header, "{setting:?}");
        if header.is_some() {
            assert_ne!(
                recorded.raw_body, recorded.body,
                "{setting:?}: not compressed"
            );
        }
        assert!(serde_json::from_slice::<Value>(&recorded.body).is_ok());
    }
}

#[tokio::test]
async fn auto_ip_resolves_to_the_client_and_is_then_scrubbed() {
    // A project that does not scrub IPs: {{auto}} becomes the peer address.
    let keeps_ips = project_json(
        PROJECT,
        false,
        json!({"applications": {"$string": ["@email"]}}),
        json!({}),
    );
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, keeps_ips.clone())
        .spawn()
        .await;
    let event =
        json!({"event_id": "00000000000000000000000000000001", "user": {"ip_address": "{{auto}}"}});
    assert_eq!(proxy.store(&event).await.status, 200);
    let received: Value = serde_json::from_slice(&upstream.wait_for(1).await[0].body).unwrap();
    assert_eq!(received["user"]["ip_address"], "127.0.0.1");

    // Behind a trusted proxy, the first untrusted X-Forwarded-For hop is the client.
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, keeps_ips)
        .configure(|c| c.server.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()])
        .spawn()
        .await;
    let response = proxy
        .post(&format!("/api/{PROJECT}/store/"))
        .header("x-sentry-auth", &auth_header())
        .header("x-forwarded-for", "203.0.113.50, 127.0.0.9")
        .body(event.to_string())
        .send()
        .await;
    assert_eq!(response.status, 200);
    let received: Value = serde_json::from_slice(&upstream.wait_for(1).await[0].body).unwrap();
    assert_eq!(received["user"]["ip_address"], "203.0.113.50");

    // A project that scrubs IPs: the resolved address does not survive.
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    assert_eq!(proxy.store(&event).await.status, 200);
    let recorded = &upstream.wait_for(1).await[0];
    assert!(
        !recorded.text().contains("127.0.0.1"),
        "{}",
        recorded.text()
    );
    assert!(!recorded.text().contains("{{auto}}"));
}

#[tokio::test]
async fn store_with_envelope_content_type_is_an_envelope() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let envelope = build_envelope(
        &json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"}),
        &[(
            json!({"type": "event"}),
            canary_event().to_string().into_bytes(),
        )],
    );
    let response = proxy
        .post(&format!("/api/{PROJECT}/store/"))
        .header("x-sentry-auth", &auth_header())
        .header("content-type", "application/x-sentry-envelope")
        .body(envelope)
        .send()
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let recorded = &upstream.wait_for(1).await[0];
    assert_eq!(
        recorded.header("content-type"),
        Some("application/x-sentry-envelope")
    );
    let (_, items) = parse_envelope(&recorded.body);
    assert_eq!(items.len(), 1);
    assert_no_canary(&recorded.text(), "store envelope");
}

#[tokio::test]
async fn security_reports_are_scrubbed_and_mime_checked() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let report = json!({"csp-report": {
        "document-uri": format!("https://shop.example/account?email={CANARY_EMAIL}"),
        "referrer": "",
        "violated-directive": "script-src",
        "blocked-uri": format!("http://{CANARY_IP}/x.js")
    }});
    for endpoint in ["security", "csp-report"] {
        let response = proxy
            .post(&format!(
                "/api/{PROJECT}/{endpoint}/?sentry_key={KEY}&sentry_release=web%401.2&sentry_environment=prod"
            ))
            .header("content-type", "application/csp-report")
            .body(report.to_string())
            .send()
            .await;
        assert_eq!(response.status, 200, "{endpoint}: {}", response.text());
    }
    let received = upstream.wait_for(2).await;
    for (recorded, endpoint) in received.iter().zip(["security", "csp-report"]) {
        assert_eq!(
            recorded.path_and_query,
            format!("/api/{PROJECT}/{endpoint}/?sentry_release=web%401.2&sentry_environment=prod")
        );
        assert_eq!(
            recorded.header("content-type"),
            Some("application/csp-report")
        );
        assert!(recorded.text().contains("script-src"));
        assert_no_canary(&recorded.text(), endpoint);
    }

    let response = proxy
        .post(&format!("/api/{PROJECT}/security/?sentry_key={KEY}"))
        .header("content-type", "text/plain")
        .body(report.to_string())
        .send()
        .await;
    assert_eq!(response.status, 415);
    assert!(response.json()["detail"].is_string());
    assert_eq!(upstream.requests().len(), 2);
}

/// Bodies of 32 KiB and more are decoded and scrubbed under `block_in_place` on a
/// multi-threaded runtime (the server's); the result must be the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_take_the_offloaded_path() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let corpus = fixture("corpus/events.jsonl");
    let largest = corpus
        .split(|&b| b == b'\n')
        .max_by_key(|line| line.len())
        .unwrap();
    let mut event: Value = serde_json::from_slice(largest).unwrap();
    plant_canaries(&mut event);
    let body = event.to_string();
    assert!(body.len() > 64 * 1024, "the largest corpus event is large");
    for encoding in ["identity", "gzip"] {
        let payload = if encoding == "gzip" {
            gzip(body.as_bytes())
        } else {
            body.clone().into_bytes()
        };
        let response = proxy
            .post(&format!("/api/{PROJECT}/store/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-encoding", encoding)
            .body(payload)
            .send()
            .await;
        assert_eq!(response.status, 200, "{encoding}: {}", response.text());
    }
    for recorded in upstream.wait_for(2).await.iter() {
        assert_no_canary(&recorded.text(), "large event");
    }
}

#[tokio::test]
async fn several_content_encodings_are_undone_in_order_or_refused() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let event = canary_event().to_string();
    let body = brotli(&gzip(event.as_bytes()));
    // Two header lines, then one list: gzip was applied first, br second.
    for lines in [&["gzip", "br"][..], &["gzip, br"][..]] {
        let mut request = proxy
            .post(&format!("/api/{PROJECT}/store/"))
            .header("x-sentry-auth", &auth_header());
        for line in lines {
            request = request.header("content-encoding", line);
        }
        let response = request.body(body.clone()).send().await;
        assert_eq!(response.status, 200, "{lines:?}: {}", response.text());
    }
    let received = upstream.wait_for(2).await;
    for recorded in &received {
        let event: Value = serde_json::from_slice(&recorded.body).unwrap();
        assert_eq!(event["event_id"], "9ec79c33ec9942ab8353589fcb2e04dc");
        assert_no_canary(&recorded.text(), "gzip, br");
    }
    // Three codings: 415, nothing forwarded.
    let response = proxy
        .post(&format!("/api/{PROJECT}/store/"))
        .header("x-sentry-auth", &auth_header())
        .header("content-encoding", "gzip")
        .header("content-encoding", "br")
        .header("content-encoding", "zstd")
        .body(zstd(&body))
        .send()
        .await;
    assert_eq!(response.status, 415, "{}", response.text());
}
