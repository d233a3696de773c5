//! Native crash uploads as envelopes, the way Relay reads them, so that they go through
//! the same item scrubbing as any envelope:
//!
//! - **`/minidump/`** (Crashpad, Breakpad, Electron's `crashReporter`): multipart with
//!   the dump in `upload_file_minidump`, an optional `sentry` JSON field and
//!   `sentry[a][b]` fields merged into the event, other fields into `extra`, the
//!   `__sentry-event` and `__sentry-breadcrumb1`/`2` msgpack parts merged into the event,
//!   and other files as attachments; or the dump as the raw body. A dump inside a gzip,
//!   xz, bzip2 or zstd container is unwrapped; it must start with `MDMP` (or `PMDM`).
//! - **`/events/{id}/attachments/`**: multipart, every file an attachment of event `id`.
//! - **`/unreal/{key}/`**: the crash report as one `unreal_report` item.
//! - Envelopes with sentry-native's `event.payload` / `event.breadcrumbs` attachments:
//!   their msgpack merged into the envelope's JSON event ([`merge_event_payloads`]).

use bytes::Bytes;
use serde_json::{Map, Value};

use super::envelope::{Envelope, Headers, Item, ItemType};
use super::msgpack::{self, MsgpackError};
use super::multipart::{self, MultipartError, Part};
use crate::body::{unwrap_container, BodyError};
use crate::config::LimitsConfig;
use crate::scrub::attachments::is_minidump;

/// The multipart field of the dump.
const MINIDUMP_FIELD: &str = "upload_file_minidump";

