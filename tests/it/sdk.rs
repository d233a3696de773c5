//! Real SDKs end to end: the pinned Python `sentry-sdk` and `@sentry/node` send every kind
//! of item they send today, with planted personal data, through a real scrubgate to a
//! recording upstream (`tests/sdk/send_python.py`, `tests/sdk/send_node.mjs`).
//!
//! The project is strict: Relay's default data scrubbing, `"$string": ["@email", "@ip",
//! "@creditcard"]`, the user's identifiers hashed, and `"scrubgate": {"coverage": "all",
//! "attachments": "scrubbed_only"}` (rules also reach free text Relay leaves alone:
//! source context, transaction names, text attachments, minidumps, view hierarchies; and
//! images, which scrubgate cannot scrub, are dropped).
//! Each test asserts that
//! - the script exited 0: every SDK request was answered 2xx;
//! - every item the SDK sent reached the upstream (counted per item type, and the kinds
//!   each SDK is expected to send were really sent), but the screenshot, which never
//!   does;
//! - the text log, the minidump and (Node) the view hierarchy the scripts attach arrive
//!   as long as they were sent (scrubbed in place), or, for the view hierarchy (scrubbed
//!   as JSON), with the same JSON structure;
//! - no planted value (`tests/sdk/canaries.json`) is anywhere in what the upstream
//!   received, and each was really in what the SDK sent;
//! - identifiers are unchanged: event, trace, span and check-in ids, monitor slugs and
//!   statuses, timestamps, session ids.
//!
//! The SDKs come from `scripts/install-sdks.sh` (`.ci/run` runs it). When they are
//! missing these tests fail, naming that script: they never skip.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::upstream::Recorded;
use crate::support::*;

/// How long a script may take (both take about a second).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Where a leaking canary is reported at most this many times.
const MAX_PATHS: usize = 6;

/// One SDK under test.
struct Sdk {
    /// Key in `tests/sdk/canaries.json`.
    key: &'static str,
    /// The version `scripts/install-sdks.sh` pins.
    version: &'static str,
    /// The interpreter, relative to the crate root (`None`: `node` from `PATH`).
    program: Option<&'static str>,
    /// A file that exists once the SDK is installed, relative to the crate root.
    installed: &'static str,
    /// The script, relative to the crate root.
    script: &'static str,
    /// Every item type the script makes the SDK send.
    expected: &'static [&'static str],
    /// The file names of the attachments the script sends that scrubgate scrubs and
    /// forwards under `"attachments": "scrubbed_only"` (text, minidumps, view
    /// hierarchies). The receipt is not among them: its name holds a canary, so it
    /// does not arrive under the name it was sent with.
    scrubbed_attachments: &'static [&'static str],
    /// The file names of the attachments the script sends that the test projects drop
    /// (`"attachments": "scrubbed_only"`: an image is not scrubbed, so it is never
    /// forwarded).
    dropped_attachments: &'static [&'static str],
}

const PYTHON: Sdk = Sdk {
    key: "python",
    version: "2.76.0",
    program: Some(".sdk/venv/bin/python"),
    installed: ".sdk/venv/bin/python",
    script: "tests/sdk/send_python.py",
    expected: &[
        "attachment",
        "check_in",
        "client_report",
        "event",
        "feedback",
        "log",
        "profile",
        "profile_chunk",
        "session",
        "sessions",
        "span",
        "trace_metric",
        "transaction",
        "user_report",
    ],
    // sentry-sdk's add_attachment has no attachment_type: no view hierarchy, and the
    // minidump is one by its `MDMP` bytes only.
    scrubbed_attachments: &["app.log", "crash.dmp"],
    dropped_attachments: &["screenshot.png"],
};

const NODE: Sdk = Sdk {
    key: "node",
    version: "11.12.0",
    program: None,
    installed: "tests/sdk/node/node_modules/@sentry/node/package.json",
    script: "tests/sdk/send_node.mjs",
    expected: &[
        "attachment",
        "check_in",
        "client_report",
        "event",
        "feedback",
        "log",
        "session",
        "span",
        "trace_metric",
    ],
    scrubbed_attachments: &["app.log", "crash.dmp", "view-hierarchy.json"],
    dropped_attachments: &["screenshot.png"],
};

