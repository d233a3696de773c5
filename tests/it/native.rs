//! Native crash reports end to end: real minidumps (written with `minidump-writer` of a
//! child holding planted values, see `support::minidump`) uploaded to `/minidump/` as
//! Electron, Crashpad and Breakpad upload them (multipart, also built by `curl -F`; raw;
//! in gzip, xz, bzip2 and zstd containers) and sent in sentry-native style envelopes
//! with msgpack event data; the attachment and Unreal endpoints; and the bad uploads,
//! each with its status. What the upstream receives must hold no planted value in any
//! encoding, and the forwarded dump must keep its length and still parse with the same
//! threads, modules and module base names.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::support::minidump::{self, EMAIL, IP, TOKEN, USER};
use crate::support::*;

/// Not a test of its own: the child process that `support::minidump::write_dump`
/// dumps (it only runs with `SCRUBGATE_CRASHING_CHILD` set).
#[test]
#[ignore = "runs only as the child process of the minidump tests"]
fn crashing_child() {
    if std::env::var_os(minidump::CHILD_VAR).is_some() {
        minidump::run_child();
    }
}

/// A strict project: coverage "all", default scrubbing, e-mails, IPs and user paths in
/// every string; images dropped.
fn strict_project() -> String {
    project_json(
        PROJECT,
        true,
        json!({"applications": {"$string": ["@email:replace", "@ip:replace", "@userpath:replace"]}}),
        json!({"coverage": "all", "attachments": "scrubbed_only"}),
    )
}

async fn strict_proxy(upstream: &RecordingUpstream) -> TestProxy {
    TestProxy::builder(upstream)
        .project(PROJECT, strict_project())
        .spawn()
        .await
}

