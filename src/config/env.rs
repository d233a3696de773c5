//! Environment overrides: `SCRUBGATE_<SECTION>_<KEY>` variables, applied to a
//! [`RawConfig`] after the file is read and before validation.
//!
//! The variables are declared once, in [`ENV_OVERRIDES`]: each line names the variable,
//! the key it sets and the parser of its value. Adding a key is one line there.

use std::path::PathBuf;

use super::raw::{LogFormat, RawConfig, UpstreamEncoding};
use super::values::{parse_duration, parse_size, to_addr, ByteSize};
use super::{ConfigProblem, IpNet};

/// One `SCRUBGATE_*` variable and the key it overrides.
struct EnvOverride {
    var: &'static str,
    apply: fn(&mut RawConfig, &str) -> Result<(), String>,
}

/// Declares [`ENV_OVERRIDES`]: one `"VARIABLE" => section.key: parser,` line per key.
/// The parser reads the variable's value into the key's type; the key is left as it was
/// when the parser fails.
macro_rules! env_overrides {
    ($($var:literal => $($key:ident).+ : $parse:path,)*) => {
        /// Every overridable key, in the order the overrides are applied (and their
        /// problems reported). A value of the wrong type is reported here, naming the
        /// variable; range checks (`must be > 0`) happen in `validate`, naming the key.
        const ENV_OVERRIDES: &[EnvOverride] = &[$(
            EnvOverride {
                var: $var,
                apply: |c, v| {
                    c.$($key).+ = $parse(v)?;
                    Ok(())
                },
            },
        )*];
    };
}

