//! Every metric family, declared once, on an explicit `prometheus::Registry`.
//!
//! Other modules hold a [`Metrics`] handle (cheap to clone) and call typed methods; label
//! values come from the enums below (`as_str()`), never from strings at call sites. Every
//! label is bounded: enum labels by their enum, `project` and `rule` by the loaded
//! config ([`Metrics::record_redactions`] folds anything unknown into `unknown`).
//!
//! Families (all prefixed `scrubgate_`):
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `request_duration_seconds` | histogram | `endpoint`, `status_class` |
//! | `request_received_bytes` | histogram | `endpoint` |
//! | `request_decoded_bytes` | histogram | `endpoint` |
//! | `requests_in_flight` | gauge | |
//! | `connections_open` | gauge | |
//! | `items_total` | counter | `item_type`, `outcome` |
//! | `scrub_duration_seconds` | histogram | `item_type` |
//! | `redactions_total` | counter | `project`, `rule`, `method` |
//! | `upstream_request_duration_seconds` | histogram | `status_class` |
//! | `upstream_in_flight` | gauge | |
//! | `config_reloads_total` | counter | `result` |
//! | `project_configs_loaded` | gauge | |
//! | `build_info` | gauge | `version` |

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::scrub::{ItemKind, Method, ScrubReport};

/// Buckets for request and upstream durations, in seconds. From 0.5 ms, because the
/// proxy's own added latency is meant to stay under 2 ms at p99 and must be visible, to
/// 10 s, beyond the default upstream timeout (5 s) so that timeouts land in a real bucket.
pub const REQUEST_DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets for the engine's time per item, in seconds. From 10 µs (a small event with no
/// matching rule) to 250 ms (a megabyte event with many regex rules): scrubbing is
/// CPU-bound and far faster than a request, so it needs its own finer scale.
pub const SCRUB_DURATION_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25,
];

/// Buckets for body sizes, in bytes: powers of 4 from 256 B (a tiny session update) to
/// 256 MiB, past the default envelope limit (200 MiB), so the limits are visible.
pub const BODY_SIZE_BUCKETS: &[f64] = &[
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
];

/// The label value for rules and projects not in the loaded config.
pub const UNKNOWN: &str = "unknown";

macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $value:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $value ),+
                }
            }

            const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label_enum! {
    /// `endpoint` label: which ingest route a request took.
    Endpoint {
        /// `/api/{id}/store/`.
        Store => "store",
        /// `/api/{id}/envelope/`.
        Envelope => "envelope",
        /// `/api/{id}/security/` and `/api/{id}/csp-report/`.
        Security => "security",
        /// Anything else (404s, CORS preflights).
        Other => "other",
    }
}

label_enum! {
    /// `status_class` label of request durations: the response status's class.
    StatusClass {
        /// 100-199.
        Informational => "1xx",
        /// 200-299.
        Success => "2xx",
        /// 300-399.
        Redirection => "3xx",
        /// 400-499.
        ClientError => "4xx",
        /// 500-599 (and anything out of range).
        ServerError => "5xx",
    }
}

