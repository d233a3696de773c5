use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |key| map.get(key).cloned()
}

fn problems(result: Result<Config, ConfigError>) -> Vec<String> {
    match result {
        Err(ConfigError::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

#[test]
fn defaults_are_valid_and_as_documented() {
    let config = Config::load(None, &no_env).unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(
        config.server.listen,
        "127.0.0.1:3000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.server.max_connections, 1024);
    assert_eq!(config.server.max_in_flight, 512);
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(config.server.body_read_timeout, Duration::from_secs(30));
    assert_eq!(config.server.shutdown_grace, Duration::from_secs(10));
    assert!(config.server.trusted_proxies.is_empty());
    assert_eq!(
        config.admin.listen,
        "127.0.0.1:3001".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.upstream.url, None);
    assert_eq!(config.upstream.encoding, UpstreamEncoding::Gzip);
    assert_eq!(config.upstream.timeout, Duration::from_secs(5));
    assert_eq!(config.upstream.connect_timeout, Duration::from_secs(3));
    assert_eq!(config.projects.dir, PathBuf::from("config/projects"));
    assert_eq!(config.projects.poll_interval, Duration::from_secs(2));
    assert_eq!(config.limits.max_event_size, 1024 * 1024);
    assert_eq!(config.limits.max_envelope_size, 200 * 1024 * 1024);
    assert_eq!(config.limits.max_compressed_event_size, 1024 * 1024);
    assert_eq!(
        config.limits.max_compressed_envelope_size,
        200 * 1024 * 1024
    );
    assert_eq!(config.limits.max_json_depth, 128);
    // Relay's per-type item limits.
    assert_eq!(config.limits.max_attachment_size, 200 * 1024 * 1024);
    assert_eq!(config.limits.max_profile_size, 50 * 1024 * 1024);
    assert_eq!(config.limits.max_replay_compressed_size, 10 * 1024 * 1024);
    assert_eq!(
        config.limits.max_replay_uncompressed_size,
        100 * 1024 * 1024
    );
    assert_eq!(config.limits.max_container_size, 12 * 1024 * 1024);
    assert_eq!(config.limits.max_check_in_size, 100 * 1024);
    assert_eq!(config.limits.max_client_reports_size, 100 * 1024);
    assert_eq!(config.log.format, LogFormat::Pretty);
    assert_eq!(config.log.level, "info");
    assert_eq!(config.data_dir, PathBuf::from("data"));
}

/// The shipped file must parse, and must say exactly what the defaults say (so the
/// comments in it never drift from the code).
#[test]
fn shipped_config_parses_and_matches_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/scrubgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let raw = RawConfig::from_toml(&text).unwrap();
    assert_eq!(
        raw.clone().validate().unwrap(),
        RawConfig::default().validate().unwrap()
    );
    let config = Config::load(Some(&path), &no_env).unwrap();
    assert_eq!(config, Config::default());
}

/// Every key of the raw schema appears in the shipped file (set or commented out), so
/// the file documents them all.
#[test]
fn shipped_config_mentions_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/scrubgate.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let value = toml::Value::try_from(RawConfig::default()).unwrap();
    let table = value.as_table().unwrap();
    let mut keys = Vec::new();
    for (key, value) in table {
        match value.as_table() {
            Some(section) => {
                assert!(
                    text.contains(&format!("[{key}]")),
                    "section [{key}] missing"
                );
                keys.extend(section.keys().cloned());
            }
            None => keys.push(key.clone()),
        }
    }
    // `upstream.url` defaults to none, so it is not serialized; it is in the file as a
    // comment.
    keys.push("url".to_owned());
    for key in keys {
        assert!(
            text.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{key} ="))
            }),
            "key {key} not in the shipped config"
        );
    }
}

#[test]
fn every_env_var_is_named_after_its_key() {
    let value = toml::Value::try_from(RawConfig::default()).unwrap();
    let mut expected = Vec::new();
    for (key, value) in value.as_table().unwrap() {
        match value.as_table() {
            Some(section) => {
                for sub in section.keys() {
                    expected.push(format!("SCRUBGATE_{key}_{sub}").to_uppercase());
                }
            }
            None => expected.push(format!("SCRUBGATE_{key}").to_uppercase()),
        }
    }
    // Keys whose default is unset do not appear in the serialized defaults.
    expected.push("SCRUBGATE_UPSTREAM_URL".to_owned());
    expected.push("SCRUBGATE_UPSTREAM_CA_FILE".to_owned());
    expected.sort();
    let mut actual: Vec<String> = RawConfig::env_var_names().map(str::to_owned).collect();
    actual.sort();
    assert_eq!(actual, expected);
}

