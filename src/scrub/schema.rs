//! The event schema as far as scrubbing cares: each field's pii attribute
//! (`true` / `maybe` / `false`), whether its children inherit it, and which protocol
//! type (`$user`, `$frame`, ...) it is.
//!
//! Built once from `pii-fields.tsv` (derived from Relay's event schema; see the file's
//! header) into a small arena tree.

use std::sync::LazyLock;

/// The pii attribute of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pii {
    /// Never scrubbed.
    False,
    /// Only scrubbed by selectors that name it.
    Maybe,
    /// Scrubbed by every matching selector.
    True,
}

impl Pii {
    /// Reads a table's pii column (`true`, `maybe`, `false`).
    fn from_name(name: &str) -> Option<Pii> {
        match name {
            "true" => Some(Pii::True),
            "maybe" => Some(Pii::Maybe),
            "false" => Some(Pii::False),
            _ => None,
        }
    }
}

/// A value type a `$type` selector item can name, in the order Relay declares them (which
/// orders selectors, and so applications).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ValueType {
    /// `$string`
    String,
    /// `$binary`
    Binary,
    /// `$number`
    Number,
    /// `$boolean`
    Boolean,
    /// `$datetime`
    DateTime,
    /// `$array`
    Array,
    /// `$object`
    Object,
    /// `$event`
    Event,
    /// `$attachments`
    Attachments,
    /// `$replay`
    Replay,
    /// `$error` / `$exception`
    Exception,
    /// `$stack` / `$stacktrace`
    Stacktrace,
    /// `$frame`
    Frame,
    /// `$http` / `$request`
    Request,
    /// `$user`
    User,
    /// `$logentry`
    LogEntry,
    /// `$message`
    Message,
    /// `$thread`
    Thread,
    /// `$breadcrumb`
    Breadcrumb,
    /// `$log`
    Log,
    /// `$trace_metric`
    TraceMetric,
    /// `$span`
    Span,
    /// `$sdk`
    Sdk,
    /// `$minidump`
    Minidump,
    /// `$heap_memory`
    HeapMemory,
    /// `$stack_memory`
    StackMemory,
}

impl ValueType {
    /// Parses a selector type name (without `$`).
    pub fn from_name(name: &str) -> Option<ValueType> {
        Some(match name {
            "string" => ValueType::String,
            "binary" => ValueType::Binary,
            "number" => ValueType::Number,
            "boolean" | "bool" => ValueType::Boolean,
            "datetime" => ValueType::DateTime,
            "array" | "list" => ValueType::Array,
            "object" => ValueType::Object,
            "event" => ValueType::Event,
            "attachments" => ValueType::Attachments,
            "replay" => ValueType::Replay,
            "error" | "exception" => ValueType::Exception,
            "stack" | "stacktrace" => ValueType::Stacktrace,
            "frame" => ValueType::Frame,
            "http" | "request" => ValueType::Request,
            "user" => ValueType::User,
            "logentry" => ValueType::LogEntry,
            "message" => ValueType::Message,
            "thread" => ValueType::Thread,
            "breadcrumb" => ValueType::Breadcrumb,
            "log" => ValueType::Log,
            "trace_metric" => ValueType::TraceMetric,
            "span" => ValueType::Span,
            "sdk" => ValueType::Sdk,
            "minidump" => ValueType::Minidump,
            "heap_memory" => ValueType::HeapMemory,
            "stack_memory" => ValueType::StackMemory,
            _ => return None,
        })
    }

    /// Basic (JSON-level) types cannot be part of a specific selector for `maybe` fields.
    pub fn is_basic(self) -> bool {
        matches!(
            self,
            ValueType::String
                | ValueType::Binary
                | ValueType::Number
                | ValueType::Boolean
                | ValueType::DateTime
                | ValueType::Array
                | ValueType::Object
        )
    }
}

/// A set of [`ValueType`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Types(u32);

