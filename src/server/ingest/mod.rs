//! The life of one ingest request, as named stages; read [`handle`] top to bottom:
//!
//! 1. [`admit`]: the method, the in-flight bound (503 with `Retry-After` when full), the
//!    project id, the auth from the head (`X-Sentry-Auth`, `Authorization` or the query;
//!    401/400) and the project (403). **An unknown project never has its body read.**
//! 2. [`authorize`]: the project enabled, the key one of its enabled keys (403), and a
//!    security report's MIME type (415). The one exception to "auth before body" is an
//!    envelope without any other auth, whose header `dsn` is the auth (the browser
//!    "tunnel"): its key is checked in [`prepare`], before anything is scrubbed.
//! 3. [`read_body`]: the received bytes within `limits` (413, 408).
//! 4. [`prepare`]: decompressed within `limits`, then decoded as a store event or split
//!    into an envelope's items (400).
//! 5. [`scrub`]: every payload scrubbed; one that cannot be scrubbed refuses the whole
//!    request (400): nothing unscrubbed is forwarded. Attachments and other item types
//!    follow the project's policy, and each dropped item is counted.
//! 6. [`deliver`]: the scrubbed request forwarded, and the upstream's answer relayed;
//!    when the upstream cannot take it, the scrubbed request is spooled to disk and
//!    accepted (200), and the spool's drainer delivers it later.
//!
//! CORS preflights never reach this module: the server answers them when it routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use tokio::sync::OwnedSemaphorePermit;

use super::error::IngestError;
use super::routes::{upload_parameter, IngestEndpoint};
use super::AppState;
use crate::body::budget::Reservation;
use crate::body::store::{decode_store_body, StoreError};
use crate::body::{codings, collect_limited, decode, decode_watched, BodyError};
use crate::config::LimitsConfig;
use crate::forward::{ForwardRequest, UpstreamResponse};
use crate::metrics::{GaugeGuard, ItemLabel, Outcome};
use crate::projects::{AttachmentPolicy, Project, ProjectConfig};
use crate::protocol::auth::{Auth, AuthError, ProjectKey};
use crate::protocol::client_ip::{client_ip, X_FORWARDED_FOR};
use crate::protocol::envelope::{Envelope, EnvelopeError, Headers, Item, ItemType};
use crate::protocol::item_scan::ItemSizeScan;
use crate::protocol::native;
use crate::scrub::{Coverage, ItemKind, ScrubOptions};
use crate::spool::{Delivered, DeliveryError};

mod items;
mod upstream;

pub use items::{scrub_envelope_offline, ItemChange};

use items::{item_size_limit, Scrubber};
use upstream::{
    json_response, new_event_id, relay_answer, security_path, upstream_headers, upstream_outcome,
};

/// Identity bodies at least this large (and every compressed body, see
/// [`needs_offload`]) are decoded and scrubbed on the decode pool (32 KiB of JSON is
/// about 1 ms of scrubbing; a 32 KiB gzip body is typically 100 KiB or more of JSON).
const OFFLOAD_BYTES: usize = 32 * 1024;

/// `Content-Type` of envelopes.
const ENVELOPE_CONTENT_TYPE: &str = "application/x-sentry-envelope";

/// One request to an ingest route, as the router hands it over.
#[derive(Debug)]
pub struct IngestRequest<B> {
    /// Which endpoint the path names.
    pub endpoint: IngestEndpoint,
    /// The `{project_id}` path segment, when it is a number.
    pub project_id: Option<u64>,
    /// Method, URI and headers.
    pub parts: request::Parts,
    /// The body, not yet read.
    pub body: B,
    /// The TCP peer.
    pub peer: SocketAddr,
}

/// What handling one request came to: the answer (an `Err` is answered by the caller)
/// and, for the request log, the project once it is known to be configured.
#[derive(Debug)]
pub struct Handled {
    /// The configured project the request was for, if it got that far.
    pub project: Option<u64>,
    /// The answer, or why the request was refused.
    pub result: Result<Response<Full<Bytes>>, IngestError>,
}