/// The first bytes of a PNG file.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The fields of each item type that no scrubbing may change, as JSON pointers into a
/// record: the payload itself, or each element of its `items` for containers.
const IDENTIFIERS: &[(&str, bool, &[&str])] = &[
    (
        "event",
        false,
        &[
            "/event_id",
            "/timestamp",
            "/level",
            "/release",
            "/environment",
            "/platform",
            "/contexts/trace/trace_id",
            "/contexts/trace/span_id",
        ],
    ),
    (
        "transaction",
        false,
        &[
            "/event_id",
            "/start_timestamp",
            "/timestamp",
            "/release",
            "/environment",
            "/contexts/trace/trace_id",
            "/contexts/trace/span_id",
            "/contexts/trace/op",
            "/contexts/trace/status",
            "/contexts/profile/profile_id",
        ],
    ),
    (
        "feedback",
        false,
        &[
            "/event_id",
            "/timestamp",
            "/contexts/feedback/associated_event_id",
            "/contexts/trace/trace_id",
        ],
    ),
    ("user_report", false, &["/event_id"]),
    (
        "check_in",
        false,
        &[
            "/check_in_id",
            "/monitor_slug",
            "/status",
            "/duration",
            "/environment",
            "/release",
            "/timestamp",
            "/monitor_config",
            "/contexts/trace/trace_id",
        ],
    ),
    (
        "span",
        true,
        &[
            "/span_id",
            "/trace_id",
            "/parent_span_id",
            "/start_timestamp",
            "/end_timestamp",
            "/is_segment",
            "/status",
            "/attributes/sentry.op/value",
            "/attributes/sentry.segment.id/value",
            "/attributes/sentry.release/value",
            "/attributes/sentry.environment/value",
        ],
    ),
    (
        "log",
        true,
        &[
            "/trace_id",
            "/timestamp",
            "/level",
            "/severity_number",
            "/attributes/sentry.release/value",
            "/attributes/sentry.environment/value",
        ],
    ),
    (
        "trace_metric",
        true,
        &[
            "/trace_id",
            "/timestamp",
            "/name",
            "/type",
            "/value",
            "/unit",
            "/attributes/sentry.release/value",
        ],
    ),
    (
        "session",
        false,
        &[
            "/sid",
            "/init",
            "/started",
            "/timestamp",
            "/status",
            "/errors",
            "/duration",
            "/attrs/release",
            "/attrs/environment",
        ],
    ),
    // Not `/attrs` or `/aggregates` whole: `attrs.ip_address` and each aggregate's `did`
    // are personal data the README says are scrubbed.
    (
        "sessions",
        false,
        &[
            "/attrs/release",
            "/attrs/environment",
            "/aggregates/0/started",
            "/aggregates/0/exited",
            "/aggregates/0/errored",
        ],
    ),
    (
        "profile",
        false,
        &[
            "/event_id",
            "/timestamp",
            "/release",
            "/transactions/0/id",
            "/transactions/0/trace_id",
        ],
    ),
    (
        "profile_chunk",
        false,
        &["/chunk_id", "/profiler_id", "/release", "/environment"],
    ),
    ("client_report", false, &["/timestamp", "/discarded_events"]),
];

