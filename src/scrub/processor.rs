//! The walker: visits every field of a parsed event once, with its schema attributes and
//! path, applies the rules whose selectors match, and records `_meta` remarks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use smallvec::SmallVec;

use super::builtin;
use super::json::{self, Bump, Entry, Str, Value};
use super::meta::{MetaEntry, MetaLog, MetaSeg, Remark, RemarkType};
use super::pairs::parse_pairs;
use super::redact::{apply_rule, ChunkedValue, KeyFacts};
use super::rules::{Application, RuleKind, RuleRef};
use super::schema::{self, NodeId, Pii, Schema, Types, ValueType};
use super::selector::Step;
use super::sig::{BuildSigHasher, SharedMemo, SigHasher, SHARED_MEMO_CAP};
use super::{Change, ScrubReport};

/// One entered level of the walk.
#[derive(Debug, Clone)]
struct Frame<'a> {
    /// Canonical key for selectors (`None` for array elements).
    key: Option<&'a str>,
    index: Option<usize>,
    types: Types,
    node: NodeId,
    /// The segment in `_meta` and reports; `None` for virtual levels.
    meta: Option<MetaSeg<'a>>,
    /// Signature of the selector-relevant path up to here (see [`Walker::app_mask`]).
    sig: u128,
    /// Hidden from selectors (while a `Cookie` header is scrubbed as `request.cookies`).
    hidden: bool,
}

impl Frame<'_> {
    /// A frame before its fields are set.
    fn blank() -> Self {
        Frame {
            key: None,
            index: None,
            types: Types::NONE,
            node: schema::ROOT,
            meta: None,
            sig: 0,
            hidden: false,
        }
    }
}

/// The entered levels, root first. Slots above the top are kept for reuse, and a push
/// sets a slot's fields one by one: a frame built whole and then moved into a `Vec` went
/// through the stack, written in pieces and copied in 16-byte loads, each of which
/// waited on a failed store-to-load forward (one per value walked).
#[derive(Default)]
struct FrameStack<'a> {
    slots: Vec<Frame<'a>>,
    len: usize,
}

impl<'a> FrameStack<'a> {
    #[inline(always)]
    fn push(&mut self, frame: Frame<'a>) {
        if self.len == self.slots.len() {
            self.slots.push(Frame::blank());
        }
        let Frame {
            key,
            index,
            types,
            node,
            meta,
            sig,
            hidden,
        } = frame;
        let slot = &mut self.slots[self.len];
        slot.key = key;
        slot.index = index;
        slot.types = types;
        slot.node = node;
        slot.meta = meta;
        slot.sig = sig;
        slot.hidden = hidden;
        self.len += 1;
    }

