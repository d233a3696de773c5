//! The ingest pipeline for one request: auth, project, body, scrub, forward.
//!
//! Order matters and is part of the contract (DESIGN.md, "one event"):
//!
//! 1. route and method (404, 405; CORS preflights are answered here);
//! 2. the in-flight bound (503 with `Retry-After` when full);
//! 3. auth from the head: `X-Sentry-Auth`, `Authorization` or the query (401/400);
//! 4. the project and its key (403): **an unknown project or key never has its body
//!    read**. The one exception is an envelope without any other auth, whose header `dsn`
//!    is the auth (the browser "tunnel"): its body is read only once the project is known
//!    to exist, and its key is checked before anything is scrubbed or forwarded;
//! 5. the body within `limits` (received bytes, then decompressed bytes; 413);
//! 6. every event-like payload scrubbed; one that cannot be scrubbed refuses the whole
//!    request (400): nothing unscrubbed is forwarded. Attachments and other item types
//!    follow the project's policy, and each dropped item is counted;
//! 7. the scrubbed request forwarded, and the upstream's answer relayed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;

use super::body::{collect_limited, decode};
use super::error::IngestError;
use super::routes::IngestEndpoint;
use super::{cors, AppState};
use crate::forward::{ForwardRequest, UpstreamResponse};
use crate::metrics::{ItemType, Outcome};
use crate::projects::Project;
use crate::protocol::auth::{Auth, AuthError, ProjectKey};
use crate::protocol::client_ip::{client_ip, X_FORWARDED_FOR};
use crate::protocol::envelope::{Envelope, Headers, Item, ItemType as WireType};
use crate::protocol::store::decode_store_body;
use crate::scrub::{AttachmentPolicy, ItemKind, ScrubOptions};

/// Received bodies at least this large are decoded and scrubbed with
/// `block_in_place` (a 32 KiB gzip body is typically 100 KiB or more of JSON: about 3 ms
/// of scrubbing).
const OFFLOAD_BYTES: usize = 32 * 1024;

/// `Content-Type` of envelopes.
const ENVELOPE_CONTENT_TYPE: &str = "application/x-sentry-envelope";

/// Query parameters of the security endpoint that are forwarded (everything else in the
/// query, auth included, is not).
const SECURITY_QUERY_KEYS: [&str; 2] = ["sentry_release", "sentry_environment"];

/// What one ingest request did, for the request log line and metrics.
#[derive(Debug, Default)]
pub struct Summary {
    /// The project id, once known to be configured.
    pub project: Option<u64>,
}