impl Types {
    /// The empty set.
    pub const NONE: Types = Types(0);

    /// A set of one type.
    pub const fn of(ty: ValueType) -> Types {
        Types(1 << ty as u8)
    }

    /// The set plus `ty`.
    pub const fn with(self, ty: ValueType) -> Types {
        Types(self.0 | (1 << ty as u8))
    }

    /// The raw bits (for hashing).
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether the set contains `ty`.
    pub fn contains(self, ty: ValueType) -> bool {
        self.0 & (1 << ty as u8) != 0
    }
}

/// Index of a node in the schema arena.
pub type NodeId = u32;

/// One schema field.
#[derive(Debug, Clone)]
pub struct Node {
    /// The field's pii attribute.
    pub pii: Pii,
    /// Whether unknown children inherit `pii`.
    pub inherits: bool,
    /// A key/value pair list (headers, cookies, query string, tags).
    pub pairlist: bool,
    /// A `Values` wrapper (`exception`, `breadcrumbs`, `threads`) that may come as a
    /// bare array meaning `.values`.
    pub values_wrapper: bool,
    /// The protocol type of a structured field.
    pub schema_type: Option<ValueType>,
    /// A native image path: only the directory part may be scrubbed.
    pub native_path: bool,
    /// A string field that also accepts numbers (read as their text).
    pub lenient_string: bool,
    /// No field at or below this one can ever be scrubbed (all pii `false`).
    pub dead: bool,
    children: ChildMap,
    any: Option<NodeId>,
    elem: Option<NodeId>,
    other: Option<NodeId>,
}

impl Node {
    fn new(pii: Pii, inherits: bool) -> Node {
        Node {
            pii,
            inherits,
            pairlist: false,
            values_wrapper: false,
            schema_type: None,
            native_path: false,
            lenient_string: false,
            dead: false,
            children: ChildMap::default(),
            any: None,
            elem: None,
            other: None,
        }
    }
}

/// The named children of a node: an open-addressed table keyed by field name. The
/// lookup runs for every key of every event (about 400,000 times over the corpus), so a
/// slot keeps the name's length and first eight bytes: most probes are settled by two
/// integer compares, without hashing the whole name or calling `memcmp`.
#[derive(Debug, Default, Clone)]
pub struct ChildMap {
    /// A power of two of slots (or none), at most half full.
    slots: Vec<ChildSlot>,
    len: usize,
}

#[derive(Debug, Clone)]
struct ChildSlot {
    /// The name's length; `u32::MAX` marks an empty slot.
    len: u32,
    /// The name's first eight bytes, little-endian, zero-padded.
    head: u64,
    id: NodeId,
    name: Box<str>,
}

impl ChildSlot {
    fn empty() -> ChildSlot {
        ChildSlot {
            len: u32::MAX,
            head: 0,
            id: 0,
            name: Box::default(),
        }
    }
}

