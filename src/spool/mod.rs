//! The durable spool: scrubbed requests the upstream could not take, kept on disk until
//! they are delivered.
//!
//! - [`Spool::append`] stores one request and returns once it is on disk: a writer thread
//!   commits every request waiting at that moment in one SQLite transaction (group
//!   commit), with `synchronous = FULL` in WAL mode, so a 200 answered from the spool
//!   survives a SIGKILL or a power cut. SQLite's journal detects a torn tail; a
//!   transaction that did not commit is never read back. Only scrubbed bytes are ever
//!   written here.
//! - [`Breaker`] knows whether the upstream is up, down or being probed: while it is down,
//!   requests go straight to the spool instead of each waiting for a timeout.
//! - The drainer ([`Spool::spawn_drainer`]) replays entries oldest first, with exponential
//!   backoff and jitter while the upstream fails. A 429's `X-Sentry-Rate-Limits` (else
//!   `Retry-After`) holds back the entries of the limited categories while the others go
//!   on ([`limits`]). An entry the upstream refuses with another 4xx is
//!   dropped and counted as rejected; entries older than `spool.max_age` are dropped and
//!   counted as expired.
//!
//! Delivery is at least once: an entry whose delivery succeeded upstream but whose answer
//! was lost (a timeout after the store accepted it) is sent again.
//!
//! SQLite (through rusqlite, as Relay's own spool uses it) gives atomic, checksummed
//! commits and crash recovery without a format of our own.

mod delivery;
mod held;
mod limits;
mod store;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::{oneshot, watch, Notify};

use crate::config::SpoolConfig;
use crate::forward::{ForwardError, ForwardRequest, Forwarder};
use crate::metrics::{Metrics, SpoolEvent, UpstreamStateLabel};
pub use delivery::{Delivered, Delivery, DeliveryError};
use held::HeldBack;
use limits::RateLimits;
pub use store::SpoolError;
use store::{Entry, Store};

/// Longest pause between two attempts while the upstream fails: a store that is back
/// gets requests directly again within about this long (each probe is one request).
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// First pause after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Entries read per drain round.
const BATCH: usize = 32;
/// 5xx answers in a row, within one drain round, that count as the upstream failing
/// rather than as entries it cannot take.
const MAX_SUSPECTS: usize = 3;
/// How often expired entries are looked for.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(10);

/// The upstream's state as the breaker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// Requests are delivered synchronously.
    Up = 0,
    /// The upstream failed: requests are spooled; the drainer probes it.
    Down = 1,
    /// The drainer is trying the upstream again.
    Probing = 2,
}

/// The circuit breaker in front of the upstream.
#[derive(Debug, Default)]
pub struct Breaker {
    state: AtomicU8,
    /// Unix milliseconds of the next probe while down.
    next_probe_ms: AtomicU64,
}

impl Breaker {
    /// The current state.
    pub fn state(&self) -> UpstreamState {
        match self.state.load(Ordering::Acquire) {
            1 => UpstreamState::Down,
            2 => UpstreamState::Probing,
            _ => UpstreamState::Up,
        }
    }

    /// True while requests should skip the upstream.
    pub fn is_open(&self) -> bool {
        self.state() != UpstreamState::Up
    }

