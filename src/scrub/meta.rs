//! `_meta` remarks: which rule changed which value, how, and where in the new string.

use std::borrow::Cow;
use std::sync::Arc;

use super::json::{write_escaped, Str, Value};
use super::Method;

/// One segment of a `_meta` path (ordered: keys by text, indices by number). Keys
/// borrow from the event where they can, so recording a change copies no key text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetaSeg<'a> {
    /// An object key.
    Key(Cow<'a, str>),
    /// An array index.
    Index(usize),
}

/// Remark type letters of Relay's `_meta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemarkType {
    /// `x`
    Removed,
    /// `s`
    Substituted,
    /// `m`
    Masked,
    /// `p`
    Pseudonymized,
}

impl RemarkType {
    /// The wire letter.
    pub fn as_str(self) -> &'static str {
        match self {
            RemarkType::Removed => "x",
            RemarkType::Substituted => "s",
            RemarkType::Masked => "m",
            RemarkType::Pseudonymized => "p",
        }
    }

    /// The redaction method this remark records.
    pub fn method(self) -> Method {
        match self {
            RemarkType::Removed => Method::Remove,
            RemarkType::Substituted => Method::Replace,
            RemarkType::Masked => Method::Mask,
            RemarkType::Pseudonymized => Method::Hash,
        }
    }
}

/// One remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark {
    /// The rule id.
    pub rule: Arc<str>,
    /// What happened.
    pub ty: RemarkType,
    /// Byte range in the new string.
    pub range: Option<(usize, usize)>,
}

/// The metadata of one value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaEntry {
    /// Remarks in order.
    pub rem: Vec<Remark>,
    /// Original length in characters.
    pub len: Option<usize>,
}

/// All `_meta` entries recorded while scrubbing one payload.
#[derive(Debug, Default)]
pub struct MetaLog<'a> {
    entries: Vec<(Vec<MetaSeg<'a>>, MetaEntry)>,
}

impl<'a> MetaLog<'a> {
    /// Number of entries (grows whenever a value is changed for the first time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A new entry for `path`. Each value is recorded once per scrub (entries for the
    /// same path are merged when written out).
    pub fn entry(&mut self, path: Vec<MetaSeg<'a>>) -> &mut MetaEntry {
        self.entries.push((path, MetaEntry::default()));
        let last = self.entries.len() - 1;
        &mut self.entries[last].1
    }

    /// Removes and returns the entries recorded after the first `at`.
    pub fn split_off(&mut self, at: usize) -> Vec<(Vec<MetaSeg<'a>>, MetaEntry)> {
        self.entries.split_off(at)
    }