/// Handles one request to an ingest route: the stages of this module, in order.
pub async fn handle<B>(state: &Arc<AppState>, request: IngestRequest<B>) -> Handled
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let admitted = match admit(state, &request) {
        Ok(admitted) => admitted,
        Err(error) => {
            return Handled {
                project: None,
                result: Err(error),
            }
        }
    };
    let project = admitted.project.id;
    let result = async {
        authorize(&admitted, &request)?;
        let IngestRequest {
            endpoint,
            parts,
            body,
            peer,
            ..
        } = request;
        // Every body byte this request holds, from the first received to the scrubbed
        // copy, is reserved against `limits.max_body_bytes_in_flight` until it is done.
        let mut reservation = state.budget.reservation();
        let received = read_body(state, endpoint, body, &mut reservation).await?;
        // Decompressing, parsing and scrubbing are CPU work: compressed and large bodies
        // go to the decode pool (`limits.max_decoding` threads), so that other
        // connections' requests are not held behind them on the async workers.
        let (scrubbed, admitted, parts, reservation) = if needs_offload(received.len(), &parts) {
            let pool_state = Arc::clone(state);
            state
                .decode_pool
                .run(move || {
                    let scrubbed = prepare_and_scrub(
                        &pool_state,
                        &admitted,
                        &parts,
                        endpoint,
                        peer,
                        received,
                        &mut reservation,
                    );
                    (scrubbed, admitted, parts, reservation)
                })
                .await
        } else {
            let scrubbed = prepare_and_scrub(
                state,
                &admitted,
                &parts,
                endpoint,
                peer,
                received,
                &mut reservation,
            );
            (scrubbed, admitted, parts, reservation)
        };
        let scrubbed = scrubbed?;
        let event_id = scrubbed.event_id.clone();
        let answer = deliver(state, &admitted.project, &parts, peer, scrubbed).await;
        drop(reservation);
        answer.map(|response| upload_answer(endpoint, response, event_id.as_deref()))
    }
    .await;
    Handled {
        project: Some(project),
        result,
    }
}

/// Stages 4 and 5 together: the CPU work of a request, run where [`handle`] decides.
fn prepare_and_scrub(
    state: &AppState,
    admitted: &Admitted,
    parts: &request::Parts,
    endpoint: IngestEndpoint,
    peer: SocketAddr,
    received: Bytes,
    reservation: &mut Reservation,
) -> Result<Scrubbed, IngestError> {
    let payload = prepare(state, admitted, parts, endpoint, received, reservation)?;
    scrub(state, admitted, parts, endpoint, peer, payload)
}

/// Whether a body is decoded and scrubbed on the decode pool: every compressed body,
/// whatever its size (a 1.6 KB brotli bomb is 0.4 s of work up to the decoded-size
/// cap), and identity bodies of at least [`OFFLOAD_BYTES`]. An unsupported coding also
/// counts as compressed; it is refused at once in `prepare`.
fn needs_offload(received: usize, parts: &request::Parts) -> bool {
    let compressed = !matches!(
        codings(parts.headers.get_all(header::CONTENT_ENCODING)),
        Ok(list) if list.is_empty()
    );
    compressed || received >= OFFLOAD_BYTES
}

/// A request let in: it holds an in-flight permit and its project is configured.
struct Admitted {
    project: Arc<Project>,
    /// The auth from the request head; `None` only for an envelope, whose header `dsn`
    /// must then carry it.
    auth: Option<Auth>,
    /// The body is read as an envelope (the envelope endpoint, or the store endpoint with
    /// the envelope content type).
    is_envelope: bool,
    _permit: OwnedSemaphorePermit,
    _in_flight: GaugeGuard,
}

