//! Load benchmark of the whole proxy on loopback.
//!
//! A null upstream (answers 200 at once) and a load generator of N keep-alive HTTP/1.1
//! connections sending for D seconds each run in this process; scrubgate runs in front of
//! the upstream inside this process too, or as its own process (the `scrubgate run`
//! binary, as deployed) with `LOAD_PROXY=process`. Scenarios:
//!
//! - (a) a ~4 KB and (b) a ~60 KB gzip event (from the corpus) at 64 connections, through
//!   the proxy and straight to the upstream: req/s, p50/p99 latency;
//! - the ~4 KB event at half of the proxy's maximum throughput (a paced run), through
//!   the proxy and straight: the latency the proxy adds when it is not saturated;
//! - (c) a sustained run cycling `tests/fixtures/corpus/events.jsonl` (gzip) at 16
//!   connections: events/s and MB/s delivered upstream.
//!
//! The project uses Relay's default data scrubbing plus
//! `{"$string": ["@email", "@ip"], "$user.email || $user.username || $user.ip_address ||
//! $user.id": ["@anything:hash"]}`.
//!
//! Run: `cargo bench --bench load` (release build). `LOAD_SECS` sets the duration of each
//! run (default 10); `LOAD_ONLY=sustained` runs only (c), `LOAD_ONLY=small` only the
//! small event through scrubgate, `LOAD_ONLY=spool` the corpus through an upstream that
//! answers 503 (spool write rate) and then the drain once it is back. `LOAD_SPOOL=off`
//! runs without the spool (to compare the rate with the spool idle). Without `--bench` (as under `cargo test --benches`) it
//! does a short smoke run. The load generator shares the machine's cores with the proxy
//! and the null upstream, so the figures are a lower bound of what the proxy alone can do.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use scrubgate::config::Config;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

// mimalloc: the proxy allocates per request (bodies, parsed trees, headers) from many
// threads; glibc malloc showed up at about a fifth of the load benchmark's profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The public key of the benchmark project.
const KEY: &str = "0123456789abcdef0123456789abcdef";
/// The benchmark project's id.
const PROJECT: u64 = 1;

/// Bytes the null upstream received, and requests it answered.
#[derive(Default)]
struct UpstreamStats {
    bytes: AtomicU64,
    requests: AtomicU64,
    /// While set, every request is answered 503 and not counted (an outage).
    down: AtomicBool,
}

/// Starts the null upstream: reads each body, answers 200 `{}`.
async fn null_upstream() -> (SocketAddr, Arc<UpstreamStats>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("upstream address");
    let stats = Arc::new(UpstreamStats::default());
    let accept_stats = Arc::clone(&stats);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let stats = Arc::clone(&accept_stats);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let stats = Arc::clone(&stats);
                    async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        if stats.down.load(Ordering::Relaxed) {
                            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                            return Ok::<_, hyper::Error>(response);
                        }
                        stats.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                        stats.requests.fetch_add(1, Ordering::Relaxed);
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, stats)
}

/// The benchmark project config.
fn project_json() -> String {
    serde_json::json!({
        "projectId": PROJECT,
        "publicKeys": [{"publicKey": KEY, "isEnabled": true}],
        "config": {
            "piiConfig": {"applications": {
                "$string": ["@email", "@ip"],
                "$user.email || $user.username || $user.ip_address || $user.id": ["@anything:hash"]
            }},
            "datascrubbingSettings": {
                "scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true,
                "sensitiveFields": [], "excludeFields": []
            }
        }
    })
    .to_string()
}

