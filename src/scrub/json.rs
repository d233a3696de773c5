//! A borrowed JSON tree: parse once, keep every untouched token as its raw bytes.
//!
//! Strings and numbers point into the input. A string is only decoded when a rule needs
//! to look at it, and only re-escaped when a rule changed it; everything else is written
//! back byte for byte, so numbers are never reformatted and key order is kept.
//!
//! # Arena
//!
//! Containers are slices in a [`Bump`] arena, and so is every string a rule writes: the
//! tree owns nothing, has no destructor, and is freed all at once when the caller resets
//! its arena. Building a container is a pointer bump instead of a `malloc`, dropping an
//! event no longer visits every node to free it, and a value is 24 bytes instead of 32
//! (a slice is two words, a `Vec` three). The slices are fixed in length; the rare edits
//! that add or remove entries ([`push`], [`insert`], [`remove`]) build the new slice in the
//! arena.

use std::borrow::Cow;
use std::fmt::Write as _;

pub use bumpalo::Bump;

use super::schema::{self, NodeId, Schema};
use super::ScrubError;

/// A JSON string: either the raw (still escaped) text between the quotes of the
/// input, or a new value written by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Str<'a> {
    /// Raw text from the input, without the quotes.
    Raw {
        /// The bytes between the quotes, escapes included.
        raw: &'a str,
        /// Whether `raw` contains a backslash escape.
        escaped: bool,
        /// For an object key, the schema node the parser resolved for it.
        hint: KeyHint,
    },
    /// Decoded text written by scrubgate (escaped on output), in the arena or static.
    Decoded(&'a str),
}

impl Default for Str<'_> {
    fn default() -> Self {
        Str::Decoded("")
    }
}

/// The schema node the event parser resolved for an object key, as the child of the
/// object's node, so that the walker need not look it up again. Resolving a key's node
/// is a pure function of the parent node and the key, so the walker uses the hint only
/// when its own parent node is the one the parser saw. A hint is not part of the
/// string: hints always compare equal.
#[derive(Debug, Clone, Copy)]
pub struct KeyHint {
    parent: u16,
    node: u16,
}

impl KeyHint {
    /// No hint.
    pub const NONE: KeyHint = KeyHint {
        parent: u16::MAX,
        node: u16::MAX,
    };

    /// `node` is the key's child of `parent` (no hint for ids past `u16`).
    fn new(parent: NodeId, node: NodeId) -> KeyHint {
        match (u16::try_from(parent), u16::try_from(node)) {
            (Ok(parent), Ok(node)) if parent != u16::MAX => KeyHint { parent, node },
            _ => KeyHint::NONE,
        }
    }
}

impl PartialEq for KeyHint {
    fn eq(&self, _: &KeyHint) -> bool {
        true
    }
}

impl Eq for KeyHint {}

impl<'a> Str<'a> {
    /// The key's schema node under `parent`, when the parser resolved it there.
    #[inline]
    pub fn hinted_child(&self, parent: NodeId) -> Option<NodeId> {
        match self {
            Str::Raw { hint, .. } if u32::from(hint.parent) == parent => {
                Some(NodeId::from(hint.node))
            }
            _ => None,
        }
    }

    /// Decoded text, borrowed (with the input's lifetime) unless it has escapes.
    pub fn decoded(&self) -> Cow<'a, str> {
        match *self {
            Str::Raw { raw, escaped, .. } => decode(raw, escaped),
            Str::Decoded(s) => Cow::Borrowed(s),
        }
    }

    /// [`Str::decoded`] as a `&str` of the input's lifetime: text with escapes is
    /// decoded into `bump`.
    #[inline]
    pub fn text_in(&self, bump: &'a Bump) -> &'a str {
        match self.decoded() {
            Cow::Borrowed(s) => s,
            Cow::Owned(s) => bump.alloc_str(&s),
        }
    }

    /// Compares the decoded text with `other`.
    pub fn eq_str(&self, other: &str) -> bool {
        match self {
            Str::Raw {
                raw,
                escaped: false,
                ..
            } => *raw == other,
            _ => self.decoded() == other,
        }
    }
}

