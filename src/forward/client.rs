//! The pooled HTTP client to the upstream: keep-alive connections, connect and request
//! timeouts, a bound on concurrent requests, body encoding, and upstream metrics.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{ForwardError, ForwardRequest, UpstreamResponse};
use crate::config::{UpstreamConfig, UpstreamEncoding};
use crate::metrics::{Metrics, UpstreamResult};

/// Largest upstream answer body read. Sentry answers `{"id": "..."}` or a short error;
/// anything near this size is not an ingest answer.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Bodies at least this large are compressed on the blocking pool, so that a large
/// envelope does not stall the async workers (gzip runs at roughly 100 MB/s per core:
/// 256 KiB is a few milliseconds).
const BLOCKING_ENCODE_THRESHOLD: usize = 256 * 1024;

/// How long an idle pooled connection is kept. Below the common 60-120 s idle timeouts of
/// load balancers, so we rarely reuse a connection the other side is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// gzip level: the fastest; scrubbed events are JSON and compress well even at level 1.
const GZIP_LEVEL: u32 = 1;

/// zstd level: 1 is several times faster than gzip at a better ratio on JSON.
const ZSTD_LEVEL: i32 = 1;

/// Request headers the forwarder sets itself or that only make sense hop by hop.
const REPLACED_HEADERS: &[HeaderName] = &[
    header::HOST,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_TYPE,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Answer headers relayed to the SDK.
const KEPT_RESPONSE_HEADERS: &[&str] = &["retry-after", "x-sentry-rate-limits", "content-type"];

/// Client to one upstream base URL. Cheap to clone.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    scheme: Scheme,
    authority: Authority,
    /// Path prefix of the base URL, without a trailing slash (often empty).
    prefix: Arc<str>,
    encoding: UpstreamEncoding,
    timeout: Duration,
    slots: Arc<Semaphore>,
    metrics: Metrics,
}

impl std::fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("base_url", &self.base_url())
            .field("encoding", &self.encoding)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// A client for `url` (`http[s]://host[:port][/prefix]`).
    ///
    /// Over `https://` the upstream's certificate is verified against the system's roots
    /// plus `cfg.ca_certs`, and ALPN offers HTTP/2 then HTTP/1.1: an upstream that
    /// accepts HTTP/2 (Sentry's ingest does) gets every request multiplexed on few
    /// connections. Plain `http://` is HTTP/1.1 with keep-alive: without TLS there is no
    /// ALPN to offer HTTP/2 on.
    ///
    /// # Errors
    ///
    /// [`ForwardError::InvalidUpstreamUrl`] when `url` is not `http://` or `https://` with
    /// a host; [`ForwardError::NoTrustRoots`] when an `https://` upstream has no root
    /// certificate to be verified against.
    pub fn new(
        cfg: &UpstreamConfig,
        url: &Uri,
        metrics: Metrics,
    ) -> Result<UpstreamClient, ForwardError> {
        let (scheme, authority) = match (url.scheme(), url.authority()) {
            (Some(scheme), Some(authority))
                if (*scheme == Scheme::HTTP || *scheme == Scheme::HTTPS)
                    && !authority.host().is_empty() =>
            {
                (scheme.clone(), authority.clone())
            }
            _ => return Err(ForwardError::InvalidUpstreamUrl),
        };
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(cfg.connect_timeout));
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(Duration::from_secs(60)));
        // The TLS connector passes `http://` through untouched; its roots are loaded
        // only when TLS is used.
        tcp.enforce_http(false);
        let tls = tls_config(scheme == Scheme::HTTPS, &cfg.ca_certs)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(cfg.max_connections_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(UpstreamClient {
            client,
            scheme,
            authority,
            prefix: url.path().trim_end_matches('/').into(),
            encoding: cfg.encoding,
            timeout: cfg.timeout,
            slots: Arc::new(Semaphore::new(cfg.max_connections_per_host)),
            metrics,
        })
    }

    /// The base URL, for logs.
    pub fn base_url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.prefix)
    }

    fn uri(&self, path_and_query: &str) -> Result<Uri, ForwardError> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{}", self.prefix, path_and_query))
            .build()
            .map_err(|_| ForwardError::InvalidPath)
    }

    /// Sends `req` and reads the answer, all within `upstream.timeout`.
    ///
    /// # Errors
    ///
    /// See [`ForwardError`].
    pub async fn send(&self, req: ForwardRequest) -> Result<UpstreamResponse, ForwardError> {
        if !req.path_and_query.starts_with('/') {
            return Err(ForwardError::InvalidPath);
        }
        let uri = self.uri(&req.path_and_query)?;
        let body = encode(self.encoding, req.body).await?;

        let mut headers = req.headers;
        for name in REPLACED_HEADERS {
            headers.remove(name);
        }
        headers.insert(header::CONTENT_TYPE, req.content_type);
        if let Some(token) = self.encoding.content_encoding() {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(token));
        }

        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;

        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.exchange(request)).await;
        let result = match outcome {
            Ok(result) => result,
            Err(_elapsed) => Err(ForwardError::Timeout(self.timeout)),
        };
        let label = match &result {
            Ok(response) => UpstreamResult::from_status(response.status),
            Err(ForwardError::Timeout(_)) => UpstreamResult::Timeout,
            Err(_) => UpstreamResult::Error,
        };
        self.metrics.observe_upstream(label, started.elapsed());
        result
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<UpstreamResponse, ForwardError> {
        // Waiting for a slot counts against the timeout: under overload the SDK gets a
        // 503 rather than an ever longer queue.
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let _in_flight = self.metrics.track_upstream();
        let response = self.client.request(request).await.map_err(|error| {
            if error.is_connect() {
                ForwardError::Connect(error)
            } else {
                ForwardError::Request(error)
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BODY)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    ForwardError::ResponseTooLarge {
                        limit: MAX_RESPONSE_BODY,
                    }
                } else {
                    ForwardError::Response(error)
                }
            })?
            .to_bytes();
        let mut headers = HeaderMap::new();
        for name in KEPT_RESPONSE_HEADERS {
            for value in parts.headers.get_all(*name) {
                headers.append(HeaderName::from_static(name), value.clone());
            }
        }
        Ok(UpstreamResponse {
            status: parts.status,
            headers,
            body,
        })
    }
}

