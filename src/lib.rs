//! scrubgate: a PII-scrubbing ingest proxy for Sentry-compatible error-tracking events.
//!
//! The modules, one concern each, from the ground floor up:
//!
//! - `scrub`: the engine, pure (no I/O, no tokio, no metrics): rules compiled from
//!   Relay's `piiConfig` and `datascrubbingSettings`, applied to one payload of a given
//!   item kind; bytes in, scrubbed bytes and a report out.
//! - `protocol`: Sentry's wire formats: auth payloads, envelope framing (and the item
//!   size scan that follows it while an envelope inflates), the client IP.
//! - `body`: reading request bodies within limits and every decoder for them
//!   (`Content-Encoding`, legacy base64/zlib store bodies).
//! - `projects`: project files (keys, `disabled`, scrubgate's per-project options, the
//!   compiled rules), loaded into a lock-free map and hot-reloaded.
//! - `forward`: delivery upstream (pooled client, body encoding) or to the outbox.
//! - `spool`: scrubbed requests the upstream could not take, on disk (SQLite) until the
//!   drainer delivers them; the circuit breaker in front of the upstream.
//! - `metrics`, `config`: Prometheus families; the TOML config and its environment
//!   overrides.
//! - `server`: the listeners and the life of one request (`server::ingest`: admit,
//!   authorize, read body, prepare, scrub, deliver), and the one mapping of errors to
//!   HTTP answers (`server::error`).
//! - `cli`: `check` and `scrub` commands.
//!
//! Data flow for one request:
//!
//! 1. `server` accepts the connection (bounded), routes `/api/{id}/store/` or
//!    `/api/{id}/envelope/`, and `protocol::auth` parses the auth (header, query or DSN).
//! 2. `projects` answers with the project's compiled rules and public keys (lock-free
//!    load); an unknown project or key is refused before the body is read.
//! 3. `body` reads the body within the limits (and the global byte budget) and
//!    decompresses it on the decode pool within the limits (a bomb stops at its cap, an
//!    envelope at its first oversized item); `protocol` splits it into items.
//! 4. `scrub` walks each item once with the schema of its type and returns the new bytes
//!    plus a report.
//! 5. `forward` sends the scrubbed request upstream and relays the answer; when the
//!    upstream cannot take it, `spool` keeps it and answers 200. The report feeds
//!    `metrics`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body;
pub mod cli;
pub mod config;
pub mod forward;
pub mod metrics;
pub mod projects;
pub mod protocol;
pub mod scrub;
pub mod server;
pub mod spool;

use std::future::Future;
use std::sync::Arc;

