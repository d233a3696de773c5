//! The offline commands: `check` validates configuration as `run` would load it, `scrub`
//! tries a project's rules on sample events from the command line, `test` runs rule
//! tests, and `pseudonym` finds what a project's rules make of a person's email or id.
//!
//! Reads one event (or one per line with `--jsonl`), prints the scrubbed event(s) to
//! stdout, reports bad input on stderr with its line number, and with `--explain` prints
//! a table of every change (path, rule, method) on stderr.

use std::io::{self, BufRead, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod rule_tests;

pub use rule_tests::{test, TestArgs};

use crate::config::{Config, ConfigError};
use crate::projects::{check_dir, env_var, ProjectConfig};
use crate::scrub::{ItemKind, ScrubOptions, ScrubReport};

/// Exit status when an event could not be scrubbed.
pub const EXIT_BAD_INPUT: u8 = 1;
/// Exit status for an invalid project config (no event is read) or, for `check`, an
/// invalid server config.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status of `check` when a project config is invalid.
pub const EXIT_INVALID_PROJECT: u8 = 1;

/// Arguments of `scrubgate scrub`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScrubArgs {
    /// The project config (Relay's project JSON) whose rules to apply.
    #[arg(long)]
    pub project: PathBuf,
    /// Client IP used for `user.ip_address: "{{auto}}"`.
    #[arg(long)]
    pub client_ip: Option<IpAddr>,
    /// One event per input line; one scrubbed event per output line, in order.
    #[arg(long)]
    pub jsonl: bool,
    /// Print every change (path, rule id, method) on stderr.
    #[arg(long)]
    pub explain: bool,
    /// Input file; stdin when absent or `-`.
    pub input: Option<PathBuf>,
}

/// Loads a project config file, resolving `${NAME}` keys from the environment.
///
/// # Errors
/// A printable message listing every problem with its path.
pub fn load_project(path: &std::path::Path) -> Result<ProjectConfig, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ProjectConfig::from_json(&bytes, &env_var).map_err(|errors| {
        let mut msg = String::new();
        for issue in errors.0 {
            msg.push_str(&format!("{}: {issue}\n", path.display()));
        }
        msg
    })
}

/// Arguments of `scrubgate check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The server configuration file; every project file in its `projects.dir` is
    /// checked too.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// One project config file (Relay's JSON format) to check on its own.
    #[arg(long)]
    pub project: Option<PathBuf>,
    /// With `--project`: print every `piiConfig` the project applies, in order (its
    /// own, the one its `datascrubbingSettings` convert to, and `protect`'s expansion),
    /// as JSON on stdout.
    #[arg(long, requires = "project")]
    pub print_rules: bool,
}

