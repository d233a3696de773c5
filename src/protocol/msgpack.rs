//! sentry-native's event data in msgpack: the `event.payload` attachment (the whole
//! event, written by its Crashpad and Breakpad backends next to the minidump) and the
//! `event.breadcrumbs` attachments (a stream of breadcrumb maps; the minidump
//! endpoint's `__sentry-breadcrumb1`/`2` parts), turned into JSON and merged into one
//! event as Relay does, so that the event is scrubbed and forwarded as a JSON item.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// The most breadcrumbs an event keeps (Relay's and the SDKs' default): the newest.
pub const MAX_BREADCRUMBS: usize = 100;

/// Why msgpack event data cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum MsgpackError {
    /// Not msgpack, or holding something JSON cannot (binary data, non-string keys).
    #[error("invalid msgpack: {0}")]
    Invalid(String),
    /// The event payload is not a map.
    #[error("the msgpack event is not a map")]
    NotAMap,
}

/// The event of an `event.payload` attachment.
///
/// # Errors
/// [`MsgpackError`] when it is not a msgpack map JSON can hold.
pub fn event(bytes: &[u8]) -> Result<Map<String, Value>, MsgpackError> {
    match rmp_serde::from_slice::<Value>(bytes) {
        Ok(Value::Object(event)) => Ok(event),
        Ok(_) => Err(MsgpackError::NotAMap),
        Err(error) => Err(MsgpackError::Invalid(error.to_string())),
    }
}

/// The breadcrumbs of an `event.breadcrumbs` attachment: a stream of msgpack values,
/// each a breadcrumb map (or an array of them).
///
/// # Errors
/// [`MsgpackError`] when a value is not msgpack JSON can hold.
pub fn breadcrumbs(bytes: &[u8]) -> Result<Vec<Value>, MsgpackError> {
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut deserializer = rmp_serde::Deserializer::new(&mut rest);
        let value: Value = serde::Deserialize::deserialize(&mut deserializer)
            .map_err(|error| MsgpackError::Invalid(error.to_string()))?;
        match value {
            Value::Array(values) => out.extend(values),
            value => out.push(value),
        }
    }
    Ok(out)
}

/// Merges `more` breadcrumbs into `event`'s (`breadcrumbs.values`, or a bare list),
/// ordered by timestamp, keeping the newest [`MAX_BREADCRUMBS`].
pub fn merge_breadcrumbs(event: &mut Map<String, Value>, more: Vec<Value>) {
    if more.is_empty() {
        return;
    }
    let mut values = match event.remove("breadcrumbs") {
        Some(Value::Object(mut crumbs)) => match crumbs.remove("values") {
            Some(Value::Array(values)) => values,
            _ => Vec::new(),
        },
        Some(Value::Array(values)) => values,
        _ => Vec::new(),
    };
    values.extend(more);
    values.sort_by(|a, b| compare_timestamps(a.get("timestamp"), b.get("timestamp")));
    if values.len() > MAX_BREADCRUMBS {
        values.drain(..values.len() - MAX_BREADCRUMBS);
    }
    let mut crumbs = Map::new();
    crumbs.insert("values".to_owned(), Value::Array(values));
    event.insert("breadcrumbs".to_owned(), Value::Object(crumbs));
}

/// Orders two breadcrumb timestamps (Unix seconds or RFC 3339 text); unknown ones keep
/// their order.
fn compare_timestamps(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(a)), Some(Value::Number(b))) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(a)), Some(Value::String(b))) => a.cmp(b),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pack(value: &Value) -> Vec<u8> {
        rmp_serde::to_vec_named(value).unwrap()
    }

    #[test]
    fn event_and_breadcrumb_stream() {
        let event = super::event(&pack(&json!({"message": "hi", "level": "fatal"}))).unwrap();
        assert_eq!(event["message"], "hi");
        let mut stream = pack(&json!({"message": "b", "timestamp": 2.0}));
        stream.extend(pack(&json!({"message": "a", "timestamp": 1.0})));
        let crumbs = breadcrumbs(&stream).unwrap();
        assert_eq!(crumbs.len(), 2);
        let mut event = event;
        merge_breadcrumbs(&mut event, crumbs);
        assert_eq!(event["breadcrumbs"]["values"][0]["message"], "a");
        assert_eq!(event["breadcrumbs"]["values"][1]["message"], "b");
    }

    #[test]
    fn not_a_map_or_not_msgpack() {
        assert!(matches!(
            super::event(&pack(&json!([1, 2]))),
            Err(MsgpackError::NotAMap)
        ));
        assert!(super::event(b"\xc1garbage").is_err());
        assert!(breadcrumbs(b"\xc1").is_err());
    }

    #[test]
    fn keeps_the_newest_breadcrumbs() {
        let mut event = Map::new();
        let crumbs = (0..150).map(|i| json!({"timestamp": i})).collect();
        merge_breadcrumbs(&mut event, crumbs);
        let values = event["breadcrumbs"]["values"].as_array().unwrap();
        assert_eq!(values.len(), MAX_BREADCRUMBS);
        assert_eq!(values[0]["timestamp"], 50);
    }
}
