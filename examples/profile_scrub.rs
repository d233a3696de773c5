//! Scrubs the corpus once (for `valgrind --tool=callgrind` instruction counts, which are
//! stable on a loaded machine): `cargo build --release --example profile_scrub`, then
//! `valgrind --tool=callgrind target/release/examples/profile_scrub [floor|default|advanced]`.
//!
//! `profile_scrub interleaved [ROUNDS]` times the floor, (a) and (b) in alternation, one
//! corpus pass each per round, and prints each one's median throughput, the ratios of
//! the medians to the floor's, and the median of each round's own ratio: on a VM whose
//! speed drifts, alternating keeps the three under the same conditions, which
//! criterion's one-after-the-other runs cannot.
//!
//! `profile_scrub MODE --repeat N` runs N passes of one workload, for a sampling profiler
//! (`perf record -e cpu-clock`), which sees where the time goes, stalls included.
use std::time::{Duration, Instant};

use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};

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
    let defaults = || {
        ProjectConfig::from_json(
            include_bytes!("../tests/fixtures/rules/defaults.json"),
            &|_| None,
        )
        .expect("fixture config compiles")
    };
    let advanced = || {
        ProjectConfig::from_json(
            include_bytes!("../tests/fixtures/rules/advanced.json"),
            &|_| None,
        )
        .expect("fixture config compiles")
    };
    let project = match mode.as_str() {
        "floor" => {
            for _ in 0..repeat_count().unwrap_or(1) {
                floor(&events);
            }
            return;
        }
        "interleaved" => {
            let rounds = std::env::args()
                .nth(2)
                .and_then(|r| r.parse().ok())
                .unwrap_or(30);
            interleaved(&events, &defaults(), &advanced(), rounds);
            return;
        }
        rule if rule.starts_with('@') => ProjectConfig::from_config_value(
            serde_json::json!({"piiConfig": {"applications": {"$string": [rule]}}}),
        )
        .expect("rule compiles"),
        "advanced" => advanced(),
        _ => defaults(),
    };
    if let Some(times) = repeat_count() {
        // For a sampling profiler (`perf record -e cpu-clock`): one workload, many passes.
        for _ in 0..times {
            scrub_all(&events, &project);
        }
        return;
    }
    if std::env::args().any(|a| a == "--warm") {
        // Steady state: the per-thread path memo filled by a first pass, which
        // `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_pass*'`
        // leaves out.
        scrub_all(&events, &project);
    }
    measured_pass(&events, &project);
}

/// `--repeat N`: the number of passes to run instead of the measured one.
fn repeat_count() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--repeat")?;
    args.get(at + 1)?.parse().ok()
}

/// The pass a profiler measures (see `--warm`).
#[inline(never)]
fn measured_pass(events: &[&[u8]], project: &ProjectConfig) {
    scrub_all(events, project);
}

/// The floor: `serde_json::Value` parse and write of every event.
fn floor(events: &[&[u8]]) {
    for e in events {
        let v: serde_json::Value = serde_json::from_slice(e).expect("corpus is JSON");
        std::hint::black_box(serde_json::to_vec(&v).expect("writes"));
    }
}

fn scrub_all(events: &[&[u8]], project: &ProjectConfig) {
    for e in events {
        std::hint::black_box(
            project
                .rules
                .scrub(ItemKind::Event, e, &ScrubOptions::default())
                .expect("scrubs"),
        );
    }
}

fn interleaved(
    events: &[&[u8]],
    defaults: &ProjectConfig,
    advanced: &ProjectConfig,
    rounds: usize,
) {
    let bytes: usize = events.iter().map(|e| e.len()).sum();
    let time = |f: &dyn Fn()| {
        let started = Instant::now();
        f();
        started.elapsed()
    };
    // Warm-up: caches, memos, allocator.
    floor(events);
    scrub_all(events, defaults);
    scrub_all(events, advanced);
    let mut runs: [Vec<Duration>; 3] = Default::default();
    for _ in 0..rounds {
        runs[0].push(time(&|| floor(events)));
        runs[1].push(time(&|| scrub_all(events, defaults)));
        runs[2].push(time(&|| scrub_all(events, advanced)));
    }
    // Each round's own ratios: the floor and the scrubs of one round ran back to back,
    // so their ratio is the least disturbed by the VM's speed changing between rounds.
    let round_ratio = |i: usize| -> f64 {
        let mut r: Vec<f64> = runs[0]
            .iter()
            .zip(&runs[i])
            .map(|(f, x)| f.as_secs_f64() / x.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    let (ratio_a, ratio_b) = (round_ratio(1), round_ratio(2));
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let [f, a, b] = runs.map(|mut v| median(&mut v));
    let mib = |d: Duration| bytes as f64 / d.as_secs_f64() / (1024.0 * 1024.0);
    println!(
        "{rounds} interleaved rounds over {} events ({bytes} bytes), medians:",
        events.len()
    );
    println!("floor (serde_json Value)  {:8.1} MiB/s  1", mib(f));
    println!(
        "(a) default scrubbing     {:8.1} MiB/s  {:.2}x  (median of round ratios {ratio_a:.2}x)",
        mib(a),
        f.as_secs_f64() / a.as_secs_f64()
    );
    println!(
        "(b) advanced rules        {:8.1} MiB/s  {:.2}x  (median of round ratios {ratio_b:.2}x)",
        mib(b),
        f.as_secs_f64() / b.as_secs_f64()
    );
}