/// Handles one request to an ingest route; `Err` is answered by the caller.
pub async fn handle<B>(
    state: &Arc<AppState>,
    endpoint: IngestEndpoint,
    project_id: Result<u64, ()>,
    parts: request::Parts,
    body: B,
    peer: SocketAddr,
    summary: &mut Summary,
) -> Result<Response<Full<Bytes>>, IngestError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if cors::is_preflight(&parts.method, &parts.headers) {
        let mut response = Response::new(Full::new(Bytes::new()));
        cors::preflight(response.headers_mut());
        return Ok(response);
    }
    if parts.method != Method::POST {
        return Err(IngestError::MethodNotAllowed);
    }
    let _permit = state
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| IngestError::Overloaded)?;
    let _in_flight = state.metrics.track_request();
    let project_id = project_id.map_err(|()| IngestError::InvalidProjectId)?;

    let is_envelope = match endpoint {
        IngestEndpoint::Envelope => true,
        IngestEndpoint::Store => has_content_type(&parts.headers, ENVELOPE_CONTENT_TYPE),
        IngestEndpoint::Security | IngestEndpoint::CspReport => false,
    };
    let request_auth = match Auth::from_parts(&parts) {
        Ok(auth) => Some(auth),
        // Only an envelope may carry its auth in its header's `dsn`.
        Err(AuthError::Missing) if is_envelope => None,
        Err(error) => return Err(IngestError::Auth(error)),
    };

    let project = state
        .projects
        .get(project_id)
        .ok_or(IngestError::UnknownProject)?;
    summary.project = Some(project_id);
    if project.config.disabled {
        return Err(IngestError::ProjectDisabled);
    }
    if let Some(auth) = &request_auth {
        check_key(&project, auth.public_key())?;
    }
    if endpoint.is_security() && !is_security_mime(&parts.headers) {
        return Err(IngestError::UnsupportedMediaType);
    }

    // Body: received bytes, then decompressed bytes, each within its limit.
    let limits = &state.config.limits;
    let (max_received, max_decoded) = match endpoint {
        IngestEndpoint::Envelope => (
            limits.max_compressed_envelope_size,
            limits.max_envelope_size,
        ),
        IngestEndpoint::Store | IngestEndpoint::Security | IngestEndpoint::CspReport => {
            (limits.max_compressed_event_size, limits.max_event_size)
        }
    };
    let label = endpoint.metric_label();
    let received = collect_limited(body, max_received, state.config.server.body_read_timeout)
        .await
        .map_err(IngestError::Body)?;
    state.metrics.observe_received_bytes(label, received.len());
    // Decompressing, parsing and scrubbing are CPU work: for large bodies, tell the
    // runtime so that other connections' requests are not held behind this one.
    let offload = received.len() >= OFFLOAD_BYTES
        && tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread;
    let prepare = || -> Result<Prepared, IngestError> {
        let decoded = decode(
            parts.headers.get(header::CONTENT_ENCODING),
            received,
            max_decoded,
        )
        .map_err(IngestError::Body)?;
        state.metrics.observe_decoded_bytes(label, decoded.len());

        let options = ScrubOptions {
            client_ip: Some(client_ip(peer, &parts.headers, &state.trusted_proxies)),
            max_depth: limits.max_json_depth,
            record_paths: false,
        };
        let scrubber = Scrubber {
            state,
            project: &project,
            options: &options,
        };

        let prepared = if is_envelope {
            let mut envelope = Envelope::parse(decoded).map_err(IngestError::Envelope)?;
            let auth = envelope_auth(request_auth, &mut envelope, project_id, &project)?;
            scrubber
                .scrub_envelope(&mut envelope)?
                .into_prepared(auth, endpoint, project_id, &envelope)?
        } else {
            let auth = request_auth.ok_or(IngestError::Auth(AuthError::Missing))?;
            let (kind, content_type) = if endpoint.is_security() {
                let content_type = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .cloned()
                    .unwrap_or_else(|| HeaderValue::from_static("application/json"));
                (ItemKind::Security, content_type)
            } else {
                (
                    ItemKind::Event,
                    HeaderValue::from_static("application/json"),
                )
            };
            let event = if endpoint.is_security() {
                if decoded.iter().all(u8::is_ascii_whitespace) {
                    return Err(IngestError::StoreBody(
                        crate::protocol::store::StoreError::Empty,
                    ));
                }
                decoded
            } else {
                decode_store_body(decoded, limits.max_event_size).map_err(IngestError::StoreBody)?
            };
            let (mut scrubbed, event_id) = scrubber.scrub_with_id(kind, &event)?;
            let event_id = if endpoint.is_security() {
                None
            } else {
                // As Relay does for the store endpoint: an event without an id gets one,
                // and the SDK is told which.
                Some(event_id.unwrap_or_else(|| insert_event_id(&mut scrubbed)))
            };
            let scrubbed = Bytes::from(scrubbed);
            let path_and_query = match endpoint {
                IngestEndpoint::Security | IngestEndpoint::CspReport => {
                    security_path(project_id, endpoint, parts.uri.query())
                }
                IngestEndpoint::Store | IngestEndpoint::Envelope => {
                    format!("/api/{project_id}/{}/", endpoint.segment())
                }
            };
            Prepared {
                auth,
                path_and_query,
                content_type,
                body: scrubbed,
                event_id,
                forwarded: vec![ItemType::from_kind(kind)],
            }
        };
        Ok(prepared)
    };
    let prepared = if offload {
        tokio::task::block_in_place(prepare)
    } else {
        prepare()
    }?;

    if prepared.forwarded.is_empty() {
        // Every item was dropped by policy: there is nothing to deliver. Answer as Relay
        // does for an envelope without an event.
        let body = match &prepared.event_id {
            Some(id) => serde_json::json!({ "id": id }).to_string(),
            None => "{}".to_owned(),
        };
        return Ok(json_response(StatusCode::OK, Bytes::from(body)));
    }

    let headers = upstream_headers(
        &parts.headers,
        &prepared.auth,
        peer,
        project.config.scrubs_ip_addresses,
    );
    let forwarded = prepared.forwarded;
    let request = ForwardRequest {
        path_and_query: prepared.path_and_query,
        headers,
        body: prepared.body,
        content_type: prepared.content_type,
        event_id: prepared.event_id,
    };
    match state.forwarder.forward(request).await {
        Ok(answer) => {
            let outcome = upstream_outcome(answer.status);
            for item_type in forwarded {
                state.metrics.record_item(item_type, outcome);
            }
            Ok(relay_answer(answer))
        }
        Err(error) => {
            for item_type in forwarded {
                state.metrics.record_item(item_type, Outcome::UpstreamError);
            }
            Err(IngestError::Forward(error))
        }
    }
}

