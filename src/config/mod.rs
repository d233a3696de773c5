//! Process configuration: `scrubgate.toml` plus `SCRUBGATE_*` environment overrides,
//! validated into a typed [`Config`].
//!
//! Two layers, as in Vector and Pingora:
//!
//! 1. [`RawConfig`] is what serde reads. Unknown keys are refused, every field is
//!    documented (the docs double as the config reference) and every default lives in
//!    `impl Default for RawConfig`.
//! 2. [`RawConfig::validate`] turns it into [`Config`], whose fields are typed
//!    (`SocketAddr`, `Duration`, `Uri`, byte counts), reporting every problem with its
//!    key path (`upstream.timeout: must be > 0`), not only the first.
//!
//! Environment variables `SCRUBGATE_<SECTION>_<KEY>` (upper case, e.g.
//! `SCRUBGATE_UPSTREAM_URL`, `SCRUBGATE_LIMITS_MAX_EVENT_SIZE`; `SCRUBGATE_DATA_DIR` for
//! the top-level `data_dir`) override keys after the file is read and before validation.
//! Lists (`server.trusted_proxies`) are comma-separated. An empty `SCRUBGATE_UPSTREAM_URL`
//! unsets the upstream (back to the embedded outbox).
//!
//! Relative paths (`projects.dir`, `data_dir`) are relative to the process's current
//! working directory, not to the config file's directory: the shipped config assumes
//! `scrubgate` runs from the repository (or image) root.

mod values;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::protocol::client_ip::IpNet;
pub use values::{parse_duration, parse_size, ByteSize};

/// Why the configuration could not be loaded. Nothing starts on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or does not fit the schema (unknown key, wrong
    /// type). The source names the line and key.
    #[error("cannot parse config file {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// One or more values are invalid; every problem found is listed.
    #[error("invalid configuration: {}", ProblemList(.0))]
    Invalid(Vec<ConfigProblem>),
}

/// One invalid value, with the key path (or environment variable) it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path (`upstream.timeout`) or the environment variable name.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigProblem {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

struct ProblemList<'a>(&'a [ConfigProblem]);

impl std::fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Raw layer: what serde reads.
// ---------------------------------------------------------------------------

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
    /// Deepest JSON nesting accepted in an event. Default 128.
    pub max_json_depth: usize,
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

    fn parse(s: &str) -> Result<Self, String> {
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
    fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected one of pretty, json".to_owned()),
        }
    }
}

/// One mebibyte.
const MIB: u64 = 1024 * 1024;

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
                shutdown_grace: "10s".to_owned(),
                trusted_proxies: Vec::new(),
            },
            admin: RawAdminConfig {
                listen: "127.0.0.1:3001".to_owned(),
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
                max_json_depth: 128,
            },
            log: RawLogConfig {
                format: LogFormat::Pretty,
                level: "info".to_owned(),
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

impl Default for RawLogConfig {
    fn default() -> Self {
        RawConfig::default().log
    }
}

// ---------------------------------------------------------------------------
// Environment overrides.
// ---------------------------------------------------------------------------

/// One `SCRUBGATE_*` variable and the key it overrides.
struct EnvOverride {
    var: &'static str,
    apply: fn(&mut RawConfig, &str) -> Result<(), String>,
}

fn to_usize(v: &str) -> Result<usize, String> {
    v.trim()
        .parse()
        .map_err(|_| "expected a non-negative integer".to_owned())
}

fn to_size(v: &str) -> Result<ByteSize, String> {
    let v = v.trim();
    match v.parse::<u64>() {
        Ok(n) => Ok(ByteSize::Bytes(n)),
        Err(_) => parse_size(v).map(|_| ByteSize::Text(v.to_owned())),
    }
}

fn to_addr(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not an IP:PORT address (e.g. \"127.0.0.1:3000\")"))
}

