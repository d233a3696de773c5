//! CORS as Relay does it, and JSON answers for unknown paths.

use crate::support::*;

#[tokio::test]
async fn preflight_is_answered_without_auth() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    for endpoint in ["store", "envelope", "security", "csp-report"] {
        let response = proxy
            .request(
                http::Method::OPTIONS,
                &format!("/api/{PROJECT}/{endpoint}/"),
            )
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "x-sentry-auth, content-type",
            )
            .send()
            .await;
        assert_eq!(response.status, 200, "{endpoint}");
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            response.header("access-control-allow-methods"),
            Some("POST")
        );
        assert_eq!(response.header("access-control-max-age"), Some("3600"));
        let allowed = response.header("access-control-allow-headers").unwrap();
        assert!(allowed.contains("x-sentry-auth") && allowed.contains("content-encoding"));
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn answers_carry_cors_headers_errors_included() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let ok = proxy.store(&canary_event()).await;
    let refused = proxy
        .post(&format!("/api/{PROJECT}/store/"))
        .body("{}")
        .send()
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(refused.status, 401);
    for response in [&ok, &refused] {
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            response.header("access-control-expose-headers"),
            Some("x-sentry-error,x-sentry-rate-limits,retry-after")
        );
    }
}

#[tokio::test]
async fn other_paths_and_methods() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    for path in [
        "/",
        "/api/42/minidump/x",
        "/api/42/unknown/",
        "/api/42/store",
        "/metrics",
    ] {
        let response = proxy.post(path).body("{}").send().await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.json()["detail"], "not found");
        assert_eq!(response.header("content-type"), Some("application/json"));
    }
    let response = proxy
        .request(http::Method::GET, &format!("/api/{PROJECT}/store/"))
        .send()
        .await;
    assert_eq!(response.status, 405);
    assert!(response.json()["detail"].is_string());
    // A bare OPTIONS is not a preflight.
    let response = proxy
        .request(http::Method::OPTIONS, &format!("/api/{PROJECT}/store/"))
        .send()
        .await;
    assert_eq!(response.status, 405);
}