/// A JSON value borrowing from the input and from its arena: 24 bytes, an object entry
/// 48.
#[derive(Debug, PartialEq, Default)]
pub enum Value<'a> {
    /// `null`.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, kept as its raw text.
    Number(&'a str),
    /// A string.
    Str(Str<'a>),
    /// An array.
    Array(&'a mut [Value<'a>]),
    /// An object, in input order.
    Object(&'a mut [Entry<'a>]),
    /// A validated value kept as its raw text: a subtree no rule can touch (every field
    /// in it is pii `false`), so it is never built, walked or re-encoded.
    Raw(&'a str),
    /// JSON written by scrubgate itself (the `_meta` it adds), kept serialized.
    Serialized(&'a str),
}

/// An object entry: key and value.
pub type Entry<'a> = (Str<'a>, Value<'a>);

impl<'a> Value<'a> {
    /// A string value of decoded text (static, or already in the arena).
    pub fn text(s: &'a str) -> Value<'a> {
        Value::Str(Str::Decoded(s))
    }

    /// A string value holding a copy of `s` in `bump`.
    pub fn string_in(bump: &'a Bump, s: &str) -> Value<'a> {
        Value::text(bump.alloc_str(s))
    }

    /// A number value holding `n`'s decimal text in `bump`.
    pub fn number_in(bump: &'a Bump, n: usize) -> Value<'a> {
        Value::Number(bumpalo::format!(in bump, "{}", n).into_bump_str())
    }

    /// An empty object.
    pub fn empty_object() -> Value<'a> {
        Value::Object(&mut [])
    }

    /// An object of `entries`, in the arena.
    pub fn object_in(bump: &'a Bump, entries: impl IntoIterator<Item = Entry<'a>>) -> Value<'a> {
        Value::Object(alloc_slice(bump, entries))
    }

    /// An array of `items`, in the arena.
    pub fn array_in(bump: &'a Bump, items: impl IntoIterator<Item = Value<'a>>) -> Value<'a> {
        Value::Array(alloc_slice(bump, items))
    }

    /// The entries of an object.
    pub fn as_object(&self) -> Option<&[Entry<'a>]> {
        match self {
            Value::Object(entries) => Some(entries),
            _ => None,
        }
    }

    /// The entries of an object, mutably; the slot itself, so that entries can be added
    /// or removed with [`push`], [`insert`] and [`remove`].
    pub fn as_object_mut(&mut self) -> Option<&mut &'a mut [Entry<'a>]> {
        match self {
            Value::Object(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k.eq_str(key))
            .map(|(_, v)| v)
    }

    /// The value under `key` of an object, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value<'a>> {
        self.as_object_mut()?
            .iter_mut()
            .find(|(k, _)| k.eq_str(key))
            .map(|(_, v)| v)
    }

    /// The decoded string, if this is a string.
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            Value::Str(s) => Some(s.decoded()),
            _ => None,
        }
    }
}

/// Moves `items` into a new arena slice.
fn alloc_slice<T>(bump: &Bump, items: impl IntoIterator<Item = T>) -> &mut [T] {
    let items: Vec<T> = items.into_iter().collect();
    bump.alloc_slice_fill_iter(items)
}

/// Moves the elements of `scratch` from `base` on into a new arena slice.
fn move_to_arena<'a, T: Default>(bump: &'a Bump, scratch: &mut Vec<T>, base: usize) -> &'a mut [T] {
    let moved = &mut scratch[base..];
    let slice = bump.alloc_slice_fill_with(moved.len(), |i| std::mem::take(&mut moved[i]));
    scratch.truncate(base);
    slice
}

