//! Logs: one line per request at debug, and never event content or secrets. The real
//! binary runs at `trace` level with JSON logs, and its whole stderr is searched (a
//! separate process: a thread-local subscriber in this test binary can miss events
//! whose callsites other tests running in parallel registered first).

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::binary::{binary_config, Binary};
use crate::support::*;

async fn post(addr: &str, auth: &str, body: String) -> u16 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(format!("http://{addr}/api/{PROJECT}/store/"))
        .header("x-sentry-auth", auth)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_event_content_or_secrets() {
    let upstream = RecordingUpstream::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let config = binary_config(dir.path(), &upstream.url(), "trace");
    let binary = Binary::start(&config).await;
    let addr = binary.addr.clone();
    let auth = format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_secret={SECRET}");
    // Success, a scrub failure that quotes the canary, a bad key, an upstream failure.
    assert_eq!(post(&addr, &auth, canary_event().to_string()).await, 200);
    assert_eq!(
        post(
            &addr,
            &auth,
            format!("{{\"message\": \"{CANARY_EMAIL}\", oops")
        )
        .await,
        400
    );
    let bad_auth = format!("Sentry sentry_key={SECRET}x, sentry_version=7");
    assert_eq!(
        post(&addr, &bad_auth, canary_event().to_string()).await,
        400
    );
    upstream.set_mode(Mode::Down);
    assert_eq!(
        post(&addr, &auth, canary_event().to_string()).await,
        200,
        "spooled"
    );
    let (_, logs) = binary.signal_and_wait("-TERM").await;

    // The capture works: one debug line per request, a warning for the upstream failure.
    assert!(
        logs.matches("\"endpoint\":\"store\"").count() >= 4,
        "request lines missing:\n{logs}"
    );
    assert!(
        logs.contains("\"level\":\"WARN\""),
        "no warning for the upstream failure:\n{logs}"
    );
    assert!(
        logs.contains("\"level\":\"TRACE\""),
        "trace level was not on:\n{logs}"
    );
    assert!(
        !logs.contains(CANARY_EMAIL),
        "event content logged:\n{logs}"
    );
    assert!(!logs.contains(CANARY_IP), "event content logged:\n{logs}");
    assert!(!logs.contains(SECRET), "secret logged:\n{logs}");
    assert!(
        !logs.contains("checkout failed"),
        "event message logged:\n{logs}"
    );
}