impl StatusClass {
    /// The class of `status`.
    pub fn from_status(status: http::StatusCode) -> StatusClass {
        match status.as_u16() {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }
}

label_enum! {
    /// `status_class` label of upstream durations: the upstream's status class, or why
    /// there was no status.
    UpstreamResult {
        /// Upstream answered 1xx (unusual).
        Informational => "1xx",
        /// Upstream answered 2xx.
        Success => "2xx",
        /// Upstream answered 3xx.
        Redirection => "3xx",
        /// Upstream answered 4xx (including 429).
        ClientError => "4xx",
        /// Upstream answered 5xx.
        ServerError => "5xx",
        /// No answer: connect failure, reset, unreadable response.
        Error => "error",
        /// No answer within `upstream.timeout`.
        Timeout => "timeout",
    }
}

impl UpstreamResult {
    /// The result for an upstream answer with `status`.
    pub fn from_status(status: http::StatusCode) -> UpstreamResult {
        match StatusClass::from_status(status) {
            StatusClass::Informational => UpstreamResult::Informational,
            StatusClass::Success => UpstreamResult::Success,
            StatusClass::Redirection => UpstreamResult::Redirection,
            StatusClass::ClientError => UpstreamResult::ClientError,
            StatusClass::ServerError => UpstreamResult::ServerError,
        }
    }
}

label_enum! {
    /// `item_type` label: the kind of payload an outcome or timing is about.
    ItemType {
        /// Error event (store body or `event` item).
        Event => "event",
        /// `transaction` item.
        Transaction => "transaction",
        /// Security report (`security` item or security/CSP endpoint).
        Security => "security",
        /// `feedback` item.
        Feedback => "feedback",
        /// `user_report` item.
        UserReport => "user_report",
        /// `session` item.
        Session => "session",
        /// `sessions` item.
        Sessions => "sessions",
        /// `attachment` item.
        Attachment => "attachment",
        /// A whole envelope (header, or a request refused before its items were read).
        Envelope => "envelope",
        /// Any other item type.
        Other => "other",
    }
}

impl ItemType {
    /// The label for a payload the engine scrubs.
    pub fn from_kind(kind: ItemKind) -> ItemType {
        match kind {
            ItemKind::Event => ItemType::Event,
            ItemKind::Transaction => ItemType::Transaction,
            ItemKind::Security => ItemType::Security,
            ItemKind::Feedback => ItemType::Feedback,
            ItemKind::UserReport => ItemType::UserReport,
            ItemKind::Session => ItemType::Session,
            ItemKind::Sessions => ItemType::Sessions,
            ItemKind::EnvelopeHeader => ItemType::Envelope,
        }
    }

    /// The label for an envelope item's `type` as written on the wire; unknown types are
    /// `other`.
    pub fn from_wire(item_type: &str) -> ItemType {
        match item_type {
            "event" => ItemType::Event,
            "transaction" => ItemType::Transaction,
            "security" => ItemType::Security,
            "feedback" => ItemType::Feedback,
            "user_report" => ItemType::UserReport,
            "session" => ItemType::Session,
            "sessions" => ItemType::Sessions,
            "attachment" => ItemType::Attachment,
            _ => ItemType::Other,
        }
    }
}

label_enum! {
    /// `outcome` label: what happened to an event or item.
    Outcome {
        /// Forwarded and accepted by the upstream (or written to the outbox).
        Forwarded => "forwarded",
        /// Malformed: bad JSON, bad envelope, corrupt compression, unscrubbable (400).
        Invalid => "invalid",
        /// Over a size limit (413).
        TooLarge => "too_large",
        /// Missing or malformed auth (401).
        Unauthorized => "unauthorized",
        /// Key not valid for the project, disabled key or project (403).
        Forbidden => "forbidden",
        /// No config for the project id.
        UnknownProject => "unknown_project",
        /// The upstream answered 429.
        RateLimited => "rate_limited",
        /// The upstream answered another 4xx.
        UpstreamRejected => "upstream_rejected",
        /// The upstream failed: 5xx, unreachable or timed out.
        UpstreamError => "upstream_error",
        /// An envelope item dropped by policy (unscrubbable type, attachments dropped).
        DroppedItem => "dropped_item",
        /// Refused because too many requests were in flight (503).
        Overloaded => "overloaded",
    }
}

label_enum! {
    /// `result` label of config reloads.
    ReloadResult {
        /// The file loaded and is in force.
        Ok => "ok",
        /// The file failed; the previous config (if any) stays in force.
        Error => "error",
    }
}

/// The rule ids a project's config can report, so that `rule` label values stay bounded.
#[derive(Debug, Clone, Default)]
pub struct RuleLabels {
    ids: HashSet<Box<str>>,
}

impl RuleLabels {
    /// The set of known rule ids (e.g. from `CompiledRules::rule_ids()`).
    pub fn new<I, S>(ids: I) -> RuleLabels
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RuleLabels {
            ids: ids.into_iter().map(|s| s.into().into_boxed_str()).collect(),
        }
    }

    /// `rule` when it is known, else [`UNKNOWN`].
    pub fn label<'a>(&'a self, rule: &'a str) -> &'a str {
        if self.ids.contains(rule) {
            rule
        } else {
            UNKNOWN
        }
    }
}

/// A metric vector whose children can be looked up by label values.
trait LabelVec {
    /// The child metric type.
    type Child;
    fn child(&self, labels: &[&str]) -> Self::Child;
}

