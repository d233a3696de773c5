//! Legacy store bodies: raw JSON, base64 JSON, or base64 of zlib-compressed JSON (old
//! raven clients), decoded within a size cap.

use super::inflate::{inflate, CappedReadError};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;

/// Base64 with the standard alphabet, padding optional.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 with the URL-safe alphabet, padding optional.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a store body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The body is empty or only whitespace.
    #[error("empty event body")]
    Empty,
    /// The body is neither JSON nor valid base64.
    #[error("body is neither json nor base64")]
    InvalidBase64,
    /// The base64 payload is neither JSON nor valid zlib data.
    #[error("invalid zlib data in base64 body")]
    InvalidZlib,
    /// The inflated payload exceeds the cap.
    #[error("decoded event exceeds the size limit")]
    TooLarge,
}

/// Decodes a store endpoint body into event JSON bytes.
///
/// - A body whose first non-whitespace byte is `{` is returned as it is (no copy).
/// - Otherwise it is base64-decoded (standard or URL-safe alphabet, padding optional,
///   surrounding whitespace ignored); if the result starts with `{`, that is the JSON.
/// - Otherwise the decoded bytes are zlib-inflated into at most `max_size` bytes.
///
/// The JSON itself is not validated here.
///
/// # Errors
///
/// [`StoreError::Empty`], [`StoreError::InvalidBase64`], [`StoreError::InvalidZlib`], or
/// [`StoreError::TooLarge`] when the inflated event would exceed `max_size`.
pub fn decode_store_body(body: Bytes, max_size: usize) -> Result<Bytes, StoreError> {
    match first_non_whitespace(&body) {
        None => return Err(StoreError::Empty),
        Some(b'{') => return Ok(body),
        Some(_) => {}
    }
    let decoded = decode_base64(trim_ascii(&body)).ok_or(StoreError::InvalidBase64)?;
    if first_non_whitespace(&decoded) == Some(b'{') {
        return Ok(Bytes::from(decoded));
    }
    let inflated = inflate(&decoded, true, max_size).map_err(|error| match error {
        CappedReadError::TooLarge => StoreError::TooLarge,
        // Not watched, so never stopped.
        CappedReadError::Io(_) | CappedReadError::Stopped => StoreError::InvalidZlib,
    })?;
    Ok(Bytes::from(inflated))
}

/// Decodes base64 in either alphabet, padding optional. Line breaks inside the text (as
/// MIME encoders write them) are accepted at the cost of one copy.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let engine = if text.iter().any(|&b| b == b'-' || b == b'_') {
        &URL_SAFE_LENIENT
    } else {
        &STANDARD_LENIENT
    };
    match engine.decode(text) {
        Ok(decoded) => Some(decoded),
        Err(_) if text.iter().any(u8::is_ascii_whitespace) => {
            let compact: Vec<u8> = text
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            engine.decode(compact).ok()
        }
        Err(_) => None,
    }
}

fn first_non_whitespace(data: &[u8]) -> Option<u8> {
    data.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn trim_ascii(data: &[u8]) -> &[u8] {
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(data.len());
    let end = data
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &data[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::error::IngestError;
    use http::StatusCode;
    use std::io::Write;

    const EVENT: &[u8] = br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hi"}"#;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn raw_json_is_returned_without_copy() {
        let body = Bytes::from_static(b"  \n{\"a\":1}");
        let out = decode_store_body(body.clone(), 1024).unwrap();
        assert_eq!(out, body);
        assert_eq!(out.as_ptr(), body.as_ptr());
    }

    #[test]
    fn base64_json_in_every_variant() {
        let engines: [(&str, &GeneralPurpose); 4] = [
            ("standard", &base64::engine::general_purpose::STANDARD),
            (
                "standard no pad",
                &base64::engine::general_purpose::STANDARD_NO_PAD,
            ),
            ("url safe", &base64::engine::general_purpose::URL_SAFE),
            (
                "url safe no pad",
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ),
        ];
        // Bytes chosen so the encodings differ between alphabets and need padding.
        let event = br#"{"message":"???>>>~~~"}"#;
        for (name, engine) in engines {
            let body = format!("{}\n", engine.encode(event));
            let out = decode_store_body(Bytes::from(body), 1024).unwrap();
            assert_eq!(out.as_ref(), event, "{name}");
        }
    }

    #[test]
    fn base64_zlib_json() {
        let body = base64::engine::general_purpose::STANDARD.encode(zlib(EVENT));
        let out = decode_store_body(Bytes::from(body), 1024).unwrap();
        assert_eq!(out.as_ref(), EVENT);
    }

    #[test]
    fn base64_with_line_breaks() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(zlib(EVENT));
        let wrapped: String = encoded
            .as_bytes()
            .chunks(20)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        let out = decode_store_body(Bytes::from(wrapped), 1024).unwrap();
        assert_eq!(out.as_ref(), EVENT);
    }

    #[test]
    fn zlib_bomb_stops_at_cap() {
        let bomb = zlib(&vec![b' '; 10 * 1024 * 1024]);
        let body = base64::engine::general_purpose::STANDARD.encode(bomb);
        let err = decode_store_body(Bytes::from(body), 64 * 1024).unwrap_err();
        assert_eq!(err, StoreError::TooLarge);
        assert_eq!(
            IngestError::StoreBody(err).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn exactly_at_cap_is_accepted() {
        let body = base64::engine::general_purpose::STANDARD.encode(zlib(EVENT));
        assert!(decode_store_body(Bytes::from(body.clone()), EVENT.len()).is_ok());
        assert_eq!(
            decode_store_body(Bytes::from(body), EVENT.len() - 1).unwrap_err(),
            StoreError::TooLarge
        );
    }

    #[test]
    fn errors() {
        let not_zlib = base64::engine::general_purpose::STANDARD.encode(b"not zlib at all");
        let cases: [(&str, Bytes, StoreError); 4] = [
            ("empty", Bytes::new(), StoreError::Empty),
            ("blank", Bytes::from_static(b" \n "), StoreError::Empty),
            (
                "not base64",
                Bytes::from_static(b"<xml/>"),
                StoreError::InvalidBase64,
            ),
            ("not zlib", Bytes::from(not_zlib), StoreError::InvalidZlib),
        ];
        for (name, body, want) in cases {
            let got = decode_store_body(body, 1024).unwrap_err();
            assert_eq!(got, want, "{name}");
            assert_eq!(
                IngestError::StoreBody(got).status(),
                StatusCode::BAD_REQUEST,
                "{name}"
            );
        }
    }
}
