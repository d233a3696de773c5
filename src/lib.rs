//! scrubgate: a PII-scrubbing ingest proxy for Sentry-compatible error-tracking events.
//!
//! Data flow for one request:
//!
//! 1. `server` accepts the connection (bounded), routes `/api/{id}/store/` or
//!    `/api/{id}/envelope/`, and `protocol::auth` parses the auth (header, query or DSN).
//! 2. `projects` answers with the project's compiled rules and public keys (lock-free
//!    load); an unknown project or key is refused before the body is read.
//! 3. `server::body` reads the body within the limits and decompresses it within the
//!    limits (a bomb stops at the cap); `protocol` splits it into items.
//! 4. `scrub` walks each event-like item once and returns the new bytes plus a report.
//! 5. `forward` sends the scrubbed request upstream and relays the answer; the report
//!    feeds `metrics`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod forward;
pub mod metrics;
pub mod projects;
pub mod protocol;
pub mod scrub;
pub mod server;
