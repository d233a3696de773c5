//! Fuzz target `leak`: see `fuzz/checks.rs` (`leak` and `recording_leak`).
#![no_main]

#[allow(dead_code)]
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::leak(data);
    checks::recording_leak(data);
});
