//! Delivery: upstream down, slow and rate limiting; client IP headers; the outbox.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// Client-IP headers a client (or a proxy in front of scrubgate) may send.
const CLIENT_IP_HEADERS: [(&str, &str); 5] = [
    ("x-forwarded-for", "203.0.113.5"),
    ("x-real-ip", "203.0.113.5"),
    ("forwarded", "for=203.0.113.5;proto=https"),
    ("cf-connecting-ip", "203.0.113.5"),
    ("true-client-ip", "203.0.113.5"),
];

/// No client-IP header, and no header value holding the client's or the peer's address.
fn assert_no_client_ip(recorded: &crate::support::upstream::Recorded, context: &str) {
    for (name, _) in CLIENT_IP_HEADERS {
        assert!(
            recorded.header(name).is_none(),
            "{name} forwarded ({context})"
        );
    }
    for (name, value) in &recorded.headers {
        if name == "host" {
            continue;
        }
        let value = value.to_str().unwrap_or_default();
        assert!(
            !value.contains("203.0.113.5") && !value.contains("127.0.0.1"),
            "{name}: {value} ({context})"
        );
    }
}

async fn store_with_ip_headers(proxy: &TestProxy) -> TestResponse {
    let mut request = proxy
        .post(&format!("/api/{PROJECT}/store/"))
        .header("x-sentry-auth", &auth_header())
        .header("user-agent", "sentry.python/2.3.1")
        .header("origin", "https://shop.example")
        .header("cookie", "sessionid=abc");
    for (name, value) in CLIENT_IP_HEADERS {
        request = request.header(name, value);
    }
    request.body(canary_event().to_string()).send().await
}

#[tokio::test]
async fn no_client_ip_header_is_forwarded_when_the_project_scrubs_ips() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    assert_eq!(store_with_ip_headers(&proxy).await.status, 200);
    let recorded = &upstream.wait_for(1).await[0];
    assert_no_client_ip(recorded, "scrubIpAddresses");
    assert_eq!(recorded.header("user-agent"), Some("sentry.python/2.3.1"));
    assert_eq!(recorded.header("origin"), Some("https://shop.example"));
    assert!(recorded.header("cookie").is_none());
}

/// A project scrubs IP addresses, and so forwards no client-IP header, when any of its
/// rules changes the user's IP, not only under `scrubIpAddresses`.
#[tokio::test]
async fn no_client_ip_header_is_forwarded_when_rules_scrub_ips() {
    let forms = [
        json!({"applications": {"$string": ["@ip"]}}),
        json!({"applications": {"$user.ip_address": ["@anything:remove"]}}),
        json!({"applications": {"$string": ["@ip:hash"]}}),
    ];
    assert_eq!(forms.len(), 3);
    for pii in forms {
        let upstream = RecordingUpstream::spawn().await;
        let proxy = TestProxy::builder(&upstream)
            .project(
                PROJECT,
                project_json(PROJECT, false, pii.clone(), json!({})),
            )
            .spawn()
            .await;
        assert_eq!(store_with_ip_headers(&proxy).await.status, 200);
        let recorded = &upstream.wait_for(1).await[0];
        assert_no_client_ip(recorded, &pii.to_string());
    }
}

#[tokio::test]
async fn the_peer_is_appended_to_x_forwarded_for_otherwise() {
    let upstream = RecordingUpstream::spawn().await;
    // Rules that never touch an IP address.
    let pii = json!({"applications": {"$string": ["@email"]}});
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, project_json(PROJECT, false, pii, json!({})))
        .spawn()
        .await;
    assert_eq!(store_with_ip_headers(&proxy).await.status, 200);
    let recorded = &upstream.wait_for(1).await[0];
    assert_eq!(
        recorded.header("x-forwarded-for"),
        Some("203.0.113.5, 127.0.0.1")
    );
    for name in [
        "x-real-ip",
        "forwarded",
        "cf-connecting-ip",
        "true-client-ip",
    ] {
        assert!(recorded.header(name).is_none(), "{name} forwarded");
    }
}

