//! The writers: a tree back to compact JSON, untouched tokens as their raw bytes, and
//! ([`write_from`]) runs of untouched neighbours copied from the source in one piece.

use super::{write_escaped, Entry, Str, Value};

/// Writes a string value, raw when untouched.
pub fn write_str(out: &mut Vec<u8>, s: &Str<'_>) {
    match s {
        Str::Raw { raw, .. } => {
            out.push(b'"');
            out.extend_from_slice(raw.as_bytes());
            out.push(b'"');
        }
        Str::Decoded(s) => write_escaped(out, s),
    }
}

/// Serializes `value` compactly.
pub fn write(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.as_bytes()),
        Value::Raw(raw) => out.extend_from_slice(raw.as_bytes()),
        Value::Serialized(json) => out.extend_from_slice(json.as_bytes()),
        Value::Str(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Value::Object(entries) => {
            out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write(out, v);
            }
            out.push(b'}');
        }
    }
}

/// Serializes `value` like [`write()`], where `value` was parsed from `src`: runs of
/// untouched leaves that sit next to each other in `src` are copied in one piece.
///
/// A run grows only by a leaf that is still a slice of `src` (a raw string, a number as
/// written, a raw subtree) and that starts exactly one byte after the run ends, where
/// `src` holds the separator [`write()`] would put there (`:` after a key, `,` between
/// entries). Every byte copied is therefore one [`write()`] would have written: the output
/// is identical, whatever the walk changed, moved or deleted (a changed leaf is no longer
/// a slice of `src`; a deleted neighbour leaves a gap wider than one byte).
pub fn write_from(out: &mut Vec<u8>, value: &Value<'_>, src: &str) {
    SpanWriter {
        out,
        src: src.as_bytes(),
    }
    .value(value);
}

/// The writer of [`write_from`].
struct SpanWriter<'o, 's> {
    out: &'o mut Vec<u8>,
    src: &'s [u8],
}

/// A byte range of the source, copied as it is.
type Span = (usize, usize);

impl SpanWriter<'_, '_> {
    /// Where `text` lies in the source, if it is a slice of it: its address falls inside
    /// the source's (a slice of another buffer, even with the same bytes, does not).
    fn offset_of(&self, text: &str) -> Option<usize> {
        let off = (text.as_ptr() as usize).wrapping_sub(self.src.as_ptr() as usize);
        let end = off.checked_add(text.len())?;
        (end <= self.src.len()).then_some(off)
    }

    /// The source span of a string written raw: its text and the quotes around it.
    fn str_span(&self, s: &Str<'_>) -> Option<Span> {
        let Str::Raw { raw, .. } = s else {
            return None;
        };
        let off = self.offset_of(raw)?;
        let end = off + raw.len();
        (off > 0 && self.src[off - 1] == b'"' && self.src.get(end) == Some(&b'"'))
            .then_some((off - 1, end + 1))
    }

    /// The source span of a leaf written as it came.
    fn leaf_span(&self, v: &Value<'_>) -> Option<Span> {
        match v {
            Value::Str(s) => self.str_span(s),
            Value::Number(n) | Value::Raw(n) => {
                let off = self.offset_of(n)?;
                Some((off, off + n.len()))
            }
            _ => None,
        }
    }

    /// Whether `next` starts right after `prev` with `sep` between them in the source.
    fn joins(&self, prev: Span, next: Span, sep: u8) -> bool {
        prev.1 + 1 == next.0 && self.src[prev.1] == sep
    }

    /// Adds the `i`-th element's `span` to the run, or starts a new run with it.
    #[inline]
    fn extend_run(&mut self, run: &mut Option<Span>, span: Span, i: usize) {
        match *run {
            Some(r) if self.joins(r, span, b',') => *run = Some((r.0, span.1)),
            _ => {
                self.end_run(run, i);
                *run = Some(span);
            }
        }
    }

    /// Writes out the run, and the separator before the `i`-th element.
    #[inline]
    fn end_run(&mut self, run: &mut Option<Span>, i: usize) {
        self.flush(run.take());
        if i > 0 {
            self.out.push(b',');
        }
    }

    #[inline]
    fn flush(&mut self, run: Option<Span>) {
        if let Some((start, end)) = run {
            self.out.extend_from_slice(&self.src[start..end]);
        }
    }

    fn value(&mut self, value: &Value<'_>) {
        match value {
            Value::Array(items) => self.array(items),
            Value::Object(entries) => self.object(entries),
            leaf => write(self.out, leaf),
        }
    }

    fn array(&mut self, items: &[Value<'_>]) {
        self.out.push(b'[');
        let mut run: Option<Span> = None;
        for (i, item) in items.iter().enumerate() {
            if let Some(span) = self.leaf_span(item) {
                self.extend_run(&mut run, span, i);
                continue;
            }
            self.end_run(&mut run, i);
            self.value(item);
        }
        self.flush(run);
        self.out.push(b']');
    }

    fn object(&mut self, entries: &[Entry<'_>]) {
        self.out.push(b'{');
        let mut run: Option<Span> = None;
        for (i, (k, v)) in entries.iter().enumerate() {
            let key = self.str_span(k);
            // The whole entry, `"key":value`, when both sides are untouched neighbours.
            let entry = match (key, self.leaf_span(v)) {
                (Some(ks), Some(vs)) if self.joins(ks, vs, b':') => Some((ks.0, vs.1)),
                _ => None,
            };
            if let Some(span) = entry {
                self.extend_run(&mut run, span, i);
                continue;
            }
            self.end_run(&mut run, i);
            match key {
                Some((start, end)) => self.out.extend_from_slice(&self.src[start..end]),
                None => write_str(self.out, k),
            }
            self.out.push(b':');
            self.value(v);
        }
        self.flush(run);
        self.out.push(b'}');
    }
}
