//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`, seeds plus every input
//! the fuzzers kept, crashes fixed included) through the same checks as the cargo-fuzz
//! targets, on stable, so a regression fails `cargo test`.

#[allow(dead_code)]
#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file of `fuzz/corpus/<target>`; returns how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target}: {} fails", path.display());
        count += 1;
    }
    count
}

#[test]
fn envelope_corpus() {
    assert!(replay("envelope", checks::envelope) > 0);
}

#[test]
fn decode_corpus() {
    assert!(replay("decode", checks::decode) > 0);
}

#[test]
fn scrub_corpus() {
    assert!(replay("scrub", checks::scrub) > 0);
}

#[test]
fn project_config_corpus() {
    assert!(replay("project_config", checks::project_config) > 0);
}

#[test]
fn selector_corpus() {
    assert!(replay("selector", checks::selector) > 0);
}

/// The leak properties (`checks::leak`, `checks::recording_leak`) on 4,000 generated
/// inputs: every pii-true field, alone and inside text, emails and IPv4 addresses of
/// every shape the generator makes (the `leak` fuzz target explores further).
#[test]
fn leak_properties_on_generated_inputs() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut inputs = 0;
    for _ in 0..4000 {
        let mut bytes = [0u8; 40];
        for b in &mut bytes {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        checks::leak(&bytes);
        checks::recording_leak(&bytes);
        inputs += 1;
    }
    assert_eq!(inputs, 4000);
}

#[test]
fn multipart_corpus() {
    assert!(replay("multipart", checks::multipart) > 0);
}

#[test]
fn minidump_scrub_corpus() {
    assert!(replay("minidump_scrub", checks::minidump_scrub) > 0);
}
