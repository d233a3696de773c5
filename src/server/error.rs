//! `IngestError`: every way an ingest request can fail, with its one mapping to an HTTP
//! answer ([`IngestError::status`], [`IngestError::detail`]) and to an outcome label
//! ([`IngestError::outcome`]).
//!
//! Answers are JSON `{"detail": "..."}` as in Relay. Details are static texts: they never
//! contain payload content, keys or secrets.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::body::store::StoreError;
use crate::body::{BodyError, ACCEPT_ENCODING};
use crate::forward::ForwardError;
use crate::metrics::Outcome;
use crate::protocol::auth::AuthError;
use crate::protocol::envelope::EnvelopeError;
use crate::protocol::multipart::MultipartError;
use crate::protocol::native::UploadError;
use crate::scrub::{ItemKind, ScrubError};
use crate::spool::SpoolError;

/// `Retry-After` (seconds) when scrubgate itself is at its in-flight bound: the SDK may
/// try again almost at once.
pub const OVERLOADED_RETRY_AFTER_SECS: &str = "1";

/// `Retry-After` (seconds) when the upstream cannot be reached or timed out: long enough
/// for a restarting store to come back, the same back-off SDKs use by default.
pub const UPSTREAM_RETRY_AFTER_SECS: &str = "60";

/// Why an ingest request was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No route for this path.
    #[error("not found")]
    NotFound,
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The `{project_id}` path segment is not a number.
    #[error("invalid project id")]
    InvalidProjectId,
    /// The auth payload is missing, duplicated or malformed.
    #[error("invalid auth")]
    Auth(#[source] AuthError),
    /// The envelope header's `dsn` names another project or key than the request.
    #[error("dsn in the envelope header does not match the request")]
    DsnMismatch,
    /// No config for the project id.
    #[error("unknown project")]
    UnknownProject,
    /// The project config is disabled.
    #[error("project disabled")]
    ProjectDisabled,
    /// The public key is not one of the project's keys.
    #[error("unknown public key")]
    UnknownKey,
    /// The public key exists but is disabled.
    #[error("public key disabled")]
    KeyDisabled,
    /// A security report with a MIME type Relay does not accept.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Reading or decompressing the body failed (too large, timeout, corrupt...).
    #[error("invalid body")]
    Body(#[source] BodyError),
    /// A legacy store body (base64, zlib) could not be decoded.
    #[error("invalid store body")]
    StoreBody(#[source] StoreError),
    /// The envelope framing is malformed.
    #[error("invalid envelope")]
    Envelope(#[source] EnvelopeError),
    /// One event-like payload is larger than `limits.max_event_size`.
    #[error("item too large")]
    ItemTooLarge,
    /// A payload could not be scrubbed (not JSON, too deep...): the whole request is
    /// refused, since nothing unscrubbed may be forwarded.
    #[error("cannot scrub {kind:?} payload")]
    Scrub {
        /// What was being scrubbed.
        kind: ItemKind,
        /// The engine's reason.
        #[source]
        source: ScrubError,
    },
    /// A native crash upload (minidump, attachments, Unreal) or sentry-native's msgpack
    /// event data cannot be read.
    #[error("invalid upload")]
    Upload(#[source] UploadError),
    /// An Unreal crash report for a project that does not forward items scrubgate
    /// cannot scrub.
    #[error("unreal crash reports are not scrubbed")]
    UnrealNotScrubbed,
    /// Too many requests in flight.
    #[error("too many requests in flight")]
    Overloaded,
    /// The upstream could not be reached, timed out or failed.
    #[error("upstream delivery failed")]
    Forward(#[source] ForwardError),
    /// The upstream could not take the request and the spool could not either (full,
    /// or its write failed).
    #[error("the upstream is unavailable and the spool cannot take the request")]
    Spool {
        /// Why the spool refused it.
        #[source]
        source: SpoolError,
        /// Seconds until the upstream is next tried, for `Retry-After`.
        retry_after_secs: u64,
    },
}

impl IngestError {
    /// The HTTP status of the answer: the one place errors become statuses, as Relay
    /// answers them.
    ///
    /// - Auth: 401 for a missing, duplicated or malformed payload; 400 for an unsupported
    ///   version, a bad key or a bad DSN.
    /// - Body: 413 over a limit, 408 when the body is not sent in time, 400 when it
    ///   cannot be read or decompressed, and 415 for a content coding we do not decode
    ///   (RFC 9110 section 15.5.16; Relay decodes unknown codings as identity and fails
    ///   with a 400 on the garbled body, while 415 tells the SDK author why).
    /// - Upstream: 503 when it may recover (unreachable, timed out, failed mid-exchange,
    ///   outbox unwritable; with `Retry-After`, which SDKs with an offline cache honour),
    ///   502 for an oversized answer, 500 for our own setup problems. With the spool,
    ///   503 only when the spool cannot take the request either, with a `Retry-After`
    ///   no longer than the time to the next probe of the upstream.
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::NotFound => StatusCode::NOT_FOUND,
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::InvalidProjectId | IngestError::DsnMismatch => StatusCode::BAD_REQUEST,
            IngestError::Auth(
                AuthError::MultipleSources | AuthError::Missing | AuthError::Malformed,
            ) => StatusCode::UNAUTHORIZED,
            IngestError::Auth(
                AuthError::UnsupportedVersion(_) | AuthError::BadPublicKey | AuthError::BadDsn,
            ) => StatusCode::BAD_REQUEST,
            IngestError::UnknownProject
            | IngestError::ProjectDisabled
            | IngestError::UnknownKey
            | IngestError::KeyDisabled => StatusCode::FORBIDDEN,
            IngestError::UnsupportedMediaType
            | IngestError::Body(BodyError::UnsupportedEncoding) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::Body(BodyError::TooLarge | BodyError::Refused)
            | IngestError::StoreBody(StoreError::TooLarge)
            | IngestError::ItemTooLarge
            | IngestError::Upload(
                UploadError::AttachmentsTooLarge
                | UploadError::EventTooLarge
                | UploadError::Multipart(MultipartError::TooManyParts(_))
                | UploadError::Container(BodyError::TooLarge),
            ) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Upload(_) => StatusCode::BAD_REQUEST,
            IngestError::UnrealNotScrubbed => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::Body(BodyError::Timeout) => StatusCode::REQUEST_TIMEOUT,
            IngestError::Body(BodyError::Read(_) | BodyError::Corrupt)
            | IngestError::StoreBody(
                StoreError::Empty | StoreError::InvalidBase64 | StoreError::InvalidZlib,
            )
            | IngestError::Scrub { .. } => StatusCode::BAD_REQUEST,
            IngestError::Envelope(EnvelopeError::Serialize) => StatusCode::INTERNAL_SERVER_ERROR,
            IngestError::Envelope(_) => StatusCode::BAD_REQUEST,
            IngestError::Overloaded | IngestError::Body(BodyError::OverBudget) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IngestError::Forward(
                ForwardError::Connect(_)
                | ForwardError::Timeout(_)
                | ForwardError::Request(_)
                | ForwardError::Response(_)
                | ForwardError::Outbox { .. },
            ) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Spool { .. } => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Forward(ForwardError::ResponseTooLarge { .. }) => StatusCode::BAD_GATEWAY,
            IngestError::Forward(
                ForwardError::InvalidPath
                | ForwardError::InvalidUpstreamUrl
                | ForwardError::NoTrustRoots
                | ForwardError::Tls(_)
                | ForwardError::Encode(_),
            ) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `detail` text of the answer (static: no payload, key or secret in it).
    pub fn detail(&self) -> &'static str {
        match self {
            IngestError::NotFound => "not found",
            IngestError::MethodNotAllowed => "method not allowed",
            IngestError::InvalidProjectId => "invalid project id",
            IngestError::Auth(error) => match error {
                AuthError::MultipleSources => "multiple authorization payloads detected",
                AuthError::Missing => "missing authorization information",
                AuthError::Malformed => "malformed authorization payload",
                AuthError::UnsupportedVersion(_) => {
                    "client sdk requested unsupported protocol version"
                }
                AuthError::BadPublicKey => "invalid public key",
                AuthError::BadDsn => "invalid dsn",
            },
            IngestError::DsnMismatch => "dsn in the envelope header does not match the request",
            // Relay's text for every refused project or key; which one it was is in the
            // logs (at debug) and the outcome metric, not in the answer.
            IngestError::UnknownProject
            | IngestError::ProjectDisabled
            | IngestError::UnknownKey
            | IngestError::KeyDisabled => "event submission rejected with_reason: ProjectId",
            IngestError::UnsupportedMediaType => "unsupported media type",
            IngestError::Body(error) => match error {
                BodyError::TooLarge => "request body exceeds the size limit",
                BodyError::Timeout => "timed out reading the request body",
                BodyError::Read(_) => "failed to read the request body",
                BodyError::UnsupportedEncoding => "unsupported content encoding",
                BodyError::Corrupt => "failed to decompress the request body",
                BodyError::OverBudget => "too many request bytes in flight, retry later",
                // The only watch there is: an envelope item passed its limit.
                BodyError::Refused => "envelope item exceeds the size limit",
            },
            IngestError::StoreBody(error) => match error {
                StoreError::Empty => "empty event body",
                StoreError::InvalidBase64 => "failed to decode event body: invalid base64",
                StoreError::InvalidZlib => "failed to decode event body: invalid zlib data",
                StoreError::TooLarge => "event exceeds the size limit",
            },
            IngestError::Envelope(error) => match error {
                EnvelopeError::Empty => "empty envelope",
                EnvelopeError::InvalidHeader => "invalid envelope header",
                EnvelopeError::InvalidItemHeader { .. } => "invalid envelope item header",
                EnvelopeError::MissingItemType { .. } => "envelope item has no type",
                EnvelopeError::InvalidLength { .. } => "envelope item has an invalid length",
                EnvelopeError::UnexpectedEof { .. } => {
                    "envelope item runs past the end of the body"
                }
                EnvelopeError::MissingNewline { .. } => {
                    "envelope item is not followed by a newline"
                }
                EnvelopeError::Serialize => "failed to serialize envelope",
            },
            IngestError::ItemTooLarge => "envelope item exceeds the size limit",
            IngestError::Scrub {
                kind: ItemKind::EnvelopeHeader,
                source,
            } => match source {
                ScrubError::NotUtf8 | ScrubError::InvalidJson { .. } | ScrubError::NotAnObject => {
                    "invalid envelope header"
                }
                ScrubError::TooDeep { .. } => "invalid envelope header: it nests too deeply",
            },
            IngestError::Scrub { source, .. } => match source {
                ScrubError::NotUtf8 => "invalid event: payload is not valid UTF-8",
                ScrubError::InvalidJson { .. } => "invalid event: payload is not valid JSON",
                ScrubError::NotAnObject => "invalid event: payload is not a JSON object",
                ScrubError::TooDeep { .. } => "invalid event: payload nests too deeply",
            },
            IngestError::Upload(error) => match error {
                UploadError::Multipart(MultipartError::NoBoundary) => {
                    "invalid multipart body: not multipart/form-data with a boundary"
                }
                UploadError::Multipart(MultipartError::Malformed(_)) => "invalid multipart body",
                UploadError::Multipart(MultipartError::TooManyParts(_)) => {
                    "too many multipart parts (limits.max_multipart_parts)"
                }
                UploadError::MissingMinidump => {
                    "missing minidump: no upload_file_minidump field in the multipart body"
                }
                UploadError::NotAMinidump => "invalid minidump: it does not start with MDMP",
                UploadError::Container(BodyError::TooLarge) => {
                    "minidump exceeds the size limit once decompressed"
                }
                UploadError::Container(_) => "invalid minidump: corrupt compressed container",
                UploadError::AttachmentsTooLarge => "attachments exceed the size limit",
                UploadError::EventTooLarge => "event exceeds the size limit",
                UploadError::InvalidSentryField => "invalid sentry field: not a JSON object",
                UploadError::Msgpack(_) => "invalid msgpack event payload or breadcrumbs",
                UploadError::InvalidEvent => "invalid event: payload is not a JSON object",
                UploadError::NoFiles => "no attachment in the upload",
            },
            IngestError::UnrealNotScrubbed => {
                "unreal crash reports are not scrubbed; the project must set forwardUnknownItems to forward them unscrubbed"
            }
            IngestError::Overloaded => "too many requests in flight, retry later",
            IngestError::Forward(error) => match error {
                ForwardError::Timeout(_) => "upstream did not answer in time, retry later",
                ForwardError::Connect(_)
                | ForwardError::Request(_)
                | ForwardError::Response(_)
                | ForwardError::Outbox { .. } => "upstream unavailable, retry later",
                ForwardError::ResponseTooLarge { .. } => "invalid upstream answer",
                ForwardError::InvalidPath
                | ForwardError::InvalidUpstreamUrl
                | ForwardError::NoTrustRoots
                | ForwardError::Tls(_)
                | ForwardError::Encode(_) => "internal error",
            },
            IngestError::Spool {
                source: SpoolError::Full,
                ..
            } => "upstream unavailable and the spool is full, retry later",
            IngestError::Spool { .. } => "upstream unavailable and the spool failed, retry later",
        }
    }

    /// The outcome label counted for the refused event or envelope.
    pub fn outcome(&self) -> Outcome {
        match self {
            IngestError::NotFound
            | IngestError::MethodNotAllowed
            | IngestError::InvalidProjectId
            | IngestError::UnsupportedMediaType
            | IngestError::StoreBody(StoreError::Empty)
            | IngestError::StoreBody(StoreError::InvalidBase64)
            | IngestError::StoreBody(StoreError::InvalidZlib)
            | IngestError::Envelope(_)
            | IngestError::Scrub { .. }
            | IngestError::UnrealNotScrubbed
            | IngestError::DsnMismatch => Outcome::Invalid,
            IngestError::Upload(
                UploadError::AttachmentsTooLarge
                | UploadError::EventTooLarge
                | UploadError::Multipart(MultipartError::TooManyParts(_))
                | UploadError::Container(BodyError::TooLarge),
            ) => Outcome::TooLarge,
            IngestError::Upload(_) => Outcome::Invalid,
            IngestError::Auth(AuthError::UnsupportedVersion(_))
            | IngestError::Auth(AuthError::BadPublicKey)
            | IngestError::Auth(AuthError::BadDsn)
            | IngestError::Auth(AuthError::Missing)
            | IngestError::Auth(AuthError::MultipleSources)
            | IngestError::Auth(AuthError::Malformed) => Outcome::Unauthorized,
            IngestError::UnknownProject => Outcome::UnknownProject,
            IngestError::ProjectDisabled | IngestError::UnknownKey | IngestError::KeyDisabled => {
                Outcome::Forbidden
            }
            IngestError::Body(BodyError::TooLarge | BodyError::Refused)
            | IngestError::StoreBody(StoreError::TooLarge)
            | IngestError::ItemTooLarge => Outcome::TooLarge,
            IngestError::Body(
                BodyError::Timeout
                | BodyError::Read(_)
                | BodyError::UnsupportedEncoding
                | BodyError::Corrupt,
            ) => Outcome::Invalid,
            IngestError::Overloaded | IngestError::Body(BodyError::OverBudget) => {
                Outcome::Overloaded
            }
            IngestError::Forward(_) => Outcome::UpstreamError,
            IngestError::Spool { .. } => Outcome::SpoolFull,
        }
    }

    /// True for failures on our or the upstream's side (logged at `warn`); client errors
    /// are logged at `debug`.
    pub fn is_server_error(&self) -> bool {
        self.status().is_server_error()
    }

    /// The JSON answer: status, `{"detail": ...}`, and `Retry-After` on 503s
    /// (`Accept-Encoding` on an unsupported content coding).
    pub fn to_response(&self) -> Response<Full<Bytes>> {
        let status = self.status();
        let mut response = json_detail(status, self.detail());
        let headers = response.headers_mut();
        match self {
            IngestError::Overloaded | IngestError::Body(BodyError::OverBudget) => {
                headers.insert(
                    RETRY_AFTER,
                    HeaderValue::from_static(OVERLOADED_RETRY_AFTER_SECS),
                );
            }
            IngestError::Forward(_) if status == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(
                    RETRY_AFTER,
                    HeaderValue::from_static(UPSTREAM_RETRY_AFTER_SECS),
                );
            }
            IngestError::Spool {
                retry_after_secs, ..
            } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            IngestError::Body(BodyError::UnsupportedEncoding) => {
                headers.insert(
                    http::header::ACCEPT_ENCODING,
                    HeaderValue::from_static(ACCEPT_ENCODING),
                );
            }
            _ => {}
        }
        response
    }
}

/// A JSON answer `{"detail": "<detail>"}` with `status`.
pub fn json_detail(status: StatusCode, detail: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "detail": detail }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn statuses_follow_relay() {
        let cases: Vec<(IngestError, u16)> = vec![
            (IngestError::NotFound, 404),
            (IngestError::Auth(AuthError::Missing), 401),
            (IngestError::Auth(AuthError::MultipleSources), 401),
            (IngestError::Auth(AuthError::UnsupportedVersion(8)), 400),
            (IngestError::Auth(AuthError::Malformed), 401),
            (IngestError::Auth(AuthError::BadPublicKey), 400),
            (IngestError::Auth(AuthError::BadDsn), 400),
            (IngestError::InvalidProjectId, 400),
            (IngestError::DsnMismatch, 400),
            (IngestError::MethodNotAllowed, 405),
            (IngestError::Body(BodyError::UnsupportedEncoding), 415),
            (IngestError::Body(BodyError::Timeout), 408),
            (IngestError::StoreBody(StoreError::TooLarge), 413),
            (IngestError::StoreBody(StoreError::InvalidZlib), 400),
            (IngestError::Envelope(EnvelopeError::Serialize), 500),
            (
                IngestError::Forward(ForwardError::ResponseTooLarge { limit: 1 }),
                502,
            ),
            (IngestError::Forward(ForwardError::InvalidPath), 500),
            (IngestError::UnknownProject, 403),
            (IngestError::UnknownKey, 403),
            (IngestError::KeyDisabled, 403),
            (IngestError::ProjectDisabled, 403),
            (IngestError::UnsupportedMediaType, 415),
            (IngestError::Body(BodyError::TooLarge), 413),
            (IngestError::Body(BodyError::Corrupt), 400),
            (IngestError::Envelope(EnvelopeError::InvalidHeader), 400),
            (IngestError::ItemTooLarge, 413),
            (
                IngestError::Scrub {
                    kind: ItemKind::Event,
                    source: ScrubError::NotAnObject,
                },
                400,
            ),
            (IngestError::Overloaded, 503),
            (IngestError::Body(BodyError::OverBudget), 503),
            (
                IngestError::Forward(ForwardError::Timeout(std::time::Duration::from_secs(5))),
                503,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn outcomes_name_the_reason() {
        assert_eq!(
            IngestError::UnknownProject.outcome(),
            Outcome::UnknownProject
        );
        assert_eq!(IngestError::KeyDisabled.outcome(), Outcome::Forbidden);
        assert_eq!(
            IngestError::Auth(AuthError::Missing).outcome(),
            Outcome::Unauthorized
        );
        assert_eq!(
            IngestError::Body(BodyError::TooLarge).outcome(),
            Outcome::TooLarge
        );
        assert_eq!(IngestError::Overloaded.outcome(), Outcome::Overloaded);
        assert_eq!(
            IngestError::Envelope(EnvelopeError::Empty).outcome(),
            Outcome::Invalid
        );
    }

    #[tokio::test]
    async fn answers_are_json_details_with_retry_after_on_503() {
        let response = IngestError::Overloaded.to_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = body_json(response).await;
        assert_eq!(body["detail"], "too many requests in flight, retry later");

        let response =
            IngestError::Forward(ForwardError::Timeout(std::time::Duration::from_secs(1)))
                .to_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "60");

        let response = IngestError::Auth(AuthError::Missing).to_response();
        assert!(!response.headers().contains_key(RETRY_AFTER));
        assert_eq!(
            body_json(response).await["detail"],
            "missing authorization information"
        );
    }

    #[tokio::test]
    async fn an_envelope_header_that_cannot_be_scrubbed_is_named_as_such() {
        let error = IngestError::Scrub {
            kind: ItemKind::EnvelopeHeader,
            source: ScrubError::TooDeep { limit: 128 },
        };
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        let body = body_json(error.to_response()).await;
        assert_eq!(
            body["detail"],
            "invalid envelope header: it nests too deeply"
        );
        let event = IngestError::Scrub {
            kind: ItemKind::Event,
            source: ScrubError::NotAnObject,
        };
        assert_eq!(
            body_json(event.to_response()).await["detail"],
            "invalid event: payload is not a JSON object"
        );
    }
}
