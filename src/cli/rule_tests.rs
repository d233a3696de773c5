//! `scrubgate test`: rule tests for CI. Each `*.test.json` file names a project (a path
//! to a project file, or one inline), an input (an event, or an envelope as text) and
//! what must hold of the scrubbed output:
//!
//! ```json
//! {"project": "../42.json",
//!  "input": {"user": {"email": "jane@example.com"}},
//!  "expect": {"absent": ["jane@example.com"],
//!             "equals": {"user.email": "16E5A154C97AFA6CDDB9C5BFCF11500DD80CF003"},
//!             "output": {"...": "the exact scrubbed event, optional"}}}
//! ```
//!
//! `input` may be given with `"item_type"` (default `event`). An `"envelope"` text is
//! scrubbed item by item as the proxy would; its output is
//! `{"header": {...}, "items": [{"type": ..., "payload": ...}]}` and `equals` paths
//! start there (`items.0.payload.user.email`). Exit status: 0 when every test passes, 1
//! when one fails, 2 when a file is invalid.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value as Json;

use crate::projects::{Project, ProjectConfig};
use crate::scrub::{ItemKind, ScrubOptions};
use crate::server::ingest::scrub_envelope_offline;

/// Arguments of `scrubgate test`.
#[derive(Debug, Clone, clap::Args)]
pub struct TestArgs {
    /// Test files, or directories searched for `*.test.json` files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// How one test file came out.
#[derive(Debug)]
enum Outcome {
    Passed,
    Failed(Vec<String>),
    Invalid(String),
}

/// Runs `scrubgate test`.
pub fn test(args: &TestArgs) -> ExitCode {
    let mut files = Vec::new();
    for path in &args.paths {
        if let Err(message) = collect(path, &mut files) {
            println!("{}: invalid: {message}", path.display());
            return ExitCode::from(2);
        }
    }
    if files.is_empty() {
        println!("no *.test.json files found");
        return ExitCode::from(2);
    }
    let (mut passed, mut failed, mut invalid) = (0, 0, 0);
    for file in &files {
        match run_file(file) {
            Outcome::Passed => {
                passed += 1;
                println!("PASS {}", file.display());
            }
            Outcome::Failed(failures) => {
                failed += 1;
                println!("FAIL {}", file.display());
                for failure in failures {
                    for line in failure.lines() {
                        println!("    {line}");
                    }
                }
            }
            Outcome::Invalid(message) => {
                invalid += 1;
                println!("INVALID {}: {message}", file.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed, {invalid} invalid");
    if invalid > 0 {
        ExitCode::from(2)
    } else if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `path` itself, or the `*.test.json` files under it, sorted.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.is_file() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, out)?;
        } else if entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".test.json"))
        {
            out.push(entry);
        }
    }
    Ok(())
}

fn run_file(file: &Path) -> Outcome {
    let text = match std::fs::read(file) {
        Ok(text) => text,
        Err(e) => return Outcome::Invalid(format!("cannot read: {e}")),
    };
    let case: Json = match serde_json::from_slice(&text) {
        Ok(case) => case,
        Err(e) => return Outcome::Invalid(format!("invalid JSON: {e}")),
    };
    match run_case(file, &case) {
        Ok(failures) if failures.is_empty() => Outcome::Passed,
        Ok(failures) => Outcome::Failed(failures),
        Err(message) => Outcome::Invalid(message),
    }
}