/// Stage 1: method, in-flight permit, project id, auth from the head, the project.
fn admit<B>(state: &Arc<AppState>, request: &IngestRequest<B>) -> Result<Admitted, IngestError> {
    let parts = &request.parts;
    if parts.method != Method::POST {
        return Err(IngestError::MethodNotAllowed);
    }
    let permit = state
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| IngestError::Overloaded)?;
    let in_flight = state.metrics.track_request();
    let project_id = request.project_id.ok_or(IngestError::InvalidProjectId)?;
    let is_envelope = match request.endpoint {
        IngestEndpoint::Envelope => true,
        IngestEndpoint::Store => has_content_type(&parts.headers, ENVELOPE_CONTENT_TYPE),
        IngestEndpoint::Security
        | IngestEndpoint::CspReport
        | IngestEndpoint::Minidump
        | IngestEndpoint::Attachments
        | IngestEndpoint::Unreal => false,
    };
    let auth = match Auth::from_parts(parts) {
        Ok(auth) => Some(auth),
        // Only an envelope may carry its auth in its header's `dsn`.
        Err(AuthError::Missing) if is_envelope => None,
        // An Unreal crash reporter puts the key in the path.
        Err(AuthError::Missing) if request.endpoint == IngestEndpoint::Unreal => {
            let key = upload_parameter(parts.uri.path()).unwrap_or_default();
            Some(Auth::from_key(
                ProjectKey::parse(&key).map_err(IngestError::Auth)?,
            ))
        }
        Err(error) => return Err(IngestError::Auth(error)),
    };
    let project = state
        .projects
        .get(project_id)
        .ok_or(IngestError::UnknownProject)?;
    Ok(Admitted {
        project,
        auth,
        is_envelope,
        _permit: permit,
        _in_flight: in_flight,
    })
}

/// Stage 2: the project enabled, the head's key one of its enabled keys, and a security
/// report's MIME type one that Relay accepts.
fn authorize<B>(admitted: &Admitted, request: &IngestRequest<B>) -> Result<(), IngestError> {
    if admitted.project.config.disabled {
        return Err(IngestError::ProjectDisabled);
    }
    if let Some(auth) = &admitted.auth {
        check_key(&admitted.project, auth.public_key())?;
    }
    if request.endpoint.is_security() && !is_security_mime(&request.parts.headers) {
        return Err(IngestError::UnsupportedMediaType);
    }
    // scrubgate does not read Unreal crash reports: refused before the body is read,
    // unless the project forwards what it cannot scrub.
    if request.endpoint == IngestEndpoint::Unreal && !admitted.project.config.forward_unknown_items
    {
        return Err(IngestError::UnrealNotScrubbed);
    }
    Ok(())
}

/// Stage 3: the body as received, within the endpoint's received-size limit and
/// `server.body_read_timeout`.
async fn read_body<B>(
    state: &AppState,
    endpoint: IngestEndpoint,
    body: B,
    reservation: &mut Reservation,
) -> Result<Bytes, IngestError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limits = &state.config.limits;
    let max_received = match endpoint {
        IngestEndpoint::Envelope => limits.max_compressed_envelope_size,
        IngestEndpoint::Store | IngestEndpoint::Security | IngestEndpoint::CspReport => {
            limits.max_compressed_event_size
        }
        IngestEndpoint::Minidump | IngestEndpoint::Attachments | IngestEndpoint::Unreal => {
            upload_size_limit(limits)
        }
    };
    let received = collect_limited(
        body,
        max_received,
        state.config.server.body_read_timeout,
        reservation,
    )
    .await
    .map_err(IngestError::Body)?;
    state
        .metrics
        .observe_received_bytes(endpoint.metric_label(), received.len());
    Ok(received)
}

/// A decoded request body, ready to scrub.
enum Payload {
    /// A store or security endpoint body: one event, and the request's auth.
    Event { event: Bytes, auth: Auth },
    /// An envelope whose auth is resolved (the request's, or its header `dsn`'s).
    Envelope { envelope: Envelope, auth: Auth },
}

