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
//! | `connections_refused_total` | counter | |
//! | `connections_evicted_total` | counter | |
//! | `items_total` | counter | `item_type`, `outcome` |
//! | `scrub_duration_seconds` | histogram | `item_type` |
//! | `attachment_scrub_duration_seconds` | histogram | `kind` |
//! | `attachment_bytes_total` | counter | `kind` |
//! | `items_dropped_total` | counter | `item_type`, `reason` |
//! | `redactions_total` | counter | `project`, `rule`, `method` |
//! | `shadow_matches_total` | counter | `project`, `rule` |
//! | `upstream_request_duration_seconds` | histogram | `status_class` |
//! | `upstream_in_flight` | gauge | |
//! | `config_reloads_total` | counter | `result` |
//! | `project_configs_loaded` | gauge | |
//! | `build_info` | gauge | `version` |
//! | `spool_bytes` | gauge | |
//! | `spool_entries` | gauge | |
//! | `spool_oldest_age_seconds` | gauge | |
//! | `spool_requests_total` | counter | `event` |
//! | `upstream_state` | gauge | `state` |
//!
//! `labels` holds the label enums and the bounded rule labels, `registration` the families'
//! definitions and buckets, and `record` the typed recording API.

use std::sync::{Arc, OnceLock};

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge};

mod labels;
mod record;
mod registration;

pub use labels::{
    Endpoint, ItemLabel, Outcome, ReloadResult, RuleLabels, SpoolEvent, StatusClass,
    UpstreamResult, UpstreamStateLabel, UNKNOWN,
};
pub use record::{GaugeGuard, CONTENT_TYPE};
pub use registration::{BODY_SIZE_BUCKETS, REQUEST_DURATION_BUCKETS, SCRUB_DURATION_BUCKETS};

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

impl LabelVec for prometheus::IntGaugeVec {
    type Child = IntGauge;
    fn child(&self, labels: &[&str]) -> IntGauge {
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
    connections_refused: IntCounter,
    connections_evicted: IntCounter,
    items: Resolved<IntCounterVec>,
    scrub_duration: Resolved<HistogramVec>,
    attachment_scrub_duration: Resolved<HistogramVec>,
    attachment_bytes: Resolved<IntCounterVec>,
    items_dropped: IntCounterVec,
    redactions: IntCounterVec,
    shadow_matches: IntCounterVec,
    upstream_duration: Resolved<HistogramVec>,
    upstream_in_flight: IntGauge,
    config_reloads: Resolved<IntCounterVec>,
    project_configs_loaded: IntGauge,
    spool_bytes: IntGauge,
    spool_entries: IntGauge,
    spool_oldest_age: IntGauge,
    spool_events: Resolved<IntCounterVec>,
    upstream_state: Resolved<prometheus::IntGaugeVec>,
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod dashboard_tests;
