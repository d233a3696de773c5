//! Containers a crash reporter may wrap a minidump in (gzip, xz, bzip2, zstd), found by
//! their magic bytes and unwrapped within a cap.

use bytes::Bytes;

use super::inflate::read_capped_watched;
use super::{decode_as, BodyError, ContentEncoding};

/// A minidump as crash reporters may upload it: inside a gzip, xz, bzip2 or zstd
/// container, recognized by its magic bytes (whatever `Content-Encoding` says), and
/// unwrapped into at most `max_decoded` bytes. Anything else is returned as it is.
///
/// # Errors
///
/// [`BodyError::TooLarge`] past the cap, [`BodyError::Corrupt`] for a corrupt or
/// truncated container.
pub fn unwrap_container(body: Bytes, max_decoded: usize) -> Result<Bytes, BodyError> {
    const GZIP: &[u8] = &[0x1f, 0x8b];
    const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
    const BZIP2: &[u8] = b"BZh";
    const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
    let hint = body.len().saturating_mul(4);
    if body.starts_with(GZIP) {
        decode_as(ContentEncoding::Gzip, body, max_decoded)
    } else if body.starts_with(ZSTD) {
        decode_as(ContentEncoding::Zstd, body, max_decoded)
    } else if body.starts_with(BZIP2) {
        let decoder = bzip2::read::MultiBzDecoder::new(body.as_ref());
        Ok(Bytes::from(read_capped_watched(
            decoder,
            max_decoded,
            hint,
            &mut |_| true,
        )?))
    } else if body.starts_with(XZ) {
        let mut output = CappedWriter {
            out: Vec::with_capacity(hint.min(max_decoded)),
            cap: max_decoded,
            over: false,
        };
        let result = lzma_rs::xz_decompress(&mut body.as_ref(), &mut output);
        match (result, output.over) {
            (_, true) => Err(BodyError::TooLarge),
            (Ok(()), false) => Ok(Bytes::from(output.out)),
            (Err(_), false) => Err(BodyError::Corrupt),
        }
    } else {
        Ok(body)
    }
}

/// A `Write` into a buffer that fails once more than `cap` bytes are written.
struct CappedWriter {
    out: Vec<u8>,
    cap: usize,
    over: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len().saturating_add(buf.len()) > self.cap {
            self.over = true;
            return Err(std::io::Error::other("decoded size cap"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
