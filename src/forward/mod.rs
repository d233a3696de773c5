//! Upstream delivery: the only way a scrubbed request leaves scrubgate.
//!
//! A [`Forwarder`] sends one [`ForwardRequest`] (already scrubbed, headers already
//! filtered by the caller) either to the configured upstream over a pooled HTTP client
//! ([`client`]) or, when no upstream URL is configured, to the embedded outbox
//! ([`outbox`]), a JSON-lines file under the data directory. Delivery is synchronous:
//! the caller relays the [`UpstreamResponse`] to the SDK, or answers a [`ForwardError`]
//! as `server::error` maps it. The forwarder never changes an event; it only re-encodes
//! the body per `upstream.encoding` ([`client::encode`]: the one place bodies are
//! compressed for the upstream).

pub mod client;
pub mod outbox;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::config::UpstreamConfig;
use crate::metrics::Metrics;

/// Boxed error from a body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One scrubbed request to deliver.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    /// Path and query appended to the upstream base URL, e.g. `/api/42/envelope/`.
    /// Must start with `/`.
    pub path_and_query: String,
    /// Headers to send (already filtered by the caller: no client IP when the project
    /// scrubs IPs, no `sentry_secret`). Framing headers (`Host`, `Content-Length`,
    /// `Content-Encoding`, `Transfer-Encoding`, `Connection`, …) are replaced here.
    pub headers: HeaderMap,
    /// The scrubbed body, uncompressed.
    pub body: Bytes,
    /// `Content-Type` of the body (`application/json`,
    /// `application/x-sentry-envelope`, …).
    pub content_type: HeaderValue,
    /// The event id, when the caller knows it; the outbox answers `{"id": ...}` with it.
    pub event_id: Option<String>,
}

/// What the upstream answered, to relay to the SDK.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    /// The upstream's status.
    pub status: StatusCode,
    /// Only `Retry-After`, `X-Sentry-Rate-Limits` and `Content-Type` are kept.
    pub headers: HeaderMap,
    /// The upstream's body (at most [`client::MAX_RESPONSE_BODY`] bytes).
    pub body: Bytes,
}

/// Why a request could not be delivered. What the SDK is answered for each is decided
/// with every other error's answer, in `server::error`.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection to the upstream (refused, unresolvable, connect timeout).
    #[error("cannot connect to the upstream")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// The exchange did not finish within `upstream.timeout`.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed while sending the request or waiting for the answer.
    #[error("upstream request failed")]
    Request(#[source] hyper_util::client::legacy::Error),
    /// The upstream's answer body could not be read.
    #[error("cannot read the upstream's answer")]
    Response(#[source] BoxError),
    /// The upstream's answer body is over [`client::MAX_RESPONSE_BODY`].
    #[error("upstream answer is larger than {limit} bytes")]
    ResponseTooLarge {
        /// The cap.
        limit: usize,
    },
    /// `path_and_query` does not start with `/` or does not form a valid URI with the
    /// upstream base.
    #[error("invalid upstream request path")]
    InvalidPath,
    /// The upstream URL is not `http://` or `https://` with a host (config validation
    /// refuses such URLs; this guards hand-built configs).
    #[error("upstream URL must be http:// or https:// with a host")]
    InvalidUpstreamUrl,
    /// An `https://` upstream, but neither the system nor `upstream.ca_file` provides a
    /// root certificate to verify it with.
    #[error(
        "no root certificates to verify the https upstream: install the system's CA \
         certificates (ca-certificates) or set upstream.ca_file"
    )]
    NoTrustRoots,
    /// The TLS settings could not be built.
    #[error("cannot set up TLS for the upstream")]
    Tls(#[source] rustls::Error),
    /// Compressing the body failed.
    #[error("cannot encode the request body")]
    Encode(#[source] std::io::Error),
    /// The outbox file could not be created or written.
    #[error("cannot write to the outbox {}", path.display())]
    Outbox {
        /// The outbox file or its directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The shortest time between two "forwarding failed" lines.
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rate-limits failure logs: an outage under load is a handful of lines, not one per
/// request.
#[derive(Debug, Default)]
struct FailureLog {
    /// When the last line was logged, and the failures since then.
    state: Mutex<Option<(Instant, u64)>>,
}

impl FailureLog {
    /// Counts one failure; `Some(failures not logged since the last line)` when this one
    /// should be logged.
    fn failed(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().ok()?;
        match &mut *state {
            Some((last, suppressed)) if now.duration_since(*last) < FAILURE_LOG_INTERVAL => {
                *suppressed += 1;
                None
            }
            _ => {
                let suppressed = state.map_or(0, |(_, n)| n);
                *state = Some((now, 0));
                Some(suppressed)
            }
        }
    }
}

/// Where forwarded requests go.
#[derive(Debug, Clone)]
enum Sink {
    Upstream(Box<client::UpstreamClient>),
    Outbox(outbox::Outbox),
}

/// Delivers scrubbed requests. Cheap to clone; clones share the connection pool (or the
/// outbox file).
#[derive(Debug, Clone)]
pub struct Forwarder {
    sink: Sink,
    failures: Arc<FailureLog>,
}

impl Forwarder {
    /// A forwarder for `cfg.url`, or for the outbox `<data_dir>/outbox.jsonl` when no URL
    /// is configured. Needs no runtime; [`Forwarder::forward`] runs inside tokio.
    ///
    /// # Errors
    ///
    /// [`ForwardError::Outbox`] when the outbox directory or file cannot be created;
    /// [`ForwardError::InvalidUpstreamUrl`] for a URL that is not `http[s]://host...`;
    /// [`ForwardError::NoTrustRoots`] for an `https://` URL with no root certificates.
    pub fn new(
        cfg: &UpstreamConfig,
        data_dir: &Path,
        metrics: Metrics,
    ) -> Result<Forwarder, ForwardError> {
        let sink = match &cfg.url {
            Some(url) => Sink::Upstream(Box::new(client::UpstreamClient::new(cfg, url, metrics)?)),
            None => Sink::Outbox(outbox::Outbox::open(data_dir)?),
        };
        Ok(Forwarder {
            sink,
            failures: Arc::default(),
        })
    }

    /// Delivers one request and returns the answer to relay.
    ///
    /// # Errors
    ///
    /// See [`ForwardError`]; failures are also logged at `warn` here (without any body
    /// or header content; at most one line per [`FAILURE_LOG_INTERVAL`], which says how
    /// many failures it stands for), so callers need not log them again above `debug`.
    pub async fn forward(&self, req: ForwardRequest) -> Result<UpstreamResponse, ForwardError> {
        let result = match &self.sink {
            Sink::Upstream(client) => client.send(req).await,
            Sink::Outbox(outbox) => outbox.append(req).await,
        };
        if let Err(error) = &result {
            if let Some(suppressed) = self.failures.failed() {
                tracing::warn!(
                    error = %ErrorChain(error),
                    target = %self.target(),
                    failures_not_logged = suppressed,
                    "forwarding failed"
                );
            }
        }
        result
    }

    /// True when requests go to the embedded outbox rather than an upstream.
    pub fn is_outbox(&self) -> bool {
        matches!(self.sink, Sink::Outbox(_))
    }

    /// Where requests go, for logs: the upstream base URL or the outbox path.
    pub fn target(&self) -> String {
        match &self.sink {
            Sink::Upstream(client) => client.base_url(),
            Sink::Outbox(outbox) => outbox.path().display().to_string(),
        }
    }
}

/// Displays an error with its sources, `a: b: c`.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
