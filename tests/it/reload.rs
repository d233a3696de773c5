//! Hot reload: a new or changed project file takes effect without a restart; a broken
//! one leaves the previous rules in force and is counted.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

/// A project whose rules also replace the word "banana" (to see which rules are live).
fn project_with_banana_rule(id: u64) -> String {
    project_json(
        id,
        true,
        json!({
            "rules": {"fruit": {"type": "pattern", "pattern": "banana",
                                "redaction": {"method": "replace", "text": "[fruit]"}}},
            "applications": {"$string": ["@email", "@ip", "fruit"]}
        }),
        json!({}),
    )
}

fn banana_event() -> Value {
    json!({"event_id": "00000000000000000000000000000042", "message": "banana split"})
}

async fn message_upstream_saw(upstream: &RecordingUpstream, n: usize) -> String {
    let recorded = upstream.wait_for(n).await;
    let event: Value = serde_json::from_slice(&recorded[n - 1].body).unwrap();
    event["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_good_file_is_picked_up_and_a_broken_one_keeps_the_previous_rules() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;

    // Before: the banana rule does not exist.
    assert_eq!(proxy.store(&banana_event()).await.status, 200);
    assert_eq!(message_upstream_saw(&upstream, 1).await, "banana split");

    // A good change is picked up by the poller.
    proxy.write_project(PROJECT, &project_with_banana_rule(PROJECT));
    let reloaded = eventually(Duration::from_secs(5), || async {
        let metrics = proxy.scrape_metrics().await;
        metric_value(&metrics, "scrubgate_config_reloads_total{result=\"ok\"}").unwrap_or(0.0)
            >= 2.0
    })
    .await;
    assert!(reloaded, "the changed file was not reloaded");
    assert_eq!(proxy.store(&banana_event()).await.status, 200);
    assert_eq!(message_upstream_saw(&upstream, 2).await, "[fruit] split");

    // A broken file: counted as an error, and the previous (banana) rules stay.
    let broken = project_with_banana_rule(PROJECT).replace("\"banana\"", "\"(unclosed\"");
    proxy.write_project(PROJECT, &broken);
    let failed = eventually(Duration::from_secs(5), || async {
        let metrics = proxy.scrape_metrics().await;
        metric_value(&metrics, "scrubgate_config_reloads_total{result=\"error\"}").unwrap_or(0.0)
            >= 1.0
    })
    .await;
    assert!(failed, "the broken file was not noticed");
    let response = proxy.store(&banana_event()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(message_upstream_saw(&upstream, 3).await, "[fruit] split");

    // Not JSON at all: same.
    proxy.write_project(PROJECT, "{ this is not json");
    let failed_twice = eventually(Duration::from_secs(5), || async {
        let metrics = proxy.scrape_metrics().await;
        metric_value(&metrics, "scrubgate_config_reloads_total{result=\"error\"}").unwrap_or(0.0)
            >= 2.0
    })
    .await;
    assert!(failed_twice);
    assert_eq!(proxy.store(&banana_event()).await.status, 200);
    assert_eq!(message_upstream_saw(&upstream, 4).await, "[fruit] split");
}

#[tokio::test]
async fn a_new_project_becomes_known_and_other_projects_still_reload() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let store_7 = || async {
        proxy
            .post("/api/7/store/")
            .header("x-sentry-auth", &auth_header())
            .body(banana_event().to_string())
            .send()
            .await
    };
    assert_eq!(store_7().await.status, 403);

    // A broken file for one project does not stop another from loading.
    proxy.write_project(8, "{ broken");
    proxy.write_project(7, &project_with_banana_rule(7));
    let known = eventually(Duration::from_secs(5), || async {
        store_7().await.status == 200
    })
    .await;
    assert!(known, "project 7 never became known");
    assert_eq!(message_upstream_saw(&upstream, 1).await, "[fruit] split");
    let eight = proxy
        .post("/api/8/store/")
        .header("x-sentry-auth", &auth_header())
        .body(banana_event().to_string())
        .send()
        .await;
    assert_eq!(eight.status, 403);

    // Removing the file unloads the project.
    std::fs::remove_file(proxy.projects_dir.join("7.json")).unwrap();
    let gone = eventually(Duration::from_secs(5), || async {
        store_7().await.status == 403
    })
    .await;
    assert!(gone, "project 7 stayed after its file was removed");
}