/// scrubgate on `127.0.0.1:0` in front of `upstream`; returns its address and a stop
/// handle. The temporary directory lives as long as the returned guard.
async fn start_proxy(upstream: SocketAddr) -> (SocketAddr, oneshot::Sender<()>, tempfile::TempDir) {
    let (dir, projects) = project_dir();
    let mut config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    config.projects.dir = projects;
    config.upstream.url = Some(format!("http://{upstream}").parse().expect("upstream url"));
    config.server.max_connections = 4096;
    config.server.max_in_flight = 4096;
    // `LOAD_SPOOL=off`: without the spool, to compare the proxy's rate with it idle.
    config.spool.enabled = std::env::var("LOAD_SPOOL").as_deref() != Ok("off");
    config.spool.dir = dir.path().join("spool");
    let ingest = TcpListener::bind("127.0.0.1:0").await.expect("bind ingest");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let addr = ingest.local_addr().expect("ingest address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(scrubgate::run(
        config,
        ingest,
        admin,
        prometheus::Registry::new(),
        async move {
            let _ = stopped.await;
        },
    ));
    // Wait until it accepts connections (the project loads before serving).
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (addr, stop, dir)
}

/// A temporary directory holding `projects/<PROJECT>.json`; returns it and the projects
/// directory.
fn project_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let projects = dir.path().join("projects");
    std::fs::create_dir_all(&projects).expect("projects dir");
    std::fs::write(projects.join(format!("{PROJECT}.json")), project_json()).expect("project");
    (dir, projects)
}

/// The `scrubgate` binary as its own process (as it is deployed), in front of `upstream`,
/// with the same project and limits as [`start_proxy`]. The child is killed on drop.
fn start_proxy_process(upstream: SocketAddr) -> (SocketAddr, ProxyProcess, tempfile::TempDir) {
    let (dir, projects) = project_dir();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
    };
    let (addr, admin) = (free_port(), free_port());
    let config = dir.path().join("scrubgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[server]\nlisten = \"{addr}\"\nmax_connections = 4096\n\
             max_in_flight = 4096\n[admin]\nlisten = \"{admin}\"\n[upstream]\n\
             url = \"http://{upstream}\"\n[projects]\ndir = {projects:?}\n[log]\nlevel = \"warn\"\n",
            data = dir.path().join("data").display().to_string(),
            projects = projects.display().to_string(),
        ),
    )
    .expect("config");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_scrubgate"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start scrubgate");
    let child = ProxyProcess(child);
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return (addr, child, dir);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("scrubgate did not start listening on {addr}");
}

/// Kills the proxy process when the benchmark ends.
struct ProxyProcess(std::process::Child);

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request body to send: gzip bytes and the uncompressed size.
#[derive(Clone)]
struct Payload {
    gzip: Bytes,
    raw_len: usize,
}

fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    Bytes::from(encoder.finish().expect("gzip"))
}

/// Every corpus event, one per line.
fn corpus() -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/events.jsonl");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// The corpus event whose size is closest to `target` bytes.
fn event_near(events: &[Vec<u8>], target: usize) -> Payload {
    let event = events
        .iter()
        .min_by_key(|e| e.len().abs_diff(target))
        .expect("corpus is not empty");
    Payload {
        gzip: gzip(event),
        raw_len: event.len(),
    }
}

/// What one run measured.
struct RunResult {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    raw_bytes: u64,
}

impl RunResult {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }
}

/// Drives `connections` keep-alive connections to `addr` for `duration`, cycling
/// `payloads`; with `rate` (total requests per second) each connection is paced.
async fn load(
    addr: SocketAddr,
    payloads: Arc<Vec<Payload>>,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
) -> RunResult {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let payloads = Arc::clone(&payloads);
        let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let (mut ok, mut failed, mut raw_bytes) = (0u64, 0u64, 0u64);
            let stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream.set_nodelay(true);
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let mut next = Instant::now()
                + interval
                    .unwrap_or_default()
                    .mul_f64(c as f64 / connections as f64);
            let mut i = c;
            while Instant::now() < deadline {
                if let Some(interval) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += interval;
                }
                let payload = &payloads[i % payloads.len()];
                i += 1;
                let request = Request::post(format!("http://{addr}/api/{PROJECT}/store/"))
                    .header("host", "scrubgate")
                    .header(
                        "x-sentry-auth",
                        format!("Sentry sentry_key={KEY}, sentry_version=7"),
                    )
                    .header("content-type", "application/json")
                    .header("content-encoding", "gzip")
                    .body(Full::new(payload.gzip.clone()))
                    .expect("request");
                let sent = Instant::now();
                if sender.ready().await.is_err() {
                    break;
                }
                match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status();
                        let _ = response.into_body().collect().await;
                        latencies.push(sent.elapsed().as_micros() as u64);
                        if status == StatusCode::OK {
                            ok += 1;
                            raw_bytes += payload.raw_len as u64;
                        } else {
                            failed += 1;
                        }
                    }
                    Err(_) => {
                        failed += 1;
                        break;
                    }
                }
            }
            (latencies, ok, failed, raw_bytes)
        }));
    }
    let mut result = RunResult {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
        raw_bytes: 0,
    };
    for task in tasks {
        let (latencies, ok, failed, raw) = task.await.expect("load task");
        result.latencies_us.extend(latencies);
        result.ok += ok;
        result.failed += failed;
        result.raw_bytes += raw;
    }
    result.elapsed = started.elapsed();
    result.latencies_us.sort_unstable();
    result
}

