use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;

use super::*;
use crate::metrics::Metrics;

const KEY: &str = "a4f6c2d8e1b34f7a9c0d5e2b8f1a3c6d";

/// A valid project config whose one custom rule replaces `marker` with `[Filtered]`.
fn project_json(id: u64, marker: &str) -> String {
    serde_json::json!({
        "projectId": id,
        "publicKeys": [{"publicKey": KEY, "isEnabled": true}],
        "config": {
            "piiConfig": {
                "rules": {
                    "marker": {
                        "type": "pattern",
                        "pattern": marker,
                        "redaction": {"method": "replace", "text": "[Filtered]"}
                    }
                },
                "applications": {"$string": ["marker"]}
            }
        }
    })
    .to_string()
}

/// Valid JSON the engine refuses: a regex that does not compile.
const BAD_RULE: &str = r#"{"config":{"piiConfig":{"rules":{"r":{"type":"pattern","pattern":"(unclosed"}},"applications":{"$string":["r"]}}}}"#;

fn no_env() -> Env {
    Arc::new(|_| None)
}

fn metrics() -> (Metrics, Registry) {
    let registry = Registry::new();
    (Metrics::register(&registry), registry)
}

fn series(registry: &Registry, name: &str) -> Option<f64> {
    Metrics::render(registry)
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
}

fn reloads(registry: &Registry, result: &str) -> f64 {
    series(
        registry,
        &format!("scrubgate_config_reloads_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

/// Writes a file so that the store cannot mistake it for the previous version: the
/// content hash differs, which the store checks whenever size or mtime changed or the
/// mtime is recent.
fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).unwrap();
}

/// Scrubs `text` in an event's `extra.x` with the project's rules.
fn scrub(project: &Project, text: &str) -> String {
    let event = serde_json::json!({"extra": {"x": text}}).to_string();
    let out = project
        .config
        .rules
        .scrub(
            crate::scrub::ItemKind::Event,
            event.as_bytes(),
            &Default::default(),
        )
        .unwrap();
    let out: serde_json::Value = serde_json::from_slice(&out.bytes).unwrap();
    out["extra"]["x"].as_str().unwrap().to_owned()
}

#[test]
fn loads_every_project_file_and_ignores_other_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "42.json", &project_json(42, "secret42"));
    write(dir.path(), "7.json", &project_json(7, "secret7"));
    write(dir.path(), "README.md", "not a project");
    write(dir.path(), ".42.json.swp", "garbage");
    write(dir.path(), "42.json~", "garbage");
    std::fs::create_dir(dir.path().join("..data")).unwrap();
    std::fs::create_dir(dir.path().join("sub.json")).unwrap();

    let (metrics, registry) = metrics();
    let (store, errors) = ProjectStore::load_dir(dir.path(), no_env(), metrics);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(store.ids(), [7, 42]);
    assert_eq!(store.len(), 2);

    let project = store.get(42).unwrap();
    assert_eq!(project.id, 42);
    assert_eq!(project.id_label, "42");
    assert_eq!(project.source, dir.path().join("42.json"));
    assert_eq!(project.config.public_keys[0].public_key, KEY);
    assert_eq!(
        scrub(&project, "has secret42 in it"),
        "has [Filtered] in it"
    );
    assert_eq!(project.rule_labels.label("marker"), "marker");
    assert_eq!(project.rule_labels.label("nope"), "unknown");
    assert!(store.get(8).is_none());

    assert_eq!(reloads(&registry, "ok"), 2.0);
    assert_eq!(reloads(&registry, "error"), 0.0);
    assert_eq!(
        series(&registry, "scrubgate_project_configs_loaded"),
        Some(2.0)
    );
}

#[test]
fn bad_file_names_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "042.json", &project_json(42, "x"));
    write(dir.path(), "my-project.json", &project_json(1, "x"));
    write(
        dir.path(),
        "18446744073709551616.json",
        &project_json(1, "x"),
    );
    let (metrics, registry) = metrics();
    let (store, errors) = ProjectStore::load_dir(dir.path(), no_env(), metrics);
    assert!(store.is_empty());
    assert_eq!(errors.len(), 3);
    assert!(errors
        .iter()
        .all(|e| matches!(e, LoadError::BadFileName { .. })));
    assert_eq!(reloads(&registry, "error"), 3.0);
}

