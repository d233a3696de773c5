//! Connection safety: the first-request deadline (HTTP/1 and HTTP/2), the idle timeout,
//! the per-IP connection cap and the bounded admin listener. Real sockets, deadlines
//! made small through the config.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// The HTTP/2 connection preface (RFC 9113 section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty HTTP/2 SETTINGS frame.
const H2_EMPTY_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Sends one HTTP/1.1 GET on `stream` (kept alive) and returns the start of the answer.
async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: scrubgate\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .expect("no answer within 2 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// One GET on a fresh connection (no pooled connection to hide behind).
async fn fresh_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    get_on(&mut stream, path).await
}

async fn open_silent(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        streams.push(TcpStream::connect(addr).await.unwrap());
    }
    streams
}

#[tokio::test]
async fn silent_connections_over_max_connections_do_not_block_a_good_request() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            c.server.max_connections = 20;
            c.server.first_request_timeout = Duration::from_millis(300);
        })
        .spawn()
        .await;
    // Every connection slot is taken by a silent client, and more wait in the backlog.
    let mut silent = open_silent(proxy.addr, 25).await;
    let started = Instant::now();
    let response = proxy.store(&canary_event()).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(elapsed < Duration::from_secs(1), "served after {elapsed:?}");
    // The silent ones were cut.
    let (_, closed) = read_until_close(&mut silent[0], Duration::from_secs(1)).await;
    assert!(closed, "a silent connection is still open");
}

#[tokio::test]
async fn silent_http1_connection_is_closed_after_the_first_request_deadline() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.server.first_request_timeout = Duration::from_millis(300))
        .spawn()
        .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // Half a request head, never finished.
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_close(&mut stream, Duration::from_secs(3)).await;
    assert!(closed, "still open after 3 s");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn h2_preface_only_connection_is_closed_after_the_deadline() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.server.first_request_timeout = Duration::from_millis(300))
        .spawn()
        .await;
    for with_settings in [false, true] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(H2_PREFACE).await.unwrap();
        if with_settings {
            stream.write_all(H2_EMPTY_SETTINGS).await.unwrap();
        }
        let started = Instant::now();
        let (_, closed) = read_until_close(&mut stream, Duration::from_secs(3)).await;
        assert!(
            closed,
            "preface (settings: {with_settings}) still open after 3 s"
        );
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(2),
            "closed after {elapsed:?}"
        );
    }
    // A real HTTP/2 client is still served.
    assert_eq!(proxy.store(&canary_event()).await.status, 200);
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.server.idle_timeout = Duration::from_millis(300))
        .spawn()
        .await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let answer = get_on(&mut stream, "/").await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let started = Instant::now();
    let (_, closed) = read_until_close(&mut stream, Duration::from_secs(3)).await;
    assert!(closed, "idle connection still open after 3 s");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn per_ip_cap_refuses_the_connection_over_it_while_others_work() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.server.max_connections_per_ip = 3)
        .spawn()
        .await;
    let mut open = open_silent(proxy.addr, 3).await;
    for stream in &mut open {
        let answer = get_on(stream, "/").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    }
    // Connection 4 from the same IP is closed at accept, without an answer.
    let mut fourth = TcpStream::connect(proxy.addr).await.unwrap();
    let _ = fourth.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let (read, closed) = read_until_close(&mut fourth, Duration::from_secs(2)).await;
    assert!(closed, "connection over the cap still open");
    assert!(read.is_empty(), "{}", String::from_utf8_lossy(&read));
    // The three keep working.
    for stream in &mut open {
        let answer = get_on(stream, "/").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    }
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(&metrics, "scrubgate_connections_refused_total"),
        Some(1.0)
    );
    // Once one closes there is room again.
    drop(open.pop());
    assert!(
        eventually(Duration::from_secs(2), || async {
            let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
            let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
            let (read, _) = read_until_close(&mut stream, Duration::from_millis(500)).await;
            read.starts_with(b"HTTP/1.1 404")
        })
        .await
    );
}

/// 1,100 connections that never send a request, from the SDK's own address (a NAT, an
/// office, a load balancer in front of scrubgate): at `max_connections_per_ip` the
/// address's oldest silent connection makes room, so the SDK is still answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_the_sdks_own_address_do_not_lock_it_out() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            // The defaults: 256 per address, a 10 s first-request deadline.
            c.server.max_connections = 1024;
            c.server.max_connections_per_ip = 256;
            c.server.first_request_timeout = Duration::from_secs(10);
        })
        .spawn()
        .await;
    let silent = open_silent(proxy.addr, 1100).await;
    assert_eq!(silent.len(), 1100);
    for round in 0..5 {
        let started = Instant::now();
        let response = proxy.store(&canary_event()).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status, 200, "round {round}: {}", response.text());
        assert!(
            elapsed < Duration::from_secs(1),
            "round {round}: answered after {elapsed:?}"
        );
    }
    let metrics = proxy.scrape_metrics().await;
    let evicted = metric_value(&metrics, "scrubgate_connections_evicted_total").unwrap();
    assert!(evicted >= 800.0, "{evicted} evicted");
    assert!(
        metric_value(&metrics, "scrubgate_connections_open").unwrap() <= 256.0 + 16.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn admin_listener_survives_silent_connections() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            c.admin.max_connections = 4;
            c.admin.first_request_timeout = Duration::from_millis(300);
        })
        .spawn()
        .await;
    let mut silent = open_silent(proxy.admin_addr, 10).await;
    let started = Instant::now();
    let answer = fresh_get(proxy.admin_addr, "/healthz").await;
    let elapsed = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(elapsed < Duration::from_secs(1), "served after {elapsed:?}");
    let (_, closed) = read_until_close(&mut silent[0], Duration::from_secs(1)).await;
    assert!(closed, "a silent admin connection is still open");
}

#[tokio::test]
async fn silent_and_preface_only_connections_make_room_for_a_real_client_at_once() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            // The default deadline: far longer than the second a good client may wait.
            c.server.first_request_timeout = Duration::from_secs(10);
            c.server.max_connections = 64;
            c.server.max_connections_per_ip = 0;
        })
        .spawn()
        .await;
    let mut attackers = open_silent(proxy.addr, 100).await;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(H2_PREFACE).await.unwrap();
        stream.write_all(H2_EMPTY_SETTINGS).await.unwrap();
        attackers.push(stream);
    }
    for round in 0..5 {
        let started = Instant::now();
        let response = proxy.store(&canary_event()).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status, 200, "{}", response.text());
        assert!(
            elapsed < Duration::from_secs(1),
            "round {round}: {elapsed:?}"
        );
    }
    let metrics = proxy.scrape_metrics().await;
    let evicted = metric_value(&metrics, "scrubgate_connections_evicted_total").unwrap();
    assert!(evicted >= 1.0, "{evicted}");
    assert!(
        metric_value(&metrics, "scrubgate_connections_open").unwrap() <= 64.0,
        "{metrics}"
    );
}
