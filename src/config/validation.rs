//! Validation: a [`RawConfig`] checked value by value into the typed [`Config`], every
//! problem reported with its key path.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::raw::RawConfig;
use super::values::{parse_duration, to_addr, ByteSize};
use super::{
    AdminConfig, Config, ConfigError, ConfigProblem, IpNet, LimitsConfig, LogConfig,
    ProjectsConfig, ServerConfig, SpoolConfig, UpstreamConfig,
};

impl RawConfig {
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
            spool,
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
        let first_request_timeout = self.duration(
            "server.first_request_timeout",
            &server.first_request_timeout,
            false,
        );
        let idle_timeout = self.duration("server.idle_timeout", &server.idle_timeout, false);
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
        let admin_max_connections = self.count("admin.max_connections", admin.max_connections);
        let admin_header_read_timeout = self.duration(
            "admin.header_read_timeout",
            &admin.header_read_timeout,
            false,
        );
        let admin_first_request_timeout = self.duration(
            "admin.first_request_timeout",
            &admin.first_request_timeout,
            false,
        );
        if let (Some(a), Some(b)) = (listen, admin_listen) {
            if a == b && a.port() != 0 {
                self.problem("admin.listen", "must differ from server.listen");
            }
        }

        let spool_max_bytes = self.size("spool.max_bytes", &spool.max_bytes);
        let spool_max_age = self.duration("spool.max_age", &spool.max_age, false);
        let spool_dir = if spool.dir.as_os_str().is_empty() {
            data_dir.join("spool")
        } else {
            spool.dir
        };

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
        let max_attachment_size =
            self.size("limits.max_attachment_size", &limits.max_attachment_size);
        let max_attachments_size =
            self.size("limits.max_attachments_size", &limits.max_attachments_size);
        let max_multipart_parts =
            self.count("limits.max_multipart_parts", limits.max_multipart_parts);
        let max_profile_size = self.size("limits.max_profile_size", &limits.max_profile_size);
        let max_replay_compressed_size = self.size(
            "limits.max_replay_compressed_size",
            &limits.max_replay_compressed_size,
        );
        let max_container_size = self.size("limits.max_container_size", &limits.max_container_size);
        let max_check_in_size = self.size("limits.max_check_in_size", &limits.max_check_in_size);
        let max_client_reports_size = self.size(
            "limits.max_client_reports_size",
            &limits.max_client_reports_size,
        );
        let max_replay_uncompressed_size = self.size(
            "limits.max_replay_uncompressed_size",
            &limits.max_replay_uncompressed_size,
        );
        let max_json_depth = self.count("limits.max_json_depth", limits.max_json_depth);
        let max_body_bytes_in_flight = self.size(
            "limits.max_body_bytes_in_flight",
            &limits.max_body_bytes_in_flight,
        );
        let max_decompression_ratio = self.count(
            "limits.max_decompression_ratio",
            limits.max_decompression_ratio,
        );
        let max_decoding = self.count("limits.max_decoding", limits.max_decoding);
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
                first_request_timeout: first_request_timeout?,
                idle_timeout: idle_timeout?,
                max_connections_per_ip: server.max_connections_per_ip,
                shutdown_grace: shutdown_grace?,
                trusted_proxies,
            },
            admin: AdminConfig {
                listen: admin_listen?,
                max_connections: admin_max_connections?,
                header_read_timeout: admin_header_read_timeout?,
                first_request_timeout: admin_first_request_timeout?,
                token: Some(admin.token.clone()).filter(|t| !t.is_empty()),
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
                max_attachment_size: max_attachment_size?,
                max_attachments_size: max_attachments_size?,
                max_multipart_parts: max_multipart_parts?,
                max_profile_size: max_profile_size?,
                max_replay_compressed_size: max_replay_compressed_size?,
                max_container_size: max_container_size?,
                max_check_in_size: max_check_in_size?,
                max_client_reports_size: max_client_reports_size?,
                max_replay_uncompressed_size: max_replay_uncompressed_size?,
                max_json_depth: max_json_depth?,
                max_body_bytes_in_flight: max_body_bytes_in_flight?,
                max_decompression_ratio: max_decompression_ratio?,
                max_decoding: max_decoding?,
            },
            log: LogConfig {
                format: log.format,
                level: log.level,
            },
            spool: SpoolConfig {
                enabled: spool.enabled,
                dir: spool_dir,
                max_bytes: spool_max_bytes?,
                max_age: spool_max_age?,
                drain_concurrency: match spool.drain_concurrency {
                    0 => (max_connections_per_host? / 2).max(1),
                    n => n,
                },
            },
        })
    }
}
