//! `RecordingUpstream`: a real hyper server on `127.0.0.1:0` standing in for Sentry.
//!
//! It records every request (method, path, headers, body decoded per its
//! `Content-Encoding`) and answers as told: normally, stalled, down (connection dropped),
//! or 429 with `Retry-After` and `X-Sentry-Rate-Limits`.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

/// How the upstream answers the next requests.
#[derive(Debug, Clone)]
pub enum Mode {
    /// 200 with `{"id": "<event id>"}`.
    Normal,
    /// Never answers (the proxy's request timeout must fire).
    Stall,
    /// Answers normally after this delay.
    Delay(Duration),
    /// Accepts the connection and drops it at once without answering.
    Down,
    /// Records the request, then answers with this status and `{"detail": "..."}`.
    Status(StatusCode),
    /// This status for the request carrying `event_id`; the others answered normally.
    StatusFor {
        /// The event id (32 hex digits) of the request to fail.
        event_id: String,
        /// The status it gets.
        status: StatusCode,
    },
    /// 429 (as [`Mode::RateLimited`]) for requests whose path contains `path`; the
    /// others are answered normally.
    RateLimitedOn {
        /// Part of the path that is limited, e.g. `/store/`.
        path: &'static str,
        /// `X-Sentry-Rate-Limits` value.
        limits: &'static str,
    },
    /// 429 with these `Retry-After` and `X-Sentry-Rate-Limits` values.
    RateLimited {
        /// `Retry-After` value (seconds).
        retry_after: &'static str,
        /// `X-Sentry-Rate-Limits` value.
        limits: &'static str,
    },
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The request method.
    pub method: http::Method,
    /// The HTTP version the request came in (HTTP/2 over TLS when ALPN chose it).
    pub version: http::Version,
    /// Path and query, e.g. `/api/42/envelope/`.
    pub path_and_query: String,
    /// All request headers.
    pub headers: HeaderMap,
    /// The body as received (possibly compressed).
    pub raw_body: Bytes,
    /// The body decoded per `Content-Encoding`.
    pub body: Bytes,
    /// The status the upstream answered (after any delay), `None` when it stalled.
    pub status: Option<StatusCode>,
}

impl Recorded {
    /// The decoded body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Shared {
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Recorded>>,
    arrived: Notify,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

/// The recording upstream; dropping it stops the server.
pub struct RecordingUpstream {
    addr: SocketAddr,
    /// `https` when serving TLS (with `tests/fixtures/tls/upstream.pem`), else `http`.
    scheme: &'static str,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl RecordingUpstream {
    /// Starts a recording upstream answering normally.
    pub async fn spawn() -> Self {
        Self::start(None).await
    }

    /// Starts a recording upstream that serves TLS with the test certificate for
    /// `localhost` and `127.0.0.1` (signed by `tests/fixtures/tls/ca.pem`) and offers
    /// HTTP/2 and HTTP/1.1 by ALPN.
    pub async fn spawn_tls() -> Self {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(include_bytes!(
            "../../fixtures/tls/upstream.pem"
        ))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(include_bytes!(
            "../../fixtures/tls/upstream.key"
        ))
        .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Normal),
            requests: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
        });
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let accept_shared = shared.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(conn) => conn,
                        Err(_) => continue,
                    },
                    _ = &mut stop_rx => return,
                };
                let shared = accept_shared.clone();
                if matches!(*shared.mode.lock().unwrap(), Mode::Down) {
                    drop(stream);
                    continue;
                }
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        Some(acceptor) => {
                            // A failed handshake (an untrusting client) just ends here.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        RecordingUpstream {
            addr,
            scheme,
            shared,
            _stop: stop_tx,
        }
    }

    /// `http://127.0.0.1:<port>` (`https://` for [`RecordingUpstream::spawn_tls`]).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// `https://localhost:<port>`, for TLS: the name the test certificate is for.
    pub fn localhost_url(&self) -> String {
        format!("{}://localhost:{}", self.scheme, self.addr.port())
    }

    /// Changes how the following requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// The most requests that were being answered at once.
    pub fn max_concurrent(&self) -> usize {
        self.shared
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many requests the upstream answered with a 2xx so far (without copying them).
    pub fn accepted_count(&self) -> usize {
        let requests = self.shared.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.status.is_some_and(|s| s.is_success()))
            .count()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) until at least `n` requests arrived, then returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let notified = self.shared.arrived.notified();
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("upstream saw {} request(s), expected {n}", got.len());
            }
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    if matches!(*shared.mode.lock().unwrap(), Mode::Down) {
        // A service error makes hyper drop the (possibly pooled) connection unanswered.
        return Err(std::io::Error::other("upstream is down"));
    }
    use std::sync::atomic::Ordering;
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let answer = answer(&shared, req).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    answer
}