fn row(name: &str, target: &str, conns: usize, r: &RunResult) -> String {
    format!(
        "| {name} | {target} | {conns} | {:.0} | {:.2} | {:.2} | {} |",
        r.rps(),
        r.percentile_ms(0.50),
        r.percentile_ms(0.99),
        r.failed
    )
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 10.0 } else { 0.3 });
    let duration = Duration::from_secs_f64(secs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (upstream, stats) = null_upstream().await;
        // By default scrubgate runs inside this process, on the load generator's runtime;
        // `LOAD_PROXY=process` starts the `scrubgate` binary instead (as deployed). On a
        // machine with spare cores the latter is the realistic setup; on two shared cores
        // it mostly measures the OS time-slicing four busy threads (BENCHMARKS.md).
        let inline = std::env::var("LOAD_PROXY").as_deref() != Ok("process");
        let (proxy, stop, _dir, _process) = if inline {
            let (addr, stop, dir) = start_proxy(upstream).await;
            (addr, Some(stop), dir, None)
        } else {
            let (addr, process, dir) = start_proxy_process(upstream);
            (addr, None, dir, Some(process))
        };
        let events = corpus();
        let small = Arc::new(vec![event_near(&events, 4 * 1024)]);
        let large = Arc::new(vec![event_near(&events, 60 * 1024)]);
        let all: Arc<Vec<Payload>> = Arc::new(
            events
                .iter()
                .map(|e| Payload {
                    gzip: gzip(e),
                    raw_len: e.len(),
                })
                .collect(),
        );

        // Warm-up: connections, pools, caches.
        let _ = load(
            proxy,
            Arc::clone(&small),
            8,
            Duration::from_millis(200),
            None,
        )
        .await;

        println!("## scrubgate load benchmark ({secs} s per run)\n");
        println!(
            "small event: {} B raw, {} B gzip; large event: {} B raw, {} B gzip\n",
            small[0].raw_len,
            small[0].gzip.len(),
            large[0].raw_len,
            large[0].gzip.len()
        );
        // `LOAD_ONLY=sustained` runs only (c), to compare variants of the proxy quickly.
        // `LOAD_ONLY=small` runs only the ~4 KB event through scrubgate (for profiling).
        let only = std::env::var("LOAD_ONLY").unwrap_or_default();
        if only == "small" {
            let through = load(proxy, Arc::clone(&small), 64, duration, None).await;
            println!("{}", row("(a) ~4 KB gzip", "scrubgate", 64, &through));
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
            return;
        }
        if only == "spool" {
            spool_scenario(proxy, &stats, Arc::clone(&all), duration).await;
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
            return;
        }
        let only_sustained = only == "sustained";
        if !only_sustained {
            println!("| payload | target | connections | req/s | p50 ms | p99 ms | failed |");
            println!("|---|---|---|---|---|---|---|");
            let conns = 64;
            let mut small_proxy_rps = 0.0;
            for (name, payload) in [("(a) ~4 KB gzip", &small), ("(b) ~60 KB gzip", &large)] {
                let through = load(proxy, Arc::clone(payload), conns, duration, None).await;
                let direct = load(upstream, Arc::clone(payload), conns, duration, None).await;
                if small_proxy_rps == 0.0 {
                    small_proxy_rps = through.rps();
                }
                println!("{}", row(name, "scrubgate", conns, &through));
                println!("{}", row(name, "upstream direct", conns, &direct));
            }

            // Latency at half of the proxy's maximum throughput.
            let rate = (small_proxy_rps / 2.0).max(1.0);
            let through = load(proxy, Arc::clone(&small), conns, duration, Some(rate)).await;
            let direct = load(upstream, Arc::clone(&small), conns, duration, Some(rate)).await;
            println!(
                "{}",
                row(
                    &format!("~4 KB paced at {rate:.0}/s"),
                    "scrubgate",
                    conns,
                    &through
                )
            );
            println!(
                "{}",
                row(
                    &format!("~4 KB paced at {rate:.0}/s"),
                    "upstream direct",
                    conns,
                    &direct
                )
            );
            println!(
                "\nadded latency at half the maximum throughput: p50 {:.2} ms, p99 {:.2} ms",
                through.percentile_ms(0.50) - direct.percentile_ms(0.50),
                through.percentile_ms(0.99) - direct.percentile_ms(0.99)
            );
        }

        // Sustained corpus run.
        let before_bytes = stats.bytes.load(Ordering::Relaxed);
        let before_requests = stats.requests.load(Ordering::Relaxed);
        let sustained = load(proxy, Arc::clone(&all), 16, duration, None).await;
        let wire = stats.bytes.load(Ordering::Relaxed) - before_bytes;
        let delivered = stats.requests.load(Ordering::Relaxed) - before_requests;
        let seconds = sustained.elapsed.as_secs_f64();
        println!("\n| (c) sustained corpus, gzip, 16 connections | value |");
        println!("|---|---|");
        println!(
            "| events delivered upstream per second | {:.0} |",
            delivered as f64 / seconds
        );
        println!(
            "| MB/s of events (uncompressed input) delivered | {:.1} |",
            sustained.raw_bytes as f64 / seconds / 1e6
        );
        println!(
            "| MB/s on the upstream wire (gzip) | {:.1} |",
            wire as f64 / seconds / 1e6
        );
        println!(
            "| latency p50 / p99 ms | {:.2} / {:.2} |",
            sustained.percentile_ms(0.50),
            sustained.percentile_ms(0.99)
        );
        println!("| failed | {} |", sustained.failed);
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    });
}

