//! What goes upstream and what the SDK gets back: the upstream path of a security
//! report, the allow-listed headers, the outcome of the store's answer and the answers
//! relayed to the SDK.

use super::*;

/// Query parameters of the security endpoint that are forwarded (everything else in the
/// query, auth included, is not).
const SECURITY_QUERY_KEYS: [&str; 2] = ["sentry_release", "sentry_environment"];

/// The upstream path of a security report: the same path with only the release and
/// environment parameters of the query.
pub(super) fn security_path(
    project_id: u64,
    endpoint: IngestEndpoint,
    query: Option<&str>,
) -> String {
    let mut path = format!("/api/{project_id}/{}/", endpoint.segment());
    let mut separator = '?';
    for pair in query.unwrap_or("").split('&') {
        let key = pair.split('=').next().unwrap_or("");
        if SECURITY_QUERY_KEYS.contains(&key) {
            path.push(separator);
            path.push_str(pair);
            separator = '&';
        }
    }
    path
}

/// A new random `event_id`: a version 4 UUID as 32 lowercase hex digits.
pub(super) fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No system randomness: still unique enough per process for an id, never secret.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]])
        .map(char::from)
        .collect()
}

/// Headers sent upstream: an allow-list. `X-Sentry-Auth` rebuilt without the secret,
/// `User-Agent` and `Origin` kept, and `X-Forwarded-For` (incoming chain plus the peer)
/// only when the project does not scrub IP addresses. No other client-IP header
/// (`X-Real-IP`, `Forwarded`, `CF-Connecting-IP`, `True-Client-IP`) is ever forwarded.
pub(super) fn upstream_headers(
    incoming: &HeaderMap,
    auth: &Auth,
    peer: SocketAddr,
    scrubs_ip_addresses: bool,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(
        HeaderName::from_static("x-sentry-auth"),
        auth.to_upstream_header(),
    );
    for name in [header::USER_AGENT, header::ORIGIN] {
        if let Some(value) = incoming.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    if !scrubs_ip_addresses {
        let mut chain = String::new();
        for value in incoming.get_all(X_FORWARDED_FOR) {
            if let Ok(text) = value.to_str() {
                let text = text.trim();
                if !text.is_empty() {
                    chain.push_str(text);
                    chain.push_str(", ");
                }
            }
        }
        chain.push_str(&peer.ip().to_canonical().to_string());
        if let Ok(value) = HeaderValue::try_from(chain) {
            headers.insert(HeaderName::from_static(X_FORWARDED_FOR), value);
        }
    }
    headers
}

/// The outcome of items the upstream answered with `status`.
pub(super) fn upstream_outcome(status: StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Forwarded
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::RateLimited
    } else if status.is_client_error() {
        Outcome::UpstreamRejected
    } else {
        Outcome::UpstreamError
    }
}

/// The SDK's answer: the upstream's status, kept headers and body.
pub(super) fn relay_answer(answer: UpstreamResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}

/// A JSON answer with `status` and `body`.
pub(super) fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_path_keeps_only_release_and_environment() {
        assert_eq!(
            security_path(
                3,
                IngestEndpoint::CspReport,
                Some("sentry_key=abc&sentry_release=1.0&x=y&sentry_environment=prod")
            ),
            "/api/3/csp-report/?sentry_release=1.0&sentry_environment=prod"
        );
        assert_eq!(
            security_path(3, IngestEndpoint::Security, None),
            "/api/3/security/"
        );
    }

    #[test]
    fn upstream_headers_are_an_allow_list() {
        let auth = Auth::from_headers(
            &{
                let mut h = HeaderMap::new();
                h.insert(
                    "x-sentry-auth",
                    HeaderValue::from_static(
                        "Sentry sentry_key=0123456789abcdef0123456789abcdef, sentry_secret=topsecret",
                    ),
                );
                h
            },
            None,
        )
        .unwrap();
        let mut incoming = HeaderMap::new();
        incoming.insert(
            header::USER_AGENT,
            HeaderValue::from_static("sentry.python/2.0"),
        );
        incoming.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://app.example"),
        );
        incoming.insert(
            header::REFERER,
            HeaderValue::from_static("https://a/?email=x"),
        );
        incoming.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        incoming.insert("x-real-ip", HeaderValue::from_static("203.0.113.9"));
        incoming.insert("cookie", HeaderValue::from_static("session=1"));
        let peer: SocketAddr = "10.0.0.5:4000".parse().unwrap();

        let headers = upstream_headers(&incoming, &auth, peer, false);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 10.0.0.5");
        assert_eq!(headers[header::USER_AGENT], "sentry.python/2.0");
        assert_eq!(headers[header::ORIGIN], "https://app.example");
        assert!(!headers.contains_key("x-real-ip"));
        assert!(!headers.contains_key(header::REFERER));
        assert!(!headers.contains_key("cookie"));
        let auth_header = headers["x-sentry-auth"].to_str().unwrap();
        assert!(!auth_header.contains("topsecret"));
        assert!(auth_header.contains("sentry_key=0123456789abcdef0123456789abcdef"));

        let headers = upstream_headers(&incoming, &auth, peer, true);
        assert!(!headers.contains_key("x-forwarded-for"));
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn upstream_statuses_become_outcomes() {
        assert_eq!(upstream_outcome(StatusCode::OK), Outcome::Forwarded);
        assert_eq!(
            upstream_outcome(StatusCode::TOO_MANY_REQUESTS),
            Outcome::RateLimited
        );
        assert_eq!(
            upstream_outcome(StatusCode::FORBIDDEN),
            Outcome::UpstreamRejected
        );
        assert_eq!(
            upstream_outcome(StatusCode::BAD_GATEWAY),
            Outcome::UpstreamError
        );
    }

    #[test]
    fn new_event_ids_are_v4_uuids() {
        let id = new_event_id();
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(&id[12..13], "4", "version 4");
        assert!("89ab".contains(&id[16..17]), "RFC 4122 variant");
        assert_ne!(new_event_id(), new_event_id());
    }
}