/// One part of a test upload: field name, file name, content type, bytes.
type FormPart<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart body of parts, and its `Content-Type`.
fn multipart(parts: &[FormPart<'_>]) -> (String, Vec<u8>) {
    let boundary = "----scrubgateBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, content_type, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(filename) = filename {
            disposition.push_str(&format!("; filename=\"{filename}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(proxy: &TestProxy, content_type: &str, body: Vec<u8>) -> TestResponse {
    proxy
        .post(&format!("/api/{PROJECT}/minidump/?sentry_key={KEY}"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
}

/// The attachment item of `attachment_type` in an envelope upstream.
fn item_of<'a>(items: &'a [ParsedItem], attachment_type: &str) -> &'a ParsedItem {
    items
        .iter()
        .find(|item| item.header["attachment_type"] == attachment_type)
        .unwrap_or_else(|| panic!("no {attachment_type} item upstream"))
}

/// The dump as written has every plant in it (else the tests below prove nothing).
fn assert_planted(dump: &[u8]) {
    let found = minidump::leaks(dump);
    for plant in minidump::plants() {
        assert!(
            found.iter().any(|f| f.starts_with(plant)),
            "{plant} is not in the dump as written: {found:?}"
        );
    }
    let utf16: Vec<u8> = EMAIL.encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert!(
        dump.windows(utf16.len()).any(|w| w == utf16),
        "the UTF-16LE e-mail is not in the dump as written"
    );
}

/// The forwarded dump: the original's length, parseable, same threads and modules.
fn assert_same_shape(forwarded: &[u8], original: &[u8]) {
    assert_eq!(forwarded.len(), original.len(), "the dump changed length");
    assert_eq!(minidump::shape(forwarded), minidump::shape(original));
    assert_ne!(forwarded, original, "nothing was scrubbed in the dump");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn electron_style_multipart_upload_arrives_scrubbed_and_parseable() {
    let dump = minidump::write_dump();
    assert_planted(&dump);
    let upstream = RecordingUpstream::spawn().await;
    let proxy = strict_proxy(&upstream).await;
    let sentry = json!({"user": {"email": EMAIL}, "tags": {"peer": IP}, "release": "crashy@1.0"});
    let crumb =
        rmp_serde::to_vec_named(&json!({"message": format!("login {EMAIL}"), "timestamp": 1.5}))
            .unwrap();
    let log = format!("boot\nuser {EMAIL} from {IP}\n/home/{USER}/app started\n");
    let png = [&b"\x89PNG\r\n\x1a\n"[..], EMAIL.as_bytes()].concat();
    let (content_type, body) = multipart(&[
        ("_productName", None, None, b"crashy"),
        ("sentry", None, None, sentry.to_string().as_bytes()),
        ("sentry[extra][contact]", None, None, EMAIL.as_bytes()),
        (
            "upload_file_minidump",
            Some("crash.dmp"),
            Some("application/octet-stream"),
            &dump,
        ),
        ("__sentry-breadcrumb1", Some("breadcrumb1"), None, &crumb),
        (
            "app.log",
            Some("app.log"),
            Some("text/plain"),
            log.as_bytes(),
        ),
        (
            "screenshot",
            Some("screenshot.png"),
            Some("image/png"),
            &png,
        ),
    ]);
    let response = upload(&proxy, &content_type, body).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let id = response.text();
    assert_eq!(id.len(), 36, "a hyphenated UUID: {id}");

    let recorded = upstream.wait_for(1).await;
    assert_eq!(
        recorded[0].path_and_query,
        format!("/api/{PROJECT}/envelope/")
    );
    assert_eq!(minidump::leaks(&recorded[0].body), Vec::<String>::new());
    let (header, items) = parse_envelope(&recorded[0].body);
    assert_eq!(header["event_id"], id.replace('-', ""));
    let event = items
        .iter()
        .find(|i| i.ty() == "event")
        .expect("event")
        .json();
    assert_eq!(event["release"], "crashy@1.0");
    assert_eq!(event["extra"]["_productName"], "crashy");
    assert!(event["extra"]["contact"].is_string(), "{event}");
    assert_eq!(event["breadcrumbs"]["values"].as_array().unwrap().len(), 1);
    assert_same_shape(&item_of(&items, "event.minidump").payload, &dump);
    let log_item = items
        .iter()
        .find(|i| i.header["filename"] == "app.log")
        .unwrap();
    assert_eq!(log_item.payload.len(), log.len());
    assert!(
        !items
            .iter()
            .any(|i| i.header["filename"] == "screenshot.png"),
        "the screenshot is dropped under scrubbed_only"
    );
    let metrics = proxy.scrape_metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_items_dropped_total{item_type=\"attachment\",reason=\"binary_attachment\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "scrubgate_attachment_bytes_total{kind=\"minidump\"}"
        ),
        Some(dump.len() as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_compressed_dumps_arrive_scrubbed() {
    let dump = minidump::write_dump();
    let upstream = RecordingUpstream::spawn().await;
    let proxy = strict_proxy(&upstream).await;
    let xz = {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut &dump[..], &mut out).unwrap();
        out
    };
    let bzip2 = {
        use std::io::Write;
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        encoder.write_all(&dump).unwrap();
        encoder.finish().unwrap()
    };
    let bodies = [
        ("raw", "application/octet-stream", dump.clone()),
        ("x-dmp", "application/x-dmp", dump.clone()),
        ("gzip", "application/octet-stream", gzip(&dump)),
        ("xz", "application/octet-stream", xz),
        ("bzip2", "application/octet-stream", bzip2),
        ("zstd", "application/octet-stream", zstd(&dump)),
    ];
    let mut scrubbed: Option<Bytes> = None;
    for (n, (name, content_type, body)) in bodies.into_iter().enumerate() {
        let response = upload(&proxy, content_type, body).await;
        assert_eq!(response.status, 200, "{name}: {}", response.text());
        let recorded = upstream.wait_for(n + 1).await;
        let body = &recorded[n].body;
        assert_eq!(minidump::leaks(body), Vec::<String>::new(), "{name}");
        let (_, items) = parse_envelope(body);
        let forwarded = &item_of(&items, "event.minidump").payload;
        assert_same_shape(forwarded, &dump);
        // Scrubbing is deterministic: every container gives the same dump.
        match &scrubbed {
            Some(first) => assert_eq!(&forwarded[..], &first[..], "{name}"),
            None => scrubbed = Some(Bytes::copy_from_slice(forwarded)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_form_upload_arrives_scrubbed() {
    let dump = minidump::write_dump();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload.dmp");
    std::fs::write(&path, &dump).unwrap();
    let upstream = RecordingUpstream::spawn().await;
    let proxy = strict_proxy(&upstream).await;
    let url = format!(
        "http://{}/api/{PROJECT}/minidump/?sentry_key={KEY}",
        proxy.addr
    );
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-F"])
        .arg(format!("upload_file_minidump=@{}", path.display()))
        .args([
            "-F",
            &format!("sentry={{\"user\":{{\"email\":\"{EMAIL}\"}}}}"),
        ])
        .arg(&url)
        .output()
        .await
        .expect("curl runs");
    let answer = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        answer.ends_with("\n200"),
        "curl: {answer} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let recorded = upstream.wait_for(1).await;
    assert_eq!(minidump::leaks(&recorded[0].body), Vec::<String>::new());
    let (_, items) = parse_envelope(&recorded[0].body);
    assert_same_shape(&item_of(&items, "event.minidump").payload, &dump);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_native_envelope_with_msgpack_event_arrives_as_json() {
    let dump = minidump::write_dump();
    let upstream = RecordingUpstream::spawn().await;
    let proxy = strict_proxy(&upstream).await;
    let event = rmp_serde::to_vec_named(&json!({
        "level": "fatal", "platform": "native",
        "user": {"email": EMAIL, "ip_address": IP},
        "extra": {"home": format!("/home/{USER}/app")}
    }))
    .unwrap();
    let crumbs = [
        rmp_serde::to_vec_named(&json!({"message": format!("mail {EMAIL}"), "timestamp": 2.0}))
            .unwrap(),
        rmp_serde::to_vec_named(&json!({"message": "first", "timestamp": 1.0})).unwrap(),
    ]
    .concat();
    let envelope = build_envelope(
        &json!({"event_id": "7d2b1c4a5e6f48a9b0c1d2e3f4a5b6c7"}),
        &[
            (
                json!({"type": "attachment", "attachment_type": "event.payload", "filename": "__sentry-event"}),
                event,
            ),
            (
                json!({"type": "attachment", "attachment_type": "event.breadcrumbs", "filename": "__sentry-breadcrumb1"}),
                crumbs,
            ),
            (
                json!({"type": "attachment", "attachment_type": "event.minidump", "filename": "minidump.dmp"}),
                dump.clone(),
            ),
        ],
    );
    let response = proxy.envelope(envelope).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let recorded = upstream.wait_for(1).await;
    assert_eq!(minidump::leaks(&recorded[0].body), Vec::<String>::new());
    let (_, items) = parse_envelope(&recorded[0].body);
    assert_eq!(items.len(), 2, "the msgpack attachments became the event");
    let event = items[0].json();
    assert_eq!(items[0].ty(), "event");
    assert_eq!(event["level"], "fatal");
    assert_eq!(event["event_id"], "7d2b1c4a5e6f48a9b0c1d2e3f4a5b6c7");
    let crumbs = event["breadcrumbs"]["values"].as_array().unwrap();
    assert_eq!(crumbs[0]["message"], "first", "ordered by timestamp");
    assert_same_shape(&item_of(&items, "event.minidump").payload, &dump);
}

/// Under `coverage = "relay"`, only rules whose selectors name the attachment's parts
/// apply, as in Relay: `$minidump.stack_memory` scrubs the stacks and leaves the
/// environment stream alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_coverage_applies_minidump_selectors_only() {
    let dump = minidump::write_dump();
    let upstream = RecordingUpstream::spawn().await;
    let project = project_json(
        PROJECT,
        false,
        json!({"applications": {"$minidump.stack_memory": ["@email:replace"]}}),
        json!({"coverage": "relay"}),
    );
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, project)
        .spawn()
        .await;
    let response = upload(&proxy, "application/octet-stream", dump.clone()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let recorded = upstream.wait_for(1).await;
    let (_, items) = parse_envelope(&recorded[0].body);
    let forwarded = &item_of(&items, "event.minidump").payload;
    assert_same_shape(forwarded, &dump);
    let stacks = |bytes: &[u8]| -> Vec<u8> {
        let parsed = ::minidump::Minidump::read(bytes).unwrap();
        let threads: ::minidump::MinidumpThreadList<'_> = parsed.get_stream().unwrap();
        threads
            .threads
            .iter()
            .flat_map(|t| {
                let m = t.raw.stack.memory;
                bytes[m.rva as usize..(m.rva + m.data_size) as usize].to_vec()
            })
            .collect()
    };
    let count =
        |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).filter(|w| *w == needle).count();
    let wide: Vec<u8> = EMAIL.encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert!(count(&stacks(&dump), EMAIL.as_bytes()) + count(&stacks(&dump), &wide) > 0);
    assert_eq!(
        count(&stacks(forwarded), EMAIL.as_bytes()),
        0,
        "UTF-8 in stacks"
    );
    assert_eq!(count(&stacks(forwarded), &wide), 0, "UTF-16LE in stacks");
    let environ = |bytes: &[u8]| -> Vec<u8> {
        let parsed = ::minidump::Minidump::read(bytes).unwrap();
        let entry = parsed
            .all_streams()
            .find(|s| s.stream_type == 0x4767_0007)
            .expect("a Linux environ stream");
        let at = entry.location.rva as usize;
        bytes[at..at + entry.location.data_size as usize].to_vec()
    };
    assert_eq!(
        environ(forwarded),
        environ(&dump),
        "the environment is not a $minidump.stack_memory part"
    );
    assert!(
        count(forwarded, TOKEN.as_bytes()) > 0,
        "relay coverage leaves environ alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_their_status_and_nothing_else_is_lost() {
    let dump = minidump::write_dump();
    let upstream = RecordingUpstream::spawn().await;
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, strict_project())
        .configure(|config| {
            config.limits.max_attachment_size = 1024 * 1024;
            config.limits.max_attachments_size = 2 * 1024 * 1024;
            config.limits.max_multipart_parts = 50;
        })
        .spawn()
        .await;
    let detail = |r: &TestResponse| r.json()["detail"].as_str().unwrap_or("").to_owned();

    let (ct, body) = multipart(&[("sentry", None, None, b"{}")]);
    let r = upload(&proxy, &ct, body).await;
    assert_eq!(r.status, 400);
    assert!(
        detail(&r).contains("upload_file_minidump"),
        "{}",
        detail(&r)
    );

    let r = upload(
        &proxy,
        "application/octet-stream",
        b"not a minidump at all".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(detail(&r).contains("MDMP"), "{}", detail(&r));

    let bomb = gzip(&[&b"MDMP"[..], &vec![0u8; 64 * 1024 * 1024]].concat());
    let r = upload(&proxy, "application/octet-stream", bomb).await;
    assert_eq!(r.status, 413, "{}", r.text());

    let many: Vec<FormPart<'_>> = (0..60).map(|_| ("field", None, None, &b"x"[..])).collect();
    let (ct, body) = multipart(&many);
    let r = upload(&proxy, &ct, body).await;
    assert_eq!(r.status, 413);
    assert!(detail(&r).contains("parts"), "{}", detail(&r));

    let big = vec![b'x'; 1200 * 1024];
    let (ct, body) = multipart(&[
        ("upload_file_minidump", Some("a.dmp"), None, &dump),
        ("big.log", Some("big.log"), Some("text/plain"), &big),
    ]);
    let r = upload(&proxy, &ct, body).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(detail(&r).contains("attachments"), "{}", detail(&r));

    let (ct, body) = multipart(&[
        ("sentry", None, None, b"[not an object]"),
        ("upload_file_minidump", Some("a.dmp"), None, &dump),
    ]);
    let r = upload(&proxy, &ct, body).await;
    assert_eq!(r.status, 400);
    assert!(detail(&r).contains("sentry field"), "{}", detail(&r));
    assert!(
        upstream.requests().is_empty(),
        "nothing refused was forwarded"
    );

    // A truncated dump does not parse: scrubbed as one binary, still forwarded.
    let truncated = dump[..dump.len() / 3].to_vec();
    let r = upload(&proxy, "application/octet-stream", truncated.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let recorded = upstream.wait_for(1).await;
    let (_, items) = parse_envelope(&recorded[0].body);
    let forwarded = &item_of(&items, "event.minidump").payload;
    assert_eq!(forwarded.len(), truncated.len());
    let found = minidump::leaks(forwarded);
    assert!(
        !found
            .iter()
            .any(|f| f.starts_with(EMAIL) || f.starts_with(TOKEN)),
        "{found:?}"
    );

    // And the proxy still takes a good one.
    let r = upload(&proxy, "application/octet-stream", dump.clone()).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachment_endpoint_answers_201_with_scrubbed_files() {
    let upstream = RecordingUpstream::spawn().await;
    let proxy = strict_proxy(&upstream).await;
    let hierarchy = json!({"rendering_system": "UIKIT", "windows": [
        {"type": "UIWindow", "children": [{"type": "UILabel", "text": format!("Signed in as {EMAIL}")}]}
    ]});
    let (ct, body) = multipart(&[
        (
            "view-hierarchy.json",
            Some("view-hierarchy.json"),
            Some("application/json"),
            hierarchy.to_string().as_bytes(),
        ),
        (
            "notes.txt",
            Some("notes.txt"),
            Some("text/plain"),
            format!("ip {IP}").as_bytes(),
        ),
    ]);
    let response = proxy
        .post(&format!(
            "/api/{PROJECT}/events/5d1f0c3a2b4e4f6a8b9c0d1e2f3a4b5c/attachments/?sentry_key={KEY}"
        ))
        .header("content-type", &ct)
        .body(body)
        .send()
        .await;
    assert_eq!(response.status, 201, "{}", response.text());
    let recorded = upstream.wait_for(1).await;
    assert_eq!(minidump::leaks(&recorded[0].body), Vec::<String>::new());
    let (header, items) = parse_envelope(&recorded[0].body);
    assert_eq!(header["event_id"], "5d1f0c3a2b4e4f6a8b9c0d1e2f3a4b5c");
    let hierarchy: Value = item_of(&items, "event.view_hierarchy").json();
    assert_eq!(hierarchy["windows"][0]["children"][0]["type"], "UILabel");
    assert!(
        hierarchy.get("_meta").is_none(),
        "no _meta written into the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreal_reports_are_refused_unless_forwarded_unscrubbed() {
    let upstream = RecordingUpstream::spawn().await;
    let refusing = TestProxy::builder(&upstream)
        .project(PROJECT, strict_project())
        .spawn()
        .await;
    let path = format!("/api/{PROJECT}/unreal/{KEY}/");
    let r = refusing
        .post(&path)
        .body(b"PK\x03\x04unreal".to_vec())
        .send()
        .await;
    assert_eq!(r.status, 415);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap()
        .contains("forwardUnknownItems"));
    let forwarding = TestProxy::builder(&upstream)
        .project(
            PROJECT,
            project_json(
                PROJECT,
                true,
                json!({}),
                json!({"forwardUnknownItems": true}),
            ),
        )
        .spawn()
        .await;
    let r = forwarding
        .post(&path)
        .body(b"PK\x03\x04unreal".to_vec())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().len(), 36);
    let recorded = upstream.wait_for(1).await;
    let (_, items) = parse_envelope(&recorded[0].body);
    assert_eq!(items[0].ty(), "unreal_report");
    assert_eq!(items[0].payload, b"PK\x03\x04unreal");
}

/// An upload the store cannot take is spooled scrubbed: the dump on disk holds no
/// planted value in any encoding, and it is delivered, still parseable, once the store
/// is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooled_upload_holds_nothing_planted_on_disk() {
    let dump = minidump::write_dump();
    let spool_dir = tempfile::tempdir().unwrap();
    let upstream = RecordingUpstream::spawn().await;
    upstream.set_mode(Mode::Down);
    let dir = spool_dir.path().to_owned();
    let proxy = TestProxy::builder(&upstream)
        .project(PROJECT, strict_project())
        .configure(move |c| c.spool.dir = dir)
        .spawn()
        .await;
    let response = upload(&proxy, "application/octet-stream", dump.clone()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.text().len(),
        36,
        "the event id, as for a delivered upload"
    );
    proxy.shutdown().await;
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(spool_dir.path()).unwrap() {
        on_disk.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let module: Vec<u8> = "/app/crashy"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert!(
        on_disk.windows(module.len()).any(|w| w == module),
        "the dump is on disk, uncompressed (so the search below means something)"
    );
    assert_eq!(minidump::leaks(&on_disk), Vec::<String>::new());

    upstream.set_mode(Mode::Normal);
    let dir = spool_dir.path().to_owned();
    let _proxy = TestProxy::builder(&upstream)
        .project(PROJECT, strict_project())
        .configure(move |c| c.spool.dir = dir)
        .spawn()
        .await;
    assert!(
        eventually(std::time::Duration::from_secs(20), || async {
            !upstream.requests().is_empty()
        })
        .await,
        "the spooled upload was not delivered"
    );
    let (_, items) = parse_envelope(&upstream.requests()[0].body);
    assert_same_shape(&item_of(&items, "event.minidump").payload, &dump);
}
