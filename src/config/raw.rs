//! The raw layer: the config file as serde reads it, every key optional, with every
//! default in one place.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::machine;
use super::values::ByteSize;

/// The config file as written (`config/scrubgate.toml`). Every key is optional; missing
/// keys take the defaults of `impl Default for RawConfig`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// Directory for local state: the embedded outbox (`<data_dir>/outbox.jsonl`) when no
    /// upstream is configured. Created when needed. Default `"data"`.
    pub data_dir: PathBuf,
    /// The ingest listener (SDK traffic).
    pub server: RawServerConfig,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: RawAdminConfig,
    /// Where scrubbed events go.
    pub upstream: RawUpstreamConfig,
    /// Per-project rule files.
    pub projects: RawProjectsConfig,
    /// Size and nesting limits for request bodies.
    pub limits: RawLimitsConfig,
    /// Logging.
    pub log: RawLogConfig,
    /// The durable spool for requests the upstream could not take.
    pub spool: RawSpoolConfig,
}

/// `[spool]`: where scrubbed requests wait when the upstream cannot take them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSpoolConfig {
    /// Spool requests the upstream cannot take (unreachable, timed out, 5xx) and answer
    /// the SDK 200; replay them when it is back. Only used with an upstream. Default true.
    pub enabled: bool,
    /// Directory of the spool database. Default `""`: `<data_dir>/spool`.
    pub dir: PathBuf,
    /// Most bytes of spooled requests; when full, requests get 503. Default `"1GiB"`.
    pub max_bytes: ByteSize,
    /// Spooled requests older than this are dropped (and counted). Default `"24h"`.
    pub max_age: String,
    /// Spooled requests replayed at once while the spool drains. Default 0: half of
    /// `upstream.max_connections_per_host` (at least 1), so live requests keep the
    /// other half of the connection pool.
    pub drain_concurrency: usize,
}

/// `[server]`: the ingest listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServerConfig {
    /// Address the ingest listener binds, `IP:PORT`. Default `"127.0.0.1:3000"`.
    pub listen: String,
    /// Most connections open at once; further connections wait in the kernel's accept
    /// backlog. Default 1024.
    pub max_connections: usize,
    /// Most requests being processed at once; above it requests get 503 with
    /// `Retry-After`. Default 512.
    pub max_in_flight: usize,
    /// Time allowed for a client to send the request head. Default `"10s"`.
    pub header_read_timeout: String,
    /// Time allowed for a client to send the whole body. Default `"30s"`.
    pub body_read_timeout: String,
    /// Time from accept to the first complete request head, HTTP/1 and HTTP/2 alike; a
    /// connection that has sent no request by then is closed. Default `"10s"`.
    pub first_request_timeout: String,
    /// A connection with no request in progress for this long is closed; HTTP/2
    /// connections are also pinged at this interval (and closed when a ping is not
    /// answered within it). Default `"60s"`.
    pub idle_timeout: String,
    /// Most connections open at once from one client IP (an IPv6 client counts per
    /// /64); more are closed at accept. 0 means no limit. Default 256.
    pub max_connections_per_ip: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish before the
    /// process exits anyway. `"0s"` exits at once. Default `"10s"`.
    pub shutdown_grace: String,
    /// Peers (IPs or CIDR blocks, e.g. `"10.0.0.0/8"`) whose `X-Forwarded-For` is
    /// believed when resolving the client IP. Default empty: the peer address is the
    /// client IP.
    pub trusted_proxies: Vec<String>,
}

/// `[admin]`: the admin listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAdminConfig {
    /// Address the admin listener binds, `IP:PORT`. Default `"127.0.0.1:3001"`.
    pub listen: String,
    /// Most admin connections open at once; more wait in the kernel's accept backlog.
    /// Default 64.
    pub max_connections: usize,
    /// Time allowed for a client to send the request head. Default `"10s"`.
    pub header_read_timeout: String,
    /// Time from accept to the first complete request head; a connection that has sent
    /// no request by then is closed. Default `"10s"`.
    pub first_request_timeout: String,
    /// Bearer token for the console and its `/api/` (`Authorization: Bearer <token>`).
    /// Required to serve them on a non-loopback address; when set, required on every
    /// address. Default `""`: none (the console is served on loopback only).
    pub token: String,
}

