//! Engine throughput over the shared corpus (`tests/fixtures/corpus/events.jsonl`):
//! (a) the default data scrubbing, (b) an advanced config with 20+ rules incl. hashing,
//! and the floor: `serde_json::Value` parse + write of the same bytes.
//!
//! Also: the same advanced rules as shadow rules against live (`shadow` group).
//!
//! Run: `cargo bench --bench scrub` (`cargo bench --bench scrub -- shadow` for the shadow
//! pair alone)

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The same allocator the `scrubgate` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};

fn corpus() -> Vec<Vec<u8>> {
    let text = include_str!("../tests/fixtures/corpus/events.jsonl");
    text.lines().map(|l| l.as_bytes().to_vec()).collect()
}

fn bench(c: &mut Criterion) {
    let events = corpus();
    let total: usize = events.iter().map(Vec::len).sum();
    let default = ProjectConfig::from_config_value(serde_json::json!({
        "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true}
    }))
    .expect("default config compiles");
    let advanced = ProjectConfig::from_json(
        include_bytes!("../tests/fixtures/rules/advanced.json"),
        &|_| None,
    )
    .expect("advanced config compiles");
    let opts = ScrubOptions::default();

    let mut group = c.benchmark_group("corpus");
    group.throughput(Throughput::Bytes(total as u64));
    group.sample_size(20);
    group.bench_function("floor_serde_value_roundtrip", |b| {
        b.iter(|| {
            for e in &events {
                let v: serde_json::Value = serde_json::from_slice(e).expect("corpus is JSON");
                let out = serde_json::to_vec(&v).expect("writes");
                std::hint::black_box(out);
            }
        })
    });
    group.bench_function("tree_parse_write_no_rules", |b| {
        // One arena for the run, reset per event, as the scrubber keeps one per thread.
        let mut bump = scrubgate::scrub::json::Bump::new();
        b.iter(|| {
            for e in &events {
                let text = std::str::from_utf8(e).expect("utf-8");
                let tree = scrubgate::scrub::json::parse(text, &bump, 128).expect("parses");
                let mut out = Vec::with_capacity(e.len());
                scrubgate::scrub::json::write(&mut out, &tree);
                std::hint::black_box(out);
                bump.reset();
            }
        })
    });
    // One pass of `f` over the corpus per iteration.
    let over_corpus = |f: &dyn Fn(&[u8])| {
        for e in &events {
            f(e);
        }
    };
    let scrub = |rules: &ProjectConfig, opts: &ScrubOptions, e: &[u8]| {
        let out = rules.rules.scrub(ItemKind::Event, e, opts).expect("scrubs");
        std::hint::black_box(out);
    };
    let evaluate = |rules: &ProjectConfig, opts: &ScrubOptions, e: &[u8]| {
        let report = rules
            .rules
            .evaluate(ItemKind::Event, e, opts)
            .expect("evaluates");
        std::hint::black_box(report);
    };
    group.bench_function("a_default_scrubbing", |b| {
        b.iter(|| over_corpus(&|e| scrub(&default, &opts, e)))
    });
    group.bench_function("b_advanced_rules", |b| {
        b.iter(|| over_corpus(&|e| scrub(&advanced, &opts, e)))
    });
    group.finish();

    // Shadow rules (config.scrubgate.shadow): the same advanced rules evaluated as shadow
    // rules on the same events (nothing written) against applying them live, in one
    // group so that the pair runs side by side. Shadow must cost at most what the rules
    // cost live.
    let mut shadow = c.benchmark_group("shadow");
    shadow.throughput(Throughput::Bytes(total as u64));
    shadow.sample_size(20);
    shadow.bench_function("live_advanced_rules", |b| {
        b.iter(|| over_corpus(&|e| scrub(&advanced, &opts, e)))
    });
    shadow.bench_function("shadow_advanced_rules", |b| {
        b.iter(|| over_corpus(&|e| evaluate(&advanced, &opts, e)))
    });
    // A sampled payload (one per project every 100 ms): paths and shapes recorded.
    let sampled = ScrubOptions {
        record_paths: true,
        ..ScrubOptions::default()
    };
    shadow.bench_function("shadow_advanced_rules_sampled", |b| {
        b.iter(|| over_corpus(&|e| evaluate(&advanced, &sampled, e)))
    });
    shadow.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