#[tokio::test]
async fn rate_limits_are_relayed() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::RateLimited {
        retry_after: "37",
        limits: "60:error;transaction:organization:quota_exceeded",
    });
    let proxy = TestProxy::spawn(&upstream).await;
    let response = proxy.store(&canary_event()).await;
    assert_eq!(response.status, 429);
    assert_eq!(response.header("retry-after"), Some("37"));
    assert_eq!(
        response.header("x-sentry-rate-limits"),
        Some("60:error;transaction:organization:quota_exceeded")
    );
    // Browsers may read them.
    let exposed = response.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("x-sentry-rate-limits") && exposed.contains("retry-after"));
    assert!(response.text().contains("RateLimited"));
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"rate_limited\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn without_the_spool_an_unreachable_upstream_is_503_with_retry_after() {
    // Nothing listens on this port once the listener is dropped.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let proxy = TestProxy::builder_without_upstream()
        .project(PROJECT, default_project())
        .configure(move |c| {
            c.upstream.url = Some(format!("http://{closed}").parse().unwrap());
            c.spool.enabled = false;
        })
        .spawn()
        .await;
    let response = proxy.store(&canary_event()).await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.header("retry-after").is_some());
    assert!(response.json()["detail"].is_string());

    // An upstream that drops connections without answering.
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.spool.enabled = false)
        .spawn()
        .await;
    let response = proxy.store(&canary_event()).await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.header("retry-after").is_some());
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"upstream_error\"}"
        ),
        Some(1.0)
    );
}

/// The certificates of a test CA file, as DER: `ca.pem` signed the TLS upstream's
/// certificate, `other-ca.pem` did not.
fn test_ca(file: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(&fixture(&format!("tls/{file}")))
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn an_https_upstream_gets_scrubbed_events_over_http2() {
    let upstream = RecordingUpstream::spawn_tls().await;
    // Both names on the certificate: the DNS name and the IP address.
    for url in [upstream.localhost_url(), upstream.url()] {
        let proxy = TestProxy::builder(&upstream)
            .project(PROJECT, default_project())
            .configure(move |c| {
                c.upstream.url = Some(url.parse().unwrap());
                c.upstream.ca_certs = test_ca("ca.pem");
            })
            .spawn()
            .await;
        let before = upstream.requests().len();
        let response = proxy.store(&canary_event()).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(
            response.json()["id"],
            "9ec79c33ec9942ab8353589fcb2e04dc",
            "the upstream's answer comes back"
        );
        let recorded = &upstream.wait_for(before + 1).await[before];
        assert_eq!(recorded.version, http::Version::HTTP_2, "ALPN chose HTTP/2");
        assert_eq!(recorded.path_and_query, format!("/api/{PROJECT}/store/"));
        assert_no_canary(&recorded.text(), "https upstream");
        assert!(recorded.text().contains("checkout failed"));
    }
}

#[tokio::test]
async fn an_https_upstream_with_an_untrusted_certificate_gets_nothing() {
    let upstream = RecordingUpstream::spawn_tls().await;
    // Neither the system's roots nor the configured CA signed the upstream's certificate.
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            c.upstream.ca_certs = test_ca("other-ca.pem");
            c.spool.enabled = false;
        })
        .spawn()
        .await;
    let response = proxy.store(&canary_event()).await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.header("retry-after").is_some());
    assert_eq!(
        response.json()["detail"],
        "upstream unavailable, retry later"
    );
    assert!(
        upstream.requests().is_empty(),
        "nothing crossed the failed handshake"
    );
}

#[tokio::test]
async fn without_the_spool_a_slow_upstream_times_out_as_503() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Stall);
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            c.upstream.timeout = Duration::from_millis(300);
            c.spool.enabled = false;
        })
        .spawn()
        .await;
    let started = Instant::now();
    let response = proxy.store(&canary_event()).await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(response.header("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The upstream did get the (scrubbed) request.
    assert_no_canary(&upstream.wait_for(1).await[0].text(), "stalled");
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_upstream_request_duration_seconds_count{status_class=\"timeout\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn without_an_upstream_the_outbox_records_scrubbed_requests() {
    let proxy = TestProxy::builder_without_upstream()
        .project(PROJECT, default_project())
        .spawn()
        .await;
    let response = proxy.store(&canary_event()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json(),
        json!({"id": "9ec79c33ec9942ab8353589fcb2e04dc"})
    );
    let text = proxy.outbox();
    assert_eq!(text.lines().count(), 1);
    assert!(text.contains(&format!("/api/{PROJECT}/store/")));
    assert_no_canary(&text, "outbox");
}