/// The failures of one test; `Err` when the test itself is invalid.
fn run_case(file: &Path, case: &Json) -> Result<Vec<String>, String> {
    let obj = case.as_object().ok_or("must be a JSON object")?;
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "project" | "input" | "envelope" | "item_type" | "expect" | "description"
        ) {
            return Err(format!(
                "unknown key {key:?} (expected project, input, envelope, item_type, expect or description)"
            ));
        }
    }
    let project = load_project(file, obj.get("project").ok_or("no \"project\"")?)?;
    let output = match (obj.get("input"), obj.get("envelope")) {
        (Some(input), None) => {
            let kind = item_kind(obj.get("item_type"))?;
            let bytes = serde_json::to_vec(input).map_err(|e| e.to_string())?;
            let opts = ScrubOptions {
                record_paths: true,
                ..ScrubOptions::default()
            };
            let scrubbed = project
                .config
                .rules
                .scrub(kind, &bytes, &opts)
                .map_err(|e| format!("the input cannot be scrubbed: {e}"))?;
            serde_json::from_slice::<Json>(&scrubbed.bytes).map_err(|e| e.to_string())?
        }
        (None, Some(Json::String(text))) => {
            let (bytes, _) = scrub_envelope_offline(
                &project,
                text.as_bytes(),
                &crate::config::Config::default().limits,
            )
            .map_err(|e| format!("the envelope is refused: {}", e.detail()))?;
            envelope_as_json(&bytes)?
        }
        (Some(_), Some(_)) => return Err("give \"input\" or \"envelope\", not both".into()),
        (None, Some(_)) => return Err("\"envelope\" must be the envelope's text".into()),
        (None, None) => return Err("no \"input\" or \"envelope\"".into()),
    };
    let expect = obj
        .get("expect")
        .and_then(Json::as_object)
        .ok_or("no \"expect\" object")?;
    let mut failures = Vec::new();
    let text = output.to_string();
    for key in expect.keys() {
        if !matches!(key.as_str(), "absent" | "equals" | "output") {
            return Err(format!(
                "unknown key expect.{key} (expected absent, equals or output)"
            ));
        }
    }
    if let Some(absent) = expect.get("absent") {
        let list = absent
            .as_array()
            .ok_or("expect.absent must be an array of strings")?;
        for needle in list {
            let needle = needle
                .as_str()
                .ok_or("expect.absent must be an array of strings")?;
            if text.contains(needle) {
                failures.push(format!("{needle:?} is still in the output"));
            }
        }
    }
    if let Some(equals) = expect.get("equals") {
        let map = equals
            .as_object()
            .ok_or("expect.equals must be an object of path to value")?;
        for (path, want) in map {
            let got = lookup(&output, path);
            if got != Some(want) {
                failures.push(format!(
                    "{path}: expected {want}, got {}",
                    got.map_or("nothing".to_string(), ToString::to_string)
                ));
            }
        }
    }
    if let Some(want) = expect.get("output") {
        if want != &output {
            failures.push(format!(
                "the output differs (- expected, + actual):\n{}",
                diff(want, &output)
            ));
        }
    }
    Ok(failures)
}

/// The project a test names: a path (relative to the test file) or an inline project.
fn load_project(file: &Path, spec: &Json) -> Result<Project, String> {
    let (bytes, source) = match spec {
        Json::String(path) => {
            let path = file.parent().unwrap_or(Path::new(".")).join(path);
            let bytes =
                std::fs::read(&path).map_err(|e| format!("project {}: {e}", path.display()))?;
            (bytes, path)
        }
        Json::Object(_) => (
            serde_json::to_vec(spec).map_err(|e| e.to_string())?,
            file.to_owned(),
        ),
        _ => return Err("\"project\" must be a path or a project object".into()),
    };
    let config = ProjectConfig::from_json(&bytes, &crate::projects::env_var).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
        format!("the project is invalid: {}", lines.join("; "))
    })?;
    let id = config.project_id.unwrap_or(0);
    Ok(Project::new(id, config, source))
}

fn item_kind(name: Option<&Json>) -> Result<ItemKind, String> {
    match name.map(Json::as_str) {
        None => Ok(ItemKind::Event),
        Some(name) => name.and_then(ItemKind::from_name).ok_or_else(|| {
            let names: Vec<&str> = ItemKind::NAMED.iter().map(|(n, _)| *n).collect();
            format!("item_type must be one of {}", names.join(", "))
        }),
    }
}

/// An envelope as `{"header": ..., "items": [{"type": ..., "payload": ...}]}`: JSON
/// payloads parsed, others as text.
fn envelope_as_json(bytes: &[u8]) -> Result<Json, String> {
    let envelope =
        crate::protocol::envelope::Envelope::from_slice(bytes).map_err(|e| e.to_string())?;
    let header: Json = serde_json::from_slice(envelope.header()).map_err(|e| e.to_string())?;
    let items = envelope
        .items()
        .iter()
        .map(|item| {
            let payload = serde_json::from_slice::<Json>(item.payload()).unwrap_or_else(|_| {
                Json::String(String::from_utf8_lossy(item.payload()).into_owned())
            });
            serde_json::json!({"type": item.ty(), "payload": payload})
        })
        .collect();
    Ok(serde_json::json!({"header": header, "items": Json::Array(items)}))
}

/// The value at a dotted path (`exception.values.0.value`); array indices are numbers.
pub fn lookup<'a>(value: &'a Json, path: &str) -> Option<&'a Json> {
    path.split('.').try_fold(value, |v, key| match v {
        Json::Object(map) => map.get(key),
        Json::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A line diff of two values pretty-printed (longest common subsequence).
fn diff(want: &Json, got: &Json) -> String {
    let a = serde_json::to_string_pretty(want).unwrap_or_default();
    let b = serde_json::to_string_pretty(got).unwrap_or_default();
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    if a.len() * b.len() > 4_000_000 {
        return format!("- {}\n+ {}", want, got);
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}
