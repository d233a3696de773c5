//! Envelope framing: parse an envelope body into its header and items, and write it back
//! with correct `length` values.
//!
//! ```text
//! {"event_id":"...","dsn":"..."}\n          <- envelope header (one JSON object)
//! {"type":"event","length":41}\n            <- item header
//! {"message":"hello","level":"info",...}\n   <- payload: exactly `length` bytes,
//! {"type":"attachment"}\n                    <- or, without `length`, up to the next \n
//! raw bytes\n
//! ```
//!
//! The envelope header is kept as the bytes it was sent as (the fields scrubgate reads,
//! `event_id`, `dsn` and whether there is a `trace`, are read once); item headers are kept
//! as JSON maps in their original key order, so unknown keys survive a round trip.
//! Payloads are zero-copy slices of the body. `Debug` prints item types and
//! sizes only, never payloads or header values (they can carry personal data).

use std::fmt;

use bytes::Bytes;
use serde_json::{Map, Value};

/// An envelope or item header: a JSON object, in its original key order.
pub type Headers = Map<String, Value>;

/// Why an envelope body could not be parsed. Every item error names the item's
/// zero-based index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is empty or blank: there is no envelope header.
    #[error("empty envelope")]
    Empty,
    /// The first line is not a JSON object.
    #[error("invalid envelope header")]
    InvalidHeader,
    /// An item header line is not a JSON object.
    #[error("invalid header of item {index}")]
    InvalidItemHeader {
        /// Zero-based item index.
        index: usize,
    },
    /// An item header has no non-empty string `type`.
    #[error("item {index} has no type")]
    MissingItemType {
        /// Zero-based item index.
        index: usize,
    },
    /// An item header's `length` is not a non-negative integer.
    #[error("item {index} has an invalid length")]
    InvalidLength {
        /// Zero-based item index.
        index: usize,
    },
    /// An item's `length` runs past the end of the body.
    #[error("item {index} runs past the end of the envelope")]
    UnexpectedEof {
        /// Zero-based item index.
        index: usize,
    },
    /// An item's payload is followed by something other than a newline.
    #[error("item {index} is not followed by a newline")]
    MissingNewline {
        /// Zero-based item index.
        index: usize,
    },
    /// Writing the envelope failed. Cannot happen when writing to memory; kept so the
    /// serializer needs no panic path.
    #[error("failed to serialize envelope")]
    Serialize,
}

/// Declares [`ItemType`] from one list of variants and their protocol names.
macro_rules! item_types {
    ($($variant:ident => $name:literal,)+) => {
        /// The item types of the Sentry protocol, for exhaustive matching; anything else
        /// is [`ItemType::Unknown`] (the original name stays available from
        /// [`Item::ty`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ItemType {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )+
            /// Any other type name.
            Unknown,
        }

        impl ItemType {
            /// Every type, [`ItemType::Unknown`] last.
            pub const ALL: &'static [ItemType] = &[$(ItemType::$variant,)+ ItemType::Unknown];

            /// The type for a header's `type` value.
            pub fn from_name(name: &str) -> Self {
                match name {
                    $($name => ItemType::$variant,)+
                    _ => ItemType::Unknown,
                }
            }

            /// The protocol's name for the type; `other` for [`ItemType::Unknown`].
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ItemType::$variant => $name,)+
                    ItemType::Unknown => "other",
                }
            }
        }
    };
}

item_types! {
    Event => "event",
    Transaction => "transaction",
    Security => "security",
    RawSecurity => "raw_security",
    Nel => "nel",
    FormData => "form_data",
    UserReport => "user_report",
    Feedback => "feedback",
    Attachment => "attachment",
    UnrealReport => "unreal_report",
    Session => "session",
    Sessions => "sessions",
    ClientReport => "client_report",
    CheckIn => "check_in",
    Statsd => "statsd",
    MetricBuckets => "metric_buckets",
    ReplayEvent => "replay_event",
    ReplayRecording => "replay_recording",
    ReplayVideo => "replay_video",
    Profile => "profile",
    ProfileChunk => "profile_chunk",
    Span => "span",
    OtelSpan => "otel_span",
    Log => "log",
    OtelLog => "otel_log",
    TraceMetric => "trace_metric",
}

/// One envelope item: its header (with `type`) and its payload.
#[derive(Clone, PartialEq)]
pub struct Item {
    headers: Headers,
    payload: Bytes,
}

