//! Request bodies, and every decoder for them: collected within a byte cap and a
//! deadline ([`collect_limited`]), decompressed per `Content-Encoding` within a cap
//! ([`decode`]; a decompression bomb stops at the cap without the buffer growing past it),
//! and legacy store bodies (base64, zlib) decoded ([`store`]).
//!
//! This is the only module that reads the raw body stream or builds decoders; the bounded
//! decompression loops live in `inflate`. Bodies sent upstream are compressed in
//! `forward::client`, not here.

pub mod budget;
mod container;
mod inflate;
pub mod store;

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::Body;

use budget::Reservation;
pub use container::unwrap_container;
use inflate::{
    gunzip_watched, inflate, inflate_watched, read_capped_watched, CappedReadError, Watch,
};

/// Why a request body could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body (received or decompressed) exceeds its limit.
    #[error("request body exceeds the size limit")]
    TooLarge,
    /// The body was not received within the read timeout.
    #[error("timed out reading the request body")]
    Timeout,
    /// The connection failed while the body was read.
    #[error("failed to read the request body")]
    Read(#[source] Box<dyn StdError + Send + Sync>),
    /// `Content-Encoding` names a coding we do not decode.
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    /// The compressed body is corrupt or truncated.
    #[error("corrupt compressed body")]
    Corrupt,
    /// Holding this body would pass `limits.max_body_bytes_in_flight`.
    #[error("too many body bytes in flight")]
    OverBudget,
    /// The caller's watch refused the decoded bytes ([`decode_watched`]).
    #[error("the decoded body was refused while it was decoded")]
    Refused,
}

impl From<CappedReadError> for BodyError {
    fn from(error: CappedReadError) -> BodyError {
        match error {
            CappedReadError::TooLarge => BodyError::TooLarge,
            CappedReadError::Io(_) => BodyError::Corrupt,
            CappedReadError::Stopped => BodyError::Refused,
        }
    }
}

/// The `Accept-Encoding` value listing the content codings [`decode`] supports.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd, identity";

/// Reads a whole body, failing as soon as more than `max` bytes arrive or when reading
/// takes longer than `timeout`. `reservation` grows before the buffer does.
///
/// A body that announces more than `max` bytes (an exact `Content-Length`) fails before
/// any byte is read. A body of one data frame is returned without copying; otherwise the
/// frames are gathered into one buffer that never grows past `max`. Trailers are ignored.
///
/// # Errors
///
/// [`BodyError::TooLarge`], [`BodyError::Timeout`], [`BodyError::OverBudget`], or
/// [`BodyError::Read`] when the body stream fails.
pub async fn collect_limited<B>(
    body: B,
    max: usize,
    timeout: Duration,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let hint = body.size_hint();
    if hint.lower() > max as u64 {
        return Err(BodyError::TooLarge);
    }
    // Size the buffer from an exact Content-Length when there is one.
    let expected = hint
        .exact()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    match tokio::time::timeout(timeout, collect_frames(body, max, expected, reservation)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(BodyError::Timeout),
    }
}

async fn collect_frames<B>(
    body: B,
    max: usize,
    expected: usize,
    reservation: &mut Reservation,
) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let mut body = std::pin::pin!(body);
    // Fast path: most bodies arrive as one frame, kept as it is.
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<Vec<u8>> = None;
    let mut total: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| BodyError::Read(error.into()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if data.is_empty() {
            continue;
        }
        total = total.saturating_add(data.len());
        if total > max {
            return Err(BodyError::TooLarge);
        }
        reservation.at_least(total)?;
        if let Some(buf) = gathered.as_mut() {
            reserve_capped(buf, data.len(), max, reservation)?;
            buf.extend_from_slice(&data);
        } else if let Some(prev) = first.take() {
            let capacity = expected.max(total.saturating_mul(2)).min(max);
            reservation.at_least(capacity)?;
            let mut buf = Vec::with_capacity(capacity);
            buf.extend_from_slice(&prev);
            buf.extend_from_slice(&data);
            gathered = Some(buf);
        } else {
            first = Some(data);
        }
    }
    Ok(match (gathered, first) {
        (Some(buf), _) => Bytes::from(buf),
        (None, Some(data)) => data,
        (None, None) => Bytes::new(),
    })
}

