//! Auth forms, auth failures, and refusals that must happen before the body is read.

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn store_path() -> String {
    format!("/api/{PROJECT}/store/")
}

#[tokio::test]
async fn every_auth_form_is_accepted_and_the_secret_is_not_forwarded() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let body = canary_event().to_string();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}"));

    let cases = vec![
        (
            "x-sentry-auth",
            proxy.post(&store_path()).header(
                "x-sentry-auth",
                &format!("Sentry sentry_key={KEY}, sentry_secret={SECRET}, sentry_version=7"),
            ),
        ),
        (
            "authorization sentry",
            proxy.post(&store_path()).header(
                "authorization",
                &format!("Sentry sentry_key={KEY},sentry_version=7,sentry_secret={SECRET}"),
            ),
        ),
        (
            "authorization basic",
            proxy
                .post(&store_path())
                .header("authorization", &format!("Basic {basic}")),
        ),
        (
            "query",
            proxy.post(&format!(
                "{}?sentry_key={KEY}&sentry_version=7&sentry_secret={SECRET}",
                store_path()
            )),
        ),
    ];
    let count = cases.len();
    for (name, request) in cases {
        let response = request.body(body.clone()).send().await;
        assert_eq!(response.status, 200, "{name}: {}", response.text());
    }
    for recorded in upstream.wait_for(count).await {
        let auth = recorded.header("x-sentry-auth").expect("auth forwarded");
        assert!(auth.contains(&format!("sentry_key={KEY}")), "{auth}");
        assert!(!auth.contains(SECRET), "secret forwarded: {auth}");
        assert!(!recorded.path_and_query.contains(SECRET));
        assert!(!recorded.path_and_query.contains("sentry_key"));
        assert!(recorded.header("authorization").is_none());
    }
}