#[test]
fn project_id_must_match_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "43.json", &project_json(42, "x"));
    let (store, errors) = ProjectStore::load_dir(dir.path(), no_env(), metrics().0);
    assert!(store.is_empty());
    assert!(
        matches!(
            errors.as_slice(),
            [LoadError::IdMismatch {
                expected: 43,
                found: 42,
                ..
            }]
        ),
        "{errors:?}"
    );
}

#[test]
fn a_file_without_project_id_takes_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "5.json",
        &serde_json::json!({"publicKeys": [{"publicKey": KEY, "isEnabled": true}], "config": {}})
            .to_string(),
    );
    let (store, errors) = ProjectStore::load_dir(dir.path(), no_env(), metrics().0);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(store.get(5).unwrap().id, 5);
}

#[test]
fn a_missing_directory_is_an_error_and_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let (store, errors) = ProjectStore::load_dir(&missing, no_env(), metrics().0);
    assert!(store.is_empty());
    assert!(
        matches!(errors.as_slice(), [LoadError::ReadDir { .. }]),
        "{errors:?}"
    );
    assert_eq!(errors[0].path(), missing);
}

#[test]
fn reload_picks_up_changed_new_and_deleted_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.json", &project_json(1, "alpha"));
    write(dir.path(), "2.json", &project_json(2, "beta"));
    let (metrics, registry) = metrics();
    let (store, errors) = ProjectStore::load_dir(dir.path(), no_env(), metrics);
    assert!(errors.is_empty());
    let before_2 = store.get(2).unwrap();

    // Same length, different content: the hash catches it even within one mtime tick.
    write(dir.path(), "1.json", &project_json(1, "gamma"));
    write(dir.path(), "3.json", &project_json(3, "delta"));
    std::fs::remove_file(dir.path().join("2.json")).unwrap();

    let summary = store.reload();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert_eq!(summary.loaded, [1, 3]);
    assert_eq!(summary.removed, [2]);
    assert_eq!(store.ids(), [1, 3]);
    assert_eq!(
        scrub(&store.get(1).unwrap(), "alpha gamma"),
        "alpha [Filtered]"
    );
    // A reader holding the old project keeps a consistent view.
    assert_eq!(scrub(&before_2, "beta"), "[Filtered]");
    assert_eq!(
        series(&registry, "scrubgate_project_configs_loaded"),
        Some(2.0)
    );
}

#[test]
fn unchanged_files_are_not_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.json", &project_json(1, "alpha"));
    let (metrics, registry) = metrics();
    let (store, _) = ProjectStore::load_dir(dir.path(), no_env(), metrics);
    let first = store.get(1).unwrap();

    let summary = store.reload();
    assert!(summary.is_noop(), "{summary:?}");
    assert_eq!(summary.unchanged, 1);
    assert!(Arc::ptr_eq(&first, &store.get(1).unwrap()));
    assert_eq!(reloads(&registry, "ok"), 1.0);

    // SIGHUP: everything is recompiled.
    let summary = store.reload_all();
    assert_eq!(summary.loaded, [1]);
    assert!(!Arc::ptr_eq(&first, &store.get(1).unwrap()));
    assert_eq!(reloads(&registry, "ok"), 2.0);
}

/// A file whose mtime is old enough is trusted by size and mtime (no read); any change of
/// either is noticed.
#[test]
fn settled_files_are_checked_by_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("1.json");
    let set_mtime = |secs_ago: u64| {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
            .unwrap();
    };
    write(dir.path(), "1.json", &project_json(1, "alpha"));
    set_mtime(3600);
    let (store, _) = ProjectStore::load_dir(dir.path(), no_env(), metrics().0);
    assert!(store.reload().is_noop());

    // Same size, older mtime written back by a tool: the mtime differs, so it is read.
    write(dir.path(), "1.json", &project_json(1, "gamma"));
    set_mtime(1800);
    assert_eq!(store.reload().loaded, [1]);
    assert_eq!(
        scrub(&store.get(1).unwrap(), "alpha gamma"),
        "alpha [Filtered]"
    );

    // Touched without a content change: read, hashed, not recompiled.
    set_mtime(60);
    let first = store.get(1).unwrap();
    let summary = store.reload();
    assert!(summary.is_noop(), "{summary:?}");
    assert!(Arc::ptr_eq(&first, &store.get(1).unwrap()));
}