impl Item {
    /// A new item of type `ty` with the given payload.
    pub fn new(ty: &str, payload: Bytes) -> Self {
        let mut headers = Headers::new();
        headers.insert("type".to_owned(), Value::String(ty.to_owned()));
        Self { headers, payload }
    }

    /// The `type` header as sent (`"event"`, `"attachment"`, ...).
    pub fn ty(&self) -> &str {
        self.header_str("type").unwrap_or("")
    }

    /// The `type` as an [`ItemType`].
    pub fn item_type(&self) -> ItemType {
        ItemType::from_name(self.ty())
    }

    /// A header value if it is a string (`content_type`, `filename`, `attachment_type`...).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }

    /// The item header. Its `length` is the parsed one; serialization always writes the
    /// payload's real length.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The item header, to change. Serialization overwrites `length`.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The payload bytes.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Replaces the payload (e.g. with the scrubbed event), updating `length` if the
    /// header has one.
    pub fn set_payload(&mut self, payload: Bytes) {
        if let Some(length) = self.headers.get_mut("length") {
            *length = Value::from(payload.len());
        }
        self.payload = payload;
    }

    /// Writes `{header with length}\n{payload}\n`.
    fn write_to(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let len = self.payload.len();
        out.push(b'{');
        let mut wrote_length = false;
        for (i, (key, value)) in self.headers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key).map_err(|_| EnvelopeError::Serialize)?;
            out.push(b':');
            if key == "length" {
                serde_json::to_writer(&mut *out, &len).map_err(|_| EnvelopeError::Serialize)?;
                wrote_length = true;
            } else {
                serde_json::to_writer(&mut *out, value).map_err(|_| EnvelopeError::Serialize)?;
            }
        }
        if !wrote_length {
            if !self.headers.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"length\":");
            serde_json::to_writer(&mut *out, &len).map_err(|_| EnvelopeError::Serialize)?;
        }
        out.extend_from_slice(b"}\n");
        out.extend_from_slice(&self.payload);
        out.push(b'\n');
        Ok(())
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("ty", &self.ty())
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// A parsed envelope: the header and the items, in order.
#[derive(Clone, PartialEq)]
pub struct Envelope {
    header: EnvelopeHeader,
    items: Vec<Item>,
}

/// The envelope header: its JSON text and the fields read from it.
#[derive(Clone, PartialEq)]
struct EnvelopeHeader {
    /// One JSON object, without the line's newline.
    json: Bytes,
    event_id: Option<String>,
    dsn: Option<String>,
    has_trace: bool,
}

/// The header fields scrubgate reads; every other key stays in the text untouched.
#[derive(serde::Deserialize)]
struct HeaderFields {
    #[serde(default)]
    event_id: Option<Value>,
    #[serde(default)]
    dsn: Option<Value>,
    #[serde(default)]
    trace: Option<serde::de::IgnoredAny>,
}

impl EnvelopeHeader {
    /// Reads a header line, which must be one JSON object.
    fn read(json: Bytes) -> Result<Self, EnvelopeError> {
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(EnvelopeError::InvalidHeader);
        }
        let fields: HeaderFields =
            serde_json::from_slice(&json).map_err(|_| EnvelopeError::InvalidHeader)?;
        let text = |v: Option<Value>| match v {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(EnvelopeHeader {
            event_id: text(fields.event_id),
            dsn: text(fields.dsn),
            has_trace: fields.trace.is_some(),
            json,
        })
    }
}

impl Envelope {
    /// An envelope with the given header and no items.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::Serialize`], which cannot happen for a map of JSON values.
    pub fn new(headers: &Headers) -> Result<Self, EnvelopeError> {
        let json = serde_json::to_vec(headers).map_err(|_| EnvelopeError::Serialize)?;
        Ok(Self {
            header: EnvelopeHeader::read(Bytes::from(json))?,
            items: Vec::new(),
        })
    }