impl ChildMap {
    #[inline]
    /// The first slot to probe for `name` (whose first eight bytes are `head`). The
    /// last eight bytes count too: many names share a prefix (`sentry.`, `http.request.`).
    fn slot_of(&self, name: &[u8], head: u64) -> usize {
        let tail = if name.len() > 8 {
            super::sig::load_le_padded(&name[name.len() - 8..])
        } else {
            0
        };
        let h = (head ^ (name.len() as u64).rotate_left(56)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ tail.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & (self.slots.len() - 1)
    }

    /// The child named `key`.
    #[inline]
    pub fn get(&self, key: &str) -> Option<NodeId> {
        if self.len == 0 {
            return None;
        }
        let b = key.as_bytes();
        let head = super::sig::load_le_padded(b);
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(b, head);
        loop {
            let slot = &self.slots[i];
            if slot.len == u32::MAX {
                return None;
            }
            if slot.len as usize == b.len()
                && slot.head == head
                && (b.len() <= 8 || slot.name.as_bytes()[8..] == b[8..])
            {
                return Some(slot.id);
            }
            i = (i + 1) & mask;
        }
    }

    /// Adds (or replaces) the child `key`.
    pub fn insert(&mut self, key: Box<str>, id: NodeId) {
        if (self.len + 1) * 2 > self.slots.len() {
            let old = std::mem::take(&mut self.slots);
            self.slots = vec![ChildSlot::empty(); (old.len() * 2).max(8)];
            self.len = 0;
            for slot in old.into_iter().filter(|s| s.len != u32::MAX) {
                self.insert(slot.name, slot.id);
            }
        }
        let b = key.as_bytes();
        let head = super::sig::load_le_padded(b);
        let mask = self.slots.len() - 1;
        let mut i = self.slot_of(b, head);
        while self.slots[i].len != u32::MAX {
            if *self.slots[i].name == *key {
                self.slots[i].id = id;
                return;
            }
            i = (i + 1) & mask;
        }
        self.slots[i] = ChildSlot {
            len: u32::try_from(b.len()).expect("field names are short"),
            head,
            id,
            name: key,
        };
        self.len += 1;
    }

    /// Every child's node.
    pub fn values(&self) -> impl Iterator<Item = &NodeId> {
        self.slots
            .iter()
            .filter(|s| s.len != u32::MAX)
            .map(|s| &s.id)
    }
}

/// The schema tree.
#[derive(Debug)]
pub struct Schema {
    nodes: Vec<Node>,
    /// The `contexts` node (looked up once).
    contexts: NodeId,
}

/// Root of the event schema.
pub const ROOT: NodeId = 0;
const INHERIT_FALSE: NodeId = 1;
const INHERIT_MAYBE: NodeId = 2;
/// A field whose value and children are all pii `true` (in every schema).
pub const INHERIT_TRUE: NodeId = 3;

/// The event table (derived from Relay's event schema).
const EVENT_TSV: &str = include_str!("pii-fields.tsv");

/// The tables of the other item types (first column: the item), derived from Relay's
/// schemas for them plus scrubgate's own for the items Relay does not scrub (profiles).
const ITEMS_TSV: &str = include_str!("pii-items.tsv");

/// Sentry's semantic conventions for span, log and metric attributes: per key, whether
/// its value is scrubbed (columns: key, pii, apply_scrubbing, type, aliases, ...).
const CONVENTIONS: &str = include_str!("pii-conventions-attributes.tsv");

/// Which fields rules reach: exactly Relay's pii attributes, or also the free-text fields
/// Relay leaves alone (`config.scrubgate.coverage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Coverage {
    /// Relay's pii table, unchanged.
    #[default]
    Relay,
    /// Relay's table, plus the free-text fields it marks `false` or `maybe` (source
    /// context lines, transaction and span names, log bodies, tag values, URLs, ...).
    All,
}

/// The free-text fields [`Coverage::All`] adds, by item root type and TSV path. Protocol
/// identifiers (ids, timestamps, release, environment, platform, sdk, type and op enums)
/// are never among them.
fn covers_all(root: ValueType, path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    let last = last.strip_suffix("[]").unwrap_or(last);
    match root {
        ValueType::Event => {
            matches!(last, "pre_context" | "post_context" | "context_line")
                || matches!(
                    path,
                    "transaction"
                        | "culprit"
                        | "logentry.message"
                        | "request.url"
                        | "tags"
                        | "tags.*"
                        | "spans[].description"
                        | "spans[].tags"
                        | "spans[].tags.*"
                        | "contexts.trace.description"
                        | "user.segment"
                        | "contexts.feedback.name"
                        | "contexts.feedback.message"
                        | "contexts.feedback.contact_email"
                        | "contexts.feedback.<other>"
                )
        }
        ValueType::Span => matches!(path, "name" | "links[].attributes"),
        ValueType::Log => matches!(path, "body" | "<other>"),
        _ => false,
    }
}