/// Envelope header fields that must arrive unchanged.
const HEADER_IDENTIFIERS: &[&str] = &[
    "/event_id",
    "/sdk",
    "/trace/trace_id",
    "/trace/public_key",
    "/trace/release",
    "/trace/environment",
    "/trace/sample_rate",
    "/trace/sample_rand",
    "/trace/sampled",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_items_arrive_scrubbed() {
    run_sdk(&PYTHON, strict_project(), Canaries::WithoutProtect).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_items_arrive_scrubbed() {
    run_sdk(&NODE, strict_project(), Canaries::WithoutProtect).await;
}

/// The same SDK runs against a project that writes no rule for emails, user ids, IPs or
/// device ids: default data scrubbing, `"protect": ["all"]`, and one card-number rule
/// (cards are not among `protect`'s kinds, and Relay's defaults leave exception values
/// alone). Every planted email, user id, IP and device id, the device canaries
/// included, must be gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_items_arrive_protected_by_protect_all() {
    run_sdk(&PYTHON, protect_all_project(), Canaries::All).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_items_arrive_protected_by_protect_all() {
    run_sdk(&NODE, protect_all_project(), Canaries::All).await;
}

/// The envelopes captured on the wire from these SDKs and sentry-cli 3.8.2
/// (`tests/fixtures/sdk-envelopes/`, copied from the shared corpus), replayed through
/// the same strict project: every item arrives, identifiers unchanged, and none of the
/// values the capture planted (found by [`planted_in`]) is left. Needs no SDK install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_sdk_envelopes_arrive_scrubbed() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, strict_project())
        .spawn()
        .await;
    let dir = root().join("tests/fixtures/sdk-envelopes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "envelope"))
        .collect();
    files.sort();
    assert!(files.len() >= 19, "fixtures missing in {}", dir.display());

    let mut report = String::new();
    let mut failing = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let body = std::fs::read(file).unwrap();
        let before = upstream.requests().len();
        let response = proxy.envelope(body.clone()).await;
        let received: Vec<Recorded> = upstream.requests()[before..].to_vec();
        let mut failures = Vec::new();
        if !response.status.is_success() {
            failures.push(format!(
                "scrubgate answered {}: {}",
                response.status,
                response.text()
            ));
        }
        let sent = vec![Envelope::parse(&body, "sent".into())];
        let arrived: Vec<Envelope> = received
            .iter()
            .enumerate()
            .map(|(i, request)| Envelope::parse(&request.body, format!("upstream #{}", i + 1)))
            .collect();
        check_item_types(&[], &sent, &arrived, &mut failures);
        let planted = planted_in(&body);
        // Every capture must carry personal data to look for, except those that cannot
        // by design: a check-in holds only ids, a slug, a status and timestamps.
        const WITHOUT_PLANTS: [&str; 2] = ["node-check_in.envelope", "python-check_in.envelope"];
        if planted.is_empty() != WITHOUT_PLANTS.contains(&name.as_str()) {
            failures.push(format!(
                "{} planted values found; the list of captures without plants says {}",
                planted.len(),
                WITHOUT_PLANTS.contains(&name.as_str())
            ));
        }
        check_canaries(
            &planted,
            std::slice::from_ref(&body),
            &received,
            &arrived,
            &mut failures,
        );
        check_identifiers(&sent, &arrived, &mut failures);
        if !failures.is_empty() {
            failing += 1;
            let _ = writeln!(report, "{name}:");
            for failure in failures {
                let _ = writeln!(report, "  - {failure}");
            }
        }
    }
    proxy.shutdown().await;
    assert!(
        failing == 0,
        "{failing} of {} captured SDK envelopes did not arrive scrubbed:\n{report}",
        files.len()
    );
}

/// The values the corpus capture planted in an envelope: e-mails `…plant@example.com`,
/// IPs of the documentation ranges, user ids `…-PLANT…`, usernames `…_username_plant`,
/// passwords `Hunter2-…` and the test card numbers.
fn planted_in(body: &[u8]) -> Vec<Canary> {
    let patterns = [
        ("e-mail", r"[A-Za-z0-9._-]*plant@example\.com"),
        ("IP", r"\b(?:198\.51\.100|203\.0\.113|192\.0\.2)\.\d{1,3}\b"),
        ("user id", r"[A-Za-z]+-PLANT(?:-[0-9A-Za-z]+)?"),
        ("username", r"[a-z]+_username_plant"),
        ("password", r"Hunter2-[A-Za-z]+"),
        (
            "card number",
            r"4111 1111 1111 1111|4111111111111111|5500-0000-0000-0004|4242 4242 4242 4242",
        ),
    ];
    let text = String::from_utf8_lossy(body);
    let mut found = BTreeMap::new();
    for (kind, pattern) in patterns {
        let regex = regex::Regex::new(pattern).unwrap();
        for m in regex.find_iter(&text) {
            found.insert(m.as_str().to_owned(), kind);
        }
    }
    found
        .into_iter()
        .map(|(value, kind)| Canary {
            value,
            place: format!("planted {kind}"),
            items: Vec::new(),
        })
        .collect()
}

/// The strict project of these tests (under `attachments = "scrubbed_only"`, as the
/// captured envelopes hold only text attachments, they lose nothing to it).
fn strict_project() -> String {
    project_json(
        PROJECT,
        true,
        json!({
            "applications": {
                "$string": ["@email", "@ip", "@creditcard"],
                "$user.email || $user.username || $user.ip_address || $user.id": ["@anything:hash"]
            }
        }),
        json!({"coverage": "all", "attachments": "scrubbed_only"}),
    )
}

/// Default data scrubbing (without `scrubIpAddresses`), card numbers in every string,
/// and `protect: ["all"]` with a hash key, under `coverage: "all"` and `attachments:
/// "scrubbed_only"`.
fn protect_all_project() -> String {
    project_json(
        PROJECT,
        false,
        json!({
            "vars": {"hashKey": "sdk-test-key"},
            "applications": {"$string": ["@creditcard"]}
        }),
        json!({"coverage": "all", "protect": ["all"], "attachments": "scrubbed_only"}),
    )
}

/// Which canaries a run checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Canaries {
    /// All but those marked `"needs": "protect"`.
    WithoutProtect,
    /// Every one.
    All,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A planted value and where the script puts it.
struct Canary {
    value: String,
    place: String,
    /// The kinds of what the SDK sends it in (`tests/sdk/canaries.json`'s `items`: item
    /// types, and `envelope header`); empty for values found by pattern in a capture.
    items: Vec<String>,
}

fn canaries(sdk: &Sdk, which: Canaries) -> Vec<Canary> {
    let path = root().join("tests/sdk/canaries.json");
    let all: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("canaries.json is JSON");
    all[sdk.key]
        .as_object()
        .unwrap_or_else(|| panic!("canaries.json has no {:?}", sdk.key))
        .iter()
        .filter(|(_, canary)| which == Canaries::All || canary.get("needs").is_none())
        .map(|(key, canary)| Canary {
            value: canary["value"].as_str().unwrap().to_owned(),
            place: format!("{key} ({})", canary["where"].as_str().unwrap_or("")),
            items: canary["items"]
                .as_array()
                .unwrap_or_else(|| panic!("canaries.json: {}.{key} has no items list", sdk.key))
                .iter()
                .map(|kind| kind.as_str().expect("item kinds are strings").to_owned())
                .collect(),
        })
        .collect()
}

/// What the script printed and left behind.
struct ScriptRun {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    /// The envelopes as the SDK sent them, in order.
    sent: Vec<Vec<u8>>,
}

/// Runs the SDK's script against `dsn`; panics (naming the install script) when the SDK
/// is not installed or the script cannot start or finish.
async fn run_script(sdk: &Sdk, dsn: &str) -> ScriptRun {
    let install_hint = "run scripts/install-sdks.sh (CI runs it in .ci/run)";
    let installed = root().join(sdk.installed);
    assert!(
        installed.exists(),
        "the {} SDK is not installed ({} is missing): {install_hint}",
        sdk.key,
        installed.display()
    );
    let program = match sdk.program {
        Some(rel) => root().join(rel).into_os_string(),
        None => "node".into(),
    };
    let capture = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(&program);
    command
        .arg(root().join(sdk.script))
        .arg(dsn)
        .arg(capture.path())
        .current_dir(root().join("tests/sdk"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Nothing from the environment may send the SDKs elsewhere or change what they send.
    for name in [
        "SENTRY_DSN",
        "SENTRY_RELEASE",
        "SENTRY_ENVIRONMENT",
        "SENTRY_DEBUG",
        "SENTRY_TRACES_SAMPLE_RATE",
        "SENTRY_SPOTLIGHT",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "NODE_OPTIONS",
        "PYTHONPATH",
    ] {
        command.env_remove(name);
    }
    let child = command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start {} for the {} SDK ({e}): {install_hint}",
            Path::new(&program).display(),
            sdk.key
        )
    });
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish within {SCRIPT_TIMEOUT:?}", sdk.script))
        .unwrap_or_else(|e| panic!("{}: {e}", sdk.script));
    let mut files: Vec<PathBuf> = std::fs::read_dir(capture.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "envelope"))
        .collect();
    files.sort();
    ScriptRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        sent: files.iter().map(|f| std::fs::read(f).unwrap()).collect(),
    }
}