/// Why an upload cannot be turned into an envelope.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The multipart framing is broken, or it has too many parts.
    #[error(transparent)]
    Multipart(#[from] MultipartError),
    /// A minidump upload without the `upload_file_minidump` part.
    #[error("missing the minidump (multipart field upload_file_minidump)")]
    MissingMinidump,
    /// The dump does not start with the minidump magic.
    #[error("invalid minidump: it does not start with MDMP")]
    NotAMinidump,
    /// The dump's container (gzip, xz, bzip2, zstd) is corrupt or unwraps past the limit.
    #[error("invalid minidump container")]
    Container(#[source] BodyError),
    /// A file, or all files together, past `limits.max_attachment_size` or
    /// `limits.max_attachments_size`.
    #[error("attachments exceed the size limit")]
    AttachmentsTooLarge,
    /// The event built from the upload is past `limits.max_event_size`.
    #[error("event exceeds the size limit")]
    EventTooLarge,
    /// The `sentry` field is not a JSON object.
    #[error("the sentry field is not a JSON object")]
    InvalidSentryField,
    /// A msgpack event or breadcrumbs part is unreadable.
    #[error("invalid msgpack event data")]
    Msgpack(#[from] MsgpackError),
    /// The envelope's JSON event, into which msgpack data is merged, is not an object.
    #[error("the event item is not a JSON object")]
    InvalidEvent,
    /// An attachment upload without any file.
    #[error("no file in the upload")]
    NoFiles,
}

/// A native upload turned into an envelope.
#[derive(Debug)]
pub struct Upload {
    /// The envelope to scrub and forward.
    pub envelope: Envelope,
    /// Its event id (32 hex digits).
    pub event_id: String,
}

/// A `/minidump/` request body as an envelope: the event, the dump as an
/// `event.minidump` attachment and any other files as attachments. `content_type` picks
/// multipart or a raw dump; `new_id` gives the event an id when it has none.
///
/// # Errors
/// [`UploadError`] naming the problem.
pub fn minidump_upload(
    content_type: Option<&str>,
    body: Bytes,
    limits: &LimitsConfig,
    new_id: fn() -> String,
) -> Result<Upload, UploadError> {
    let Some(boundary) = content_type.and_then(multipart::boundary) else {
        let dump = unwrap_dump(body, limits)?;
        let mut files = Files::new(limits);
        files.add(attachment(
            dump,
            "event.minidump",
            "Minidump",
            Some("application/x-dmp"),
        ))?;
        return build(Map::new(), files.items, limits, new_id);
    };
    let parts = multipart::parse(&body, &boundary, limits.max_multipart_parts)?;
    let mut event = Map::new();
    let mut form = Form::default();
    let mut files = Files::new(limits);
    let mut dump = None;
    for part in parts {
        match part.name.as_str() {
            MINIDUMP_FIELD => dump = Some(part),
            "__sentry-event" => form.payload = Some(msgpack::event(&part.data)?),
            "__sentry-breadcrumb1" | "__sentry-breadcrumb2" => {
                form.breadcrumbs.extend(msgpack::breadcrumbs(&part.data)?);
            }
            _ if part.filename.is_some() => files.add(file_item(part))?,
            "sentry" => form.sentry.push(part.data),
            name if name.starts_with("sentry[") => {
                form.bracketed.push((name.to_owned(), text(&part.data)))
            }
            name => form.extra.push((name.to_owned(), text(&part.data))),
        }
    }
    let dump = dump.ok_or(UploadError::MissingMinidump)?;
    let filename = dump
        .filename
        .clone()
        .unwrap_or_else(|| "Minidump".to_owned());
    let data = unwrap_dump(dump.data, limits)?;
    files.add_first(attachment(
        data,
        "event.minidump",
        &filename,
        Some("application/x-dmp"),
    ))?;
    form.merge_into(&mut event)?;
    build(event, files.items, limits, new_id)
}

/// A `/events/{event_id}/attachments/` body as an envelope of attachments.
///
/// # Errors
/// [`UploadError`] naming the problem; [`UploadError::NoFiles`] without any file.
pub fn attachments_upload(
    content_type: Option<&str>,
    body: Bytes,
    event_id: &str,
    limits: &LimitsConfig,
) -> Result<Upload, UploadError> {
    let boundary = content_type
        .and_then(multipart::boundary)
        .ok_or(UploadError::Multipart(MultipartError::NoBoundary))?;
    let parts = multipart::parse(&body, &boundary, limits.max_multipart_parts)?;
    let mut files = Files::new(limits);
    for part in parts.into_iter().filter(|part| part.filename.is_some()) {
        files.add(file_item(part))?;
    }
    if files.items.is_empty() {
        return Err(UploadError::NoFiles);
    }
    let event_id = normalize_event_id(event_id).unwrap_or_else(|| event_id.to_owned());
    envelope(&event_id, files.items)
}

/// An `/unreal/{key}/` body as one `unreal_report` item.
///
/// # Errors
/// [`UploadError::AttachmentsTooLarge`] past `limits.max_attachments_size`.
pub fn unreal_upload(
    body: Bytes,
    limits: &LimitsConfig,
    new_id: fn() -> String,
) -> Result<Upload, UploadError> {
    if body.len() > limits.max_attachments_size {
        return Err(UploadError::AttachmentsTooLarge);
    }
    envelope(&new_id(), vec![Item::new("unreal_report", body)])
}

/// Merges sentry-native's msgpack `event.payload` and `event.breadcrumbs` attachments
/// of `envelope` into its JSON `event` item (made from the payload when there is none;
/// an existing event keeps its fields and gains the payload's others). The attachments
/// are removed. Nothing happens to an envelope without them.
///
/// # Errors
/// [`UploadError`] for unreadable msgpack, an event item that is not a JSON object, or
/// an event past `limits.max_event_size`.
pub fn merge_event_payloads(
    envelope: &mut Envelope,
    limits: &LimitsConfig,
) -> Result<(), UploadError> {
    let is_payload = |item: &Item| {
        item.item_type() == ItemType::Attachment
            && matches!(
                item.header_str("attachment_type"),
                Some("event.payload" | "event.breadcrumbs")
            )
    };
    if !envelope.items().iter().any(is_payload) {
        return Ok(());
    }
    let items = std::mem::take(envelope.items_mut());
    let mut form = Form::default();
    let mut event: Option<Map<String, Value>> = None;
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if is_payload(&item) {
            if item.header_str("attachment_type") == Some("event.payload") {
                form.payload = Some(msgpack::event(item.payload())?);
            } else {
                form.breadcrumbs
                    .extend(msgpack::breadcrumbs(item.payload())?);
            }
        } else if item.item_type() == ItemType::Event && event.is_none() {
            match serde_json::from_slice(item.payload()) {
                Ok(Value::Object(fields)) => event = Some(fields),
                _ => return Err(UploadError::InvalidEvent),
            }
        } else {
            kept.push(item);
        }
    }
    let mut event = event.unwrap_or_default();
    form.merge_into(&mut event)?;
    let event_id = envelope
        .event_id()
        .and_then(normalize_event_id)
        .or_else(|| event_id_of(&event));
    if let Some(id) = &event_id {
        event
            .entry("event_id")
            .or_insert_with(|| Value::String(id.clone()));
    }
    let json = serde_json::to_vec(&event).map_err(|_| UploadError::InvalidEvent)?;
    if json.len() > limits.max_event_size {
        return Err(UploadError::EventTooLarge);
    }
    kept.insert(0, Item::new("event", Bytes::from(json)));
    *envelope.items_mut() = kept;
    if envelope.event_id().is_none() {
        if let Some(id) = event_id {
            let mut headers: Headers =
                serde_json::from_slice(envelope.header()).map_err(|_| UploadError::InvalidEvent)?;
            headers.insert("event_id".to_owned(), Value::String(id));
            let json = serde_json::to_vec(&headers).map_err(|_| UploadError::InvalidEvent)?;
            envelope
                .set_header(Bytes::from(json))
                .map_err(|_| UploadError::InvalidEvent)?;
        }
    }
    Ok(())
}

/// The event id in the hyphenated form Relay answers minidump and Unreal uploads with.
pub fn hyphenated(event_id: &str) -> String {
    if event_id.len() != 32 {
        return event_id.to_owned();
    }
    format!(
        "{}-{}-{}-{}-{}",
        &event_id[..8],
        &event_id[8..12],
        &event_id[12..16],
        &event_id[16..20],
        &event_id[20..]
    )
}

/// What a minidump form says of the event, merged in Relay's order: the msgpack event,
/// then the `sentry` JSON, then `sentry[...]` fields, then other fields into `extra`,
/// then the breadcrumbs.
#[derive(Default)]
struct Form {
    payload: Option<Map<String, Value>>,
    sentry: Vec<Bytes>,
    bracketed: Vec<(String, String)>,
    extra: Vec<(String, String)>,
    breadcrumbs: Vec<Value>,
}

impl Form {
    fn merge_into(self, event: &mut Map<String, Value>) -> Result<(), UploadError> {
        if let Some(payload) = self.payload {
            for (key, value) in payload {
                event.entry(key).or_insert(value);
            }
        }
        for json in self.sentry {
            match serde_json::from_slice(&json) {
                Ok(Value::Object(fields)) => event.extend(fields),
                _ => return Err(UploadError::InvalidSentryField),
            }
        }
        for (name, value) in self.bracketed {
            set_bracketed(event, &name, value);
        }
        if !self.extra.is_empty() {
            let extra = event
                .entry("extra")
                .or_insert_with(|| Value::Object(Map::new()));
            if !extra.is_object() {
                *extra = Value::Object(Map::new());
            }
            if let Value::Object(extra) = extra {
                for (name, value) in self.extra {
                    extra.insert(name, Value::String(value));
                }
            }
        }
        msgpack::merge_breadcrumbs(event, self.breadcrumbs);
        Ok(())
    }
}

/// Sets `sentry[a][b]` = `value` as `event.a.b`, making objects on the way.
fn set_bracketed(event: &mut Map<String, Value>, name: &str, value: String) {
    let keys: Vec<&str> = name
        .strip_prefix("sentry")
        .unwrap_or("")
        .split('[')
        .filter_map(|segment| segment.strip_suffix(']'))
        .collect();
    let Some((last, path)) = keys.split_last() else {
        return;
    };
    let mut node = event;
    for key in path {
        let child = node
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        let Value::Object(child) = child else {
            return;
        };
        node = child;
    }
    node.insert(last.to_string(), Value::String(value));
}

/// The files of an upload and their total size, within the limits.
struct Files<'l> {
    items: Vec<Item>,
    total: usize,
    limits: &'l LimitsConfig,
}

