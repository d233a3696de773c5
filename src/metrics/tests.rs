use std::collections::HashSet;
use std::time::Duration;

use prometheus::Registry;

use super::*;
use crate::protocol::envelope::ItemType as WireType;
use crate::scrub::{Change, Method, ScrubReport};

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
    metrics.record_item(WireType::Event, Outcome::Forwarded);
    metrics.record_items(WireType::Attachment, Outcome::DroppedItem, 2);
    metrics.observe_scrub(WireType::Event, Duration::from_micros(40));
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
            shape: None,
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
        "scrubgate_connections_refused_total",
        "scrubgate_connections_evicted_total",
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
        shape: None,
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
    check(&ItemLabel::all().map(ItemLabel::as_str).collect::<Vec<_>>());
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
    Metrics::register(&first).record_item(WireType::Event, Outcome::Invalid);
    let _unused = Metrics::register(&second);
    let series = "scrubgate_items_total{item_type=\"event\",outcome=\"invalid\"}";
    assert_eq!(sample_value(&Metrics::render(&first), series), Some(1.0));
    assert_eq!(sample_value(&Metrics::render(&second), series), None);
}