/// The rows of `item` in [`ITEMS_TSV`], without the item column.
fn item_rows(item: &'static str) -> impl Iterator<Item = &'static str> {
    ITEMS_TSV.lines().skip(1).filter_map(move |line| {
        let (name, rest) = line.split_once('\t')?;
        (name == item).then_some(rest)
    })
}

/// Event fields that Relay's table marks `false` or lacks, which scrubgate lets selectors
/// that name them reach (`maybe`; stricter than Relay, never less private): the segment
/// SDKs copy from the envelope's `trace.user_segment`, the feedback form's contact email
/// and name, and the trace context's `description` (the transaction's description, often
/// a URL or query). Later rows override the table's.
const EVENT_ROWS_BEYOND_RELAY: &str = "\
user.segment\tmaybe\tstring\tn/a\tscrubgate: reachable by named selectors
contexts.feedback.contact_email\tmaybe\tstring\tn/a\tscrubgate: reachable by named selectors
contexts.feedback.name\tmaybe\tstring\tn/a\tscrubgate: reachable by named selectors
contexts.trace.description\tmaybe\tstring\tn/a\tscrubgate: reachable by named selectors";

/// The schemas of one coverage.
#[derive(Debug)]
pub struct Schemas {
    /// An event (also transactions, security reports, feedback, replay events).
    pub event: Schema,
    /// One span (a v2 container's element).
    pub span: Schema,
    /// One log record.
    pub log: Schema,
    /// One trace metric.
    pub trace_metric: Schema,
    /// A profile or profile chunk.
    pub profile: Schema,
    /// An OTLP JSON item: every field pii `true`.
    pub otel: Schema,
    /// The event's `spans[]` element, where a legacy JSON span item is walked from.
    pub span_in_event: NodeId,
}

impl Schemas {
    fn build(coverage: Coverage) -> Schemas {
        Schemas {
            event: Schema::build(
                EVENT_TSV
                    .lines()
                    .skip(1)
                    .chain(EVENT_ROWS_BEYOND_RELAY.lines()),
                ValueType::Event,
                Pii::True,
                coverage,
            ),
            span: Schema::build(item_rows("span"), ValueType::Span, Pii::Maybe, coverage),
            log: Schema::build(item_rows("log"), ValueType::Log, Pii::Maybe, coverage),
            trace_metric: Schema::build(
                item_rows("trace_metric"),
                ValueType::TraceMetric,
                Pii::False,
                coverage,
            ),
            profile: Schema::build(
                item_rows("profile"),
                ValueType::Object,
                Pii::False,
                coverage,
            ),
            otel: Schema::build(std::iter::empty(), ValueType::Object, Pii::True, coverage),
            span_in_event: 0,
        }
        .with_span_in_event()
    }

    fn with_span_in_event(mut self) -> Schemas {
        self.span_in_event = self.event.lookup(&["spans", "[]"]);
        self
    }
}

static RELAY_SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| Schemas::build(Coverage::Relay));
static ALL_SCHEMAS: LazyLock<Schemas> = LazyLock::new(|| Schemas::build(Coverage::All));

/// The schemas of `coverage`.
pub fn schemas(coverage: Coverage) -> &'static Schemas {
    match coverage {
        Coverage::Relay => &RELAY_SCHEMAS,
        Coverage::All => &ALL_SCHEMAS,
    }
}

/// The event schema (Relay's coverage).
pub fn event_schema() -> &'static Schema {
    &RELAY_SCHEMAS.event
}

/// Legacy interface aliases of top-level keys.
pub fn canonical_top_level_key(key: &str) -> &str {
    match key {
        "sentry.interfaces.Exception" => "exception",
        "sentry.interfaces.Http" => "request",
        "sentry.interfaces.User" => "user",
        "sentry.interfaces.Message" => "logentry",
        "sentry.interfaces.Stacktrace" => "stacktrace",
        "sentry.interfaces.Template" => "template",
        "sentry.interfaces.Breadcrumbs" => "breadcrumbs",
        "sentry.interfaces.Threads" => "threads",
        "sentry.interfaces.Csp" => "csp",
        "sentry.interfaces.DebugMeta" => "debug_meta",
        _ => key,
    }
}