    /// Moves the entries under `from` to `to`.
    pub fn rename(&mut self, from: &[MetaSeg<'a>], to: Vec<MetaSeg<'a>>) {
        for (p, _) in &mut self.entries {
            if p.starts_with(from) {
                let mut new = to.clone();
                new.extend_from_slice(&p[from.len()..]);
                *p = new;
            }
        }
    }

    /// Merges every entry into the event's `_meta` object (created when missing).
    ///
    /// The entries are sorted by path (keys in string order, like Relay's `BTreeMap`
    /// meta tree) and built into a tree in one pass, then merged into an existing `_meta`.
    pub fn merge_into(self, root: &mut Value<'_>) {
        if self.entries.is_empty() {
            return;
        }
        let Value::Object(entries) = root else {
            return;
        };
        let mut list = self.entries;
        list.sort_by(|a, b| a.0.cmp(&b.0));
        match entries.iter().position(|(k, _)| k.eq_str("_meta")) {
            Some(i) => {
                // An incoming `_meta`: add each entry at its path (rare, so no bulk build).
                for (path, entry) in list {
                    let mut node = &mut entries[i].1;
                    for seg in &path {
                        node = match seg {
                            MetaSeg::Key(k) => child_object(node, k),
                            MetaSeg::Index(n) => child_object(node, &n.to_string()),
                        };
                    }
                    merge_entry(child_object(node, ""), entry);
                }
            }
            None => {
                // The common case: write the tree straight to JSON.
                let mut out = Vec::with_capacity(list.len() * 64);
                serialize(&mut out, &list, 0);
                let json = String::from_utf8(out).expect("only UTF-8 strings were written");
                entries.push((Str::Owned("_meta".into()), Value::Serialized(json)));
            }
        }
    }
}

/// Writes the meta tree of `list` (sorted by path) below depth `depth` as JSON.
fn serialize(out: &mut Vec<u8>, list: &[(Vec<MetaSeg<'_>>, MetaEntry)], depth: usize) {
    out.push(b'{');
    // The entries for this very node (one per rule pass that changed it): their remarks
    // in order, and the first recorded original length.
    let own = &list[..list.iter().take_while(|(p, _)| p.len() == depth).count()];
    let mut first = true;
    if !own.is_empty() {
        out.extend_from_slice(br#""":{"rem":["#);
        for (i, r) in own.iter().flat_map(|(_, e)| e.rem.iter()).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            write_escaped(out, &r.rule);
            out.extend_from_slice(b",\"");
            out.extend_from_slice(r.ty.as_str().as_bytes());
            out.push(b'"');
            if let Some((a, b)) = r.range {
                out.push(b',');
                push_number(out, a);
                out.push(b',');
                push_number(out, b);
            }
            out.push(b']');
        }
        out.push(b']');
        if let Some(len) = own.iter().find_map(|(_, e)| e.len) {
            out.extend_from_slice(b",\"len\":");
            push_number(out, len);
        }
        out.push(b'}');
        first = false;
    }
    let mut i = own.len();
    while i < list.len() {
        let key = &list[i].0[depth];
        let mut j = i + 1;
        while j < list.len() && list[j].0[depth] == *key {
            j += 1;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        match key {
            MetaSeg::Key(k) => write_escaped(out, k),
            MetaSeg::Index(n) => {
                out.push(b'"');
                push_number(out, *n);
                out.push(b'"');
            }
        }
        out.push(b':');
        serialize(out, &list[i..j], depth + 1);
        i = j;
    }
    out.push(b'}');
}

/// Writes `n` in decimal.
fn push_number(out: &mut Vec<u8>, n: usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// The object under `key` in `node`, created (and `node` made an object) when missing.
fn child_object<'v, 'a>(node: &'v mut Value<'a>, key: &str) -> &'v mut Value<'a> {
    if !matches!(node, Value::Object(_)) {
        *node = Value::Object(Vec::new());
    }
    let Value::Object(fields) = node else {
        return node;
    };
    let idx = match fields.iter().position(|(k, _)| k.eq_str(key)) {
        Some(i) => i,
        None => {
            fields.push((Str::Owned(key.to_string()), Value::Object(Vec::new())));
            fields.len() - 1
        }
    };
    let child = &mut fields[idx].1;
    if !matches!(child, Value::Object(_)) {
        *child = Value::Object(Vec::new());
    }
    child
}

fn remark_value<'a>(r: &Remark) -> Value<'a> {
    let mut items = vec![
        Value::string(r.rule.to_string()),
        Value::string(r.ty.as_str()),
    ];
    if let Some((s, e)) = r.range {
        items.push(Value::Number(s.to_string().into()));
        items.push(Value::Number(e.to_string().into()));
    }
    Value::Array(items)
}

fn merge_entry(inner: &mut Value<'_>, entry: MetaEntry) {
    let Value::Object(fields) = inner else {
        return;
    };
    let rem_idx = match fields.iter().position(|(k, _)| k.eq_str("rem")) {
        Some(i) => i,
        None => {
            fields.insert(0, (Str::Owned("rem".into()), Value::Array(Vec::new())));
            0
        }
    };
    if !matches!(fields[rem_idx].1, Value::Array(_)) {
        fields[rem_idx].1 = Value::Array(Vec::new());
    }
    if let Value::Array(rems) = &mut fields[rem_idx].1 {
        rems.extend(entry.rem.iter().map(remark_value));
    }
    if let Some(len) = entry.len {
        // The first change sets the original length; an earlier one wins.
        if !fields.iter().any(|(k, _)| k.eq_str("len")) {
            fields.push((
                Str::Owned("len".into()),
                Value::Number(len.to_string().into()),
            ));
        }
    }
}
