//! Logs: one line per request at debug, and never event content or secrets.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

use crate::support::*;

/// A log sink writing into shared memory.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// A current-thread runtime: every task of the server runs on this thread, so the
// thread-local subscriber sees all of their events.
#[tokio::test(flavor = "current_thread")]
async fn logs_never_contain_event_content_or_secrets() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buffer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::spawn(&upstream).await;
    let auth = format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_secret={SECRET}");
    let store = format!("/api/{PROJECT}/store/");
    // Success, a scrub failure that quotes the canary, and an upstream failure.
    let ok = proxy
        .post(&store)
        .header("x-sentry-auth", &auth)
        .body(canary_event().to_string())
        .send()
        .await;
    assert_eq!(ok.status, 200);
    let bad = proxy
        .post(&store)
        .header("x-sentry-auth", &auth)
        .body(format!("{{\"message\": \"{CANARY_EMAIL}\", oops"))
        .send()
        .await;
    assert_eq!(bad.status, 400);
    let bad_auth = proxy
        .post(&store)
        .header(
            "x-sentry-auth",
            &format!("Sentry sentry_key={SECRET}x, sentry_version=7"),
        )
        .body(canary_event().to_string())
        .send()
        .await;
    assert_eq!(bad_auth.status, 400);
    upstream.set_mode(Mode::Down);
    let down = proxy
        .post(&store)
        .header("x-sentry-auth", &auth)
        .body(canary_event().to_string())
        .send()
        .await;
    assert_eq!(down.status, 200, "spooled: {}", down.text());
    proxy.shutdown().await;

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    // The capture works: one debug line per request, a warning for the upstream failure.
    assert!(
        logs.matches("endpoint=\"store\"").count() >= 4,
        "request lines missing:\n{logs}"
    );
    assert!(
        logs.contains("WARN"),
        "no warning for the upstream failure:\n{logs}"
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