fn schema_type_for(path: &str) -> Option<ValueType> {
    let ty = match path {
        "user" => ValueType::User,
        "request" => ValueType::Request,
        "logentry" => ValueType::LogEntry,
        "sdk" => ValueType::Sdk,
        "exception.values[]" => ValueType::Exception,
        "breadcrumbs.values[]" => ValueType::Breadcrumb,
        "threads.values[]" => ValueType::Thread,
        "spans[]" => ValueType::Span,
        "logentry.message" => ValueType::Message,
        p if p.ends_with("frames[]") => ValueType::Frame,
        p if p == "stacktrace" || p.ends_with(".stacktrace") || p.ends_with(".raw_stacktrace") => {
            ValueType::Stacktrace
        }
        _ => return None,
    };
    Some(ty)
}

/// Splits a TSV path into segments, honouring `'quoted.keys'` and `[]` suffixes.
fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in path.chars() {
        match c {
            '\'' => quoted = !quoted,
            '.' if !quoted => {
                push_segment(&mut out, std::mem::take(&mut cur));
            }
            _ => cur.push(c),
        }
    }
    push_segment(&mut out, cur);
    out
}

fn push_segment(out: &mut Vec<String>, seg: String) {
    if let Some(base) = seg.strip_suffix("[]") {
        out.push(base.to_string());
        out.push("[]".to_string());
    } else {
        out.push(seg);
    }
}

