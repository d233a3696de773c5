//! The recording API: typed methods on [`Metrics`], gauge guards and rendering.

use std::time::Duration;

use prometheus::{Encoder, IntGauge, Registry, TextEncoder};

use super::{
    Endpoint, ItemLabel, Metrics, Outcome, ReloadResult, RuleLabels, SpoolEvent, StatusClass,
    UpstreamResult, UpstreamStateLabel,
};
use crate::scrub::{AttachmentKind, Method, ScrubReport};

impl Metrics {
    /// Counts `count` spool requests with `event`.
    pub fn record_spool_events(&self, event: SpoolEvent, count: u64) {
        self.families
            .spool_events
            .get(event.index(), &[event.as_str()])
            .inc_by(count);
    }

    /// Sets what the spool holds: bytes, entries and the oldest entry's age in seconds.
    pub fn set_spool_size(&self, bytes: u64, entries: u64, oldest_age_secs: u64) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.families.spool_bytes.set(gauge(bytes));
        self.families.spool_entries.set(gauge(entries));
        self.families.spool_oldest_age.set(gauge(oldest_age_secs));
    }

    /// Shows `state` as the upstream's current state (1 for it, 0 for the others).
    pub fn show_upstream_state(&self, state: UpstreamStateLabel) {
        for s in UpstreamStateLabel::ALL {
            self.families
                .upstream_state
                .get(s.index(), &[s.as_str()])
                .set(i64::from(*s == state));
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
    pub fn record_items(&self, item_type: impl Into<ItemLabel>, outcome: Outcome, count: u64) {
        let item_type = item_type.into();
        let index = item_type.index() * Outcome::ALL.len() + outcome.index();
        self.families
            .items
            .get(index, &[item_type.as_str(), outcome.as_str()])
            .inc_by(count);
    }

    /// Counts one item of `item_type` with `outcome`.
    pub fn record_item(&self, item_type: impl Into<ItemLabel>, outcome: Outcome) {
        self.record_items(item_type, outcome, 1);
    }

    /// Records the engine's time for one payload.
    pub fn observe_scrub(&self, item_type: impl Into<ItemLabel>, elapsed: Duration) {
        let item_type = item_type.into();
        self.families
            .scrub_duration
            .get(item_type.index(), &[item_type.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Records one scrubbed attachment of `kind`: its size and the time it took.
    pub fn observe_attachment(&self, kind: AttachmentKind, bytes: usize, elapsed: Duration) {
        let index = AttachmentKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.families
            .attachment_scrub_duration
            .get(index, &[kind.as_str()])
            .observe(elapsed.as_secs_f64());
        self.families
            .attachment_bytes
            .get(index, &[kind.as_str()])
            .inc_by(bytes as u64);
    }

    /// Counts one envelope item dropped by policy, with its reason's short code.
    pub fn record_drop(&self, item_type: impl Into<ItemLabel>, reason: &'static str) {
        self.families
            .items_dropped
            .with_label_values(&[item_type.into().as_str(), reason])
            .inc();
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

    /// Counts what shadow rules would have changed, by rule (folded to `unknown` for ids
    /// not in `known_rules`).
    pub fn record_shadow_matches(
        &self,
        project: &str,
        report: &ScrubReport,
        known_rules: &RuleLabels,
    ) {
        let mut counts: Vec<(&str, u64)> = Vec::new();
        for change in &report.changes {
            let rule = known_rules.label(&change.rule);
            match counts.iter_mut().find(|(r, _)| *r == rule) {
                Some((_, n)) => *n += 1,
                None => counts.push((rule, 1)),
            }
        }
        for (rule, n) in counts {
            self.families
                .shadow_matches
                .with_label_values(&[project, rule])
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

    /// Counts an ingest connection closed at accept (its client IP at the cap).
    pub fn record_connection_refused(&self) {
        self.families.connections_refused.inc();
    }

    /// Counts an ingest connection closed to make room: every slot was taken and it had
    /// not sent a request yet.
    pub fn record_connection_evicted(&self) {
        self.families.connections_evicted.inc();
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
