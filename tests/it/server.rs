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

/// [`crate::support::read_until_close`] as text.
async fn read_text_until_close(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
) -> (String, bool) {
    let (bytes, closed) = read_until_close(stream, limit).await;
    (String::from_utf8_lossy(&bytes).into_owned(), closed)
}

#[tokio::test]
async fn slow_headers_and_slow_bodies_time_out() {
    use tokio::io::AsyncWriteExt;
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            c.server.header_read_timeout = Duration::from_millis(300);
            c.server.body_read_timeout = Duration::from_millis(300);
        })
        .spawn()
        .await;

    // Headers never completed: the connection is closed.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(format!("POST /api/{PROJECT}/store/ HTTP/1.1\r\nhost: x\r\n").as_bytes())
        .await
        .unwrap();
    let (_, closed) = read_text_until_close(&mut stream, Duration::from_secs(3)).await;
    assert!(closed, "a connection with unfinished headers stayed open");

    // Body never completed: 408 with a JSON detail.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let head = format!(
        "POST /api/{PROJECT}/store/ HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\n\
         content-length: 1000\r\n\r\n{{\"message\": ",
        auth_header()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, _) = read_text_until_close(&mut stream, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"detail\""), "{answer}");
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_permit() {
    use tokio::io::AsyncWriteExt;
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.server.max_connections = 1)
        .spawn()
        .await;
    let request = format!(
        "POST /api/{PROJECT}/store/ HTTP/1.1\r\nhost: x\r\nx-sentry-auth: {}\r\n\
         content-length: {}\r\n\r\n{}",
        auth_header(),
        canary_event().to_string().len(),
        canary_event()
    );
    // The first connection is served and kept open (keep-alive).
    let mut first = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    first.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = read_text_until_close(&mut first, Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The second waits in the backlog while the first is open...
    let mut second = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    second.write_all(request.as_bytes()).await.unwrap();
    let (answer, _) = read_text_until_close(&mut second, Duration::from_millis(400)).await;
    assert!(answer.is_empty(), "served beyond max_connections: {answer}");
    // ...and is served once the first closes.
    drop(first);
    let (answer, _) = read_text_until_close(&mut second, Duration::from_millis(1500)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