#[test]
fn file_values_override_defaults() {
    let config = Config::from_toml(
        r#"
        data_dir = "/var/lib/scrubgate"
        [server]
        listen = "0.0.0.0:8000"
        trusted_proxies = ["10.0.0.0/8", "192.168.1.1"]
        [upstream]
        url = "http://sentry.internal:9000/"
        encoding = "zstd"
        timeout = "1500ms"
        [limits]
        max_event_size = 2097152
        max_envelope_size = "100 MiB"
        [log]
        format = "json"
        level = "info,scrubgate=debug"
        "#,
        &no_env,
    )
    .unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/scrubgate"));
    assert_eq!(config.server.listen.port(), 8000);
    assert!(config.server.is_trusted_proxy("10.1.2.3".parse().unwrap()));
    assert!(config
        .server
        .is_trusted_proxy("192.168.1.1".parse().unwrap()));
    assert!(!config
        .server
        .is_trusted_proxy("192.168.1.2".parse().unwrap()));
    let url = config.upstream.url.unwrap();
    assert_eq!(url.to_string(), "http://sentry.internal:9000/");
    assert_eq!(url.path(), "/");
    assert_eq!(config.upstream.encoding, UpstreamEncoding::Zstd);
    assert_eq!(config.upstream.timeout, Duration::from_millis(1500));
    assert_eq!(config.limits.max_event_size, 2 * 1024 * 1024);
    assert_eq!(config.limits.max_envelope_size, 100 * 1024 * 1024);
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn upstream_url_keeps_a_path_prefix_without_trailing_slash() {
    let config =
        Config::from_toml("[upstream]\nurl = \"http://relay:3000/ingest/\"", &no_env).unwrap();
    assert_eq!(config.upstream.url.unwrap().path(), "/ingest");
}

#[test]
fn environment_overrides_file_values() {
    let env = env_of(&[
        ("SCRUBGATE_UPSTREAM_URL", "http://127.0.0.1:9000"),
        ("SCRUBGATE_SERVER_LISTEN", "0.0.0.0:3100"),
        ("SCRUBGATE_LIMITS_MAX_EVENT_SIZE", "2MiB"),
        ("SCRUBGATE_LIMITS_MAX_JSON_DEPTH", "64"),
        ("SCRUBGATE_LIMITS_MAX_PROFILE_SIZE", "5MiB"),
        ("SCRUBGATE_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8"),
        ("SCRUBGATE_UPSTREAM_ENCODING", "identity"),
        ("SCRUBGATE_LOG_FORMAT", "json"),
        ("SCRUBGATE_DATA_DIR", "/tmp/sg"),
        ("SCRUBGATE_PROJECTS_POLL_INTERVAL", "500ms"),
    ]);
    let config = Config::from_toml(
        "[server]\nlisten = \"127.0.0.1:1\"\n[limits]\nmax_event_size = 10",
        &env,
    )
    .unwrap();
    assert_eq!(
        config.upstream.url.unwrap().to_string(),
        "http://127.0.0.1:9000/"
    );
    assert_eq!(config.server.listen.port(), 3100);
    assert_eq!(config.limits.max_event_size, 2 * 1024 * 1024);
    assert_eq!(config.limits.max_json_depth, 64);
    assert_eq!(config.limits.max_profile_size, 5 * 1024 * 1024);
    assert_eq!(config.server.trusted_proxies.len(), 2);
    assert_eq!(config.upstream.encoding, UpstreamEncoding::Identity);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.data_dir, PathBuf::from("/tmp/sg"));
    assert_eq!(config.projects.poll_interval, Duration::from_millis(500));
}

