//! HTTP server: routing, body limits and decompression, error mapping.

pub mod body;
