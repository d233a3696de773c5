//! The durable spool: what the upstream cannot take is written to disk (scrubbed),
//! answered 200, and delivered once the upstream is back.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use crate::support::binary::binary_config;
use crate::support::upstream::{Mode, RecordingUpstream};
use crate::support::*;

/// How long the drainer may take to deliver after the upstream is back (its probe
/// interval is capped at 1 s; these tests stay well under the limit).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// How often each event id reached the upstream with a 2xx-able body (every recorded
/// request; the caller decides which answers count).
fn ids_received(upstream: &RecordingUpstream) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for request in upstream.requests() {
        assert_no_canary(&request.text(), "upstream after the spool");
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let id = body["event_id"].as_str().unwrap().to_owned();
        *ids.entry(id).or_default() += 1;
    }
    ids
}

/// Every file of the spool directory, concatenated (the database and its WAL).
fn spool_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for file in std::fs::read_dir(dir).unwrap() {
        bytes.extend(std::fs::read(file.unwrap().path()).unwrap());
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
async fn an_unreachable_upstream_spools_and_every_event_is_delivered_once_it_is_back() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let proxy = TestProxy::spawn(&upstream).await;

    let mut sent = Vec::new();
    for n in 0..5 {
        let (id, event) = event(n);
        let response = proxy.store(&event).await;
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(
            response.json()["id"],
            id.as_str(),
            "the SDK gets its event id"
        );
        sent.push(id);
    }
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"spooled\"}"
        ),
        Some(5.0)
    );
    assert_eq!(metric_value(&metrics, "scrubgate_spool_entries"), Some(5.0));
    assert_eq!(
        metric_value(&metrics, "scrubgate_upstream_state{state=\"up\"}"),
        Some(0.0)
    );
    assert_eq!(
        proxy.admin("/readyz").await.status,
        200,
        "ready while spooling"
    );
    assert!(upstream.requests().is_empty());

    upstream.set_mode(Mode::Normal);
    assert!(
        eventually(DRAIN_TIMEOUT, || async { upstream.requests().len() >= 5 }).await,
        "the spool was not drained"
    );
    let received = ids_received(&upstream);
    for id in &sent {
        assert_eq!(received.get(id), Some(&1), "{id} delivered exactly once");
    }
    assert_eq!(received.len(), sent.len());
    assert!(
        eventually(Duration::from_secs(5), || async {
            let metrics = proxy.scrape_metrics().await;
            metric_value(&metrics, "scrubgate_spool_entries") == Some(0.0)
                && metric_value(
                    &metrics,
                    "scrubgate_spool_requests_total{event=\"replayed\"}",
                ) == Some(5.0)
                && metric_value(&metrics, "scrubgate_upstream_state{state=\"up\"}") == Some(1.0)
        })
        .await,
        "{}",
        proxy.scrape_metrics().await
    );

    // Up again: the next request is delivered synchronously, with the store's answer.
    let (id, event) = event(99);
    let response = proxy.store(&event).await;
    assert_eq!(response.status, 200);
    assert_eq!(ids_received(&upstream).get(&id), Some(&1));
}