    /// Seconds until the next probe (at least 1), for `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        let next = self.next_probe_ms.load(Ordering::Acquire);
        next.saturating_sub(now_ms()).div_ceil(1000).max(1)
    }

    fn set(&self, state: UpstreamState) -> UpstreamState {
        let previous = self.state.swap(state as u8, Ordering::AcqRel);
        match previous {
            1 => UpstreamState::Down,
            2 => UpstreamState::Probing,
            _ => UpstreamState::Up,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The spool: a store on disk, the breaker, and what the drainer needs.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    breaker: Breaker,
    wake: Notify,
    max_age: Duration,
    /// Entries replayed at once.
    drain_concurrency: usize,
    metrics: Metrics,
    /// Set when a request was refused as over `spool.max_bytes`; cleared when entries
    /// leave the spool.
    refusing: AtomicBool,
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`; it records into `metrics`.
    ///
    /// # Errors
    ///
    /// [`SpoolError`] when the directory or database cannot be created or opened.
    pub fn open(config: &SpoolConfig, metrics: Metrics) -> Result<Spool, SpoolError> {
        let store = Store::open(&config.dir, config.max_bytes)?;
        let spool = Spool {
            inner: Arc::new(Inner {
                store,
                breaker: Breaker::default(),
                wake: Notify::new(),
                max_age: config.max_age,
                drain_concurrency: config.drain_concurrency.max(1),
                metrics,
                refusing: AtomicBool::new(false),
            }),
        };
        spool.update_gauges();
        Ok(spool)
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// Spooled requests and their bytes now.
    pub fn size(&self) -> (u64, u64) {
        let stats = self.inner.store.stats();
        (stats.entries, stats.bytes)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.inner.store.path()
    }

    /// True while the spool takes requests (for `/readyz`): false from a request refused
    /// as over `spool.max_bytes` until entries leave the spool.
    pub fn accepts(&self) -> bool {
        !self.inner.refusing.load(Ordering::Acquire)
    }

    /// Stores `request`; returns once it is on disk.
    ///
    /// # Errors
    ///
    /// [`SpoolError::Full`] when it would pass `spool.max_bytes`; [`SpoolError::Io`] when
    /// the write failed.
    pub async fn append(&self, request: &ForwardRequest) -> Result<(), SpoolError> {
        let entry = Entry::from_request(request);
        let (done, wait) = oneshot::channel();
        if let Err(error) = self.inner.store.append(entry, done) {
            if matches!(error, SpoolError::Full) {
                self.inner.refusing.store(true, Ordering::Release);
            }
            return Err(error);
        }
        let result = wait.await.unwrap_or(Err(SpoolError::Closed));
        if result.is_ok() {
            self.inner
                .metrics
                .record_spool_events(SpoolEvent::Spooled, 1);
            self.update_gauges();
            self.inner.wake.notify_one();
        }
        result
    }

    /// Marks the upstream down after a failure (the drainer will probe it).
    pub fn upstream_failed(&self) {
        let breaker = &self.inner.breaker;
        if breaker.state() == UpstreamState::Up {
            // A failure that raced with an open breaker keeps the drainer's probe time.
            breaker
                .next_probe_ms
                .store(now_ms() + MIN_BACKOFF.as_millis() as u64, Ordering::Release);
        }
        match breaker.set(UpstreamState::Down) {
            UpstreamState::Up => {
                tracing::warn!("upstream down: spooling requests until it answers again");
                self.inner
                    .metrics
                    .show_upstream_state(UpstreamStateLabel::Down);
            }
            // A failed probe: down again until the next one.
            UpstreamState::Probing => self
                .inner
                .metrics
                .show_upstream_state(UpstreamStateLabel::Down),
            UpstreamState::Down => {}
        }
        self.inner.wake.notify_one();
    }

    /// Entries left the spool: it has room again.
    fn removed(&self) {
        self.inner.refusing.store(false, Ordering::Release);
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let stats = self.inner.store.stats();
        let age = stats
            .oldest_ms
            .map_or(0, |oldest| now_ms().saturating_sub(oldest) / 1000);
        self.inner
            .metrics
            .set_spool_size(stats.bytes, stats.entries, age);
    }

    /// Replays the spool through `forwarder` until `shutdown` turns true.
    pub fn spawn_drainer(
        &self,
        forwarder: Forwarder,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let spool = self.clone();
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            let mut limits = RateLimits::default();
            let mut held = HeldBack::default();
            let mut last_expiry = Instant::now() - EXPIRY_INTERVAL;
            loop {
                if *shutdown.borrow() {
                    return;
                }
                if last_expiry.elapsed() >= EXPIRY_INTERVAL {
                    last_expiry = Instant::now();
                    spool.expire().await;
                }
                let pause = match spool.drain_round(&forwarder, &mut limits, &mut held).await {
                    Round::Empty(wait) => Some(wait),
                    Round::Progress => {
                        backoff = MIN_BACKOFF;
                        None
                    }
                    Round::Failed => {
                        let wait = jitter(backoff);
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        spool
                            .inner
                            .breaker
                            .next_probe_ms
                            .store(now_ms() + wait.as_millis() as u64, Ordering::Release);
                        Some(wait)
                    }
                    Round::RateLimited(wait) => Some(wait),
                };
                if let Some(pause) = pause {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = spool.inner.wake.notified(), if !spool.inner.breaker.is_open() => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        })
    }

    /// Drops entries older than `spool.max_age`.
    async fn expire(&self) {
        let cutoff = now_ms().saturating_sub(self.inner.max_age.as_millis() as u64);
        let store = self.inner.store.clone();
        let expired = tokio::task::spawn_blocking(move || store.expire(cutoff))
            .await
            .unwrap_or(Ok(0));
        match expired {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    expired = n,
                    "spooled requests older than spool.max_age dropped"
                );
                self.inner
                    .metrics
                    .record_spool_events(SpoolEvent::Expired, n);
                self.removed();
            }
            Err(error) => tracing::warn!(%error, "spool expiry failed"),
        }
    }

    /// One pass over the spool, oldest first: each entry sent unless a rate limit of one
    /// of its categories is active or it is held back, until the upstream fails.
    ///
    /// A 5xx answer makes an entry a suspect. When the upstream then takes a later entry
    /// (2xx, or a 4xx it answered), the suspects are held back ([`held`]) and the rest
    /// drains; [`MAX_SUSPECTS`] 5xx answers in a row, a transport error, or the end of
    /// the spool with suspects left, count as the upstream failing, and the order of
    /// the spool is kept. A held entry answered 5xx again just waits longer.
    async fn drain_round(
        &self,
        forwarder: &Forwarder,
        limits: &mut RateLimits,
        held: &mut HeldBack,
    ) -> Round {
        let mut after = 0;
        let (mut sent, mut skipped) = (false, false);
        let mut suspects: Vec<(i64, Option<String>)> = Vec::new();
        let mut seen_held = std::collections::HashSet::new();
        let page_size = BATCH.max(self.inner.drain_concurrency);
        loop {
            let store = self.inner.store.clone();
            let page = tokio::task::spawn_blocking(move || store.page(after, page_size)).await;
            let batch = match page {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot read the spool");
                    return Round::Failed;
                }
                Err(_) => return Round::Failed,
            };
            if batch.is_empty() {
                break;
            }
            let breaker = &self.inner.breaker;
            if breaker.is_open() && breaker.set(UpstreamState::Probing) != UpstreamState::Probing {
                self.inner
                    .metrics
                    .show_upstream_state(UpstreamStateLabel::Probing);
            }
            let mut batch = batch.into_iter();
            loop {
                // The next entries that may go now, sent at once; their answers are then
                // taken in spool order, as if they had been sent one after another.
                let mut chunk = Vec::with_capacity(self.inner.drain_concurrency);
                let now = Instant::now();
                for (id, entry) in batch.by_ref() {
                    after = id;
                    if held.contains(id) {
                        seen_held.insert(id);
                        if held.blocks(id, now) {
                            skipped = true;
                            continue;
                        }
                    }
                    let categories = limits::categories(&entry.path_and_query, &entry.body);
                    if limits.blocks(&categories, now) {
                        skipped = true;
                        continue;
                    }
                    let event_id = entry.event_id.clone();
                    let forwarder = forwarder.clone();
                    let request = entry.into_request();
                    let sending = tokio::spawn(async move { forwarder.forward(request).await });
                    chunk.push((id, event_id, sending));
                    if chunk.len() == self.inner.drain_concurrency {
                        break;
                    }
                }
                if chunk.is_empty() {
                    break;
                }
                let mut failed = false;
                // Entries the upstream settled, deleted together after the chunk.
                let mut settled: Vec<(i64, SpoolEvent)> = Vec::with_capacity(chunk.len());
                for (id, event_id, sending) in chunk {
                    // A send task that panicked or was cancelled counts as a failure.
                    let Ok(result) = sending.await else {
                        failed = true;
                        continue;
                    };
                    let outcome = match result {
                        Ok(answer) if answer.status.is_success() => SpoolEvent::Replayed,
                        // After a failure in this chunk, only what the upstream took is
                        // settled; everything else stays for the next round.
                        _ if failed => continue,
                        Ok(answer) if answer.status == StatusCode::TOO_MANY_REQUESTS => {
                            // The upstream answers: it is up, and this entry waits.
                            self.set_up();
                            limits.update(&answer.headers, Instant::now());
                            skipped = true;
                            continue;
                        }
                        Ok(answer) if answer.status.is_client_error() => SpoolEvent::Rejected,
                        Ok(answer) if answer.status.is_server_error() && held.contains(id) => {
                            // Held already: it waits again, and says nothing of the upstream.
                            held.hold(id, Instant::now());
                            skipped = true;
                            continue;
                        }
                        Ok(answer) if suspects.len() + 1 < MAX_SUSPECTS => {
                            tracing::debug!(status = %answer.status, "a spooled request got a 5xx");
                            suspects.push((id, event_id));
                            continue;
                        }
                        Ok(_) | Err(_) => {
                            failed = true;
                            continue;
                        }
                    };
                    if !failed {
                        // The upstream took this one: the suspects before it are held back.
                        self.set_up();
                        for (suspect, suspect_event) in suspects.drain(..) {
                            let strikes = held.hold(suspect, Instant::now());
                            seen_held.insert(suspect);
                            skipped = true;
                            self.inner
                                .metrics
                                .record_spool_events(SpoolEvent::HeldBack, 1);
                            tracing::warn!(
                                event_id = suspect_event.as_deref().unwrap_or("-"),
                                strikes,
                                "the upstream answers 5xx to a spooled request while it takes the \
                                 others; retried on its own backoff until spool.max_age"
                            );
                        }
                    }
                    held.release(id);
                    settled.push((id, outcome));
                }
                if !settled.is_empty() {
                    let ids: Vec<i64> = settled.iter().map(|(id, _)| *id).collect();
                    if let Err(error) = self.delete_many(ids).await {
                        tracing::warn!(%error, "cannot delete delivered spool entries");
                        return Round::Failed;
                    }
                    for (_, outcome) in &settled {
                        if *outcome == SpoolEvent::Rejected {
                            tracing::warn!("the upstream refused a spooled request; dropped");
                        }
                        self.inner.metrics.record_spool_events(*outcome, 1);
                    }
                    self.removed();
                    sent = true;
                }
                if failed {
                    self.upstream_failed();
                    return Round::Failed;
                }
            }
        }
        // A full pass: what is held and no longer spooled (expired) is forgotten.
        held.retain(|id| seen_held.contains(&id));
        if !suspects.is_empty() {
            // Nothing after them was taken: the upstream may be what fails.
            self.upstream_failed();
            return Round::Failed;
        }
        if sent {
            return Round::Progress;
        }
        if skipped {
            let now = Instant::now();
            let wait = [limits.next_expiry(now), held.next_retry(now)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(MIN_BACKOFF);
            return Round::RateLimited(wait);
        }
        let breaker = &self.inner.breaker;
        if breaker.is_open() {
            let wait = breaker.next_probe_ms.load(Ordering::Acquire);
            let wait = Duration::from_millis(wait.saturating_sub(now_ms()));
            if !wait.is_zero() {
                // A request that failed may still be on its way into the spool.
                return Round::Empty(wait);
            }
            // Nothing to probe with: the next request tries the upstream itself.
            self.set_up();
        }
        Round::Empty(EXPIRY_INTERVAL)
    }

    async fn delete_many(&self, ids: Vec<i64>) -> Result<(), SpoolError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.delete_many(&ids))
            .await
            .unwrap_or(Err(SpoolError::Closed))
    }

    fn set_up(&self) {
        if self.inner.breaker.set(UpstreamState::Up) != UpstreamState::Up {
            tracing::info!("upstream up: delivering synchronously again");
            self.inner
                .metrics
                .show_upstream_state(UpstreamStateLabel::Up);
        }
    }
}

/// What one drain round came to.
enum Round {
    /// Nothing spooled; look again after this long (or when woken).
    Empty(Duration),
    Progress,
    Failed,
    RateLimited(Duration),
}

/// `wait` with up to 25% random jitter either way.
fn jitter(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::getrandom(&mut byte);
    let factor = 0.75 + f64::from(byte[0]) / 255.0 * 0.5;
    wait.mul_f64(factor)
}

/// Whether a failed delivery should be spooled: the upstream may take it later.
pub fn is_retryable(error: &ForwardError) -> bool {
    matches!(
        error,
        ForwardError::Connect(_)
            | ForwardError::Timeout(_)
            | ForwardError::Request(_)
            | ForwardError::Response(_)
    )
}

/// Headers stored with an entry: name and value pairs.
fn encode_headers(headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.push(b'\n');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

fn decode_headers(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut lines = data.split(|&b| b == b'\n');
    while let (Some(name), Some(value)) = (lines.next(), lines.next()) {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}

impl Entry {
    fn from_request(request: &ForwardRequest) -> Entry {
        Entry {
            path_and_query: request.path_and_query.clone(),
            headers: encode_headers(&request.headers),
            content_type: request.content_type.as_bytes().to_vec(),
            body: request.body.to_vec(),
            event_id: request.event_id.clone(),
            created_ms: now_ms(),
        }
    }

    fn into_request(self) -> ForwardRequest {
        ForwardRequest {
            path_and_query: self.path_and_query,
            headers: decode_headers(&self.headers),
            body: Bytes::from(self.body),
            content_type: HeaderValue::from_bytes(&self.content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/json")),
            event_id: self.event_id,
        }
    }
}

#[cfg(test)]
mod tests;