/// Makes room for `additional` bytes, doubling but never past `max` (the caller has
/// checked that `len + additional <= max`), within `reservation`.
fn reserve_capped(
    buf: &mut Vec<u8>,
    additional: usize,
    max: usize,
    reservation: &mut Reservation,
) -> Result<(), BodyError> {
    let needed = buf.len() + additional;
    if needed > buf.capacity() {
        let target = buf.capacity().saturating_mul(2).max(needed).min(max);
        reservation.at_least(target)?;
        buf.reserve_exact(target - buf.len());
    }
    Ok(())
}

/// A request `Content-Encoding` that [`decode`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No coding (also for an absent or empty header and the `UTF-8` SDK quirk).
    Identity,
    /// `gzip` or `x-gzip` (concatenated members are accepted).
    Gzip,
    /// `deflate`: zlib, or raw deflate when the zlib header is missing.
    Deflate,
    /// `br`
    Br,
    /// `zstd`
    Zstd,
}

impl ContentEncoding {
    /// Reads a `Content-Encoding` header, case-insensitively. An absent or empty value and
    /// `UTF-8` (sent by sentry-ruby 5.x and sentry-java android 2.0.0) mean identity.
    ///
    /// # Errors
    ///
    /// [`BodyError::UnsupportedEncoding`] for any other coding, including lists such as
    /// `gzip, br` (read those with [`codings`]).
    pub fn from_header(value: Option<&HeaderValue>) -> Result<Self, BodyError> {
        let Some(value) = value else {
            return Ok(ContentEncoding::Identity);
        };
        let name = value.as_bytes().trim_ascii();
        const NAMES: [(&[u8], ContentEncoding); 7] = [
            (b"gzip", ContentEncoding::Gzip),
            (b"x-gzip", ContentEncoding::Gzip),
            (b"deflate", ContentEncoding::Deflate),
            (b"br", ContentEncoding::Br),
            (b"zstd", ContentEncoding::Zstd),
            (b"identity", ContentEncoding::Identity),
            (b"utf-8", ContentEncoding::Identity),
        ];
        if name.is_empty() {
            return Ok(ContentEncoding::Identity);
        }
        NAMES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|&(_, encoding)| encoding)
            .ok_or(BodyError::UnsupportedEncoding)
    }

    /// The coding's canonical name (e.g. for a metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            ContentEncoding::Identity => "identity",
            ContentEncoding::Gzip => "gzip",
            ContentEncoding::Deflate => "deflate",
            ContentEncoding::Br => "br",
            ContentEncoding::Zstd => "zstd",
        }
    }
}

/// The most non-identity codings a body may carry; more are refused (415).
pub const MAX_CODINGS: usize = 2;

/// Reads every `Content-Encoding` value of a request (several header lines, each a
/// comma-separated list), in the order they were applied (RFC 9110 8.4). `identity`
/// entries (and empty ones, and the `UTF-8` quirk) are skipped.
///
/// # Errors
///
/// [`BodyError::UnsupportedEncoding`] when any entry is unknown or when more than
/// [`MAX_CODINGS`] codings remain: a list is applied whole or refused, never half-used.
pub fn codings<'a>(
    values: impl IntoIterator<Item = &'a HeaderValue>,
) -> Result<Vec<ContentEncoding>, BodyError> {
    let mut out = Vec::new();
    for value in values {
        for name in value.as_bytes().split(|&b| b == b',') {
            let Ok(name) = HeaderValue::from_bytes(name) else {
                return Err(BodyError::UnsupportedEncoding);
            };
            match ContentEncoding::from_header(Some(&name))? {
                ContentEncoding::Identity => {}
                coding if out.len() < MAX_CODINGS => out.push(coding),
                _ => return Err(BodyError::UnsupportedEncoding),
            }
        }
    }
    Ok(out)
}