/// A scrubbed request ready to forward.
struct Prepared {
    auth: Auth,
    path_and_query: String,
    content_type: HeaderValue,
    body: Bytes,
    event_id: Option<String>,
    /// The item types forwarded (for outcome counting); empty when nothing is left.
    forwarded: Vec<ItemType>,
}

/// The result of scrubbing an envelope's items.
struct ScrubbedEnvelope {
    forwarded: Vec<ItemType>,
}

impl ScrubbedEnvelope {
    fn into_prepared(
        self,
        auth: Auth,
        endpoint: IngestEndpoint,
        project_id: u64,
        envelope: &Envelope,
    ) -> Result<Prepared, IngestError> {
        let body = if self.forwarded.is_empty() {
            Bytes::new()
        } else {
            envelope.to_bytes().map_err(IngestError::Envelope)?
        };
        Ok(Prepared {
            auth,
            path_and_query: format!("/api/{project_id}/{}/", endpoint.segment()),
            content_type: HeaderValue::from_static(ENVELOPE_CONTENT_TYPE),
            body,
            event_id: envelope.event_id().map(str::to_owned),
            forwarded: self.forwarded,
        })
    }
}

/// Scrubs payloads of one request with one project's rules, recording timings and
/// redactions.
struct Scrubber<'a> {
    state: &'a AppState,
    project: &'a Project,
    options: &'a ScrubOptions,
}

impl Scrubber<'_> {
    /// Scrubs one payload.
    fn scrub(&self, kind: ItemKind, payload: &[u8]) -> Result<Bytes, IngestError> {
        self.scrub_with_id(kind, payload)
            .map(|(bytes, _)| Bytes::from(bytes))
    }

    /// Scrubs one payload; also returns its top-level `event_id`, if any.
    fn scrub_with_id(
        &self,
        kind: ItemKind,
        payload: &[u8],
    ) -> Result<(Vec<u8>, Option<String>), IngestError> {
        let started = Instant::now();
        let result = self.project.config.rules.scrub(kind, payload, self.options);
        let item_type = ItemType::from_kind(kind);
        self.state
            .metrics
            .observe_scrub(item_type, started.elapsed());
        let scrubbed = result.map_err(|source| IngestError::Scrub { kind, source })?;
        if !scrubbed.report.changes.is_empty() {
            self.state.metrics.record_redactions(
                &self.project.id_label,
                &scrubbed.report,
                &self.project.rule_labels,
            );
        }
        Ok((scrubbed.bytes, scrubbed.event_id))
    }

    /// Scrubs the envelope header and every item in place, dropping what policy drops.
    fn scrub_envelope(&self, envelope: &mut Envelope) -> Result<ScrubbedEnvelope, IngestError> {
        let max_event_size = self.state.config.limits.max_event_size;
        self.scrub_envelope_header(envelope)?;

        let items = std::mem::take(envelope.items_mut());
        let mut kept: Vec<Item> = Vec::with_capacity(items.len());
        let mut forwarded = Vec::with_capacity(items.len());
        let mut dropped: Vec<ItemType> = Vec::new();
        for mut item in items {
            let wire = item.item_type();
            match scrub_kind(wire) {
                Some(kind) => {
                    if item.payload().len() > max_event_size {
                        return Err(IngestError::ItemTooLarge);
                    }
                    let scrubbed = self.scrub(kind, item.payload())?;
                    item.set_payload(scrubbed);
                    forwarded.push(ItemType::from_kind(kind));
                    kept.push(item);
                }
                None if wire == WireType::Attachment => match self.project.config.attachments {
                    AttachmentPolicy::Forward => {
                        forwarded.push(ItemType::Attachment);
                        kept.push(item);
                    }
                    AttachmentPolicy::Drop => dropped.push(ItemType::Attachment),
                },
                None if self.project.config.forward_unknown_items => {
                    forwarded.push(ItemType::from_wire(item.ty()));
                    kept.push(item);
                }
                None => dropped.push(ItemType::from_wire(item.ty())),
            }
        }
        // Counted only once the whole envelope is accepted: a refused envelope counts as
        // one invalid envelope, not as some dropped items.
        for item_type in dropped {
            self.state
                .metrics
                .record_item(item_type, Outcome::DroppedItem);
        }
        *envelope.items_mut() = kept;
        Ok(ScrubbedEnvelope { forwarded })
    }

    /// Scrubs the envelope header (`trace.user_id`, ...) when it has a `trace`.
    fn scrub_envelope_header(&self, envelope: &mut Envelope) -> Result<(), IngestError> {
        const KIND: ItemKind = ItemKind::EnvelopeHeader;
        if !envelope.headers().contains_key("trace") {
            return Ok(());
        }
        let bytes = serde_json::to_vec(envelope.headers()).map_err(|_| IngestError::Scrub {
            kind: KIND,
            source: crate::scrub::ScrubError::NotAnObject,
        })?;
        let scrubbed = self.scrub(KIND, &bytes)?;
        let headers: Headers =
            serde_json::from_slice(&scrubbed).map_err(|_| IngestError::Scrub {
                kind: KIND,
                source: crate::scrub::ScrubError::NotAnObject,
            })?;
        *envelope.headers_mut() = headers;
        Ok(())
    }
}

