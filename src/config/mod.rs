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
//!
//! `raw` holds the file's shape and the defaults, `env` the overrides, `validation` the
//! checks; this module the typed result and loading.

mod env;
mod machine;
mod raw;
mod validation;
mod values;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::protocol::client_ip::IpNet;
pub use raw::{
    LogFormat, RawAdminConfig, RawConfig, RawLimitsConfig, RawLogConfig, RawProjectsConfig,
    RawServerConfig, RawUpstreamConfig, UpstreamEncoding,
};
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
    /// The durable spool.
    pub spool: SpoolConfig,
}

/// `[spool]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Spool when the upstream cannot take a request (only with an upstream).
    pub enabled: bool,
    /// Directory of the spool database.
    pub dir: PathBuf,
    /// Most bytes spooled; > 0.
    pub max_bytes: usize,
    /// Oldest entry kept; > 0.
    pub max_age: Duration,
    /// Spooled requests replayed at once; >= 1 (`0` in the file resolves to half of
    /// `upstream.max_connections_per_host`).
    pub drain_concurrency: usize,
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
    /// Time from accept to the first complete request head; > 0.
    pub first_request_timeout: Duration,
    /// Idle time after which a connection is closed (and the HTTP/2 ping interval); > 0.
    pub idle_timeout: Duration,
    /// Most connections per client IP (IPv6 per /64); 0 = no limit.
    pub max_connections_per_ip: usize,
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
    /// Most open admin connections; always > 0.
    pub max_connections: usize,
    /// Time to receive the request head; > 0.
    pub header_read_timeout: Duration,
    /// Time from accept to the first complete request head; > 0.
    pub first_request_timeout: Duration,
    /// The console's bearer token; `None` when unset.
    pub token: Option<String>,
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
    /// Largest decoded `attachment` item, bytes.
    pub max_attachment_size: usize,
    /// Most bytes of all attachments of one upload (minidump, attachment and Unreal
    /// endpoints), received and decoded.
    pub max_attachments_size: usize,
    /// Most parts of one multipart upload.
    pub max_multipart_parts: usize,
    /// Largest decoded `profile` or `profile_chunk` item, bytes.
    pub max_profile_size: usize,
    /// Largest `replay_recording` item as sent (often zlib-compressed), bytes.
    pub max_replay_compressed_size: usize,
    /// Largest decoded `span`, `log`, `trace_metric` (containers of records),
    /// `otel_span` or `otel_log` item, bytes.
    pub max_container_size: usize,
    /// Largest decoded `check_in` item, bytes.
    pub max_check_in_size: usize,
    /// Largest decoded `client_report` item, bytes.
    pub max_client_reports_size: usize,
    /// Largest `replay_recording` once its own compression is undone, bytes.
    pub max_replay_uncompressed_size: usize,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Most request-body bytes held at once, across all requests.
    pub max_body_bytes_in_flight: usize,
    /// Largest decoded/compressed size ratio beyond the first MiB.
    pub max_decompression_ratio: usize,
    /// Bodies decompressed and scrubbed at once.
    pub max_decoding: usize,
}

/// A compressed body may always decode to this much, whatever its ratio.
pub const RATIO_FREE_BYTES: usize = 1024 * 1024;

impl LimitsConfig {
    /// The most `compressed` bytes may decode to: `limit`, and no more than
    /// `max_decompression_ratio` times their size (always [`RATIO_FREE_BYTES`]).
    pub fn decoded_cap(&self, compressed: usize, limit: usize) -> usize {
        limit.min(
            compressed
                .saturating_mul(self.max_decompression_ratio)
                .max(RATIO_FREE_BYTES),
        )
    }
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
                match RawConfig::from_toml(&text) {
                    Ok(raw) => raw,
                    Err(source) => {
                        return Err(
                            Self::every_problem(&text, env).unwrap_or(ConfigError::Parse {
                                path: path.to_owned(),
                                source: Box::new(source),
                            }),
                        )
                    }
                }
            }
        };
        Self::from_raw(raw, env)
    }

    /// For TOML that does not fit the schema: every key that does not, and every
    /// problem of the values that do, at once (`check` names them all). `None` when the
    /// text is not TOML.
    fn every_problem(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<ConfigError> {
        let (raw, mut problems) = RawConfig::from_toml_collecting(text)?;
        if problems.is_empty() {
            return None;
        }
        if let Err(ConfigError::Invalid(more)) = Self::from_raw(raw, env) {
            problems.extend(more);
        }
        Some(ConfigError::Invalid(problems))
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
        let raw = match RawConfig::from_toml(text) {
            Ok(raw) => raw,
            Err(source) => {
                return Err(
                    Self::every_problem(text, env).unwrap_or(ConfigError::Parse {
                        path: PathBuf::from("<inline>"),
                        source: Box::new(source),
                    }),
                )
            }
        };
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

#[cfg(test)]
mod tests;
