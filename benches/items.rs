//! Per-item engine throughput: a 100-span v2 container and a 100-record log container,
//! built by repeating the records of the SDK fixtures (tests/fixtures/sdk-envelopes) with
//! a distinct planted email per record, scrubbed with the default data scrubbing plus
//! `$string: [@email, @ip]`, against the floor: `serde_json::Value` parse + write of the
//! same bytes; and the event corpus with the same rules, for comparison.
//!
//! Run: `cargo bench --bench items`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};

/// The same allocator the `scrubgate` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};

/// The records of the first `{"items": [...]}` payload line of a fixture envelope.
fn fixture_records(envelope: &str) -> Vec<Value> {
    envelope
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("items").and_then(Value::as_array).cloned())
        .expect("fixture has a container payload")
}

/// A container of `n` records cycled from `records`, each with a planted email attribute.
fn container(records: &[Value], n: usize) -> Vec<u8> {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = records[i % records.len()].clone();
            r["attributes"]["app.contact"] = json!({
                "type": "string",
                "value": format!("contact user{i}@example.com from 10.0.{}.{}", i / 256, i % 256),
            });
            r
        })
        .collect();
    serde_json::to_vec(&json!({"version": 2, "items": items})).expect("serializable")
}

fn bench(c: &mut Criterion) {
    let spans = container(
        &fixture_records(include_str!(
            "../tests/fixtures/sdk-envelopes/node-span.envelope"
        )),
        100,
    );
    let logs = container(
        &[
            fixture_records(include_str!(
                "../tests/fixtures/sdk-envelopes/node-log.envelope"
            )),
            fixture_records(include_str!(
                "../tests/fixtures/sdk-envelopes/python-log.envelope"
            )),
        ]
        .concat(),
        100,
    );
    let project = ProjectConfig::from_config_value(json!({
        "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true},
        "piiConfig": {"applications": {"$string": ["@email", "@ip"]}}
    }))
    .expect("config compiles");
    let opts = ScrubOptions::default();

    for (name, kind, bytes) in [
        ("span_container_100", ItemKind::Span, &spans),
        ("log_container_100", ItemKind::Log, &logs),
    ] {
        let out = project
            .rules
            .scrub(kind, bytes, &opts)
            .expect("container scrubs");
        assert!(
            !String::from_utf8_lossy(&out.bytes).contains("user0@example.com"),
            "{name}: planted email scrubbed"
        );
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.sample_size(20);
        group.bench_function("floor_serde_value_roundtrip", |b| {
            b.iter(|| {
                let v: Value = serde_json::from_slice(bytes).expect("container is JSON");
                std::hint::black_box(serde_json::to_vec(&v).expect("serializable"))
            })
        });
        group.bench_function("default_plus_email_ip", |b| {
            b.iter(|| {
                std::hint::black_box(
                    project
                        .rules
                        .scrub(kind, bytes, &opts)
                        .expect("container scrubs"),
                )
            })
        });
        group.finish();
    }

    // The same rules on the event corpus, for the comparison the item figures are read
    // against: records relative to the floor against events relative to the floor.
    let corpus = include_str!("../tests/fixtures/corpus/events.jsonl");
    let events: Vec<&[u8]> = corpus
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::as_bytes)
        .collect();
    let mut group = c.benchmark_group("event_corpus_same_rules");
    group.throughput(Throughput::Bytes(
        events.iter().map(|e| e.len() as u64).sum(),
    ));
    group.sample_size(10);
    group.bench_function("floor_serde_value_roundtrip", |b| {
        b.iter(|| {
            for event in &events {
                let v: Value = serde_json::from_slice(event).expect("event is JSON");
                std::hint::black_box(serde_json::to_vec(&v).expect("serializable"));
            }
        })
    });
    group.bench_function("default_plus_email_ip", |b| {
        b.iter(|| {
            for event in &events {
                std::hint::black_box(
                    project
                        .rules
                        .scrub(ItemKind::Event, event, &opts)
                        .expect("event scrubs"),
                );
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
