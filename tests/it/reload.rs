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

/// A Kubernetes ConfigMap volume as the kubelet writes it: each update is a new
/// timestamped directory, `..data` is swapped to it with one rename, and every key is a
/// symlink through `..data`. A non-project key sits beside the project. Swapped while
/// requests flow: no reload error, and every event is scrubbed by the old rules or the
/// new ones, never by a half-read set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_volume_swapped_under_load_reloads_cleanly() {
    use std::os::unix::fs::symlink;

    let volume = tempfile::tempdir().unwrap();
    let root = volume.path().to_owned();
    // One ConfigMap generation: its own directory, `..data` pointing at it.
    let generation = |n: usize, project: &str| {
        let dir = root.join(format!("..2026_12_06_18_00_0{n}.{n}00000000"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(format!("{PROJECT}.json")), project).unwrap();
        std::fs::write(dir.join("scrubgate.toml"), "# not a project\n").unwrap();
        let name = dir.file_name().unwrap().to_owned();
        let tmp = root.join("..data_tmp");
        symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, root.join("..data")).unwrap();
        dir
    };
    let first = generation(1, &default_project());
    for key in [format!("{PROJECT}.json"), "scrubgate.toml".to_owned()] {
        symlink(format!("..data/{key}"), root.join(&key)).unwrap();
    }

    let upstream = RecordingUpstream::spawn().await;
    let projects = root.clone();
    let proxy = TestProxy::builder(&upstream)
        .configure(move |c| c.projects.dir = projects)
        .spawn()
        .await;
    assert_eq!(proxy.store(&banana_event()).await.status, 200);
    assert_eq!(message_upstream_saw(&upstream, 1).await, "banana split");

    // Requests flow while the volume is swapped to a generation with the banana rule.
    let mut answers = Vec::new();
    let mut swapped = false;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if !swapped && started.elapsed() > Duration::from_millis(500) {
            generation(2, &project_with_banana_rule(PROJECT));
            std::fs::remove_dir_all(&first).unwrap();
            swapped = true;
        }
        answers.push(proxy.store(&banana_event()).await.status);
    }
    assert!(answers.len() > 20, "{} requests", answers.len());
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");

    let messages: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| {
            let event: Value = serde_json::from_slice(&r.body).unwrap();
            event["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert!(
        messages
            .iter()
            .all(|m| m == "banana split" || m == "[fruit] split"),
        "{messages:?}"
    );
    // The old rules until the swap, the new ones after: one switch, no flapping back.
    let switched = messages.iter().position(|m| m == "[fruit] split");
    let switched = switched.expect("the new rules took effect");
    assert!(messages[switched..].iter().all(|m| m == "[fruit] split"));
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(&metrics, "scrubgate_config_reloads_total{result=\"error\"}").unwrap_or(0.0),
        0.0,
        "{metrics}"
    );
    assert!(
        metric_value(&metrics, "scrubgate_config_reloads_total{result=\"ok\"}").unwrap() >= 1.0
    );
}
