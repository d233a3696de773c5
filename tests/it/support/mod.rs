//! Test support: `TestProxy` (scrubgate on `127.0.0.1:0` with its own projects
//! directory), `RecordingUpstream`, project configs, compression and envelope helpers.

#![allow(dead_code)]

pub mod binary;
pub mod minidump;
pub mod upstream;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use scrubgate::config::Config;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use binary::Binary;
pub use upstream::{Mode, RecordingUpstream};

/// The test project's id.
pub const PROJECT: u64 = 42;
/// An enabled public key of every test project.
pub const KEY: &str = "0123456789abcdef0123456789abcdef";
/// A disabled public key of every test project.
pub const DISABLED_KEY: &str = "fedcba9876543210fedcba9876543210";
/// A well-formed key that no project has.
pub const UNKNOWN_KEY: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// A secret that must never leave scrubgate or appear in logs.
pub const SECRET: &str = "s3cr3t0000000000000000000000beef";

/// Planted e-mail address: must never reach the upstream.
pub const CANARY_EMAIL: &str = "leak.canary@example.com";
/// Planted IP address: must never reach the upstream.
pub const CANARY_IP: &str = "198.51.100.77";

/// `X-Sentry-Auth` for [`KEY`].
pub fn auth_header() -> String {
    format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_client=scrubgate-it/1.0")
}

/// Rules of the test projects: Relay's default data scrubbing plus e-mails and IPs in
/// every string, and the user identifiers hashed (the benchmark's rule set).
pub fn pii_config() -> Value {
    json!({
        "applications": {
            "$string": ["@email", "@ip"],
            "$user.email || $user.username || $user.ip_address || $user.id": ["@anything:hash"]
        }
    })
}

/// A project config in Relay's format with [`KEY`] enabled and [`DISABLED_KEY`]
/// disabled; `scrub_ip` sets `scrubIpAddresses`; `scrubgate` is our extension block.
pub fn project_json(id: u64, scrub_ip: bool, pii: Value, scrubgate: Value) -> String {
    json!({
        "projectId": id,
        "disabled": false,
        "publicKeys": [
            {"publicKey": KEY, "isEnabled": true, "numericId": 1},
            {"publicKey": DISABLED_KEY, "isEnabled": false, "numericId": 2}
        ],
        "config": {
            "allowedDomains": ["*"],
            "piiConfig": pii,
            "datascrubbingSettings": {
                "scrubData": true,
                "scrubDefaults": true,
                "scrubIpAddresses": scrub_ip,
                "sensitiveFields": [],
                "excludeFields": []
            },
            "scrubgate": scrubgate
        }
    })
    .to_string()
}

/// The default test project: scrubs IPs, the rules of [`pii_config`].
pub fn default_project() -> String {
    project_json(PROJECT, true, pii_config(), json!({}))
}

/// An answer as the SDK sees it.
#[derive(Debug)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {:?}", self.text()))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A change to the config, applied before start.
type ConfigChange = Box<dyn FnOnce(&mut Config)>;

/// Builds a [`TestProxy`].
pub struct ProxyBuilder {
    upstream_url: Option<String>,
    projects: Vec<(u64, String)>,
    configure: Vec<ConfigChange>,
}

impl ProxyBuilder {
    /// Adds a project file `<id>.json` with `json` as its content.
    pub fn project(mut self, id: u64, json: String) -> Self {
        self.projects.push((id, json));
        self
    }

    /// Changes the config before start.
    pub fn configure(mut self, f: impl FnOnce(&mut Config) + 'static) -> Self {
        self.configure.push(Box::new(f));
        self
    }

    /// Starts scrubgate.
    pub async fn spawn(self) -> TestProxy {
        let dir = tempfile::tempdir().unwrap();
        let projects_dir = dir.path().join("projects");
        std::fs::create_dir_all(&projects_dir).unwrap();
        for (id, json) in &self.projects {
            std::fs::write(projects_dir.join(format!("{id}.json")), json).unwrap();
        }
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        config.projects.dir = projects_dir.clone();
        config.spool.dir = dir.path().join("data").join("spool");
        config.projects.poll_interval = Duration::from_millis(100);
        config.upstream.url = self.upstream_url.map(|url| url.parse().unwrap());
        config.upstream.timeout = Duration::from_secs(2);
        config.upstream.connect_timeout = Duration::from_secs(1);
        config.server.shutdown_grace = Duration::from_secs(2);
        for f in self.configure {
            f(&mut config);
        }
        TestProxy::start(config, dir, projects_dir).await
    }
}

