//! Sentry wire formats: auth payloads, envelope framing, legacy store bodies and the
//! client IP behind trusted proxies.
//!
//! Everything here is pure (no I/O, no tokio): bytes and header values in, typed values
//! or a cheap error out. Each error enum maps itself to an HTTP status (`status()`) and a
//! static `detail()` text, so the server answers `{"detail": ...}` without formatting on
//! the hot path.

pub mod auth;
pub mod client_ip;
pub mod envelope;
pub mod store;