/// Decodes a body per its `Content-Encoding` values (every header line: pass
/// `headers.get_all(CONTENT_ENCODING)`, or an `Option` for one value) into at most
/// `max_decoded` bytes. Codings are undone in reverse order of application, each step
/// within the same cap.
///
/// # Errors
///
/// [`BodyError::UnsupportedEncoding`] (see [`codings`]), [`BodyError::TooLarge`] when
/// a decoded body would exceed `max_decoded` (decoding stops there),
/// [`BodyError::Corrupt`] for corrupt or truncated data.
pub fn decode<'a>(
    encoding: impl IntoIterator<Item = &'a HeaderValue>,
    body: Bytes,
    max_decoded: usize,
) -> Result<Bytes, BodyError> {
    decode_watched(encoding, body, max_decoded, &mut |_| true)
}

/// [`decode`], showing the fully decoded bytes to `watch` each time they grow while the
/// last coding is undone (all of them so far), so that a caller who reads the body's
/// framing can stop a body it will refuse before the rest is inflated. `watch` returning
/// `false` stops decoding with [`BodyError::Refused`]. An identity body is not watched:
/// it is whole already.
///
/// # Errors
///
/// As [`decode`], and [`BodyError::Refused`].
pub fn decode_watched<'a>(
    encoding: impl IntoIterator<Item = &'a HeaderValue>,
    body: Bytes,
    max_decoded: usize,
    watch: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<Bytes, BodyError> {
    let codings = codings(encoding)?;
    let mut body = body;
    // Undone in reverse order of application: the first coding applied is undone last,
    // and yields the body, which is what `watch` sees.
    if let Some((&first_applied, later)) = codings.split_first() {
        for &coding in later.iter().rev() {
            body = decode_as(coding, body, max_decoded)?;
        }
        body = decode_as_watched(first_applied, body, max_decoded, watch)?;
    }
    // Identity only: the size check of `decode_as`.
    decode_as(ContentEncoding::Identity, body, max_decoded)
}

/// Decodes a body with a known coding into at most `max_decoded` bytes. Identity and
/// empty bodies are returned without copying.
///
/// This is CPU work proportional to the decoded size: for large bodies, call it from
/// `tokio::task::spawn_blocking` rather than on a runtime worker.
///
/// # Errors
///
/// As [`decode`], without `UnsupportedEncoding`.
pub fn decode_as(
    encoding: ContentEncoding,
    body: Bytes,
    max_decoded: usize,
) -> Result<Bytes, BodyError> {
    decode_as_watched(encoding, body, max_decoded, &mut |_| true)
}

/// [`decode_as`], showing the output to `watch` as it grows (see [`decode_watched`]).
///
/// # Errors
///
/// As [`decode_watched`].
pub fn decode_as_watched(
    encoding: ContentEncoding,
    body: Bytes,
    max_decoded: usize,
    watch: Watch<'_>,
) -> Result<Bytes, BodyError> {
    // Compressed JSON shrinks about 4 to 10 times; start there and let the buffer double.
    let hint = body.len().saturating_mul(4);
    // An empty body stays empty whatever its coding; the caller refuses empty bodies.
    if body.is_empty() {
        return Ok(body);
    }
    let decoded = match encoding {
        ContentEncoding::Identity => {
            return if body.len() > max_decoded {
                Err(BodyError::TooLarge)
            } else {
                Ok(body)
            };
        }
        ContentEncoding::Gzip => gunzip_watched(&body, max_decoded, watch),
        ContentEncoding::Deflate => {
            inflate_watched(&body, has_zlib_header(&body), max_decoded, watch)
        }
        ContentEncoding::Br => unbrotli(&body, max_decoded, hint, watch),
        ContentEncoding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(body.as_ref())
                .map_err(|_| BodyError::Corrupt)?;
            decoder
                .window_log_max(zstd_window_log_max(max_decoded))
                .map_err(|_| BodyError::Corrupt)?;
            read_capped_watched(decoder, max_decoded, hint, watch)
        }
    };
    Ok(Bytes::from(decoded?))
}

