//! Scrubs the corpus once (for `valgrind --tool=callgrind` instruction counts, which are
//! stable on a loaded machine): `cargo build --release --example profile_scrub`, then
//! `valgrind --tool=callgrind target/release/examples/profile_scrub [floor|default|advanced]`.
use scrubgate::scrub::{ItemKind, ProjectConfig, ScrubOptions};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let text = include_str!("../tests/fixtures/corpus/events.jsonl");
    let mut events: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    let mode = std::env::args().nth(1).unwrap_or_else(|| "default".into());
    if std::env::args().any(|a| a == "--small") {
        // The corpus event closest to 4 KB, 1000 times (per-event fixed costs).
        let small = *events
            .iter()
            .min_by_key(|e| e.len().abs_diff(4096))
            .expect("corpus is not empty");
        events = vec![small; 1000];
    }
    let project = match mode.as_str() {
        "floor" => {
            for e in &events {
                let v: serde_json::Value = serde_json::from_slice(e).expect("corpus is JSON");
                std::hint::black_box(serde_json::to_vec(&v).expect("writes"));
            }
            return;
        }
        rule if rule.starts_with('@') => ProjectConfig::from_config_value(
            serde_json::json!({"piiConfig": {"applications": {"$string": [rule]}}}),
        ),
        "advanced" => ProjectConfig::from_json(
            include_bytes!("../tests/fixtures/rules/advanced.json"),
            &|_| None,
        ),
        _ => ProjectConfig::from_json(
            include_bytes!("../tests/fixtures/rules/defaults.json"),
            &|_| None,
        ),
    }
    .expect("fixture config compiles");
    for e in &events {
        std::hint::black_box(
            project
                .rules
                .scrub(ItemKind::Event, e, &ScrubOptions::default())
                .expect("scrubs"),
        );
    }
}