/// `LOAD_ONLY=spool`: the corpus sent while the upstream answers 503 (everything is
/// spooled: the spool's write rate through the proxy, fsync included), then the
/// upstream back up and the time until the drainer has delivered it all.
async fn spool_scenario(
    proxy: SocketAddr,
    stats: &UpstreamStats,
    all: Arc<Vec<Payload>>,
    duration: Duration,
) {
    stats.down.store(true, Ordering::Relaxed);
    let before = stats.requests.load(Ordering::Relaxed);
    let outage = load(proxy, all, 16, duration, None).await;
    let seconds = outage.elapsed.as_secs_f64();
    println!("| upstream down: corpus, gzip, 16 connections | value |");
    println!("|---|---|");
    println!(
        "| events spooled per second (answered 200) | {:.0} |",
        outage.ok as f64 / seconds
    );
    println!(
        "| MB/s of events spooled (scrubbed, uncompressed) | {:.1} |",
        outage.raw_bytes as f64 / seconds / 1e6
    );
    println!(
        "| latency p50 / p99 ms | {:.2} / {:.2} |",
        outage.percentile_ms(0.50),
        outage.percentile_ms(0.99)
    );
    println!("| failed | {} |", outage.failed);

    stats.down.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let deadline = back + Duration::from_secs(600);
    let delivered = || stats.requests.load(Ordering::Relaxed) - before;
    while delivered() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = Instant::now();
    while delivered() < outage.ok && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = first.elapsed().as_secs_f64();
    println!(
        "| upstream back: first replay after (the drainer's next probe) | {:.2} s |",
        (first - back).as_secs_f64()
    );
    println!(
        "| drain: {} of {} delivered in {seconds:.2} s | {:.0} events/s |",
        delivered(),
        outage.ok,
        delivered() as f64 / seconds.max(1e-3)
    );
}