impl LabelVec for HistogramVec {
    type Child = Histogram;
    fn child(&self, labels: &[&str]) -> Histogram {
        self.with_label_values(labels)
    }
}

impl LabelVec for IntCounterVec {
    type Child = IntCounter;
    fn child(&self, labels: &[&str]) -> IntCounter {
        self.with_label_values(labels)
    }
}

/// A metric vector whose label sets come from enums, with each child resolved once and
/// cached, so that recording is an atomic load and an add (no hashing, no lock).
struct Resolved<V: LabelVec> {
    vec: V,
    cells: Box<[OnceLock<V::Child>]>,
}

impl<V: LabelVec> Resolved<V> {
    fn new(vec: V, size: usize) -> Self {
        Resolved {
            vec,
            cells: (0..size).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The child at `index`, whose label values are `labels`. Callers compute `index`
    /// from the same enums as `labels`, so one index always has one label set.
    fn get(&self, index: usize, labels: &[&str]) -> &V::Child {
        self.cells[index].get_or_init(|| self.vec.child(labels))
    }
}

struct Families {
    request_duration: Resolved<HistogramVec>,
    request_received_bytes: Resolved<HistogramVec>,
    request_decoded_bytes: Resolved<HistogramVec>,
    requests_in_flight: IntGauge,
    connections_open: IntGauge,
    items: Resolved<IntCounterVec>,
    scrub_duration: Resolved<HistogramVec>,
    redactions: IntCounterVec,
    upstream_duration: Resolved<HistogramVec>,
    upstream_in_flight: IntGauge,
    config_reloads: Resolved<IntCounterVec>,
    project_configs_loaded: IntGauge,
}

/// Handle to every metric family. Cheap to clone; all clones record into the same
/// registry.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
    labels: &[&str],
) -> HistogramVec {
    let vec = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("static histogram definition is valid");
    registry
        .register(Box::new(vec.clone()))
        .expect("metric families are registered once per registry");
    vec
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("static counter definition is valid");
    registry
        .register(Box::new(vec.clone()))
        .expect("metric families are registered once per registry");
    vec
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("static gauge definition is valid");
    registry
        .register(Box::new(gauge.clone()))
        .expect("metric families are registered once per registry");
    gauge
}

impl Metrics {
    /// Registers every family on `registry` and sets `scrubgate_build_info`.
    ///
    /// # Panics
    ///
    /// When called twice with the same registry (the families already exist there).
    pub fn register(registry: &Registry) -> Metrics {
        // scrubgate_request_duration_seconds{endpoint, status_class}: time from the
        // request head to the response head, per ingest route.
        // endpoint: store|envelope|security|other; status_class: 1xx|2xx|3xx|4xx|5xx.
        let request_duration = histogram_vec(
            registry,
            "scrubgate_request_duration_seconds",
            "Time to answer an ingest request, by endpoint and status class.",
            REQUEST_DURATION_BUCKETS,
            &["endpoint", "status_class"],
        );
        // scrubgate_request_received_bytes{endpoint}: body bytes as received (before
        // decompression). endpoint: store|envelope|security|other.
        let request_received_bytes = histogram_vec(
            registry,
            "scrubgate_request_received_bytes",
            "Request body size as received, before decompression, by endpoint.",
            BODY_SIZE_BUCKETS,
            &["endpoint"],
        );
        // scrubgate_request_decoded_bytes{endpoint}: body bytes after decompression.
        // endpoint: store|envelope|security|other.
        let request_decoded_bytes = histogram_vec(
            registry,
            "scrubgate_request_decoded_bytes",
            "Request body size after decompression, by endpoint.",
            BODY_SIZE_BUCKETS,
            &["endpoint"],
        );
        // scrubgate_requests_in_flight: ingest requests being processed now.
        let requests_in_flight = gauge(
            registry,
            "scrubgate_requests_in_flight",
            "Ingest requests being processed.",
        );
        // scrubgate_connections_open: open client connections on the ingest listener.
        let connections_open = gauge(
            registry,
            "scrubgate_connections_open",
            "Open client connections on the ingest listener.",
        );
        // scrubgate_items_total{item_type, outcome}: events and envelope items by what
        // happened to them. item_type: event|transaction|security|feedback|user_report|
        // session|sessions|attachment|envelope|other; outcome: forwarded|invalid|
        // too_large|unauthorized|forbidden|unknown_project|rate_limited|
        // upstream_rejected|upstream_error|dropped_item|overloaded.
        let items = counter_vec(
            registry,
            "scrubgate_items_total",
            "Events and envelope items, by item type and outcome.",
            &["item_type", "outcome"],
        );
        // scrubgate_scrub_duration_seconds{item_type}: engine time per scrubbed payload.
        // item_type: as for items_total.
        let scrub_duration = histogram_vec(
            registry,
            "scrubgate_scrub_duration_seconds",
            "Time the scrubbing engine spent on one payload, by item type.",
            SCRUB_DURATION_BUCKETS,
            &["item_type"],
        );
        // scrubgate_redactions_total{project, rule, method}: values changed by rules.
        // project: a configured project id; rule: a rule id of that project's config or
        // `unknown`; method: remove|replace|mask|hash.
        let redactions = counter_vec(
            registry,
            "scrubgate_redactions_total",
            "Values changed by scrubbing rules, by project, rule id and method.",
            &["project", "rule", "method"],
        );
        // scrubgate_upstream_request_duration_seconds{status_class}: one upstream
        // exchange, including waiting for a connection slot and reading the answer.
        // status_class: 1xx|2xx|3xx|4xx|5xx|error|timeout.
        let upstream_duration = histogram_vec(
            registry,
            "scrubgate_upstream_request_duration_seconds",
            "Time of one upstream request, by upstream status class (or error/timeout).",
            REQUEST_DURATION_BUCKETS,
            &["status_class"],
        );
        // scrubgate_upstream_in_flight: upstream requests under way.
        let upstream_in_flight = gauge(
            registry,
            "scrubgate_upstream_in_flight",
            "Upstream requests under way.",
        );
        // scrubgate_config_reloads_total{result}: project config files (re)loaded,
        // including at startup. result: ok|error.
        let config_reloads = counter_vec(
            registry,
            "scrubgate_config_reloads_total",
            "Project config file loads, including at startup, by result.",
            &["result"],
        );
        // scrubgate_project_configs_loaded: projects with a config in force.
        let project_configs_loaded = gauge(
            registry,
            "scrubgate_project_configs_loaded",
            "Projects with a config in force.",
        );
        // scrubgate_build_info{version}: always 1; version: the crate version.
        let build_info = IntGaugeVec::new(
            Opts::new(
                "scrubgate_build_info",
                "Build information; the value is always 1.",
            ),
            &["version"],
        )
        .expect("static gauge definition is valid");
        registry
            .register(Box::new(build_info.clone()))
            .expect("metric families are registered once per registry");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        Metrics {
            families: Arc::new(Families {
                request_duration: Resolved::new(
                    request_duration,
                    Endpoint::ALL.len() * StatusClass::ALL.len(),
                ),
                request_received_bytes: Resolved::new(request_received_bytes, Endpoint::ALL.len()),
                request_decoded_bytes: Resolved::new(request_decoded_bytes, Endpoint::ALL.len()),
                requests_in_flight,
                connections_open,
                items: Resolved::new(items, ItemType::ALL.len() * Outcome::ALL.len()),
                scrub_duration: Resolved::new(scrub_duration, ItemType::ALL.len()),
                redactions,
                upstream_duration: Resolved::new(upstream_duration, UpstreamResult::ALL.len()),
                upstream_in_flight,
                config_reloads: Resolved::new(config_reloads, ReloadResult::ALL.len()),
                project_configs_loaded,
            }),
        }
    }