/// The TLS settings for the upstream: the system's root certificates plus `extra`
/// (none are loaded for a plain `http://` upstream), TLS 1.2 and 1.3, ring's algorithms.
fn tls_config(
    https: bool,
    extra: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<rustls::ClientConfig, ForwardError> {
    let mut roots = rustls::RootCertStore::empty();
    if https {
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::warn!(%error, "cannot read some of the system's root certificates");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, ignored, "system root certificates loaded");
        let (_, bad) = roots.add_parsable_certificates(extra.iter().cloned());
        if bad > 0 {
            tracing::warn!(bad, "upstream.ca_file: some certificates are not usable");
        }
        if roots.is_empty() {
            return Err(ForwardError::NoTrustRoots);
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ForwardError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Encodes `body` per `encoding`; large bodies on the blocking pool.
///
/// # Errors
///
/// [`ForwardError::Encode`] when the compressor fails (it writes to memory, so only on
/// allocation-level trouble).
pub async fn encode(encoding: UpstreamEncoding, body: Bytes) -> Result<Bytes, ForwardError> {
    match encoding {
        UpstreamEncoding::Identity => Ok(body),
        _ if body.len() < BLOCKING_ENCODE_THRESHOLD => encode_now(encoding, &body),
        _ => tokio::task::spawn_blocking(move || encode_now(encoding, &body))
            .await
            .map_err(|join| ForwardError::Encode(std::io::Error::other(join)))?,
    }
}

fn encode_now(encoding: UpstreamEncoding, body: &[u8]) -> Result<Bytes, ForwardError> {
    match encoding {
        UpstreamEncoding::Identity => Ok(Bytes::copy_from_slice(body)),
        UpstreamEncoding::Gzip => gzip(body).map(Bytes::from),
        UpstreamEncoding::Zstd => ZSTD.with(|cell| {
            let mut slot = cell.borrow_mut();
            let compressor = match slot.as_mut() {
                Some(c) => c,
                None => slot
                    .insert(zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(ForwardError::Encode)?),
            };
            compressor
                .compress(body)
                .map(Bytes::from)
                .map_err(ForwardError::Encode)
        }),
    }
}

thread_local! {
    /// One deflate state per thread, reset per body: a fresh one costs a few hundred KiB
    /// of zeroed tables, which showed up in the load profile (memset + page faults).
    static DEFLATE: std::cell::RefCell<flate2::Compress> =
        std::cell::RefCell::new(flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false));
    /// One zstd context per thread, for the same reason.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// gzip (RFC 1952): header, raw deflate from the thread's reused state, CRC-32 and size.
fn gzip(body: &[u8]) -> Result<Vec<u8>, ForwardError> {
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    DEFLATE.with(|cell| {
        let mut deflate = cell.borrow_mut();
        deflate.reset();
        let mut out = Vec::with_capacity(body.len() / 3 + 64);
        out.extend_from_slice(&HEADER);
        loop {
            out.reserve(body.len() / 4 + 1024);
            let consumed = usize::try_from(deflate.total_in())
                .unwrap_or(body.len())
                .min(body.len());
            let status = deflate
                .compress_vec(&body[consumed..], &mut out, flate2::FlushCompress::Finish)
                .map_err(|e| ForwardError::Encode(std::io::Error::other(e)))?;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(body);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32 by definition.
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        Ok(out)
    })
}

#[cfg(test)]
mod encode_tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn reused_gzip_state_writes_valid_members() {
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for body in [&b""[..], b"hello hello hello", &big[..], b"again"] {
            let gz = encode_now(UpstreamEncoding::Gzip, body).unwrap();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, body);
            let zs = encode_now(UpstreamEncoding::Zstd, body).unwrap();
            assert_eq!(zstd::decode_all(&zs[..]).unwrap(), body);
        }
    }
}
