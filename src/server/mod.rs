//! HTTP: the ingest listener (SDK traffic) and the admin listener (`/metrics`,
//! `/healthz`, `/readyz`).
//!
//! The ingest accept loop holds at most `server.max_connections` connections open; when
//! all are taken, the oldest one that has not sent a request yet is closed to make room
//! (else the new one waits for a slot),
//! serves HTTP/1.1 and HTTP/2 on each connection (hyper-util's auto builder) with a
//! header read timeout, and bounds requests in flight (`server.max_in_flight`, 503 with
//! `Retry-After` above it). Connections from one client IP are capped
//! (`server.max_connections_per_ip`, closed at accept above it); every connection must
//! send a complete request head within `server.first_request_timeout` and is closed
//! after `server.idle_timeout` without a request in progress (HTTP/2 is also pinged);
//! see [`conn`]. The admin listener is bounded the same way (`admin.*`). On shutdown it
//! stops accepting, asks every connection to finish (`graceful_shutdown`) and gives
//! in-flight requests `server.shutdown_grace` before it cuts them.

pub mod admin;
pub mod conn;
pub mod console;
pub mod cors;
pub mod decode_pool;
pub mod drops;
pub mod error;
pub mod ingest;
pub mod routes;
pub mod samples;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::body::budget::Budget;
use crate::config::{AdminConfig, Config};
use crate::metrics::{Endpoint, ItemLabel, Metrics, StatusClass};
use crate::projects::ProjectStore;
use crate::protocol::client_ip::TrustedProxies;
use crate::protocol::envelope::ItemType;
use crate::spool::Delivery;
use admin::Readiness;
use error::IngestError;
use routes::{IngestEndpoint, Route};

/// Most concurrent HTTP/2 streams per connection; the in-flight bound applies on top.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Everything a request handler needs; shared by all connections.
#[derive(Debug)]
pub struct AppState {
    /// The validated process configuration.
    pub config: Config,
    /// Project configs in force.
    pub projects: Arc<ProjectStore>,
    /// Upstream delivery: the forwarder, the spool and the policy between them.
    pub delivery: Delivery,
    /// Metric handles.
    pub metrics: Metrics,
    /// Proxies whose `X-Forwarded-For` is believed (from `server.trusted_proxies`).
    pub trusted_proxies: TrustedProxies,
    /// Permits for requests in flight (`server.max_in_flight`).
    pub in_flight: Arc<Semaphore>,
    /// Rate-limited warnings for dropped items.
    pub drops: drops::DropLog,
    /// Rate-limited warnings for requests that failed on our side.
    pub failures: drops::FailureLog,
    /// Samples of rule hits (live and shadow) for the console.
    pub samples: samples::SampleStore,
    /// Body bytes in flight (`limits.max_body_bytes_in_flight`).
    pub budget: Budget,
    /// The threads that decode and scrub bodies off the async workers
    /// (`limits.max_decoding`).
    pub decode_pool: decode_pool::DecodePool,
}

