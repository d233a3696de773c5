//! Sentry wire formats: auth payloads, envelope framing and the client IP behind trusted
//! proxies.
//!
//! Everything here is pure (no I/O, no tokio): bytes and header values in, typed values
//! or a cheap error out. How each error is answered over HTTP is decided in one place,
//! `server::error`.

pub mod auth;
pub mod client_ip;
pub mod dsn;
pub mod envelope;
pub mod item_scan;
pub mod msgpack;
pub mod multipart;
pub mod native;