/// Stage 4: decompressed within the endpoint's decoded-size limit and
/// `limits.max_decompression_ratio`, then a store body decoded (base64, zlib) or an
/// envelope split into items and its `dsn` auth resolved. `reservation` covers the
/// most the body may decode to while it is decoded, then twice the decoded size (the
/// body and its scrubbed copy).
fn prepare(
    state: &AppState,
    admitted: &Admitted,
    parts: &request::Parts,
    endpoint: IngestEndpoint,
    received: Bytes,
    reservation: &mut Reservation,
) -> Result<Payload, IngestError> {
    let limits = &state.config.limits;
    let max_decoded = match endpoint {
        IngestEndpoint::Envelope => limits.max_envelope_size,
        IngestEndpoint::Store | IngestEndpoint::Security | IngestEndpoint::CspReport => {
            limits.max_event_size
        }
        IngestEndpoint::Minidump | IngestEndpoint::Attachments | IngestEndpoint::Unreal => {
            upload_size_limit(limits)
        }
    };
    // A bomb stops at its ratio cap: a few KB never become hundreds of MB. An identity
    // body is never over its own ratio cap.
    let max_decoded = limits.decoded_cap(received.len(), max_decoded);
    let encodings = parts.headers.get_all(header::CONTENT_ENCODING);
    let compressed = !matches!(codings(encodings.iter()), Ok(list) if list.is_empty());
    if compressed {
        reservation
            .resize(received.len().saturating_add(max_decoded))
            .map_err(IngestError::Body)?;
    }
    let decoded = if admitted.is_envelope && compressed {
        // Each item is held to its limit as the envelope inflates: an oversized one
        // stops decoding there, not after the whole envelope is in memory.
        let mut scan = ItemSizeScan::new(|item_type| item_size_limit(item_type, limits));
        let mut over_limit = None;
        let decoded = decode_watched(encodings, received, max_decoded, &mut |so_far| match scan
            .advance(so_far)
        {
            Ok(()) => true,
            Err(error) => {
                over_limit = Some(error);
                false
            }
        });
        match decoded {
            Err(BodyError::Refused) => {
                if let Some(error) = over_limit {
                    tracing::debug!(%error, "envelope refused while decoding");
                }
                return Err(IngestError::ItemTooLarge);
            }
            other => other.map_err(IngestError::Body)?,
        }
    } else {
        decode(encodings, received, max_decoded).map_err(IngestError::Body)?
    };
    reservation
        .resize(decoded.len().saturating_mul(2))
        .map_err(IngestError::Body)?;
    state
        .metrics
        .observe_decoded_bytes(endpoint.metric_label(), decoded.len());

    if admitted.is_envelope {
        let mut envelope = Envelope::parse(decoded).map_err(IngestError::Envelope)?;
        // Replay recordings are inflated again when scrubbed: room for the most they may
        // inflate to, and their scrubbed copies.
        let recordings = envelope
            .items()
            .iter()
            .filter(|item| item.item_type() == ItemType::ReplayRecording)
            .map(|item| {
                let len = item.payload().len();
                limits
                    .decoded_cap(len, limits.max_replay_uncompressed_size)
                    .saturating_mul(2)
            })
            .fold(0usize, usize::saturating_add);
        if recordings > 0 {
            reservation
                .at_least(reservation.held().saturating_add(recordings))
                .map_err(IngestError::Body)?;
        }
        let auth = envelope_auth(admitted.auth.clone(), &mut envelope, &admitted.project)?;
        return Ok(Payload::Envelope { envelope, auth });
    }
    let auth = admitted
        .auth
        .clone()
        .ok_or(IngestError::Auth(AuthError::Missing))?;
    if endpoint.is_upload() {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let upload = match endpoint {
            IngestEndpoint::Minidump => {
                native::minidump_upload(content_type, decoded, limits, new_event_id)
            }
            IngestEndpoint::Attachments => {
                let event_id = upload_parameter(parts.uri.path()).unwrap_or_default();
                native::attachments_upload(content_type, decoded, &event_id, limits)
            }
            _ => native::unreal_upload(decoded, limits, new_event_id),
        }
        .map_err(IngestError::Upload)?;
        return Ok(Payload::Envelope {
            envelope: upload.envelope,
            auth,
        });
    }
    let event = if endpoint.is_security() {
        if decoded.iter().all(u8::is_ascii_whitespace) {
            return Err(IngestError::StoreBody(StoreError::Empty));
        }
        decoded
    } else {
        decode_store_body(decoded, limits.max_event_size).map_err(IngestError::StoreBody)?
    };
    Ok(Payload::Event { event, auth })
}

/// A scrubbed request ready to deliver.
struct Scrubbed {
    auth: Auth,
    path_and_query: String,
    content_type: HeaderValue,
    body: Bytes,
    event_id: Option<String>,
    /// The item types forwarded (for outcome counting); empty when nothing is left.
    forwarded: Vec<ItemType>,
}

