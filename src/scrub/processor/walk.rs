//! The walk: the event root, then each value with its schema node, dispatching strings,
//! containers and the special fields.

use std::borrow::Cow;

use super::frames::Frame;
use super::special::ip_state;
use super::{Verdict, Walker};
use crate::scrub::json::{Entry, Str, Value};
use crate::scrub::meta::MetaSeg;
use crate::scrub::pairs::parse_pairs;
use crate::scrub::schema::{self, NodeId, Pii, Types, ValueType};

impl<'r, 'a> Walker<'r, 'a> {
    /// Walks the event root.
    pub fn walk_root(&mut self, root: &mut Value<'a>) {
        let Value::Object(entries) = root else {
            return;
        };
        for (k, v) in entries.iter_mut() {
            let key = k.text_in(self.bump);
            if key == "_meta" {
                continue;
            }
            let canonical: &'a str = match schema::canonical_top_level_key(key) {
                c if c == key => key,
                c => self.bump.alloc_str(c),
            };
            let seg = MetaSeg::Key(Cow::Borrowed(key));
            let plain_message = match canonical {
                "message" => !matches!(v, Value::Object(_)),
                // Relay also reads a string `logentry` as its formatted message.
                "logentry" => matches!(v, Value::Str(_)),
                _ => false,
            };
            if plain_message {
                // A plain `message` is the event's formatted log message.
                let logentry = self.schema.key_child(schema::ROOT, "logentry");
                self.push_virtual(
                    Some("logentry"),
                    None,
                    Types::of(ValueType::LogEntry),
                    logentry,
                );
                let node = self.schema.key_child(logentry, "formatted");
                self.enter(Some("formatted"), None, node, Some(seg), v);
                self.frames.pop();
                continue;
            }
            let node = self
                .schema
                .top_level_child(key, matches!(v, Value::Object(_)));
            let canonical = if canonical == "message" {
                "logentry"
            } else {
                canonical
            };
            if self.schema.node(node).dead {
                continue;
            }
            self.enter(Some(canonical), None, node, Some(seg), v);
        }
    }

    /// Pushes a frame, walks `v`, pops, and deletes `v` when a rule asked for it.
    #[inline(always)]
    pub(super) fn enter(
        &mut self,
        key: Option<&'a str>,
        index: Option<usize>,
        node: NodeId,
        meta: Option<MetaSeg<'a>>,
        v: &mut Value<'a>,
    ) {
        let types = self.types_for(node, v);
        self.push_frame(Frame {
            key,
            index,
            types,
            node,
            meta,
            sig: 0,
            hidden: false,
        });
        if let Verdict::Delete = self.walk(v) {
            *v = Value::Null;
        }
        self.frames.pop();
    }

    fn walk(&mut self, v: &mut Value<'a>) -> Verdict {
        let node_id = self.frames.last().map_or(schema::ROOT, |f| f.node);
        let node = self.schema.node(node_id);
        let pii = node.pii;
        if node.pairlist && pii != Pii::False {
            if let Value::Str(s) = v {
                // Relay sees these as pair-list containers first.
                if self.apply_to_container(pii) {
                    return Verdict::Delete;
                }
                // `a=b&c=d` query strings and `a=b; c=d` cookie headers are pair lists:
                // scrubbed per key, and written back as pairs only when something changed.
                let is_cookies = self.leaf_key().eq_ignore_ascii_case("cookies");
                let pairs = parse_pairs(self.bump, &s.decoded(), is_cookies);
                let before = self.meta.len();
                self.walk_pair_array(pairs, node_id);
                if self.meta.len() != before {
                    *v = Value::Array(pairs);
                }
                return Verdict::Keep;
            }
        }
        if let Value::Str(s) = v {
            if pii != Pii::False && self.is_cookie_header() {
                // The header as a whole first (a rule may target the `Cookie` key), then
                // each cookie.
                if let Some(new) = self.process_string(s, pii) {
                    *s = Str::Decoded(new);
                    return Verdict::Keep;
                }
                if self.take_delete() {
                    return Verdict::Delete;
                }
                return self.walk_cookie_header(s);
            }
        }
        match v {
            Value::Null | Value::Bool(_) | Value::Raw(_) | Value::Serialized(_) => Verdict::Keep,
            Value::Str(s) => {
                if pii == Pii::False {
                    return Verdict::Keep;
                }
                if node.native_path {
                    return self.walk_native_path(s, pii);
                }
                if let Some(new) = self.process_string(s, pii) {
                    *s = Str::Decoded(new);
                }
                if self.take_delete() {
                    Verdict::Delete
                } else {
                    Verdict::Keep
                }
            }
            Value::Number(n) if node.lenient_string && pii != Pii::False => {
                // Relay reads a number here as its string (`user.id: 42` is `"42"`).
                let text = n.to_string();
                let result = self.process_text_typed(&text, pii, Types::of(ValueType::String));
                if self.take_delete() {
                    return Verdict::Delete;
                }
                if let Some(new) = result {
                    *v = Value::text(new);
                }
                Verdict::Keep
            }
            Value::Number(_) => {
                if pii != Pii::False && self.apply_to_container(pii) {
                    return Verdict::Delete;
                }
                Verdict::Keep
            }
            Value::Array(items) => {
                if pii != Pii::False && self.apply_to_container(pii) {
                    return Verdict::Delete;
                }
                if node.pairlist {
                    self.walk_pair_array(items, node_id);
                } else if node.values_wrapper {
                    // Legacy bare array form of `exception`, `breadcrumbs`, `threads`.
                    let values = self.schema.values_child(node_id);
                    self.push_virtual(Some("values"), None, Types::of(ValueType::Array), values);
                    self.walk_array(items, values);
                    self.frames.pop();
                } else {
                    self.walk_array(items, node_id);
                }
                Verdict::Keep
            }
            Value::Object(entries) => {
                if pii != Pii::False && self.apply_to_container(pii) {
                    return Verdict::Delete;
                }
                if node.values_wrapper && !entries.iter().any(|(k, _)| k.eq_str("values")) {
                    // A single item where a list is expected (`"exception": {"type": …}`)
                    // is read by Relay as `values: [item]`: scrub it as that item.
                    let values = self.schema.values_child(node_id);
                    let elem = self.schema.elem_child(values);
                    self.push_virtual(Some("values"), None, Types::of(ValueType::Array), values);
                    let types = self.types_for(elem, v);
                    self.push_virtual(None, Some(0), types, elem);
                    if let Value::Object(entries) = v {
                        self.walk_entries(entries, elem);
                    }
                    self.frames.pop();
                    self.frames.pop();
                    return Verdict::Keep;
                }
                let is_user = node.schema_type == Some(ValueType::User);
                let ip_before = if is_user && self.opts.move_ip_to_user_id {
                    Some(ip_state(entries))
                } else {
                    None
                };
                self.walk_entries(entries, node_id);
                if let Some(before) = ip_before {
                    self.move_ip_to_user_id(entries, before);
                }
                Verdict::Keep
            }
        }
    }

    /// Walks the fields of an object whose schema node is `node_id`.
    fn walk_entries(&mut self, entries: &mut [Entry<'a>], node_id: NodeId) {
        let contexts = node_id == self.schema.contexts();
        for (k, child) in entries.iter_mut() {
            let key = k.text_in(self.bump);
            let child_node = if contexts {
                let ty = child
                    .get("type")
                    .and_then(|t| t.as_str().map(Cow::into_owned));
                self.schema.context_child(key, ty.as_deref())
            } else {
                k.hinted_child(node_id)
                    .unwrap_or_else(|| self.schema.key_child(node_id, key))
            };
            if self.schema.node(child_node).dead {
                // Nothing at or below this field can be scrubbed.
                continue;
            }
            let seg = MetaSeg::Key(Cow::Borrowed(key));
            self.enter(Some(key), None, child_node, Some(seg), child);
        }
    }

    fn walk_array(&mut self, items: &mut [Value<'a>], node_id: NodeId) {
        let elem = self.schema.elem_child(node_id);
        if self.schema.node(elem).dead {
            return;
        }
        // Two-element arrays are first tried as a `[key, value]` pair; only if that
        // scrubs nothing are the elements processed one by one (Relay's heuristic).
        // When the pair scrubbed its value, the first element is still scrubbed on its
        // own: it is text as well as a key (`["connection from 10.1.2.3", "token"]`),
        // and Relay scrubs it.
        let mut pair_scrubbed = false;
        if let [Value::Str(k), value] = items {
            if !matches!(value, Value::Null) {
                let key = k.text_in(self.bump);
                let before = self.meta.len();
                let node = elem;
                let types = self.types_for(node, value);
                self.push_frame(Frame {
                    key: Some(key),
                    index: None,
                    types,
                    node,
                    meta: Some(MetaSeg::Index(1)),
                    sig: 0,
                    hidden: false,
                });
                if let Verdict::Delete = self.walk(value) {
                    *value = Value::Null;
                }
                self.frames.pop();
                pair_scrubbed = self.meta.len() != before;
            }
        }
        if pair_scrubbed {
            self.enter(None, Some(0), elem, Some(MetaSeg::Index(0)), &mut items[0]);
            return;
        }
        for (i, item) in items.iter_mut().enumerate() {
            self.enter(None, Some(i), elem, Some(MetaSeg::Index(i)), item);
        }
    }
}
