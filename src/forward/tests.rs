use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::server::error::IngestError;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus::Registry;
use tokio::net::TcpListener;

use super::*;
use crate::config::{UpstreamConfig, UpstreamEncoding};
use crate::metrics::Metrics;

/// One request as the test upstream received it.
#[derive(Debug, Clone)]
struct Recorded {
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What the test upstream does with each request.
#[derive(Clone)]
enum Behaviour {
    /// Answer with this status, headers and body.
    Answer(StatusCode, Vec<(&'static str, &'static str)>, Bytes),
    /// Answer 200 after this delay.
    Delay(Duration),
    /// Never answer.
    Stall,
}

/// A real HTTP/1.1 server on 127.0.0.1:0 that records every request.
struct TestUpstream {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    max_concurrent: Arc<AtomicUsize>,
}

impl TestUpstream {
    async fn spawn(behaviour: Behaviour) -> TestUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let max_concurrent = Arc::new(AtomicUsize::new(0));
        let concurrent = Arc::new(AtomicUsize::new(0));
        let upstream = TestUpstream {
            addr,
            requests: Arc::clone(&requests),
            connections: Arc::clone(&connections),
            max_concurrent: Arc::clone(&max_concurrent),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                connections.fetch_add(1, Ordering::SeqCst);
                let requests = Arc::clone(&requests);
                let behaviour = behaviour.clone();
                let concurrent = Arc::clone(&concurrent);
                let max_concurrent = Arc::clone(&max_concurrent);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let requests = Arc::clone(&requests);
                        let behaviour = behaviour.clone();
                        let concurrent = Arc::clone(&concurrent);
                        let max_concurrent = Arc::clone(&max_concurrent);
                        async move {
                            let now = concurrent.fetch_add(1, Ordering::SeqCst) + 1;
                            max_concurrent.fetch_max(now, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            requests.lock().unwrap().push(Recorded {
                                path_and_query: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                            });
                            let response = match behaviour {
                                Behaviour::Answer(status, headers, body) => {
                                    let mut response = Response::new(Full::new(body));
                                    *response.status_mut() = status;
                                    for (name, value) in headers {
                                        response
                                            .headers_mut()
                                            .append(name, HeaderValue::from_static(value));
                                    }
                                    response
                                }
                                Behaviour::Delay(delay) => {
                                    tokio::time::sleep(delay).await;
                                    Response::new(Full::new(Bytes::from_static(b"{}")))
                                }
                                Behaviour::Stall => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    Response::new(Full::new(Bytes::new()))
                                }
                            };
                            concurrent.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        upstream
    }

    fn url(&self, prefix: &str) -> http::Uri {
        format!("http://{}{}", self.addr, prefix).parse().unwrap()
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn upstream_config(url: Option<http::Uri>, encoding: UpstreamEncoding) -> UpstreamConfig {
    UpstreamConfig {
        url,
        encoding,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
        max_connections_per_host: 16,
        ca_certs: Vec::new(),
    }
}

fn forwarder(cfg: &UpstreamConfig) -> (Forwarder, Registry) {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry);
    let dir = std::env::temp_dir();
    (Forwarder::new(cfg, &dir, metrics).unwrap(), registry)
}

const EVENT: &[u8] = br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"[Filtered]"}"#;

fn request(path: &str) -> ForwardRequest {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-sentry-auth",
        HeaderValue::from_static(
            "Sentry sentry_key=a4f6c2d8e1b34f7a9c0d5e2b8f1a3c6d, sentry_version=7",
        ),
    );
    headers.insert(
        "user-agent",
        HeaderValue::from_static("sentry.python/2.1.0"),
    );
    // Framing headers from the original request must not leak through.
    headers.insert("content-length", HeaderValue::from_static("99999"));
    headers.insert("content-encoding", HeaderValue::from_static("br"));
    headers.insert("host", HeaderValue::from_static("scrubgate.example"));
    headers.insert("connection", HeaderValue::from_static("close"));
    ForwardRequest {
        path_and_query: path.to_owned(),
        headers,
        body: Bytes::from_static(EVENT),
        content_type: HeaderValue::from_static("application/json"),
        event_id: Some("9ec79c33ec9942ab8353589fcb2e04dc".to_owned()),
    }
}

fn series(registry: &Registry, name: &str) -> Option<f64> {
    Metrics::render(registry)
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn forwards_gzip_body_and_relays_the_answer_with_rate_limit_headers() {
    let upstream = TestUpstream::spawn(Behaviour::Answer(
        StatusCode::TOO_MANY_REQUESTS,
        vec![
            ("retry-after", "60"),
            ("x-sentry-rate-limits", "60:error:organization"),
            ("content-type", "application/json"),
            ("x-internal-debug", "must-not-be-relayed"),
        ],
        Bytes::from_static(br#"{"detail":"rate limited"}"#),
    ))
    .await;
    let cfg = upstream_config(Some(upstream.url("")), UpstreamEncoding::Gzip);
    let (forwarder, registry) = forwarder(&cfg);
    assert!(!forwarder.is_outbox());

    let answer = forwarder.forward(request("/api/42/store/")).await.unwrap();
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers.len(), 3, "{:?}", answer.headers);
    assert_eq!(answer.headers["retry-after"], "60");
    assert_eq!(
        answer.headers["x-sentry-rate-limits"],
        "60:error:organization"
    );
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(&answer.body[..], br#"{"detail":"rate limited"}"#);

    let recorded = upstream.requests();
    assert_eq!(recorded.len(), 1);
    let got = &recorded[0];
    assert_eq!(got.path_and_query, "/api/42/store/");
    assert_eq!(got.headers["content-encoding"], "gzip");
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(
        got.headers["x-sentry-auth"],
        "Sentry sentry_key=a4f6c2d8e1b34f7a9c0d5e2b8f1a3c6d, sentry_version=7"
    );
    assert_eq!(got.headers["user-agent"], "sentry.python/2.1.0");
    assert_eq!(got.headers["host"], upstream.addr.to_string().as_str());
    assert_eq!(
        got.headers["content-length"],
        got.body.len().to_string().as_str()
    );
    assert_ne!(
        got.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    assert_eq!(gunzip(&got.body), EVENT);

    assert_eq!(
        series(
            &registry,
            "scrubgate_upstream_request_duration_seconds_count{status_class=\"4xx\"}"
        ),
        Some(1.0)
    );
    assert_eq!(series(&registry, "scrubgate_upstream_in_flight"), Some(0.0));
}

#[tokio::test]
async fn zstd_and_identity_encodings() {
    let upstream = TestUpstream::spawn(Behaviour::Answer(
        StatusCode::OK,
        vec![],
        Bytes::from_static(b"{}"),
    ))
    .await;

    let (zstd, _) = forwarder(&upstream_config(
        Some(upstream.url("")),
        UpstreamEncoding::Zstd,
    ));
    zstd.forward(request("/api/42/envelope/")).await.unwrap();
    let (identity, _) = forwarder(&upstream_config(
        Some(upstream.url("")),
        UpstreamEncoding::Identity,
    ));
    identity
        .forward(request("/api/42/envelope/"))
        .await
        .unwrap();

    let recorded = upstream.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].headers["content-encoding"], "zstd");
    assert_eq!(zstd::decode_all(&recorded[0].body[..]).unwrap(), EVENT);
    assert!(recorded[1].headers.get("content-encoding").is_none());
    assert_eq!(&recorded[1].body[..], EVENT);
}

#[tokio::test]
async fn large_bodies_are_encoded_too() {
    let upstream = TestUpstream::spawn(Behaviour::Answer(
        StatusCode::OK,
        vec![],
        Bytes::from_static(b"{}"),
    ))
    .await;
    let (forwarder, _) = forwarder(&upstream_config(
        Some(upstream.url("")),
        UpstreamEncoding::Gzip,
    ));
    // Over the blocking-pool threshold.
    let body: Vec<u8> = (0..400_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let mut req = request("/api/42/envelope/");
    req.body = Bytes::from(body.clone());
    forwarder.forward(req).await.unwrap();
    assert_eq!(gunzip(&upstream.requests()[0].body), body);
}

#[tokio::test]
async fn base_url_path_prefix_and_query_are_kept() {
    let upstream = TestUpstream::spawn(Behaviour::Answer(
        StatusCode::OK,
        vec![],
        Bytes::from_static(b"{}"),
    ))
    .await;
    let (forwarder, _) = forwarder(&upstream_config(
        Some(upstream.url("/ingest")),
        UpstreamEncoding::Identity,
    ));
    forwarder
        .forward(request("/api/42/store/?sentry_version=7"))
        .await
        .unwrap();
    assert_eq!(
        upstream.requests()[0].path_and_query,
        "/ingest/api/42/store/?sentry_version=7"
    );
}

#[tokio::test]
async fn connections_are_kept_alive_and_reused() {
    let upstream = TestUpstream::spawn(Behaviour::Answer(
        StatusCode::OK,
        vec![],
        Bytes::from_static(b"{}"),
    ))
    .await;
    let (forwarder, _) = forwarder(&upstream_config(
        Some(upstream.url("")),
        UpstreamEncoding::Gzip,
    ));
    for _ in 0..5 {
        forwarder.forward(request("/api/42/store/")).await.unwrap();
    }
    assert_eq!(upstream.requests().len(), 5);
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_requests_are_bounded_by_max_connections_per_host() {
    let upstream = TestUpstream::spawn(Behaviour::Delay(Duration::from_millis(50))).await;
    let mut cfg = upstream_config(Some(upstream.url("")), UpstreamEncoding::Identity);
    cfg.max_connections_per_host = 2;
    let (forwarder, _) = forwarder(&cfg);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let forwarder = forwarder.clone();
            tokio::spawn(async move { forwarder.forward(request("/api/42/store/")).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status, StatusCode::OK);
    }
    assert_eq!(upstream.requests().len(), 6);
    assert_eq!(upstream.max_concurrent.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_stalled_upstream_times_out_as_503() {
    let upstream = TestUpstream::spawn(Behaviour::Stall).await;
    let mut cfg = upstream_config(Some(upstream.url("")), UpstreamEncoding::Gzip);
    cfg.timeout = Duration::from_millis(200);
    let (forwarder, registry) = forwarder(&cfg);
    let started = std::time::Instant::now();
    let err = forwarder
        .forward(request("/api/42/store/"))
        .await
        .unwrap_err();
    assert!(matches!(err, ForwardError::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        IngestError::Forward(err).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        series(
            &registry,
            "scrubgate_upstream_request_duration_seconds_count{status_class=\"timeout\"}"
        ),
        Some(1.0)
    );
    assert_eq!(series(&registry, "scrubgate_upstream_in_flight"), Some(0.0));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url: http::Uri = format!("http://{addr}").parse().unwrap();
    let (forwarder, registry) = forwarder(&upstream_config(Some(url), UpstreamEncoding::Gzip));
    let err = forwarder
        .forward(request("/api/42/store/"))
        .await
        .unwrap_err();
    assert!(matches!(err, ForwardError::Connect(_)), "{err:?}");
    assert_eq!(
        IngestError::Forward(err).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        series(
            &registry,
            "scrubgate_upstream_request_duration_seconds_count{status_class=\"error\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let big: &'static [u8] =
        Box::leak(vec![b'x'; client::MAX_RESPONSE_BODY + 1].into_boxed_slice());
    let upstream = TestUpstream::spawn(Behaviour::Answer(
        StatusCode::OK,
        vec![],
        Bytes::from_static(big),
    ))
    .await;
    let (forwarder, _) = forwarder(&upstream_config(
        Some(upstream.url("")),
        UpstreamEncoding::Gzip,
    ));
    let err = forwarder
        .forward(request("/api/42/store/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ForwardError::ResponseTooLarge { .. }),
        "{err:?}"
    );
    assert_eq!(IngestError::Forward(err).status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_path_without_leading_slash_is_refused() {
    let url: http::Uri = "http://127.0.0.1:9".parse().unwrap();
    let (forwarder, _) = forwarder(&upstream_config(Some(url), UpstreamEncoding::Gzip));
    let err = forwarder
        .forward(request("api/42/store/"))
        .await
        .unwrap_err();
    assert!(matches!(err, ForwardError::InvalidPath), "{err:?}");
    assert_eq!(
        IngestError::Forward(err).status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn the_outbox_records_one_line_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested/data");
    let registry = Registry::new();
    let forwarder = Forwarder::new(
        &upstream_config(None, UpstreamEncoding::Gzip),
        &data_dir,
        Metrics::register(&registry),
    )
    .unwrap();
    assert!(forwarder.is_outbox());
    assert!(forwarder.target().ends_with("outbox.jsonl"));

    let mut first = request("/api/42/store/");
    first.headers.remove("content-length");
    first.headers.remove("content-encoding");
    first.headers.remove("host");
    first.headers.remove("connection");
    let answer = forwarder.forward(first).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(
        &answer.body[..],
        br#"{"id":"9ec79c33ec9942ab8353589fcb2e04dc"}"#
    );

    let mut second = request("/api/42/envelope/");
    second.headers = HeaderMap::new();
    second.event_id = None;
    second.content_type = HeaderValue::from_static("application/x-sentry-envelope");
    second.body = Bytes::from_static(b"{}\n{\"type\":\"attachment\"}\n\xff\xfe\x00");
    let answer = forwarder.forward(second).await.unwrap();
    assert_eq!(&answer.body[..], b"{}");

    let text = std::fs::read_to_string(data_dir.join("outbox.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);

    let first = &lines[0];
    assert_eq!(first["path"], "/api/42/store/");
    assert_eq!(first["event_id"], "9ec79c33ec9942ab8353589fcb2e04dc");
    assert_eq!(first["content_type"], "application/json");
    assert_eq!(first["body_encoding"], "utf-8");
    assert_eq!(first["body"], std::str::from_utf8(EVENT).unwrap());
    assert_eq!(first["headers"]["user-agent"], "sentry.python/2.1.0");
    assert_eq!(
        first["headers"]["x-sentry-auth"],
        "Sentry sentry_key=a4f6c2d8e1b34f7a9c0d5e2b8f1a3c6d, sentry_version=7"
    );
    let ts = first["ts"].as_str().unwrap();
    assert_eq!(ts.len(), "2025-01-31T12:00:00.123Z".len(), "{ts}");
    assert!(ts.ends_with('Z'));

    let second = &lines[1];
    assert_eq!(second["path"], "/api/42/envelope/");
    assert!(second.get("event_id").is_none());
    assert_eq!(second["body_encoding"], "base64");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(second["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, b"{}\n{\"type\":\"attachment\"}\n\xff\xfe\x00");
    assert_eq!(second["headers"], serde_json::json!({}));
}

#[tokio::test]
async fn concurrent_outbox_writes_keep_lines_whole() {
    let dir = tempfile::tempdir().unwrap();
    let forwarder = Forwarder::new(
        &upstream_config(None, UpstreamEncoding::Gzip),
        dir.path(),
        Metrics::register(&Registry::new()),
    )
    .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let forwarder = forwarder.clone();
            tokio::spawn(async move {
                let mut req = request("/api/42/store/");
                req.body = Bytes::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(50_000)));
                forwarder.forward(req).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let text = std::fs::read_to_string(dir.path().join("outbox.jsonl")).unwrap();
    let mut seen: Vec<u64> = text
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let body: serde_json::Value =
                serde_json::from_str(line["body"].as_str().unwrap()).unwrap();
            body["n"].as_u64().unwrap()
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
}

#[test]
fn outbox_creation_failure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let err = Forwarder::new(
        &upstream_config(None, UpstreamEncoding::Gzip),
        &file.join("data"),
        Metrics::register(&Registry::new()),
    )
    .unwrap_err();
    assert!(matches!(err, ForwardError::Outbox { .. }), "{err:?}");
}

#[test]
fn a_hand_built_non_http_upstream_is_refused() {
    for url in ["ftp://sentry.io", "/just/a/path"] {
        let cfg = upstream_config(Some(url.parse().unwrap()), UpstreamEncoding::Gzip);
        let err = Forwarder::new(
            &cfg,
            &std::env::temp_dir(),
            Metrics::register(&Registry::new()),
        )
        .unwrap_err();
        assert!(
            matches!(err, ForwardError::InvalidUpstreamUrl),
            "{url}: {err:?}"
        );
    }
}

#[test]
fn failure_lines_are_rate_limited_and_count_what_they_stand_for() {
    let log = FailureLog::default();
    assert_eq!(log.failed(), Some(0), "the first failure is logged");
    for _ in 0..500 {
        assert_eq!(
            log.failed(),
            None,
            "within the interval: counted, not logged"
        );
    }
    // As if the interval had passed since the last line.
    if let Some((last, _)) = log.state.lock().unwrap().as_mut() {
        *last -= FAILURE_LOG_INTERVAL;
    }
    assert_eq!(
        log.failed(),
        Some(500),
        "the next line says how many it stands for"
    );
    assert_eq!(log.failed(), None);
}