env_overrides! {
    "SCRUBGATE_DATA_DIR" => data_dir: path,
    "SCRUBGATE_SERVER_LISTEN" => server.listen: addr,
    "SCRUBGATE_SERVER_MAX_CONNECTIONS" => server.max_connections: to_usize,
    "SCRUBGATE_SERVER_MAX_IN_FLIGHT" => server.max_in_flight: to_usize,
    "SCRUBGATE_SERVER_HEADER_READ_TIMEOUT" => server.header_read_timeout: duration,
    "SCRUBGATE_SERVER_BODY_READ_TIMEOUT" => server.body_read_timeout: duration,
    "SCRUBGATE_SERVER_FIRST_REQUEST_TIMEOUT" => server.first_request_timeout: duration,
    "SCRUBGATE_SERVER_IDLE_TIMEOUT" => server.idle_timeout: duration,
    "SCRUBGATE_SERVER_MAX_CONNECTIONS_PER_IP" => server.max_connections_per_ip: to_usize,
    "SCRUBGATE_SERVER_SHUTDOWN_GRACE" => server.shutdown_grace: duration,
    "SCRUBGATE_SERVER_TRUSTED_PROXIES" => server.trusted_proxies: ip_nets,
    "SCRUBGATE_ADMIN_LISTEN" => admin.listen: addr,
    "SCRUBGATE_ADMIN_MAX_CONNECTIONS" => admin.max_connections: to_usize,
    "SCRUBGATE_ADMIN_HEADER_READ_TIMEOUT" => admin.header_read_timeout: duration,
    "SCRUBGATE_ADMIN_FIRST_REQUEST_TIMEOUT" => admin.first_request_timeout: duration,
    "SCRUBGATE_ADMIN_TOKEN" => admin.token: text,
    "SCRUBGATE_UPSTREAM_URL" => upstream.url: optional_url,
    "SCRUBGATE_UPSTREAM_ENCODING" => upstream.encoding: UpstreamEncoding::parse,
    "SCRUBGATE_UPSTREAM_TIMEOUT" => upstream.timeout: duration,
    "SCRUBGATE_UPSTREAM_CA_FILE" => upstream.ca_file: optional_path,
    "SCRUBGATE_UPSTREAM_CONNECT_TIMEOUT" => upstream.connect_timeout: duration,
    "SCRUBGATE_UPSTREAM_MAX_CONNECTIONS_PER_HOST" => upstream.max_connections_per_host: to_usize,
    "SCRUBGATE_PROJECTS_DIR" => projects.dir: path,
    "SCRUBGATE_PROJECTS_POLL_INTERVAL" => projects.poll_interval: duration,
    "SCRUBGATE_LIMITS_MAX_EVENT_SIZE" => limits.max_event_size: to_size,
    "SCRUBGATE_LIMITS_MAX_ENVELOPE_SIZE" => limits.max_envelope_size: to_size,
    "SCRUBGATE_LIMITS_MAX_COMPRESSED_EVENT_SIZE" => limits.max_compressed_event_size: to_size,
    "SCRUBGATE_LIMITS_MAX_COMPRESSED_ENVELOPE_SIZE" => limits.max_compressed_envelope_size: to_size,
    "SCRUBGATE_LIMITS_MAX_ATTACHMENT_SIZE" => limits.max_attachment_size: to_size,
    "SCRUBGATE_LIMITS_MAX_ATTACHMENTS_SIZE" => limits.max_attachments_size: to_size,
    "SCRUBGATE_LIMITS_MAX_MULTIPART_PARTS" => limits.max_multipart_parts: to_usize,
    "SCRUBGATE_LIMITS_MAX_PROFILE_SIZE" => limits.max_profile_size: to_size,
    "SCRUBGATE_LIMITS_MAX_REPLAY_COMPRESSED_SIZE" => limits.max_replay_compressed_size: to_size,
    "SCRUBGATE_LIMITS_MAX_CONTAINER_SIZE" => limits.max_container_size: to_size,
    "SCRUBGATE_LIMITS_MAX_CHECK_IN_SIZE" => limits.max_check_in_size: to_size,
    "SCRUBGATE_LIMITS_MAX_CLIENT_REPORTS_SIZE" => limits.max_client_reports_size: to_size,
    "SCRUBGATE_LIMITS_MAX_REPLAY_UNCOMPRESSED_SIZE" => limits.max_replay_uncompressed_size: to_size,
    "SCRUBGATE_LIMITS_MAX_JSON_DEPTH" => limits.max_json_depth: to_usize,
    "SCRUBGATE_LIMITS_MAX_BODY_BYTES_IN_FLIGHT" => limits.max_body_bytes_in_flight: to_size,
    "SCRUBGATE_LIMITS_MAX_DECOMPRESSION_RATIO" => limits.max_decompression_ratio: to_usize,
    "SCRUBGATE_LIMITS_MAX_DECODING" => limits.max_decoding: to_usize,
    "SCRUBGATE_LOG_FORMAT" => log.format: LogFormat::parse,
    "SCRUBGATE_LOG_LEVEL" => log.level: text,
    "SCRUBGATE_SPOOL_ENABLED" => spool.enabled: to_bool,
    "SCRUBGATE_SPOOL_DIR" => spool.dir: path,
    "SCRUBGATE_SPOOL_MAX_BYTES" => spool.max_bytes: to_size,
    "SCRUBGATE_SPOOL_MAX_AGE" => spool.max_age: duration,
    "SCRUBGATE_SPOOL_DRAIN_CONCURRENCY" => spool.drain_concurrency: to_usize,
}

// The parsers of the table: each takes the variable's value and returns the key's.

/// A path, as given.
fn path(v: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(v))
}

/// A path, as given; empty unsets it.
fn optional_path(v: &str) -> Result<Option<PathBuf>, String> {
    Ok(Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty()))
}

/// Text, as given.
fn text(v: &str) -> Result<String, String> {
    Ok(v.to_owned())
}

/// An `IP:PORT` address, checked here and kept as given.
fn addr(v: &str) -> Result<String, String> {
    to_addr(v)?;
    Ok(v.to_owned())
}

/// A duration (`"5s"`), checked here and kept as given.
fn duration(v: &str) -> Result<String, String> {
    parse_duration(v)?;
    Ok(v.to_owned())
}

fn to_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
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

fn to_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A comma-separated list of IPs or CIDR blocks, each checked here.
fn ip_nets(v: &str) -> Result<Vec<String>, String> {
    let list = to_list(v);
    for entry in &list {
        entry.parse::<IpNet>().map_err(|e| e.to_string())?;
    }
    Ok(list)
}

/// A URL, trimmed; empty unsets it (back to the embedded outbox).
fn optional_url(v: &str) -> Result<Option<String>, String> {
    let v = v.trim();
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

impl RawConfig {
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
}
