//! The console on the admin listener: access (token, loopback), its API (projects, the
//! playground, pseudonyms, samples, reload), shadow rules on live traffic, and that no
//! planted value ever appears where it should not.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::support::*;

const TOKEN: &str = "console-test-token-5b1f";

/// One admin request: status, headers, body.
async fn admin_call(
    proxy: &TestProxy,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{}{}", proxy.admin_addr, path));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn api(
    proxy: &TestProxy,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, body) = admin_call(proxy, method, path, Some(TOKEN), body).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn project_with(pii: Value, scrubgate: Value) -> String {
    project_json(PROJECT, false, pii, scrubgate)
}

#[tokio::test]
async fn off_loopback_without_a_token_the_console_is_off_but_probes_work() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.admin.listen = "0.0.0.0:3001".parse().unwrap())
        .spawn()
        .await;
    for path in ["/", "/console.js", "/api/projects", "/api/status"] {
        let (status, _, body) = admin_call(&proxy, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("admin.token"), "{path}: {text}");
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (status, _, _) = admin_call(&proxy, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn with_a_token_every_api_call_needs_it_and_the_page_is_locked_down() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| {
            c.admin.listen = "0.0.0.0:3001".parse().unwrap();
            c.admin.token = Some(TOKEN.to_owned());
        })
        .spawn()
        .await;
    for token in [None, Some("wrong"), Some("console-test-token-5b1")] {
        let (status, headers, _) =
            admin_call(&proxy, Method::GET, "/api/projects", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    let (status, headers, body) =
        admin_call(&proxy, Method::GET, "/api/projects", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["projects"][0]["id"], PROJECT);
    assert_eq!(headers["cache-control"], "no-store");
    // The page: served (it holds no data), with the security headers.
    let (status, headers, body) = admin_call(&proxy, Method::GET, "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("<html"));
    assert_eq!(headers["content-security-policy"], "default-src 'self'");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // The full public key is never shown.
    assert!(!String::from_utf8_lossy(&body).contains(KEY));
    let (_, _, list) = admin_call(&proxy, Method::GET, "/api/projects", Some(TOKEN), None).await;
    assert!(!String::from_utf8_lossy(&list).contains(KEY));
}

#[tokio::test]
async fn the_playground_scrubs_explains_and_names_bad_rules_by_path() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.admin.token = Some(TOKEN.to_owned()))
        .spawn()
        .await;
    let event = json!({"message": "from jane@example.com", "user": {"email": "jane@example.com"}});
    let (status, out) = api(
        &proxy,
        Method::POST,
        "/api/scrub",
        Some(json!({"project": PROJECT, "event": event})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["event"]["message"], "from [email]");
    let changes = out["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["path"] == "user.email" && c["method"] == "hash"),
        "{out}"
    );
    assert!(out["event"]["_meta"]["user"]["email"].is_object(), "{out}");

    // Rules given inline; a bad one is named by its path.
    let config = json!({"piiConfig": {
        "rules": {"x": {"type": "pattern", "pattern": "(unclosed"}},
        "applications": {"$string": ["x"]}
    }});
    let (status, out) = api(
        &proxy,
        Method::POST,
        "/api/scrub",
        Some(json!({"config": config, "event": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        out["errors"][0]["path"], "config.piiConfig.rules.x.pattern",
        "{out}"
    );

    // An envelope, scrubbed item by item.
    let envelope = "{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\"}\n{\"message\":\"mail jane@example.com\"}\n";
    let (status, out) = api(
        &proxy,
        Method::POST,
        "/api/scrub",
        Some(json!({"project": PROJECT, "envelope": envelope})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let text = out["envelope"].as_str().unwrap();
    assert!(
        !text.contains("jane@example.com") && text.contains("[email]"),
        "{text}"
    );
    assert_eq!(out["items"][0]["type"], "event");

    // Bad requests and bounded bodies.
    let (status, _) = api(
        &proxy,
        Method::POST,
        "/api/scrub",
        Some(json!({"event": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let big = json!({"project": PROJECT, "event": {"x": "a".repeat(5 << 20)}});
    let (status, _) = api(&proxy, Method::POST, "/api/scrub", Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = api(&proxy, Method::GET, "/api/scrub", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = api(&proxy, Method::GET, "/api/projects/999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The `user.email` of the `n`-th request the upstream received.
async fn email_received(upstream: &RecordingUpstream, n: usize) -> String {
    let recorded = upstream.wait_for(n).await;
    let event: Value = serde_json::from_slice(&recorded[n - 1].body).unwrap();
    event["user"]["email"].as_str().unwrap().to_owned()
}

/// The pseudonym of an email equals the hash the upstream received for it, before and
/// after a key rotation (the old key's pseudonym is still found).
#[tokio::test]
async fn a_pseudonym_is_what_the_store_received_across_a_key_rotation() {
    let upstream = RecordingUpstream::spawn().await;
    let one_key = |keys: Value| {
        project_with(
            json!({"vars": {"hashKeys": keys}}),
            json!({"protect": ["emails"]}),
        )
    };
    let proxy = TestProxy::builder(&upstream)
        .project(
            PROJECT,
            one_key(json!([{"id": "2026-06", "key": "first-key"}])),
        )
        .configure(|c| c.admin.token = Some(TOKEN.to_owned()))
        .spawn()
        .await;
    let send =
        |n: u8| json!({"event_id": format!("{n:032x}"), "user": {"email": "jane@example.com"}});
    assert_eq!(proxy.store(&send(1)).await.status, 200);
    let first_hash = email_received(&upstream, 1).await;
    let lookup = json!({"project": PROJECT, "value": "jane@example.com", "selector": "user.email"});
    let (status, out) = api(&proxy, Method::POST, "/api/pseudonym", Some(lookup.clone())).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["results"][0]["replacement"], first_hash.as_str());
    assert_eq!(out["results"][0]["key_id"], "2026-06");
    assert_eq!(
        out["results"][0]["query"],
        format!("user.email:{first_hash}").as_str()
    );

    // Rotate: a new current key, the old one kept for lookups.
    proxy.write_project(
        PROJECT,
        &one_key(json!([
            {"id": "2026-12", "key": "second-key"},
            {"id": "2026-06", "key": "first-key"}
        ])),
    );
    let rotated = eventually(Duration::from_secs(5), || async {
        let (_, out) = api(&proxy, Method::POST, "/api/pseudonym", Some(lookup.clone())).await;
        out["results"].as_array().is_some_and(|r| r.len() == 2)
    })
    .await;
    assert!(rotated, "the rotation was not loaded");
    assert_eq!(proxy.store(&send(2)).await.status, 200);
    let second_hash = email_received(&upstream, 2).await;
    assert_ne!(second_hash, first_hash);
    let (_, out) = api(&proxy, Method::POST, "/api/pseudonym", Some(lookup)).await;
    assert_eq!(out["results"][0]["key_id"], "2026-12");
    assert_eq!(out["results"][0]["replacement"], second_hash.as_str());
    assert_eq!(out["results"][1]["key_id"], "2026-06");
    assert_eq!(out["results"][1]["replacement"], first_hash.as_str());
}

/// Shadow rules are counted and sampled on live traffic and change no forwarded byte;
/// samples hold shapes, never values; reload reports errors by path.
#[tokio::test]
async fn shadow_rules_are_sampled_and_change_nothing() {
    let upstream = RecordingUpstream::spawn().await;
    let shadow = json!({
        "rules": {"fruit": {"type": "pattern", "pattern": "banana-\\d+", "redaction": {"method": "replace", "text": "[fruit]"}}},
        "applications": {"$string": ["fruit"]}
    });
    let with_shadow = project_with(
        json!({"applications": {"$string": ["@email"]}}),
        json!({"shadow": shadow, "samples": true}),
    );
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, with_shadow)
        .configure(|c| c.admin.token = Some(TOKEN.to_owned()))
        .spawn()
        .await;
    let event = json!({"event_id": "0000000000000000000000000000abcd",
                       "message": "banana-4242 for Jane.Doe@Example.com"});
    assert_eq!(proxy.store(&event).await.status, 200);
    let recorded = upstream.wait_for(1).await;
    let forwarded: Value = serde_json::from_slice(&recorded[0].body).unwrap();
    assert_eq!(
        forwarded["message"], "banana-4242 for [email]",
        "shadow changed nothing"
    );
    assert!(
        !forwarded["_meta"].to_string().contains("fruit"),
        "no shadow remark: {forwarded}"
    );

    let (status, out) = api(
        &proxy,
        Method::GET,
        &format!("/api/projects/{PROJECT}/samples"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let samples = out["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2, "{out}");
    let shadow_sample = samples.iter().find(|s| s["shadow"] == true).unwrap();
    assert_eq!(shadow_sample["rule"], "fruit");
    assert_eq!(shadow_sample["path"], "message");
    assert_eq!(shadow_sample["method"], "replace");
    assert_eq!(shadow_sample["item_type"], "event");
    assert_eq!(
        shadow_sample["event_id"],
        "0000000000000000000000000000abcd"
    );
    // The matched text's shape, not the whole value's.
    assert_eq!(shadow_sample["shape"], "aaaaaa-9999");
    let live = samples.iter().find(|s| s["shadow"] == false).unwrap();
    assert_eq!(live["rule"], "@email");
    assert_eq!(live["shape"], "Aaaa.Aaa@Aaaaaaa.aaa");
    // No planted value anywhere in the API's answers.
    let (_, projects) = api(&proxy, Method::GET, "/api/projects", None).await;
    for text in [out.to_string(), projects.to_string()] {
        assert!(
            !text.contains("banana-4242") && !text.contains("Jane.Doe"),
            "{text}"
        );
    }
    assert_eq!(
        projects["projects"][0]["shadow_hits"]["fruit"], 1,
        "{projects}"
    );
    assert_eq!(projects["projects"][0]["hits"]["@email"], 1, "{projects}");
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            &format!("scrubgate_shadow_matches_total{{project=\"{PROJECT}\",rule=\"fruit\"}}")
        ),
        Some(1.0)
    );

    // A broken file: the reload says where, the previous rules stay.
    proxy.write_project(PROJECT, r#"{"config": {"scrubgate": {"coverge": "all"}}}"#);
    let (status, out) = api(&proxy, Method::POST, "/api/reload", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        out["errors"][0]["path"], "config.scrubgate.coverge",
        "{out}"
    );
    let (_, projects) = api(&proxy, Method::GET, "/api/projects", None).await;
    assert_eq!(projects["projects"][0]["reload"]["result"], "error");
    assert_eq!(
        projects["projects"][0]["reload"]["errors"][0]["path"],
        "config.scrubgate.coverge"
    );
}

/// The page in a real browser (Debian's Chromium driven by playwright-core, from
/// `tests/console/console.test.mjs`): the projects, the playground with a change
/// highlighted and a bad rule's error at its path, a pseudonym lookup, and samples after
/// traffic. Screenshots go to `target/console-screenshots`. Needs
/// `scripts/install-browser.sh` (`scripts/test` runs it); fails, naming it, without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_a_real_browser() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let driver = root.join("tests/console/node_modules/playwright-core/package.json");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists() && driver.exists(),
        "Chromium or playwright-core is missing: run scripts/install-browser.sh (scripts/test runs it)"
    );
    let upstream = RecordingUpstream::spawn().await;
    let shadow = json!({
        "rules": {"fruit": {"type": "pattern", "pattern": "banana", "redaction": {"method": "remove"}}},
        "applications": {"$string": ["fruit"]}
    });
    let project = project_with(
        json!({"vars": {"hashKey": "browser-test-key"}}),
        json!({"shadow": shadow, "samples": true, "protect": ["emails", "device_ids"]}),
    );
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, project)
        .configure(|c| c.admin.token = Some(TOKEN.to_owned()))
        .spawn()
        .await;
    // Traffic first, so that the samples table has rows.
    let event =
        json!({"message": "banana for jane@example.com", "user": {"email": "jane@example.com"}});
    assert_eq!(proxy.store(&event).await.status, 200);

    let shots = root.join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let run = tokio::process::Command::new("node")
        .arg(root.join("tests/console/console.test.mjs"))
        .env("CONSOLE_URL", format!("http://{}/", proxy.admin_addr))
        .env("CONSOLE_TOKEN", TOKEN)
        .env("CONSOLE_PROJECT", PROJECT.to_string())
        .env("EXPECT_SAMPLES", "1")
        .env("SCREENSHOT_DIR", &shots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser test took over 3 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    for shot in ["console-projects.png", "console-playground.png"] {
        assert!(shots.join(shot).exists(), "{shot} was not saved");
    }
}
