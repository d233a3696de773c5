//! Routing: which ingest endpoint a request path names.
//!
//! Relay's ingest paths are `/api/{project_id}/{store,envelope,security,csp-report}/`
//! (trailing slash required, as in Relay), `/api/{project_id}/minidump/` (slash
//! optional), `/api/{project_id}/events/{event_id}/attachments/` and
//! `/api/{project_id}/unreal/{sentry_key}/`. Runs of slashes are folded first, as
//! Relay's `NormalizePath` middleware does, so `//api/42//store/` works too.

use std::borrow::Cow;

use crate::metrics::Endpoint;

/// An ingest endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestEndpoint {
    /// `/api/{id}/store/`: one JSON event (or an envelope, by `Content-Type`).
    Store,
    /// `/api/{id}/envelope/`.
    Envelope,
    /// `/api/{id}/security/`: a browser security report.
    Security,
    /// `/api/{id}/csp-report/`: the same as `security`, under its other name.
    CspReport,
    /// `/api/{id}/minidump/`: a native crash (multipart or a raw dump).
    Minidump,
    /// `/api/{id}/events/{event_id}/attachments/`: files of an event (multipart).
    Attachments,
    /// `/api/{id}/unreal/{sentry_key}/`: an Unreal Engine crash report.
    Unreal,
}

impl IngestEndpoint {
    /// The path segment after the project id.
    pub fn segment(self) -> &'static str {
        match self {
            IngestEndpoint::Store => "store",
            IngestEndpoint::Envelope => "envelope",
            IngestEndpoint::Security => "security",
            IngestEndpoint::CspReport => "csp-report",
            IngestEndpoint::Minidump => "minidump",
            IngestEndpoint::Attachments => "attachments",
            IngestEndpoint::Unreal => "unreal",
        }
    }

    /// The `endpoint` metric label.
    pub fn metric_label(self) -> Endpoint {
        match self {
            IngestEndpoint::Store => Endpoint::Store,
            IngestEndpoint::Envelope => Endpoint::Envelope,
            IngestEndpoint::Security | IngestEndpoint::CspReport => Endpoint::Security,
            IngestEndpoint::Minidump => Endpoint::Minidump,
            IngestEndpoint::Attachments => Endpoint::Attachments,
            IngestEndpoint::Unreal => Endpoint::Unreal,
        }
    }

    /// True for the native upload endpoints (minidump, attachments, Unreal), whose
    /// requests become envelopes.
    pub fn is_upload(self) -> bool {
        matches!(
            self,
            IngestEndpoint::Minidump | IngestEndpoint::Attachments | IngestEndpoint::Unreal
        )
    }

    /// True for the security report endpoints.
    pub fn is_security(self) -> bool {
        matches!(self, IngestEndpoint::Security | IngestEndpoint::CspReport)
    }
}

/// Where a path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// An ingest endpoint; the project id is `None` when the segment is not a number
    /// (answered 400, as in Relay).
    Ingest {
        /// Which endpoint.
        endpoint: IngestEndpoint,
        /// The `{project_id}` segment, parsed.
        project_id: Option<u64>,
    },
    /// Anything else (404).
    NotFound,
}

/// Matches a request path (without the query).
pub fn route(path: &str) -> Route {
    let path = fold_slashes(path);
    let Some(rest) = path.strip_prefix("/api/") else {
        return Route::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let endpoint = match segments[..] {
        [_, "store", ""] => IngestEndpoint::Store,
        [_, "envelope", ""] => IngestEndpoint::Envelope,
        [_, "security", ""] => IngestEndpoint::Security,
        [_, "csp-report", ""] => IngestEndpoint::CspReport,
        [_, "minidump"] | [_, "minidump", ""] => IngestEndpoint::Minidump,
        [_, "events", id, "attachments", ""] if !id.is_empty() => IngestEndpoint::Attachments,
        [_, "unreal", key, ""] if !key.is_empty() => IngestEndpoint::Unreal,
        _ => return Route::NotFound,
    };
    let id = segments[0];
    if id.is_empty() {
        return Route::NotFound;
    }
    let project_id = if id.bytes().all(|b| b.is_ascii_digit()) {
        id.parse::<u64>().ok()
    } else {
        None
    };
    Route::Ingest {
        endpoint,
        project_id,
    }
}

/// The third path segment of an upload route: the event id of
/// `/api/{id}/events/{event_id}/attachments/`, the key of `/api/{id}/unreal/{key}/`.
pub fn upload_parameter(path: &str) -> Option<String> {
    let path = fold_slashes(path);
    path.strip_prefix("/api/")?
        .split('/')
        .nth(2)
        .filter(|segment| !segment.is_empty())
        .map(str::to_owned)
}

/// Folds runs of `/` into one.
fn fold_slashes(path: &str) -> Cow<'_, str> {
    if !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut previous_slash = false;
    for c in path.chars() {
        if c == '/' && previous_slash {
            continue;
        }
        previous_slash = c == '/';
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest(endpoint: IngestEndpoint, id: u64) -> Route {
        Route::Ingest {
            endpoint,
            project_id: Some(id),
        }
    }

    #[test]
    fn ingest_paths() {
        assert_eq!(route("/api/42/store/"), ingest(IngestEndpoint::Store, 42));
        assert_eq!(
            route("/api/7/envelope/"),
            ingest(IngestEndpoint::Envelope, 7)
        );
        assert_eq!(
            route("/api/1/security/"),
            ingest(IngestEndpoint::Security, 1)
        );
        assert_eq!(
            route("/api/1/csp-report/"),
            ingest(IngestEndpoint::CspReport, 1)
        );
        assert_eq!(
            route("//api//42///store/"),
            ingest(IngestEndpoint::Store, 42)
        );
    }

    #[test]
    fn upload_paths() {
        assert_eq!(
            route("/api/42/minidump/"),
            ingest(IngestEndpoint::Minidump, 42)
        );
        assert_eq!(
            route("/api/42/minidump"),
            ingest(IngestEndpoint::Minidump, 42)
        );
        assert_eq!(
            route("/api/42/events/0123abcd/attachments/"),
            ingest(IngestEndpoint::Attachments, 42)
        );
        assert_eq!(
            route("/api/42/unreal/abcdef/"),
            ingest(IngestEndpoint::Unreal, 42)
        );
        assert_eq!(
            upload_parameter("/api/42/events/0123abcd/attachments/").as_deref(),
            Some("0123abcd")
        );
        assert_eq!(
            upload_parameter("/api/42/unreal/k3y/").as_deref(),
            Some("k3y")
        );
    }

    #[test]
    fn bad_project_id_is_still_an_ingest_route() {
        assert_eq!(
            route("/api/abc/store/"),
            Route::Ingest {
                endpoint: IngestEndpoint::Store,
                project_id: None
            }
        );
        assert_eq!(
            route("/api/99999999999999999999999/envelope/"),
            Route::Ingest {
                endpoint: IngestEndpoint::Envelope,
                project_id: None
            }
        );
    }

    #[test]
    fn other_paths_are_not_found() {
        for path in [
            "/",
            "/api/",
            "/api/42/store",
            "/api/42/store/x",
            "/api/42/minidump/x",
            "/api/42/events//attachments/",
            "/api/42/unreal/",
            "/api/store/",
            "/metrics",
            "/api//store/",
        ] {
            assert_eq!(route(path), Route::NotFound, "{path}");
        }
    }
}
