//! The bounded decompression loops: [`read_capped`] (any decoder that implements
//! `Read`), [`inflate`] (zlib and raw deflate, detecting truncation) and [`gunzip`]
//! (gzip members, checksums verified). A bomb stops at the cap and the output buffer never
//! grows past it.

use std::io::{self, Read};

/// Why [`read_capped`] stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum CappedReadError {
    /// The reader produced more than the cap.
    #[error("output exceeds the cap")]
    TooLarge,
    /// The reader failed (corrupt or truncated input).
    #[error("read failed")]
    Io(#[source] io::Error),
    /// The watch refused the output so far.
    #[error("the decoded bytes were refused")]
    Stopped,
}

/// Looks at the output each time it grows (all of it so far); `false` stops decoding
/// with [`CappedReadError::Stopped`].
pub(super) type Watch<'w> = &'w mut dyn FnMut(&[u8]) -> bool;

/// A watch that never stops.
fn no_watch(_: &[u8]) -> bool {
    true
}

/// Reads `reader` to the end into a buffer that never grows past `cap` bytes.
///
/// `size_hint` sizes the first allocation (clamped to `cap` and to 64 KiB); the buffer then
/// doubles, but never beyond `cap`. One more byte than `cap` is never stored: the read
/// that would overflow fails with [`CappedReadError::TooLarge`].
#[cfg(test)]
pub(super) fn read_capped<R: Read>(
    reader: R,
    cap: usize,
    size_hint: usize,
) -> Result<Vec<u8>, CappedReadError> {
    read_capped_watched(reader, cap, size_hint, &mut no_watch)
}

/// [`read_capped`], showing the output to `watch` after each read.
pub(super) fn read_capped_watched<R: Read>(
    mut reader: R,
    cap: usize,
    size_hint: usize,
    watch: Watch<'_>,
) -> Result<Vec<u8>, CappedReadError> {
    const MAX_FIRST_ALLOCATION: usize = 64 * 1024;
    const CHUNK: usize = 16 * 1024;

    let mut out: Vec<u8> = Vec::with_capacity(size_hint.min(cap).min(MAX_FIRST_ALLOCATION));
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CappedReadError::Io(error)),
        };
        let needed = out.len() + n;
        if needed > cap {
            return Err(CappedReadError::TooLarge);
        }
        if needed > out.capacity() {
            let target = out.capacity().saturating_mul(2).max(needed).min(cap);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
        if !watch(&out) {
            return Err(CappedReadError::Stopped);
        }
    }
}

thread_local! {
    /// One inflate state per thread, reset per body: a fresh state is tens of KiB of
    /// zeroed tables, which showed in the load profile (memset) for every request.
    static INFLATE: std::cell::RefCell<flate2::Decompress> =
        std::cell::RefCell::new(flate2::Decompress::new(false));
}

/// Inflates zlib (`zlib_header`) or raw deflate data into at most `cap` bytes.
///
/// Unlike `flate2`'s readers, which end quietly when a stream is cut short, this fails on
/// truncated input. Bytes after the end of the stream are refused, as `gunzip` and the
/// zstd decoder refuse them (whitespace included: no coding tolerates any trailing byte).
/// The output buffer grows by doubling up to `cap + 1` bytes, the one extra byte
/// signalling overflow.
pub(super) fn inflate(
    input: &[u8],
    zlib_header: bool,
    cap: usize,
) -> Result<Vec<u8>, CappedReadError> {
    inflate_watched(input, zlib_header, cap, &mut no_watch)
}

/// [`inflate`], showing the output to `watch` as it grows.
pub(super) fn inflate_watched(
    input: &[u8],
    zlib_header: bool,
    cap: usize,
    watch: Watch<'_>,
) -> Result<Vec<u8>, CappedReadError> {
    let mut out = Vec::with_capacity(first_allocation(input.len(), cap));
    let used = inflate_into(input, zlib_header, cap, &mut out, watch)?;
    if used != input.len() {
        return Err(CappedReadError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "bytes after the end of the deflate stream",
        )));
    }
    Ok(out)
}

/// The first output allocation for `input_len` compressed bytes: JSON shrinks about 4
/// times or more.
fn first_allocation(input_len: usize, cap: usize) -> usize {
    const MIN_ALLOCATION: usize = 4 * 1024;
    const MAX_FIRST_ALLOCATION: usize = 64 * 1024;
    input_len
        .saturating_mul(4)
        .clamp(MIN_ALLOCATION, MAX_FIRST_ALLOCATION)
        .min(cap.saturating_add(1))
}

