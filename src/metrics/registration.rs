//! Registration: the buckets and every family's definition, registered once per
//! registry.

use std::sync::Arc;

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::{
    Endpoint, ItemLabel, Outcome, ReloadResult, SpoolEvent, StatusClass, UpstreamResult,
    UpstreamStateLabel,
};
use super::{Families, Metrics, Resolved};
use crate::scrub::AttachmentKind;

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
        // scrubgate_connections_refused_total: ingest connections closed at accept
        // because their client IP was at server.max_connections_per_ip.
        let connections_refused = IntCounter::new(
            "scrubgate_connections_refused_total",
            "Ingest connections closed at accept: the client IP was at its connection cap.",
        )
        .expect("static counter definition is valid");
        registry
            .register(Box::new(connections_refused.clone()))
            .expect("metric families are registered once per registry");
        // scrubgate_connections_evicted_total: ingest connections closed because every
        // slot was taken and they had not sent a request yet.
        let connections_evicted = IntCounter::new(
            "scrubgate_connections_evicted_total",
            "Ingest connections closed to make room: all slots taken, no request sent yet.",
        )
        .expect("static counter definition is valid");
        registry
            .register(Box::new(connections_evicted.clone()))
            .expect("metric families are registered once per registry");
        // scrubgate_items_total{item_type, outcome}: events and envelope items by what
        // happened to them. item_type: see `ItemLabel`; outcome: see `Outcome`.
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
        // scrubgate_attachment_scrub_duration_seconds{kind} and
        // scrubgate_attachment_bytes_total{kind}: time and bytes of scrubbed attachments.
        // kind: minidump|view_hierarchy|text|binary|event_payload.
        let attachment_scrub_duration = histogram_vec(
            registry,
            "scrubgate_attachment_scrub_duration_seconds",
            "Time spent scrubbing one attachment, by attachment kind.",
            SCRUB_DURATION_BUCKETS,
            &["kind"],
        );
        let attachment_bytes = counter_vec(
            registry,
            "scrubgate_attachment_bytes_total",
            "Bytes of attachments scrubbed, by attachment kind.",
            &["kind"],
        );
        // scrubgate_items_dropped_total{item_type, reason}: envelope items dropped by
        // policy. reason: a short code (see `DropReason` in server::ingest).
        let items_dropped = counter_vec(
            registry,
            "scrubgate_items_dropped_total",
            "Envelope items dropped by policy, by item type and reason.",
            &["item_type", "reason"],
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
        // scrubgate_shadow_matches_total{project, rule}: values shadow rules would have
        // changed (config.scrubgate.shadow), never changed. Labels as for redactions.
        let shadow_matches = counter_vec(
            registry,
            "scrubgate_shadow_matches_total",
            "Values shadow rules would have changed, by project and rule id (nothing is changed).",
            &["project", "rule"],
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

        // scrubgate_spool_bytes, _entries, _oldest_age_seconds: what the spool holds.
        let spool_bytes = gauge(
            registry,
            "scrubgate_spool_bytes",
            "Bytes of spooled requests.",
        );
        let spool_entries = gauge(registry, "scrubgate_spool_entries", "Spooled requests.");
        let spool_oldest_age = gauge(
            registry,
            "scrubgate_spool_oldest_age_seconds",
            "Age of the oldest spooled request.",
        );
        // scrubgate_spool_requests_total{event}: spooled|replayed|expired|rejected|
        // held_back (see `SpoolEvent`).
        let spool_events = counter_vec(
            registry,
            "scrubgate_spool_requests_total",
            "Requests spooled, replayed, expired, rejected by the upstream on replay, or held \
             back (answered 5xx while the upstream took others).",
            &["event"],
        );
        // scrubgate_upstream_state{state}: 1 for the current state (up|down|probing).
        let upstream_state = IntGaugeVec::new(
            Opts::new(
                "scrubgate_upstream_state",
                "1 for the upstream's current state (up, down, probing).",
            ),
            &["state"],
        )
        .expect("static gauge definition is valid");
        registry
            .register(Box::new(upstream_state.clone()))
            .expect("metric families are registered once per registry");

        let metrics = Metrics {
            families: Arc::new(Families {
                request_duration: Resolved::new(
                    request_duration,
                    Endpoint::ALL.len() * StatusClass::ALL.len(),
                ),
                request_received_bytes: Resolved::new(request_received_bytes, Endpoint::ALL.len()),
                request_decoded_bytes: Resolved::new(request_decoded_bytes, Endpoint::ALL.len()),
                requests_in_flight,
                connections_open,
                connections_refused,
                connections_evicted,
                items: Resolved::new(items, ItemLabel::COUNT * Outcome::ALL.len()),
                scrub_duration: Resolved::new(scrub_duration, ItemLabel::COUNT),
                attachment_scrub_duration: Resolved::new(
                    attachment_scrub_duration,
                    AttachmentKind::ALL.len(),
                ),
                attachment_bytes: Resolved::new(attachment_bytes, AttachmentKind::ALL.len()),
                items_dropped,
                redactions,
                shadow_matches,
                upstream_duration: Resolved::new(upstream_duration, UpstreamResult::ALL.len()),
                upstream_in_flight,
                config_reloads: Resolved::new(config_reloads, ReloadResult::ALL.len()),
                project_configs_loaded,
                spool_bytes,
                spool_entries,
                spool_oldest_age,
                spool_events: Resolved::new(spool_events, SpoolEvent::ALL.len()),
                upstream_state: Resolved::new(upstream_state, UpstreamStateLabel::ALL.len()),
            }),
        };
        // Every spool event and upstream state is a series from the start.
        for event in SpoolEvent::ALL {
            metrics.record_spool_events(*event, 0);
        }
        metrics.show_upstream_state(UpstreamStateLabel::Up);
        metrics
    }
}