#[test]
fn a_broken_file_keeps_the_previous_config_and_others_still_reload() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.json", &project_json(1, "alpha"));
    write(dir.path(), "2.json", &project_json(2, "beta"));
    let (metrics, registry) = metrics();
    let (store, _) = ProjectStore::load_dir(dir.path(), no_env(), metrics);

    write(dir.path(), "1.json", BAD_RULE);
    write(dir.path(), "2.json", &project_json(2, "gamma!"));
    write(dir.path(), "3.json", "{ not json");

    let summary = store.reload();
    assert_eq!(summary.loaded, [2]);
    assert_eq!(summary.errors.len(), 2, "{:?}", summary.errors);
    for error in &summary.errors {
        assert!(matches!(error, LoadError::Invalid { .. }), "{error:?}");
        assert!(!error.problems().is_empty());
    }
    assert_eq!(summary.errors[0].path(), dir.path().join("1.json"));
    // Project 1 still scrubs with its previous rules; project 2 has its new ones.
    assert_eq!(scrub(&store.get(1).unwrap(), "alpha"), "[Filtered]");
    assert_eq!(
        scrub(&store.get(2).unwrap(), "beta gamma!"),
        "beta [Filtered]"
    );
    assert!(store.get(3).is_none());
    assert_eq!(reloads(&registry, "error"), 2.0);

    // The broken files are not retried (nor counted again) until they change.
    let summary = store.reload();
    assert!(summary.is_noop(), "{summary:?}");
    assert_eq!(reloads(&registry, "error"), 2.0);

    // Fixed: loads.
    write(dir.path(), "1.json", &project_json(1, "omega"));
    let summary = store.reload();
    assert_eq!(summary.loaded, [1]);
    assert_eq!(
        scrub(&store.get(1).unwrap(), "alpha omega"),
        "alpha [Filtered]"
    );

    // A broken file that is then deleted takes its project away.
    write(dir.path(), "1.json", BAD_RULE);
    assert_eq!(store.reload().errors.len(), 1);
    assert!(store.get(1).is_some());
    std::fs::remove_file(dir.path().join("1.json")).unwrap();
    assert_eq!(store.reload().removed, [1]);
    assert!(store.get(1).is_none());
}

#[test]
fn a_vanished_directory_keeps_every_project() {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    std::fs::create_dir(&projects).unwrap();
    write(&projects, "1.json", &project_json(1, "alpha"));
    let (metrics, registry) = metrics();
    let (store, _) = ProjectStore::load_dir(&projects, no_env(), metrics);
    std::fs::rename(&projects, dir.path().join("elsewhere")).unwrap();
    let summary = store.reload();
    assert!(matches!(
        summary.errors.as_slice(),
        [LoadError::ReadDir { .. }]
    ));
    assert_eq!(store.ids(), [1]);
    assert_eq!(reloads(&registry, "error"), 1.0);
}

#[test]
fn env_references_are_resolved_through_the_given_env() {
    let dir = tempfile::tempdir().unwrap();
    let json = serde_json::json!({
        "config": {"piiConfig": {
            "vars": {"hashKey": "${TEST_HASH_KEY}"},
            "applications": {"$string": ["@anything:hash"]}
        }}
    })
    .to_string();
    write(dir.path(), "9.json", &json);
    let (_, errors) = ProjectStore::load_dir(dir.path(), no_env(), metrics().0);
    assert_eq!(errors.len(), 1, "a missing variable is a load error");

    let env: Env = Arc::new(|name| (name == "TEST_HASH_KEY").then(|| "k3y".to_owned()));
    let (store, errors) = ProjectStore::load_dir(dir.path(), env, metrics().0);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(store.get(9).is_some());
}

