//! The fault suite: faults under load, reconciled by event id between what clients were
//! told and what the upstream accepted. Short by default; `FAULT_SECS` lengthens each
//! run (`scripts/fault-suite.sh` runs them long, in release mode, and prints figures).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

/// Seconds each fault run lasts (`FAULT_SECS`, default 3).
fn fault_secs() -> f64 {
    std::env::var("FAULT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0)
}

/// How many times the upstream accepted (answered 2xx) each event id.
fn accepted_by_upstream(upstream: &RecordingUpstream) -> HashMap<String, usize> {
    let mut accepted = HashMap::new();
    for request in upstream.requests() {
        assert_no_canary(&request.text(), "upstream in the fault suite");
        if !request.status.is_some_and(|s| s.is_success()) {
            continue;
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let id = body["event_id"].as_str().unwrap().to_owned();
        *accepted.entry(id).or_default() += 1;
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failing_every_way_under_load_loses_and_duplicates_nothing() {
    let _exclusive = exclusive_load().await;
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.upstream.timeout = Duration::from_secs(1))
        .spawn()
        .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // 8 clients, each at most 200 events/s: load, but a bounded number to reconcile.
    let sender = tokio::spawn(send_events_paced(
        proxy.addr.to_string(),
        8,
        0,
        stopped,
        Some(Duration::from_millis(5)),
    ));
    let modes = [
        Mode::Normal,
        Mode::Down,
        Mode::Status(StatusCode::INTERNAL_SERVER_ERROR),
        Mode::Normal,
        Mode::Status(StatusCode::BAD_GATEWAY),
        Mode::RateLimited {
            retry_after: "1",
            limits: "1:error:organization",
        },
        Mode::Delay(Duration::from_millis(50)),
        Mode::Down,
    ];
    let deadline = Instant::now() + Duration::from_secs_f64(fault_secs());
    for mode in modes.iter().cycle() {
        if Instant::now() >= deadline {
            break;
        }
        upstream.set_mode(mode.clone());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = stop.send(true);
    let (acked, refused) = sender.await.unwrap();
    upstream.set_mode(Mode::Normal);

    // Everything acknowledged arrives once the spool has drained.
    let drained = eventually(Duration::from_secs(600), || async {
        upstream.accepted_count() >= acked.len()
    })
    .await;
    let emptied = eventually(Duration::from_secs(60), || async {
        let metrics = proxy.scrape_metrics().await;
        metric_value(&metrics, "scrubgate_spool_entries") == Some(0.0)
    })
    .await;
    assert!(emptied, "the spool did not empty");
    let accepted = accepted_by_upstream(&upstream);
    let missing = acked
        .iter()
        .filter(|id| !accepted.contains_key(*id))
        .count();
    assert!(
        drained,
        "{missing} of {} acknowledged events lost",
        acked.len()
    );
    let duplicated = acked.iter().filter(|id| accepted[*id] > 1).count();
    assert_eq!(duplicated, 0, "events accepted twice by the upstream");
    let unacknowledged = accepted.keys().filter(|id| !acked.contains(*id)).count();
    assert_eq!(unacknowledged, 0, "delivered but the client was refused");
    let metrics = proxy.scrape_metrics().await;
    let spooled = metric_value(
        &metrics,
        "scrubgate_items_total{item_type=\"event\",outcome=\"spooled\"}",
    )
    .unwrap_or(0.0);
    assert!(spooled > 0.0, "the run never spooled: {metrics}");
    eprintln!(
        "fault: flapping upstream: {} acknowledged ({spooled} via the spool), {refused} refused \
         (429 relayed), 0 lost, 0 duplicated",
        acked.len()
    );
}

/// A connection to `addr` from the loopback address `source` (127.0.0.x), so that the
/// per-IP cap counts it apart.
///
/// Closed with a reset (linger 0), leaving no TIME_WAIT behind: tens of thousands of
/// them on one source address exhaust its ephemeral ports, and then `bind` (a blocking
/// call, on this test's runtime) scans the whole range each time, stalling every task
/// of the test, the well-behaved client's included, for seconds.
async fn connect_from(source: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.set_zero_linger()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(addr).await
}

/// One request on a fresh connection from `source`: its status, or which step failed
/// and why; and how long it took.
async fn post_from(
    source: &str,
    addr: SocketAddr,
    path: &str,
    encoding: &str,
    body: Bytes,
) -> (Result<StatusCode, String>, Duration) {
    let started = Instant::now();
    let outcome = async {
        let stream = connect_from(source, addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let connected = started.elapsed();
        if connected > Duration::from_secs(1) {
            eprintln!("fault: slow connect from {source}: {connected:?}");
        }
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection);
        let request = http::Request::post(format!("http://{addr}{path}"))
            .header("x-sentry-auth", auth_header())
            .header("content-encoding", encoding)
            .body(Full::new(body))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request after {:?}: {e:?}", started.elapsed()))?;
        let status = response.status();
        let _ = response.into_body().collect().await;
        Ok(status)
    }
    .await;
    (outcome, started.elapsed())
}

/// The process's peak resident memory (`VmHWM`), bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_floods_and_silent_connections_leave_good_requests_served() {
    let _exclusive = exclusive_load().await;
    const BUDGET: u64 = 256 << 20;
    let upstream = RecordingUpstream::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    std::fs::create_dir_all(&projects).unwrap();
    std::fs::write(projects.join("42.json"), default_project()).unwrap();
    let config = dir.path().join("scrubgate.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [upstream]\nurl = {:?}\n[projects]\ndir = {:?}\n[limits]\nmax_body_bytes_in_flight = {BUDGET}\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n",
            dir.path().join("data").display().to_string(),
            upstream.url(),
            projects.display().to_string()
        ),
    )
    .unwrap();
    let binary = Binary::start(&config).await;
    let addr: SocketAddr = binary.addr.parse().unwrap();
    let pid = binary.child.id();
    let baseline = peak_rss(pid);
    // The bombs, made before the clock starts: 200 MiB and 16 MiB of zeros.
    let zstd_bomb = Bytes::from(zstd(&vec![0u8; 200 << 20]));
    let brotli_bomb = Bytes::from(brotli(&vec![0u8; 16 << 20]));
    let deadline = Instant::now() + Duration::from_secs_f64(fault_secs());

    // 1,100 silent connections from one address (the per-IP cap refuses most).
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..1_100 {
            if let Ok(stream) = connect_from("127.0.0.1", addr).await {
                held.push(stream);
            }
        }
        held
    });
    // HTTP/2 prefaces (and an empty SETTINGS) from another, opened as fast as they go.
    let flood = tokio::spawn(async move {
        let mut held = Vec::new();
        while Instant::now() < deadline {
            if let Ok(mut stream) = connect_from("127.0.0.3", addr).await {
                let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
                let _ = stream.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
                held.push(stream);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        held.len()
    });
    // 32 concurrent zstd envelope bombs, again and again.
    let mut bombers = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let bomb = zstd_bomb.clone();
        bombers.spawn(async move {
            let mut sent = 0;
            while Instant::now() < deadline {
                let path = format!("/api/{PROJECT}/envelope/");
                let (status, _) = post_from("127.0.0.4", addr, &path, "zstd", bomb.clone()).await;
                assert_ne!(status.ok(), Some(StatusCode::OK), "a bomb was accepted");
                sent += 1;
            }
            sent
        });
    }
    // Two brotli bombs a second.
    let brotli_task = tokio::spawn(async move {
        let mut sent = 0;
        while Instant::now() < deadline {
            let bomb = brotli_bomb.clone();
            tokio::spawn(async move {
                let path = format!("/api/{PROJECT}/store/");
                post_from("127.0.0.5", addr, &path, "br", bomb).await
            });
            sent += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        sent
    });

    // Meanwhile a well-behaved SDK sends events, one connection each.
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let event = Bytes::from(canary_event().to_string());
    while Instant::now() < deadline || latencies.len() < 20 {
        let path = format!("/api/{PROJECT}/store/");
        let sent = Instant::now();
        let (status, took) = post_from("127.0.0.2", addr, &path, "identity", event.clone()).await;
        if status.as_ref().ok() != Some(&StatusCode::OK) {
            let before_deadline = deadline.saturating_duration_since(sent);
            failures.push((status, latencies.len(), took, before_deadline));
        }
        latencies.push(took);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut bombs = 0;
    while let Some(sent) = bombers.join_next().await {
        bombs += sent.unwrap();
    }
    let brotli_bombs = brotli_task.await.unwrap();
    let prefaces = flood.await.unwrap();
    let silent_held = silent.await.unwrap().len();
    let peak = peak_rss(pid);
    let (clean, logs) = binary.signal_and_wait("-TERM").await;
    assert!(clean, "{logs}");

    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "fault: attacks: {silent_held} silent connections, {prefaces} HTTP/2 prefaces, {bombs} \
         zstd envelope bombs (32 at a time), {brotli_bombs} brotli bombs (2/s); good requests: \
         {} sent, {} failed, p50 {p50:?}, p99 {p99:?}, max {max:?}; peak RSS {} MiB (baseline {} MiB, \
         budget {} MiB)",
        latencies.len(),
        failures.len(),
        peak >> 20,
        baseline >> 20,
        BUDGET >> 20
    );
    if !failures.is_empty() {
        // What scrubgate logged above info, to tell why.
        for line in logs.lines().filter(|l| !l.contains("\"level\":\"INFO\"")) {
            eprintln!("scrubgate: {line}");
        }
    }
    assert!(failures.is_empty(), "good requests failed: {failures:?}");
    assert!(p99 < Duration::from_secs(1), "good requests' p99 {p99:?}");
    assert!(
        peak < baseline + BUDGET,
        "peak RSS {} MiB past the budget",
        peak >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_under_load_is_spooled_and_drained_once_the_upstream_is_back() {
    let _exclusive = exclusive_load().await;
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let proxy = TestProxy::spawn(&upstream).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // SDK-like traffic: 4 clients, each at most 50 events/s (a long outage at full load
    // fills the 1 GiB spool; BENCHMARKS.md has that case).
    let sender = tokio::spawn(send_events_paced(
        proxy.addr.to_string(),
        4,
        0,
        stopped,
        Some(Duration::from_millis(20)),
    ));
    tokio::time::sleep(Duration::from_secs_f64(fault_secs())).await;
    let _ = stop.send(true);
    let (acked, refused) = sender.await.unwrap();
    assert_eq!(refused, 0, "the spool took every request");
    assert!(upstream.requests().is_empty());

    upstream.set_mode(Mode::Normal);
    let back = Instant::now();
    let drained = eventually(Duration::from_secs(600), || async {
        upstream.accepted_count() >= acked.len()
    })
    .await;
    let took = back.elapsed();
    let accepted = accepted_by_upstream(&upstream);
    let missing = acked
        .iter()
        .filter(|id| !accepted.contains_key(*id))
        .count();
    assert!(drained && missing == 0, "{missing} of {} lost", acked.len());
    assert!(acked.iter().all(|id| accepted[id] == 1), "duplicates");
    eprintln!(
        "fault: {:.0} s outage: {} events acknowledged and spooled, all delivered once \
         {took:?} after the upstream came back",
        fault_secs(),
        acked.len()
    );
}

/// A blip at full load, as the fleet issue measured it: the direct forwarding rate, an
/// outage of `FAULT_SECS` with the same load spooled, then the store's return. Prints
/// the events spooled, the time from the store's recovery to the first direct forward
/// (target under 2 s) and the drain rate against the direct rate of the same run
/// (target at least 0.5). Every acknowledged event is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blip_at_full_load_recovers_at_full_speed() {
    let _exclusive = exclusive_load().await;
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let addr = proxy.addr.to_string();
    let secs = fault_secs();
    let forwarded = |metrics: &str| {
        metric_value(
            metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"forwarded\"}",
        )
        .unwrap_or(0.0)
    };

    // The direct rate: the same load, the store up.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let direct = tokio::spawn(send_events_paced(addr.clone(), 16, 0, stopped, None));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let _ = stop.send(true);
    let (direct_acked, refused) = direct.await.unwrap();
    assert_eq!(refused, 0);
    assert!(!direct_acked.is_empty());
    let direct_rate = direct_acked.len() as f64 / secs;

    // The outage, then the store's return under the same load.
    upstream.set_mode(Mode::Down);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(send_events_paced(
        addr.clone(),
        16,
        10_000_000,
        stopped,
        None,
    ));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let before = forwarded(&proxy.scrape_metrics().await);
    let spooled_by_then =
        metric_value(&proxy.scrape_metrics().await, "scrubgate_spool_entries").unwrap_or(0.0);
    upstream.set_mode(Mode::Normal);
    let back = Instant::now();
    let first_direct = eventually(Duration::from_secs(30), || async {
        forwarded(&proxy.scrape_metrics().await) > before
    })
    .await;
    let to_first_direct = back.elapsed();
    let _ = stop.send(true);
    let (acked, refused) = load.await.unwrap();
    assert_eq!(refused, 0, "the spool took every request");
    assert!(
        first_direct,
        "no request went straight to the store after its return"
    );

    // The drain, with the load stopped.
    let drain_start = Instant::now();
    let replayed_at_start = metric_value(
        &proxy.scrape_metrics().await,
        "scrubgate_spool_requests_total{event=\"replayed\"}",
    )
    .unwrap_or(0.0);
    let drained = eventually(Duration::from_secs(600), || async {
        metric_value(&proxy.scrape_metrics().await, "scrubgate_spool_entries") == Some(0.0)
    })
    .await;
    let drain_time = drain_start.elapsed().as_secs_f64().max(0.001);
    let replayed = metric_value(
        &proxy.scrape_metrics().await,
        "scrubgate_spool_requests_total{event=\"replayed\"}",
    )
    .unwrap_or(0.0)
        - replayed_at_start;
    assert!(drained, "the spool did not empty");

    let accepted = accepted_by_upstream(&upstream);
    let lost = acked
        .iter()
        .chain(&direct_acked)
        .filter(|id| !accepted.contains_key(*id))
        .count();
    assert_eq!(lost, 0, "acknowledged events lost");
    let drain_rate = replayed / drain_time;
    eprintln!(
        "fault: {secs:.0} s blip at full load: direct {direct_rate:.0} events/s; \
         {spooled_by_then:.0} spooled by the store's return; first direct forward \
         {to_first_direct:?} after it; then {replayed:.0} replayed in {drain_time:.2} s = \
         {drain_rate:.0} events/s, {:.2}x the direct rate",
        drain_rate / direct_rate
    );
    assert!(
        to_first_direct < Duration::from_secs(2),
        "first direct forward after {to_first_direct:?}"
    );
    if replayed >= 200.0 {
        // Only a backlog that takes a while to drain gives a rate worth comparing.
        assert!(
            drain_rate >= 0.5 * direct_rate,
            "drain {drain_rate:.0}/s against direct {direct_rate:.0}/s"
        );
    }
}