/// Stage 5: every payload scrubbed with the project's rules. A store event without an
/// `event_id` gets one, as Relay gives it, and the SDK is told which.
fn scrub(
    state: &AppState,
    admitted: &Admitted,
    parts: &request::Parts,
    endpoint: IngestEndpoint,
    peer: SocketAddr,
    payload: Payload,
) -> Result<Scrubbed, IngestError> {
    let options = ScrubOptions {
        client_ip: Some(client_ip(peer, &parts.headers, &state.trusted_proxies)),
        max_depth: state.config.limits.max_json_depth,
        record_paths: false,
    };
    let scrubber = Scrubber {
        state: Some(state),
        limits: &state.config.limits,
        project: &admitted.project,
        options: &options,
        changes: None,
        item_index: std::cell::Cell::new(None),
    };
    let project_id = admitted.project.id;
    match payload {
        Payload::Envelope { mut envelope, auth } => {
            let forwarded = scrubber.scrub_envelope(&mut envelope)?;
            let body = if forwarded.is_empty() {
                Bytes::new()
            } else {
                envelope.to_bytes().map_err(IngestError::Envelope)?
            };
            Ok(Scrubbed {
                auth,
                // Uploads go to the store as the envelopes they became.
                path_and_query: if endpoint.is_upload() {
                    format!("/api/{project_id}/envelope/")
                } else {
                    format!("/api/{project_id}/{}/", endpoint.segment())
                },
                content_type: HeaderValue::from_static(ENVELOPE_CONTENT_TYPE),
                body,
                event_id: envelope.event_id().map(str::to_owned),
                forwarded,
            })
        }
        Payload::Event { event, auth } if endpoint.is_security() => {
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("application/json"));
            let (body, _) =
                scrubber.scrub(ItemKind::Security, ItemType::Security.into(), &event, None)?;
            Ok(Scrubbed {
                auth,
                path_and_query: security_path(project_id, endpoint, parts.uri.query()),
                content_type,
                body,
                event_id: None,
                forwarded: vec![ItemType::Security],
            })
        }
        Payload::Event { event, auth } => {
            let (body, event_id) = scrubber.scrub(
                ItemKind::Event,
                ItemType::Event.into(),
                &event,
                Some(new_event_id),
            )?;
            Ok(Scrubbed {
                auth,
                path_and_query: format!("/api/{project_id}/{}/", endpoint.segment()),
                content_type: HeaderValue::from_static("application/json"),
                body,
                event_id,
                forwarded: vec![ItemType::Event],
            })
        }
    }
}

/// Stage 6: the scrubbed request sent upstream with an allow-list of headers, each item's
/// outcome counted, and the upstream's answer relayed. When policy dropped every item,
/// nothing is sent and the SDK gets Relay's answer for an envelope without an event.
///
/// Whether it goes to the store or the spool is [`crate::spool::Delivery`]'s decision; a
/// spooled request gets 200 with its event id, and every answer of the store (2xx, 4xx,
/// 429 with its rate-limit headers) is relayed as it is.
async fn deliver(
    state: &AppState,
    project: &Project,
    parts: &request::Parts,
    peer: SocketAddr,
    scrubbed: Scrubbed,
) -> Result<Response<Full<Bytes>>, IngestError> {
    if scrubbed.forwarded.is_empty() {
        return Ok(accepted(scrubbed.event_id.as_deref()));
    }
    let headers = upstream_headers(
        &parts.headers,
        &scrubbed.auth,
        peer,
        project.config.scrubs_ip_addresses,
    );
    let forwarded = scrubbed.forwarded;
    let event_id = scrubbed.event_id.clone();
    let request = ForwardRequest {
        path_and_query: scrubbed.path_and_query,
        headers,
        body: scrubbed.body,
        content_type: scrubbed.content_type,
        event_id: scrubbed.event_id,
    };
    let record = |outcome: Outcome| {
        for item_type in &forwarded {
            state.metrics.record_item(*item_type, outcome);
        }
    };
    match state.delivery.deliver(request).await {
        Ok(Delivered::Answered(answer)) => {
            record(upstream_outcome(answer.status));
            Ok(relay_answer(answer))
        }
        Ok(Delivered::Spooled) => {
            record(Outcome::Spooled);
            Ok(accepted(event_id.as_deref()))
        }
        Err(DeliveryError::Forward(error)) => {
            record(Outcome::UpstreamError);
            Err(IngestError::Forward(error))
        }
        Err(DeliveryError::Spool {
            source,
            retry_after_secs,
        }) => {
            record(Outcome::SpoolFull);
            Err(IngestError::Spool {
                source,
                retry_after_secs,
            })
        }
    }
}