/// Inflates a zlib stream (a compressed replay recording) into at most `max_decoded`
/// bytes.
///
/// # Errors
///
/// [`BodyError::TooLarge`] past the cap, [`BodyError::Corrupt`] for corrupt or truncated
/// data.
pub fn inflate_zlib(data: &[u8], max_decoded: usize) -> Result<Vec<u8>, BodyError> {
    inflate(data, true, max_decoded).map_err(BodyError::from)
}

/// Compresses `data` as a zlib stream (a scrubbed replay recording goes back the way it
/// came).
pub fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// Decodes one brotli stream into at most `cap` bytes; bytes after the end of the stream
/// are refused (as for every other coding).
fn unbrotli(
    body: &[u8],
    cap: usize,
    hint: usize,
    watch: Watch<'_>,
) -> Result<Vec<u8>, CappedReadError> {
    /// Brotli's internal input buffer.
    const BROTLI_BUFFER: usize = 4096;
    let mut decoder = brotli::Decompressor::new(body, BROTLI_BUFFER);
    let out = read_capped_watched(&mut decoder, cap, hint, watch)?;
    // The first `Ok(0)` marks the end of the stream; one more read fails when input is
    // left in the decoder's buffer, and the rest of the slice must be empty too.
    let trailing = || {
        CappedReadError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "bytes after the end of the brotli stream",
        ))
    };
    match std::io::Read::read(&mut decoder, &mut [0u8; 1]) {
        Ok(0) => {}
        _ => return Err(trailing()),
    }
    if !decoder.get_ref().is_empty() {
        return Err(trailing());
    }
    Ok(out)
}

