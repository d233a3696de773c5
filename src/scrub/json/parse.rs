//! The parser: input text into a borrowed [`Value`] tree, strings and numbers as slices
//! of the input, containers in the arena, and (for an event) subtrees no rule can touch
//! validated but kept raw.

use super::escape::{decode, next_special_byte};
use super::{move_to_arena, Bump, Entry, KeyHint, Str, Value};
use crate::scrub::schema::{self, NodeId, Schema};
use crate::scrub::ScrubError;

/// A number written in at most this many characters, without an exponent, is below
/// `f64::MAX` (about 1.8e308) and needs no range check.
const MAX_FINITE_DIGITS: usize = 300;

/// Parses `input` into a borrowed tree, refusing anything nested deeper than `max_depth`.
///
/// # Errors
/// [`ScrubError::InvalidJson`] for malformed input, [`ScrubError::TooDeep`] past the limit.
pub fn parse<'a>(
    input: &'a str,
    bump: &'a Bump,
    max_depth: usize,
) -> Result<Value<'a>, ScrubError> {
    parse_inner(input, bump, max_depth, None)
}

/// Like [`parse`], for an event: subtrees the event schema marks as never scrubbable are
/// validated but kept as [`Value::Raw`].
///
/// # Errors
/// As [`parse`].
pub fn parse_event<'a>(
    input: &'a str,
    bump: &'a Bump,
    max_depth: usize,
) -> Result<Value<'a>, ScrubError> {
    parse_inner(input, bump, max_depth, Some(schema::event_schema()))
}

/// Like [`parse_event`], with the event schema of another coverage.
pub(crate) fn parse_event_in<'a>(
    input: &'a str,
    bump: &'a Bump,
    max_depth: usize,
    schema: &'static Schema,
) -> Result<Value<'a>, ScrubError> {
    parse_inner(input, bump, max_depth, Some(schema))
}

fn parse_inner<'a>(
    input: &'a str,
    bump: &'a Bump,
    max_depth: usize,
    schema: Option<&'static Schema>,
) -> Result<Value<'a>, ScrubError> {
    let mut parser = Parser {
        src: input,
        bytes: input.as_bytes(),
        bump,
        pos: 0,
        max_depth,
        schema,
        scratch_items: Vec::with_capacity(64),
        scratch_entries: Vec::with_capacity(64),
        error: None,
    };
    parser.skip_ws();
    let parsed = parser.value(0, schema::ROOT).and_then(|value| {
        parser.skip_ws();
        if parser.pos == parser.bytes.len() {
            Ok(value)
        } else {
            Err(parser.err("trailing characters after the JSON value"))
        }
    });
    parsed.map_err(|Stop| {
        parser.error.take().unwrap_or(ScrubError::InvalidJson {
            offset: parser.pos,
            reason: "invalid JSON",
        })
    })
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    /// Where containers are built.
    bump: &'a Bump,
    pos: usize,
    max_depth: usize,
    /// When set, the schema node of each value decides whether it is built or kept raw.
    schema: Option<&'static Schema>,
    scratch_items: Vec<Value<'a>>,
    scratch_entries: Vec<Entry<'a>>,
    /// What stopped the parse, once a method has returned [`Stop`].
    error: Option<ScrubError>,
}

/// A parse stopped; the error is in [`Parser::error`]. Being empty, it keeps a parse
/// result the size of a [`Value`] (no error payload moved through every return).
struct Stop;

type Parsed<T> = Result<T, Stop>;

impl<'a> Parser<'a> {
    /// Records a syntax error at the current position; the caller returns the [`Stop`].
    #[cold]
    fn err(&mut self, reason: &'static str) -> Stop {
        self.error = Some(ScrubError::InvalidJson {
            offset: self.pos,
            reason,
        });
        Stop
    }