async fn answer(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let raw_body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let encoding = parts
        .headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_ascii_lowercase();
    let body = decode(&encoding, &raw_body);
    let event_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("event_id")
                .and_then(|id| id.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "0".repeat(32));
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut mode = shared.mode.lock().unwrap().clone();
    if let Mode::RateLimitedOn { path, limits } = mode {
        mode = if path_and_query.contains(path) {
            Mode::RateLimited {
                retry_after: "60",
                limits,
            }
        } else {
            Mode::Normal
        };
    }
    if let Mode::StatusFor {
        event_id: failed,
        status,
    } = &mode
    {
        mode = if *failed == event_id {
            Mode::Status(*status)
        } else {
            Mode::Normal
        };
    }
    let status = match &mode {
        Mode::Normal
        | Mode::Down
        | Mode::Delay(_)
        | Mode::RateLimitedOn { .. }
        | Mode::StatusFor { .. } => Some(StatusCode::OK),
        Mode::Stall => None,
        Mode::Status(status) => Some(*status),
        Mode::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
    };
    let recorded = Recorded {
        method: parts.method,
        version: parts.version,
        path_and_query,
        headers: parts.headers,
        raw_body,
        body,
        status,
    };
    shared.requests.lock().unwrap().push(recorded);
    shared.arrived.notify_waiters();

    let response = match mode {
        Mode::Normal | Mode::Down | Mode::RateLimitedOn { .. } | Mode::StatusFor { .. } => {
            ok_answer(&event_id)
        }
        Mode::Delay(delay) => {
            tokio::time::sleep(delay).await;
            ok_answer(&event_id)
        }
        Mode::Stall => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Full::new(Bytes::new()))
        }
        Mode::Status(status) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"detail":"as the test says"}"#,
            )))
            .unwrap(),
        Mode::RateLimited {
            retry_after,
            limits,
        } => Response::builder()
            .status(StatusCode::TOO_MANY_REQUESTS)
            .header("content-type", "application/json")
            .header("retry-after", retry_after)
            .header("x-sentry-rate-limits", limits)
            .body(Full::new(Bytes::from_static(
                br#"{"detail":"event submission rejected with_reason: RateLimited"}"#,
            )))
            .unwrap(),
    };
    Ok(response)
}

fn ok_answer(event_id: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!("{{\"id\":\"{event_id}\"}}"))))
        .unwrap()
}

/// Decodes a body per its `Content-Encoding` (the encodings the proxy may use upstream).
pub fn decode(encoding: &str, raw: &[u8]) -> Bytes {
    let mut out = Vec::new();
    match encoding {
        "gzip" | "x-gzip" => {
            flate2::read::GzDecoder::new(raw)
                .read_to_end(&mut out)
                .expect("upstream got invalid gzip");
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(raw)
                .read_to_end(&mut out)
                .expect("upstream got invalid deflate");
        }
        "zstd" => {
            out = zstd::decode_all(raw).expect("upstream got invalid zstd");
        }
        "br" => {
            brotli::Decompressor::new(raw, 4096)
                .read_to_end(&mut out)
                .expect("upstream got invalid br");
        }
        _ => out.extend_from_slice(raw),
    }
    Bytes::from(out)
}
