//! `multipart/form-data` bodies (RFC 7578), as crash reporters upload them: Crashpad,
//! Breakpad and Electron's `crashReporter` to `/minidump/`, SDKs to
//! `/events/{id}/attachments/`. The body is already read within its limit; parts are
//! cut out of it without copying, and there are at most `max_parts` of them.

use bytes::Bytes;

/// Why a multipart body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// `Content-Type` is not `multipart/form-data` with a boundary.
    #[error("not multipart/form-data with a boundary")]
    NoBoundary,
    /// The body does not follow the multipart framing.
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
    /// More parts than allowed.
    #[error("more than {0} multipart parts")]
    TooManyParts(usize),
}

/// One part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The form field name (`Content-Disposition: form-data; name=...`).
    pub name: String,
    /// The file name, for a file part.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: Bytes,
}

/// The boundary of a `multipart/form-data` content type, or `None` for another type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media = params.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        (!value.is_empty() && value.len() <= 200).then(|| value.to_owned())
    })
}

/// Splits `body` into its parts.
///
/// # Errors
/// [`MultipartError`] when the framing is broken or there are more than `max_parts`.
pub fn parse(body: &Bytes, boundary: &str, max_parts: usize) -> Result<Vec<Part>, MultipartError> {
    let delimiter = format!("--{boundary}");
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let first = finder
        .find(body)
        .ok_or(MultipartError::Malformed("no boundary in the body"))?;
    let mut at = first + delimiter.len();
    let mut parts = Vec::new();
    loop {
        // After a delimiter: `--` ends the body, else optional whitespace and CRLF.
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        at = skip_line_end(body, at).ok_or(MultipartError::Malformed("bad delimiter line"))?;
        let header_end = memchr::memmem::find(&body[at..], b"\r\n\r\n")
            .map(|i| (at + i, 4))
            .or_else(|| memchr::memmem::find(&body[at..], b"\n\n").map(|i| (at + i, 2)))
            .ok_or(MultipartError::Malformed("part headers do not end"))?;
        let headers = std::str::from_utf8(&body[at..header_end.0])
            .map_err(|_| MultipartError::Malformed("part headers are not UTF-8"))?;
        let data_start = header_end.0 + header_end.1;
        let next = finder
            .find(&body[data_start..])
            .map(|i| data_start + i)
            .ok_or(MultipartError::Malformed(
                "the last part has no closing boundary",
            ))?;
        // The CRLF before a delimiter belongs to the delimiter.
        let mut data_end = next;
        if body[..data_end].ends_with(b"\r\n") {
            data_end -= 2;
        } else if body[..data_end].ends_with(b"\n") {
            data_end -= 1;
        }
        if parts.len() == max_parts {
            return Err(MultipartError::TooManyParts(max_parts));
        }
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: body.slice(data_start..data_end.max(data_start)),
        };
        for line in headers.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').skip(1) {
                    let Some((key, value)) = param.split_once('=') else {
                        continue;
                    };
                    let value = unquote(value.trim());
                    match key.trim().to_ascii_lowercase().as_str() {
                        "name" => part.name = value,
                        "filename" => part.filename = Some(value),
                        _ => {}
                    }
                }
            } else if name.eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_owned());
            }
        }
        parts.push(part);
        at = next + delimiter.len();
    }
}

/// The offset after optional spaces and a line break at `at`.
fn skip_line_end(body: &[u8], mut at: usize) -> Option<usize> {
    while body.get(at).is_some_and(|b| *b == b' ' || *b == b'\t') {
        at += 1;
    }
    if body[at..].starts_with(b"\r\n") {
        Some(at + 2)
    } else if body[at..].starts_with(b"\n") {
        Some(at + 1)
    } else {
        None
    }
}

/// A parameter value without its quotes (and `\"` escapes).
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Bytes {
        let mut out = Vec::new();
        for (name, filename, data) in parts {
            out.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\"");
            if let Some(filename) = filename {
                out.extend_from_slice(format!("; filename=\"{filename}\"").as_bytes());
                out.extend_from_slice(b"\r\nContent-Type: application/octet-stream");
            }
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        Bytes::from(out)
    }

    #[test]
    fn parts_with_fields_and_files() {
        let body = body(&[
            ("sentry", None, b"{\"release\":\"1.0\"}"),
            (
                "upload_file_minidump",
                Some("crash.dmp"),
                b"MDMP\r\n--Xy\x00\x01",
            ),
        ]);
        let parts = parse(&body, "XyZ", 10).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "sentry");
        assert_eq!(&parts[0].data[..], b"{\"release\":\"1.0\"}");
        assert_eq!(parts[1].filename.as_deref(), Some("crash.dmp"));
        assert_eq!(
            parts[1].content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(&parts[1].data[..], b"MDMP\r\n--Xy\x00\x01");
    }

    #[test]
    fn boundary_of_content_type() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"abc def\"").as_deref(),
            Some("abc def")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;boundary=x").as_deref(),
            Some("x")
        );
        assert_eq!(boundary("application/octet-stream"), None);
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn broken_bodies_and_too_many_parts() {
        assert!(parse(&Bytes::from_static(b"nothing"), "XyZ", 10).is_err());
        assert!(parse(
            &Bytes::from_static(b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nno end"),
            "XyZ",
            10
        )
        .is_err());
        let many: Vec<(&str, Option<&str>, &[u8])> =
            (0..20).map(|_| ("f", None, &b"x"[..])).collect();
        assert_eq!(
            parse(&body(&many), "XyZ", 10),
            Err(MultipartError::TooManyParts(10))
        );
        assert_eq!(parse(&body(&many), "XyZ", 20).unwrap().len(), 20);
    }
}