/// Most bytes an upload request may hold (received, and decoded): its files
/// (`limits.max_attachments_size`) and its event.
fn upload_size_limit(limits: &LimitsConfig) -> usize {
    limits
        .max_attachments_size
        .saturating_add(limits.max_event_size)
}

/// An upload endpoint's answer, as Relay gives it, once the envelope is accepted (by the
/// store or the spool): the minidump and Unreal endpoints answer 200 with the event id
/// as plain hyphenated text (and never 429: crash reporters do not retry well, so a
/// rate-limited crash is answered as accepted, as Relay does); the attachment endpoint
/// answers 201 with no body. Other answers (4xx, 5xx) are relayed as they are.
fn upload_answer(
    endpoint: IngestEndpoint,
    response: Response<Full<Bytes>>,
    event_id: Option<&str>,
) -> Response<Full<Bytes>> {
    let status = response.status();
    let accepted = status.is_success()
        || (status == StatusCode::TOO_MANY_REQUESTS && endpoint != IngestEndpoint::Attachments);
    if !endpoint.is_upload() || !accepted {
        return response;
    }
    let (status, body, content_type) = match endpoint {
        IngestEndpoint::Attachments => (StatusCode::CREATED, String::new(), "text/plain"),
        _ => (
            StatusCode::OK,
            event_id.map(native::hyphenated).unwrap_or_default(),
            "text/plain; charset=utf-8",
        ),
    };
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}

/// The answer for a request accepted without the upstream's own answer: 200 with the
/// event id, as Sentry answers (`{}` when the request has no event id).
fn accepted(event_id: Option<&str>) -> Response<Full<Bytes>> {
    let body = match event_id {
        Some(id) => serde_json::json!({ "id": id }).to_string(),
        None => "{}".to_owned(),
    };
    json_response(StatusCode::OK, Bytes::from(body))
}

/// Resolves an envelope's auth: the request's, checked against the header `dsn` when
/// both exist, or the `dsn` alone (its key checked against the project). The secret of
/// a DSN is removed from the header before it is forwarded.
fn envelope_auth(
    request_auth: Option<Auth>,
    envelope: &mut Envelope,
    project: &Project,
) -> Result<Auth, IngestError> {
    let project_id = project.id;
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
    if let Some(public) = envelope.dsn().and_then(dsn_without_secret) {
        let mut headers: Headers = serde_json::from_slice(envelope.header())
            .map_err(|_| IngestError::Envelope(EnvelopeError::InvalidHeader))?;
        headers.insert("dsn".to_owned(), serde_json::Value::String(public));
        let json = serde_json::to_vec(&headers)
            .map_err(|_| IngestError::Envelope(EnvelopeError::Serialize))?;
        envelope
            .set_header(Bytes::from(json))
            .map_err(IngestError::Envelope)?;
    }
    Ok(auth)
}

/// The DSN without the `:secret` of its userinfo; `None` when it has no secret (or is
/// not a DSN).
fn dsn_without_secret(dsn: &str) -> Option<String> {
    crate::protocol::dsn::Dsn::parse(dsn).ok()?.without_secret()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_with(encodings: &[&str]) -> request::Parts {
        let mut builder = http::Request::builder();
        for value in encodings {
            builder = builder.header(header::CONTENT_ENCODING, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn every_compressed_body_is_offloaded_whatever_its_size() {
        for coding in ["gzip", "deflate", "br", "zstd", "x-gzip", "compress"] {
            assert!(needs_offload(10, &parts_with(&[coding])), "{coding}");
        }
        assert!(needs_offload(10, &parts_with(&["identity", "gzip"])));
        for identity in [&[][..], &["identity"][..], &["UTF-8"][..], &[""][..]] {
            assert!(!needs_offload(10, &parts_with(identity)), "{identity:?}");
            assert!(needs_offload(OFFLOAD_BYTES, &parts_with(identity)));
        }
    }

    #[test]
    fn dsn_secret_is_removed() {
        assert_eq!(
            dsn_without_secret("https://abc:s3cret@o1.ingest.example.com/42").as_deref(),
            Some("https://abc@o1.ingest.example.com/42")
        );
        assert_eq!(dsn_without_secret("https://abc@host/42"), None);
        assert_eq!(dsn_without_secret("not a dsn"), None);
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
}
