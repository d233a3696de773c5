//! The `scrubgate` command: `run` the proxy, `check` a configuration, `scrub` sample
//! events with a project's rules.
//!
//! Exit codes: 0 success; 1 invalid project configs (`check`) or a runtime failure;
//! 2 an invalid server configuration (or bad arguments, from clap).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use scrubgate::config::{Config, ConfigError, LogFormat};
use scrubgate::projects::ProjectStore;
use tracing_subscriber::EnvFilter;

// mimalloc: the proxy allocates per request (bodies, parsed trees, headers) from many
// threads; glibc malloc showed up at about a fifth of the load benchmark's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for an invalid server configuration.
const EXIT_CONFIG: u8 = 2;
/// Exit code for invalid project configs or a runtime failure.
const EXIT_FAILURE: u8 = 1;

/// A PII-scrubbing ingest proxy for Sentry-compatible events.
#[derive(Debug, Parser)]
#[command(name = "scrubgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy: ingest listener for SDKs, admin listener for metrics and health.
    Run {
        /// The server configuration file (TOML); `SCRUBGATE_*` variables override it.
        #[arg(long, default_value = "config/scrubgate.toml")]
        config: PathBuf,
    },
    /// Try a project's rules on sample events: prints the scrubbed event(s).
    Scrub(scrubgate::cli::ScrubArgs),
    /// Validate configuration exactly as `run` would load it, printing every error with
    /// its path. Exit 0 when valid, 1 when a project config is invalid, 2 when the server
    /// config is invalid.
    Check(scrubgate::cli::CheckArgs),
    /// Run rule tests (`*.test.json`): exit 0 when all pass, 1 when one fails, 2 when a
    /// file is invalid.
    Test(scrubgate::cli::TestArgs),
    /// What a project's rules make of a value (a person's email, user id...) under each
    /// of its hash keys, and a Sentry search query for it.
    Pseudonym(scrubgate::cli::PseudonymArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Check(args) => scrubgate::cli::check(&args),
        Command::Test(args) => scrubgate::cli::test(&args),
        Command::Pseudonym(args) => scrubgate::cli::pseudonym(&args),
        Command::Scrub(args) => scrubgate::cli::scrub(&args),
    }
}

/// `scrubgate run`.
fn run(config_path: &Path) -> ExitCode {
    let config = match Config::load(Some(config_path), &scrubgate::projects::env_var) {
        Ok(config) => config,
        Err(error) => {
            print_config_error(&error);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(message) = init_tracing(config.log.format, &config.log.level) {
        eprintln!("error: log.level: {message}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("error: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The ingest listener's accept queue: deep enough that a burst of connections (an SDK
/// fleet reconnecting, or a connect flood the accept loop sheds) does not drop SYNs,
/// which would cost a well-behaved client a one-second retransmit. The kernel caps it at
/// `net.core.somaxconn`.
const INGEST_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with `backlog`, with `SO_REUSEADDR` as `bind` sets it.
fn listen(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Binds the listeners, starts scrubgate, wires SIGHUP to a project reload and runs
/// until SIGTERM or SIGINT.
async fn serve(config: Config) -> Result<(), String> {
    let ingest = listen(config.server.listen, INGEST_BACKLOG).map_err(|e| {
        format!(
            "cannot listen on {} (server.listen): {e}",
            config.server.listen
        )
    })?;
    let admin = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} (admin.listen): {e}",
                config.admin.listen
            )
        })?;
    // The bound addresses (a configured port 0 becomes the real one).
    let ingest_addr = ingest
        .local_addr()
        .map_err(|e| format!("server.listen: {e}"))?;
    let admin_addr = admin
        .local_addr()
        .map_err(|e| format!("admin.listen: {e}"))?;
    tracing::info!(
        ingest = %ingest_addr,
        admin = %admin_addr,
        version = env!("CARGO_PKG_VERSION"),
        "scrubgate listening"
    );
    let app = scrubgate::Scrubgate::start(config, ingest, admin, prometheus::Registry::new())
        .await
        .map_err(|e| scrubgate::cli::error_chain(&e))?;
    let reloader = tokio::spawn(reload_on_sighup(app.projects()));
    let result = app.serve(shutdown_signal()).await;
    reloader.abort();
    result.map_err(|e| scrubgate::cli::error_chain(&e))
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops scrubgate");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reloads every project config on each SIGHUP.
async fn reload_on_sighup(projects: Arc<ProjectStore>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(hup) => hup,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; reload by polling only");
                return;
            }
        };
        while hup.recv().await.is_some() {
            let store = Arc::clone(&projects);
            match tokio::task::spawn_blocking(move || store.reload_all()).await {
                Ok(summary) => tracing::info!(
                    loaded = summary.loaded.len(),
                    removed = summary.removed.len(),
                    failed = summary.errors.len(),
                    "SIGHUP: project configs reloaded"
                ),
                Err(error) => tracing::error!(%error, "SIGHUP: project reload failed"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = projects;
    }
}

/// Installs the global tracing subscriber: `pretty` (human) or `json` lines on stderr,
/// filtered by `level` (a level or `tracing` directives; `RUST_LOG` wins when set).
fn init_tracing(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

/// Prints a server config error on stderr, one problem per line.
fn print_config_error(error: &ConfigError) {
    for line in scrubgate::cli::config_error_lines(error) {
        eprintln!("error: {line}");
    }
}
