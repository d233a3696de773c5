//! Integration tests: scrubgate on `127.0.0.1:0` in front of a recording upstream, one
//! test binary (`cargo test --test it`).

mod auth;
mod cli;
mod conn;
mod console;
mod cors;
mod delivery;
mod envelope;
mod fault;
mod item_table;
mod limits;
mod logs;
mod metrics;
mod native;
mod reload;
mod sdk;
mod server;
mod spool;
mod store;
mod support;
