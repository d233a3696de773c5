//! The `scrubgate` binary: `check` exit codes, and `run` end to end (stderr captured).

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::*;

fn scrubgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scrubgate"))
}

#[test]
fn check_accepts_the_shipped_config() {
    let output = scrubgate()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check", "--config", "config/scrubgate.toml"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("config/projects/42.json: ok"), "{stdout}");
}

#[test]
fn check_names_every_error_and_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    let config = dir.path().join("scrubgate.toml");
    std::fs::write(
        &config,
        format!("[projects]\ndir = {:?}\n", projects.display().to_string()),
    )
    .unwrap();
    std::fs::write(projects.join("42.json"), default_project()).unwrap();
    let run = |config: &std::path::Path| {
        let output = scrubgate()
            .args(["check", "--config"])
            .arg(config)
            .output()
            .unwrap();
        (
            output.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    let (code, text) = run(&config);
    assert_eq!(code, Some(0), "{text}");

    // A broken project: exit 1, the file and the JSON path of each error.
    let broken = project_json(
        7,
        true,
        json!({"rules": {"r": {"type": "pattern", "pattern": "("}}, "applications": {"$string": ["r", "@nope"]}}),
        json!({}),
    );
    std::fs::write(projects.join("7.json"), broken).unwrap();
    let (code, text) = run(&config);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("7.json: error: config.piiConfig.rules.r.pattern"),
        "{text}"
    );
    assert!(text.contains("42.json: ok"), "{text}");
    assert!(
        text.lines().filter(|l| l.contains("7.json: error")).count() >= 2,
        "{text}"
    );

    // A broken server config: exit 2, each bad key named.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"nope\"\n[upstream]\ntimeout = \"0s\"\n",
    )
    .unwrap();
    let (code, text) = run(&bad);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("server.listen") && text.contains("upstream.timeout"),
        "{text}"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_scrubs_and_stops_on_sigterm_without_logging_content() {
    let upstream = RecordingUpstream::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    std::fs::write(projects.join("42.json"), default_project()).unwrap();
    let config = dir.path().join("scrubgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [upstream]\nurl = {:?}\n[projects]\ndir = {:?}\n[log]\nformat = \"json\"\nlevel = \"debug\"\n",
            dir.path().join("data").display().to_string(),
            upstream.url(),
            projects.display().to_string()
        ),
    )
    .unwrap();
    let binary = Binary::start(&config).await;
    let addr = binary.addr.clone();

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut status = None;
    for _ in 0..100 {
        let request = http::Request::post(format!("http://{addr}/api/{PROJECT}/store/"))
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_secret={SECRET}"),
            )
            .body(http_body_util::Full::new(bytes::Bytes::from(
                canary_event().to_string(),
            )))
            .unwrap();
        if let Ok(response) = client.request(request).await {
            status = Some(response.status());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, Some(http::StatusCode::OK));
    assert_no_canary(&upstream.wait_for(1).await[0].text(), "binary");

    let (exited_cleanly, logs) = binary.signal_and_wait("-TERM").await;
    assert!(exited_cleanly);

    assert!(
        logs.contains("\"endpoint\":\"store\""),
        "no request line:\n{logs}"
    );
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(
        !logs.contains(CANARY_EMAIL),
        "event content logged:\n{logs}"
    );
    assert!(!logs.contains(CANARY_IP), "event content logged:\n{logs}");
    assert!(!logs.contains(SECRET), "secret logged:\n{logs}");
}

/// Runs `scrubgate scrub` with `args`, feeding `stdin`; returns (exit code, stdout, stderr).
fn scrub_cli(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = scrubgate()
        .arg("scrub")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A config error exits before reading stdin: a broken pipe here is expected then.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn scrub_command_one_event_jsonl_explain_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("7.json");
    std::fs::write(
        &project,
        json!({"config": {"piiConfig": {"applications": {"$string": ["@email"]}}}}).to_string(),
    )
    .unwrap();
    let project = project.to_str().unwrap();

    // One event on stdin, {{auto}} resolved from --client-ip (this project keeps IPs).
    let (code, out, err) = scrub_cli(
        &[
            "--project",
            project,
            "--client-ip",
            "198.51.100.9",
            "--explain",
        ],
        r#"{"user":{"ip_address":"{{auto}}"},"extra":{"mail":"jane@example.com"}}"#,
    );
    assert_eq!(code, Some(0), "{err}");
    let event: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(event["extra"]["mail"], "[email]");
    assert_eq!(event["user"]["ip_address"], "198.51.100.9");
    assert!(
        err.contains("extra.mail") && err.contains("@email"),
        "{err}"
    );
    assert!(
        !err.contains("jane@example.com"),
        "explain never shows values: {err}"
    );

    // JSON lines: a bad line is reported by number, the others are written in order.
    let input = "{\"extra\":{\"a\":\"x@y.io\"}}\n{broken\n{\"extra\":{\"b\":1}}\n";
    let (code, out, err) = scrub_cli(&["--project", project, "--jsonl"], input);
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("[email]"));
    assert_eq!(lines[1], r#"{"extra":{"b":1}}"#);
    assert!(err.contains("line 2"), "{err}");

    // A broken project config exits 2 before reading any event.
    let bad = dir.path().join("8.json");
    std::fs::write(
        &bad,
        r#"{"config": {"piiConfig": {"rules": {"r": {"type": "pattern", "pattern": "("}}}}}"#,
    )
    .unwrap();
    let (code, out, err) = scrub_cli(&["--project", bad.to_str().unwrap()], "{}");
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty());
    assert!(err.contains("config.piiConfig.rules.r.pattern"), "{err}");
}