/// `[upstream]`: where scrubbed events are forwarded.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawUpstreamConfig {
    /// Base URL of the event store, e.g. `"https://o1.ingest.sentry.io"` or
    /// `"http://sentry.internal:9000"`; the request path (`/api/42/envelope/`) is
    /// appended. Over `https://` the certificate is verified against the system's roots
    /// (plus `ca_file`) and HTTP/2 is used when the upstream offers it (ALPN). Unset (the
    /// default) or empty: requests go to the embedded outbox `<data_dir>/outbox.jsonl`
    /// and are answered 200.
    pub url: Option<String>,
    /// PEM file of CA certificates trusted for an `https://` upstream in addition to the
    /// system's roots (a self-hosted Sentry behind an internal CA). Default: none.
    pub ca_file: Option<PathBuf>,
    /// Content-Encoding of forwarded bodies: `"identity"`, `"gzip"` or `"zstd"`.
    /// Default `"gzip"`.
    pub encoding: UpstreamEncoding,
    /// Whole upstream exchange (waiting for a connection slot, connecting, sending,
    /// reading the answer). Over it the SDK gets 503 with `Retry-After`. Default `"5s"`.
    pub timeout: String,
    /// TCP connect timeout. Default `"3s"`.
    pub connect_timeout: String,
    /// Most concurrent requests (hence connections) to the upstream; further requests
    /// wait, within `timeout`. Also the idle keep-alive pool size. Default 256.
    pub max_connections_per_host: usize,
}

/// `[projects]`: project rule files.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawProjectsConfig {
    /// Directory holding `<project_id>.json` files in Relay's project-config format.
    /// Default `"config/projects"`.
    pub dir: PathBuf,
    /// How often the directory is checked for changed, new and deleted files.
    /// Default `"2s"`.
    pub poll_interval: String,
}

/// `[limits]`: body limits. Sizes are a number of bytes or a string with a unit
/// (`"1MiB"`, `"512 KiB"`, `"200MB"`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLimitsConfig {
    /// Largest event (store body, or one event item) after decompression; over it the
    /// answer is 413. Default `"1MiB"` (as Relay).
    pub max_event_size: ByteSize,
    /// Largest envelope after decompression. Default `"200MiB"` (as Relay).
    pub max_envelope_size: ByteSize,
    /// Most bytes received for a store request, before decompression.
    /// Default `"1MiB"`.
    pub max_compressed_event_size: ByteSize,
    /// Most bytes received for an envelope request, before decompression.
    /// Default `"200MiB"`.
    pub max_compressed_envelope_size: ByteSize,
    /// Largest `attachment` item after decompression; over it the envelope gets 413.
    /// Default `"200MiB"` (as Relay).
    pub max_attachment_size: ByteSize,
    /// Most bytes of all attachments of one upload to the minidump, attachment and
    /// Unreal endpoints (received, and after decompression); over it 413. Default
    /// `"200MiB"` (as Relay).
    pub max_attachments_size: ByteSize,
    /// Most parts of one multipart upload; over it 413. Default 100.
    pub max_multipart_parts: usize,
    /// Largest `profile` or `profile_chunk` item after decompression; over it the
    /// envelope gets 413. Default `"50MiB"` (as Relay).
    pub max_profile_size: ByteSize,
    /// Largest `replay_recording` item as sent (its own zlib compression kept); over it
    /// the envelope gets 413. Default `"10MiB"` (as Relay).
    pub max_replay_compressed_size: ByteSize,
    /// Largest `span`, `log`, `trace_metric` (containers of records), `otel_span` or
    /// `otel_log` item after decompression; over it the envelope gets 413. Default
    /// `"12MiB"` (as Relay).
    pub max_container_size: ByteSize,
    /// Largest `check_in` item after decompression; over it the envelope gets 413.
    /// Default `"100KiB"` (as Relay).
    pub max_check_in_size: ByteSize,
    /// Largest `client_report` item after decompression; over it the envelope gets 413.
    /// Default `"100KiB"` (as Relay).
    pub max_client_reports_size: ByteSize,
    /// Largest `replay_recording` after its own zlib compression is undone; over it the
    /// envelope gets 413. Default `"100MiB"` (as Relay).
    pub max_replay_uncompressed_size: ByteSize,
    /// Deepest JSON nesting accepted in an event. Default 128.
    pub max_json_depth: usize,
    /// Most request-body bytes held at once across all requests: received, decompressed,
    /// and being scrubbed. A request that would pass it gets 503 with `Retry-After: 1`.
    /// Default: one eighth of the machine's memory (its cgroup limit when lower), at
    /// least 256 MiB.
    pub max_body_bytes_in_flight: ByteSize,
    /// A compressed body may decode to at most this many times its size (and always to
    /// 1 MiB), within the size limits; more is refused with 413. Default 1000.
    pub max_decompression_ratio: usize,
    /// Bodies decompressed and scrubbed at once, off the async workers; the others wait.
    /// Default: the number of CPU cores.
    pub max_decoding: usize,
}