#[test]
fn empty_upstream_url_in_the_environment_selects_the_outbox() {
    let env = env_of(&[("SCRUBGATE_UPSTREAM_URL", "")]);
    let config = Config::from_toml("[upstream]\nurl = \"http://sentry:9000\"", &env).unwrap();
    assert_eq!(config.upstream.url, None);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let env = env_of(&[
        ("SCRUBGATE_SERVER_MAX_CONNECTIONS", "lots"),
        ("SCRUBGATE_LIMITS_MAX_EVENT_SIZE", "1 TiB"),
        ("SCRUBGATE_UPSTREAM_TIMEOUT", "5"),
        ("SCRUBGATE_UPSTREAM_ENCODING", "brotli"),
        ("SCRUBGATE_ADMIN_LISTEN", "localhost"),
        ("SCRUBGATE_SERVER_TRUSTED_PROXIES", "10.0.0.0/8,nope"),
    ]);
    let found = problems(Config::load(None, &env));
    let vars: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        vars,
        [
            "SCRUBGATE_SERVER_MAX_CONNECTIONS",
            "SCRUBGATE_SERVER_TRUSTED_PROXIES",
            "SCRUBGATE_ADMIN_LISTEN",
            "SCRUBGATE_UPSTREAM_ENCODING",
            "SCRUBGATE_UPSTREAM_TIMEOUT",
            "SCRUBGATE_LIMITS_MAX_EVENT_SIZE",
        ],
        "{found:#?}"
    );
}

#[test]
fn env_problems_and_file_problems_are_reported_together() {
    let env = env_of(&[("SCRUBGATE_SERVER_MAX_IN_FLIGHT", "-3")]);
    let found = problems(Config::from_toml("[upstream]\ntimeout = \"0s\"", &env));
    assert_eq!(
        found,
        [
            "SCRUBGATE_SERVER_MAX_IN_FLIGHT: expected a non-negative integer",
            "upstream.timeout: must be > 0",
        ]
    );
}

#[test]
fn validation_reports_every_problem_with_its_path() {
    let found = problems(Config::from_toml(
        r#"
        data_dir = ""
        [server]
        listen = "nowhere"
        max_connections = 0
        header_read_timeout = "0s"
        body_read_timeout = "soon"
        trusted_proxies = ["10.0.0.0/8", "10.0.0.0/40"]
        [admin]
        listen = "127.0.0.1:3000"
        [upstream]
        timeout = "0ms"
        connect_timeout = "3"
        max_connections_per_host = 0
        [projects]
        poll_interval = "0s"
        [limits]
        max_event_size = 0
        max_json_depth = 0
        [log]
        level = "info,[[["
        "#,
        &no_env,
    ));
    let paths: Vec<&str> = found
        .iter()
        .map(|p| p.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "data_dir",
            "server.listen",
            "server.max_connections",
            "server.header_read_timeout",
            "server.body_read_timeout",
            "server.trusted_proxies[1]",
            "upstream.timeout",
            "upstream.connect_timeout",
            "upstream.max_connections_per_host",
            "projects.poll_interval",
            "limits.max_event_size",
            "limits.max_json_depth",
            "log.level",
        ],
        "{found:#?}"
    );
    assert!(found.contains(&"upstream.timeout: must be > 0".to_owned()));
}

