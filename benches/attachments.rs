//! Attachment scrubbing throughput, one core: a 4 MiB Linux minidump (its stack memory
//! mostly binary, with text, UTF-16LE strings, e-mails, IPs and home paths every few
//! hundred bytes) and a 1 MiB text log, scrubbed under `coverage = "all"` with default
//! data scrubbing, against the floor the issue names: one `regex::bytes` pass of the
//! same patterns over the same bytes.
//!
//!     cargo bench --bench attachments

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use regex::bytes::Regex;
use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::AttachmentKind;
use serde_json::json;

/// Deterministic filler bytes (xorshift).
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Stack-like memory: binary filler with a text line, a UTF-16LE string or a pointer
/// run every 256 bytes.
fn memory(len: usize) -> Vec<u8> {
    let mut out = filler(len, 0x9e37_79b9);
    let texts = [
        "user jane.doe@example.com connected from 10.1.2.3",
        "/home/janedoe/.config/app/settings.json",
        "GET /api/v1/orders?id=42 HTTP/1.1",
        "Authorization: Bearer abc.def.ghi",
    ];
    let mut at = 0;
    let mut n = 0;
    while at + 160 < len {
        let text = texts[n % texts.len()];
        let bytes: Vec<u8> = if n % 3 == 2 {
            text.encode_utf16().flat_map(u16::to_le_bytes).collect()
        } else {
            text.as_bytes().to_vec()
        };
        out[at..at + bytes.len()].copy_from_slice(&bytes);
        at += 256;
        n += 1;
    }
    out
}

/// A minidump with one thread whose stack is `memory`, one module and an environ stream.
fn minidump(stack: &[u8]) -> Vec<u8> {
    fn u32le(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let env = b"HOME=/home/janedoe\0API_TOKEN=tok_abcdef123456\0LANG=C\0";
    let name: Vec<u8> = "/home/janedoe/app/crashy"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let dir_rva = 32u32;
    let thread_rva = dir_rva + 36;
    let module_rva = thread_rva + 52;
    let stack_rva = module_rva + 112;
    let env_rva = stack_rva + stack.len() as u32;
    let name_rva = env_rva + env.len() as u32;
    let mut out = Vec::with_capacity(stack.len() + 1024);
    out.extend_from_slice(b"MDMP");
    for v in [0xa793, 3, dir_rva, 0, 0, 0, 0] {
        u32le(&mut out, v);
    }
    for v in [
        3,
        52,
        thread_rva,
        4,
        112,
        module_rva,
        0x4767_0007,
        env.len() as u32,
        env_rva,
    ] {
        u32le(&mut out, v);
    }
    // Thread list: one thread, its stack descriptor pointing at `stack`.
    for v in [
        1,
        1234,
        0,
        0,
        0,
        0,
        0,
        0,
        0x7ff0_0000,
        stack.len() as u32,
        stack_rva,
        0,
        0,
    ] {
        u32le(&mut out, v);
    }
    // Module list: one module named by the UTF-16LE string at `name_rva`.
    for v in [1, 0x40_0000, 0, 0x1000, 0, 0, name_rva] {
        u32le(&mut out, v);
    }
    out.extend_from_slice(&[0u8; 84]);
    out.extend_from_slice(stack);
    out.extend_from_slice(env);
    u32le(&mut out, name.len() as u32);
    out.extend_from_slice(&name);
    out.extend_from_slice(&[0, 0]);
    out
}

/// A text log: lines with e-mails, IPs, paths and plain text.
fn log(len: usize) -> Vec<u8> {
    let lines = [
        "2026-12-06T10:00:00Z INFO request served in 12ms\n",
        "2026-12-06T10:00:01Z WARN login failed for jane.doe@example.com from 192.168.10.20\n",
        "2026-12-06T10:00:02Z DEBUG cache at /Users/janedoe/Library/Caches/app\n",
        "2026-12-06T10:00:03Z INFO 3 orders exported\n",
    ];
    let mut out = Vec::with_capacity(len);
    let mut n = 0;
    while out.len() < len {
        out.extend_from_slice(lines[n % lines.len()].as_bytes());
        n += 1;
    }
    out.truncate(len);
    out
}

/// The patterns of default scrubbing and the project's string rules, as byte regexes.
fn floor_patterns() -> Vec<Regex> {
    [
        r"(?i)\b[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}\b",
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b",
        r"\b(?:\d[ -]*?){13,16}\b",
        r"\b\d{3}-\d{2}-\d{4}\b",
        r"(?i)(?:\b(?:[a-z]:[\\/])?(?:users|home|documents and settings)[\\/]|/(?:home|users)/)([^/\\\r\n\x00]+)",
        r"(?i)\bbearer\s+(\S+)",
        r"(?i)(password|secret|passwd|api_key|apikey|auth|credentials|mysql_pwd|privatekey|private_key|token)",
        r"-----BEGIN[A-Z ]+(PRIVATE|PUBLIC) KEY-----",
        r"\b[a-z][a-z0-9+.-]*://([^:/@\s]+(?::[^@\s]*)?)@",
    ]
    .iter()
    .map(|p| Regex::new(p).unwrap())
    .collect()
}

fn bench(c: &mut Criterion) {
    let project = ProjectConfig::from_config_value(json!({
        "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true},
        "scrubgate": {"coverage": "all"}
    }))
    .expect("the project compiles");
    let rules = &project.rules;
    let patterns = floor_patterns();
    let inputs = [
        (
            "minidump_4MiB",
            AttachmentKind::Minidump,
            minidump(&memory(4 << 20)),
        ),
        ("text_1MiB", AttachmentKind::Text, log(1 << 20)),
    ];
    let mut group = c.benchmark_group("attachments");
    for (name, kind, data) in &inputs {
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("scrub", name), data, |b, data| {
            b.iter(|| {
                let mut copy = data.clone();
                rules.scrub_attachment(*kind, "file", &mut copy, false);
                copy
            })
        });
        group.bench_with_input(
            BenchmarkId::new("regex_bytes_floor", name),
            data,
            |b, data| {
                b.iter(|| {
                    let copy = data.clone();
                    patterns
                        .iter()
                        .map(|re| re.find_iter(&copy).count())
                        .sum::<usize>()
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