    /// Records that the input nests deeper than the limit.
    #[cold]
    fn too_deep(&mut self) -> Stop {
        self.error = Some(ScrubError::TooDeep {
            limit: self.max_depth,
        });
        Stop
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Parses a container's child and pushes `make(child)` onto the `scratch` stack.
    /// Strings and numbers, most children, are scanned right here and pushed in their
    /// own branch, so the entry is stored straight into the stack from registers: built
    /// first and pushed after, it went through the call frame, written piecewise and
    /// read back whole (a stalled store-to-load forward per child). Everything else goes
    /// to [`Parser::value`].
    #[inline(always)]
    fn push_child<T>(
        &mut self,
        depth: usize,
        node: NodeId,
        make: impl FnOnce(Value<'a>) -> T,
        scratch: impl FnOnce(&mut Self) -> &mut Vec<T>,
    ) -> Parsed<()> {
        match self.bytes.get(self.pos) {
            Some(b'"') => {
                let (start, escaped) = self.string_span()?;
                let child = make(Value::Str(self.str_from(start, escaped)));
                scratch(self).push(child);
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.number()?;
                let child = make(self.number_from(start));
                scratch(self).push(child);
            }
            _ => {
                let child = make(self.value(depth, node)?);
                scratch(self).push(child);
            }
        }
        Ok(())
    }

    fn value(&mut self, depth: usize, node: NodeId) -> Parsed<Value<'a>> {
        if let Some(schema) = self.schema {
            if schema.node(node).dead && matches!(self.bytes.get(self.pos), Some(b'{' | b'[')) {
                let start = self.pos;
                self.skip_value(depth)?;
                return Ok(Value::Raw(&self.src[start..self.pos]));
            }
        }
        match self.bytes.get(self.pos) {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(depth + 1, node),
            Some(b'[') => self.array(depth + 1, node),
            Some(b'"') => {
                let (start, escaped) = self.string_span()?;
                Ok(Value::Str(self.str_from(start, escaped)))
            }
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => {
                let start = self.number()?;
                Ok(self.number_from(start))
            }
            Some(_) => Err(self.err("expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &'static str, value: Value<'a>) -> Parsed<Value<'a>> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    /// Scans a number; returns where it starts (it ends at `self.pos`).
    fn number(&mut self) -> Parsed<usize> {
        let start = self.pos;
        let b = self.bytes;
        if b.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match b.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(self.pos), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
            }
            _ => return Err(self.err("invalid number")),
        }
        if b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !matches!(b.get(self.pos), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number"));
            }
            while matches!(b.get(self.pos), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
        }
        if matches!(b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !matches!(b.get(self.pos), Some(b'0'..=b'9')) {
                return Err(self.err("invalid number"));
            }
            while matches!(b.get(self.pos), Some(b'0'..=b'9')) {
                self.pos += 1;
            }
            self.check_finite(start)?;
        } else if self.pos - start > MAX_FINITE_DIGITS {
            self.check_finite(start)?;
        }
        Ok(start)
    }

    /// Refuses a number too large for a double (`1e999`, or 400 digits), as serde_json,
    /// and so Relay and the store, refuse it: forwarding it would hand them a document
    /// they cannot read. Only numbers with an exponent or very many digits get here.
    #[cold]
    fn check_finite(&mut self, start: usize) -> Parsed<()> {
        let text = &self.src[start..self.pos];
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(()),
            _ => Err(self.err("number out of range")),
        }
    }

    /// A string (a key, or one being validated).
    #[inline]
    fn string(&mut self) -> Parsed<Str<'a>> {
        let (start, escaped) = self.string_span()?;
        Ok(self.str_from(start, escaped))
    }

    /// The string just scanned by [`Parser::string_span`], whose text starts at `start`.
    #[inline(always)]
    fn str_from(&self, start: usize, escaped: bool) -> Str<'a> {
        Str::Raw {
            raw: &self.src[start..self.pos - 1],
            escaped,
            hint: KeyHint::NONE,
        }
    }