/// Runs `scrubgate check`: validates configuration exactly as `run` would load it,
/// printing every error with its path. Exit 0 when valid, 1 when a project config is
/// invalid, 2 when the server config is invalid.
pub fn check(args: &CheckArgs) -> ExitCode {
    let (config_path, project) = (args.config.as_deref(), args.project.as_deref());
    if config_path.is_none() && project.is_none() {
        eprintln!("error: give --config FILE and/or --project FILE");
        return ExitCode::from(EXIT_CONFIG);
    }
    let mut ok = true;
    if let Some(path) = project {
        ok &= check_project_file(path, args.print_rules);
    }
    if let Some(path) = config_path {
        let config = match Config::load(Some(path), &env_var) {
            Ok(config) => config,
            Err(error) => {
                for line in config_error_lines(&error) {
                    eprintln!("error: {line}");
                }
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        println!("{}: ok", path.display());
        ok &= check_projects_dir(&config.projects.dir);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID_PROJECT)
    }
}

/// Checks every file in the projects directory as the server would load it.
fn check_projects_dir(dir: &Path) -> bool {
    let checks = match check_dir(dir, &env_var) {
        Ok(checks) => checks,
        Err(error) => {
            for problem in error.problems() {
                println!("{}: error: {problem}", error.path().display());
            }
            return false;
        }
    };
    if checks.is_empty() {
        println!("{}: warning: no project configs", dir.display());
    }
    let mut ok = true;
    for file in &checks {
        for error in &file.errors {
            println!("{}: error: {error}", file.path.display());
        }
        for warning in &file.warnings {
            println!("{}: warning: {warning}", file.path.display());
        }
        if file.is_ok() {
            println!("{}: ok", file.path.display());
        } else {
            ok = false;
        }
    }
    ok
}

/// Checks one project file on its own (its content only; the file name is not checked).
fn check_project_file(path: &Path, print_rules: bool) -> bool {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            println!("{}: error: cannot read: {error}", path.display());
            return false;
        }
    };
    match ProjectConfig::from_json(&bytes, &env_var) {
        Ok(project) => {
            for warning in &project.warnings {
                println!("{}: warning: {warning}", path.display());
            }
            println!("{}: ok", path.display());
            if print_rules {
                let applied: Vec<serde_json::Value> = project
                    .expanded_rules
                    .iter()
                    .map(|(source, pii)| serde_json::json!({"source": source, "piiConfig": pii}))
                    .collect();
                let doc = serde_json::json!({ "applied_in_order": applied });
                match serde_json::to_string_pretty(&doc) {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            true
        }
        Err(errors) => {
            for issue in &errors.0 {
                println!("{}: error: {issue}", path.display());
            }
            false
        }
    }
}

/// The lines of a server config error: one per problem, or the error and its causes.
pub fn config_error_lines(error: &ConfigError) -> Vec<String> {
    match error {
        ConfigError::Invalid(problems) => problems.iter().map(|p| p.to_string()).collect(),
        other => vec![error_chain(other)],
    }
}

/// An error and its sources, `a: b: c`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Arguments of `scrubgate pseudonym`.
#[derive(Debug, Clone, clap::Args)]
pub struct PseudonymArgs {
    /// The project config whose rules and hash keys to use.
    #[arg(long)]
    pub project: PathBuf,
    /// The value, e.g. the person's email address.
    #[arg(long)]
    pub value: String,
    /// One field (user.email, user.id, user.username, user.ip_address, trace.user_id);
    /// all of them when absent.
    #[arg(long)]
    pub selector: Option<String>,
}

/// Runs `scrubgate pseudonym`: prints `{"results": [...]}` with, for each field and
/// hash key, the text the project's rules put there and a Sentry search query for it.
/// The value is never logged.
pub fn pseudonym(args: &PseudonymArgs) -> ExitCode {
    let project = match load_project(&args.project) {
        Ok(p) => p,
        Err(msg) => {
            eprint!("{msg}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match crate::projects::pseudonym::pseudonyms(
        &project,
        &args.value,
        args.selector.as_deref(),
        &env_var,
    ) {
        Ok(results) => {
            let doc = serde_json::json!({ "results": results });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// Runs `scrubgate scrub`.
pub fn scrub(args: &ScrubArgs) -> ExitCode {
    let project = match load_project(&args.project) {
        Ok(p) => p,
        Err(msg) => {
            eprint!("{msg}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let input: Box<dyn Read> = match args.input.as_deref() {
        None => Box::new(io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(io::stdin().lock()),
        Some(p) => match std::fs::File::open(p) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("{}: {e}", p.display());
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        },
    };
    let opts = ScrubOptions {
        client_ip: args.client_ip,
        ..ScrubOptions::default()
    };
    let stdout = io::stdout();
    let stderr = io::stderr();
    let result = scrub_stream(
        &project,
        io::BufReader::new(input),
        &mut stdout.lock(),
        &mut stderr.lock(),
        &opts,
        args.jsonl,
        args.explain,
    );
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_BAD_INPUT),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

/// Scrubs a whole input (one event, or one per line with `jsonl`). Returns `Ok(false)`
/// when some input could not be scrubbed (reported on `err`, nothing written for it).
///
/// # Errors
/// I/O errors on the streams.
pub fn scrub_stream(
    project: &ProjectConfig,
    mut input: impl BufRead,
    out: &mut impl Write,
    err: &mut impl Write,
    opts: &ScrubOptions,
    jsonl: bool,
    explain: bool,
) -> io::Result<bool> {
    // The explanation lists each change's path.
    let opts = &ScrubOptions {
        record_paths: opts.record_paths || explain,
        ..*opts
    };
    let mut all_ok = true;
    if !jsonl {
        let mut buf = Vec::new();
        input.read_to_end(&mut buf)?;
        match project.rules.scrub(ItemKind::Event, &buf, opts) {
            Ok(scrubbed) => {
                out.write_all(&scrubbed.bytes)?;
                out.write_all(b"\n")?;
                if explain {
                    write_explain(err, None, &scrubbed.report)?;
                }
            }
            Err(e) => {
                writeln!(err, "error: {e}")?;
                all_ok = false;
            }
        }
        return Ok(all_ok);
    }
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        let trimmed = trim_line(&line);
        if trimmed.is_empty() {
            continue;
        }
        match project.rules.scrub(ItemKind::Event, trimmed, opts) {
            Ok(scrubbed) => {
                out.write_all(&scrubbed.bytes)?;
                out.write_all(b"\n")?;
                if explain {
                    write_explain(err, Some(number), &scrubbed.report)?;
                }
            }
            Err(e) => {
                writeln!(err, "line {number}: error: {e}")?;
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn write_explain(
    err: &mut impl Write,
    line: Option<usize>,
    report: &ScrubReport,
) -> io::Result<()> {
    let path_w = report
        .changes
        .iter()
        .map(|c| c.path.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let rule_w = report
        .changes
        .iter()
        .map(|c| c.rule.len())
        .max()
        .unwrap_or(0)
        .max(4);
    if let Some(n) = line {
        writeln!(err, "line {n}: {} change(s)", report.changes.len())?;
    } else {
        writeln!(err, "{} change(s)", report.changes.len())?;
    }
    if report.changes.is_empty() {
        return Ok(());
    }
    writeln!(err, "{:path_w$}  {:rule_w$}  method", "path", "rule")?;
    for c in &report.changes {
        writeln!(
            err,
            "{:path_w$}  {:rule_w$}  {}",
            c.path,
            c.rule,
            c.method.as_str()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> ProjectConfig {
        ProjectConfig::from_config_value(serde_json::json!({
            "piiConfig": {"applications": {"$string": ["@email"]}}
        }))
        .unwrap()
    }

    #[test]
    fn jsonl_keeps_order_and_reports_bad_lines() {
        let input = b"{\"extra\":{\"a\":\"x@y.io\"}}\nnot json\n\n{\"extra\":{\"b\":\"ok\"}}\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = scrub_stream(
            &project(),
            &input[..],
            &mut out,
            &mut err,
            &ScrubOptions::default(),
            true,
            false,
        )
        .unwrap();
        assert!(!ok);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(r#"{"extra":{"a":"[email]"}"#));
        assert_eq!(lines[1], r#"{"extra":{"b":"ok"}}"#);
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("line 2: error: invalid JSON"), "{err}");
        assert!(!err.contains("not json"), "input must not be echoed");
    }

    #[test]
    fn explain_lists_changes() {
        let input = br#"{"user":{"email":"a@b.io"},"extra":{"n":"c@d.io"}}"#;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(scrub_stream(
            &project(),
            &input[..],
            &mut out,
            &mut err,
            &ScrubOptions::default(),
            false,
            true
        )
        .unwrap());
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("2 change(s)"), "{err}");
        assert!(err.contains("user.email  @email  replace"), "{err}");
        assert!(err.contains("extra.n"), "{err}");
        assert!(!err.contains("a@b.io"));
    }

    #[test]
    fn single_bad_event_writes_nothing() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = scrub_stream(
            &project(),
            &b"[1]"[..],
            &mut out,
            &mut err,
            &ScrubOptions::default(),
            false,
            false,
        )
        .unwrap();
        assert!(!ok);
        assert!(out.is_empty());
    }
}
