use super::*;

fn request(id: &str) -> ForwardRequest {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-sentry-auth",
        HeaderValue::from_static("Sentry sentry_key=abc"),
    );
    ForwardRequest {
        path_and_query: "/api/42/store/".to_owned(),
        headers,
        body: Bytes::from(format!("{{\"event_id\":\"{id}\"}}")),
        content_type: HeaderValue::from_static("application/json"),
        event_id: Some(id.to_owned()),
    }
}

fn config(dir: &Path, max_bytes: usize) -> SpoolConfig {
    SpoolConfig {
        enabled: true,
        dir: dir.to_owned(),
        max_bytes,
        max_age: Duration::from_secs(3600),
        drain_concurrency: 4,
    }
}

#[tokio::test]
async fn appended_requests_survive_a_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(
            &config(dir.path(), 1 << 20),
            crate::metrics::Metrics::register(&prometheus::Registry::new()),
        )
        .unwrap();
        for id in ["a", "b", "c"] {
            spool.append(&request(id)).await.unwrap();
        }
        assert_eq!(spool.inner.store.stats().entries, 3);
    }
    // A new process (a new spool on the same directory) finds them all, oldest first.
    let spool = Spool::open(
        &config(dir.path(), 1 << 20),
        crate::metrics::Metrics::register(&prometheus::Registry::new()),
    )
    .unwrap();
    let stats = spool.inner.store.stats();
    assert_eq!(stats.entries, 3);
    assert!(stats.oldest_ms.is_some());
    let entries = spool.inner.store.oldest(10).unwrap();
    let ids: Vec<_> = entries
        .into_iter()
        .map(|(_, e)| e.into_request().event_id.unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let replayed = spool
        .inner
        .store
        .oldest(1)
        .unwrap()
        .remove(0)
        .1
        .into_request();
    assert_eq!(replayed.path_and_query, "/api/42/store/");
    assert_eq!(replayed.headers["x-sentry-auth"], "Sentry sentry_key=abc");
    assert_eq!(replayed.body, request("a").body);
}

#[tokio::test]
async fn a_full_spool_refuses_and_deletes_free_room() {
    let dir = tempfile::tempdir().unwrap();
    let one = Entry::from_request(&request("a")).size() as usize;
    let spool = Spool::open(
        &config(dir.path(), one * 2),
        crate::metrics::Metrics::register(&prometheus::Registry::new()),
    )
    .unwrap();
    spool.append(&request("a")).await.unwrap();
    spool.append(&request("b")).await.unwrap();
    assert!(matches!(
        spool.append(&request("c")).await,
        Err(SpoolError::Full)
    ));
    let (id, _) = spool.inner.store.oldest(1).unwrap().remove(0);
    spool.inner.store.delete_many(&[id]).unwrap();
    spool.append(&request("c")).await.unwrap();
    assert_eq!(spool.inner.store.stats().entries, 2);
}

#[tokio::test]
async fn concurrent_appends_are_committed_together_and_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        &config(dir.path(), 1 << 24),
        crate::metrics::Metrics::register(&prometheus::Registry::new()),
    )
    .unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            spool.append(&request(&format!("{i:032}"))).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(spool.inner.store.stats().entries, 200);
    assert_eq!(spool.inner.store.oldest(1000).unwrap().len(), 200);
}

#[tokio::test]
async fn old_entries_expire() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        &config(dir.path(), 1 << 20),
        crate::metrics::Metrics::register(&prometheus::Registry::new()),
    )
    .unwrap();
    spool.append(&request("a")).await.unwrap();
    assert_eq!(spool.inner.store.expire(now_ms() + 1000).unwrap(), 1);
    assert_eq!(
        spool.inner.store.stats(),
        store::Stats {
            bytes: 0,
            entries: 0,
            oldest_ms: None
        }
    );
}

#[test]
fn the_breaker_reports_its_state_and_next_probe() {
    let breaker = Breaker::default();
    assert_eq!(breaker.state(), UpstreamState::Up);
    assert!(!breaker.is_open());
    breaker
        .next_probe_ms
        .store(now_ms() + 2500, Ordering::Release);
    breaker.set(UpstreamState::Down);
    assert!(breaker.is_open());
    let secs = breaker.retry_after_secs();
    assert!((1..=3).contains(&secs), "{secs}");
}
