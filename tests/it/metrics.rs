//! `/metrics` after traffic, `/healthz`, `/readyz`.

use crate::support::*;

#[tokio::test]
async fn metrics_expose_the_families_with_sensible_values() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    for _ in 0..3 {
        assert_eq!(proxy.store(&canary_event()).await.status, 200);
    }
    let refused = proxy
        .post(&format!("/api/{PROJECT}/store/"))
        .body("{}")
        .send()
        .await;
    assert_eq!(refused.status, 401);
    let text = proxy.scrape_metrics().await;
    let value = |series: &str| {
        metric_value(&text, series).unwrap_or_else(|| panic!("{series} missing in:\n{text}"))
    };

    assert_eq!(
        value("scrubgate_request_duration_seconds_count{endpoint=\"store\",status_class=\"2xx\"}"),
        3.0
    );
    assert_eq!(
        value("scrubgate_request_duration_seconds_count{endpoint=\"store\",status_class=\"4xx\"}"),
        1.0
    );
    let total_seconds =
        value("scrubgate_request_duration_seconds_sum{endpoint=\"store\",status_class=\"2xx\"}");
    assert!(
        total_seconds > 0.0 && total_seconds < 10.0,
        "{total_seconds}"
    );
    assert_eq!(
        value("scrubgate_request_received_bytes_count{endpoint=\"store\"}"),
        3.0
    );
    let received = value("scrubgate_request_received_bytes_sum{endpoint=\"store\"}");
    assert_eq!(received, 3.0 * canary_event().to_string().len() as f64);
    assert_eq!(
        value("scrubgate_request_decoded_bytes_count{endpoint=\"store\"}"),
        3.0
    );
    assert_eq!(
        value("scrubgate_items_total{item_type=\"event\",outcome=\"forwarded\"}"),
        3.0
    );
    assert_eq!(
        value("scrubgate_items_total{item_type=\"event\",outcome=\"unauthorized\"}"),
        1.0
    );
    assert_eq!(
        value("scrubgate_scrub_duration_seconds_count{item_type=\"event\"}"),
        3.0
    );
    assert_eq!(
        value("scrubgate_upstream_request_duration_seconds_count{status_class=\"2xx\"}"),
        3.0
    );
    assert_eq!(value("scrubgate_upstream_in_flight"), 0.0);
    assert_eq!(value("scrubgate_requests_in_flight"), 0.0);
    assert_eq!(value("scrubgate_project_configs_loaded"), 1.0);
    assert!(value("scrubgate_config_reloads_total{result=\"ok\"}") >= 1.0);
    assert!(text.contains("scrubgate_build_info{"));
    // Redactions by project, rule and method: the planted e-mail and IP were changed.
    let redactions: f64 = text
        .lines()
        .filter(|l| l.starts_with("scrubgate_redactions_total{") && l.contains("project=\"42\""))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert!(redactions >= 3.0, "{redactions}: {text}");
    assert!(text.contains("rule=\"@email"), "{text}");
}

#[tokio::test]
async fn health_and_readiness() {
    let upstream = RecordingUpstream::spawn().await;
    let mut proxy = TestProxy::spawn(&upstream).await;
    assert_eq!(proxy.admin("/healthz").await.status, 200);
    assert_eq!(proxy.admin("/readyz").await.status, 200);
    assert_eq!(proxy.admin("/nope").await.status, 404);
    // During a drain /readyz turns 503 while the admin listener still answers.
    upstream.set_mode(Mode::Delay(std::time::Duration::from_millis(800)));
    let addr = proxy.addr;
    let slow = tokio::spawn(async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let request = http::Request::post(format!("http://{addr}/api/{PROJECT}/store/"))
            .header("x-sentry-auth", auth_header())
            .body(http_body_util::Full::new(bytes::Bytes::from(
                canary_event().to_string(),
            )))
            .unwrap();
        client.request(request).await.map(|r| r.status())
    });
    upstream.wait_for(1).await;
    proxy.begin_shutdown();
    let saw_unready = eventually(std::time::Duration::from_secs(2), || async {
        proxy.admin("/readyz").await.status == 503
    })
    .await;
    assert!(saw_unready, "/readyz stayed ready during shutdown");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "in-flight request not finished"
    );
    proxy.stop_now().await;
}