use prometheus::Registry;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::body::budget::Budget;
use crate::config::Config;
use crate::forward::{ForwardError, Forwarder};
use crate::metrics::Metrics;
use crate::projects::{process_env, ProjectStore};
use crate::protocol::client_ip::TrustedProxies;
use crate::server::admin::Readiness;
use crate::server::AppState;

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The upstream forwarder (or its outbox) could not be set up.
    #[error("cannot set up upstream delivery")]
    Forwarder(#[source] ForwardError),
    /// Loading the project configs panicked or was cancelled.
    #[error("cannot load project configs")]
    LoadProjects(#[source] tokio::task::JoinError),
    /// The spool could not be opened (`spool.dir`).
    #[error("cannot open the spool")]
    Spool(#[source] spool::SpoolError),
}

/// A started scrubgate: project configs loaded, forwarder ready, listeners bound but not
/// yet served. [`Scrubgate::serve`] runs it.
#[derive(Debug)]
pub struct Scrubgate {
    state: Arc<AppState>,
    ingest: TcpListener,
    admin: TcpListener,
    registry: Registry,
    readiness: Arc<Readiness>,
}

impl Scrubgate {
    /// Registers the metrics on `registry`, loads every project config (a file that fails
    /// is logged and counted, and the others still load) and sets up the forwarder.
    ///
    /// # Errors
    ///
    /// [`RunError::Forwarder`] when the outbox cannot be created.
    pub async fn start(
        config: Config,
        ingest: TcpListener,
        admin: TcpListener,
        registry: Registry,
    ) -> Result<Scrubgate, RunError> {
        let metrics = Metrics::register(&registry);
        let trusted_proxies = TrustedProxies::new(config.server.trusted_proxies.clone());
        let forwarder = Forwarder::new(&config.upstream, &config.data_dir, metrics.clone())
            .map_err(RunError::Forwarder)?;

        let dir = config.projects.dir.clone();
        let store_metrics = metrics.clone();
        let (projects, errors) = tokio::task::spawn_blocking(move || {
            ProjectStore::load_dir(&dir, process_env(), store_metrics)
        })
        .await
        .map_err(RunError::LoadProjects)?;
        tracing::info!(
            dir = %config.projects.dir.display(),
            loaded = projects.len(),
            failed = errors.len(),
            "project configs loaded"
        );
        tracing::info!(target = %forwarder.target(), outbox = forwarder.is_outbox(), "upstream");

        let readiness = Arc::new(Readiness::default());
        readiness.set_loaded();
        let spool = if config.spool.enabled && !forwarder.is_outbox() {
            // Once at startup: opening reads the spool's size, a short blocking query.
            let spool =
                spool::Spool::open(&config.spool, metrics.clone()).map_err(RunError::Spool)?;
            tracing::info!(path = %spool.path().display(), "spool open");
            readiness.watch_spool(spool.clone());
            Some(spool)
        } else {
            None
        };
        let in_flight = Arc::new(Semaphore::new(config.server.max_in_flight.max(1)));
        let budget = Budget::new(config.limits.max_body_bytes_in_flight);
        let decode_pool = server::decode_pool::DecodePool::new(config.limits.max_decoding);
        let state = Arc::new(AppState {
            config,
            projects: Arc::new(projects),
            delivery: spool::Delivery::new(forwarder, spool),
            metrics,
            trusted_proxies,
            in_flight,
            drops: Default::default(),
            failures: Default::default(),
            samples: Default::default(),
            budget,
            decode_pool,
        });
        Ok(Scrubgate {
            state,
            ingest,
            admin,
            registry,
            readiness,
        })
    }

    /// The project store, e.g. to reload it on SIGHUP.
    pub fn projects(&self) -> Arc<ProjectStore> {
        Arc::clone(&self.state.projects)
    }

    /// Serves both listeners until `shutdown` resolves, then stops accepting, marks
    /// `/readyz` unready, drains in-flight requests within `server.shutdown_grace` and
    /// returns. The projects directory is polled every `projects.poll_interval` meanwhile.
    ///
    /// # Errors
    ///
    /// None today; the `Result` leaves room for fatal serve errors.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
        let Scrubgate {
            state,
            ingest,
            admin,
            registry,
            readiness,
        } = self;
        let (stop_ingest, ingest_stopped) = watch::channel(false);
        let (stop_admin, admin_stopped) = watch::channel(false);

        let watcher = Arc::clone(&state.projects)
            .spawn_watcher(state.config.projects.poll_interval, ingest_stopped.clone());
        let registry = Arc::new(registry);
        let admin_listen = admin.local_addr().unwrap_or(state.config.admin.listen);
        let console = Arc::new(server::console::Console::new(
            Arc::clone(&state),
            Arc::clone(&registry),
            admin_listen,
        ));
        let admin_task = tokio::spawn(server::serve_admin(
            admin,
            state.config.admin.clone(),
            state.config.server.idle_timeout,
            registry,
            Arc::clone(&readiness),
            console,
            admin_stopped,
        ));
        let drainer = state.delivery.spool().map(|spool| {
            spool.spawn_drainer(state.delivery.forwarder().clone(), ingest_stopped.clone())
        });
        let ingest_task = tokio::spawn(server::serve_ingest(
            ingest,
            Arc::clone(&state),
            ingest_stopped,
        ));

        shutdown.await;
        tracing::info!("shutting down");
        readiness.set_shutting_down();
        let _ = stop_ingest.send(true);
        if let Err(error) = ingest_task.await {
            tracing::error!(%error, "ingest server task failed");
        }
        let _ = watcher.await;
        if let Some(drainer) = drainer {
            let _ = drainer.await;
        }
        let _ = stop_admin.send(true);
        if let Err(error) = admin_task.await {
            tracing::error!(%error, "admin server task failed");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Runs scrubgate on pre-bound listeners until `shutdown` resolves: [`Scrubgate::start`]
/// then [`Scrubgate::serve`]. Tests bind `127.0.0.1:0` and pass the listeners in.
///
/// # Errors
///
/// As [`Scrubgate::start`].
pub async fn run(
    config: Config,
    ingest: TcpListener,
    admin: TcpListener,
    registry: Registry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    Scrubgate::start(config, ingest, admin, registry)
        .await?
        .serve(shutdown)
        .await
}