fn to_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every overridable key. A value of the wrong type is reported here, naming the
/// variable; range checks (`must be > 0`) happen in `validate`, naming the key.
const ENV_OVERRIDES: &[EnvOverride] = &[
    EnvOverride {
        var: "SCRUBGATE_DATA_DIR",
        apply: |c, v| {
            c.data_dir = PathBuf::from(v);
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_SERVER_LISTEN",
        apply: |c, v| {
            to_addr(v)?;
            c.server.listen = v.to_owned();
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_SERVER_MAX_CONNECTIONS",
        apply: |c, v| {
            c.server.max_connections = to_usize(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_SERVER_MAX_IN_FLIGHT",
        apply: |c, v| {
            c.server.max_in_flight = to_usize(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_SERVER_HEADER_READ_TIMEOUT",
        apply: |c, v| {
            parse_duration(v)?;
            c.server.header_read_timeout = v.to_owned();
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_SERVER_BODY_READ_TIMEOUT",
        apply: |c, v| {
            parse_duration(v)?;
            c.server.body_read_timeout = v.to_owned();
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_SERVER_SHUTDOWN_GRACE",
        apply: |c, v| {
            parse_duration(v)?;
            c.server.shutdown_grace = v.to_owned();
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_SERVER_TRUSTED_PROXIES",
        apply: |c, v| {
            let list = to_list(v);
            for entry in &list {
                entry.parse::<IpNet>().map_err(|e| e.to_string())?;
            }
            c.server.trusted_proxies = list;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_ADMIN_LISTEN",
        apply: |c, v| {
            to_addr(v)?;
            c.admin.listen = v.to_owned();
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_UPSTREAM_URL",
        apply: |c, v| {
            let v = v.trim();
            c.upstream.url = (!v.is_empty()).then(|| v.to_owned());
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_UPSTREAM_ENCODING",
        apply: |c, v| {
            c.upstream.encoding = UpstreamEncoding::parse(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_UPSTREAM_TIMEOUT",
        apply: |c, v| {
            parse_duration(v)?;
            c.upstream.timeout = v.to_owned();
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_UPSTREAM_CA_FILE",
        apply: |c, v| {
            c.upstream.ca_file = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_UPSTREAM_CONNECT_TIMEOUT",
        apply: |c, v| {
            parse_duration(v)?;
            c.upstream.connect_timeout = v.to_owned();
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_UPSTREAM_MAX_CONNECTIONS_PER_HOST",
        apply: |c, v| {
            c.upstream.max_connections_per_host = to_usize(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_PROJECTS_DIR",
        apply: |c, v| {
            c.projects.dir = PathBuf::from(v);
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_PROJECTS_POLL_INTERVAL",
        apply: |c, v| {
            parse_duration(v)?;
            c.projects.poll_interval = v.to_owned();
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_LIMITS_MAX_EVENT_SIZE",
        apply: |c, v| {
            c.limits.max_event_size = to_size(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_LIMITS_MAX_ENVELOPE_SIZE",
        apply: |c, v| {
            c.limits.max_envelope_size = to_size(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_LIMITS_MAX_COMPRESSED_EVENT_SIZE",
        apply: |c, v| {
            c.limits.max_compressed_event_size = to_size(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_LIMITS_MAX_COMPRESSED_ENVELOPE_SIZE",
        apply: |c, v| {
            c.limits.max_compressed_envelope_size = to_size(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_LIMITS_MAX_JSON_DEPTH",
        apply: |c, v| {
            c.limits.max_json_depth = to_usize(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_LOG_FORMAT",
        apply: |c, v| {
            c.log.format = LogFormat::parse(v)?;
            Ok(())
        },
    },
    EnvOverride {
        var: "SCRUBGATE_LOG_LEVEL",
        apply: |c, v| {
            c.log.level = v.to_owned();
            Ok(())
        },
    },
];

impl RawConfig {
    /// Parses TOML text. Unknown keys and wrong types are errors.
    ///
    /// # Errors
    ///
    /// The TOML parser's error, naming the line and key.
    pub fn from_toml(text: &str) -> Result<RawConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// The names of every `SCRUBGATE_*` variable that overrides a key.
    pub fn env_var_names() -> impl Iterator<Item = &'static str> {
        ENV_OVERRIDES.iter().map(|o| o.var)
    }

    /// Applies `SCRUBGATE_*` overrides read through `env`. Returns a problem for every
    /// variable whose value does not fit its key (the variable is then ignored).
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        for o in ENV_OVERRIDES {
            if let Some(value) = env(o.var) {
                if let Err(message) = (o.apply)(self, &value) {
                    problems.push(ConfigProblem::new(o.var, message));
                }
            }
        }
        problems
    }

    /// Checks every value and builds the typed [`Config`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] listing every problem found, each with its key path.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut v = Validator::default();
        let config = v.config(self);
        match config {
            Some(config) if v.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid(v.problems)),
        }
    }
}

// ---------------------------------------------------------------------------
// Typed layer: what the rest of the program reads.
// ---------------------------------------------------------------------------

/// The validated process configuration. See [`RawConfig`] for what each key means.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Directory for local state (the embedded outbox).
    pub data_dir: PathBuf,
    /// The ingest listener.
    pub server: ServerConfig,
    /// The admin listener.
    pub admin: AdminConfig,
    /// Where scrubbed events go.
    pub upstream: UpstreamConfig,
    /// Project rule files.
    pub projects: ProjectsConfig,
    /// Body limits.
    pub limits: LimitsConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[server]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Ingest listener address.
    pub listen: SocketAddr,
    /// Most open connections; always > 0.
    pub max_connections: usize,
    /// Most requests in flight; always > 0.
    pub max_in_flight: usize,
    /// Time to receive the request head; > 0.
    pub header_read_timeout: Duration,
    /// Time to receive the body; > 0.
    pub body_read_timeout: Duration,
    /// Drain time at shutdown; may be zero.
    pub shutdown_grace: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl ServerConfig {
    /// True when `peer` is in one of the `trusted_proxies` blocks.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(peer))
    }
}

/// `[admin]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// Admin listener address.
    pub listen: SocketAddr,
}

/// `[upstream]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    /// Base URL (`http://host:port[/prefix]`, no query); `None` means the embedded
    /// outbox. The path of a base URL never ends with `/`.
    pub url: Option<http::Uri>,
    /// Content-Encoding of forwarded bodies.
    pub encoding: UpstreamEncoding,
    /// Deadline for the whole exchange; > 0.
    pub timeout: Duration,
    /// TCP connect deadline; > 0.
    pub connect_timeout: Duration,
    /// Extra trusted CA certificates (DER) from `upstream.ca_file`, read and checked when
    /// the config loads.
    pub ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Most concurrent upstream requests; > 0.
    pub max_connections_per_host: usize,
}

/// `[projects]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectsConfig {
    /// Directory of `<project_id>.json` files (relative to the working directory).
    pub dir: PathBuf,
    /// Poll period for changes; > 0.
    pub poll_interval: Duration,
}

/// `[limits]`, validated. All values are > 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Largest decoded event, bytes.
    pub max_event_size: usize,
    /// Largest decoded envelope, bytes.
    pub max_envelope_size: usize,
    /// Most bytes received for a store request.
    pub max_compressed_event_size: usize,
    /// Most bytes received for an envelope request.
    pub max_compressed_envelope_size: usize,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
}

/// `[log]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive string, known to parse.
    pub level: String,
}

impl Default for Config {
    /// The defaults, without a file or environment.
    fn default() -> Self {
        RawConfig::default()
            .validate()
            .expect("the built-in defaults are valid (tested)")
    }
}

impl Config {
    /// Loads the configuration: the defaults, then the file at `path` (when given),
    /// then `SCRUBGATE_*` overrides read through `env` (pass
    /// `&|k| std::env::var(k).ok()` in production), then validation.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] or [`ConfigError::Parse`] for the file;
    /// [`ConfigError::Invalid`] listing every bad value and every bad override.
    pub fn load(
        path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = match path {
            None => RawConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                RawConfig::from_toml(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?
            }
        };
        Self::from_raw(raw, env)
    }

    /// Like [`Config::load`] with the file's text given directly (tests, `check`).
    ///
    /// # Errors
    ///
    /// As [`Config::load`]; a parse error names the path `<inline>`.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = RawConfig::from_toml(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            source: Box::new(source),
        })?;
        Self::from_raw(raw, env)
    }

    fn from_raw(
        mut raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let env_problems = raw.apply_env(env);
        match raw.validate() {
            Ok(config) if env_problems.is_empty() => Ok(config),
            Ok(_) => Err(ConfigError::Invalid(env_problems)),
            Err(ConfigError::Invalid(mut problems)) => {
                let mut all = env_problems;
                all.append(&mut problems);
                Err(ConfigError::Invalid(all))
            }
            Err(other) => Err(other),
        }
    }
}

/// Upper bound for every count (connections, in-flight requests, JSON depth): far above
/// any sane setting, and low enough for tokio's semaphores (which panic above
/// `usize::MAX >> 3` permits).
const MAX_COUNT: usize = 1_000_000;

/// Collects problems while converting raw values.
#[derive(Default)]
struct Validator {
    problems: Vec<ConfigProblem>,
}

impl Validator {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(path, message));
    }

    fn addr(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match to_addr(value) {
            Ok(addr) => Some(addr),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    fn duration(&mut self, path: &str, value: &str, allow_zero: bool) -> Option<Duration> {
        match parse_duration(value) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.problem(path, "must be > 0");
                None
            }
            Ok(d) => Some(d),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    fn count(&mut self, path: &str, value: usize) -> Option<usize> {
        if value == 0 {
            self.problem(path, "must be > 0");
            None
        } else if value > MAX_COUNT {
            self.problem(path, format!("must be at most {MAX_COUNT}"));
            None
        } else {
            Some(value)
        }
    }

    fn size(&mut self, path: &str, value: &ByteSize) -> Option<usize> {
        match value.bytes() {
            Ok(0) => {
                self.problem(path, "must be > 0");
                None
            }
            Ok(n) => match usize::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.problem(path, "too large for this platform");
                    None
                }
            },
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    /// Reads the PEM certificates of `file`; at least one, all well-formed.
    fn ca_certs(
        &mut self,
        path: &str,
        file: &Path,
    ) -> Option<Vec<rustls::pki_types::CertificateDer<'static>>> {
        use rustls::pki_types::pem::PemObject;
        let pem = match std::fs::read(file) {
            Ok(pem) => pem,
            Err(error) => {
                self.problem(path, format!("cannot read {}: {error}", file.display()));
                return None;
            }
        };
        let certs: Result<Vec<_>, _> =
            rustls::pki_types::CertificateDer::pem_slice_iter(&pem).collect();
        match certs {
            Ok(certs) if !certs.is_empty() => Some(certs),
            Ok(_) => {
                self.problem(path, format!("{} holds no PEM certificate", file.display()));
                None
            }
            Err(error) => {
                self.problem(path, format!("{}: bad PEM: {error}", file.display()));
                None
            }
        }
    }

    fn upstream_url(&mut self, path: &str, value: Option<&str>) -> Option<Option<http::Uri>> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Some(None);
        };
        let uri: http::Uri = match value.parse() {
            Ok(uri) => uri,
            Err(_) => {
                self.problem(path, "not a valid URL");
                return None;
            }
        };
        let scheme = match uri.scheme_str() {
            Some(scheme @ ("http" | "https")) => scheme,
            _ => {
                self.problem(path, "must start with http:// or https://");
                return None;
            }
        };
        if uri.host().is_none_or(str::is_empty) {
            self.problem(path, "must name a host");
            return None;
        }
        if uri.query().is_some() {
            self.problem(path, "must not have a query string");
            return None;
        }
        // Normalise the path prefix: no trailing slash, so that `prefix + /api/...`
        // never has a double slash.
        let prefix = uri.path().trim_end_matches('/');
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        match format!("{scheme}://{authority}{prefix}").parse() {
            Ok(uri) => Some(Some(uri)),
            Err(_) => {
                self.problem(path, "not a valid URL");
                None
            }
        }
    }

    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let RawConfig {
            data_dir,
            server,
            admin,
            upstream,
            projects,
            limits,
            log,
        } = raw;

        if data_dir.as_os_str().is_empty() {
            self.problem("data_dir", "must not be empty");
        }

        let listen = self.addr("server.listen", &server.listen);
        let max_connections = self.count("server.max_connections", server.max_connections);
        let max_in_flight = self.count("server.max_in_flight", server.max_in_flight);
        let header_read_timeout = self.duration(
            "server.header_read_timeout",
            &server.header_read_timeout,
            false,
        );
        let body_read_timeout =
            self.duration("server.body_read_timeout", &server.body_read_timeout, false);
        let shutdown_grace = self.duration("server.shutdown_grace", &server.shutdown_grace, true);
        let mut trusted_proxies = Vec::with_capacity(server.trusted_proxies.len());
        for (i, entry) in server.trusted_proxies.iter().enumerate() {
            match entry.parse::<IpNet>() {
                Ok(net) => trusted_proxies.push(net),
                Err(error) => {
                    self.problem(&format!("server.trusted_proxies[{i}]"), error.to_string());
                }
            }
        }

        let admin_listen = self.addr("admin.listen", &admin.listen);
        if let (Some(a), Some(b)) = (listen, admin_listen) {
            if a == b && a.port() != 0 {
                self.problem("admin.listen", "must differ from server.listen");
            }
        }

        let url = self.upstream_url("upstream.url", upstream.url.as_deref());
        let timeout = self.duration("upstream.timeout", &upstream.timeout, false);
        let connect_timeout =
            self.duration("upstream.connect_timeout", &upstream.connect_timeout, false);
        let max_connections_per_host = self.count(
            "upstream.max_connections_per_host",
            upstream.max_connections_per_host,
        );
        let ca_certs = upstream
            .ca_file
            .as_deref()
            .map(|file| self.ca_certs("upstream.ca_file", file));

        if projects.dir.as_os_str().is_empty() {
            self.problem("projects.dir", "must not be empty");
        }
        let poll_interval = self.duration("projects.poll_interval", &projects.poll_interval, false);

        let max_event_size = self.size("limits.max_event_size", &limits.max_event_size);
        let max_envelope_size = self.size("limits.max_envelope_size", &limits.max_envelope_size);
        let max_compressed_event_size = self.size(
            "limits.max_compressed_event_size",
            &limits.max_compressed_event_size,
        );
        let max_compressed_envelope_size = self.size(
            "limits.max_compressed_envelope_size",
            &limits.max_compressed_envelope_size,
        );
        let max_json_depth = self.count("limits.max_json_depth", limits.max_json_depth);
        if let (Some(event), Some(envelope)) = (max_event_size, max_envelope_size) {
            if event > envelope {
                self.problem(
                    "limits.max_event_size",
                    "must not exceed limits.max_envelope_size",
                );
            }
        }

        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&log.level) {
            self.problem("log.level", format!("not a valid filter: {error}"));
        }

        Some(Config {
            data_dir,
            server: ServerConfig {
                listen: listen?,
                max_connections: max_connections?,
                max_in_flight: max_in_flight?,
                header_read_timeout: header_read_timeout?,
                body_read_timeout: body_read_timeout?,
                shutdown_grace: shutdown_grace?,
                trusted_proxies,
            },
            admin: AdminConfig {
                listen: admin_listen?,
            },
            upstream: UpstreamConfig {
                url: url?,
                encoding: upstream.encoding,
                timeout: timeout?,
                connect_timeout: connect_timeout?,
                max_connections_per_host: max_connections_per_host?,
                ca_certs: ca_certs.unwrap_or(Some(Vec::new()))?,
            },
            projects: ProjectsConfig {
                dir: projects.dir,
                poll_interval: poll_interval?,
            },
            limits: LimitsConfig {
                max_event_size: max_event_size?,
                max_envelope_size: max_envelope_size?,
                max_compressed_event_size: max_compressed_event_size?,
                max_compressed_envelope_size: max_compressed_envelope_size?,
                max_json_depth: max_json_depth?,
            },
            log: LogConfig {
                format: log.format,
                level: log.level,
            },
        })
    }
}

#[cfg(test)]
mod tests;
