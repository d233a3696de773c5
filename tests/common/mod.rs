//! Helpers shared by the engine-level test crates (`tests/*.rs`); the integration tests
//! have theirs in `tests/it/support`.

use serde_json::{json, Value};

/// A project `config` with Relay's default data scrubbing: `scrubData`, `scrubDefaults`
/// and `scrubIpAddresses` on.
pub fn defaults() -> Value {
    json!({"datascrubbingSettings": {"scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true}})
}
