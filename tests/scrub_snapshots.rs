//! Snapshots of real SDK payloads scrubbed under the default data scrubbing and under an
//! advanced rule set, `_meta` included. Review changes with `cargo insta review`.

use scrubgate::projects::ProjectConfig;
use scrubgate::scrub::{ItemKind, ScrubOptions};

fn project(bytes: &[u8]) -> ProjectConfig {
    ProjectConfig::from_json(bytes, &|_| None).expect("fixture config compiles")
}

fn scrub(project: &ProjectConfig, input: &[u8]) -> serde_json::Value {
    let opts = ScrubOptions {
        client_ip: Some("203.0.113.7".parse().expect("valid ip")),
        ..ScrubOptions::default()
    };
    let out = project
        .rules
        .scrub(ItemKind::Event, input, &opts)
        .expect("sdk payload scrubs");
    serde_json::from_slice(&out.bytes).expect("output is valid JSON")
}

/// Every fixture carries personal data the SDK would send (a user with an email and an
/// IP address at least), so every snapshot shows redactions. Kept on purpose: under
/// Relay's default data scrubbing `user.email` (and emails elsewhere outside the
/// replace-only fields) keep their planted values, as Relay keeps them: the defaults
/// filter passwords, card numbers, sensitive keys and (with `scrubIpAddresses`) IP
/// addresses, not emails (`protect: ["emails"]` does).
#[test]
fn sdk_payloads_default_scrubbing() {
    let p = project(include_bytes!("fixtures/rules/defaults.json"));
    insta::glob!("fixtures/sdk-payloads/*.json", |path| {
        let input = std::fs::read(path).expect("fixture readable");
        insta::assert_json_snapshot!(scrub(&p, &input));
    });
}

/// Kept on purpose: `$string`'s `@email` runs before `$user.email`'s keyed hash (Relay
/// orders applications by selector), so `user.email` shows `[email]`, not a hash.
#[test]
fn sdk_payloads_advanced_rules() {
    let p = project(include_bytes!("fixtures/rules/advanced.json"));
    insta::glob!("fixtures/sdk-payloads/*.json", |path| {
        let input = std::fs::read(path).expect("fixture readable");
        insta::assert_json_snapshot!(scrub(&p, &input));
    });
}
