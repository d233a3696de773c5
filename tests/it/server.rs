//! Connection handling: HTTP/2, the in-flight bound, graceful shutdown.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::*;

#[tokio::test]
async fn http2_prior_knowledge_is_served() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("http://{}/api/{PROJECT}/store/", proxy.addr))
        .header("x-sentry-auth", auth_header())
        .body(Full::new(Bytes::from(canary_event().to_string())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("9ec79c33ec9942ab8353589fcb2e04dc"));
    assert_no_canary(&upstream.wait_for(1).await[0].text(), "http2");
}

#[tokio::test]
async fn requests_over_the_in_flight_bound_get_503_with_retry_after() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Delay(Duration::from_millis(700)));
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.server.max_in_flight = 1)
        .spawn()
        .await;
    let event = canary_event();
    let first = proxy.store(&event);
    let second = async {
        upstream.wait_for(1).await;
        proxy.store(&canary_event()).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 503, "{}", second.text());
    assert_eq!(second.header("retry-after"), Some("1"));
    // Once the first is done there is room again.
    upstream.set_mode(Mode::Normal);
    assert_eq!(proxy.store(&canary_event()).await.status, 200);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Delay(Duration::from_millis(500)));
    let mut proxy = TestProxy::spawn(&upstream).await;
    let addr = proxy.addr;
    let in_flight = tokio::spawn(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = http::Request::post(format!("http://{addr}/api/{PROJECT}/store/"))
            .header("x-sentry-auth", auth_header())
            .body(Full::new(Bytes::from(canary_event().to_string())))
            .unwrap();
        client.request(request).await.map(|r| r.status())
    });
    upstream.wait_for(1).await;
    proxy.stop_now().await;
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_cuts_requests_still_running_after_the_grace_period() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Stall);
    let mut proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            c.server.shutdown_grace = Duration::from_millis(200);
            c.upstream.timeout = Duration::from_secs(30);
        })
        .spawn()
        .await;
    let addr = proxy.addr;
    let stuck = tokio::spawn(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = http::Request::post(format!("http://{addr}/api/{PROJECT}/store/"))
            .header("x-sentry-auth", auth_header())
            .body(Full::new(Bytes::from(canary_event().to_string())))
            .unwrap();
        client.request(request).await.map(|r| r.status())
    });
    upstream.wait_for(1).await;
    let started = std::time::Instant::now();
    proxy.stop_now().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stuck.await.unwrap().is_err(),
        "the stuck request got an answer"
    );
}