/// Inflates one stream from the start of `input`, appending to `out` (which must not
/// grow past `cap` bytes in all), and returns how many input bytes the stream took.
fn inflate_into(
    input: &[u8],
    zlib_header: bool,
    cap: usize,
    out: &mut Vec<u8>,
    watch: Watch<'_>,
) -> Result<usize, CappedReadError> {
    const MIN_GROWTH: usize = 4 * 1024;
    let limit = cap.saturating_add(1);
    let bad = |error: flate2::DecompressError| {
        CappedReadError::Io(io::Error::new(io::ErrorKind::InvalidData, error))
    };
    INFLATE.with(|cell| {
        let mut decompress = cell.borrow_mut();
        decompress.reset(zlib_header);
        loop {
            if out.len() == out.capacity() {
                let target = out
                    .capacity()
                    .saturating_mul(2)
                    .max(out.len() + MIN_GROWTH)
                    .min(limit);
                if target <= out.len() {
                    return Err(CappedReadError::TooLarge);
                }
                out.reserve_exact(target - out.len());
            }
            let consumed = usize::try_from(decompress.total_in()).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or_default();
            let before = (decompress.total_in(), out.len());
            let status = decompress
                .decompress_vec(rest, out, flate2::FlushDecompress::None)
                .map_err(bad)?;
            if out.len() > cap {
                return Err(CappedReadError::TooLarge);
            }
            if out.len() > before.1 && !watch(out) {
                return Err(CappedReadError::Stopped);
            }
            match status {
                flate2::Status::StreamEnd => {
                    return Ok(usize::try_from(decompress.total_in()).unwrap_or(usize::MAX));
                }
                flate2::Status::Ok | flate2::Status::BufError => {
                    let stalled = (decompress.total_in(), out.len()) == before;
                    if stalled && out.len() < out.capacity() {
                        // Room to write and nothing happened: the input ended mid-stream.
                        return Err(CappedReadError::Io(io::ErrorKind::UnexpectedEof.into()));
                    }
                }
            }
        }
    })
}

/// Decodes gzip (RFC 1952) into at most `cap` bytes: one member or several in a row, as
/// `gzip` itself reads them. Each member's CRC-32 and length are checked; a truncated or
/// corrupt member, or bytes after the last member that are not another member, fail.
#[cfg(test)]
pub(super) fn gunzip(input: &[u8], cap: usize) -> Result<Vec<u8>, CappedReadError> {
    gunzip_watched(input, cap, &mut no_watch)
}

/// [`gunzip`], showing the output to `watch` as it grows.
pub(super) fn gunzip_watched(
    input: &[u8],
    cap: usize,
    watch: Watch<'_>,
) -> Result<Vec<u8>, CappedReadError> {
    let corrupt =
        |what: &'static str| CappedReadError::Io(io::Error::new(io::ErrorKind::InvalidData, what));
    let mut out = Vec::with_capacity(first_allocation(input.len(), cap));
    let mut rest = input;
    loop {
        let body = gzip_header_len(rest).ok_or_else(|| corrupt("invalid gzip header"))?;
        let start = out.len();
        let used = inflate_into(&rest[body..], false, cap, &mut out, &mut *watch)?;
        let trailer = rest
            .get(body + used..body + used + 8)
            .ok_or_else(|| corrupt("truncated gzip trailer"))?;
        let mut crc = flate2::Crc::new();
        crc.update(&out[start..]);
        let (want_crc, want_len) = trailer.split_at(4);
        // ISIZE is the member's length modulo 2^32.
        if crc.sum().to_le_bytes() != want_crc
            || ((out.len() - start) as u32).to_le_bytes() != want_len
        {
            return Err(corrupt("gzip checksum mismatch"));
        }
        rest = &rest[body + used + 8..];
        if rest.is_empty() {
            return Ok(out);
        }
    }
}