/// The drainer replays several entries at once (`spool.drain_concurrency`), and once
/// the store answers again new requests go straight to it within about a second.
#[tokio::test]
async fn the_spool_drains_concurrently_and_live_requests_return_to_the_store_quickly() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.spool.drain_concurrency = 8)
        .spawn()
        .await;
    let mut sent = Vec::new();
    for n in 0..40 {
        let (id, event) = event(n);
        assert_eq!(proxy.store(&event).await.status, 200);
        sent.push(id);
    }
    assert_eq!(sent.len(), 40);
    assert!(upstream.requests().is_empty());
    // Slow answers: one at a time, 40 entries would take 4 s.
    upstream.set_mode(Mode::Delay(Duration::from_millis(100)));
    let back = Instant::now();
    assert!(
        eventually(DRAIN_TIMEOUT, || async { upstream.accepted_count() >= 40 }).await,
        "the spool was not drained"
    );
    let received = ids_received(&upstream);
    for id in &sent {
        assert_eq!(received.get(id), Some(&1), "{id} delivered exactly once");
    }
    let concurrent = upstream.max_concurrent();
    assert!(
        (4..=8).contains(&concurrent),
        "{concurrent} replayed at once (drain_concurrency = 8)"
    );
    // The breaker is closed again: the next request goes straight to the store.
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric_value(
                &proxy.scrape_metrics().await,
                "scrubgate_upstream_state{state=\"up\"}",
            ) == Some(1.0)
        })
        .await
    );
    let (id, event) = event(99);
    let before = upstream.requests().len();
    assert_eq!(proxy.store(&event).await.status, 200);
    assert_eq!(upstream.requests().len(), before + 1, "delivered directly");
    assert_eq!(ids_received(&upstream).get(&id), Some(&1));
    assert!(back.elapsed() < DRAIN_TIMEOUT);
}

/// The probe interval is capped: after a long outage (the backoff would have grown), a
/// store that is back gets live requests again within about a second.
#[tokio::test]
async fn after_a_long_outage_the_store_is_probed_at_least_every_second() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let proxy = TestProxy::spawn(&upstream).await;
    let (_, event0) = event(0);
    assert_eq!(proxy.store(&event0).await.status, 200);
    // Long enough for a doubling backoff to pass 2 s (250 ms, 500, 1 s, 2 s, ...).
    tokio::time::sleep(Duration::from_secs(4)).await;
    upstream.set_mode(Mode::Normal);
    let back = Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || async {
            metric_value(
                &proxy.scrape_metrics().await,
                "scrubgate_upstream_state{state=\"up\"}",
            ) == Some(1.0)
        })
        .await
    );
    let recovered = back.elapsed();
    assert!(
        recovered < Duration::from_millis(2500),
        "up again after {recovered:?}"
    );
}

#[tokio::test]
async fn the_stores_4xx_and_429_are_relayed_and_its_5xx_spooled() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;

    upstream.set_mode(Mode::Status(StatusCode::BAD_REQUEST));
    let response = proxy.store(&event(1).1).await;
    assert_eq!(response.status, 400, "a 4xx is the store's verdict");
    upstream.set_mode(Mode::RateLimited {
        retry_after: "17",
        limits: "17:error:organization",
    });
    let response = proxy.store(&event(2).1).await;
    assert_eq!(response.status, 429);
    assert_eq!(response.header("retry-after"), Some("17"));
    assert_eq!(
        response.header("x-sentry-rate-limits"),
        Some("17:error:organization")
    );
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(metric_value(&metrics, "scrubgate_spool_entries"), Some(0.0));

    upstream.set_mode(Mode::Status(StatusCode::INTERNAL_SERVER_ERROR));
    let (id, event) = event(3);
    let response = proxy.store(&event).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["id"], id.as_str());

    upstream.set_mode(Mode::Normal);
    assert!(
        eventually(DRAIN_TIMEOUT, || async {
            ids_received(&upstream).get(&id) == Some(&2)
        })
        .await,
        "the 500'd event is replayed: {:?}",
        ids_received(&upstream)
    );
    // The upstream records the request before the drainer has its answer.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let metrics = proxy.scrape_metrics().await;
            metric_value(
                &metrics,
                "scrubgate_spool_requests_total{event=\"replayed\"}",
            ) == Some(1.0)
        })
        .await
    );
}