/// Appends `item` to the arena slice in `slot` (a new slice: arena slices do not grow).
pub fn push<'a, T: Default>(slot: &mut &'a mut [T], bump: &'a Bump, item: T) {
    let len = slot.len();
    insert(slot, bump, len, item);
}

/// Appends `items` to the arena slice in `slot` (a new slice).
pub fn extend<'a, T: Default>(
    slot: &mut &'a mut [T],
    bump: &'a Bump,
    items: impl IntoIterator<Item = T>,
) {
    let old = std::mem::take(slot);
    let all: Vec<T> = old.iter_mut().map(std::mem::take).chain(items).collect();
    *slot = bump.alloc_slice_fill_iter(all);
}

/// Inserts `item` at `index` of the arena slice in `slot` (a new slice).
///
/// # Panics
/// When `index` is past the end, like [`Vec::insert`].
pub fn insert<'a, T: Default>(slot: &mut &'a mut [T], bump: &'a Bump, index: usize, item: T) {
    assert!(index <= slot.len(), "insert index out of bounds");
    let old = std::mem::take(slot);
    let mut item = Some(item);
    *slot = bump.alloc_slice_fill_with(old.len() + 1, |i| match i.cmp(&index) {
        std::cmp::Ordering::Less => std::mem::take(&mut old[i]),
        std::cmp::Ordering::Equal => item.take().unwrap_or_default(),
        std::cmp::Ordering::Greater => std::mem::take(&mut old[i - 1]),
    });
}

/// Removes and returns the element at `index` of the slice in `slot`, keeping the order
/// of the rest (the slice shrinks in place).
///
/// # Panics
/// When `index` is out of bounds, like [`Vec::remove`].
pub fn remove<T: Default>(slot: &mut &mut [T], index: usize) -> T {
    let items = std::mem::take(slot);
    let item = std::mem::take(&mut items[index]);
    items[index..].rotate_left(1);
    let len = items.len() - 1;
    *slot = &mut items[..len];
    item
}

/// Keeps the elements of the slice in `slot` for which `keep` is true, in order.
pub fn retain<T>(slot: &mut &mut [T], mut keep: impl FnMut(&T) -> bool) {
    let items = std::mem::take(slot);
    let mut kept = 0;
    for i in 0..items.len() {
        if keep(&items[i]) {
            items.swap(kept, i);
            kept += 1;
        }
    }
    *slot = &mut items[..kept];
}

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
        }
        Ok(start)
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