/// `[log]`: logging.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLogConfig {
    /// `"pretty"` (human-readable) or `"json"` (one object per line). Default `"pretty"`.
    pub format: LogFormat,
    /// A `tracing` filter: a level (`"info"`) or directives (`"info,scrubgate=debug"`).
    /// Default `"info"`.
    pub level: String,
}

/// Content-Encoding of forwarded bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamEncoding {
    /// No compression.
    Identity,
    /// gzip at the fast level.
    Gzip,
    /// zstd at a low level.
    Zstd,
}

impl UpstreamEncoding {
    /// The `Content-Encoding` token, `None` for identity.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            UpstreamEncoding::Identity => None,
            UpstreamEncoding::Gzip => Some("gzip"),
            UpstreamEncoding::Zstd => Some("zstd"),
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "identity" => Ok(UpstreamEncoding::Identity),
            "gzip" => Ok(UpstreamEncoding::Gzip),
            "zstd" => Ok(UpstreamEncoding::Zstd),
            _ => Err("expected one of identity, gzip, zstd".to_owned()),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected one of pretty, json".to_owned()),
        }
    }
}

/// One kibibyte.
const KIB: u64 = 1024;
/// One mebibyte.
const MIB: u64 = 1024 * KIB;

// Every default of the configuration, in one place. The per-section `Default` impls
// below only pick their section out of this one.
impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            data_dir: PathBuf::from("data"),
            server: RawServerConfig {
                listen: "127.0.0.1:3000".to_owned(),
                max_connections: 1024,
                max_in_flight: 512,
                header_read_timeout: "10s".to_owned(),
                body_read_timeout: "30s".to_owned(),
                first_request_timeout: "10s".to_owned(),
                idle_timeout: "60s".to_owned(),
                max_connections_per_ip: 256,
                shutdown_grace: "10s".to_owned(),
                trusted_proxies: Vec::new(),
            },
            admin: RawAdminConfig {
                listen: "127.0.0.1:3001".to_owned(),
                max_connections: 64,
                header_read_timeout: "10s".to_owned(),
                first_request_timeout: "10s".to_owned(),
                token: String::new(),
            },
            upstream: RawUpstreamConfig {
                url: None,
                encoding: UpstreamEncoding::Gzip,
                timeout: "5s".to_owned(),
                connect_timeout: "3s".to_owned(),
                max_connections_per_host: 256,
                ca_file: None,
            },
            projects: RawProjectsConfig {
                dir: PathBuf::from("config/projects"),
                poll_interval: "2s".to_owned(),
            },
            limits: RawLimitsConfig {
                max_event_size: ByteSize::Bytes(MIB),
                max_envelope_size: ByteSize::Bytes(200 * MIB),
                max_compressed_event_size: ByteSize::Bytes(MIB),
                max_compressed_envelope_size: ByteSize::Bytes(200 * MIB),
                max_attachment_size: ByteSize::Bytes(200 * MIB),
                max_attachments_size: ByteSize::Bytes(200 * MIB),
                max_multipart_parts: 100,
                max_profile_size: ByteSize::Bytes(50 * MIB),
                max_replay_compressed_size: ByteSize::Bytes(10 * MIB),
                max_container_size: ByteSize::Bytes(12 * MIB),
                max_check_in_size: ByteSize::Bytes(100 * KIB),
                max_client_reports_size: ByteSize::Bytes(100 * KIB),
                max_replay_uncompressed_size: ByteSize::Bytes(100 * MIB),
                max_json_depth: 128,
                max_body_bytes_in_flight: ByteSize::Bytes((machine::memory() / 8).max(256 * MIB)),
                max_decompression_ratio: 1000,
                max_decoding: machine::cores(),
            },
            log: RawLogConfig {
                format: LogFormat::Pretty,
                level: "info".to_owned(),
            },
            spool: RawSpoolConfig {
                enabled: true,
                dir: PathBuf::new(),
                max_bytes: ByteSize::Bytes(1024 * MIB),
                max_age: "24h".to_owned(),
                drain_concurrency: 0,
            },
        }
    }
}

impl Default for RawServerConfig {
    fn default() -> Self {
        RawConfig::default().server
    }
}

impl Default for RawAdminConfig {
    fn default() -> Self {
        RawConfig::default().admin
    }
}

impl Default for RawUpstreamConfig {
    fn default() -> Self {
        RawConfig::default().upstream
    }
}