    /// Parses an envelope body. Payloads are slices of `body` (no copy).
    ///
    /// Blank lines at the end are accepted; a blank line between items is not.
    ///
    /// # Errors
    ///
    /// An [`EnvelopeError`] naming the first problem (and the item it is in).
    pub fn parse(body: Bytes) -> Result<Self, EnvelopeError> {
        let data: &[u8] = &body;
        let (header_line, mut pos) = match find_newline(data, 0) {
            Some(end) => (&data[..end], end + 1),
            None => (data, data.len()),
        };
        if is_blank(header_line) {
            return Err(EnvelopeError::Empty);
        }
        let header = EnvelopeHeader::read(body.slice_ref(header_line))?;

        let mut items = Vec::new();
        while !is_blank(&data[pos..]) {
            let index = items.len();
            let (header_line, payload_start) = match find_newline(data, pos) {
                Some(end) => (&data[pos..end], end + 1),
                None => (&data[pos..], data.len()),
            };
            let headers: Headers = serde_json::from_slice(header_line)
                .map_err(|_| EnvelopeError::InvalidItemHeader { index })?;
            match headers.get("type") {
                Some(Value::String(ty)) if !ty.is_empty() => {}
                _ => return Err(EnvelopeError::MissingItemType { index }),
            }
            let payload_end = match headers.get("length") {
                None | Some(Value::Null) => find_newline(data, payload_start).unwrap_or(data.len()),
                Some(length) => {
                    let length = length
                        .as_u64()
                        .and_then(|l| usize::try_from(l).ok())
                        .ok_or(EnvelopeError::InvalidLength { index })?;
                    match payload_start.checked_add(length) {
                        Some(end) if end <= data.len() => end,
                        _ => return Err(EnvelopeError::UnexpectedEof { index }),
                    }
                }
            };
            match data.get(payload_end) {
                None | Some(b'\n') => {}
                Some(_) => return Err(EnvelopeError::MissingNewline { index }),
            }
            items.push(Item {
                headers,
                payload: body.slice(payload_start..payload_end),
            });
            pos = (payload_end + 1).min(data.len());
        }
        Ok(Self { header, items })
    }

    /// Parses an envelope from a borrowed slice (copies it once).
    ///
    /// # Errors
    ///
    /// As [`Envelope::parse`].
    pub fn from_slice(body: &[u8]) -> Result<Self, EnvelopeError> {
        Self::parse(Bytes::copy_from_slice(body))
    }

    /// The envelope header's JSON text (one object, as sent unless replaced).
    pub fn header(&self) -> &Bytes {
        &self.header.json
    }

    /// Replaces the envelope header (e.g. with its scrubbed text); the fields read from it
    /// are read again.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::InvalidHeader`] when `json` is not one JSON object.
    pub fn set_header(&mut self, json: Bytes) -> Result<(), EnvelopeError> {
        self.header = EnvelopeHeader::read(json)?;
        Ok(())
    }

    /// The header's `event_id`, if it is a string.
    pub fn event_id(&self) -> Option<&str> {
        self.header.event_id.as_deref()
    }

    /// The header's `dsn`, if it is a string.
    pub fn dsn(&self) -> Option<&str> {
        self.header.dsn.as_deref()
    }

    /// True when the header has a `trace` (the dynamic sampling context).
    pub fn has_trace(&self) -> bool {
        self.header.has_trace
    }

    /// The items, in order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The items, to change, drop (`retain`) or add.
    pub fn items_mut(&mut self) -> &mut Vec<Item> {
        &mut self.items
    }

    /// Writes the envelope: the header, then every item with a `length` equal to its
    /// current payload's size, each payload followed by `\n`.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::Serialize`], which cannot happen when writing to a `Vec`.
    pub fn write_to(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        out.extend_from_slice(self.header.json.trim_ascii());
        out.push(b'\n');
        for item in &self.items {
            item.write_to(out)?;
        }
        Ok(())
    }