#[tokio::test]
async fn envelope_header_dsn_is_auth_when_nothing_else_is() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let envelope = |dsn: String| {
        build_envelope(
            &json!({"event_id": "9ec79c33ec9942ab8353589fcb2e04dc", "dsn": dsn}),
            &[(
                json!({"type": "event"}),
                canary_event().to_string().into_bytes(),
            )],
        )
    };
    let path = format!("/api/{PROJECT}/envelope/");

    let response = proxy
        .post(&path)
        .body(envelope(format!(
            "https://{KEY}:{SECRET}@o1.ingest.example/{PROJECT}"
        )))
        .send()
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let recorded = &upstream.wait_for(1).await[0];
    assert!(recorded.header("x-sentry-auth").unwrap().contains(KEY));
    assert!(!recorded.text().contains(SECRET), "dsn secret forwarded");
    let (header, _) = parse_envelope(&recorded.body);
    assert_eq!(
        header["dsn"],
        format!("https://{KEY}@o1.ingest.example/{PROJECT}")
    );

    // The DSN's key must be a key of the project.
    let response = proxy
        .post(&path)
        .body(envelope(format!(
            "https://{UNKNOWN_KEY}@o1.ingest.example/{PROJECT}"
        )))
        .send()
        .await;
    assert_eq!(response.status, 403);
    let response = proxy
        .post(&path)
        .body(envelope(format!(
            "https://{DISABLED_KEY}@o1.ingest.example/{PROJECT}"
        )))
        .send()
        .await;
    assert_eq!(response.status, 403);
    // ...and name the project of the path.
    let response = proxy
        .post(&path)
        .body(envelope(format!("https://{KEY}@o1.ingest.example/7")))
        .send()
        .await;
    assert_eq!(response.status, 400);
    // With header auth too, the two must agree.
    let response = proxy
        .post(&path)
        .header("x-sentry-auth", &auth_header())
        .body(envelope(format!(
            "https://{UNKNOWN_KEY}@o1.ingest.example/{PROJECT}"
        )))
        .send()
        .await;
    assert_eq!(response.status, 400);
    // No auth at all.
    let response = proxy
        .post(&path)
        .body(build_envelope(
            &json!({}),
            &[(json!({"type": "event"}), b"{}".to_vec())],
        ))
        .send()
        .await;
    assert_eq!(response.status, 401);
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn auth_failures() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .project(
            7,
            project_json(7, true, pii_config(), json!({}))
                .replace("\"disabled\":false", "\"disabled\":true"),
        )
        .spawn()
        .await;
    let body = canary_event().to_string();
    let header =
        |key: &str, version: &str| format!("Sentry sentry_key={key}, sentry_version={version}");

    let cases = vec![
        ("missing", proxy.post(&store_path()), 401),
        (
            "multiple",
            proxy
                .post(&format!("{}?sentry_key={KEY}", store_path()))
                .header("x-sentry-auth", &auth_header()),
            401,
        ),
        (
            "malformed",
            proxy
                .post(&store_path())
                .header("x-sentry-auth", "Sentry sentry_version=7"),
            401,
        ),
        (
            "bad key",
            proxy
                .post(&store_path())
                .header("x-sentry-auth", &header("not-hex", "7")),
            400,
        ),
        (
            "version 8",
            proxy
                .post(&store_path())
                .header("x-sentry-auth", &header(KEY, "8")),
            400,
        ),
        (
            "unknown key",
            proxy
                .post(&store_path())
                .header("x-sentry-auth", &header(UNKNOWN_KEY, "7")),
            403,
        ),
        (
            "disabled key",
            proxy
                .post(&store_path())
                .header("x-sentry-auth", &header(DISABLED_KEY, "7")),
            403,
        ),
        (
            "disabled project",
            proxy
                .post("/api/7/store/")
                .header("x-sentry-auth", &auth_header()),
            403,
        ),
        (
            "unknown project",
            proxy
                .post("/api/999/store/")
                .header("x-sentry-auth", &auth_header()),
            403,
        ),
        (
            "bad project id",
            proxy
                .post("/api/abc/store/")
                .header("x-sentry-auth", &auth_header()),
            400,
        ),
    ];
    for (name, request, status) in cases {
        let response = request.body(body.clone()).send().await;
        assert_eq!(response.status, status, "{name}: {}", response.text());
        assert!(
            response.json()["detail"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}: no detail"
        );
        assert!(!response.text().contains(SECRET));
    }
    assert!(
        upstream.requests().is_empty(),
        "a refused request was forwarded"
    );
}

/// Sends a request head announcing a large body, sends none of it, and returns the
/// answer's status line: refusals that come before the body is read answer at once.
async fn status_without_body(proxy: &TestProxy, path: &str, auth: &str) -> String {
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: scrubgate\r\nx-sentry-auth: {auth}\r\n\
         content-type: application/json\r\ncontent-length: 500000\r\n\r\n{{\"partial\": "
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("no answer: the body was awaited")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn unknown_project_or_key_never_has_its_body_read() {
    let upstream = RecordingUpstream::spawn().await;
    // A long body timeout: waiting for the body would make the test time out.
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.server.body_read_timeout = Duration::from_secs(60))
        .spawn()
        .await;
    let auth = auth_header();
    let status = status_without_body(&proxy, "/api/999/store/", &auth).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    let status = status_without_body(&proxy, "/api/999/envelope/", &auth).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    let unknown = format!("Sentry sentry_key={UNKNOWN_KEY}, sentry_version=7");
    let status = status_without_body(&proxy, &store_path(), &unknown).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    let disabled = format!("Sentry sentry_key={DISABLED_KEY}, sentry_version=7");
    let status = status_without_body(&proxy, &store_path(), &disabled).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");

    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_request_received_bytes_count{endpoint=\"store\"}"
        )
        .unwrap_or(0.0),
        0.0,
        "a refused body was read"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"unknown_project\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"forbidden\"}"
        ),
        Some(2.0)
    );
    assert!(upstream.requests().is_empty());
}
