//! CORS for the ingest routes, as Relay does it (browser SDKs post cross-origin).
//!
//! Relay wraps its store routes in a `tower_http` `CorsLayer` allowing `POST` from any
//! origin, a fixed list of request headers, three exposed response headers and a one-hour
//! preflight cache. The same headers are produced here without the tower stack: a
//! preflight (`OPTIONS` with `Access-Control-Request-Method`) gets [`preflight`], every
//! other ingest answer gets [`apply`].

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, VARY,
};
use http::{HeaderMap, HeaderValue, Method};

/// Request headers a browser may send to an ingest route.
const ALLOWED_HEADERS: &str = "x-sentry-auth,x-requested-with,x-forwarded-for,origin,referer,\
accept,content-type,authentication,authorization,content-encoding,transfer-encoding";

/// Response headers a browser SDK may read (rate limits and errors).
const EXPOSED_HEADERS: &str = "x-sentry-error,x-sentry-rate-limits,retry-after";

/// How long a browser may cache a preflight answer, in seconds.
const MAX_AGE_SECS: &str = "3600";

/// What `tower_http` adds to `Vary` so caches keep preflights apart.
const VARY_VALUE: &str = "origin, access-control-request-method, access-control-request-headers";

/// True when the request is a CORS preflight: `OPTIONS` carrying
/// `Access-Control-Request-Method`. A bare `OPTIONS` is not one (Relay answers 405).
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Writes the headers of a preflight answer (status 200, empty body).
pub fn preflight(headers: &mut HeaderMap) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE_SECS),
    );
    headers.append(VARY, HeaderValue::from_static(VARY_VALUE));
}

/// Writes the CORS headers of an ordinary ingest answer (success or error).
pub fn apply(headers: &mut HeaderMap) {
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED_HEADERS),
    );
    headers.append(VARY, HeaderValue::from_static(VARY_VALUE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_needs_request_method_header() {
        let mut headers = HeaderMap::new();
        assert!(!is_preflight(&Method::OPTIONS, &headers));
        headers.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        assert!(is_preflight(&Method::OPTIONS, &headers));
        assert!(!is_preflight(&Method::POST, &headers));
    }

    #[test]
    fn preflight_allows_sentry_auth_and_post_for_an_hour() {
        let mut headers = HeaderMap::new();
        preflight(&mut headers);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(headers[ACCESS_CONTROL_MAX_AGE], "3600");
        let allowed = headers[ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
        for name in [
            "x-sentry-auth",
            "content-encoding",
            "authorization",
            "content-type",
        ] {
            assert!(allowed.split(',').any(|h| h == name), "{name} not allowed");
        }
    }

    #[test]
    fn answers_expose_rate_limit_headers() {
        let mut headers = HeaderMap::new();
        apply(&mut headers);
        assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let exposed = headers[ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap();
        assert_eq!(exposed, "x-sentry-error,x-sentry-rate-limits,retry-after");
        assert!(!headers.contains_key(ACCESS_CONTROL_MAX_AGE));
    }
}