impl<'l> Files<'l> {
    fn new(limits: &'l LimitsConfig) -> Self {
        Files {
            items: Vec::new(),
            total: 0,
            limits,
        }
    }

    fn add(&mut self, item: Item) -> Result<(), UploadError> {
        self.count(&item)?;
        self.items.push(item);
        Ok(())
    }

    /// Adds `item` before the others (the dump leads its upload's attachments).
    fn add_first(&mut self, item: Item) -> Result<(), UploadError> {
        self.count(&item)?;
        self.items.insert(0, item);
        Ok(())
    }

    /// Counts `item` against the limits.
    fn count(&mut self, item: &Item) -> Result<(), UploadError> {
        let len = item.payload().len();
        self.total = self.total.saturating_add(len);
        if len > self.limits.max_attachment_size || self.total > self.limits.max_attachments_size {
            return Err(UploadError::AttachmentsTooLarge);
        }
        Ok(())
    }
}

/// A file part as an attachment item (a `view-hierarchy.json` file as a view
/// hierarchy, as Relay takes it).
fn file_item(part: Part) -> Item {
    let filename = part.filename.unwrap_or_default();
    let attachment_type = if filename == "view-hierarchy.json" {
        "event.view_hierarchy"
    } else {
        "event.attachment"
    };
    attachment(
        part.data,
        attachment_type,
        &filename,
        part.content_type.as_deref(),
    )
}