/// scrubgate running in this test's runtime on `127.0.0.1:0`.
pub struct TestProxy {
    /// Ingest listener address.
    pub addr: SocketAddr,
    /// Admin listener address.
    pub admin_addr: SocketAddr,
    /// The projects directory (write files here to test reloads).
    pub projects_dir: PathBuf,
    /// Holds the temporary directory.
    _dir: tempfile::TempDir,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), scrubgate::RunError>>>,
}

impl TestProxy {
    /// A builder forwarding to `upstream`, with the default project.
    pub fn builder(upstream: &RecordingUpstream) -> ProxyBuilder {
        ProxyBuilder {
            upstream_url: Some(upstream.url()),
            projects: Vec::new(),
            configure: Vec::new(),
        }
    }

    /// A builder without an upstream URL (embedded outbox).
    pub fn builder_without_upstream() -> ProxyBuilder {
        ProxyBuilder {
            upstream_url: None,
            projects: Vec::new(),
            configure: Vec::new(),
        }
    }

    /// scrubgate forwarding to `upstream` with the default project 42.
    pub async fn spawn(upstream: &RecordingUpstream) -> TestProxy {
        Self::builder(upstream)
            .project(PROJECT, default_project())
            .spawn()
            .await
    }

    async fn start(config: Config, dir: tempfile::TempDir, projects_dir: PathBuf) -> TestProxy {
        let ingest = TcpListener::bind("127.0.0.1:0").await.unwrap();
        // The admin listener on the configured address's IP (a test of a non-loopback
        // console binds 0.0.0.0), on a free port.
        let admin = TcpListener::bind((config.admin.listen.ip(), 0))
            .await
            .unwrap();
        let addr = ingest.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(scrubgate::run(
            config,
            ingest,
            admin,
            prometheus::Registry::new(),
            async move {
                let _ = stopped.await;
            },
        ));
        let proxy = TestProxy {
            addr,
            admin_addr,
            projects_dir,
            _dir: dir,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: Some(stop),
            task: Some(task),
        };
        proxy.wait_ready().await;
        proxy
    }

    /// Waits until `/readyz` answers 200.
    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(response) = self.try_admin("/readyz").await {
                if response.status == StatusCode::OK {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("scrubgate did not become ready");
    }

    /// A request to the ingest listener.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            proxy: self,
            method,
            uri: format!("http://{}{}", self.addr, path),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    /// A POST to `path`.
    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request(Method::POST, path)
    }