    /// The number just scanned by [`Parser::number`], starting at `start`.
    #[inline(always)]
    fn number_from(&self, start: usize) -> Value<'a> {
        Value::Number(&self.src[start..self.pos])
    }

    /// Scans a string; returns where its text starts and whether it holds escapes (the
    /// closing quote is the byte before `self.pos`). The result is two words, returned
    /// in registers rather than written to memory and read back.
    fn string_span(&mut self) -> Parsed<(usize, bool)> {
        // Caller guarantees the opening quote.
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        loop {
            // Fast path: jump to the next quote, backslash or control byte, eight bytes
            // at a time (most strings are short, where this beats a SIMD search's set-up).
            let Some(skip) = next_special_byte(&self.bytes[self.pos..]) else {
                return Err(self.err("unterminated string"));
            };
            self.pos += skip;
            let b = self.bytes[self.pos];
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok((start, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match self.bytes.get(self.pos) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            let hex = self.bytes.get(self.pos + 1..self.pos + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.err("invalid unicode escape"));
                            }
                            self.pos += 5;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                0..=0x1f => return Err(self.err("control character in string")),
                _ => self.pos += 1,
            }
        }
    }

    fn array(&mut self, depth: usize, node: NodeId) -> Parsed<Value<'a>> {
        let elem = self.schema.map_or(node, |s| {
            let n = s.node(node);
            if n.values_wrapper {
                s.elem_child(s.values_child(node))
            } else {
                s.elem_child(node)
            }
        });
        if depth > self.max_depth {
            return Err(self.too_deep());
        }
        self.pos += 1;
        // Children collect on a shared scratch stack, then move into one exact-size
        // arena slice: no growth reallocations, whatever the container's size.
        let base = self.scratch_items.len();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(&mut []));
        }
        loop {
            self.skip_ws();
            self.push_child(depth, elem, |item| item, |p| &mut p.scratch_items)?;
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    let items = move_to_arena(self.bump, &mut self.scratch_items, base);
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize, node: NodeId) -> Parsed<Value<'a>> {
        if depth > self.max_depth {
            return Err(self.too_deep());
        }
        self.pos += 1;
        let base = self.scratch_entries.len();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(&mut []));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected a string key"));
            }
            // The key stays in scalars until its entry is pushed (see
            // [`Parser::push_child`]).
            let (key_start, key_escaped) = self.string_span()?;
            let key_raw = &self.src[key_start..self.pos - 1];
            let mut key_hint = KeyHint::NONE;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.skip_ws();
            let child = match self.schema {
                Some(schema) if node == schema::ROOT => {
                    let k = decode(key_raw, key_escaped);
                    schema.top_level_child(&k, self.bytes.get(self.pos) == Some(&b'{'))
                }
                Some(schema) => {
                    let n = schema.node(node);
                    let k = decode(key_raw, key_escaped);
                    if node == schema.contexts() {
                        // Contexts are typed by their `type` field, which may come after
                        // their other fields: build them all, the walker decides.
                        schema.context_child("", Some("custom"))
                    } else if n.values_wrapper && k != "values" {
                        // Possibly a single item where a list is expected: resolve its
                        // fields as the item's (never less scrubbable than the wrapper's).
                        schema.key_child(schema.elem_child(schema.values_child(node)), &k)
                    } else {
                        let child = schema.key_child(node, &k);
                        key_hint = KeyHint::new(node, child);
                        child
                    }
                }
                None => node,
            };
            let key = move || Str::Raw {
                raw: key_raw,
                escaped: key_escaped,
                hint: key_hint,
            };
            self.push_child(
                depth,
                child,
                |value| (key(), value),
                |p| &mut p.scratch_entries,
            )?;
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    let entries = move_to_arena(self.bump, &mut self.scratch_entries, base);
                    return Ok(Value::Object(entries));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }
}

impl Parser<'_> {
    /// Validates one value without building it.
    fn skip_value(&mut self, depth: usize) -> Parsed<()> {
        match self.bytes.get(self.pos) {
            None => Err(self.err("unexpected end of input")),
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal("true", Value::Null).map(drop),
            Some(b'f') => self.literal("false", Value::Null).map(drop),
            Some(b'n') => self.literal("null", Value::Null).map(drop),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(&open @ (b'[' | b'{')) => {
                let depth = depth + 1;
                if depth > self.max_depth {
                    return Err(self.too_deep());
                }
                let close = if open == b'[' { b']' } else { b'}' };
                self.pos += 1;
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&close) {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if open == b'{' {
                        if self.bytes.get(self.pos) != Some(&b'"') {
                            return Err(self.err("expected a string key"));
                        }
                        self.string()?;
                        self.skip_ws();
                        if self.bytes.get(self.pos) != Some(&b':') {
                            return Err(self.err("expected ':'"));
                        }
                        self.pos += 1;
                        self.skip_ws();
                    }
                    self.skip_value(depth)?;
                    self.skip_ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(&b) if b == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.err("expected ',' or a closing bracket")),
                    }
                }
            }
            Some(_) => Err(self.err("expected a JSON value")),
        }
    }
}