/// The position of the first `"`, `\\` or byte below 0x20 (forbidden raw in a JSON
/// string), eight bytes at a time. For a word `w`, `(w - 0x01..) & !w & 0x80..` marks its
/// zero bytes and `(w - 0x20..) & !w & 0x80..` its bytes below 0x20; either may also mark
/// bytes after the first true hit (borrows), never before it, so the lowest marked byte
/// is the answer.
fn next_special_byte(bytes: &[u8]) -> Option<usize> {
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
fn decode(raw: &str, escaped: bool) -> Cow<'_, str> {
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

/// Serializes `value` like [`write`], where `value` was parsed from `src`: runs of
/// untouched leaves that sit next to each other in `src` are copied in one piece.
///
/// A run grows only by a leaf that is still a slice of `src` (a raw string, a number as
/// written, a raw subtree) and that starts exactly one byte after the run ends, where
/// `src` holds the separator [`write`] would put there (`:` after a key, `,` between
/// entries). Every byte copied is therefore one [`write`] would have written: the output
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

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &str) -> String {
        let bump = Bump::new();
        let v = parse(s, &bump, 64).unwrap();
        let mut out = Vec::new();
        write(&mut out, &v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keeps_numbers_and_order() {
        assert_eq!(
            roundtrip(r#"{"z":1.50,"a":[1e3,-0,2E-7],"m":{"b":null,"a":true}}"#),
            r#"{"z":1.50,"a":[1e3,-0,2E-7],"m":{"b":null,"a":true}}"#
        );
    }

    #[test]
    fn keeps_escapes_raw() {
        let s = r#"{"k\u00e9y":"line\nbreak \"q\" \ud83d\ude00"}"#;
        assert_eq!(roundtrip(s), s);
        let bump = Bump::new();
        let v = parse(s, &bump, 8).unwrap();
        let (k, val) = &v.as_object().unwrap()[0];
        assert_eq!(k.decoded(), "kéy");
        assert_eq!(val.as_str().unwrap(), "line\nbreak \"q\" 😀");
    }

    proptest::proptest! {
        /// Any string is escaped exactly as serde_json escapes it.
        #[test]
        fn escaping_matches_serde_json(text in "[\\x00-\\x7f\u{80}-\u{10ffff}]{0,40}") {
            let mut ours = Vec::new();
            write_escaped(&mut ours, &text);
            proptest::prop_assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }
    }

    /// A JSON document built from generated parts (numbers as text, so that `1.50` and
    /// `1e3` come through as written).
    fn json_doc() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            "-?(0|[1-9][0-9]{0,3})(\\.[0-9]{1,2})?([eE][+-]?[0-9])?",
            "[a-z\"\\\\\n\u{e9}]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(("[a-z\"]{0,4}", inner), 0..6).prop_map(|entries| {
                    let body: Vec<String> = entries
                        .into_iter()
                        .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
            ]
        })
    }

    /// Changes a parsed tree the way a walk may: values replaced, nulled, deleted or
    /// swapped with a neighbour, keys renamed. `choices` drives the decisions.
    fn mutate(v: &mut Value<'_>, choices: &mut impl Iterator<Item = u8>) {
        match v {
            Value::Array(items) => {
                let mut i = 0;
                while i < items.len() {
                    match choices.next().unwrap_or(9) % 10 {
                        0 => items[i] = Value::text("new \"value\""),
                        1 => items[i] = Value::Null,
                        2 => {
                            remove(items, i);
                            continue;
                        }
                        3 if i + 1 < items.len() => items.swap(i, i + 1),
                        _ => mutate(&mut items[i], choices),
                    }
                    i += 1;
                }
            }
            Value::Object(entries) => {
                let mut i = 0;
                while i < entries.len() {
                    match choices.next().unwrap_or(9) % 10 {
                        0 => entries[i].1 = Value::text("[Filtered]"),
                        1 => entries[i].1 = Value::Bool(true),
                        2 => {
                            remove(entries, i);
                            continue;
                        }
                        3 if i + 1 < entries.len() => entries.swap(i, i + 1),
                        4 => entries[i].0 = Str::Decoded("id"),
                        _ => mutate(&mut entries[i].1, choices),
                    }
                    i += 1;
                }
            }
            _ => {}
        }
    }

    proptest::proptest! {
        /// Copying untouched runs from the source writes exactly what the plain writer
        /// writes, for compact and spaced-out input, whatever the walk changed.
        #[test]
        fn span_copy_writes_what_write_writes(
            doc in json_doc(),
            spaced in proptest::bool::ANY,
            choices in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let text = if spaced {
                let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                doc
            };
            let bump = Bump::new();
            let mut tree = parse(&text, &bump, 64).unwrap();
            mutate(&mut tree, &mut choices.into_iter());
            let (mut plain, mut copied) = (Vec::new(), Vec::new());
            write(&mut plain, &tree);
            write_from(&mut copied, &tree, &text);
            proptest::prop_assert_eq!(
                String::from_utf8(copied).unwrap(),
                String::from_utf8(plain).unwrap()
            );
        }
    }

    #[test]
    fn span_copy_skips_changed_and_moved_leaves() {
        let text = r#"{"a":"x","b":1,"c":[1,2,3],"d":{"e":null,"f":"y"}}"#;
        let bump = Bump::new();
        let mut tree = parse(text, &bump, 8).unwrap();
        let written = |tree: &Value<'_>| {
            let mut out = Vec::new();
            write_from(&mut out, tree, text);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(written(&tree), text);
        let entries = tree.as_object_mut().unwrap();
        entries[0].1 = Value::text("[Filtered]");
        remove(entries, 1);
        if let Value::Array(items) = &mut entries[1].1 {
            items.swap(0, 2);
        }
        assert_eq!(
            written(&tree),
            r#"{"a":"[Filtered]","c":[3,2,1],"d":{"e":null,"f":"y"}}"#
        );
        // A leaf of another buffer with the same bytes is written, not taken for the
        // source's.
        let other = text.to_string();
        let bump = Bump::new();
        let copy = parse(&other, &bump, 8).unwrap();
        let mut out = Vec::new();
        write_from(&mut out, &copy, text);
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }

    #[test]
    fn event_keys_carry_their_schema_node_for_their_parent_only() {
        let schema = schema::event_schema();
        let text = r#"{"user":{"email":"a@b.c"},"extra":{"email":"x"}}"#;
        let bump = Bump::new();
        let tree = parse_event(text, &bump, 16).unwrap();
        let user_node = schema.top_level_child("user", true);
        let user = tree.get("user").unwrap().as_object().unwrap();
        assert_eq!(
            user[0].0.hinted_child(user_node),
            Some(schema.key_child(user_node, "email"))
        );
        // Another parent gets no hint: the walker resolves the key itself.
        let extra_node = schema.top_level_child("extra", true);
        assert_eq!(user[0].0.hinted_child(extra_node), None);
        // Top-level keys are resolved by the walker's own rules, never hinted.
        let (top_key, _) = &tree.as_object().unwrap()[0];
        assert_eq!(top_key.hinted_child(schema::ROOT), None);
        // A hint is not part of the string.
        assert_eq!(
            user[0].0,
            parse(text, &Bump::new(), 16).unwrap().as_object().unwrap()[0]
                .1
                .as_object()
                .unwrap()[0]
                .0
        );
    }

    #[test]
    fn escapes_owned_strings() {
        let mut out = Vec::new();
        write_escaped(&mut out, "a\"b\\c\n\u{1}é\u{8}\u{c}");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\n\u0001é\b\f""#);
        // The same escapes as serde_json, so rewritten values match Relay's output.
        let tricky = "q\"\\/\u{0}\u{1f}\u{7f}\u{2028}\t\r";
        let mut ours = Vec::new();
        write_escaped(&mut ours, tricky);
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_json::to_string(tricky).unwrap()
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "tru",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "{} {}",
            "\"a\u{1}\"",
            "{'a':1}",
        ] {
            assert!(parse(bad, &Bump::new(), 8).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn depth_limit() {
        let deep = "[".repeat(10) + &"]".repeat(10);
        assert!(parse(&deep, &Bump::new(), 10).is_ok());
        assert_eq!(
            parse(&deep, &Bump::new(), 9).unwrap_err(),
            ScrubError::TooDeep { limit: 9 }
        );
    }

    #[test]
    fn event_parse_keeps_unscrubbable_subtrees_raw_but_validated() {
        let src = r#"{"modules":{"a": "1.0" , "b":[1,2]},"extra":{"k":"v"}}"#;
        let bump = Bump::new();
        let v = parse_event(src, &bump, 16).unwrap();
        assert_eq!(
            v.get("modules"),
            Some(&Value::Raw(r#"{"a": "1.0" , "b":[1,2]}"#))
        );
        assert!(matches!(v.get("extra"), Some(Value::Object(_))));
        let mut out = Vec::new();
        write(&mut out, &v);
        assert_eq!(String::from_utf8(out).unwrap(), src);
        // Raw subtrees are still validated and depth-limited.
        for bad in [
            r#"{"modules":{"a":}}"#,
            r#"{"modules":{"a":"x\q"}}"#,
            r#"{"modules":[1,]}"#,
        ] {
            assert!(
                parse_event(bad, &Bump::new(), 16).is_err(),
                "accepted {bad}"
            );
        }
        let deep = format!(r#"{{"modules":{}{}}}"#, "[".repeat(20), "]".repeat(20));
        assert_eq!(
            parse_event(&deep, &Bump::new(), 10).unwrap_err(),
            ScrubError::TooDeep { limit: 10 }
        );
    }

    #[test]
    fn string_ends_and_control_bytes_are_found_wherever_they_are() {
        // Bytes next to the specials (0x21, 0x23, 0x5b, 0x5d, 0x20, 0x7f, 0x80+) must never
        // be mistaken for them, even right after one (the SWAR borrows).
        let filler = b"!#[] \x7fa~Z0\x80\xff\x01";
        for len in 0..40 {
            let clean: Vec<u8> = (0..len)
                .map(|i| filler[i % filler.len()])
                .filter(|&b| b >= 0x20)
                .collect();
            assert_eq!(next_special_byte(&clean), None, "{clean:?}");
            for at in 0..clean.len() {
                for special in [b'"', b'\\', 0u8, 0x09, 0x1f] {
                    let mut bad = clean.clone();
                    bad[at] = special;
                    assert_eq!(next_special_byte(&bad), Some(at), "{bad:?}");
                    // A later special never hides an earlier one.
                    if at + 1 < bad.len() {
                        bad[at + 1] = b'"';
                        assert_eq!(next_special_byte(&bad), Some(at), "{bad:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn lone_surrogate_decodes_to_replacement() {
        assert_eq!(unescape(r"a\ud800b"), "a\u{FFFD}b");
    }

    #[test]
    fn arena_slice_edits_behave_like_vec_edits() {
        let bump = Bump::new();
        let mut slot: &mut [u32] = bump.alloc_slice_copy(&[1, 2, 3]);
        let mut model = vec![1, 2, 3];
        push(&mut slot, &bump, 4);
        model.push(4);
        assert_eq!(slot, model.as_slice());
        insert(&mut slot, &bump, 0, 0);
        model.insert(0, 0);
        insert(&mut slot, &bump, 3, 9);
        model.insert(3, 9);
        assert_eq!(slot, model.as_slice());
        assert_eq!(remove(&mut slot, 3), model.remove(3));
        assert_eq!(remove(&mut slot, 0), model.remove(0));
        let last = slot.len() - 1;
        assert_eq!(remove(&mut slot, last), model.pop().unwrap());
        assert_eq!(slot, model.as_slice());
        extend(&mut slot, &bump, [7, 8]);
        model.extend([7, 8]);
        assert_eq!(slot, model.as_slice());
        retain(&mut slot, |x| x % 2 == 1);
        model.retain(|x| x % 2 == 1);
        assert_eq!(slot, model.as_slice());
        let mut empty: &mut [u32] = &mut [];
        push(&mut empty, &bump, 5);
        assert_eq!(empty, &[5]);
    }

    #[test]
    fn parsed_containers_hold_their_children_in_order() {
        let bump = Bump::new();
        let v = parse(r#"{"a":[1,"x",{"b":null}],"c":{},"d":[]}"#, &bump, 8).unwrap();
        let entries = v.as_object().unwrap();
        assert_eq!(entries.len(), 3);
        let Value::Array(items) = &entries[0].1 else {
            panic!("not an array")
        };
        assert_eq!(items[0], Value::Number("1"));
        assert_eq!(items[1].as_str().as_deref(), Some("x"));
        assert_eq!(items[2].get("b"), Some(&Value::Null));
        assert_eq!(entries[1].1, Value::empty_object());
        assert_eq!(entries[2].1, Value::Array(&mut []));
        // A value is three words, an entry six: the tree is read by four passes.
        assert_eq!(std::mem::size_of::<Value<'_>>(), 24);
        assert_eq!(std::mem::size_of::<Entry<'_>>(), 48);
    }
}
