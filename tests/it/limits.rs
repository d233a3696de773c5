//! Size limits, decompression bombs, corrupt bodies and malformed events.

use serde_json::json;

use crate::support::*;

const KIB: usize = 1024;

async fn small_limits_proxy(upstream: &RecordingUpstream) -> TestProxy {
    TestProxy::builder(upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            c.limits.max_event_size = 64 * KIB;
            c.limits.max_compressed_event_size = 32 * KIB;
            c.limits.max_envelope_size = 256 * KIB;
            c.limits.max_compressed_envelope_size = 128 * KIB;
        })
        .spawn()
        .await
}

/// A JSON event of about `size` bytes.
fn event_of_size(size: usize) -> String {
    json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "message": "x".repeat(size)}).to_string()
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = small_limits_proxy(&upstream).await;
    let store = format!("/api/{PROJECT}/store/");

    // Received bytes over max_compressed_event_size.
    let response = proxy
        .post(&store)
        .header("x-sentry-auth", &auth_header())
        .body(event_of_size(40 * KIB))
        .send()
        .await;
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(response.json()["detail"].is_string());

    // Compressed small enough, decompressed over max_event_size.
    let response = proxy
        .post(&store)
        .header("x-sentry-auth", &auth_header())
        .header("content-encoding", "gzip")
        .body(gzip(event_of_size(100 * KIB).as_bytes()))
        .send()
        .await;
    assert_eq!(response.status, 413, "{}", response.text());

    // An envelope whose event item is over max_event_size though the envelope fits.
    let envelope = build_envelope(
        &json!({}),
        &[(
            json!({"type": "event"}),
            event_of_size(100 * KIB).into_bytes(),
        )],
    );
    let response = proxy
        .post(&format!("/api/{PROJECT}/envelope/"))
        .header("x-sentry-auth", &auth_header())
        .header("content-encoding", "gzip")
        .body(gzip(&envelope))
        .send()
        .await;
    assert_eq!(response.status, 413, "{}", response.text());

    // Just under the limits passes.
    let response = proxy
        .post(&store)
        .header("x-sentry-auth", &auth_header())
        .body(event_of_size(30 * KIB))
        .send()
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(upstream.wait_for(1).await.len(), 1);

    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"too_large\"}"
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn an_oversized_item_stops_a_compressed_envelope_while_it_inflates() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = small_limits_proxy(&upstream).await;
    let post = |body: Vec<u8>, encoding: &'static str| {
        proxy
            .post(&format!("/api/{PROJECT}/envelope/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    let item_too_large = "envelope item exceeds the size limit";
    // An event item of 16 MiB (no length: one line) in an envelope whose whole would be
    // far over max_envelope_size: it is refused for the item, at 64 KiB, before the
    // envelope's own limit is reached.
    let mut line = event_of_size(16 * 1024 * KIB).into_bytes();
    line.truncate(16 * 1024 * KIB);
    let huge = build_envelope(&json!({}), &[(json!({"type": "event"}), line)]);
    for encoding in ["gzip", "zstd", "br", "deflate"] {
        let body = match encoding {
            "gzip" => gzip(&huge),
            "zstd" => zstd(&huge),
            "br" => brotli(&huge),
            _ => deflate(&huge),
        };
        let response = post(body, encoding).await;
        assert_eq!(response.status, 413, "{encoding}: {}", response.text());
        assert_eq!(response.json()["detail"], item_too_large, "{encoding}");
    }
    // A declared length over the limit is refused at its header, though the payload
    // that follows is cut short (the whole envelope would be malformed).
    let mut cut = b"{}\n{\"type\":\"transaction\",\"length\":1000000}\n".to_vec();
    cut.extend(std::iter::repeat_n(b'{', 200 * KIB));
    let response = post(gzip(&cut), "gzip").await;
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(response.json()["detail"], item_too_large);
    // Attachments have no item limit of their own: 200 KiB passes in a 256 KiB envelope.
    let attachment = build_envelope(
        &json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"}),
        &[(
            json!({"type": "attachment", "filename": "log.txt"}),
            vec![b'a'; 200 * KIB],
        )],
    );
    let response = post(zstd(&attachment), "zstd").await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(upstream.wait_for(1).await.len(), 1);
}

#[tokio::test]
async fn each_item_type_has_relays_limit() {
    let upstream = RecordingUpstream::spawn().await;
    // The default limits: events 1 MiB, profiles 50 MiB, check-ins 100 KiB.
    let proxy = TestProxy::spawn(&upstream).await;
    let post = |body: Vec<u8>| {
        proxy
            .post(&format!("/api/{PROJECT}/envelope/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-encoding", "gzip")
            .body(gzip(&body))
            .send()
    };
    let header = json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc"});
    let two_mib = "x".repeat(2 * 1024 * KIB);
    // A 2 MiB profile is within its limit, though over max_event_size.
    let profile = json!({"version": "1", "platform": "python", "transaction_name": two_mib,
        "profile": {"samples": [], "stacks": [], "frames": []}});
    let envelope = build_envelope(
        &header,
        &[(json!({"type": "profile"}), profile.to_string().into_bytes())],
    );
    let response = post(envelope).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(upstream.wait_for(1).await.len(), 1);
    // The same size as an event is over its limit.
    let event = json!({"message": two_mib});
    let envelope = build_envelope(
        &header,
        &[(json!({"type": "event"}), event.to_string().into_bytes())],
    );
    let response = post(envelope).await;
    assert_eq!(response.status, 413, "{}", response.text());
    // A check-in of 200 KiB is over its 100 KiB.
    let check_in = json!({"check_in_id": "83a7c03ed0a04e1b97e2e3b18d38f244",
        "monitor_slug": "job", "status": "ok", "note": "y".repeat(200 * KIB)});
    let envelope = build_envelope(
        &header,
        &[(
            json!({"type": "check_in"}),
            check_in.to_string().into_bytes(),
        )],
    );
    let response = post(envelope).await;
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(
        response.json()["detail"],
        "envelope item exceeds the size limit"
    );
    // A replay recording whose own zlib stream is a bomb (64 MiB of zeros in about
    // 64 KiB) stops at its ratio cap (1000 times what was sent) before it is whole.
    let mut recording = b"{\"segment_id\":0}\n".to_vec();
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, &vec![b'0'; 64 * 1024 * KIB]).unwrap();
    recording.extend(encoder.finish().unwrap());
    let envelope = build_envelope(&header, &[(json!({"type": "replay_recording"}), recording)]);
    let response = post(envelope).await;
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(
        response.json()["detail"],
        "request body exceeds the size limit"
    );
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn decompression_bombs_stop_at_the_cap() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = small_limits_proxy(&upstream).await;
    // 16 MiB of zeros: about 16 KiB as gzip, far less as zstd or br; the caps are 64 KiB
    // (store) and 256 KiB (envelope) decompressed.
    let bomb = vec![b'0'; 16 * 1024 * KIB];
    for (encoding, body) in [
        ("gzip", gzip(&bomb)),
        ("zstd", zstd(&bomb)),
        ("br", brotli(&bomb)),
        ("deflate", deflate(&bomb)),
    ] {
        for path in ["store", "envelope"] {
            if body.len() > 32 * KIB && path == "store" {
                continue; // over the received-bytes cap: covered above
            }
            let response = proxy
                .post(&format!("/api/{PROJECT}/{path}/"))
                .header("x-sentry-auth", &auth_header())
                .header("content-encoding", encoding)
                .body(body.clone())
                .send()
                .await;
            assert_eq!(
                response.status,
                413,
                "{encoding} {path}: {}",
                response.text()
            );
        }
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn corrupt_or_unknown_encodings_and_bad_json() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = small_limits_proxy(&upstream).await;
    let store = format!("/api/{PROJECT}/store/");
    let event = canary_event().to_string();
    let mut truncated = gzip(event.as_bytes());
    truncated.truncate(truncated.len() / 2);

    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("corrupt gzip", "gzip", b"definitely not gzip".to_vec(), 400),
        ("truncated gzip", "gzip", truncated, 400),
        ("corrupt zstd", "zstd", b"not zstd either".to_vec(), 400),
        (
            "unknown coding",
            "compress",
            event.clone().into_bytes(),
            415,
        ),
        (
            "malformed json",
            "identity",
            br#"{"event_id": "abc", "message": "#.to_vec(),
            400,
        ),
        ("json array", "identity", b"[1, 2, 3]".to_vec(), 400),
        ("empty body", "identity", Vec::new(), 400),
    ];
    for (name, encoding, body, status) in cases {
        let response = proxy
            .post(&store)
            .header("x-sentry-auth", &auth_header())
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await;
        assert_eq!(
            response.status.as_u16(),
            status,
            "{name}: {}",
            response.text()
        );
        assert!(response.json()["detail"].is_string(), "{name}");
    }
    // A JSON nesting bomb is refused, not walked.
    let deep = format!(
        "{}{}",
        "{\"a\":".repeat(1000),
        "1".to_owned() + &"}".repeat(1000)
    );
    let response = proxy
        .post(&store)
        .header("x-sentry-auth", &auth_header())
        .body(deep)
        .send()
        .await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(upstream.requests().is_empty());
}

/// The `scrubgate_request_decoded_bytes` sum for envelopes: how much was decompressed.
async fn decoded_envelope_bytes(proxy: &TestProxy) -> f64 {
    let metrics = proxy.scrape_metrics().await;
    metric_value(
        &metrics,
        "scrubgate_request_decoded_bytes_sum{endpoint=\"envelope\"}",
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn a_bomb_stops_at_its_ratio_cap_long_before_the_size_limit() {
    let upstream = RecordingUpstream::spawn().await;
    // The default limits: an envelope may decode to 200 MiB.
    let proxy = TestProxy::spawn(&upstream).await;
    // 64 MiB of zeros, a few KB compressed: its ratio cap is 1 MiB.
    let bomb = vec![b'0'; 64 * 1024 * KIB];
    for (encoding, body) in [("zstd", zstd(&bomb)), ("br", brotli(&bomb))] {
        assert!(body.len() < KIB * 8, "{encoding}: {}", body.len());
        let response = proxy
            .post(&format!("/api/{PROJECT}/envelope/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await;
        assert_eq!(response.status, 413, "{encoding}: {}", response.text());
    }
    assert_eq!(
        decoded_envelope_bytes(&proxy).await,
        0.0,
        "refused bodies are not counted as decoded"
    );

    // A real envelope of several MiB, compressed at a normal ratio, is accepted.
    let events: Vec<u8> = fixture("corpus/events.jsonl");
    let mut items = Vec::new();
    for (n, line) in events
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .take(60)
        .enumerate()
    {
        let header = if n == 0 {
            json!({"type": "event"})
        } else {
            json!({"type": "attachment", "filename": format!("event-{n}.json")})
        };
        items.push((header, line.to_vec()));
    }
    let envelope = build_envelope(&json!({}), &items);
    assert!(envelope.len() > 1024 * KIB, "{}", envelope.len());
    let response = proxy
        .post(&format!("/api/{PROJECT}/envelope/"))
        .header("x-sentry-auth", &auth_header())
        .header("content-encoding", "zstd")
        .body(zstd(&envelope))
        .send()
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(decoded_envelope_bytes(&proxy).await, envelope.len() as f64);
}

#[tokio::test]
async fn bodies_past_the_memory_budget_get_503_and_the_rest_are_served() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.limits.max_body_bytes_in_flight = 64 * KIB)
        .spawn()
        .await;
    // 48 KiB of event: it and its scrubbed copy need 96 KiB.
    let mut big = canary_event();
    big["extra"]["blob"] = json!("x".repeat(48 * KIB));
    let response = proxy.store(&big).await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_eq!(
        response.json()["detail"],
        "too many request bytes in flight, retry later"
    );
    // A small event fits; the budget was given back.
    let response = proxy.store(&canary_event()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"overloaded\"}"
        ),
        Some(1.0)
    );
}
