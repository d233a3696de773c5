use std::time::Duration;

use prometheus::Registry;

use super::*;
use crate::protocol::envelope::ItemType as WireType;
use crate::scrub::{Change, Method, ScrubReport};

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
    metrics.record_item(WireType::Event, Outcome::Forwarded);
    metrics.observe_scrub(WireType::Event, Duration::from_micros(5));
    metrics.observe_upstream(UpstreamResult::Timeout, Duration::from_secs(1));
    metrics.record_config_reload(ReloadResult::Ok);
    let report = ScrubReport {
        changes: vec![Change {
            path: "user.email".into(),
            rule: "@email".into(),
            method: Method::Replace,
            shape: None,
        }],
    };
    metrics.record_redactions("1", &report, &RuleLabels::new(["@email"]));
    metrics.record_shadow_matches("1", &report, &RuleLabels::new(["@email"]));
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
        serde_json::from_str(include_str!("../../config/grafana/scrubgate.json"))
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
