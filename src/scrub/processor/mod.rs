//! The walker: visits every field of a parsed event once, with its schema attributes and
//! path, applies the rules whose selectors match, and records `_meta` remarks.
//!
//! The walk itself is in `walk`; `frames` keeps the entered levels and their path
//! signatures, `memo` what is known of a path shape, `apply` runs the rules on a value,
//! `special` handles the fields Relay treats specially (cookie headers, pair lists, native
//! paths, the user's IP) and `originals` the original values an incoming `_meta` carries.

use super::json::{Bump, Value};
use super::meta::MetaLog;
use super::rules::{Application, RuleKind};
use super::schema::{NodeId, Schema, Types, ValueType};
use super::sig::{BuildSigHasher, SharedMemo};
use super::ScrubReport;

mod apply;
mod frames;
mod memo;
mod originals;
mod special;
mod walk;

use frames::FrameStack;
use memo::{app_bits, PathMemo};

/// Walk options derived from the item kind.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    /// Move a no-longer-valid `user.ip_address` into `user.id` (events only).
    pub move_ip_to_user_id: bool,
    /// Fill [`Change::path`](super::Change::path) (see [`super::ScrubOptions::record_paths`]).
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

/// What a walk decides for the value it walked: keep it, or delete it from its parent.
enum Verdict {
    Keep,
    Delete,
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

/// What a walker needs to know of its rule set, worked out once per rule set (a walker is
/// made per event and per span or log record).
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleFacts {
    index_sensitive: bool,
    needs_password_key: bool,
    container_apps: u64,
    password_apps: u64,
}

impl RuleFacts {
    /// The facts of `apps`.
    pub fn of(apps: &[Application]) -> RuleFacts {
        RuleFacts {
            index_sensitive: apps.iter().any(|a| a.selector.names_index()),
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
}

impl<'r, 'a> Walker<'r, 'a> {
    /// A walker over `schema` (an event's, or another item's); `facts` are
    /// [`RuleFacts::of`] `apps`.
    pub fn new(
        apps: &'r [Application],
        facts: RuleFacts,
        bump: &'a Bump,
        opts: WalkOptions,
        shared_memo: Option<&'r SharedMemo>,
        schema: &'static Schema,
    ) -> Self {
        Walker {
            apps,
            bump,
            schema,
            frames: FrameStack::default(),
            meta: MetaLog::default(),
            report: ScrubReport::default(),
            opts,
            pending_delete: false,
            index_sensitive: facts.index_sensitive,
            // Allocated on first use: most walks adopt their thread's memo instead.
            memo: PathMemo::with_hasher(BuildSigHasher),
            shared_memo,
            needs_password_key: facts.needs_password_key,
            container_apps: facts.container_apps,
            password_apps: facts.password_apps,
        }
    }

    /// Walks one record (a span, a log, a profile, ...) from the schema's root `node`;
    /// `_meta` paths start inside it.
    ///
    /// A record whose node has a protocol type (`$span`, `$log`, `$trace_metric`) is
    /// entered as Relay enters it (`ProcessingState::root().enter_borrowed("", None,
    /// [type])`): as a level with an empty key and that type, which selectors see, so
    /// `$log.body` or `$span.attributes.*.value` match the record's own fields as
    /// `$http.url` matches an event's `request.url`. The level has no `_meta` segment and
    /// the record's node is pii `false`, so no rule acts on the record as a whole.
    /// Records typed only `$object` (profiles, OTLP items) have no such level, as before.
    pub fn walk_record(&mut self, record: &mut Value<'a>, node: NodeId) {
        let key = match self.schema.node(node).schema_type {
            Some(ty) if !ty.is_basic() => Some(""),
            _ => None,
        };
        self.enter(key, None, node, None, record);
    }

    /// Walks one free-text value under `key` as a pii `true` field of its own (a replay
    /// recording's text and attribute values): `$string`-level rules and those naming
    /// `key` reach it. Returns false when a rule removed it.
    pub fn walk_text(&mut self, key: &'a str, value: &mut Value<'a>) -> bool {
        self.enter(Some(key), None, super::schema::INHERIT_TRUE, None, value);
        !matches!(value, Value::Null)
    }

    fn types_for(&self, node: NodeId, v: &Value<'_>) -> Types {
        let n = self.schema.node(node);
        match n.schema_type {
            Some(t) if matches!(v, Value::Object(_) | Value::Array(_)) => Types::of(t),
            _ if n.pairlist => Types::of(ValueType::Object),
            _ => json_types(v),
        }
    }
}