fn attachment(
    data: Bytes,
    attachment_type: &str,
    filename: &str,
    content_type: Option<&str>,
) -> Item {
    let mut item = Item::new("attachment", data);
    let headers = item.headers_mut();
    headers.insert("attachment_type".to_owned(), attachment_type.into());
    headers.insert("filename".to_owned(), filename.into());
    if let Some(content_type) = content_type {
        headers.insert("content_type".to_owned(), content_type.into());
    }
    item
}

/// The dump, out of its container if it has one, with its magic checked.
fn unwrap_dump(data: Bytes, limits: &LimitsConfig) -> Result<Bytes, UploadError> {
    let cap = limits.decoded_cap(data.len(), limits.max_attachment_size);
    let dump = unwrap_container(data, cap).map_err(UploadError::Container)?;
    if !is_minidump(&dump) {
        return Err(UploadError::NotAMinidump);
    }
    Ok(dump)
}

/// An envelope of `items` with an event built from `event`.
fn build(
    mut event: Map<String, Value>,
    mut items: Vec<Item>,
    limits: &LimitsConfig,
    new_id: fn() -> String,
) -> Result<Upload, UploadError> {
    let event_id = event_id_of(&event).unwrap_or_else(new_id);
    event.insert("event_id".to_owned(), Value::String(event_id.clone()));
    let json = serde_json::to_vec(&event).map_err(|_| UploadError::InvalidEvent)?;
    if json.len() > limits.max_event_size {
        return Err(UploadError::EventTooLarge);
    }
    items.insert(0, Item::new("event", Bytes::from(json)));
    envelope(&event_id, items)
}

fn envelope(event_id: &str, items: Vec<Item>) -> Result<Upload, UploadError> {
    let mut headers = Headers::new();
    headers.insert("event_id".to_owned(), Value::String(event_id.to_owned()));
    let mut envelope = Envelope::new(&headers).map_err(|_| UploadError::InvalidEvent)?;
    *envelope.items_mut() = items;
    Ok(Upload {
        envelope,
        event_id: event_id.to_owned(),
    })
}

/// The event's own `event_id`, when it is a UUID (32 hex digits, hyphens allowed).
fn event_id_of(event: &Map<String, Value>) -> Option<String> {
    event
        .get("event_id")
        .and_then(Value::as_str)
        .and_then(normalize_event_id)
}

/// A UUID as 32 lowercase hex digits; `None` when it is not one.
pub fn normalize_event_id(id: &str) -> Option<String> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

/// A form field's text.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> String {
        "0123456789abcdef0123456789abcdef".to_owned()
    }

    #[test]
    fn bracketed_fields_nest() {
        let mut event = Map::new();
        set_bracketed(&mut event, "sentry[tags][region]", "eu".into());
        set_bracketed(&mut event, "sentry[release]", "1.0".into());
        assert_eq!(
            Value::Object(event),
            serde_json::json!({"tags": {"region": "eu"}, "release": "1.0"})
        );
    }

    #[test]
    fn raw_dump_needs_the_magic() {
        let limits = crate::config::Config::default().limits;
        let upload =
            minidump_upload(None, Bytes::from_static(b"MDMP\x93\xa7rest"), &limits, id).unwrap();
        assert_eq!(upload.event_id, id());
        assert_eq!(upload.envelope.items().len(), 2);
        assert_eq!(
            upload.envelope.items()[1].header_str("attachment_type"),
            Some("event.minidump")
        );
        assert!(matches!(
            minidump_upload(None, Bytes::from_static(b"not a dump"), &limits, id),
            Err(UploadError::NotAMinidump)
        ));
    }

    #[test]
    fn hyphenated_ids() {
        assert_eq!(
            hyphenated("0123456789abcdef0123456789abcdef"),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
        assert_eq!(
            normalize_event_id("01234567-89AB-cdef-0123-456789abcdef").as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(normalize_event_id("nope"), None);
    }
}
