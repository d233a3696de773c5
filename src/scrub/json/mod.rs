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

pub use bumpalo::Bump;

use super::schema::NodeId;

mod escape;
mod parse;
mod write;

use escape::decode;
pub use escape::{unescape, write_escaped};
pub(crate) use parse::parse_event_in;
pub use parse::{parse, parse_event};
pub use write::{write, write_from, write_str};

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

#[cfg(test)]
mod tests;
