//! The admin listener's routes: `/metrics` (Prometheus text), `/healthz` (the process
//! answers) and `/readyz` (project configs loaded, not shutting down, and the spool not full).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use prometheus::Registry;

use super::error::json_detail;
use crate::metrics::{Metrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};
use crate::spool::Spool;

/// Readiness as `/readyz` reports it.
#[derive(Debug, Default)]
pub struct Readiness {
    loaded: AtomicBool,
    shutting_down: AtomicBool,
    spool: OnceLock<Spool>,
}

impl Readiness {
    /// Marks the project configs as loaded.
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// Marks the server as draining: `/readyz` answers 503 from now on, so load balancers
    /// stop sending traffic.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Makes readiness follow the spool too: not ready while the spool is full (the
    /// upstream is down and nothing more can be accepted).
    pub fn watch_spool(&self, spool: Spool) {
        let _ = self.spool.set(spool);
    }

    /// True when traffic should be sent here.
    pub fn is_ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
            && !self.shutting_down.load(Ordering::Acquire)
            && self.spool.get().is_none_or(Spool::accepts)
    }
}

/// Answers one admin request.
pub fn handle<B>(
    req: &Request<B>,
    registry: &Registry,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json_detail(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    match req.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(Metrics::render(registry))));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if readiness.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        _ => json_detail(StatusCode::NOT_FOUND, "not found"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request<()> {
        Request::builder().uri(path).body(()).unwrap()
    }

    #[test]
    fn readyz_follows_readiness() {
        let registry = Registry::new();
        let readiness = Readiness::default();
        assert_eq!(handle(&get("/readyz"), &registry, &readiness).status(), 503);
        readiness.set_loaded();
        assert_eq!(handle(&get("/readyz"), &registry, &readiness).status(), 200);
        readiness.set_shutting_down();
        assert_eq!(handle(&get("/readyz"), &registry, &readiness).status(), 503);
        assert_eq!(
            handle(&get("/healthz"), &registry, &readiness).status(),
            200
        );
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let registry = Registry::new();
        let _metrics = Metrics::register(&registry);
        let response = handle(&get("/metrics"), &registry, &Readiness::default());
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], METRICS_CONTENT_TYPE);
        assert_eq!(
            handle(&get("/nope"), &registry, &Readiness::default()).status(),
            404
        );
    }
}