    /// A POST of an event to the store endpoint of [`PROJECT`] with [`auth_header`].
    pub async fn store(&self, event: &Value) -> TestResponse {
        self.post(&format!("/api/{PROJECT}/store/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-type", "application/json")
            .body(event.to_string())
            .send()
            .await
    }

    /// A POST of an envelope to the envelope endpoint of [`PROJECT`] with
    /// [`auth_header`].
    pub async fn envelope(&self, body: impl Into<Bytes>) -> TestResponse {
        self.post(&format!("/api/{PROJECT}/envelope/"))
            .header("x-sentry-auth", &auth_header())
            .header("content-type", "application/x-sentry-envelope")
            .body(body)
            .send()
            .await
    }

    async fn try_admin(&self, path: &str) -> Result<TestResponse, String> {
        let request = Request::get(format!("http://{}{}", self.admin_addr, path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// A GET on the admin listener.
    pub async fn admin(&self, path: &str) -> TestResponse {
        self.try_admin(path).await.unwrap()
    }

    /// The `/metrics` text.
    pub async fn scrape_metrics(&self) -> String {
        let response = self.admin("/metrics").await;
        assert_eq!(response.status, 200);
        response.text()
    }

    /// The embedded outbox's contents (`<data_dir>/outbox.jsonl`, without an upstream).
    pub fn outbox(&self) -> String {
        let path = self
            .projects_dir
            .parent()
            .expect("the projects dir is inside the test's directory")
            .join("data/outbox.jsonl");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Writes (or replaces) a project file.
    pub fn write_project(&self, id: u64, content: &str) {
        write_atomically(&self.projects_dir.join(format!("{id}.json")), content);
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) {
        self.stop_now().await;
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `run` to return (after [`TestProxy::begin_shutdown`]).
    pub async fn stop_now(&mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("scrubgate did not stop")
                .expect("scrubgate task panicked")
                .expect("scrubgate run failed");
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// Writes a file via a temporary file in the parent directory and a rename, as config
/// management tools do (the poller never sees a half-written file).
pub fn write_atomically(path: &Path, content: &str) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let tmp = path
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A request being built.
pub struct RequestBuilder<'a> {
    proxy: &'a TestProxy,
    method: Method,
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl RequestBuilder<'_> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends it and reads the whole answer.
    pub async fn send(self) -> TestResponse {
        let mut request = Request::new(Full::new(self.body));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri.parse().unwrap();
        *request.headers_mut() = self.headers;
        let response =
            tokio::time::timeout(Duration::from_secs(10), self.proxy.client.request(request))
                .await
                .expect("scrubgate did not answer within 10 s")
                .expect("request failed");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// A fixture file's bytes (`tests/fixtures/<rel>`).
pub fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every SDK payload fixture, by file name.
pub fn sdk_payloads() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdk-payloads");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            (name, value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Plants the canaries in places every rule set must scrub: `user.email`,
/// `user.ip_address`, `extra`, and a breadcrumb message.
pub fn plant_canaries(event: &mut Value) {
    let object = event.as_object_mut().expect("event is an object");
    object.insert(
        "user".into(),
        json!({"id": "user-1", "email": CANARY_EMAIL, "ip_address": CANARY_IP}),
    );
    let extra = object.entry("extra").or_insert_with(|| json!({}));
    if let Some(extra) = extra.as_object_mut() {
        extra.insert(
            "support_note".into(),
            json!(format!("mail {CANARY_EMAIL} from {CANARY_IP}")),
        );
    }
    object.insert(
        "breadcrumbs".into(),
        json!({"values": [{"message": format!("login by {CANARY_EMAIL}"), "category": "auth"}]}),
    );
}

/// A small event with the canaries planted.
pub fn canary_event() -> Value {
    let mut event = json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "message": "checkout failed",
        "level": "error",
        "platform": "python"
    });
    plant_canaries(&mut event);
    event
}

/// Asserts that no canary appears in `text` (what the upstream received).
pub fn assert_no_canary(text: &str, context: &str) {
    assert!(
        !text.contains(CANARY_EMAIL),
        "{context}: planted e-mail reached the upstream"
    );
    assert!(
        !text.contains(CANARY_IP),
        "{context}: planted IP reached the upstream"
    );
}

/// gzip.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// zlib (`Content-Encoding: deflate`).
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// Brotli.
pub fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        writer.write_all(data).unwrap();
    }
    out
}

/// zstd.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// One envelope item as the test reads it back.
#[derive(Debug, Clone)]
pub struct ParsedItem {
    /// The item header.
    pub header: Value,
    /// The payload.
    pub payload: Vec<u8>,
}

impl ParsedItem {
    /// The item's `type`.
    pub fn ty(&self) -> &str {
        self.header["type"].as_str().unwrap_or("")
    }

    /// The payload as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
}

/// Parses an envelope independently of scrubgate's parser, checking that every
/// `length` is exact (the payload is followed by `\n` or the end).
pub fn parse_envelope(body: &[u8]) -> (Value, Vec<ParsedItem>) {
    let mut rest = body;
    let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let header: Value = serde_json::from_slice(&rest[..line_end]).expect("envelope header");
    rest = &rest[(line_end + 1).min(rest.len())..];
    let mut items = Vec::new();
    while !rest.is_empty() {
        let line_end = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("item header line");
        let item_header: Value = serde_json::from_slice(&rest[..line_end]).expect("item header");
        rest = &rest[line_end + 1..];
        let payload = match item_header.get("length").and_then(Value::as_u64) {
            Some(length) => {
                let length = length as usize;
                assert!(rest.len() >= length, "length runs past the end");
                let payload = rest[..length].to_vec();
                rest = &rest[length..];
                if !rest.is_empty() {
                    assert_eq!(
                        rest[0], b'\n',
                        "payload of declared length not followed by newline"
                    );
                    rest = &rest[1..];
                }
                payload
            }
            None => {
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                let payload = rest[..end].to_vec();
                rest = &rest[(end + 1).min(rest.len())..];
                payload
            }
        };
        items.push(ParsedItem {
            header: item_header,
            payload,
        });
    }
    (header, items)
}

/// Builds an envelope from a header and `(item header, payload)` pairs, with `length`.
pub fn build_envelope(header: &Value, items: &[(Value, Vec<u8>)]) -> Vec<u8> {
    let mut out = serde_json::to_vec(header).unwrap();
    out.push(b'\n');
    for (item_header, payload) in items {
        let mut item_header = item_header.clone();
        item_header["length"] = json!(payload.len());
        out.extend_from_slice(&serde_json::to_vec(&item_header).unwrap());
        out.push(b'\n');
        out.extend_from_slice(payload);
        out.push(b'\n');
    }
    out
}

/// The value of a metric sample line `name{labels} value` (labels as written by the
/// Prometheus text encoder, in order), or `None` when the series is absent.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
}

/// Waits until `check` holds, polling every 20 ms for up to `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `canary_event()` with its own event id: `n` as 32 hex digits.
pub fn event(n: usize) -> (String, Value) {
    let id = format!("{n:032x}");
    let mut event = canary_event();
    event["event_id"] = Value::String(id.clone());
    (id, event)
}

/// Sends events with fresh ids (from `first_id` on) to `addr` from `clients` concurrent
/// keep-alive clients until `stop` turns true or the connection fails (the process was
/// killed); returns the ids answered 200 and how many requests got another status.
pub async fn send_events_until(
    addr: String,
    clients: usize,
    first_id: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<String>, usize) {
    send_events_paced(addr, clients, first_id, stop, None).await
}

/// [`send_events_until`], each client waiting `pause` between two requests.
pub async fn send_events_paced(
    addr: String,
    clients: usize,
    first_id: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    pause: Option<Duration>,
) -> (Vec<String>, usize) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let client = client.clone();
        let addr = addr.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let (mut acked, mut refused) = (Vec::new(), 0);
            for n in 0.. {
                if *stop.borrow() {
                    break;
                }
                let (id, event) = event(first_id + c * 1_000_000 + n);
                let request = Request::post(format!("http://{addr}/api/{PROJECT}/store/"))
                    .header("x-sentry-auth", auth_header())
                    .body(Full::new(Bytes::from(event.to_string())))
                    .unwrap();
                match client.request(request).await {
                    Ok(response) if response.status() == StatusCode::OK => acked.push(id),
                    Ok(_) => refused += 1,
                    // The process was killed under this request: not acknowledged.
                    Err(_) => break,
                }
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
            }
            (acked, refused)
        });
    }
    let (mut acked, mut refused) = (Vec::new(), 0);
    while let Some(result) = tasks.join_next().await {
        let (ids, n) = result.unwrap();
        acked.extend(ids);
        refused += n;
    }
    (acked, refused)
}

/// Serializes the tests that load both cores for seconds (the fault runs, the SIGKILL
/// test): run side by side they would measure each other, not scrubgate. Hold the guard
/// for the whole test.
pub async fn exclusive_load() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Reads from `stream` until the peer closes (or resets) or `limit` passes; returns what
/// was read and whether the peer closed.
pub async fn read_until_close(
    stream: &mut tokio::net::TcpStream,
    limit: Duration,
) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// `value` percent-encoded (when that differs from the raw text) and in UTF-16LE.
pub fn other_encodings(value: &str) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let percent: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if percent != value {
        out.push(("percent-encoded", percent.into_bytes()));
    }
    let utf16: Vec<u8> = value.encode_utf16().flat_map(u16::to_le_bytes).collect();
    out.push(("UTF-16LE", utf16));
    out
}