/// The length of the gzip member header at the start of `data`, if it is a valid one.
fn gzip_header_len(data: &[u8]) -> Option<usize> {
    const FHCRC: u8 = 0x02;
    const FEXTRA: u8 = 0x04;
    const FNAME: u8 = 0x08;
    const FCOMMENT: u8 = 0x10;
    const RESERVED: u8 = 0xe0;
    let [0x1f, 0x8b, 8, flags, ..] = *data else {
        return None;
    };
    if flags & RESERVED != 0 || data.len() < 10 {
        return None;
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let len = data.get(pos..pos + 2)?;
        pos += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            pos += data.get(pos..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        // The low 16 bits of the CRC-32 of the header before it.
        let stored = data.get(pos..pos + 2)?;
        let mut crc = flate2::Crc::new();
        crc.update(&data[..pos]);
        if (crc.sum() as u16).to_le_bytes() != stored {
            return None;
        }
        pos += 2;
    }
    (pos <= data.len()).then_some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const EVENT: &[u8] = br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","message":"hi"}"#;

    fn gzip_with(data: &[u8], builder: flate2::GzBuilder) -> Vec<u8> {
        let mut enc = builder.write(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_reads_every_header_form_and_several_members() {
        let plain = gzip_with(EVENT, flate2::GzBuilder::new());
        assert_eq!(gunzip(&plain, 1 << 20).unwrap(), EVENT);
        let dressed = gzip_with(
            EVENT,
            flate2::GzBuilder::new()
                .filename("event.json")
                .comment("from a test")
                .extra(vec![1, 2, 3, 4]),
        );
        assert_eq!(gunzip(&dressed, 1 << 20).unwrap(), EVENT);
        // A header CRC (FHCRC), written by hand: flag 0x02 and the CRC-16 after the header.
        let mut hcrc = plain.clone();
        hcrc[3] |= 0x02;
        let mut crc = flate2::Crc::new();
        crc.update(&hcrc[..10]);
        hcrc.splice(10..10, (crc.sum() as u16).to_le_bytes());
        assert_eq!(gunzip(&hcrc, 1 << 20).unwrap(), EVENT);
        let mut bad_hcrc = hcrc.clone();
        bad_hcrc[10] ^= 0xff;
        assert!(
            gunzip(&bad_hcrc, 1 << 20).is_err(),
            "a wrong header CRC is refused"
        );
        // Members in a row decode to the concatenation, as `gzip -d` does.
        let mut two = plain.clone();
        two.extend_from_slice(&gzip_with(b"", flate2::GzBuilder::new()));
        two.extend_from_slice(&dressed);
        assert_eq!(gunzip(&two, 1 << 20).unwrap(), [EVENT, EVENT].concat());
        // The reused inflate state serves the next body cleanly after a failure.
        assert!(gunzip(&plain[..plain.len() / 2], 1 << 20).is_err());
        assert_eq!(gunzip(&plain, 1 << 20).unwrap(), EVENT);
    }

    #[test]
    fn gunzip_refuses_damaged_input_and_stops_at_the_cap() {
        let good = gzip_with(EVENT, flate2::GzBuilder::new());
        let truncated_trailer = &good[..good.len() - 3];
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 0xff;
        let mut bad_len = good.clone();
        bad_len[n - 1] ^= 0x01;
        let mut garbage_after = good.clone();
        garbage_after.extend_from_slice(b"trailing");
        let mut reserved_flag = good.clone();
        reserved_flag[3] |= 0x80;
        for (name, input) in [
            ("truncated trailer", truncated_trailer),
            ("truncated body", &good[..20]),
            ("crc", &bad_crc[..]),
            ("length", &bad_len[..]),
            ("garbage after the member", &garbage_after[..]),
            ("reserved flag", &reserved_flag[..]),
            ("not gzip", &b"{\"a\":1}"[..]),
            ("header only", &good[..10]),
        ] {
            assert!(
                matches!(gunzip(input, 1 << 20), Err(CappedReadError::Io(_))),
                "{name}"
            );
        }
        // A bomb stops at the cap.
        let bomb = gzip_with(&vec![b'a'; 4 << 20], flate2::GzBuilder::new());
        assert!(matches!(
            gunzip(&bomb, 1 << 20),
            Err(CappedReadError::TooLarge)
        ));
        assert_eq!(gunzip(&bomb, 4 << 20).unwrap().len(), 4 << 20);
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn inflate_detects_truncation_and_respects_cap() {
        let data = zlib(&vec![b'x'; 50_000]);
        assert_eq!(inflate(&data, true, 50_000).unwrap().len(), 50_000);
        let cut = &data[..data.len() - 6];
        assert!(matches!(
            inflate(cut, true, 50_000),
            Err(CappedReadError::Io(_))
        ));
        let out = inflate(&data, true, 50_000).unwrap();
        assert!(out.capacity() <= 50_001, "capacity {}", out.capacity());
        assert!(matches!(
            inflate(&data, true, 49_999),
            Err(CappedReadError::TooLarge)
        ));
    }

    #[test]
    fn read_capped_never_allocates_past_cap() {
        let data = vec![7u8; 100_000];
        let out = read_capped(data.as_slice(), 100_000, 10).unwrap();
        assert_eq!(out.len(), 100_000);
        assert!(out.capacity() <= 100_000, "capacity {}", out.capacity());
        assert!(matches!(
            read_capped(data.as_slice(), 99_999, 0),
            Err(CappedReadError::TooLarge)
        ));
    }
}