#[tokio::test]
async fn while_the_upstream_is_down_requests_skip_it() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Stall);
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(|c| c.upstream.timeout = Duration::from_millis(500))
        .spawn()
        .await;

    let started = Instant::now();
    let response = proxy.store(&event(0).1).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited for the timeout"
    );

    // The breaker is open: the next requests are spooled without waiting for the store.
    let started = Instant::now();
    for n in 1..=20 {
        let response = proxy.store(&event(n).1).await;
        assert_eq!(response.status, 200, "{}", response.text());
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "20 requests took {:?}: they waited for the upstream",
        started.elapsed()
    );

    upstream.set_mode(Mode::Normal);
    assert!(
        eventually(DRAIN_TIMEOUT, || async {
            ids_received(&upstream).len() == 21
        })
        .await,
        "{:?}",
        ids_received(&upstream)
    );
    // At least once: a request that timed out after the store took it is sent again,
    // so the stalled ones appear twice; the rest exactly once.
    let received = ids_received(&upstream);
    let once = received.values().filter(|n| **n == 1).count();
    assert!(once >= 19, "{received:?}");
}

#[tokio::test]
async fn a_full_spool_refuses_with_a_retry_after_no_longer_than_the_next_probe() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let size = serde_json::to_vec(&canary_event()).unwrap().len();
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        // Room for one scrubbed event (its `_meta` and headers make it larger than
        // what was sent), not two.
        .configure(move |c| c.spool.max_bytes = size * 3 / 2 + 1024)
        .spawn()
        .await;

    let first = proxy.store(&event(1).1).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = proxy.store(&event(2).1).await;
    assert_eq!(second.status, 503, "{}", second.text());
    assert_eq!(
        second.json()["detail"],
        "upstream unavailable and the spool is full, retry later"
    );
    let retry_after: u64 = second.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        proxy.admin("/readyz").await.status,
        503,
        "not ready when full"
    );
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_total{item_type=\"event\",outcome=\"spool_full\"}"
        ),
        Some(1.0)
    );

    upstream.set_mode(Mode::Normal);
    assert!(
        eventually(DRAIN_TIMEOUT, || async {
            proxy.admin("/readyz").await.status == 200
        })
        .await,
        "ready again once drained"
    );
    assert_eq!(ids_received(&upstream).len(), 1);
}

#[tokio::test]
async fn spooled_requests_survive_a_restart_and_nothing_unscrubbed_is_on_disk() {
    let spool_dir = tempfile::tempdir().unwrap();
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let dir = spool_dir.path().to_owned();
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(move |c| c.spool.dir = dir)
        .spawn()
        .await;
    let mut sent = Vec::new();
    // Personal data and a secret in every event, and the secret in the auth header too.
    let auth = format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_secret={SECRET}");
    for n in 0..3 {
        let (id, mut event) = event(n);
        plant_canaries(&mut event);
        event["extra"]["password"] = serde_json::json!(SECRET);
        let body = event.to_string();
        assert!(body.contains(CANARY_EMAIL) && body.contains(CANARY_IP) && body.contains(SECRET));
        let response = proxy
            .post(&format!("/api/{PROJECT}/store/"))
            .header("x-sentry-auth", &auth)
            .body(body)
            .send()
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        sent.push(id);
    }
    assert_eq!(sent.len(), 3);
    proxy.shutdown().await;

    let on_disk = spool_bytes(spool_dir.path());
    assert!(
        contains(&on_disk, "checkout failed"),
        "the events are on disk"
    );
    assert!(
        !contains(&on_disk, CANARY_EMAIL),
        "an email reached the disk"
    );
    assert!(!contains(&on_disk, CANARY_IP), "an IP reached the disk");
    assert!(!contains(&on_disk, SECRET), "a secret reached the disk");

    upstream.set_mode(Mode::Normal);
    let dir = spool_dir.path().to_owned();
    let _proxy = TestProxy::builder(&upstream)
        .project(PROJECT, default_project())
        .configure(move |c| c.spool.dir = dir)
        .spawn()
        .await;
    assert!(
        eventually(DRAIN_TIMEOUT, || async { upstream.requests().len() >= 3 }).await,
        "the restarted proxy did not drain the spool"
    );
    let received = ids_received(&upstream);
    for id in &sent {
        assert_eq!(received.get(id), Some(&1), "{id}");
    }
}

