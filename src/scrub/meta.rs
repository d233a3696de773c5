//! `_meta` remarks: which rule changed which value, how, and where in the new string.

use std::sync::Arc;

use super::json::{Str, Value};
use super::Method;

/// One segment of a `_meta` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaSeg {
    /// An object key.
    Key(String),
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
pub struct MetaLog {
    entries: Vec<(Vec<MetaSeg>, MetaEntry)>,
}

impl MetaLog {
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
    pub fn entry(&mut self, path: Vec<MetaSeg>) -> &mut MetaEntry {
        self.entries.push((path, MetaEntry::default()));
        let last = self.entries.len() - 1;
        &mut self.entries[last].1
    }

    /// Removes and returns the entries recorded after the first `at`.
    pub fn split_off(&mut self, at: usize) -> Vec<(Vec<MetaSeg>, MetaEntry)> {
        self.entries.split_off(at)
    }

    /// Moves the entries under `from` to `to`.
    pub fn rename(&mut self, from: &[MetaSeg], to: Vec<MetaSeg>) {
        for (p, _) in &mut self.entries {
            if p.starts_with(from) {
                let mut new = to.clone();
                new.extend_from_slice(&p[from.len()..]);
                *p = new;
            }
        }
    }

    /// Merges every entry into the event's `_meta` object (created when missing).
    pub fn merge_into(self, root: &mut Value<'_>) {
        if self.entries.is_empty() {
            return;
        }
        let Value::Object(entries) = root else {
            return;
        };
        let meta = match entries.iter().position(|(k, _)| k.eq_str("_meta")) {
            Some(i) => {
                if !matches!(entries[i].1, Value::Object(_)) {
                    entries[i].1 = Value::Object(Vec::new());
                }
                &mut entries[i].1
            }
            None => {
                entries.push((Str::Owned("_meta".into()), Value::Object(Vec::new())));
                let last = entries.len() - 1;
                &mut entries[last].1
            }
        };
        for (path, entry) in self.entries {
            let mut node = &mut *meta;
            for seg in &path {
                let key = match seg {
                    MetaSeg::Key(k) => k.clone(),
                    MetaSeg::Index(i) => i.to_string(),
                };
                node = child_object(node, &key);
            }
            let inner = child_object(node, "");
            merge_entry(inner, entry);
        }
    }
}

fn child_object<'v, 'a>(node: &'v mut Value<'a>, key: &str) -> &'v mut Value<'a> {
    if !matches!(node, Value::Object(_)) {
        *node = Value::Object(Vec::new());
    }
    let Value::Object(entries) = node else {
        unreachable!("just made an object")
    };
    let idx = match entries.iter().position(|(k, _)| k.eq_str(key)) {
        Some(i) => i,
        None => {
            entries.push((Str::Owned(key.to_string()), Value::Object(Vec::new())));
            entries.len() - 1
        }
    };
    let v = &mut entries[idx].1;
    if !matches!(v, Value::Object(_)) {
        *v = Value::Object(Vec::new());
    }
    v
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