    /// Records one answered ingest request.
    pub fn observe_request(&self, endpoint: Endpoint, status: StatusClass, elapsed: Duration) {
        let index = endpoint.index() * StatusClass::ALL.len() + status.index();
        self.families
            .request_duration
            .get(index, &[endpoint.as_str(), status.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Records the size of a request body as received, before decompression.
    pub fn observe_received_bytes(&self, endpoint: Endpoint, bytes: usize) {
        self.families
            .request_received_bytes
            .get(endpoint.index(), &[endpoint.as_str()])
            .observe(bytes as f64);
    }

    /// Records the size of a request body after decompression.
    pub fn observe_decoded_bytes(&self, endpoint: Endpoint, bytes: usize) {
        self.families
            .request_decoded_bytes
            .get(endpoint.index(), &[endpoint.as_str()])
            .observe(bytes as f64);
    }

    /// Counts `count` items of `item_type` with `outcome`.
    pub fn record_items(&self, item_type: ItemType, outcome: Outcome, count: u64) {
        let index = item_type.index() * Outcome::ALL.len() + outcome.index();
        self.families
            .items
            .get(index, &[item_type.as_str(), outcome.as_str()])
            .inc_by(count);
    }

    /// Counts one item of `item_type` with `outcome`.
    pub fn record_item(&self, item_type: ItemType, outcome: Outcome) {
        self.record_items(item_type, outcome, 1);
    }

    /// Records the engine's time for one payload.
    pub fn observe_scrub(&self, item_type: ItemType, elapsed: Duration) {
        self.families
            .scrub_duration
            .get(item_type.index(), &[item_type.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts the changes in `report` for `project` (its id as configured), by rule and
    /// method. Rules not in `known_rules` are counted as `unknown`.
    pub fn record_redactions(&self, project: &str, report: &ScrubReport, known_rules: &RuleLabels) {
        // Most reports have a handful of changes from one or two rules: fold them in a
        // small list so that each label set is looked up once per report.
        let mut counts: Vec<(&str, Method, u64)> = Vec::new();
        for change in &report.changes {
            let rule = known_rules.label(&change.rule);
            match counts
                .iter_mut()
                .find(|(r, m, _)| *r == rule && *m == change.method)
            {
                Some((_, _, n)) => *n += 1,
                None => counts.push((rule, change.method, 1)),
            }
        }
        for (rule, method, n) in counts {
            self.families
                .redactions
                .with_label_values(&[project, rule, method.as_str()])
                .inc_by(n);
        }
    }

    /// Records one upstream exchange.
    pub fn observe_upstream(&self, result: UpstreamResult, elapsed: Duration) {
        self.families
            .upstream_duration
            .get(result.index(), &[result.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one project config file load.
    pub fn record_config_reload(&self, result: ReloadResult) {
        self.families
            .config_reloads
            .get(result.index(), &[result.as_str()])
            .inc();
    }

    /// Sets the number of projects with a config in force.
    pub fn set_project_configs_loaded(&self, count: usize) {
        self.families
            .project_configs_loaded
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts an open ingest connection until the guard drops.
    pub fn track_connection(&self) -> GaugeGuard {
        GaugeGuard::new(&self.families.connections_open)
    }

    /// Counts an ingest request in flight until the guard drops.
    pub fn track_request(&self) -> GaugeGuard {
        GaugeGuard::new(&self.families.requests_in_flight)
    }

    /// Counts an upstream request in flight until the guard drops.
    pub fn track_upstream(&self) -> GaugeGuard {
        GaugeGuard::new(&self.families.upstream_in_flight)
    }

    /// The registry's metrics in Prometheus text format (serve with [`CONTENT_TYPE`]).
    pub fn render(registry: &Registry) -> String {
        let mut buf = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
            tracing::error!(%error, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Increments a gauge when made and decrements it when dropped, so that an early return
/// or a cancelled future cannot leave the gauge high.
#[derive(Debug)]
#[must_use = "the gauge drops back as soon as the guard is dropped"]
pub struct GaugeGuard {
    gauge: IntGauge,
}

impl GaugeGuard {
    fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        GaugeGuard {
            gauge: gauge.clone(),
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::Change;

    fn sample_value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn every_family_is_exposed_after_recording() {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry);
        metrics.observe_request(
            Endpoint::Envelope,
            StatusClass::Success,
            Duration::from_millis(3),
        );
        metrics.observe_received_bytes(Endpoint::Envelope, 4000);
        metrics.observe_decoded_bytes(Endpoint::Envelope, 12000);
        metrics.record_item(ItemType::Event, Outcome::Forwarded);
        metrics.record_items(ItemType::Attachment, Outcome::DroppedItem, 2);
        metrics.observe_scrub(ItemType::Event, Duration::from_micros(40));
        metrics.observe_upstream(UpstreamResult::Timeout, Duration::from_secs(5));
        metrics.record_config_reload(ReloadResult::Error);
        metrics.set_project_configs_loaded(3);
        let _conn = metrics.track_connection();
        let _req = metrics.track_request();
        let _up = metrics.track_upstream();
        let report = ScrubReport {
            changes: vec![Change {
                path: "user.email".into(),
                rule: "@email:hash".into(),
                method: Method::Hash,
            }],
        };
        metrics.record_redactions("42", &report, &RuleLabels::new(["@email:hash"]));

        let text = Metrics::render(&registry);
        for family in [
            "scrubgate_request_duration_seconds",
            "scrubgate_request_received_bytes",
            "scrubgate_request_decoded_bytes",
            "scrubgate_requests_in_flight",
            "scrubgate_connections_open",
            "scrubgate_items_total",
            "scrubgate_scrub_duration_seconds",
            "scrubgate_redactions_total",
            "scrubgate_upstream_request_duration_seconds",
            "scrubgate_upstream_in_flight",
            "scrubgate_config_reloads_total",
            "scrubgate_project_configs_loaded",
            "scrubgate_build_info",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "missing {family} in:\n{text}"
            );
        }
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            sample_value(
                &text,
                &format!("scrubgate_build_info{{version=\"{version}\"}}")
            ),
            Some(1.0)
        );
        assert_eq!(
            sample_value(
                &text,
                "scrubgate_items_total{item_type=\"attachment\",outcome=\"dropped_item\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample_value(
                &text,
                "scrubgate_request_duration_seconds_count{endpoint=\"envelope\",status_class=\"2xx\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample_value(
                &text,
                "scrubgate_upstream_request_duration_seconds_count{status_class=\"timeout\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample_value(
                &text,
                "scrubgate_redactions_total{method=\"hash\",project=\"42\",rule=\"@email:hash\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample_value(&text, "scrubgate_upstream_in_flight"),
            Some(1.0)
        );
        assert_eq!(
            sample_value(&text, "scrubgate_project_configs_loaded"),
            Some(3.0)
        );
    }

    #[test]
    fn gauge_guards_drop_back() {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry);
        {
            let _a = metrics.track_upstream();
            let _b = metrics.track_upstream();
            let text = Metrics::render(&registry);
            assert_eq!(
                sample_value(&text, "scrubgate_upstream_in_flight"),
                Some(2.0)
            );
        }
        let text = Metrics::render(&registry);
        assert_eq!(
            sample_value(&text, "scrubgate_upstream_in_flight"),
            Some(0.0)
        );
    }

    #[test]
    fn unknown_rules_fold_into_unknown_and_counts_aggregate() {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry);
        let change = |rule: &str, method| Change {
            path: "extra.x".into(),
            rule: rule.into(),
            method,
        };
        let report = ScrubReport {
            changes: vec![
                change("order_token", Method::Replace),
                change("order_token", Method::Replace),
                change("@ip", Method::Replace),
                change("attacker-chosen-1", Method::Remove),
                change("attacker-chosen-2", Method::Remove),
            ],
        };
        let known = RuleLabels::new(["order_token", "@ip"]);
        metrics.record_redactions("42", &report, &known);
        let text = Metrics::render(&registry);
        let series = |rule: &str, method: &str| {
            sample_value(
                &text,
                &format!(
                    "scrubgate_redactions_total{{method=\"{method}\",project=\"42\",rule=\"{rule}\"}}"
                ),
            )
        };
        assert_eq!(series("order_token", "replace"), Some(2.0));
        assert_eq!(series("@ip", "replace"), Some(1.0));
        assert_eq!(series("unknown", "remove"), Some(2.0));
        assert!(!text.contains("attacker-chosen"));
    }

    #[test]
    fn label_values_are_unique_and_snake_case() {
        fn check(values: &[&str]) {
            let unique: HashSet<_> = values.iter().collect();
            assert_eq!(unique.len(), values.len(), "{values:?}");
            for v in values {
                assert!(
                    v.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{v}"
                );
            }
        }
        check(&Endpoint::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>());
        check(
            &StatusClass::ALL
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>(),
        );
        check(
            &UpstreamResult::ALL
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>(),
        );
        check(&ItemType::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>());
        check(&Outcome::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>());
        check(
            &ReloadResult::ALL
                .iter()
                .map(|v| v.as_str())
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn status_classes_cover_their_ranges() {
        use http::StatusCode;
        assert_eq!(
            StatusClass::from_status(StatusCode::OK),
            StatusClass::Success
        );
        assert_eq!(
            StatusClass::from_status(StatusCode::TOO_MANY_REQUESTS),
            StatusClass::ClientError
        );
        assert_eq!(
            StatusClass::from_status(StatusCode::SERVICE_UNAVAILABLE),
            StatusClass::ServerError
        );
        assert_eq!(
            UpstreamResult::from_status(StatusCode::PERMANENT_REDIRECT),
            UpstreamResult::Redirection
        );
    }

    #[test]
    fn two_registries_do_not_share_counters() {
        let first = Registry::new();
        let second = Registry::new();
        Metrics::register(&first).record_item(ItemType::Event, Outcome::Invalid);
        let _unused = Metrics::register(&second);
        let series = "scrubgate_items_total{item_type=\"event\",outcome=\"invalid\"}";
        assert_eq!(sample_value(&Metrics::render(&first), series), Some(1.0));
        assert_eq!(sample_value(&Metrics::render(&second), series), None);
    }
}

#[cfg(test)]
mod dashboard_tests {
    use super::*;
    use crate::scrub::{Change, Method};

    /// Every metric the shipped Grafana dashboard queries exists, and every label it
    /// groups or filters by is one of the family's labels.
    #[test]
    fn grafana_dashboard_queries_registered_families() {
        let registry = Registry::new();
        let metrics = Metrics::register(&registry);
        // Vectors appear in a scrape once they have a series: record one of each.
        metrics.observe_request(
            Endpoint::Store,
            StatusClass::Success,
            Duration::from_millis(1),
        );
        metrics.observe_received_bytes(Endpoint::Store, 10);
        metrics.observe_decoded_bytes(Endpoint::Store, 20);
        metrics.record_item(ItemType::Event, Outcome::Forwarded);
        metrics.observe_scrub(ItemType::Event, Duration::from_micros(5));
        metrics.observe_upstream(UpstreamResult::Timeout, Duration::from_secs(1));
        metrics.record_config_reload(ReloadResult::Ok);
        let report = ScrubReport {
            changes: vec![Change {
                path: "user.email".into(),
                rule: "@email".into(),
                method: Method::Replace,
            }],
        };
        metrics.record_redactions("1", &report, &RuleLabels::new(["@email"]));
        let labels: std::collections::HashMap<String, Vec<String>> = registry
            .gather()
            .iter()
            .map(|f| {
                let names = f
                    .get_metric()
                    .first()
                    .map(|m| m.get_label().iter().map(|l| l.name().to_string()).collect())
                    .unwrap_or_default();
                (f.name().to_string(), names)
            })
            .collect();

        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../config/grafana/scrubgate.json"))
                .expect("dashboard is JSON");
        let metric_re = regex::Regex::new(r"scrubgate_[a-z_]+").expect("valid regex");
        let by_re = regex::Regex::new(r"by \(([a-z_, ]+)\)").expect("valid regex");
        let filter_re = regex::Regex::new(r"\{([a-z_]+)=").expect("valid regex");
        let mut queried = 0;
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                for m in metric_re.find_iter(expr) {
                    let name = m.as_str();
                    let family = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s).filter(|f| labels.contains_key(*f)))
                        .unwrap_or(name);
                    let family_labels = labels
                        .get(family)
                        .unwrap_or_else(|| panic!("unknown metric {name} in {expr:?}"));
                    let used = by_re
                        .captures_iter(expr)
                        .flat_map(|c| {
                            c[1].split(',')
                                .map(|l| l.trim().to_string())
                                .collect::<Vec<_>>()
                        })
                        .chain(filter_re.captures_iter(expr).map(|c| c[1].to_string()))
                        .filter(|l| l != "le");
                    for label in used {
                        assert!(
                            family_labels.contains(&label),
                            "{family} has no label {label:?} ({expr:?})"
                        );
                    }
                    queried += 1;
                }
            }
        }
        assert!(queried >= 10, "the dashboard queries the families");
    }
}