async fn run_sdk(sdk: &Sdk, project: String, which: Canaries) {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, project)
        .spawn()
        .await;
    let dsn = format!("http://{KEY}@{}/{PROJECT}", proxy.addr);
    let run = run_script(sdk, &dsn).await;
    let received = upstream.requests();
    let canaries = canaries(sdk, which);
    assert!(
        canaries.len() >= 20,
        "{} canaries for {}",
        canaries.len(),
        sdk.key
    );

    let mut failures = Vec::new();
    let Some(summary) = run
        .stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
    else {
        panic!(
            "{} printed no JSON summary ({}): is the {} SDK installed? run \
             scripts/install-sdks.sh\nstdout: {}\nstderr (last 2000 bytes): {}",
            sdk.script,
            run.status,
            sdk.key,
            run.stdout.trim(),
            tail(&run.stderr, 2000)
        );
    };
    check_script(sdk, &run, &summary, &mut failures);
    let sent: Vec<Envelope> = run
        .sent
        .iter()
        .enumerate()
        .map(|(i, body)| Envelope::parse(body, format!("sent #{}", i + 1)))
        .collect();
    let arrived: Vec<Envelope> = received
        .iter()
        .enumerate()
        .map(|(i, request)| Envelope::parse(&request.body, format!("upstream #{}", i + 1)))
        .collect();
    check_attachments(sdk, &sent, &arrived, &mut failures);
    // What the upstream is to receive: everything sent but the dropped screenshots.
    let forwarded = without_dropped_attachments(sdk, &sent);
    check_item_types(sdk.expected, &forwarded, &arrived, &mut failures);
    check_canary_items(&canaries, &sent, &mut failures);
    check_canaries(&canaries, &run.sent, &received, &arrived, &mut failures);
    check_identifiers(&forwarded, &arrived, &mut failures);
    check_reported_ids(&summary, &arrived, &mut failures);
    proxy.shutdown().await;

    if !failures.is_empty() {
        let mut report = format!(
            "{} SDK {} through scrubgate: {} failure(s)\n",
            sdk.key,
            sdk.version,
            failures.len()
        );
        for failure in &failures {
            let _ = writeln!(report, "- {failure}");
        }
        let _ = writeln!(
            report,
            "script stdout: {}\nscript stderr (last 2000 bytes): {}",
            run.stdout.trim(),
            tail(&run.stderr, 2000)
        );
        panic!("{report}");
    }
}