/// True when `data` starts with a valid zlib header (RFC 1950: method 8, window at most
/// 32 KiB, header checksum divisible by 31).
fn has_zlib_header(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// The largest zstd window we accept: enough for the body limit, at least 8 MiB (what
/// the zstd format asks every decoder to support, and what streaming encoders use at
/// common levels), at most 128 MiB (zstd's own default). A frame asking for more is
/// refused before its window is allocated, so a tiny body cannot make us reserve memory
/// far beyond the limit.
fn zstd_window_log_max(max_decoded: usize) -> u32 {
    let needed = usize::BITS - max_decoded.saturating_sub(1).leading_zeros();
    needed.clamp(23, 27)
}

#[cfg(test)]
mod tests {
    use super::inflate::read_capped;
    use super::*;
    use crate::server::error::IngestError;
    use http::StatusCode;
    use std::collections::VecDeque;
    use std::io::{self, Read, Write};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body_util::Full;
    use hyper::body::Frame;

    const EVENT: &[u8] = br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hello hello hello hello","user":{"email":"a@example.com"}}"#;
    const MIB: usize = 1024 * 1024;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 1, 22);
            enc.write_all(data).unwrap();
        }
        out
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(data, 1).unwrap()
    }

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn every_coding_round_trips() {
        let cases: [(&str, Vec<u8>); 10] = [
            ("gzip", gzip(EVENT)),
            ("x-gzip", gzip(EVENT)),
            ("GZip", gzip(EVENT)),
            ("deflate", zlib(EVENT)),
            ("Deflate", raw_deflate(EVENT)),
            ("br", brotli(EVENT)),
            ("zstd", zstd(EVENT)),
            ("identity", EVENT.to_vec()),
            (" UTF-8 ", EVENT.to_vec()),
            ("", EVENT.to_vec()),
        ];
        for (coding, body) in cases {
            let out = decode(Some(&header(coding)), Bytes::from(body), MIB).unwrap();
            assert_eq!(out.as_ref(), EVENT, "coding {coding:?}");
        }
        let out = decode(None, Bytes::from_static(EVENT), MIB).unwrap();
        assert_eq!(out.as_ref(), EVENT);
    }

    #[test]
    fn empty_body_stays_empty() {
        for coding in ["gzip", "deflate", "br", "zstd", "identity"] {
            let out = decode(Some(&header(coding)), Bytes::new(), MIB).unwrap();
            assert!(out.is_empty(), "{coding}");
        }
    }

    #[test]
    fn concatenated_gzip_members() {
        let mut body = gzip(b"{\"a\":");
        body.extend(gzip(b"1}"));
        let out = decode(Some(&header("gzip")), Bytes::from(body), MIB).unwrap();
        assert_eq!(out.as_ref(), b"{\"a\":1}");
    }

    #[test]
    fn unsupported_codings_are_415() {
        for coding in ["compress", "gzip, br, zstd", "gzip, xz", "xz", "utf8"] {
            let err = decode(Some(&header(coding)), Bytes::from_static(EVENT), MIB).unwrap_err();
            assert!(matches!(err, BodyError::UnsupportedEncoding), "{coding}");
            assert_eq!(
                IngestError::Body(err).status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            );
        }
        let latin1 = HeaderValue::from_bytes(b"gz\xe9p").unwrap();
        assert!(matches!(
            ContentEncoding::from_header(Some(&latin1)),
            Err(BodyError::UnsupportedEncoding)
        ));
    }

    #[test]
    fn corrupt_and_truncated_bodies_are_400() {
        let mut flipped = gzip(EVENT);
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        let gz = gzip(EVENT);
        let zl = zlib(EVENT);
        let raw = raw_deflate(EVENT);
        let br = brotli(EVENT);
        let zs = zstd(EVENT);
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            ("gzip garbage", "gzip", b"definitely not gzip".to_vec()),
            ("gzip flipped byte", "gzip", flipped),
            ("gzip truncated", "gzip", gz[..gz.len() - 10].to_vec()),
            ("zlib truncated", "deflate", zl[..zl.len() / 2].to_vec()),
            (
                "raw deflate truncated",
                "deflate",
                raw[..raw.len() / 2].to_vec(),
            ),
            ("brotli truncated", "br", br[..br.len() / 2].to_vec()),
            ("zstd garbage", "zstd", b"not zstd either".to_vec()),
            ("zstd truncated", "zstd", zs[..zs.len() / 2].to_vec()),
        ];
        for (name, coding, body) in cases {
            let err = decode(Some(&header(coding)), Bytes::from(body), MIB).unwrap_err();
            assert!(matches!(err, BodyError::Corrupt), "{name}: {err:?}");
            assert_eq!(
                IngestError::Body(err).status(),
                StatusCode::BAD_REQUEST,
                "{name}"
            );
        }
    }

    /// Counts how many compressed bytes a decoder pulled.
    struct Counting<'a> {
        inner: &'a [u8],
        read: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n;
            Ok(n)
        }
    }

    #[test]
    fn gzip_bomb_stops_at_the_cap() {
        // 50 MiB of zeros compress to about 50 KiB.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; MIB];
        for _ in 0..50 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < MIB);

        let started = std::time::Instant::now();
        let err = decode(Some(&header("gzip")), Bytes::from(bomb.clone()), MIB).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge), "{err:?}");
        assert_eq!(
            IngestError::Body(err).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        // The decoder stopped after a prefix of the input: the cap is 1/50 of the output,
        // and the decoder reads its input in 32 KiB blocks.
        let mut counting = Counting {
            inner: &bomb,
            read: 0,
        };
        let result = read_capped(flate2::read::GzDecoder::new(&mut counting), MIB, bomb.len());
        assert!(matches!(result, Err(CappedReadError::TooLarge)));
        assert!(
            counting.read < bomb.len() / 4,
            "read {} of {}",
            counting.read,
            bomb.len()
        );
    }

    /// `data` in every coding (deflate twice: zlib-wrapped and raw), with its header name.
    fn every_coding(data: &[u8]) -> [(&'static str, Vec<u8>); 5] {
        [
            ("gzip", gzip(data)),
            ("deflate", zlib(data)),
            ("deflate", raw_deflate(data)),
            ("br", brotli(data)),
            ("zstd", zstd(data)),
        ]
    }

    #[test]
    fn every_coding_stops_at_the_cap() {
        let big = vec![b'a'; 4 * MIB];
        let cases = every_coding(&big);
        for (coding, body) in cases {
            let err = decode(Some(&header(coding)), Bytes::from(body.clone()), MIB).unwrap_err();
            assert!(matches!(err, BodyError::TooLarge), "{coding}: {err:?}");
            // Exactly at the limit is fine.
            let ok = decode(Some(&header(coding)), Bytes::from(body), 4 * MIB).unwrap();
            assert_eq!(ok.len(), 4 * MIB, "{coding}");
        }
        let err = decode(None, Bytes::from(big), MIB).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge));
    }

    #[test]
    fn a_watch_sees_the_body_grow_and_can_stop_it_early_for_every_coding() {
        let big = vec![b'a'; 8 * MIB];
        let cases = every_coding(&big);
        for (coding, body) in cases {
            // Watched to the end: every call sees a longer prefix of the same bytes.
            let mut seen = Vec::new();
            let whole = decode_watched(
                Some(&header(coding)),
                Bytes::from(body.clone()),
                16 * MIB,
                &mut |so_far| {
                    seen.push(so_far.len());
                    true
                },
            )
            .unwrap();
            assert_eq!(whole.len(), 8 * MIB, "{coding}");
            assert!(seen.len() > 1, "{coding}: watched {} times", seen.len());
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{coding}");
            assert_eq!(seen.last(), Some(&(8 * MIB)), "{coding}");

            // Stopped past 100 KB: decoding ends there, not at the cap.
            let mut largest = 0;
            let err = decode_watched(
                Some(&header(coding)),
                Bytes::from(body),
                16 * MIB,
                &mut |so_far| {
                    largest = so_far.len();
                    so_far.len() <= 100_000
                },
            )
            .unwrap_err();
            assert!(matches!(err, BodyError::Refused), "{coding}: {err:?}");
            assert!(largest < 2 * MIB, "{coding}: decoded {largest} bytes first");
        }
        // Of two codings only the last one undone (the body itself) is watched.
        let twice = zstd(&gzip(&big));
        let mut largest = 0;
        decode_watched(
            [header("gzip"), header("zstd")].iter(),
            Bytes::from(twice),
            16 * MIB,
            &mut |so_far| {
                largest = largest.max(so_far.len());
                true
            },
        )
        .unwrap();
        assert_eq!(largest, 8 * MIB);
    }

    #[test]
    fn trailing_bytes_after_the_stream_are_400_for_every_coding() {
        let cases: [(&str, &str, Vec<u8>); 5] = [
            ("gzip", "gzip", gzip(EVENT)),
            ("zlib", "deflate", zlib(EVENT)),
            ("raw deflate", "deflate", raw_deflate(EVENT)),
            ("brotli", "br", brotli(EVENT)),
            ("zstd", "zstd", zstd(EVENT)),
        ];
        for (name, coding, valid) in cases {
            let ok = decode(Some(&header(coding)), Bytes::from(valid.clone()), MIB).unwrap();
            assert_eq!(ok.as_ref(), EVENT, "{name}");
            for suffix in [&b"garbage"[..], b"\n", b"\0"] {
                let mut body = valid.clone();
                body.extend_from_slice(suffix);
                let err = decode(Some(&header(coding)), Bytes::from(body), MIB).unwrap_err();
                assert!(
                    matches!(err, BodyError::Corrupt),
                    "{name} + {suffix:?}: {err:?}"
                );
                assert_eq!(IngestError::Body(err).status(), StatusCode::BAD_REQUEST);
            }
        }
        // Brotli with garbage past the decoder's 4 KiB input buffer.
        let mut long: Vec<u8> = brotli(EVENT);
        long.extend(std::iter::repeat_n(b'x', 10_000));
        let err = decode(Some(&header("br")), Bytes::from(long), MIB).unwrap_err();
        assert!(matches!(err, BodyError::Corrupt), "{err:?}");
    }

    #[test]
    fn several_codings_are_undone_in_reverse_order() {
        let gz_then_br = brotli(&gzip(EVENT));
        for value in [
            "gzip, br",
            "gzip,br",
            " gzip , identity, br ",
            "identity,gzip,br",
        ] {
            let out = decode(Some(&header(value)), Bytes::from(gz_then_br.clone()), MIB);
            assert_eq!(out.unwrap().as_ref(), EVENT, "{value:?}");
        }
        // Two header lines, in order.
        let mut headers = http::HeaderMap::new();
        headers.append(http::header::CONTENT_ENCODING, header("gzip"));
        headers.append(http::header::CONTENT_ENCODING, header("br"));
        let out = decode(
            headers.get_all(http::header::CONTENT_ENCODING),
            Bytes::from(gz_then_br.clone()),
            MIB,
        );
        assert_eq!(out.unwrap().as_ref(), EVENT);
        // The wrong order is corrupt, not half-decoded.
        let err = decode(Some(&header("br, gzip")), Bytes::from(gz_then_br), MIB).unwrap_err();
        assert!(matches!(err, BodyError::Corrupt), "{err:?}");
        // More than MAX_CODINGS, or any unknown entry: 415 before any decoding.
        let mut three = http::HeaderMap::new();
        for value in ["gzip", "br", "zstd"] {
            three.append(http::header::CONTENT_ENCODING, header(value));
        }
        let err = decode(
            three.get_all(http::header::CONTENT_ENCODING),
            Bytes::from_static(EVENT),
            MIB,
        )
        .unwrap_err();
        assert!(matches!(err, BodyError::UnsupportedEncoding), "{err:?}");
        // The cap holds for the inner decoded body too.
        let big = brotli(&gzip(&vec![b'a'; 4 * MIB]));
        let err = decode(Some(&header("gzip, br")), Bytes::from(big), MIB).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge), "{err:?}");
    }

    #[test]
    fn small_brotli_bomb_is_413() {
        // 100 MB of zeros, as brotli: a few hundred bytes; cut at 1 MiB decoded.
        let mut out = Vec::new();
        {
            let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 1, 22);
            let zeros = vec![0u8; MIB];
            for _ in 0..100 {
                enc.write_all(&zeros).unwrap();
            }
        }
        assert!(out.len() < 64 * 1024, "bomb is {} bytes", out.len());
        let err = decode(Some(&header("br")), Bytes::from(out), MIB).unwrap_err();
        assert!(matches!(err, BodyError::TooLarge), "{err:?}");
        assert_eq!(
            IngestError::Body(err).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn zstd_window_limit() {
        assert_eq!(zstd_window_log_max(0), 23);
        assert_eq!(zstd_window_log_max(MIB), 23);
        assert_eq!(zstd_window_log_max(16 * MIB), 24);
        assert_eq!(zstd_window_log_max(16 * MIB + 1), 25);
        assert_eq!(zstd_window_log_max(200 * MIB), 27);
    }

    #[test]
    fn zstd_frame_asking_for_a_huge_window_is_refused() {
        // A streaming encoder that does not know the size declares its full window
        // (2^27 = 128 MiB) in the frame header; with a 1 MiB limit we accept 8 MiB at most.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
        enc.window_log(27).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(EVENT).unwrap();
        let body = enc.finish().unwrap();
        let err = decode(Some(&header("zstd")), Bytes::from(body.clone()), MIB).unwrap_err();
        assert!(matches!(err, BodyError::Corrupt), "{err:?}");
        // With a 200 MiB limit the same frame is fine.
        let ok = decode(Some(&header("zstd")), Bytes::from(body), 200 * MIB).unwrap();
        assert_eq!(ok.as_ref(), EVENT);
    }

    /// A body that yields the given chunks, then ends or stays pending forever.
    struct Chunks {
        chunks: VecDeque<Result<Bytes, io::Error>>,
        then_pending: bool,
    }

    impl Chunks {
        fn new(chunks: &[&'static [u8]]) -> Self {
            Self {
                chunks: chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect(),
                then_pending: false,
            }
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            let this = self.get_mut();
            match this.chunks.pop_front() {
                Some(Ok(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
                Some(Err(error)) => Poll::Ready(Some(Err(error))),
                None if this.then_pending => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A reservation against a budget no test body reaches.
    fn unlimited() -> Reservation {
        budget::Budget::new(usize::MAX / 2).reservation()
    }

    #[tokio::test]
    async fn the_budget_bounds_what_is_read_and_is_given_back() {
        let budget = budget::Budget::new(10);
        let mut reservation = budget.reservation();
        // No size hint; the second chunk would hold 12 bytes.
        let mut body = Chunks::new(&[b"aaaaaa", b"bbbbbb"]);
        body.then_pending = true;
        let err = collect_limited(body, 1024, TIMEOUT, &mut reservation)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::OverBudget));
        assert_eq!(
            IngestError::Body(err).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(reservation);
        assert_eq!(budget.used(), 0);

        // Within the budget: held until the reservation is dropped.
        let mut reservation = budget.reservation();
        let out = collect_limited(
            Chunks::new(&[b"abc", b"de"]),
            1024,
            TIMEOUT,
            &mut reservation,
        )
        .await
        .unwrap();
        assert_eq!(out.as_ref(), b"abcde");
        assert!(budget.used() >= 5 && budget.used() <= 10);
    }

    #[tokio::test]
    async fn collects_frames_up_to_the_limit() {
        let body = Chunks::new(&[b"{\"a\":", b"", b"1}"]);
        let out = collect_limited(body, 7, TIMEOUT, &mut unlimited())
            .await
            .unwrap();
        assert_eq!(out.as_ref(), b"{\"a\":1}");

        let single = Bytes::from_static(b"{\"a\":1}");
        let out = collect_limited(Full::new(single.clone()), 7, TIMEOUT, &mut unlimited())
            .await
            .unwrap();
        assert_eq!(out.as_ptr(), single.as_ptr(), "one frame is not copied");

        let out = collect_limited(Chunks::new(&[]), 7, TIMEOUT, &mut unlimited())
            .await
            .unwrap();
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn too_large_by_content_length_before_reading() {
        let body = Full::new(Bytes::from(vec![b'x'; 2048]));
        let err = collect_limited(body, 1024, TIMEOUT, &mut unlimited())
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge));
        assert_eq!(
            IngestError::Body(err).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn too_large_while_streaming_stops_early() {
        // No size hint; the third chunk crosses the limit and the stream would then hang.
        let mut body = Chunks::new(&[b"aaaa", b"bbbb", b"cccc"]);
        body.then_pending = true;
        let err = collect_limited(body, 10, TIMEOUT, &mut unlimited())
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge));
    }

    #[tokio::test]
    async fn slow_body_times_out() {
        let mut body = Chunks::new(&[b"{"]);
        body.then_pending = true;
        let err = collect_limited(body, 1024, Duration::from_millis(50), &mut unlimited())
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Timeout));
        assert_eq!(IngestError::Body(err).status(), StatusCode::REQUEST_TIMEOUT);
    }

    #[tokio::test]
    async fn read_errors_are_reported() {
        let body = Chunks {
            chunks: VecDeque::from([
                Ok(Bytes::from_static(b"{")),
                Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
            ]),
            then_pending: false,
        };
        let err = collect_limited(body, 1024, TIMEOUT, &mut unlimited())
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::Read(_)));
        assert_eq!(IngestError::Body(err).status(), StatusCode::BAD_REQUEST);
    }
}