/// Answers one request on the ingest listener: routes it, runs the ingest pipeline,
/// maps errors to JSON answers, adds CORS headers, records the request metric and logs
/// one debug line (never payloads, keys or secrets).
pub async fn handle_ingest<B>(
    state: &Arc<AppState>,
    req: Request<B>,
    peer: SocketAddr,
) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let (endpoint, project_id) = match routes::route(parts.uri.path()) {
        Route::Ingest {
            endpoint,
            project_id,
        } => (endpoint, project_id),
        Route::NotFound => {
            let response = IngestError::NotFound.to_response();
            state.metrics.observe_request(
                Endpoint::Other,
                StatusClass::from_status(response.status()),
                started.elapsed(),
            );
            tracing::debug!(%method, status = 404u16, "no such route");
            return response;
        }
    };

    if cors::is_preflight(&parts.method, &parts.headers) {
        let mut response = Response::new(Full::new(Bytes::new()));
        cors::preflight(response.headers_mut());
        state.metrics.observe_request(
            Endpoint::Other,
            StatusClass::from_status(response.status()),
            started.elapsed(),
        );
        tracing::debug!(%method, endpoint = endpoint.segment(), "cors preflight");
        return response;
    }
    let request = ingest::IngestRequest {
        endpoint,
        project_id,
        parts,
        body,
        peer,
    };
    let handled = ingest::handle(state, request).await;
    let project = handled.project;
    let mut response = match handled.result {
        Ok(response) => response,
        Err(error) => {
            record_refusal(&state.metrics, endpoint, &error);
            if error.is_server_error() && !matches!(error, IngestError::Forward(_)) {
                // The cause by its answer's text (the in-flight budget, a full spool),
                // at most one line per cause every few seconds.
                state
                    .failures
                    .failed(endpoint.segment(), project, error.detail());
            } else {
                tracing::debug!(
                    endpoint = endpoint.segment(),
                    project,
                    %error,
                    "request refused"
                );
            }
            error.to_response()
        }
    };
    cors::apply(response.headers_mut());
    let status = response.status();
    let elapsed = started.elapsed();
    state.metrics.observe_request(
        endpoint.metric_label(),
        StatusClass::from_status(status),
        elapsed,
    );
    tracing::debug!(
        %method,
        endpoint = endpoint.segment(),
        project,
        status = status.as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Counts a refused request's outcome (upstream and spool failures are counted per item
/// where they happen; 404/405 are not events).
fn record_refusal(metrics: &Metrics, endpoint: IngestEndpoint, error: &IngestError) {
    if matches!(
        error,
        IngestError::Forward(_)
            | IngestError::Spool { .. }
            | IngestError::NotFound
            | IngestError::MethodNotAllowed
    ) {
        return;
    }
    let item_type = match endpoint {
        IngestEndpoint::Store => ItemLabel::Item(ItemType::Event),
        IngestEndpoint::Envelope => ItemLabel::Envelope,
        IngestEndpoint::Security | IngestEndpoint::CspReport => ItemLabel::Item(ItemType::Security),
        IngestEndpoint::Minidump | IngestEndpoint::Attachments => {
            ItemLabel::Item(ItemType::Attachment)
        }
        IngestEndpoint::Unreal => ItemLabel::Item(ItemType::UnrealReport),
    };
    metrics.record_item(item_type, error.outcome());
}

/// The HTTP/1.1 + HTTP/2 connection builder for the ingest listener.
fn ingest_builder(config: &Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.server.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(Some(config.server.idle_timeout))
        .keep_alive_timeout(config.server.idle_timeout);
    builder
}

/// Resolves when `shutdown` turns true (or its sender is gone).
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: treat it as a shutdown.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Serves the ingest listener until `shutdown` turns true, then drains connections
/// within `server.shutdown_grace`.
pub async fn serve_ingest(
    listener: TcpListener,
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = ingest_builder(&state.config);
    let permits = Arc::new(Semaphore::new(state.config.server.max_connections.max(1)));
    let per_ip = conn::PerIpLimit::new(state.config.server.max_connections_per_ip);
    let deadlines = conn::Deadlines {
        first_request: state.config.server.first_request_timeout,
        idle: state.config.server.idle_timeout,
    };
    let mut connections = JoinSet::new();
    let waiting = conn::Waiting::default();

    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown_requested(&mut shutdown) => break,
        };
        // Every slot taken: the oldest connection that has sent nothing yet makes room
        // (if there is none, this one waits for a slot to free up).
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if waiting.evict_oldest() {
                    state.metrics.record_connection_evicted();
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_closed) => break,
                    },
                    () = shutdown_requested(&mut shutdown) => break,
                }
            }
        };
        let activity = conn::Activity::new();
        let ip_guard = match per_ip.try_acquire(peer.ip(), &activity) {
            conn::Admission::Admitted(guard) => guard,
            conn::Admission::Evicted(guard) => {
                state.metrics.record_connection_evicted();
                guard
            }
            conn::Admission::Refused => {
                state.metrics.record_connection_refused();
                tracing::debug!(
                    peer = %peer.ip(),
                    "connection refused: server.max_connections_per_ip reached"
                );
                drop(stream);
                continue;
            }
        };
        // Small answers should leave at once.
        let _ = stream.set_nodelay(true);
        let connection_guard = state.metrics.track_connection();
        waiting.push(&activity, state.config.server.max_connections);
        let service_state = Arc::clone(&state);
        let service_activity = Arc::clone(&activity);
        let service = service_fn(move |req: Request<Incoming>| {
            let state = Arc::clone(&service_state);
            let request_guard = service_activity.begin();
            async move {
                let response = handle_ingest(&state, req, peer).await;
                drop(request_guard);
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let stop = shutdown.clone();
        connections.spawn(async move {
            let result = conn::drive(connection, activity, deadlines, stop, |c| {
                c.graceful_shutdown();
            })
            .await;
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(connection_guard);
            drop(ip_guard);
            drop(permit);
        });
    }

    drop(listener);
    let grace = state.config.server.shutdown_grace;
    tracing::info!(
        open_connections = connections.len(),
        grace_secs = grace.as_secs_f64(),
        "draining connections"
    );
    // Every connection task watches `shutdown` and closes gracefully on its own.
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            cut_connections = connections.len(),
            "grace period over; closing the remaining connections"
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}

/// Serves the admin listener until `shutdown` turns true. Bounded like the ingest
/// listener: at most `admin.max_connections` open (more wait in the backlog), a header
/// read timeout, the first-request deadline and the idle timeout.
pub async fn serve_admin(
    listener: TcpListener,
    config: AdminConfig,
    idle_timeout: Duration,
    registry: Arc<Registry>,
    readiness: Arc<Readiness>,
    console: Arc<console::Console>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let deadlines = conn::Deadlines {
        first_request: config.first_request_timeout,
        idle: idle_timeout,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
            () = shutdown_requested(&mut shutdown) => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown_requested(&mut shutdown) => break,
        };
        let registry = Arc::clone(&registry);
        let readiness = Arc::clone(&readiness);
        let console = Arc::clone(&console);
        let activity = conn::Activity::new();
        let service_activity = Arc::clone(&activity);
        let service = service_fn(move |req: Request<Incoming>| {
            let request_guard = service_activity.begin();
            let registry = Arc::clone(&registry);
            let readiness = Arc::clone(&readiness);
            let console = Arc::clone(&console);
            async move {
                let response = if console::Console::serves(req.uri().path()) {
                    console.handle(req).await
                } else {
                    admin::handle(&req, &registry, &readiness)
                };
                drop(request_guard);
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _ = conn::drive(connection, activity, deadlines, stop, |c| {
                c.graceful_shutdown();
            })
            .await;
            drop(permit);
        });
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}
