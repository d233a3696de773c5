//! JSON string escapes: finding the bytes that need one, decoding a raw string body and
//! writing text as a quoted, escaped string.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The position of the first `"`, `\\` or byte below 0x20 (forbidden raw in a JSON
/// string), eight bytes at a time. For a word `w`, `(w - 0x01..) & !w & 0x80..` marks its
/// zero bytes and `(w - 0x20..) & !w & 0x80..` its bytes below 0x20; either may also mark
/// bytes after the first true hit (borrows), never before it, so the lowest marked byte
/// is the answer.
pub(super) fn next_special_byte(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const QUOTES: u64 = ONES * b'"' as u64;
    const BACKSLASHES: u64 = ONES * b'\\' as u64;
    const SPACES: u64 = ONES * 0x20;
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let w = u64::from_le_bytes(w);
        let marks = zero_bytes(w ^ QUOTES)
            | zero_bytes(w ^ BACKSLASHES)
            | (w.wrapping_sub(SPACES) & !w & HIGH);
        if marks != 0 {
            return Some(offset + (marks.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| offset + i)
}

/// The text of a raw JSON string body: borrowed when it has no escapes.
pub(super) fn decode(raw: &str, escaped: bool) -> Cow<'_, str> {
    if escaped {
        Cow::Owned(unescape(raw))
    } else {
        Cow::Borrowed(raw)
    }
}

/// Decodes the escapes of a raw JSON string body. Lone surrogates become U+FFFD.
pub fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i + 1..];
        let mut consumed = 1;
        match esc.as_bytes().first() {
            Some(b'n') => out.push('\n'),
            Some(b't') => out.push('\t'),
            Some(b'r') => out.push('\r'),
            Some(b'b') => out.push('\u{8}'),
            Some(b'f') => out.push('\u{c}'),
            Some(b'u') => {
                let hi = u32::from_str_radix(esc.get(1..5).unwrap_or("0"), 16).unwrap_or(0xFFFD);
                consumed = 5;
                let ch = if (0xD800..0xDC00).contains(&hi) {
                    let lo = esc
                        .get(5..7)
                        .filter(|p| *p == "\\u")
                        .and_then(|_| esc.get(7..11))
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .filter(|lo| (0xDC00..0xE000).contains(lo));
                    match lo {
                        Some(lo) => {
                            consumed = 11;
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                        }
                        None => None,
                    }
                } else {
                    char::from_u32(hi)
                };
                out.push(ch.unwrap_or('\u{FFFD}'));
            }
            Some(&c) => out.push(c as char),
            None => {}
        }
        rest = esc.get(consumed..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Writes `s` as a quoted JSON string.
pub fn write_escaped(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    // Jump from one byte that needs escaping to the next, eight bytes at a time.
    while let Some(skip) = next_special_byte(&bytes[start..]) {
        let i = start + skip;
        let b = bytes[i];
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            let mut buf = String::new();
            let _ = write!(buf, "\\u{:04x}", b);
            out.extend_from_slice(buf.as_bytes());
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
