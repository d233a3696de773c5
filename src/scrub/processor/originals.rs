//! The original values (`val`) an incoming `_meta` carries: each is scrubbed with the
//! rules of the event field it belongs to.

use std::borrow::Cow;
use std::collections::HashMap;

use super::frames::Frame;
use super::Walker;
use crate::scrub::json::{self, Value};
use crate::scrub::schema::{self, Pii, Types, ValueType};

/// One level of an incoming `_meta` path, with the event's value there (if any).
struct MetaStep<'e, 'a> {
    /// The `_meta` key.
    seg: &'a str,
    /// The index, when the event has an array here and the key is one.
    index: Option<usize>,
    /// The event's value at this level.
    at: Option<&'e Value<'a>>,
}

impl<'r, 'a> Walker<'r, 'a> {
    /// Scrubs the original values (`val`) an incoming `_meta` carries, with the rules of
    /// the field they belong to; a value a rule deletes is dropped. No remarks are added
    /// for them (as in Relay).
    pub fn scrub_meta_originals(&mut self, root: &mut Value<'a>) {
        let Some(entries) = root.as_object_mut() else {
            return;
        };
        let Some(pos) = entries.iter().position(|(k, _)| k.eq_str("_meta")) else {
            return;
        };
        let mut meta = std::mem::replace(&mut entries[pos].1, Value::Null);
        let mut path = Vec::new();
        self.meta_originals(&mut meta, Some(root), &mut path);
        if let Some(entries) = root.as_object_mut() {
            entries[pos].1 = meta;
        }
    }

    /// Visits the `_meta` object `meta`, whose path is `path`, where `at` is the event's
    /// value at that path (if any).
    fn meta_originals<'e>(
        &mut self,
        meta: &mut Value<'a>,
        at: Option<&'e Value<'a>>,
        path: &mut Vec<MetaStep<'e, 'a>>,
    ) {
        let Value::Object(entries) = meta else {
            return;
        };
        // Large objects are matched to the event's through an index: a lookup by
        // position per key would make an incoming `_meta` as wide as its object quadratic.
        let index: Option<HashMap<Cow<'a, str>, &'e Value<'a>>> = match at {
            Some(Value::Object(fields)) if entries.len() > 8 => {
                let mut index = HashMap::with_capacity(fields.len());
                for (k, v) in fields.iter() {
                    index.entry(k.decoded()).or_insert(v);
                }
                Some(index)
            }
            _ => None,
        };
        for (k, child) in entries.iter_mut() {
            let key = k.text_in(self.bump);
            if key.is_empty() {
                self.scrub_original(child, path);
                continue;
            }
            let step = match (at, key.parse::<usize>()) {
                (Some(Value::Array(items)), Ok(i)) => MetaStep {
                    at: items.get(i),
                    index: Some(i),
                    seg: key,
                },
                _ => MetaStep {
                    at: match &index {
                        Some(index) => index.get(key).copied(),
                        None => at.and_then(|v| v.get(key)),
                    },
                    index: None,
                    seg: key,
                },
            };
            let next = step.at;
            path.push(step);
            self.meta_originals(child, next, path);
            path.pop();
        }
    }

    fn scrub_original(&mut self, inner: &mut Value<'a>, path: &[MetaStep<'_, 'a>]) {
        let Some(fields) = inner.as_object_mut() else {
            return;
        };
        let Some(pos) = fields.iter().position(|(k, _)| k.eq_str("val")) else {
            return;
        };
        let Value::Str(val) = &fields[pos].1 else {
            return;
        };
        // Rebuild the field's frames from the schema, following the event for indices.
        self.frames.clear();
        let mut node = schema::ROOT;
        for (depth, step) in path.iter().enumerate() {
            let (key, next_node) = match step.index {
                Some(_) => (None, self.schema.elem_child(node)),
                None => {
                    let canonical = if depth == 0 {
                        schema::canonical_top_level_key(step.seg)
                    } else {
                        step.seg
                    };
                    (Some(canonical), self.schema.key_child(node, canonical))
                }
            };
            let types = match step.at {
                Some(v) if depth + 1 < path.len() => self.types_for(next_node, v),
                _ => Types::of(ValueType::String),
            };
            self.push_frame(Frame {
                key,
                index: step.index,
                types,
                node: next_node,
                meta: None,
                sig: 0,
                hidden: false,
            });
            node = next_node;
        }
        let pii = self.schema.node(node).pii;
        if pii == Pii::False {
            self.frames.clear();
            return;
        }
        let (meta_before, report_before) = (self.meta.len(), self.report.changes.len());
        let text = val.decoded().into_owned();
        let result = self.process_text(&text, pii);
        self.meta.split_off(meta_before);
        self.report.changes.truncate(report_before);
        if self.take_delete() {
            json::remove(fields, pos);
        } else if let Some(new) = result {
            fields[pos].1 = Value::text(new);
        }
        self.frames.clear();
    }
}
