//! The embedded outbox: when no upstream is configured, each forwarded request becomes one
//! JSON line in `<data_dir>/outbox.jsonl`, so a fresh `scrubgate run` works and shows
//! exactly what would have left the machine.
//!
//! Line format:
//!
//! ```json
//! {"ts":"2025-01-31T12:00:00.123Z","path":"/api/42/envelope/","event_id":"…",
//!  "content_type":"application/x-sentry-envelope","headers":{"x-sentry-auth":"…"},
//!  "body_encoding":"utf-8","body":"…"}
//! ```
//!
//! `body` is the scrubbed body as a string when it is UTF-8 (`body_encoding` `"utf-8"`),
//! else base64 (`body_encoding` `"base64"`). Lines are written whole, one writer at a
//! time, and are not fsynced: the outbox is a look-at-it sink, not a durable queue.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;

use super::{ForwardError, ForwardRequest, UpstreamResponse};

/// File name of the outbox inside the data directory.
pub const OUTBOX_FILE: &str = "outbox.jsonl";

/// Appends forwarded requests to `<data_dir>/outbox.jsonl`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    path: Arc<Path>,
    file: Arc<Mutex<File>>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    content_type: Cow<'a, str>,
    headers: serde_json::Map<String, serde_json::Value>,
    body_encoding: &'static str,
    body: Cow<'a, str>,
}

#[derive(Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

impl Outbox {
    /// Creates `data_dir` (and parents) if needed and opens the outbox for appending.
    ///
    /// # Errors
    ///
    /// [`ForwardError::Outbox`] when the directory or file cannot be created.
    pub fn open(data_dir: &Path) -> Result<Outbox, ForwardError> {
        std::fs::create_dir_all(data_dir).map_err(|source| ForwardError::Outbox {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(OUTBOX_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| ForwardError::Outbox {
                path: path.clone(),
                source,
            })?;
        Ok(Outbox {
            path: path.into(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line for `req` and answers 200 `{"id": <event_id>}` (`{}` without an
    /// event id).
    ///
    /// # Errors
    ///
    /// [`ForwardError::Outbox`] when the write fails.
    pub async fn append(&self, req: ForwardRequest) -> Result<UpstreamResponse, ForwardError> {
        let mut line = render_line(&req, SystemTime::now());
        line.push(b'\n');
        let file = Arc::clone(&self.file);
        // The write runs on the blocking pool as one task, so a cancelled request (client
        // gone) cannot leave half a line behind; the mutex keeps lines whole.
        let written = tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            file.write_all(&line)
        })
        .await
        .unwrap_or_else(|join| Err(std::io::Error::other(join)));
        written.map_err(|source| ForwardError::Outbox {
            path: self.path.to_path_buf(),
            source,
        })?;

        let answer = Answer {
            id: req.event_id.as_deref(),
        };
        let body = serde_json::to_vec(&answer).unwrap_or_else(|_| b"{}".to_vec());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(UpstreamResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::from(body),
        })
    }
}

fn render_line(req: &ForwardRequest, now: SystemTime) -> Vec<u8> {
    let mut headers = serde_json::Map::new();
    for (name, value) in &req.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(serde_json::Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), serde_json::Value::String(value));
            }
        }
    }
    let (body_encoding, body) = match std::str::from_utf8(&req.body) {
        Ok(text) => ("utf-8", Cow::Borrowed(text)),
        Err(_) => (
            "base64",
            Cow::Owned(base64::engine::general_purpose::STANDARD.encode(&req.body)),
        ),
    };
    let line = Line {
        ts: rfc3339(now),
        path: &req.path_and_query,
        event_id: req.event_id.as_deref(),
        content_type: String::from_utf8_lossy(req.content_type.as_bytes()),
        headers,
        body_encoding,
        body,
    };
    serde_json::to_vec(&line).expect("a struct of strings and a string map always serializes")
}

/// `time` as RFC 3339 UTC with milliseconds, e.g. `2025-01-31T12:00:00.123Z`.
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let millis = since_epoch.subsec_millis();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`, restricted to dates after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.5Z, a leap day.
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_500);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.500Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_800); // 2100-01-01
        assert_eq!(rfc3339(t), "2100-01-01T00:00:00.000Z");
    }
}
