//! The operator's console on the admin listener: a page (`/`, embedded, no CDN, no build
//! step) and its JSON API under `/api/`.
//!
//! - **Access.** With `admin.token` set, every `/api/` call needs `Authorization: Bearer
//!   <token>` (compared in constant time), whatever the address. Without a token, the
//!   console is served on a loopback listener only; on any other address the page and
//!   `/api/` answer 403 naming `admin.token`, and `/metrics`, `/healthz` and `/readyz`
//!   keep working. The page keeps the token in `sessionStorage` and sends the header: no
//!   cookies, so no cross-site request can use it.
//! - **Headers.** `Content-Security-Policy: default-src 'self'`, `X-Frame-Options: DENY`,
//!   `X-Content-Type-Options: nosniff`; API answers are `Cache-Control: no-store`.
//! - **Privacy.** Nothing submitted to the playground or the pseudonym lookup is stored
//!   or logged; bodies are bounded; scrubbing runs on the decode pool.
//!
//! The API (errors are `{"detail": ...}` or `{"errors": [{"path", "message"}]}`):
//! `GET /api/status`, `GET /api/projects`, `GET /api/projects/{id}`,
//! `GET /api/projects/{id}/samples`, `POST /api/scrub`, `POST /api/pseudonym`,
//! `POST /api/reload`.

mod api;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus::Registry;

use super::error::json_detail;
use super::AppState;

const INDEX_HTML: &str = include_str!("index.html");
const CONSOLE_JS: &str = include_str!("console.js");
const CONSOLE_CSS: &str = include_str!("console.css");

/// Why the console is off on a non-loopback listener without a token.
const OFF_WITHOUT_TOKEN: &str = "the console is off: this admin listener is not on a loopback address and admin.token (or SCRUBGATE_ADMIN_TOKEN) is not set";

/// The largest API request body.
const MAX_API_BODY: usize = 4 << 20;
/// Time to send an API request body.
const API_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Who may use the console.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// Anyone who reaches the (loopback) listener.
    Open,
    /// Callers that send this bearer token.
    Token(String),
    /// Nobody: a non-loopback listener without a token.
    Off,
}

/// The console: the page, and the API over the server's state.
pub struct Console {
    state: Arc<AppState>,
    registry: Arc<Registry>,
    access: Access,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret.
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

impl Console {
    /// The console of `state` on the admin listener bound to `listen`, reading metric
    /// values from `registry`. Logs a warning at start when it is off (a non-loopback
    /// listener without a token).
    pub fn new(
        state: Arc<AppState>,
        registry: Arc<Registry>,
        listen: std::net::SocketAddr,
    ) -> Console {
        let access = match &state.config.admin.token {
            Some(token) => Access::Token(token.clone()),
            None if listen.ip().is_loopback() => Access::Open,
            None => {
                tracing::warn!(
                    %listen,
                    "the console and its /api/ are off: set admin.token (or SCRUBGATE_ADMIN_TOKEN) to serve them on a non-loopback address; /metrics, /healthz and /readyz are served"
                );
                Access::Off
            }
        };
        Console {
            state,
            registry,
            access,
        }
    }

    /// Whether `path` is the console's (the page, its assets, or the API).
    pub fn serves(path: &str) -> bool {
        matches!(path, "/" | "/console.js" | "/console.css") || path.starts_with("/api/")
    }

    /// Answers one console request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let mut response = self.answer(req).await;
        let headers = response.headers_mut();
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'self'"),
        );
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if self.access == Access::Off {
            return json_detail(StatusCode::FORBIDDEN, OFF_WITHOUT_TOKEN);
        }
        let path = req.uri().path().to_owned();
        let asset = match path.as_str() {
            "/" => Some((INDEX_HTML, "text/html; charset=utf-8")),
            "/console.js" => Some((CONSOLE_JS, "text/javascript; charset=utf-8")),
            "/console.css" => Some((CONSOLE_CSS, "text/css; charset=utf-8")),
            _ => None,
        };
        if let Some((body, content_type)) = asset {
            // The page itself holds no data; every call it makes sends the token.
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return json_detail(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            return response;
        }
        if let Access::Token(token) = &self.access {
            let sent = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if !sent.is_some_and(|sent| constant_time_eq(sent.as_bytes(), token.as_bytes())) {
                let mut response = json_detail(
                    StatusCode::UNAUTHORIZED,
                    "missing or wrong admin token: send Authorization: Bearer <admin.token>",
                );
                response
                    .headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static("Bearer"));
                return response;
            }
        }
        api::route(self, req).await
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn console_paths() {
        for path in [
            "/",
            "/console.js",
            "/console.css",
            "/api/projects",
            "/api/scrub",
        ] {
            assert!(Console::serves(path), "{path}");
        }
        for path in ["/metrics", "/healthz", "/readyz", "/index.html"] {
            assert!(!Console::serves(path), "{path}");
        }
    }
}