impl Schema {
    /// Builds a tree rooted at one record of type `root_type` from `rows` (path, pii,
    /// kind, inherits, note); unknown top-level keys get `root_other`. Under
    /// [`Coverage::All`] the free-text fields [`covers_all`] names become pii `true`.
    fn build<'t>(
        rows: impl Iterator<Item = &'t str>,
        root_type: ValueType,
        root_other: Pii,
        coverage: Coverage,
    ) -> Schema {
        let mut schema = Schema {
            nodes: vec![
                Node::new(Pii::False, false),
                Node::new(Pii::False, true),
                Node::new(Pii::Maybe, true),
                Node::new(Pii::True, true),
            ],
            contexts: ROOT,
        };
        schema.nodes[ROOT as usize].schema_type = Some(root_type);
        // Unknown top-level keys of an event are kept by Relay in the event's catch-all;
        // scrubgate treats them as pii `true` (stricter than Relay, never less private).
        let other = schema.push(Node::new(root_other, true));
        schema.nodes[ROOT as usize].other = Some(other);

        for line in rows {
            let mut cols = line.split('\t');
            let (Some(path), Some(pii), Some(kind), Some(inherits)) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                continue;
            };
            let Some(mut pii) = Pii::from_name(pii) else {
                continue;
            };
            if coverage == Coverage::All && covers_all(root_type, path) {
                pii = Pii::True;
            }
            let inherits = matches!(inherits, "yes" | "dynamic");
            let mut node = ROOT;
            for seg in split_path(path) {
                node = schema.child_or_insert(node, &seg);
            }
            let n = &mut schema.nodes[node as usize];
            n.pii = pii;
            n.inherits = inherits;
            n.pairlist = kind == "pairlist";
            n.values_wrapper = kind == "object|array";
            n.schema_type = if path.is_empty() {
                Some(root_type)
            } else {
                schema_type_for(path)
            };
            n.lenient_string = kind == "string" && line.contains("lenient string");
            n.native_path = kind == "string"
                && (path.ends_with("images[].code_file") || path.ends_with("images[].debug_file"));
            if kind == "attributes" {
                schema.add_conventions(node, coverage);
            }
        }
        schema.mark_dead();
        schema.contexts = schema.key_child(ROOT, "contexts");
        schema
    }

    /// Gives the attribute map `map` (`{key: {type, value}}`) a child per attribute key
    /// that Sentry's semantic conventions know, whose `value` has the convention's pii
    /// (`auto`: true, `manual`: maybe, `never`: false). Unknown keys keep the map's
    /// `*` row (pii `true`, as Relay defaults them). Under [`Coverage::All`], `manual`
    /// keys and the transaction names are `true` too; the identifiers (`never`: release,
    /// environment, ids, sdk, op, ...) stay `false`.
    fn add_conventions(&mut self, map: NodeId, coverage: Coverage) {
        let map_pii = self.nodes[map as usize].pii;
        for line in CONVENTIONS.lines().skip(1) {
            let mut cols = line.split('\t');
            let (Some(key), Some(pii)) = (cols.next(), cols.next()) else {
                continue;
            };
            let Some(mut pii) = Pii::from_name(pii) else {
                continue;
            };
            if coverage == Coverage::All
                && (pii == Pii::Maybe
                    || matches!(key, "sentry.transaction" | "sentry.dsc.transaction"))
            {
                pii = Pii::True;
            }
            if key.contains('<') {
                // `http.request.header.<key>` and the like: all pii `true`, the default.
                continue;
            }
            let attribute = self.child_or_insert(map, key);
            self.nodes[attribute as usize].pii = map_pii;
            let ty = self.child_or_insert(attribute, "type");
            self.nodes[ty as usize].pii = Pii::False;
            let other = self.child_or_insert(attribute, "<other>");
            self.nodes[other as usize].inherits = true;
            let value = self.child_or_insert(attribute, "value");
            let v = &mut self.nodes[value as usize];
            v.pii = pii;
            v.inherits = true;
        }
    }

    /// Marks the subtrees that are pii `false` all the way down. Children are created
    /// after their parents, so one reverse pass sees every child before its parent.
    fn mark_dead(&mut self) {
        for id in (0..self.nodes.len()).rev() {
            let n = &self.nodes[id];
            let children_dead = n
                .children
                .values()
                .chain(n.any.iter())
                .chain(n.elem.iter())
                .chain(n.other.iter())
                .all(|&c| self.nodes[c as usize].dead);
            // Unknown children of a `false` node inherit `false`, so only the known
            // children decide.
            let dead = n.pii == Pii::False && children_dead && !n.pairlist && !n.values_wrapper;
            self.nodes[id].dead = dead;
        }
    }

    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    fn child_or_insert(&mut self, parent: NodeId, seg: &str) -> NodeId {
        let existing = {
            let p = &self.nodes[parent as usize];
            match seg {
                "*" => p.any,
                "[]" => p.elem,
                "<other>" | "<custom>" => p.other,
                key => p.children.get(key),
            }
        };
        if let Some(id) = existing {
            return id;
        }
        let id = self.push(Node::new(Pii::False, false));
        let p = &mut self.nodes[parent as usize];
        match seg {
            "*" => p.any = Some(id),
            "[]" => p.elem = Some(id),
            "<other>" | "<custom>" => p.other = Some(id),
            key => {
                p.children.insert(key.into(), id);
            }
        }
        id
    }

    /// The node for field `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    fn inherited(&self, parent: NodeId) -> NodeId {
        let p = &self.nodes[parent as usize];
        if !p.inherits {
            return INHERIT_FALSE;
        }
        match p.pii {
            Pii::False => INHERIT_FALSE,
            Pii::Maybe => INHERIT_MAYBE,
            Pii::True => INHERIT_TRUE,
        }
    }

    /// The node of a top-level event key: legacy interface aliases, and a `message` that
    /// is an object is a `logentry`. Shared by the parser and the walker so that they
    /// always agree on which fields are scrubbable.
    pub fn top_level_child(&self, key: &str, value_is_object: bool) -> NodeId {
        match canonical_top_level_key(key) {
            // Not event data, but merged into and scrubbed (`val`), so always built.
            "_meta" => INHERIT_TRUE,
            "message" if value_is_object => self.key_child(ROOT, "logentry"),
            canonical => self.key_child(ROOT, canonical),
        }
    }

    /// The `contexts` node.
    pub fn contexts(&self) -> NodeId {
        self.contexts
    }

    /// The node of the context under `key`, typed as Relay types it: by its `type` field
    /// when present, else by its key. A type that is not a known context (including a
    /// key like `cloud_resource` whose type tag is `cloudresource`) is a custom context,
    /// where everything is scrubbable.
    pub fn context_child(&self, key: &str, type_field: Option<&str>) -> NodeId {
        let contexts = self.contexts();
        let custom = self.nodes[contexts as usize].other.unwrap_or(INHERIT_TRUE);
        let tag = type_field.unwrap_or(key);
        let field = match tag {
            "cloudresource" => "cloud_resource",
            "performancescore" => "performance_score",
            "otaupdates" => "ota_updates",
            "chromiumstabilityreport" => "chromium_stability_report",
            "cloud_resource"
            | "performance_score"
            | "ota_updates"
            | "chromium_stability_report" => return custom,
            other => other,
        };
        self.nodes[contexts as usize]
            .children
            .get(field)
            .unwrap_or(custom)
    }

    /// The node of the child `key` of object `parent`.
    pub fn key_child(&self, parent: NodeId, key: &str) -> NodeId {
        let p = &self.nodes[parent as usize];
        if let Some(id) = p.children.get(key) {
            return id;
        }
        if let Some(id) = p.any.or(p.other) {
            return id;
        }
        self.inherited(parent)
    }

    /// The node of an element of array `parent`.
    pub fn elem_child(&self, parent: NodeId) -> NodeId {
        let p = &self.nodes[parent as usize];
        p.elem.or(p.any).unwrap_or_else(|| self.inherited(parent))
    }

    /// The `values` child of a values wrapper.
    pub fn values_child(&self, parent: NodeId) -> NodeId {
        self.key_child(parent, "values")
    }

    /// Follows a path of keys from the root (array indices as `[]` steps).
    pub fn lookup(&self, path: &[&str]) -> NodeId {
        let mut node = ROOT;
        for seg in path {
            node = if *seg == "[]" {
                self.elem_child(node)
            } else {
                self.key_child(node, seg)
            };
        }
        node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_map_finds_exactly_its_names() {
        let names = [
            "",
            "a",
            "id",
            "values",
            "abcdefgh",
            "abcdefghi",
            "abcdefghj",
            "exception_a",
            "exception_b",
            "device_unique_identifier",
            "ü",
            "Ab",
        ];
        let mut map = ChildMap::default();
        for (i, name) in names.iter().enumerate() {
            map.insert((*name).into(), i as NodeId);
        }
        for (i, name) in names.iter().enumerate() {
            assert_eq!(map.get(name), Some(i as NodeId), "{name:?}");
        }
        for miss in [
            "b",
            "ab",
            "ID",
            "abcdefg",
            "abcdefghk",
            "exception_",
            "exception_ab",
            "u",
        ] {
            assert_eq!(map.get(miss), None, "{miss:?}");
        }
        map.insert("id".into(), 99);
        assert_eq!(map.get("id"), Some(99));
        assert_eq!(map.values().count(), names.len());
        // Growth keeps everything.
        let mut big = ChildMap::default();
        for i in 0..500u32 {
            big.insert(format!("field_{i}").into(), i);
        }
        assert!((0..500u32).all(|i| big.get(&format!("field_{i}")) == Some(i)));
        assert_eq!(big.get("field_500"), None);
    }

    fn pii(path: &[&str]) -> Pii {
        let s = event_schema();
        s.node(s.lookup(path)).pii
    }

    #[test]
    fn table_attributes() {
        assert_eq!(pii(&["user", "email"]), Pii::True);
        // Relay: `false`; scrubgate lets named selectors reach it.
        assert_eq!(pii(&["user", "segment"]), Pii::Maybe);
        assert_eq!(pii(&["tags"]), Pii::Maybe);
        assert_eq!(pii(&["request", "url"]), Pii::Maybe);
        assert_eq!(pii(&["extra", "a", "b", "c"]), Pii::True);
        assert_eq!(pii(&["release"]), Pii::False);
        assert_eq!(
            pii(&[
                "exception",
                "values",
                "[]",
                "stacktrace",
                "frames",
                "[]",
                "vars",
                "x"
            ]),
            Pii::True
        );
        assert_eq!(
            pii(&[
                "exception",
                "values",
                "[]",
                "stacktrace",
                "frames",
                "[]",
                "function"
            ]),
            Pii::False
        );
        assert_eq!(
            pii(&["contexts", "device", "device_unique_identifier"]),
            Pii::True
        );
        assert_eq!(pii(&["contexts", "app", "device_app_hash"]), Pii::Maybe);
        assert_eq!(pii(&["contexts", "os", "name"]), Pii::False);
        assert_eq!(pii(&["contexts", "mycontext", "anything"]), Pii::True);
        assert_eq!(
            pii(&["breadcrumbs", "values", "[]", "category"]),
            Pii::False
        );
        assert_eq!(
            pii(&["breadcrumbs", "values", "[]", "data", "url"]),
            Pii::True
        );
        assert_eq!(pii(&["server_name"]), Pii::True);
    }

    #[test]
    fn schema_types() {
        let s = event_schema();
        let frame = s.lookup(&["stacktrace", "frames", "[]"]);
        assert_eq!(s.node(frame).schema_type, Some(ValueType::Frame));
        let exc = s.lookup(&["exception", "values", "[]"]);
        assert_eq!(s.node(exc).schema_type, Some(ValueType::Exception));
        assert!(s.node(s.lookup(&["request", "headers"])).pairlist);
        assert!(s.node(s.lookup(&["exception"])).values_wrapper);
    }

    #[test]
    fn dead_subtrees() {
        let s = event_schema();
        let dead = |p: &[&str]| s.node(s.lookup(p)).dead;
        assert!(dead(&["modules"]));
        assert!(dead(&["stacktrace", "frames", "[]", "pre_context"]));
        assert!(dead(&["breadcrumbs", "values", "[]", "category"]));
        assert!(
            !dead(&["stacktrace", "frames", "[]"]),
            "vars and filename are scrubbable"
        );
        assert!(!dead(&["user"]));
        assert!(!dead(&["contexts"]));
        assert!(!dead(&["extra", "x"]));
        assert!(!dead(&["request"]));
        assert!(!dead(&["debug_meta"]), "image paths are pii maybe");
        assert!(!dead(&["tags"]));
        assert!(
            !dead(&["nosuchkey"]),
            "unknown top-level keys are scrubbable"
        );
        assert!(dead(&["release"]));
    }

    #[test]
    fn contexts_are_typed_by_their_type_field() {
        let s = event_schema();
        let pii = |key, ty| s.node(s.key_child(s.context_child(key, ty), "name")).pii;
        assert_eq!(pii("device", None), Pii::Maybe, "device.name");
        assert_eq!(pii("mine", Some("device")), Pii::Maybe, "typed as a device");
        assert_eq!(
            pii("device", Some("mything")),
            Pii::True,
            "an unknown type is custom"
        );
        assert_eq!(pii("os", None), Pii::False, "os.name");
        assert_eq!(
            pii("cloud_resource", None),
            Pii::True,
            "the key is not its type tag"
        );
        let cloud = s.context_child("x", Some("cloudresource"));
        assert_eq!(s.node(s.key_child(cloud, "cloud.provider")).pii, Pii::False);
    }
}