#[tokio::test]
async fn envelopes_are_spooled_with_their_path_and_headers() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Status(StatusCode::BAD_GATEWAY));
    let proxy = TestProxy::spawn(&upstream).await;
    let (id, event) = event(7);
    let body = build_envelope(
        &serde_json::json!({ "event_id": id }),
        &[(
            serde_json::json!({ "type": "event" }),
            serde_json::to_vec(&event).unwrap(),
        )],
    );
    let response = proxy.envelope(body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["id"], id.as_str());

    upstream.set_mode(Mode::Normal);
    assert!(
        eventually(DRAIN_TIMEOUT, || async { upstream.requests().len() >= 2 }).await,
        "not replayed"
    );
    let replayed = upstream.requests().pop().unwrap();
    assert_eq!(replayed.path_and_query, format!("/api/{PROJECT}/envelope/"));
    assert_eq!(
        replayed.header("content-type"),
        Some("application/x-sentry-envelope")
    );
    let auth = replayed.header("x-sentry-auth").unwrap();
    assert!(auth.contains(KEY) && !auth.contains(SECRET), "{auth}");
    let (header, items) = parse_envelope(&replayed.body);
    assert_eq!(header["event_id"], id.as_str());
    assert_no_canary(&items[0].json().to_string(), "replayed envelope");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_under_load_loses_no_acknowledged_event() {
    let _exclusive = exclusive_load().await;
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let dir = tempfile::tempdir().unwrap();
    let config = binary_config(dir.path(), &upstream.url(), "info");

    // `FAULT_KILLS` (default 3, at least 1): how many times the process is killed.
    let kills: usize = std::env::var("FAULT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut acked = Vec::new();
    for round in 0..kills {
        let binary = Binary::start(&config).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let sender = tokio::spawn(send_events_until(
            binary.addr.clone(),
            4,
            round * 100_000_000,
            stopped,
        ));
        // Kill while the clients are mid-request.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (_, logs) = binary.signal_and_wait("-KILL").await;
        let _ = stop.send(true);
        let (round_acked, refused) = sender.await.unwrap();
        assert_eq!(refused, 0, "the spool took every request");
        assert!(!round_acked.is_empty(), "nothing was acknowledged:\n{logs}");
        acked.extend(round_acked);
    }
    assert!(upstream.requests().is_empty());
    eprintln!(
        "fault: {} events acknowledged across {kills} SIGKILLs",
        acked.len()
    );

    upstream.set_mode(Mode::Normal);
    let binary = Binary::start(&config).await;
    let all_there = eventually(Duration::from_secs(60), || async {
        let received = ids_received(&upstream);
        acked.iter().all(|id| received.contains_key(id))
    })
    .await;
    let received = ids_received(&upstream);
    let missing = acked
        .iter()
        .filter(|id| !received.contains_key(*id))
        .count();
    assert!(
        all_there,
        "{missing} of {} acknowledged events never arrived",
        acked.len()
    );
    // The upstream was down throughout: nothing was delivered twice.
    for id in &acked {
        assert_eq!(received[id], 1, "{id}");
    }
    eprintln!("fault: after restart, all {} delivered once", acked.len());
    let (clean, _) = binary.signal_and_wait("-TERM").await;
    assert!(clean);
}

#[tokio::test]
async fn a_rate_limited_category_waits_while_the_others_are_replayed() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let proxy = TestProxy::spawn(&upstream).await;
    // An error event (category "error") and an envelope of spans (category "span").
    let (error_id, event) = event(1);
    assert_eq!(proxy.store(&event).await.status, 200);
    let spans = build_envelope(
        &serde_json::json!({}),
        &[(
            serde_json::json!({"type": "span"}),
            serde_json::to_vec(&serde_json::json!({
                "span_id": "bd429c44b67a3eb1", "trace_id": "5b8efff798038103d269b633813fc60c",
                "start_timestamp": 1.0, "timestamp": 2.0, "op": "db"
            }))
            .unwrap(),
        )],
    );
    assert_eq!(proxy.envelope(spans).await.status, 200);

    upstream.set_mode(Mode::RateLimitedOn {
        path: "/store/",
        limits: "60:error:organization",
    });
    assert!(
        eventually(DRAIN_TIMEOUT, || async {
            upstream
                .requests()
                .iter()
                .any(|r| r.path_and_query.contains("/envelope/"))
        })
        .await,
        "the span envelope was held back by the error limit"
    );
    // The error event was tried once, got 429 for 60 s, and stays spooled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tried: Vec<_> = upstream
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query.contains("/store/"))
        .collect();
    assert_eq!(tried.len(), 1, "retried within its rate limit");
    let body: Value = serde_json::from_slice(&tried[0].body).unwrap();
    assert_eq!(body["event_id"], error_id.as_str());
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(metric_value(&metrics, "scrubgate_spool_entries"), Some(1.0));
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_spool_requests_total{event=\"replayed\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_entry_the_upstream_answers_5xx_is_held_back_while_the_rest_drains() {
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let proxy = TestProxy::spawn(&upstream).await;
    // The one the store cannot take is at the head of the spool.
    let (poison, event0) = event(1);
    assert_eq!(proxy.store(&event0).await.status, 200);
    let mut others = Vec::new();
    for n in 2..6 {
        let (id, event) = event(n);
        assert_eq!(proxy.store(&event).await.status, 200);
        others.push(id);
    }

    upstream.set_mode(Mode::StatusFor {
        event_id: poison.clone(),
        status: StatusCode::INTERNAL_SERVER_ERROR,
    });
    let delivered = |upstream: &RecordingUpstream| -> HashMap<String, usize> {
        let mut ids = HashMap::new();
        for request in upstream.requests() {
            if request.status == Some(StatusCode::OK) {
                let body: Value = serde_json::from_slice(&request.body).unwrap();
                *ids.entry(body["event_id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        ids
    };
    assert!(
        eventually(DRAIN_TIMEOUT, || async {
            delivered(&upstream).len() == others.len()
        })
        .await,
        "the entries behind the failing one were not delivered: {:?}",
        delivered(&upstream)
    );
    let received = delivered(&upstream);
    for id in &others {
        assert_eq!(received.get(id), Some(&1), "{id} delivered once");
    }
    // The upstream records a request before the drainer has its answer: wait for it.
    assert!(
        eventually(Duration::from_secs(5), || async {
            let metrics = proxy.scrape_metrics().await;
            // The failing entry stays spooled, held back, and its 5xx did not mark the
            // upstream down.
            metric_value(&metrics, "scrubgate_spool_entries") == Some(1.0)
                && metric_value(
                    &metrics,
                    "scrubgate_spool_requests_total{event=\"held_back\"}",
                )
                .is_some_and(|n| n >= 1.0)
                && metric_value(&metrics, "scrubgate_upstream_state{state=\"up\"}") == Some(1.0)
        })
        .await,
        "{}",
        proxy.scrape_metrics().await
    );

    // Retried on its own, and its retries do not mark the upstream down either.
    let tries = |upstream: &RecordingUpstream| {
        upstream
            .requests()
            .iter()
            .filter(|r| r.status == Some(StatusCode::INTERNAL_SERVER_ERROR))
            .count()
    };
    assert!(
        eventually(DRAIN_TIMEOUT, || async { tries(&upstream) >= 3 }).await,
        "the held entry was retried {} times",
        tries(&upstream)
    );
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(&metrics, "scrubgate_upstream_state{state=\"up\"}"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        delivered(&upstream).len(),
        others.len(),
        "nothing sent twice"
    );

    // Once the store takes it, it is delivered on its own retry.
    upstream.set_mode(Mode::Normal);
    assert!(
        eventually(DRAIN_TIMEOUT, || async {
            delivered(&upstream).contains_key(&poison)
        })
        .await,
        "the held entry was never retried"
    );
    assert_eq!(delivered(&upstream).get(&poison), Some(&1));
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric_value(&proxy.scrape_metrics().await, "scrubgate_spool_entries") == Some(0.0)
        })
        .await
    );
}