    /// Removes the top frame (its slot is kept).
    fn pop(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

impl<'a> std::ops::Deref for FrameStack<'a> {
    type Target = [Frame<'a>];

    fn deref(&self) -> &[Frame<'a>] {
        &self.slots[..self.len]
    }
}

impl<'a> std::ops::DerefMut for FrameStack<'a> {
    fn deref_mut(&mut self) -> &mut [Frame<'a>] {
        &mut self.slots[..self.len]
    }
}

/// One level of an incoming `_meta` path, with the event's value there (if any).
struct MetaStep<'e, 'a> {
    /// The `_meta` key.
    seg: &'a str,
    /// The index, when the event has an array here and the key is one.
    index: Option<usize>,
    /// The event's value at this level.
    at: Option<&'e Value<'a>>,
}

/// The `_meta` path of the value `frames` lead to.
fn meta_segs<'f, 'a>(frames: &'f [Frame<'a>]) -> impl Iterator<Item = MetaSeg<'a>> + 'f {
    frames.iter().filter_map(|f| f.meta.clone())
}

/// Walk options derived from the item kind.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    /// Move a no-longer-valid `user.ip_address` into `user.id` (events only).
    pub move_ip_to_user_id: bool,
    /// Fill [`Change::path`] (see [`super::ScrubOptions::record_paths`]).
    pub record_paths: bool,
}

/// Applies compiled applications to a tree.
pub struct Walker<'r, 'a> {
    apps: &'r [Application],
    /// The tree's arena, where new strings and containers go.
    bump: &'a Bump,
    schema: &'static Schema,
    frames: FrameStack<'a>,
    /// `_meta` entries recorded so far.
    pub meta: MetaLog<'a>,
    /// Changes for the report.
    pub report: ScrubReport,
    opts: WalkOptions,
    /// Set by `process_text` when a rule deleted the value.
    pending_delete: bool,
    /// Whether any selector names an array index (then indices are part of signatures).
    index_sensitive: bool,
    /// Path signature → what is known of that path, for this walk.
    memo: PathMemo,
    /// The matching applications, shared by every walk over these rules (bounded).
    shared_memo: Option<&'r SharedMemo>,
    /// Whether any rule is a `password` rule.
    needs_password_key: bool,
    /// Bit `i`: application `i` has a rule that can delete a container whatever the key
    /// (`anything`) or by its key (`redact_pair`).
    container_apps: u64,
    /// Bit `i`: application `i` has a `password` rule (which deletes a container under a
    /// password key).
    password_apps: u64,
}

enum Outcome {
    Keep,
    Delete,
}

/// Path facts by signature, for one rule set.
type PathMemo = std::collections::HashMap<u128, PathFacts, BuildSigHasher>;

/// Per-thread memos of the rule sets used last, most recent first: the facts of a path
/// shape depend only on the rules, so they carry over from event to event without the
/// shared memo's locks or a fresh table per event.
const THREAD_MEMOS: usize = 4;

/// Entries a per-thread memo may hold (a bound for events with ever new path shapes).
const THREAD_MEMO_CAP: usize = 1 << 14;

thread_local! {
    static MEMOS: std::cell::RefCell<Vec<(u64, PathMemo)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Applications whose matches are memoized as bits of a `u64` mask.
const MASK_APPS: usize = 64;

/// What depends only on a value's path signature, memoized per walk.
#[derive(Clone, Copy)]
struct PathFacts {
    /// Bit `i`: application `i` matches.
    mask: u64,
    /// Whether the leaf key is a `password` key, once asked.
    password_key: Option<bool>,
}

/// Bit `i` set when one of the first 64 applications' rules is of a kind `is_kind` picks.
fn app_bits(apps: &[Application], is_kind: impl Fn(&RuleKind) -> bool) -> u64 {
    apps.iter()
        .take(MASK_APPS)
        .enumerate()
        .filter(|(_, app)| app.rules.iter().any(|r| is_kind(&r.kind)))
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

fn json_types(v: &Value<'_>) -> Types {
    match v {
        Value::Null | Value::Raw(_) | Value::Serialized(_) => Types::NONE,
        Value::Bool(_) => Types::of(ValueType::Boolean),
        Value::Number(_) => Types::of(ValueType::Number),
        Value::Str(_) => Types::of(ValueType::String),
        Value::Array(_) => Types::of(ValueType::Array),
        Value::Object(_) => Types::of(ValueType::Object),
    }
}

impl<'r, 'a> Walker<'r, 'a> {
    /// A walker over the event schema.
    pub fn new(
        apps: &'r [Application],
        bump: &'a Bump,
        opts: WalkOptions,
        shared_memo: Option<&'r SharedMemo>,
    ) -> Self {
        Walker {
            apps,
            bump,
            schema: schema::event_schema(),
            frames: FrameStack::default(),
            meta: MetaLog::default(),
            report: ScrubReport::default(),
            opts,
            pending_delete: false,
            index_sensitive: apps.iter().any(|a| a.selector.names_index()),
            // Allocated on first use: most walks adopt their thread's memo instead.
            memo: PathMemo::with_hasher(BuildSigHasher),
            shared_memo,
            needs_password_key: apps
                .iter()
                .flat_map(|a| a.rules.iter())
                .any(|r| matches!(*r.kind, RuleKind::Password)),
            container_apps: app_bits(apps, |k| {
                matches!(k, RuleKind::Anything | RuleKind::RedactPair { .. })
            }),
            password_apps: app_bits(apps, |k| matches!(k, RuleKind::Password)),
        }
    }

    fn types_for(&self, node: NodeId, v: &Value<'_>) -> Types {
        let n = self.schema.node(node);
        match n.schema_type {
            Some(t) if matches!(v, Value::Object(_) | Value::Array(_)) => Types::of(t),
            _ if n.pairlist => Types::of(ValueType::Object),
            _ => json_types(v),
        }
    }

    /// Starts from this thread's memo for the rule set `rules_id` (see [`THREAD_MEMOS`]).
    /// `rules_id` must be unique to the rules this walker applies.
    pub fn adopt_thread_memo(&mut self, rules_id: u64) {
        let adopted = MEMOS.with(|memos| {
            let mut memos = memos.borrow_mut();
            let pos = memos.iter().position(|(id, _)| *id == rules_id)?;
            Some(memos.remove(pos).1)
        });
        if let Some(memo) = adopted {
            self.memo = memo;
        }
    }

    /// Hands the memo back to this thread for the next event with the same rules.
    pub fn return_thread_memo(&mut self, rules_id: u64) {
        let mut memo = std::mem::take(&mut self.memo);
        if memo.len() > THREAD_MEMO_CAP {
            memo.clear();
        }
        MEMOS.with(|memos| {
            let mut memos = memos.borrow_mut();
            memos.insert(0, (rules_id, memo));
            memos.truncate(THREAD_MEMOS);
        });
    }

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

    /// Pushes a frame, walks `v`, pops, and deletes `v` when a rule asked for it.
    #[inline(always)]
    fn enter(
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
        if let Outcome::Delete = self.walk(v) {
            *v = Value::Null;
        }
        self.frames.pop();
    }

    fn walk(&mut self, v: &mut Value<'a>) -> Outcome {
        let node_id = self.frames.last().map_or(schema::ROOT, |f| f.node);
        let node = self.schema.node(node_id);
        let pii = node.pii;
        if node.pairlist && pii != Pii::False {
            if let Value::Str(s) = v {
                // Relay sees these as pair-list containers first.
                if self.apply_to_container(pii) {
                    return Outcome::Delete;
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
                return Outcome::Keep;
            }
        }
        if let Value::Str(s) = v {
            if pii != Pii::False && self.is_cookie_header() {
                // The header as a whole first (a rule may target the `Cookie` key), then
                // each cookie.
                if let Some(new) = self.process_string(s, pii) {
                    *s = Str::Decoded(new);
                    return Outcome::Keep;
                }
                if self.take_delete() {
                    return Outcome::Delete;
                }
                return self.walk_cookie_header(s);
            }
        }
        match v {
            Value::Null | Value::Bool(_) | Value::Raw(_) | Value::Serialized(_) => Outcome::Keep,
            Value::Str(s) => {
                if pii == Pii::False {
                    return Outcome::Keep;
                }
                if node.native_path {
                    return self.walk_native_path(s, pii);
                }
                if let Some(new) = self.process_string(s, pii) {
                    *s = Str::Decoded(new);
                }
                if self.take_delete() {
                    Outcome::Delete
                } else {
                    Outcome::Keep
                }
            }
            Value::Number(n) if node.lenient_string && pii != Pii::False => {
                // Relay reads a number here as its string (`user.id: 42` is `"42"`).
                let text = n.to_string();
                let result = self.process_text_typed(&text, pii, Types::of(ValueType::String));
                if self.take_delete() {
                    return Outcome::Delete;
                }
                if let Some(new) = result {
                    *v = Value::text(new);
                }
                Outcome::Keep
            }
            Value::Number(_) => {
                if pii != Pii::False && self.apply_to_container(pii) {
                    return Outcome::Delete;
                }
                Outcome::Keep
            }
            Value::Array(items) => {
                if pii != Pii::False && self.apply_to_container(pii) {
                    return Outcome::Delete;
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
                Outcome::Keep
            }
            Value::Object(entries) => {
                if pii != Pii::False && self.apply_to_container(pii) {
                    return Outcome::Delete;
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
                    return Outcome::Keep;
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
                Outcome::Keep
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
                if let Outcome::Delete = self.walk(value) {
                    *value = Value::Null;
                }
                self.frames.pop();
                if self.meta.len() != before {
                    return;
                }
            }
        }
        for (i, item) in items.iter_mut().enumerate() {
            self.enter(None, Some(i), elem, Some(MetaSeg::Index(i)), item);
        }
    }

    /// The value of a `Cookie` header in `request.headers`.
    fn is_cookie_header(&self) -> bool {
        let is_cookie = |f: &Frame<'_>| f.key.is_some_and(|k| k.eq_ignore_ascii_case("cookie"));
        // The common case without walking the frames: the leaf is the last frame.
        if let Some(last) = self.frames.last() {
            if (last.key.is_some() || last.index.is_some()) && !is_cookie(last) {
                return false;
            }
        }
        let mut visible = self
            .frames
            .iter()
            .rev()
            .filter(|f| f.key.is_some() || f.index.is_some());
        // The leaf's key first: it rules out almost every value.
        let Some(leaf) = visible.next() else {
            return false;
        };
        if !is_cookie(leaf) {
            return false;
        }
        visible.next().is_some_and(|parent| {
            parent.key == Some("headers") && self.schema.node(parent.node).pairlist
        })
    }

    /// Relay moves the `Cookie` header into `request.cookies` before scrubbing; here the
    /// header stays a string, but its cookies are scrubbed exactly as `request.cookies.*`
    /// would be (sensitive session cookies included), and remarks point into the header.
    fn walk_cookie_header(&mut self, s: &mut Str<'a>) -> Outcome {
        let pairs = parse_pairs(self.bump, &s.decoded(), true);
        // Hide `headers` and `Cookie`; scrub under `<http>.cookies`.
        let n = self.frames.len();
        let visible: Vec<usize> = (0..n)
            .rev()
            .filter(|&i| self.frames[i].key.is_some() || self.frames[i].index.is_some())
            .take(2)
            .collect();
        for &i in &visible {
            self.frames[i].hidden = true;
        }
        let http = self
            .frames
            .iter()
            .rev()
            .find(|f| !f.hidden && (f.key.is_some() || f.index.is_some()))
            .map_or(schema::ROOT, |f| f.node);
        let cookies = self.schema.key_child(http, "cookies");
        let mut value_path = self.meta_path();
        self.push_virtual(Some("cookies"), None, Types::of(ValueType::Object), cookies);
        let before = self.meta.len();
        self.walk_pair_array(pairs, cookies);
        self.frames.pop();
        for &i in &visible {
            self.frames[i].hidden = false;
        }
        if self.meta.len() == before {
            return Outcome::Keep;
        }
        // Rebuild the header and move the cookies' remarks onto it.
        let moved = self.meta.split_off(before);
        // The cookies' entries by pair index (recorded in walk order; the sort is stable),
        // consumed as the header is rebuilt: one pass, however many cookies changed.
        let mut by_pair: Vec<(usize, &MetaEntry)> = moved
            .iter()
            .filter_map(
                |(path, e)| match path.len().checked_sub(2).map(|at| &path[at]) {
                    Some(MetaSeg::Index(i)) => Some((*i, e)),
                    _ => None,
                },
            )
            .collect();
        by_pair.sort_by_key(|&(i, _)| i);
        let mut by_pair = by_pair.into_iter().peekable();
        let mut header = String::new();
        let mut entry = MetaEntry::default();
        for (i, pair) in pairs.iter().enumerate() {
            let Value::Array(kv) = pair else { continue };
            let (Some(Value::Str(k)), Some(v)) = (kv.first(), kv.get(1)) else {
                continue;
            };
            let value = match v {
                Value::Str(v) => v.decoded().into_owned(),
                _ => String::new(),
            };
            if !header.is_empty() {
                header.push_str("; ");
            }
            header.push_str(&k.decoded());
            header.push('=');
            let offset = header.len();
            header.push_str(&value);
            while by_pair.peek().is_some_and(|&(at, _)| at < i) {
                by_pair.next();
            }
            while let Some((_, e)) = by_pair.next_if(|&(at, _)| at == i) {
                for r in &e.rem {
                    let mut r = r.clone();
                    r.range = r.range.map(|(a, b)| (a + offset, b + offset));
                    entry.rem.push(r);
                }
            }
        }
        entry.len = Some(s.decoded().chars().count());
        let e = self.meta.entry(std::mem::take(&mut value_path));
        *e = entry;
        *s = Str::Decoded(self.bump.alloc_str(&header));
        Outcome::Keep
    }

    /// A pair list in array form: `[[key, value], ...]`, addressed by key.
    fn walk_pair_array(&mut self, items: &mut [Value<'a>], node_id: NodeId) {
        let elem = self.schema.elem_child(node_id);
        for (i, item) in items.iter_mut().enumerate() {
            match item {
                Value::Array(pair) if pair.len() == 2 && matches!(pair[0], Value::Str(_)) => {
                    let key = match &pair[0] {
                        Value::Str(k) => k.text_in(self.bump),
                        _ => "",
                    };
                    let child = self.schema.key_child(node_id, key);
                    self.push_frame(Frame {
                        key: None,
                        index: None,
                        types: Types::NONE,
                        node: node_id,
                        meta: Some(MetaSeg::Index(i)),
                        sig: 0,
                        hidden: false,
                    });
                    self.enter(
                        Some(key),
                        None,
                        child,
                        Some(MetaSeg::Index(1)),
                        &mut pair[1],
                    );
                    self.frames.pop();
                }
                other => self.enter(None, Some(i), elem, Some(MetaSeg::Index(i)), other),
            }
        }
    }

    /// The matching applications (see [`Walker::app_mask`]) and whether the leaf's key
    /// is sensitive to the `password` rule, with one memo lookup when both are known. The
    /// key test is memoized by path signature too: it is case-insensitive, and signatures
    /// fold ASCII case.
    fn leaf_facts(&mut self, pii: Pii) -> (u64, bool) {
        let sig = self.frames.last().map_or(0, |f| f.sig);
        if let Some(facts) = self.memo.get(&sig) {
            match (self.needs_password_key, facts.password_key) {
                (false, _) => return (facts.mask, false),
                (true, Some(hit)) => return (facts.mask, hit),
                (true, None) => {}
            }
        }
        let mask = self.app_mask(pii);
        if !self.needs_password_key {
            return (mask, false);
        }
        let hit = self.any_app(mask) && builtin::password_key_matches(self.leaf_key());
        self.memo.insert(
            sig,
            PathFacts {
                mask,
                password_key: Some(hit),
            },
        );
        (mask, hit)
    }

    /// Whether any application may match, given the memoized `mask` of the first 64.
    fn any_app(&self, mask: u64) -> bool {
        mask != 0 || self.apps.len() > MASK_APPS
    }

    /// The indices of the applications matching the current value, in order: the set
    /// bits of `mask` for the first 64 (memoized), then the rest by evaluating their
    /// selectors (configs with more than 64 selectors are rare; they are slower, never
    /// wrong).
    fn matching_apps(&self, mask: u64, pii: Pii) -> impl Iterator<Item = usize> + '_ {
        let bits = std::iter::successors(Some(mask).filter(|&m| m != 0), |&m| {
            Some(m & (m - 1)).filter(|&m| m != 0)
        })
        .map(|m| m.trailing_zeros() as usize);
        let wide = (MASK_APPS..self.apps.len())
            .filter(move |&i| self.apps[i].selector.matches(pii, &self.steps()));
        bits.chain(wide)
    }

    /// Pushes a level that selectors see but `_meta` does not (the `values` of a legacy
    /// list, the `logentry` of a plain `message`, ...).
    fn push_virtual(
        &mut self,
        key: Option<&'static str>,
        index: Option<usize>,
        types: Types,
        node: NodeId,
    ) {
        self.push_frame(Frame {
            key,
            index,
            types,
            node,
            meta: None,
            sig: 0,
            hidden: false,
        });
    }

    /// Pushes a frame, computing its path signature from its parent's. Inlined, as is
    /// [`Walker::enter`], into the walk's loops: the frame is no longer built in one
    /// call's stack and copied through another's (about 1.5% of the default scrubbing's
    /// instructions).
    #[inline(always)]
    fn push_frame(&mut self, mut frame: Frame<'a>) {
        frame.sig = self.child_sig(frame.key, frame.index, frame.types, frame.node);
        self.frames.push(frame);
    }

    /// The path signature of a child of the current frame.
    fn child_sig(
        &self,
        key: Option<&str>,
        index: Option<usize>,
        types: Types,
        node: NodeId,
    ) -> u128 {
        let parent = self
            .frames
            .last()
            .map_or(0x9E37_79B9_7F4A_7C15_u128, |f| f.sig);
        if key.is_none() && index.is_none() {
            // Virtual levels are invisible to selectors.
            return parent;
        }
        let mut h = SigHasher::new(parent);
        match (key, index) {
            (Some(k), _) => {
                h.byte(1);
                h.key(k.as_bytes());
            }
            (None, Some(i)) => {
                h.byte(2);
                if self.index_sensitive {
                    h.u64(i as u64);
                }
            }
            (None, None) => {}
        }
        h.u64(u64::from(types.bits()) << 32 | u64::from(node));
        h.finish()
    }

    /// Bit `i` is set when application `i` matches the current value. Memoized by path
    /// signature: repeated shapes (frames, breadcrumbs, pairs) are evaluated once.
    fn app_mask(&mut self, pii: Pii) -> u64 {
        let sig = self.frames.last().map_or(0, |f| f.sig);
        if self.apps.len() <= MASK_APPS {
            if let Some(facts) = self.memo.get(&sig) {
                return facts.mask;
            }
            if let Some(mask) = self.shared_memo.and_then(|m| m.get(&sig).map(|m| *m)) {
                self.memo.insert(
                    sig,
                    PathFacts {
                        mask,
                        password_key: None,
                    },
                );
                return mask;
            }
        }
        let steps = self.steps();
        let mut mask = 0u64;
        for (i, app) in self.apps.iter().enumerate().take(MASK_APPS) {
            if app.selector.matches(pii, &steps) {
                mask |= 1 << i;
            }
        }
        drop(steps);
        self.memo.insert(
            sig,
            PathFacts {
                mask,
                password_key: None,
            },
        );
        if let Some(shared) = self.shared_memo {
            if shared.len() < SHARED_MEMO_CAP {
                shared.insert(sig, mask);
            }
        }
        mask
    }

    fn steps(&self) -> SmallVec<[Step<'_>; 16]> {
        self.frames
            .iter()
            .filter(|f| !f.hidden && (f.key.is_some() || f.index.is_some()))
            .map(|f| Step {
                key: f.key,
                index: f.index,
                types: f.types,
            })
            .collect()
    }

    fn leaf_key(&self) -> &str {
        self.frames.last().and_then(|f| f.key).unwrap_or("")
    }

    fn meta_path(&self) -> Vec<MetaSeg<'a>> {
        meta_segs(&self.frames).collect()
    }

    /// The dotted path of the current value for the report; empty unless paths are
    /// recorded.
    fn path_string(&self) -> String {
        let mut s = String::new();
        if !self.opts.record_paths {
            return s;
        }
        for seg in self.frames.iter().filter_map(|f| f.meta.as_ref()) {
            if !s.is_empty() {
                s.push('.');
            }
            match seg {
                MetaSeg::Key(k) => s.push_str(k),
                MetaSeg::Index(i) => s.push_str(&i.to_string()),
            }
        }
        s
    }

    /// Rules on a non-string value: only key-based and `anything` rules act, and they
    /// can only delete. Returns true when the value must be deleted.
    fn apply_to_container(&mut self, pii: Pii) -> bool {
        let apps = self.apps;
        let (mask, password_key) = self.leaf_facts(pii);
        if !self.any_app(mask) {
            return false;
        }
        // Most containers match only applications of value patterns, which never delete
        // a container.
        if self.apps.len() <= MASK_APPS
            && mask & self.container_apps == 0
            && !(password_key && mask & self.password_apps != 0)
        {
            return false;
        }
        let hit: Option<&RuleRef> = {
            let key = self.leaf_key();
            self.matching_apps(mask, pii)
                .flat_map(|i| apps[i].rules.iter())
                .find(|rule| match &*rule.kind {
                    RuleKind::Anything => true,
                    RuleKind::Password => password_key,
                    RuleKind::RedactPair { key: re } => re.is_match(key),
                    RuleKind::Builtin(_) | RuleKind::Regex { .. } => false,
                })
        };
        let Some(rule) = hit else {
            return false;
        };
        let origin = rule.origin.clone();
        self.meta.entry(meta_segs(&self.frames)).rem.push(Remark {
            rule: origin.clone(),
            ty: RemarkType::Removed,
            range: None,
        });
        let path = self.path_string();
        self.report.changes.push(Change {
            path,
            rule: origin.clone(),
            method: super::Method::Remove,
        });
        true
    }

    fn take_delete(&mut self) -> bool {
        std::mem::take(&mut self.pending_delete)
    }

    /// Applies the matching rules to a string. Returns the new text when it changed;
    /// sets the pending-delete flag when a rule deletes the value.
    fn process_string(&mut self, s: &Str<'a>, pii: Pii) -> Option<&'a str> {
        let text = s.decoded();
        if matches!(text.as_ref(), "" | "true" | "false" | "null" | "undefined") {
            return None;
        }
        self.process_text(&text, pii)
    }

    /// [`Walker::process_text`] with the leaf's types set to `types`.
    fn process_text_typed(&mut self, text: &str, pii: Pii, types: Types) -> Option<&'a str> {
        let saved = self.frames.last().map(|f| (f.types, f.sig));
        if let Some(f) = self.frames.last_mut() {
            f.types = types;
            f.sig ^= 0x5bd1_e995_u128 << 64 | u128::from(types.bits());
        }
        let result = self.process_text(text, pii);
        if let (Some(f), Some((t, sig))) = (self.frames.last_mut(), saved) {
            f.types = t;
            f.sig = sig;
        }
        result
    }

    /// Applies the matching rules to `text`. Returns the new text (in the tree's arena)
    /// when it changed; sets the pending-delete flag when a rule deletes the value.
    fn process_text(&mut self, text: &str, pii: Pii) -> Option<&'a str> {
        let (mask, password_key) = self.leaf_facts(pii);
        if !self.any_app(mask) {
            return None;
        }
        let mut value = ChunkedValue::new(text);
        let mut deleted_by: Option<std::sync::Arc<str>> = None;
        // One pass over the bytes feeds every built-in pattern's prefilter. Computed on
        // the original text: redactions only remove characters, so it stays conservative.
        let features = builtin::Features::scan(text);
        let key_facts = KeyFacts {
            password: password_key,
        };
        {
            let key = self.leaf_key();
            'apps: for i in self.matching_apps(mask, pii) {
                for rule in &self.apps[i].rules {
                    if apply_rule(rule, key, &key_facts, &mut value, &features).is_err() {
                        deleted_by = Some(rule.origin.clone());
                        break 'apps;
                    }
                }
            }
        }
        if !value.changed && deleted_by.is_none() {
            return None;
        }
        let (new_text, remarks) = value.join_in(self.bump);
        if deleted_by.is_none() && new_text == text {
            // Like Relay, a redaction that leaves the value as it was is not a change
            // (this keeps scrubbing idempotent: `[Filtered]` stays `[Filtered]`).
            return None;
        }
        let path_str = self.path_string();
        let original_len = text.chars().count();
        let entry = self.meta.entry(meta_segs(&self.frames));
        for r in &remarks {
            self.report.changes.push(Change {
                path: path_str.clone(),
                rule: r.rule.clone(),
                method: r.ty.method(),
            });
        }
        // A fresh entry: this value's remarks and its original length.
        entry.rem = remarks;
        entry.len = Some(original_len);
        if let Some(origin) = deleted_by {
            entry.rem.push(Remark {
                rule: origin.clone(),
                ty: RemarkType::Removed,
                range: None,
            });
            self.report.changes.push(Change {
                path: path_str,
                rule: origin.clone(),
                method: super::Method::Remove,
            });
            self.pending_delete = true;
            return None;
        }
        Some(new_text)
    }

    /// Debug image paths keep their basename; only the directory part is scrubbed.
    fn walk_native_path(&mut self, s: &mut Str<'a>, pii: Pii) -> Outcome {
        let text = s.decoded().into_owned();
        let Some(idx) = text.rfind(['/', '\\']) else {
            return Outcome::Keep;
        };
        let (dir, base) = text.split_at(idx);
        if matches!(dir, "" | "true" | "false" | "null" | "undefined") {
            return Outcome::Keep;
        }
        let result = self.process_text(dir, pii);
        if self.take_delete() {
            *s = Str::Decoded(self.bump.alloc_str(&base[1..]));
            return Outcome::Keep;
        }
        if let Some(new_dir) = result {
            *s =
                Str::Decoded(bumpalo::format!(in self.bump, "{}{}", new_dir, base).into_bump_str());
        }
        Outcome::Keep
    }

    fn move_ip_to_user_id(&mut self, entries: &mut &'a mut [Entry<'a>], before: IpState) {
        if before == IpState::Invalid {
            return;
        }
        let has_other = entries.iter().any(|(k, v)| {
            !matches!(v, Value::Null)
                && (k.eq_str("id") || k.eq_str("username") || k.eq_str("email"))
        });
        if has_other || ip_state(entries) != IpState::Invalid {
            return;
        }
        // The IP is no longer an IP (hashed or replaced): it becomes the user id, so
        // users-affected counts keep working.
        let Some(pos) = entries.iter().position(|(k, _)| k.eq_str("ip_address")) else {
            return;
        };
        entries[pos].0 = Str::Decoded("id");
        let mut from = self.meta_path();
        from.push(MetaSeg::Key(Cow::Borrowed("ip_address")));
        let mut to = self.meta_path();
        to.push(MetaSeg::Key(Cow::Borrowed("id")));
        self.meta.rename(&from, &to);
        // A null `id` that was already there is superseded.
        if let Some(i) = entries
            .iter()
            .enumerate()
            .position(|(i, (k, _))| i != pos && k.eq_str("id"))
        {
            json::remove(entries, i);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpState {
    /// Absent, null or a valid IP.
    Valid,
    /// Present and not an IP.
    Invalid,
}

fn ip_state(entries: &[Entry<'_>]) -> IpState {
    match entries.iter().find(|(k, _)| k.eq_str("ip_address")) {
        None | Some((_, Value::Null)) => IpState::Valid,
        Some((_, Value::Str(s))) => {
            let t = s.decoded();
            if t == "{{auto}}" || t.parse::<IpAddr>().is_ok() {
                IpState::Valid
            } else {
                IpState::Invalid
            }
        }
        Some(_) => IpState::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(key: &str, hidden: bool) -> Frame<'_> {
        Frame {
            key: Some(key),
            hidden,
            ..Frame::blank()
        }
    }

    #[test]
    fn frame_stack_reuses_slots_with_every_field_fresh() {
        let mut stack = FrameStack::default();
        stack.push(frame("a", false));
        stack.push(frame("b", true));
        stack[1].sig = 7;
        assert_eq!(stack.len(), 2);
        stack.pop();
        assert_eq!(stack.len(), 1);
        // The reused slot takes all of the new frame, nothing of the old one.
        stack.push(frame("c", false));
        assert_eq!(stack[1].key, Some("c"));
        assert!(!stack[1].hidden);
        assert_eq!(stack[1].sig, 0);
        let keys: Vec<_> = stack.iter().filter_map(|f| f.key).collect();
        assert_eq!(keys, ["a", "c"]);
        stack.clear();
        assert!(stack.is_empty());
        stack.pop();
        assert!(stack.is_empty());
    }
}