/// The engine's kind for an item type it scrubs; `None` for attachments and types it
/// cannot scrub.
fn scrub_kind(item_type: WireType) -> Option<ItemKind> {
    match item_type {
        WireType::Event => Some(ItemKind::Event),
        WireType::Transaction => Some(ItemKind::Transaction),
        // A raw report is what the security endpoint receives; scrubbed the same way.
        WireType::Security | WireType::RawSecurity => Some(ItemKind::Security),
        WireType::Feedback => Some(ItemKind::Feedback),
        WireType::UserReport => Some(ItemKind::UserReport),
        WireType::Session => Some(ItemKind::Session),
        WireType::Sessions => Some(ItemKind::Sessions),
        WireType::Nel
        | WireType::FormData
        | WireType::Attachment
        | WireType::UnrealReport
        | WireType::ClientReport
        | WireType::CheckIn
        | WireType::Statsd
        | WireType::MetricBuckets
        | WireType::ReplayEvent
        | WireType::ReplayRecording
        | WireType::ReplayVideo
        | WireType::Profile
        | WireType::ProfileChunk
        | WireType::Span
        | WireType::OtelSpan
        | WireType::Log
        | WireType::OtelLog
        | WireType::TraceMetric
        | WireType::Unknown => None,
    }
}

/// Resolves an envelope's auth: the request's, checked against the header `dsn` when
/// both exist, or the `dsn` alone (its key checked against the project). The secret of
/// a DSN is removed from the header before it is forwarded.
fn envelope_auth(
    request_auth: Option<Auth>,
    envelope: &mut Envelope,
    project_id: u64,
    project: &Project,
) -> Result<Auth, IngestError> {
    let dsn = match envelope.dsn() {
        Some(dsn) => Some(Auth::from_dsn(dsn).map_err(IngestError::Auth)?),
        None => None,
    };
    let auth = match (request_auth, dsn) {
        (Some(auth), Some((dsn_auth, dsn_project))) => {
            if dsn_project != project_id || dsn_auth.public_key() != auth.public_key() {
                return Err(IngestError::DsnMismatch);
            }
            auth
        }
        (Some(auth), None) => auth,
        (None, Some((dsn_auth, dsn_project))) => {
            if dsn_project != project_id {
                return Err(IngestError::DsnMismatch);
            }
            check_key(project, dsn_auth.public_key())?;
            dsn_auth
        }
        (None, None) => return Err(IngestError::Auth(AuthError::Missing)),
    };
    strip_dsn_secret(envelope.headers_mut());
    Ok(auth)
}

/// Removes `:secret` from the header's `dsn` userinfo, if there is one.
fn strip_dsn_secret(headers: &mut Headers) {
    let Some(serde_json::Value::String(dsn)) = headers.get_mut("dsn") else {
        return;
    };
    let Some(scheme_end) = dsn.find("://").map(|i| i + 3) else {
        return;
    };
    let authority_end = dsn[scheme_end..]
        .find('/')
        .map_or(dsn.len(), |i| scheme_end + i);
    let Some(at) = dsn[scheme_end..authority_end]
        .rfind('@')
        .map(|i| scheme_end + i)
    else {
        return;
    };
    if let Some(colon) = dsn[scheme_end..at].find(':').map(|i| scheme_end + i) {
        dsn.replace_range(colon..at, "");
    }
}