/// A bad size string is named with its key and line.
#[test]
fn bad_size_strings_are_named_with_their_key_and_line() {
    let found = problems(Config::from_toml(
        "[limits]\nmax_event_size = \"12 parsecs\"\n",
        &no_env,
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("limits.max_event_size: "), "{found:?}");
    assert!(found[0].contains("unknown unit"), "{found:?}");
    assert!(found[0].ends_with("(line 2)"), "{found:?}");
}

/// Every key that does not fit is reported at once, with the other values' problems.
#[test]
fn every_schema_problem_is_reported_at_once() {
    let found = problems(Config::from_toml(
        "[limits]\nmax_event_size = \"lots\"\n[server]\nlisten = 12\nmax_conections = 5\n[upstream]\ntimeout = \"0s\"\n",
        &no_env,
    ));
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(found[0].starts_with("limits.max_event_size: expected a size"));
    assert!(found[0].ends_with("(line 2)"), "{found:?}");
    assert!(found[1].starts_with("server.listen: invalid type"));
    assert!(found[1].ends_with("(line 4)"), "{found:?}");
    assert!(
        found[2].starts_with("server.max_conections: unknown field")
            && found[2].contains("did you mean \"max_connections\"?"),
        "{found:?}"
    );
    assert_eq!(found[3], "upstream.timeout: must be > 0");
}

#[test]
fn listeners_must_differ() {
    let found = problems(Config::from_toml(
        "[server]\nlisten = \"127.0.0.1:4000\"\n[admin]\nlisten = \"127.0.0.1:4000\"",
        &no_env,
    ));
    assert_eq!(found, ["admin.listen: must differ from server.listen"]);
    // Port 0 (tests) asks the OS for two different ports.
    let config = Config::from_toml(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"",
        &no_env,
    );
    assert!(config.is_ok());
}

#[test]
fn https_upstreams_are_accepted_and_normalised() {
    let config = Config::from_toml(
        "[upstream]\nurl = \"https://o1.ingest.sentry.io/relay/\"",
        &no_env,
    )
    .unwrap();
    assert_eq!(
        config.upstream.url.unwrap().to_string(),
        "https://o1.ingest.sentry.io/relay"
    );
    assert!(config.upstream.ca_certs.is_empty());
}

#[test]
fn ca_file_is_read_when_the_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("ca.pem");
    std::fs::write(
        &good,
        include_str!("../../tests/fixtures/tls/ca.pem").repeat(2),
    )
    .unwrap();
    let toml = |file: &std::path::Path| {
        format!(
            "[upstream]\nurl = \"https://sentry.internal\"\nca_file = {:?}",
            file.display().to_string()
        )
    };
    let config = Config::from_toml(&toml(&good), &no_env).unwrap();
    assert_eq!(config.upstream.ca_certs.len(), 2);

    let missing = dir.path().join("missing.pem");
    let found = problems(Config::from_toml(&toml(&missing), &no_env));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("upstream.ca_file: cannot read "),
        "{found:?}"
    );

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let found = problems(Config::from_toml(&toml(&empty), &no_env));
    assert_eq!(found.len(), 1);
    assert!(found[0].ends_with("holds no PEM certificate"), "{found:?}");

    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let found = problems(Config::from_toml(&toml(&broken), &no_env));
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("bad PEM"), "{found:?}");

    // The environment names the file too.
    let good_path = good.display().to_string();
    let env = env_of(&[("SCRUBGATE_UPSTREAM_CA_FILE", &good_path)]);
    let config = Config::from_toml("[upstream]\nurl = \"https://sentry.internal\"", &env).unwrap();
    assert_eq!(config.upstream.ca_certs.len(), 2);
}

#[test]
fn malformed_upstream_urls_are_refused() {
    for url in [
        "sentry:9000",
        "ftp://sentry",
        "http://",
        "http://sentry:9000/?x=1",
        "not a url",
    ] {
        let found = problems(Config::from_toml(
            &format!("[upstream]\nurl = {url:?}"),
            &no_env,
        ));
        assert_eq!(found.len(), 1, "{url}: {found:?}");
        assert!(found[0].starts_with("upstream.url: "), "{url}: {found:?}");
    }
}

#[test]
fn event_limit_may_not_exceed_envelope_limit() {
    let found = problems(Config::from_toml(
        "[limits]\nmax_event_size = \"2MiB\"\nmax_envelope_size = \"1MiB\"",
        &no_env,
    ));
    assert_eq!(
        found,
        ["limits.max_event_size: must not exceed limits.max_envelope_size"]
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_errors_with_their_path() {
    for (text, path) in [
        (
            "[server]\nlisten = \"127.0.0.1:3000\"\nlisen = \"x\"",
            "server.lisen: ",
        ),
        ("[serverr]\nlisten = \"127.0.0.1:3000\"", "serverr: "),
        (
            "[server]\nmax_connections = \"many\"",
            "server.max_connections: ",
        ),
        ("[upstream]\nencoding = \"br\"", "upstream.encoding: "),
        ("[log]\nformat = \"xml\"", "log.format: "),
    ] {
        let found = problems(Config::from_toml(text, &no_env));
        assert_eq!(found.len(), 1, "{text}: {found:?}");
        assert!(found[0].starts_with(path), "{text}: {found:?}");
    }
}

#[test]
fn load_reports_a_missing_file() {
    let err = Config::load(Some(Path::new("/nonexistent/scrubgate.toml")), &no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/scrubgate.toml"));
}

#[test]
fn load_reads_a_file_and_names_it_in_parse_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sg.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:3999\"\n").unwrap();
    let config = Config::load(Some(&path), &no_env).unwrap();
    assert_eq!(config.server.listen.port(), 3999);

    std::fs::write(&path, "[server\n").unwrap();
    let err = Config::load(Some(&path), &no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("sg.toml"), "{err}");
}

#[test]
fn counts_have_an_upper_bound() {
    let found = problems(Config::from_toml(
        "[upstream]\nmax_connections_per_host = 2305843009213693952",
        &no_env,
    ));
    assert_eq!(
        found,
        ["upstream.max_connections_per_host: must be at most 1000000"]
    );
}