fn tail(text: &str, n: usize) -> &str {
    let mut start = text.len().saturating_sub(n);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].trim()
}

/// The script exited 0 (every SDK request got 2xx) and ran the pinned SDK.
fn check_script(sdk: &Sdk, run: &ScriptRun, summary: &Value, failures: &mut Vec<String>) {
    if summary["version"] != sdk.version {
        failures.push(format!(
            "the script ran SDK version {}, not the pinned {}: run scripts/install-sdks.sh",
            summary["version"], sdk.version
        ));
    }
    let bad: Vec<String> = summary["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            !r["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
        })
        .map(|r| {
            format!(
                "request #{} {} got {}{}",
                r["n"],
                r["items"],
                r["status"],
                r.get("error")
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !bad.is_empty() {
        failures.push(format!("SDK requests not answered 2xx: {}", bad.join("; ")));
    }
    if !run.status.success() {
        failures.push(format!("{} exited with {}", sdk.script, run.status));
    }
}

/// An envelope read back (sent by the SDK or received by the upstream).
struct Envelope {
    name: String,
    header: Value,
    items: Vec<ParsedItem>,
}

impl Envelope {
    fn parse(body: &[u8], name: String) -> Envelope {
        let (header, items) = parse_envelope(body);
        Envelope {
            name,
            header,
            items,
        }
    }
}

fn count_types(envelopes: &[Envelope]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for envelope in envelopes {
        for item in &envelope.items {
            *counts.entry(item.ty().to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// Every kind the SDK is expected to send was sent, and every item sent arrived.
fn check_item_types(
    expected: &[&str],
    sent: &[Envelope],
    arrived: &[Envelope],
    failures: &mut Vec<String>,
) {
    let sent_counts = count_types(sent);
    let arrived_counts = count_types(arrived);
    let not_sent: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|ty| !sent_counts.contains_key(*ty))
        .collect();
    if !not_sent.is_empty() {
        failures.push(format!(
            "the SDK did not send {not_sent:?} (the script or the SDK changed); sent {sent_counts:?}"
        ));
    }
    let types: BTreeSet<&String> = sent_counts.keys().chain(arrived_counts.keys()).collect();
    let mut missing = Vec::new();
    for ty in types {
        let sent = sent_counts.get(ty).copied().unwrap_or(0);
        let arrived = arrived_counts.get(ty).copied().unwrap_or(0);
        if sent != arrived {
            missing.push(format!("{ty} (sent {sent}, arrived {arrived})"));
        }
    }
    if !missing.is_empty() {
        failures.push(format!(
            "items did not reach the upstream as sent: {}",
            missing.join(", ")
        ));
    }
}

/// The attachments under `"attachments": "scrubbed_only"`: each of
/// `sdk.dropped_attachments` was sent and never arrived (nor did any PNG); each of
/// `sdk.scrubbed_attachments` was sent and arrived as often, with what scrubbing keeps
/// ([`kept_of`]) unchanged.
fn check_attachments(
    sdk: &Sdk,
    sent: &[Envelope],
    arrived: &[Envelope],
    failures: &mut Vec<String>,
) {
    assert!(
        !sdk.dropped_attachments.is_empty(),
        "no dropped attachment to look for ({})",
        sdk.key
    );
    assert!(
        !sdk.scrubbed_attachments.is_empty(),
        "no scrubbed attachment to look for ({})",
        sdk.key
    );
    for filename in sdk.dropped_attachments {
        if attachments_named(sent, filename).is_empty() {
            failures.push(format!(
                "the SDK did not send {filename} (the script or the SDK changed)"
            ));
        }
        let leaked = attachments_named(arrived, filename).len();
        if leaked > 0 {
            failures.push(format!(
                "{filename} reached the upstream {leaked} time(s): images are dropped under \
                 attachments = \"scrubbed_only\""
            ));
        }
    }
    let images: Vec<String> = arrived
        .iter()
        .flat_map(|envelope| {
            envelope
                .items
                .iter()
                .enumerate()
                .filter(|(_, item)| {
                    item.ty() == "attachment" && item.payload.starts_with(PNG_SIGNATURE)
                })
                .map(move |(i, item)| format!("{}: attachment[{i}] {}", envelope.name, item.header))
        })
        .collect();
    if !images.is_empty() {
        failures.push(format!(
            "a PNG reached the upstream (images are dropped under attachments = \
             \"scrubbed_only\"): {}",
            images.join(", ")
        ));
    }
    for filename in sdk.scrubbed_attachments {
        let mut sent_kept: Vec<String> = attachments_named(sent, filename)
            .into_iter()
            .map(kept_of)
            .collect();
        if sent_kept.is_empty() {
            failures.push(format!(
                "the SDK did not send {filename} (the script or the SDK changed)"
            ));
            continue;
        }
        let mut arrived_kept: Vec<String> = attachments_named(arrived, filename)
            .into_iter()
            .map(kept_of)
            .collect();
        sent_kept.sort();
        arrived_kept.sort();
        if sent_kept != arrived_kept {
            failures.push(format!(
                "{filename} did not arrive as scrubbing keeps it: sent {sent_kept:?}, \
                 arrived {arrived_kept:?}"
            ));
        }
    }
}

/// The attachment items named `filename` in `envelopes`.
fn attachments_named<'e>(envelopes: &'e [Envelope], filename: &str) -> Vec<&'e ParsedItem> {
    envelopes
        .iter()
        .flat_map(|envelope| &envelope.items)
        .filter(|item| item.ty() == "attachment" && item.header["filename"] == filename)
        .collect()
}

/// `envelopes` without the attachments the test projects drop
/// (`sdk.dropped_attachments`): what the upstream is to receive.
fn without_dropped_attachments(sdk: &Sdk, envelopes: &[Envelope]) -> Vec<Envelope> {
    envelopes
        .iter()
        .map(|envelope| Envelope {
            name: envelope.name.clone(),
            header: envelope.header.clone(),
            items: envelope
                .items
                .iter()
                .filter(|item| {
                    item.ty() != "attachment"
                        || !sdk
                            .dropped_attachments
                            .iter()
                            .any(|filename| item.header["filename"] == *filename)
                })
                .cloned()
                .collect(),
        })
        .collect()
}

/// Whether an item is a view hierarchy attachment (scrubbed as JSON, not in place).
fn is_view_hierarchy(item: &ParsedItem) -> bool {
    item.header["attachment_type"] == "event.view_hierarchy"
}

/// What scrubbing keeps of an attachment: its length (scrubbed in place), or, for a
/// view hierarchy (scrubbed as JSON, so a replaced string may change its length), its
/// JSON with every string emptied.
fn kept_of(item: &ParsedItem) -> String {
    if !is_view_hierarchy(item) {
        return format!("{} bytes", item.payload.len());
    }
    match serde_json::from_slice::<Value>(&item.payload) {
        Ok(tree) => format!("view hierarchy {}", without_strings(&tree)),
        Err(_) => format!("view hierarchy, not JSON ({} bytes)", item.payload.len()),
    }
}

/// `value` with every string emptied (object keys kept).
fn without_strings(value: &Value) -> Value {
    match value {
        Value::String(_) => Value::String(String::new()),
        Value::Array(values) => Value::Array(values.iter().map(without_strings).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| (key.clone(), without_strings(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Each canary was sent in exactly the kinds of item its `items` list names (so a
/// canary of a session, a log or an attachment's file name is known to have been sent
/// there, and so known to have been scrubbed there).
fn check_canary_items(canaries: &[Canary], sent: &[Envelope], failures: &mut Vec<String>) {
    assert!(!canaries.is_empty(), "no canaries to look for");
    for canary in canaries {
        let raw = canary.value.as_bytes().to_vec();
        let quoted = serde_json::to_string(&canary.value).unwrap();
        let escaped = quoted.as_bytes()[1..quoted.len() - 1].to_vec();
        let holds = |bytes: &[u8]| contains(bytes, &raw) || contains(bytes, &escaped);
        let mut found = BTreeSet::new();
        for envelope in sent {
            if holds(envelope.header.to_string().as_bytes()) {
                found.insert("envelope header".to_owned());
            }
            for item in &envelope.items {
                if holds(&item.payload) || holds(item.header.to_string().as_bytes()) {
                    found.insert(item.ty().to_owned());
                }
            }
        }
        let listed: BTreeSet<String> = canary.items.iter().cloned().collect();
        if listed.is_empty() || found != listed {
            failures.push(format!(
                "planted {:?} [{}] was sent in {found:?}; canaries.json lists {listed:?}",
                canary.value, canary.place
            ));
        }
    }
}

/// Each canary was sent, and none reached the upstream (anywhere: headers, path, body,
/// attachments included: the test projects use `coverage = "all"`, under which text
/// attachments, minidumps and view hierarchies are scrubbed, and `attachments =
/// "scrubbed_only"`, under which images are dropped).
fn check_canaries(
    canaries: &[Canary],
    sent: &[Vec<u8>],
    received: &[Recorded],
    arrived: &[Envelope],
    failures: &mut Vec<String>,
) {
    for canary in canaries {
        let needle = canary.value.as_bytes();
        if !sent.iter().any(|body| contains(body, needle)) {
            failures.push(format!(
                "planted {:?} [{}] was not in what the SDK sent (the script or the SDK changed)",
                canary.value, canary.place
            ));
            continue;
        }
        let mut paths = Vec::new();
        for (request, envelope) in received.iter().zip(arrived) {
            for (name, value) in &request.headers {
                if contains(value.as_bytes(), needle) {
                    paths.push(format!("{}: request header {name}", envelope.name));
                }
            }
            if request.path_and_query.contains(&canary.value) {
                paths.push(format!("{}: request path", envelope.name));
            }
            if contains(&request.body, needle) {
                find_in_envelope(envelope, &canary.value, &mut paths);
            }
            // The same value written another way: JSON escapes are decoded by the
            // parse above; percent-encoding (a query, a form) and UTF-16LE (native
            // payloads) are looked for in the path, the headers and every payload.
            for (encoding, form) in other_encodings(&canary.value) {
                if contains(request.path_and_query.as_bytes(), &form) {
                    paths.push(format!("{}: request path ({encoding})", envelope.name));
                }
                for (name, value) in &request.headers {
                    if contains(value.as_bytes(), &form) {
                        paths.push(format!("{}: header {name} ({encoding})", envelope.name));
                    }
                }
                for (i, item) in envelope.items.iter().enumerate() {
                    if contains(&item.payload, &form) {
                        paths.push(format!(
                            "{}: {}[{i}] ({encoding})",
                            envelope.name,
                            item.ty()
                        ));
                    }
                }
            }
        }
        if !paths.is_empty() {
            let total = paths.len();
            paths.truncate(MAX_PATHS);
            let more = if total > MAX_PATHS {
                format!(" … and {} more", total - MAX_PATHS)
            } else {
                String::new()
            };
            failures.push(format!(
                "planted {:?} [{}] reached the upstream at {}{more}",
                canary.value,
                canary.place,
                paths.join(", ")
            ));
        }
    }
}

#[test]
fn a_canary_is_searched_in_its_other_encodings() {
    let forms = other_encodings("py.user.plant@example.com");
    assert_eq!(
        forms[0],
        ("percent-encoded", b"py.user.plant%40example.com".to_vec())
    );
    assert_eq!(&forms[1].1[..4], b"p\0y\0");
    // An IP needs no percent-encoding: only its UTF-16LE form is extra.
    assert_eq!(other_encodings("198.51.100.11").len(), 1);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Where `needle` is in an envelope, as `<envelope>: <item type>[i] <json path>`.
fn find_in_envelope(envelope: &Envelope, needle: &str, out: &mut Vec<String>) {
    let before = out.len();
    find_in_json(&envelope.header, &mut String::new(), needle, &mut |path| {
        out.push(format!("{}: envelope header{path}", envelope.name))
    });
    for (i, item) in envelope.items.iter().enumerate() {
        let ty = item.ty();
        find_in_json(&item.header, &mut String::new(), needle, &mut |path| {
            out.push(format!("{}: {ty}[{i}] item header{path}", envelope.name))
        });
        match serde_json::from_slice::<Value>(&item.payload) {
            Ok(payload) => find_in_json(&payload, &mut String::new(), needle, &mut |path| {
                out.push(format!(
                    "{}: {ty}[{i}] {}",
                    envelope.name,
                    path_or_root(&path)
                ))
            }),
            Err(_) => {
                if contains(&item.payload, needle.as_bytes()) {
                    out.push(format!("{}: {ty}[{i}] payload (not JSON)", envelope.name));
                }
            }
        }
    }
    if out.len() == before {
        out.push(format!("{}: body (raw text)", envelope.name));
    }
}

fn path_or_root(path: &str) -> &str {
    if path.is_empty() {
        "payload"
    } else {
        path.trim_start_matches('.')
    }
}

fn find_in_json(value: &Value, path: &mut String, needle: &str, found: &mut dyn FnMut(String)) {
    match value {
        Value::String(s) if s.contains(needle) => found(path.clone()),
        Value::Array(values) => {
            for (i, v) in values.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, ".{i}");
                find_in_json(v, path, needle, found);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let len = path.len();
                let _ = write!(path, ".{k}");
                if k.contains(needle) {
                    found(format!("{path} (key)"));
                }
                find_in_json(v, path, needle, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The identifier facts of envelopes: `<where> <pointer> = <value>`.
fn identifier_facts(envelopes: &[Envelope], types: Option<&BTreeSet<String>>) -> BTreeSet<String> {
    let mut facts = BTreeSet::new();
    for envelope in envelopes {
        // An envelope none of whose items arrived is reported by check_item_types.
        let any_arrived = envelope
            .items
            .iter()
            .any(|item| types.is_none_or(|types| types.contains(item.ty())));
        for pointer in HEADER_IDENTIFIERS.iter().filter(|_| any_arrived) {
            if let Some(v) = envelope.header.pointer(pointer) {
                facts.insert(format!("envelope header {pointer} = {v}"));
            }
        }
        for item in &envelope.items {
            let ty = item.ty();
            if types.is_some_and(|types| !types.contains(ty)) {
                continue;
            }
            for key in ["type", "content_type", "item_count", "attachment_type"] {
                if let Some(v) = item.header.get(key) {
                    facts.insert(format!("{ty} item header {key} = {v}"));
                }
            }
            if ty == "attachment" && !is_view_hierarchy(item) {
                // Scrubbed in place: the length never changes. A view hierarchy is
                // scrubbed as JSON ([`check_attachments`] compares its structure).
                facts.insert(format!(
                    "attachment payload length = {}",
                    item.payload.len()
                ));
            }
            let Some((_, container, pointers)) = IDENTIFIERS.iter().find(|(t, ..)| *t == ty) else {
                continue;
            };
            let Ok(payload) = serde_json::from_slice::<Value>(&item.payload) else {
                continue;
            };
            let records: Vec<&Value> = if *container {
                payload["items"].as_array().into_iter().flatten().collect()
            } else {
                vec![&payload]
            };
            for record in records {
                for pointer in *pointers {
                    if let Some(v) = record.pointer(pointer) {
                        facts.insert(format!("{ty} {pointer} = {v}"));
                    }
                }
            }
        }
    }
    facts
}

/// Identifiers of the items that arrived are as the SDK sent them.
fn check_identifiers(sent: &[Envelope], arrived: &[Envelope], failures: &mut Vec<String>) {
    // Only the types that arrived: a missing type is reported by check_item_types.
    let arrived_types: BTreeSet<String> = count_types(arrived).into_keys().collect();
    let sent_facts = identifier_facts(sent, Some(&arrived_types));
    let arrived_facts = identifier_facts(arrived, None);
    let changed: Vec<&String> = sent_facts.difference(&arrived_facts).collect();
    if !changed.is_empty() {
        failures.push(format!(
            "identifiers sent but not found unchanged upstream: {}",
            changed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
}

/// The event and trace ids the SDK's API returned are upstream.
fn check_reported_ids(summary: &Value, arrived: &[Envelope], failures: &mut Vec<String>) {
    let mut event_ids = BTreeSet::new();
    let mut trace_ids = BTreeSet::new();
    for envelope in arrived {
        if let Some(id) = envelope.header["event_id"].as_str() {
            event_ids.insert(id.to_owned());
        }
        if let Some(id) = envelope
            .header
            .pointer("/trace/trace_id")
            .and_then(Value::as_str)
        {
            trace_ids.insert(id.to_owned());
        }
        for item in &envelope.items {
            if let Ok(payload) = serde_json::from_slice::<Value>(&item.payload) {
                if let Some(id) = payload["event_id"].as_str() {
                    event_ids.insert(id.to_owned());
                }
            }
        }
    }
    for (kind, ids, found) in [
        ("event", &summary["ids"]["events"], &event_ids),
        ("trace", &summary["ids"]["traces"], &trace_ids),
    ] {
        for id in ids.as_array().into_iter().flatten() {
            match id.as_str() {
                Some(id) if found.contains(id) => {}
                _ => failures.push(format!(
                    "the SDK's {kind} id {id} did not arrive upstream as an {kind} id"
                )),
            }
        }
    }
}