/// Checks that `key` is an enabled public key of `project`.
fn check_key(project: &Project, key: ProjectKey) -> Result<(), IngestError> {
    let found = project
        .config
        .public_keys
        .iter()
        .find(|candidate| key.matches(&candidate.public_key))
        .ok_or(IngestError::UnknownKey)?;
    if found.is_enabled {
        Ok(())
    } else {
        Err(IngestError::KeyDisabled)
    }
}

/// True when `Content-Type` is `expected` (ignoring case and parameters).
fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// The MIME types Relay accepts on the security endpoints.
fn is_security_mime(headers: &HeaderMap) -> bool {
    const ALLOWED: [&str; 5] = [
        "application/json",
        "application/csp-report",
        "application/expect-ct-report",
        "application/expect-ct-report+json",
        "application/expect-staple-report",
    ];
    ALLOWED
        .iter()
        .any(|allowed| has_content_type(headers, allowed))
}

/// The upstream path of a security report: the same path with only the release and
/// environment parameters of the query.
fn security_path(project_id: u64, endpoint: IngestEndpoint, query: Option<&str>) -> String {
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

/// Adds a new random `event_id` (a version 4 UUID, as 32 hex digits) as the first field
/// of the serialized event object `event`, and returns it.
fn insert_event_id(event: &mut Vec<u8>) -> String {
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
    let id: String = bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]])
        .map(char::from)
        .collect();
    // The scrubber writes an object: `{` first, then `}` or the first field.
    let empty = event.get(1) == Some(&b'}');
    let field = format!("\"event_id\":\"{id}\"{}", if empty { "" } else { "," });
    event.splice(1..1, field.into_bytes());
    id
}

/// Headers sent upstream: an allow-list. `X-Sentry-Auth` rebuilt without the secret,
/// `User-Agent` and `Origin` kept, and `X-Forwarded-For` (incoming chain plus the peer)
/// only when the project does not scrub IP addresses. No other client-IP header
/// (`X-Real-IP`, `Forwarded`, `CF-Connecting-IP`, `True-Client-IP`) is ever forwarded.
fn upstream_headers(
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
fn upstream_outcome(status: StatusCode) -> Outcome {
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
fn relay_answer(answer: UpstreamResponse) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    response
}

/// A JSON answer with `status` and `body`.
fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
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
    fn inserted_event_ids_are_v4_uuids_and_keep_the_json_valid() {
        for body in [&b"{}"[..], br#"{"message":"hi","level":"error"}"#] {
            let mut event = body.to_vec();
            let id = insert_event_id(&mut event);
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert_eq!(&id[12..13], "4", "version 4");
            assert!("89ab".contains(&id[16..17]), "RFC 4122 variant");
            let parsed: serde_json::Value = serde_json::from_slice(&event).unwrap();
            assert_eq!(parsed["event_id"], id.as_str());
            let original: serde_json::Value = serde_json::from_slice(body).unwrap();
            for (k, v) in original.as_object().unwrap() {
                assert_eq!(&parsed[k], v);
            }
        }
        let (mut a, mut b) = (b"{}".to_vec(), b"{}".to_vec());
        assert_ne!(insert_event_id(&mut a), insert_event_id(&mut b));
    }

    #[test]
    fn dsn_secret_is_removed() {
        let mut headers = Headers::new();
        headers.insert(
            "dsn".into(),
            "https://abc:s3cret@o1.ingest.example.com/42".into(),
        );
        strip_dsn_secret(&mut headers);
        assert_eq!(headers["dsn"], "https://abc@o1.ingest.example.com/42");

        headers.insert("dsn".into(), "https://abc@host/42".into());
        strip_dsn_secret(&mut headers);
        assert_eq!(headers["dsn"], "https://abc@host/42");
    }

    #[test]
    fn security_mime_types_as_relay() {
        let mut headers = HeaderMap::new();
        assert!(!is_security_mime(&headers));
        for (value, ok) in [
            ("application/json", true),
            ("application/csp-report", true),
            ("Application/CSP-Report; charset=utf-8", true),
            ("application/expect-ct-report+json", true),
            ("application/expect-staple-report", true),
            ("text/plain", false),
            ("application/x-sentry-envelope", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_security_mime(&headers), ok, "{value}");
        }
    }

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
}