impl Default for RawProjectsConfig {
    fn default() -> Self {
        RawConfig::default().projects
    }
}

impl Default for RawLimitsConfig {
    fn default() -> Self {
        RawConfig::default().limits
    }
}

impl Default for RawSpoolConfig {
    fn default() -> Self {
        RawConfig::default().spool
    }
}

impl Default for RawLogConfig {
    fn default() -> Self {
        RawConfig::default().log
    }
}

impl RawConfig {
    /// Parses TOML text. Unknown keys and wrong types are errors.
    ///
    /// # Errors
    ///
    /// The TOML parser's error, naming the line and key.
    pub fn from_toml(text: &str) -> Result<RawConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// For a file that is valid TOML but does not fit the schema: every key that does
    /// not (unknown, or a value of the wrong type), each with its dotted path, and the
    /// config read from the keys that do. `None` when the text is not TOML at all (the
    /// parser's own error, with its line, says it best then).
    pub fn from_toml_collecting(text: &str) -> Option<(RawConfig, Vec<super::ConfigProblem>)> {
        let table: toml::Table = text.parse().ok()?;
        let mut problems = Vec::new();
        let mut kept = toml::Table::new();
        for (key, value) in table {
            match value {
                toml::Value::Table(section) => {
                    let mut probe = toml::Table::new();
                    probe.insert(key.clone(), toml::Value::Table(toml::Table::new()));
                    if let Err(e) = RawConfig::deserialize(toml::Value::Table(probe)) {
                        // An unknown section (or one that is not a table): named once.
                        let message = format!(
                            "{}{}",
                            with_suggestion(&key, e.message()),
                            line_of(text, None, &key)
                        );
                        problems.push(super::ConfigProblem::new(key, message));
                        continue;
                    }
                    let mut kept_section = toml::Table::new();
                    for (name, v) in section {
                        let mut one = toml::Table::new();
                        one.insert(name.clone(), v.clone());
                        let mut probe = toml::Table::new();
                        probe.insert(key.clone(), toml::Value::Table(one));
                        match RawConfig::deserialize(toml::Value::Table(probe)) {
                            Ok(_) => {
                                kept_section.insert(name, v);
                            }
                            Err(e) => problems.push(super::ConfigProblem::new(
                                format!("{key}.{name}"),
                                format!(
                                    "{}{}",
                                    with_suggestion(&name, e.message()),
                                    line_of(text, Some(&key), &name)
                                ),
                            )),
                        }
                    }
                    kept.insert(key, toml::Value::Table(kept_section));
                }
                other => {
                    let mut probe = toml::Table::new();
                    probe.insert(key.clone(), other.clone());
                    match RawConfig::deserialize(toml::Value::Table(probe)) {
                        Ok(_) => {
                            kept.insert(key, other);
                        }
                        Err(e) => {
                            let message = format!(
                                "{}{}",
                                with_suggestion(&key, e.message()),
                                line_of(text, None, &key)
                            );
                            problems.push(super::ConfigProblem::new(key, message))
                        }
                    }
                }
            }
        }
        let raw = RawConfig::deserialize(toml::Value::Table(kept)).ok()?;
        Some((raw, problems))
    }
}

/// serde's message, plus a "did you mean" when it is about an unknown key (serde lists
/// the expected keys in backquotes).
fn with_suggestion(key: &str, message: &str) -> String {
    let message = message.trim();
    if !message.starts_with("unknown field") {
        return message.to_string();
    }
    let expected: Vec<&str> = message
        .split('`')
        .skip(3)
        .step_by(2)
        .filter(|name| !name.is_empty())
        .collect();
    let hint = crate::scrub::did_you_mean(key, &expected);
    match message.split_once(", expected") {
        Some((head, _)) if !hint.is_empty() => format!("{head}{hint}"),
        _ => format!("{message}{hint}"),
    }
}

/// `" (line N)"` for the line that sets `name` in `[section]` (or at the top level), or
/// an empty string when it is not written that plainly (inline tables, dotted keys).
fn line_of(text: &str, section: Option<&str>, name: &str) -> String {
    let mut current: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = Some(header.trim());
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if current == section && rest.trim_start().starts_with('=') {
            return format!(" (line {})", i + 1);
        }
        if section.is_none() && current.is_none() && rest.trim_start().starts_with('=') {
            return format!(" (line {})", i + 1);
        }
    }
    match section {
        // A whole unknown section: its header line.
        None => text
            .lines()
            .position(|l| l.trim() == format!("[{name}]"))
            .map(|i| format!(" (line {})", i + 1))
            .unwrap_or_default(),
        Some(_) => String::new(),
    }
}