#[tokio::test]
async fn the_watcher_reloads_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.json", &project_json(1, "alpha"));
    let (store, _) = ProjectStore::load_dir(dir.path(), no_env(), metrics().0);
    let store = Arc::new(store);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = Arc::clone(&store).spawn_watcher(Duration::from_millis(20), rx);

    write(dir.path(), "2.json", &project_json(2, "beta"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.get(2).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watcher never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("watcher stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn the_watcher_stops_when_the_shutdown_sender_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = ProjectStore::load_dir(dir.path(), no_env(), metrics().0);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handle = Arc::new(store).spawn_watcher(Duration::from_secs(3600), rx);
    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("watcher stops when the sender is gone")
        .unwrap();
}

#[test]
fn check_dir_reports_every_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.json", &project_json(1, "alpha"));
    write(dir.path(), "2.json", BAD_RULE);
    write(dir.path(), "abc.json", &project_json(3, "x"));
    let unkeyed = serde_json::json!({
        "config": {"piiConfig": {"applications": {"$user.email": ["@email:hash"]}}}
    })
    .to_string();
    write(dir.path(), "4.json", &unkeyed);

    let checks = check_dir(dir.path(), &|_| None).unwrap();
    let names: Vec<String> = checks
        .iter()
        .map(|c| c.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["1.json", "2.json", "4.json", "abc.json"]);

    assert!(checks[0].is_ok());
    assert_eq!(checks[0].project_id, Some(1));
    assert!(checks[0].warnings.is_empty(), "{:?}", checks[0].warnings);

    assert!(!checks[1].is_ok());
    assert!(
        checks[1]
            .errors
            .iter()
            .any(|e| e.contains("piiConfig.rules.r")),
        "{:?}",
        checks[1].errors
    );

    assert!(checks[2].is_ok());
    assert!(
        !checks[2].warnings.is_empty(),
        "an unkeyed hash is warned about"
    );

    assert!(!checks[3].is_ok());
    assert_eq!(checks[3].project_id, None);

    assert!(matches!(
        check_dir(&dir.path().join("missing"), &|_| None),
        Err(LoadError::ReadDir { .. })
    ));
}

/// The shipped project configs load without errors, so they cannot go stale.
#[test]
fn shipped_project_configs_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/projects");
    let (store, errors) = ProjectStore::load_dir(&dir, no_env(), metrics().0);
    assert!(errors.is_empty(), "{errors:?}");
    let project = store.get(42).expect("config/projects/42.json");
    assert!(project.config.scrubs_ip_addresses);
    assert_eq!(project.config.public_keys.len(), 1);
    assert!(project.config.public_keys[0].is_enabled);
    for check in check_dir(&dir, &|_| None).unwrap() {
        assert!(check.is_ok(), "{check:?}");
    }
}

/// The shipped example project scrubs what it says it scrubs.
#[test]
fn shipped_example_project_scrubs_a_realistic_event() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/projects");
    let (store, _) = ProjectStore::load_dir(&dir, no_env(), metrics().0);
    let project = store.get(42).unwrap();
    let event = serde_json::json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "user": {"id": "u-1", "email": "jane.doe@example.com", "ip_address": "203.0.113.9"},
        "request": {"headers": [["X-Session-Token", "abc123"], ["Accept", "application/json"]]},
        "extra": {
            "order": "refund for ord_AbCdEfGhIjKlMnOpQrStUvWx failed",
            "host": "db-1.corp.acme.io unreachable",
            "peer": "connected from 198.51.100.7",
            "customer_ref": "CR-99812",
            "password": "hunter2"
        }
    })
    .to_string();
    let out = project
        .config
        .rules
        .scrub(
            crate::scrub::ItemKind::Event,
            event.as_bytes(),
            &Default::default(),
        )
        .unwrap();
    let text = String::from_utf8(out.bytes).unwrap();
    for secret in [
        "jane.doe@example.com",
        "203.0.113.9",
        "abc123",
        "ord_AbCdEfGhIjKlMnOpQrStUvWx",
        "db-1.corp.acme.io",
        "198.51.100.7",
        "CR-99812",
        "hunter2",
    ] {
        let scrubbed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let without_meta = {
            let mut v = scrubbed.clone();
            v.as_object_mut().unwrap().remove("_meta");
            v.to_string()
        };
        assert!(!without_meta.contains(secret), "{secret} survived: {text}");
    }
    assert!(text.contains("[order-token]"), "{text}");
    assert!(text.contains("[internal-host]"), "{text}");
}