    /// The serialized envelope (see [`Envelope::write_to`]).
    ///
    /// # Errors
    ///
    /// As [`Envelope::write_to`].
    pub fn to_bytes(&self) -> Result<Bytes, EnvelopeError> {
        let estimate = 256
            + self
                .items
                .iter()
                .map(|item| item.payload.len() + 128)
                .sum::<usize>();
        let mut out = Vec::with_capacity(estimate);
        self.write_to(&mut out)?;
        Ok(Bytes::from(out))
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("event_id", &self.event_id())
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

fn find_newline(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i)
}

fn is_blank(data: &[u8]) -> bool {
    data.iter().all(u8::is_ascii_whitespace)
}

/// A `replay_recording` payload split into its header line (`{"segment_id": N}`, a JSON
/// object) and the rrweb events after it (zlib-compressed or not); `None` when it has no
/// header line or the header is not a JSON object.
pub fn split_recording(payload: &[u8]) -> Option<(&[u8], &[u8])> {
    let newline = payload.iter().position(|&b| b == b'\n')?;
    let (header, events) = (&payload[..newline], &payload[newline + 1..]);
    serde_json::from_slice::<serde_json::Map<String, Value>>(header).ok()?;
    Some((header, events))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::error::IngestError;
    use http::StatusCode;

    fn parse(s: &[u8]) -> Result<Envelope, EnvelopeError> {
        Envelope::from_slice(s)
    }

    const MIXED: &[u8] = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"https://e12d836b15bb49d7bbf99e64295d995b@sentry.io/42\",\"zzz_unknown\":{\"b\":1,\"a\":2}}\n\
{\"type\":\"attachment\",\"length\":11,\"filename\":\"a.txt\",\"x_custom\":true}\n\
line1\nline2\n\
{\"type\":\"event\"}\n\
{\"message\":\"hi\"}\n\
{\"type\":\"session\",\"length\":0}\n\
\n";

    #[test]
    fn parses_items_with_and_without_length() {
        let env = parse(MIXED).unwrap();
        assert_eq!(env.event_id(), Some("9ec79c33ec9942ab8353589fcb2e04dc"));
        assert_eq!(
            env.dsn(),
            Some("https://e12d836b15bb49d7bbf99e64295d995b@sentry.io/42")
        );
        let items = env.items();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].item_type(), ItemType::Attachment);
        assert_eq!(items[0].payload().as_ref(), b"line1\nline2");
        assert_eq!(items[0].header_str("filename"), Some("a.txt"));
        assert_eq!(items[1].ty(), "event");
        assert_eq!(items[1].payload().as_ref(), b"{\"message\":\"hi\"}");
        assert_eq!(items[2].item_type(), ItemType::Session);
        assert!(items[2].payload().is_empty());
    }

    #[test]
    fn serializes_with_lengths_and_keeps_unknown_keys_in_order() {
        let env = parse(MIXED).unwrap();
        let out = env.to_bytes().unwrap();
        let expected: &[u8] = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"https://e12d836b15bb49d7bbf99e64295d995b@sentry.io/42\",\"zzz_unknown\":{\"b\":1,\"a\":2}}\n\
{\"type\":\"attachment\",\"length\":11,\"filename\":\"a.txt\",\"x_custom\":true}\n\
line1\nline2\n\
{\"type\":\"event\",\"length\":16}\n\
{\"message\":\"hi\"}\n\
{\"type\":\"session\",\"length\":0}\n\
\n";
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            std::str::from_utf8(expected).unwrap()
        );
        // Parsing the output gives the same items, and writing it again is a fixed point.
        let again = parse(&out).unwrap();
        assert_eq!(again.header(), env.header());
        let payloads = |e: &Envelope| {
            e.items()
                .iter()
                .map(|i| i.payload().clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(payloads(&again), payloads(&env));
        assert_eq!(again.to_bytes().unwrap(), out);
        assert_eq!(again.to_bytes().unwrap(), out);
    }

    #[test]
    fn set_payload_updates_length() {
        let mut env = parse(MIXED).unwrap();
        env.items_mut()[1].set_payload(Bytes::from_static(b"{\"message\":\"[redacted]\"}"));
        env.items_mut()[0].set_payload(Bytes::from_static(b"a\nb"));
        assert_eq!(
            env.items()[0].headers().get("length"),
            Some(&Value::from(3))
        );
        let out = env.to_bytes().unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("{\"type\":\"attachment\",\"length\":3,\"filename\":\"a.txt\",\"x_custom\":true}\na\nb\n"), "{text}");
        assert!(
            text.contains("{\"type\":\"event\",\"length\":24}\n{\"message\":\"[redacted]\"}\n"),
            "{text}"
        );
        let again = parse(&out).unwrap();
        assert_eq!(
            again.items()[1].payload().as_ref(),
            b"{\"message\":\"[redacted]\"}"
        );
        assert_eq!(again.items()[0].payload().as_ref(), b"a\nb");
    }

    #[test]
    fn trailing_newlines_optional() {
        let without = parse(b"{}\n{\"type\":\"event\"}\n{}").unwrap();
        let with = parse(b"{}\n{\"type\":\"event\"}\n{}\n\n\n").unwrap();
        assert_eq!(without, with);
        assert_eq!(with.items().len(), 1);
        let header_only = parse(b"{\"event_id\":\"x\"}").unwrap();
        assert!(header_only.items().is_empty());
        let header_nl = parse(b"{\"event_id\":\"x\"}\n").unwrap();
        assert!(header_nl.items().is_empty());
    }

    #[test]
    fn length_payload_at_end_without_newline() {
        let env = parse(b"{}\n{\"type\":\"attachment\",\"length\":3}\nabc").unwrap();
        assert_eq!(env.items()[0].payload().as_ref(), b"abc");
    }

    #[test]
    fn empty_payload_without_length() {
        let env = parse(b"{}\n{\"type\":\"a\"}\n\n{\"type\":\"b\"}\nx\n").unwrap();
        assert_eq!(env.items().len(), 2);
        assert!(env.items()[0].payload().is_empty());
        assert_eq!(env.items()[1].payload().as_ref(), b"x");
        assert_eq!(env.items()[1].item_type(), ItemType::Unknown);
    }

    #[test]
    fn new_items_get_a_length() {
        let mut env = Envelope::new(&Headers::new()).unwrap();
        env.items_mut()
            .push(Item::new("event", Bytes::from_static(b"{\"a\":1}")));
        assert_eq!(
            env.to_bytes().unwrap().as_ref(),
            b"{}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n"
        );
    }

    #[test]
    fn errors_name_the_item() {
        let cases: &[(&str, &[u8], EnvelopeError)] = &[
            ("empty", b"", EnvelopeError::Empty),
            ("blank", b"  \n", EnvelopeError::Empty),
            ("header not json", b"{nope\n", EnvelopeError::InvalidHeader),
            ("header not object", b"[1]\n", EnvelopeError::InvalidHeader),
            (
                "item header not json",
                b"{}\n{\"type\":\"event\"}\n{}\nnot json\n",
                EnvelopeError::InvalidItemHeader { index: 1 },
            ),
            (
                "blank line between items",
                b"{}\n{\"type\":\"event\",\"length\":2}\n{}\n\n{\"type\":\"event\"}\n{}\n",
                EnvelopeError::InvalidItemHeader { index: 1 },
            ),
            (
                "no type",
                b"{}\n{\"length\":2}\n{}\n",
                EnvelopeError::MissingItemType { index: 0 },
            ),
            (
                "type not a string",
                b"{}\n{\"type\":1}\n{}\n",
                EnvelopeError::MissingItemType { index: 0 },
            ),
            (
                "negative length",
                b"{}\n{\"type\":\"event\",\"length\":-1}\n{}\n",
                EnvelopeError::InvalidLength { index: 0 },
            ),
            (
                "string length",
                b"{}\n{\"type\":\"event\",\"length\":\"2\"}\n{}\n",
                EnvelopeError::InvalidLength { index: 0 },
            ),
            (
                "length past end",
                b"{}\n{\"type\":\"event\",\"length\":100}\n{}\n",
                EnvelopeError::UnexpectedEof { index: 0 },
            ),
            (
                "huge length",
                b"{}\n{\"type\":\"event\",\"length\":18446744073709551615}\n{}\n",
                EnvelopeError::UnexpectedEof { index: 0 },
            ),
            (
                "length too short",
                b"{}\n{\"type\":\"event\",\"length\":1}\n{}\n",
                EnvelopeError::MissingNewline { index: 0 },
            ),
        ];
        let mut names = std::collections::HashSet::new();
        for (name, body, want) in cases {
            assert!(names.insert(name), "duplicate case {name}");
            let got = parse(body).unwrap_err();
            assert_eq!(got, *want, "case {name}");
            assert_eq!(
                IngestError::Envelope(got).status(),
                StatusCode::BAD_REQUEST,
                "case {name}"
            );
        }
    }

    #[test]
    fn debug_hides_payloads_and_headers() {
        let env = parse(b"{\"trace\":{\"user_id\":\"alice@example.com\"}}\n{\"type\":\"event\",\"filename\":\"secret.txt\"}\n{\"email\":\"bob@example.com\"}\n").unwrap();
        let debug = format!("{env:?}");
        assert!(!debug.contains("example.com"), "{debug}");
        assert!(!debug.contains("secret.txt"), "{debug}");
        assert!(debug.contains("event"));
    }

    #[test]
    fn payload_is_zero_copy() {
        let body = Bytes::from_static(b"{}\n{\"type\":\"event\"}\n{\"a\":1}\n");
        let env = Envelope::parse(body.clone()).unwrap();
        let payload = env.items()[0].payload();
        let offset = payload.as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(offset, 20);
    }
}