#[test]
fn check_print_rules_shows_every_applied_pii_config_in_order() {
    let output = scrubgate()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SCRUBGATE_HASH_KEY", "cli-test-key")
        .args([
            "check",
            "--project",
            "config/projects/42.json",
            "--print-rules",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let json_start = stdout.find('{').expect("a JSON document");
    let doc: serde_json::Value = serde_json::from_str(&stdout[json_start..]).unwrap();
    let applied = doc["applied_in_order"].as_array().unwrap();
    let sources: Vec<&str> = applied
        .iter()
        .map(|a| a["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        [
            "config.piiConfig",
            "config.datascrubbingSettings",
            "config.scrubgate.protect"
        ]
    );
    let protect = &applied[2]["piiConfig"];
    for rule in [
        "protect-emails",
        "protect-user_ids",
        "protect-ip_addresses",
        "protect-device_ids",
        "protect-device_ids-by-key",
    ] {
        assert!(protect["rules"].get(rule).is_some(), "{rule}: {protect}");
    }
    // The key is a secret: it is never printed.
    assert!(!stdout.contains("cli-test-key"), "{stdout}");
    // With the variable set there is no fallback warning.
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn check_reports_a_typo_in_a_setting_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("7.json");
    std::fs::write(
        &path,
        json!({"config": {
            "datascrubbingSettings": {"scrubData": true, "scrubIPAdresses": true},
            "scrubgate": {"coverge": "all"}
        }})
        .to_string(),
    )
    .unwrap();
    let output = scrubgate()
        .args(["check", "--project"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("config.datascrubbingSettings.scrubIPAdresses: unknown key")
            && stdout.contains("did you mean \"scrubIpAddresses\"?"),
        "{stdout}"
    );
    assert!(
        stdout.contains("config.scrubgate.coverge: unknown key")
            && stdout.contains("did you mean \"coverage\"?"),
        "{stdout}"
    );
}

#[test]
fn test_command_passes_fails_with_a_diff_and_refuses_invalid_files() {
    let dir = tempfile::tempdir().unwrap();
    let project = json!({"config": {"piiConfig": {"applications": {"$string": ["@email"]}}}});
    std::fs::write(dir.path().join("p.json"), project.to_string()).unwrap();
    let case = |expect: serde_json::Value| json!({"project": "p.json", "input": {"message": "mail jane@example.com"}, "expect": expect});
    let run = |path: &std::path::Path| {
        let output = scrubgate().arg("test").arg(path).output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let passing = dir.path().join("ok.test.json");
    std::fs::write(
        &passing,
        case(json!({"absent": ["jane@example.com"], "equals": {"message": "mail [email]"}}))
            .to_string(),
    )
    .unwrap();
    let (code, out) = run(&passing);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("PASS") && out.contains("1 passed, 0 failed, 0 invalid"),
        "{out}"
    );

    let failing = dir.path().join("bad.test.json");
    std::fs::write(
        &failing,
        case(json!({"equals": {"message": "mail jane"}, "output": {"message": "mail jane"}}))
            .to_string(),
    )
    .unwrap();
    let (code, out) = run(&failing);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains("message: expected \"mail jane\", got \"mail [email]\""),
        "{out}"
    );
    assert!(out.contains("-   \"message\": \"mail jane\""), "{out}");
    assert!(out.contains("+   \"message\": \"mail [email]\""), "{out}");

    let invalid = dir.path().join("broken.test.json");
    std::fs::write(&invalid, "{\"project\": \"p.json\", \"inptu\": {}}").unwrap();
    let (code, out) = run(&invalid);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("unknown key \"inptu\""), "{out}");

    // A directory: every *.test.json under it; one invalid file makes the run 2.
    let (code, out) = run(dir.path());
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("1 passed, 1 failed, 1 invalid"), "{out}");
}

#[test]
fn the_shipped_projects_rule_tests_pass() {
    let output = scrubgate()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["test", "config/projects/tests"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("3 passed, 0 failed, 0 invalid"), "{stdout}");
}

#[test]
fn pseudonym_command_gives_the_hash_the_rules_make() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("7.json");
    std::fs::write(
        &path,
        json!({"config": {
            "piiConfig": {"vars": {"hashKey": "${PSEUDONYM_TEST_KEY}"}},
            "scrubgate": {"protect": ["emails"]}
        }})
        .to_string(),
    )
    .unwrap();
    let output = scrubgate()
        .env("PSEUDONYM_TEST_KEY", "key")
        .args([
            "pseudonym",
            "--selector",
            "user.email",
            "--value",
            "jane@example.com",
            "--project",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // HMAC-SHA1("key", "jane@example.com").
    assert_eq!(
        doc["results"],
        json!([{"selector": "user.email",
                "replacement": "10E85523CCA75DA0550BE3E6F7A129AEFD07BF10",
                "key_id": "hashKey",
                "query": "user.email:10E85523CCA75DA0550BE3E6F7A129AEFD07BF10"}])
    );
    let output = scrubgate()
        .env("PSEUDONYM_TEST_KEY", "key")
        .args([
            "pseudonym",
            "--selector",
            "user.mail",
            "--value",
            "x",
            "--project",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown selector"));
}
