//! The scrubbing engine (pure: no I/O, no tokio, no metrics).
//!
//! Rules in, event in, scrubbed event and a report out, with Relay's semantics:
//!
//! What it exposes: [`compile`] (a project's `piiConfig` and `datascrubbingSettings` into
//! [`CompiledRules`], every problem named by its JSON path), [`CompiledRules::scrub`]
//! (bytes in, [`Scrubbed`] bytes and a [`ScrubReport`] out) and the [`json`] tree. The
//! submodules are private:
//!
//! - `rules` reads `piiConfig`, resolves built-ins, `multiple` and `alias`, and sorts
//!   applications the way Relay orders them; `legacy` turns `datascrubbingSettings`
//!   into a `piiConfig` as Relay converts it.
//! - [`json`] parses into a borrowed tree: untouched strings and numbers are written
//!   back byte for byte, and subtrees the `schema` marks as never scrubbable stay raw.
//! - `processor` walks the tree once with each field's pii attribute (`schema`, from
//!   `pii-fields.tsv`) and path; `selector` matches are memoized by path shape
//!   (`sig`); `redact` applies the rules to a string as opaque chunks so later rules
//!   never re-match a replacement; `builtin` holds the built-in patterns behind exact
//!   byte prefilters; `meta` records and writes the `_meta` remarks.
//! - `items` scrubs user reports, sessions and envelope headers through the rules for
//!   the matching user fields.

mod builtin;

use std::net::IpAddr;

use serde_json::Value as Json;

pub mod attachments;
mod items;
pub mod json;
mod legacy;
mod meta;
mod normalize;
mod pairs;
mod processor;
pub mod protect;
mod redact;
mod rules;
mod schema;
mod selector;
mod sig;
mod suggest;

pub use attachments::AttachmentKind;
pub use protect::Protect;
pub use rules::{HashAlgorithm, HashKey};
pub use schema::Coverage;
pub use suggest::did_you_mean;

/// Default limit on JSON nesting.
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// What kind of payload is being scrubbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// An error event (`event` item, store endpoint).
    Event,
    /// A `transaction` item.
    Transaction,
    /// A `security` item or security/CSP report endpoint body (scrubbed as an event).
    Security,
    /// A `feedback` item (scrubbed as an event).
    Feedback,
    /// A `user_report` item (`email`, `name`, `comments`).
    UserReport,
    /// A `session` item (`did`, `attrs.ip_address`).
    Session,
    /// A `sessions` aggregate item.
    Sessions,
    /// An envelope header (`trace.user_id`, `trace.user_segment`, `trace.transaction`).
    EnvelopeHeader,
    /// A `span` item: a v2 container (`{"items": [...]}`) or one legacy JSON span.
    Span,
    /// A `log` container.
    Log,
    /// A `trace_metric` container.
    TraceMetric,
    /// An `otel_span` or `otel_log` item (OTLP JSON): every string is reachable.
    Otel,
    /// A `profile` or `profile_chunk`: transaction names, frame and image paths, device
    /// and os fields.
    Profile,
    /// A `replay_event` (scrubbed as an event).
    ReplayEvent,
    /// A `check_in`: validated, never changed.
    CheckIn,
    /// A `client_report`: validated, never changed (counts only).
    ClientReport,
    /// An attachment's item header under `coverage = "all"`: its `filename`.
    AttachmentHeader,
    /// The rrweb events of a `replay_recording` (a JSON array, after its header line and
    /// decompression): text and attribute values, and the payloads of Sentry's custom
    /// events.
    ReplayRecording,
    /// A view hierarchy attachment (`event.view_hierarchy`): JSON whose every string is
    /// reachable; no `_meta` is written into it.
    ViewHierarchy,
}

impl ItemKind {
    /// The kinds a tool may be asked to scrub one payload as, by their envelope item
    /// type names (`scrubgate test`'s and the console's `item_type`).
    pub const NAMED: [(&'static str, ItemKind); 13] = [
        ("event", ItemKind::Event),
        ("transaction", ItemKind::Transaction),
        ("security", ItemKind::Security),
        ("feedback", ItemKind::Feedback),
        ("user_report", ItemKind::UserReport),
        ("session", ItemKind::Session),
        ("sessions", ItemKind::Sessions),
        ("span", ItemKind::Span),
        ("log", ItemKind::Log),
        ("trace_metric", ItemKind::TraceMetric),
        ("profile", ItemKind::Profile),
        ("replay_event", ItemKind::ReplayEvent),
        ("check_in", ItemKind::CheckIn),
    ];

    /// The kind named `name` in [`ItemKind::NAMED`].
    pub fn from_name(name: &str) -> Option<ItemKind> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, kind)| *kind)
    }

    /// Scrubbed as an event, with the event schema and normalization.
    pub fn is_event_like(self) -> bool {
        matches!(
            self,
            ItemKind::Event
                | ItemKind::Transaction
                | ItemKind::Security
                | ItemKind::Feedback
                | ItemKind::ReplayEvent
        )
    }
}

/// Per-call inputs that are not part of the rules.
#[derive(Debug, Clone, Copy)]
pub struct ScrubOptions {
    /// The client IP used to resolve `{{auto}}` in `user.ip_address`.
    pub client_ip: Option<IpAddr>,
    /// Payloads nested deeper than this are refused.
    pub max_depth: usize,
    /// Fill [`Change::path`] for every change (`scrub --explain`). Off by default: the
    /// proxy counts changes by rule and method only, and building a path string per
    /// change was measurable in the engine's profile.
    pub record_paths: bool,
}

impl Default for ScrubOptions {
    fn default() -> Self {
        ScrubOptions {
            client_ip: None,
            max_depth: DEFAULT_MAX_DEPTH,
            record_paths: false,
        }
    }
}

/// Redaction method, as reported per change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Removed (deleted or emptied).
    Remove,
    /// Replaced with a text.
    Replace,
    /// Masked with `*`.
    Mask,
    /// Replaced with a (keyed) hash.
    Hash,
}

impl Method {
    /// Lowercase name, usable as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Remove => "remove",
            Method::Replace => "replace",
            Method::Mask => "mask",
            Method::Hash => "hash",
        }
    }
}

/// One change made by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Dotted path of the changed value, e.g. `user.email`; empty unless
    /// [`ScrubOptions::record_paths`] is set.
    pub path: String,
    /// The rule id as it appears in `_meta` remarks.
    pub rule: std::sync::Arc<str>,
    /// How the value was changed.
    pub method: Method,
    /// The matched text's shape (see [`shape_of`]; the whole value's for a value
    /// deleted), never the text; only with [`ScrubOptions::record_paths`], and only for
    /// strings.
    pub shape: Option<String>,
}

/// The longest shape [`shape_of`] gives, in characters.
pub const SHAPE_MAX_CHARS: usize = 64;

/// What a value looks like without what it says: letters become `a` or `A`, digits `9`,
/// other characters stay, cut at [`SHAPE_MAX_CHARS`] (`jane@example.com` gives
/// `aaaa@aaaaaaa.aaa`). Samples of rule hits show shapes, never values.
pub fn shape_of(text: &str) -> String {
    text.chars()
        .take(SHAPE_MAX_CHARS)
        .map(|c| {
            if c.is_uppercase() {
                'A'
            } else if c.is_alphabetic() {
                'a'
            } else if c.is_numeric() {
                '9'
            } else {
                c
            }
        })
        .collect()
}

/// What scrubbing one payload did.
#[derive(Debug, Clone, Default)]
pub struct ScrubReport {
    /// Every change, in the order it was made.
    pub changes: Vec<Change>,
}

/// A scrubbed payload.
#[derive(Debug, Clone)]
pub struct Scrubbed {
    /// The new JSON bytes.
    pub bytes: Vec<u8>,
    /// What changed.
    pub report: ScrubReport,
    /// The top-level `event_id` string of an event-like payload, if it has one.
    pub event_id: Option<String>,
}

/// Why a payload could not be scrubbed. Nothing is forwarded on any of these.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ScrubError {
    /// The payload is not valid UTF-8.
    #[error("payload is not valid UTF-8")]
    NotUtf8,
    /// The payload is not valid JSON.
    #[error("invalid JSON at byte {offset}: {reason}")]
    InvalidJson {
        /// Byte offset of the problem.
        offset: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// The payload is JSON but not an object (for a replay recording: not an array).
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// The payload nests deeper than the limit.
    #[error("payload nests deeper than {limit} levels")]
    TooDeep {
        /// The depth limit.
        limit: usize,
    },
}

/// One problem in a project config, with the JSON path it was found at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// JSON path, e.g. `config.piiConfig.rules.myrule.pattern`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a project config.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} error(s) in project config, first: {}", .0.len(), .0.first().map(|i| i.to_string()).unwrap_or_default())]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

/// A project's rules, compiled by [`compile`].
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The compiled rules.
    pub rules: CompiledRules,
    /// True when the rules change a client IP address (`scrubIpAddresses`, `protect`'s
    /// `ip_addresses`, or any rule that changes `user.ip_address`): then no client-IP
    /// header may be forwarded.
    pub scrubs_ip_addresses: bool,
    /// The project's hash keys, the current one first (empty: Relay's unkeyed hash).
    pub hash_keys: Vec<HashKey>,
    /// Every `piiConfig` applied, in order, as JSON: the project's own, the one converted
    /// from `datascrubbingSettings`, and `protect`'s expansion (`check --print-rules`).
    pub expanded: Vec<(String, Json)>,
    /// Problems that do not stop the rules from loading, e.g. a hash rule without a key.
    pub warnings: Vec<ConfigIssue>,
}

/// What [`compile`] needs besides the config object.
pub struct CompileOptions<'e> {
    /// Which fields the rules reach.
    pub coverage: Coverage,
    /// The `protect` categories (expanded into rules applied last).
    pub protect: Protect,
    /// Resolves `${NAME}` references in hash keys.
    pub env: &'e dyn Fn(&str) -> Option<String>,
}

/// Compiles the `piiConfig` (or Sentry's `relayPiiConfig` string) and
/// `datascrubbingSettings` members of `config` (a project file's `config` object, found
/// at JSON path `path`), then `protect`'s rules. The `piiConfig` applications come first,
/// then those converted from `datascrubbingSettings`, as Relay orders them, then
/// `protect`'s.
///
/// # Errors
/// Every problem found, each with its full JSON path.
pub fn compile(
    config: &Json,
    path: &str,
    opts: &CompileOptions<'_>,
) -> Result<Compiled, ConfigErrors> {
    let mut errors = Vec::new();
    let mut reader = rules::Reader::new(format!("{path}.piiConfig"), opts.env);
    let own = own_pii_config(config, path, &mut errors);
    let mut expanded = Vec::new();
    let (mut applications, hash_keys) = match &own {
        Some((name, pii)) => {
            reader.prefix = format!("{path}.{name}");
            let c = rules::compile_pii_config(&mut reader, pii, &[]);
            expanded.push((format!("{path}.{name}"), pii.clone()));
            (c.applications, c.hash_keys)
        }
        None => (Vec::new(), Vec::new()),
    };
    let settings = legacy::DataScrubbingSettings::from_json(
        config.get("datascrubbingSettings").unwrap_or(&Json::Null),
        &format!("{path}.datascrubbingSettings"),
        &mut errors,
    );
    if let Some(converted) = settings.to_pii_config() {
        reader.prefix = format!("{path}.datascrubbingSettings(converted)");
        applications
            .extend(rules::compile_pii_config(&mut reader, &converted, &hash_keys).applications);
        expanded.push((format!("{path}.datascrubbingSettings"), converted));
    }
    if let Some(generated) = opts.protect.to_pii_config() {
        reader.prefix = format!("{path}.scrubgate.protect(expanded)");
        applications
            .extend(rules::compile_pii_config(&mut reader, &generated, &hash_keys).applications);
        expanded.push((format!("{path}.scrubgate.protect"), generated));
    }
    errors.extend(reader.errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let rules = CompiledRules::new(applications, settings.scrub_data, opts.coverage);
    // `scrubIpAddresses` and `protect`'s `ip_addresses` are rules like any other: the
    // probe sees them too.
    Ok(Compiled {
        scrubs_ip_addresses: rules.changes_client_ips(),
        rules,
        hash_keys,
        expanded,
        warnings: reader.warnings,
    })
}

/// Compiles one `piiConfig`-shaped object on its own (`config.scrubgate.shadow`), at JSON
/// path `path`, under `coverage`; hashes without a key of their own use `hash_keys`.
///
/// # Errors
/// Every problem found, each with its full JSON path.
pub fn compile_pii(
    pii: &Json,
    path: &str,
    coverage: Coverage,
    hash_keys: &[HashKey],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<CompiledRules, ConfigErrors> {
    let mut reader = rules::Reader::new(path.to_string(), env);
    let compiled = rules::compile_pii_config(&mut reader, pii, hash_keys);
    if !reader.errors.is_empty() {
        return Err(ConfigErrors(reader.errors));
    }
    Ok(CompiledRules::new(compiled.applications, false, coverage))
}

/// The project's own `piiConfig`: `piiConfig`, or the JSON string Sentry's project API
/// calls `relayPiiConfig` (operators copy it from there), with the key it was found at.
fn own_pii_config(
    config: &Json,
    path: &str,
    errors: &mut Vec<ConfigIssue>,
) -> Option<(&'static str, Json)> {
    match (config.get("piiConfig"), config.get("relayPiiConfig")) {
        (Some(_), Some(_)) => {
            errors.push(ConfigIssue {
                path: format!("{path}.relayPiiConfig"),
                message: "set piiConfig or relayPiiConfig, not both".into(),
            });
            None
        }
        (Some(pii), None) => Some(("piiConfig", pii.clone())),
        (None, Some(Json::String(text))) if text.trim().is_empty() => None,
        (None, Some(Json::String(text))) => match serde_json::from_str::<Json>(text) {
            Ok(pii) => Some(("relayPiiConfig", pii)),
            Err(e) => {
                errors.push(ConfigIssue {
                    path: format!("{path}.relayPiiConfig"),
                    message: format!("invalid JSON in the string: {e}"),
                });
                None
            }
        },
        (None, Some(pii @ Json::Object(_))) => Some(("relayPiiConfig", pii.clone())),
        (None, Some(Json::Null)) | (None, None) => None,
        (None, Some(_)) => {
            errors.push(ConfigIssue {
                path: format!("{path}.relayPiiConfig"),
                message: "must be a piiConfig as a JSON string or object".into(),
            });
            None
        }
    }
}

thread_local! {
    /// Each thread's tree arena (see [`json`]), reset after every payload.
    static TREE_ARENA: std::cell::RefCell<json::Bump> =
        std::cell::RefCell::new(json::Bump::new());
}

/// Arena bytes a thread keeps for the next payload. An arena grown past this by a very
/// large payload is freed rather than kept for the thread's lifetime.
const TREE_ARENA_KEEP: usize = 4 << 20;

/// Compiled processor instructions of one project: the `piiConfig` applications first,
/// then those converted from `datascrubbingSettings`.
#[derive(Debug, Default, Clone)]
pub struct CompiledRules {
    applications: Vec<rules::Application>,
    /// Selector results by path shape, shared by all events scrubbed with these rules.
    memo: std::sync::Arc<sig::SharedMemo>,
    /// Unique per compiled rule set (never reused), naming it in the per-thread memos.
    id: u64,
    /// `scrubData` is on: GraphQL variables are filtered.
    scrub_graphql: bool,
    /// Which fields the rules reach.
    coverage: Coverage,
    /// What walkers need to know of `applications`.
    facts: processor::RuleFacts,
}

impl CompiledRules {
    /// Rules from compiled applications.
    pub(crate) fn new(
        applications: Vec<rules::Application>,
        scrub_graphql: bool,
        coverage: Coverage,
    ) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        CompiledRules {
            facts: processor::RuleFacts::of(&applications),
            applications,
            memo: Default::default(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            scrub_graphql,
            coverage,
        }
    }

    /// The schemas of these rules' coverage.
    fn schemas(&self) -> &'static schema::Schemas {
        schema::schemas(self.coverage)
    }

    /// Which fields these rules reach.
    pub fn coverage(&self) -> Coverage {
        self.coverage
    }

    /// Scrubs one payload of the given kind.
    ///
    /// # Errors
    /// A [`ScrubError`] when the payload is not a UTF-8 JSON object within the depth
    /// limit; nothing is returned then, so nothing unscrubbed can be forwarded.
    pub fn scrub(
        &self,
        kind: ItemKind,
        input: &[u8],
        opts: &ScrubOptions,
    ) -> Result<Scrubbed, ScrubError> {
        self.scrub_with_arena(kind, input, opts, None, true)
    }

    /// What these rules would change in a payload, without writing the result or its
    /// `_meta`: shadow rules are evaluated this way, for less than scrubbing with them
    /// costs. Paths and shapes are recorded when `opts.record_paths` is set.
    ///
    /// # Errors
    /// As [`CompiledRules::scrub`].
    pub fn evaluate(
        &self,
        kind: ItemKind,
        input: &[u8],
        opts: &ScrubOptions,
    ) -> Result<ScrubReport, ScrubError> {
        self.scrub_with_arena(kind, input, opts, None, false)
            .map(|scrubbed| scrubbed.report)
    }

    /// [`CompiledRules::scrub`] for an event that must leave with an `event_id`, as
    /// Relay gives one to store events that have none: when the event has no string
    /// `event_id`, `new_id()` is added as its first field and reported in
    /// [`Scrubbed::event_id`].
    ///
    /// # Errors
    /// As [`CompiledRules::scrub`].
    pub fn scrub_assigning_event_id(
        &self,
        kind: ItemKind,
        input: &[u8],
        opts: &ScrubOptions,
        new_id: fn() -> String,
    ) -> Result<Scrubbed, ScrubError> {
        self.scrub_with_arena(kind, input, opts, Some(new_id), true)
    }

    /// Scrubs with the tree in this thread's arena.
    fn scrub_with_arena(
        &self,
        kind: ItemKind,
        input: &[u8],
        opts: &ScrubOptions,
        new_id: Option<fn() -> String>,
        write: bool,
    ) -> Result<Scrubbed, ScrubError> {
        TREE_ARENA.with(|arena| match arena.try_borrow_mut() {
            Ok(mut bump) => {
                let scrubbed = self.scrub_in(&bump, kind, input, opts, new_id, write);
                if bump.allocated_bytes() > TREE_ARENA_KEEP {
                    *bump = json::Bump::new();
                } else {
                    bump.reset();
                }
                scrubbed
            }
            // Not reached today (scrubbing never nests); correct all the same.
            Err(_) => self.scrub_in(&json::Bump::new(), kind, input, opts, new_id, write),
        })
    }

    /// [`CompiledRules::scrub`] with the tree in `bump`.
    fn scrub_in(
        &self,
        bump: &json::Bump,
        kind: ItemKind,
        input: &[u8],
        opts: &ScrubOptions,
        new_id: Option<fn() -> String>,
        write: bool,
    ) -> Result<Scrubbed, ScrubError> {
        let text = std::str::from_utf8(input).map_err(|_| ScrubError::NotUtf8)?;
        let event_like = kind.is_event_like();
        let mut root = if event_like && !self.applications.is_empty() {
            json::parse_event_in(text, bump, opts.max_depth, &self.schemas().event)?
        } else {
            json::parse(text, bump, opts.max_depth)?
        };
        let root_ok = match root {
            json::Value::Object(_) => kind != ItemKind::ReplayRecording,
            json::Value::Array(_) => kind == ItemKind::ReplayRecording,
            _ => false,
        };
        if !root_ok {
            return Err(ScrubError::NotAnObject);
        }
        let schemas = self.schemas();
        let report = match kind {
            ItemKind::Event
            | ItemKind::Transaction
            | ItemKind::Security
            | ItemKind::Feedback
            | ItemKind::ReplayEvent => self.scrub_event_tree(bump, &mut root, opts, write),
            ItemKind::UserReport => items::scrub_user_report(self, bump, &mut root),
            ItemKind::Session => items::scrub_session(self, bump, &mut root, opts),
            ItemKind::Sessions => items::scrub_sessions(self, bump, &mut root, opts),
            ItemKind::EnvelopeHeader => items::scrub_envelope_header(self, bump, &mut root),
            ItemKind::Span => items::scrub_spans(self, bump, &mut root, opts),
            ItemKind::Log => items::scrub_records(self, bump, &mut root, &schemas.log, opts),
            ItemKind::TraceMetric => {
                items::scrub_records(self, bump, &mut root, &schemas.trace_metric, opts)
            }
            ItemKind::Otel => items::scrub_record(self, bump, &mut root, &schemas.otel, opts),
            ItemKind::Profile => items::scrub_record(self, bump, &mut root, &schemas.profile, opts),
            // Validated as JSON objects and forwarded as they are: identifiers and counts.
            ItemKind::CheckIn | ItemKind::ClientReport => ScrubReport::default(),
            ItemKind::AttachmentHeader => items::scrub_attachment_header(self, bump, &mut root),
            ItemKind::ReplayRecording => items::scrub_recording(self, bump, &mut root, opts),
            ItemKind::ViewHierarchy => items::scrub_view_hierarchy(self, bump, &mut root, opts),
        };
        let event_id = if event_like {
            take_event_id(&mut root).or_else(|| {
                let id = new_id?();
                if let Some(fields) = root.as_object_mut() {
                    let value = json::Value::string_in(bump, &id);
                    json::insert(fields, bump, 0, (json::Str::Decoded("event_id"), value));
                }
                Some(id)
            })
        } else {
            None
        };
        if !write {
            return Ok(Scrubbed {
                bytes: Vec::new(),
                report,
                event_id,
            });
        }
        // Room for the `_meta` remarks and longer replacements, so the output is not
        // reallocated (and copied) while it is written.
        let mut bytes = Vec::with_capacity(input.len() + input.len() / 4 + 256);
        json::write_from(&mut bytes, &root, text);
        Ok(Scrubbed {
            bytes,
            report,
            event_id,
        })
    }

    fn scrub_event_tree<'a>(
        &self,
        bump: &'a json::Bump,
        root: &mut json::Value<'a>,
        opts: &ScrubOptions,
        write: bool,
    ) -> ScrubReport {
        if let Some(ip) = opts.client_ip {
            resolve_auto_ip(root, bump, ip);
        }
        if self.applications.is_empty() {
            return ScrubReport::default();
        }
        normalize::split_url_query(root, bump);
        normalize::format_logentry(root, bump);
        let mut walker = processor::Walker::new(
            &self.applications,
            self.facts,
            bump,
            processor::WalkOptions {
                move_ip_to_user_id: true,
                record_paths: opts.record_paths,
            },
            Some(&self.memo),
            &self.schemas().event,
        );
        walker.adopt_thread_memo(self.id);
        walker.walk_root(root);
        if !write {
            // Evaluated only (shadow rules): the changes are all that is wanted.
            walker.return_thread_memo(self.id);
            return walker.report;
        }
        walker.scrub_meta_originals(root);
        if self.scrub_graphql {
            items::scrub_graphql(root);
        }
        walker.return_thread_memo(self.id);
        let processor::Walker { meta, report, .. } = walker;
        meta.merge_into(root, bump);
        report
    }

    /// Walks a synthetic event (used for non-event items) without the IP-to-id move;
    /// returns the changes and the `_meta` entries it recorded (paths from the synthetic
    /// event's root).
    fn walk_synthetic_with_meta<'a>(
        &self,
        bump: &'a json::Bump,
        root: &mut json::Value<'a>,
    ) -> (ScrubReport, meta::MetaLog<'a>) {
        let mut walker = processor::Walker::new(
            &self.applications,
            self.facts,
            bump,
            processor::WalkOptions {
                move_ip_to_user_id: false,
                record_paths: true,
            },
            Some(&self.memo),
            &self.schemas().event,
        );
        walker.adopt_thread_memo(self.id);
        walker.walk_root(root);
        walker.return_thread_memo(self.id);
        (walker.report, walker.meta)
    }

    /// A walker over `schema` for one non-event record, starting from this thread's memo
    /// of these rules (call `return_thread_memo` when done).
    fn record_walker<'r, 'a>(
        &'r self,
        bump: &'a json::Bump,
        schema: &'static schema::Schema,
        opts: &ScrubOptions,
    ) -> processor::Walker<'r, 'a> {
        let mut walker = processor::Walker::new(
            &self.applications,
            self.facts,
            bump,
            processor::WalkOptions {
                move_ip_to_user_id: false,
                record_paths: opts.record_paths,
            },
            Some(&self.memo),
            schema,
        );
        // Path facts depend only on the rules and the path's keys and types, which the
        // signatures hash, so records share the event walks' memos.
        walker.adopt_thread_memo(self.id);
        walker
    }

    /// Whether these rules change a client IP address in `user.ip_address`: probed
    /// once per compiled rule set with a public and a private IPv4 and an IPv6 address,
    /// so that rules of any form (`@ip` on `$string`, `@anything:remove` on the field,
    /// a custom pattern) count.
    pub fn changes_client_ips(&self) -> bool {
        ["198.51.100.23", "10.1.2.3", "2001:db8::5"]
            .iter()
            .any(|ip| {
                let probe = format!(r#"{{"user":{{"ip_address":"{ip}"}}}}"#);
                match self.scrub(ItemKind::Event, probe.as_bytes(), &ScrubOptions::default()) {
                    Ok(out) => !out.report.changes.is_empty(),
                    // Not reached for this fixed probe; counting it as scrubbing is the safe side.
                    Err(_) => true,
                }
            })
    }

    /// Every rule id that can appear in a report (bounded metric label values).
    pub fn rule_ids(&self) -> Vec<String> {
        rules::origins(&self.applications).into_iter().collect()
    }

    /// Whether any rule applies at all.
    pub fn is_empty(&self) -> bool {
        self.applications.is_empty()
    }
}

/// The top-level `event_id` string of an event. An `event_id` that is not a string (`null`
/// from an SDK with no id, or anything else) is dropped, as Relay treats it as absent: a
/// caller that assigns a fresh id then adds the only one, never a duplicate key.
fn take_event_id(root: &mut json::Value<'_>) -> Option<String> {
    let fields = root.as_object_mut()?;
    let pos = fields.iter().position(|(k, _)| k.eq_str("event_id"))?;
    match fields[pos].1.as_str() {
        Some(id) => Some(id.into_owned()),
        None => {
            json::remove(fields, pos);
            None
        }
    }
}

fn resolve_auto_ip<'a>(root: &mut json::Value<'a>, bump: &'a json::Bump, ip: IpAddr) {
    for key in ["user", "sentry.interfaces.User"] {
        if let Some(user) = root.get_mut(key) {
            if let Some(v) = user.get_mut("ip_address") {
                if v.as_str().as_deref() == Some("{{auto}}") {
                    *v = json::Value::string_in(bump, &ip.to_string());
                }
            }
        }
    }
}

/// Test helper for the engine's modules: `event` (JSON text) scrubbed as an event by the
/// project whose `config` object is given, under coverage `relay` and no `protect`;
/// panics on a config error.
#[cfg(test)]
pub(crate) fn scrub_event_with(config: &Json, event: &[u8]) -> Json {
    let opts = CompileOptions {
        coverage: Coverage::Relay,
        protect: Protect::default(),
        env: &|_| None,
    };
    let compiled = compile(config, "config", &opts).unwrap_or_else(|e| panic!("{:?}", e.0));
    let out = compiled
        .rules
        .scrub(ItemKind::Event, event, &ScrubOptions::default())
        .unwrap();
    serde_json::from_slice(&out.bytes).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles a project file's `config` object; panics on any error.
    fn compiled(config: Json) -> CompiledRules {
        compile_with(&config, Coverage::Relay).rules
    }

    /// Compiles `config` under `coverage` with no `protect`; panics on any error.
    fn compile_with(config: &Json, coverage: Coverage) -> Compiled {
        let opts = CompileOptions {
            coverage,
            protect: Protect::default(),
            env: &|_| None,
        };
        compile(config, "config", &opts).unwrap_or_else(|e| panic!("{:?}", e.0))
    }

    fn thread_arena_bytes() -> usize {
        TREE_ARENA.with(|arena| arena.borrow().allocated_bytes())
    }

    /// A two-element array whose value is scrubbed as a `[key, value]` pair still has
    /// its first element scrubbed as text (Relay scrubs both; found by the Relay
    /// differential: an IP in a breadcrumb's `arguments[0]` was kept).
    #[test]
    fn the_key_of_a_scrubbed_pair_is_scrubbed_as_text_too() {
        let rules = compiled(serde_json::json!({
            "piiConfig": {"applications": {"$string": ["@ip:replace", "@password:remove"]}}
        }));
        let event = br#"{"extra":{"args":["connection from 10.1.2.3 refused","password"],"pair":["password","hunter2"]}}"#;
        let out = rules
            .scrub(ItemKind::Event, event, &ScrubOptions::default())
            .unwrap();
        let json: Json = serde_json::from_slice(&out.bytes).unwrap();
        assert_eq!(
            json["extra"]["args"][0], "connection from [ip] refused",
            "{json}"
        );
        assert!(json["extra"]["pair"][1].is_null(), "{json}");
    }

    #[test]
    fn escaped_keys_are_matched_by_their_decoded_text() {
        let config = serde_json::json!({
            "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true},
            "piiConfig": {"applications": {"extra.'caf\u{e9}'": ["@anything:replace"]}}
        });
        let rules = compiled(config);
        // `pass\u0077ord` is `password`, `caf\u00e9` is `café`; the keys stay as sent.
        let event = br#"{"extra":{"pass\u0077ord":"hunter2","caf\u00e9":"x","n":"y"}}"#;
        let out = rules
            .scrub(ItemKind::Event, event, &ScrubOptions::default())
            .unwrap();
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(
            text.starts_with(
                r#"{"extra":{"pass\u0077ord":"[Filtered]","caf\u00e9":"[Filtered]","n":"y"}"#
            ),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json["_meta"]["extra"]["password"][""]["rem"][0][0],
            "@password:filter"
        );
        assert_eq!(
            json["_meta"]["extra"]["café"][""]["rem"][0][0],
            "@anything:replace"
        );
    }

    #[test]
    fn thread_arena_is_reused_but_not_kept_past_its_cap() {
        let config = serde_json::json!({
            "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true}
        });
        let rules = compiled(config);
        let opts = ScrubOptions::default();
        let small = br#"{"extra":{"password":"hunter2","n":[1,2,3]}}"#;
        let out = rules.scrub(ItemKind::Event, small, &opts).unwrap();
        assert!(String::from_utf8(out.bytes).unwrap().contains("[Filtered]"));
        let kept = thread_arena_bytes();
        assert!(kept > 0 && kept <= TREE_ARENA_KEEP, "{kept}");

        // A tree far larger than the cap: 400,000 array elements of 24 bytes.
        let big = format!(r#"{{"extra":{{"n":[{}0]}}}}"#, "0,".repeat(400_000));
        let out = rules.scrub(ItemKind::Event, big.as_bytes(), &opts).unwrap();
        assert_eq!(out.bytes, big.as_bytes());
        let after = thread_arena_bytes();
        assert!(
            after <= TREE_ARENA_KEEP,
            "kept {after} bytes after a large payload"
        );

        // The reset arena serves the next payload as before.
        let out = rules.scrub(ItemKind::Event, small, &opts).unwrap();
        assert!(String::from_utf8(out.bytes).unwrap().contains("[Filtered]"));
    }

    #[test]
    fn an_event_without_an_id_gets_the_new_one_as_its_first_field() {
        let rules = compiled(serde_json::json!({
            "datascrubbingSettings": {"scrubData": true, "scrubDefaults": true}
        }));
        let opts = ScrubOptions::default();
        let new_id = || "0123456789abcdef0123456789abcdef".to_owned();
        for (input, want) in [
            (
                &b"{}"[..],
                r#"{"event_id":"0123456789abcdef0123456789abcdef"}"#,
            ),
            (
                br#"{"message":"hi","extra":{"password":"x"}}"#,
                r#"{"event_id":"0123456789abcdef0123456789abcdef","message":"hi","extra":{"password":"[Filtered]"}"#,
            ),
            // A non-string id is treated as absent, never duplicated.
            (
                br#"{"event_id":null,"message":"hi"}"#,
                r#"{"event_id":"0123456789abcdef0123456789abcdef","message":"hi"}"#,
            ),
        ] {
            let out = rules
                .scrub_assigning_event_id(ItemKind::Event, input, &opts, new_id)
                .unwrap();
            let text = String::from_utf8(out.bytes).unwrap();
            assert!(text.starts_with(want), "{text}");
            assert_eq!(
                out.event_id.as_deref(),
                Some("0123456789abcdef0123456789abcdef")
            );
            serde_json::from_str::<Json>(&text).unwrap();
        }
        // An event with an id keeps it, and the generator is not asked.
        let out = rules
            .scrub_assigning_event_id(
                ItemKind::Event,
                br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}"#,
                &opts,
                || unreachable!("the event has an id"),
            )
            .unwrap();
        assert_eq!(
            out.event_id.as_deref(),
            Some("9ec79c33ec9942ab8353589fcb2e04dc")
        );
        assert_eq!(
            out.bytes,
            br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}"#
        );
    }

    // ---- the typed root of span, log and trace metric records ----------------------------

    /// `item` of `kind` scrubbed under `coverage` by the `piiConfig` applications `apps`.
    fn scrub_json(apps: Json, coverage: Coverage, kind: ItemKind, item: &Json) -> Json {
        let config = serde_json::json!({ "piiConfig": { "applications": apps } });
        let rules = compile_with(&config, coverage).rules;
        let input = serde_json::to_vec(item).unwrap();
        let out = rules.scrub(kind, &input, &ScrubOptions::default()).unwrap();
        serde_json::from_slice(&out.bytes).unwrap()
    }

    /// `item` scrubbed under Relay's coverage by one selector applying `@email`.
    fn email_at(selector: &str, kind: ItemKind, item: &Json) -> Json {
        let apps = serde_json::json!({ selector: ["@email"] });
        scrub_json(apps, Coverage::Relay, kind, item)
    }

    fn log_container() -> Json {
        serde_json::json!({"items": [
            {"timestamp": 1.5, "level": "info", "body": "mail a@example.com",
             "attributes": {"note": {"type": "string", "value": "mail b@example.com"}}},
            {"timestamp": 2.5, "level": "info", "body": "mail c@example.com"}
        ]})
    }

    #[test]
    fn log_body_selector_matches_the_body_of_each_log_record() {
        let before = log_container();
        let out = email_at("$log.body", ItemKind::Log, &before);
        assert_eq!(out["items"][0]["body"], "mail [email]");
        assert_eq!(out["items"][1]["body"], "mail [email]");
        // Only the body: attributes and other fields are as they were.
        assert_eq!(
            out["items"][0]["attributes"],
            before["items"][0]["attributes"]
        );
        assert_eq!(out["items"][0]["level"], "info");
        // The typed root has no `_meta` segment of its own: paths start inside the record.
        let meta = out["items"][0]["_meta"].as_object().unwrap();
        assert_eq!(meta.keys().collect::<Vec<_>>(), ["body"]);
        assert_eq!(
            meta["body"][""]["rem"],
            serde_json::json!([["@email", "s", 5, 12]])
        );
        // A wildcard in the root's place matches as the root level does.
        let out = email_at("*.body", ItemKind::Log, &before);
        assert_eq!(out["items"][1]["body"], "mail [email]");
    }

    #[test]
    fn log_deep_wildcard_reaches_pii_true_fields_only() {
        let before = log_container();
        // The body is pii `maybe` under Relay's coverage: `**` is too sweeping for it.
        let out = email_at("$log.**", ItemKind::Log, &before);
        assert_eq!(out["items"][0]["body"], before["items"][0]["body"]);
        assert_eq!(
            out["items"][0]["attributes"]["note"]["value"],
            "mail [email]"
        );
        // Under coverage "all" the body is pii `true`, and `$log.**` reaches it too.
        let apps = serde_json::json!({"$log.**": ["@email"]});
        let out = scrub_json(apps, Coverage::All, ItemKind::Log, &before);
        assert_eq!(out["items"][0]["body"], "mail [email]");
        assert_eq!(
            out["items"][0]["attributes"]["note"]["value"],
            "mail [email]"
        );
    }

    #[test]
    fn log_root_type_matches_nothing_outside_log_records() {
        // An event's top-level `body` (an unknown key, pii `true`) is no log body.
        let event =
            serde_json::json!({"body": "mail a@example.com", "message": "mail b@example.com"});
        assert_eq!(email_at("$log.body", ItemKind::Event, &event), event);
        // A v2 span's `body` (an unknown key, pii `maybe`) is reached as `$span.body`,
        // never as `$log.body`.
        let spans = serde_json::json!({"items": [
            {"span_id": "9a3b41b84700165a", "name": "GET /", "body": "mail a@example.com"}
        ]});
        assert_eq!(email_at("$log.body", ItemKind::Span, &spans), spans);
        let out = email_at("$span.body", ItemKind::Span, &spans);
        assert_eq!(out["items"][0]["body"], "mail [email]");
        // Nor a legacy span's.
        let span = serde_json::json!({"span_id": "9a3b41b84700165a", "body": "mail a@example.com"});
        assert_eq!(email_at("$log.body", ItemKind::Span, &span), span);
        // `$span` selectors do not reach log records.
        let logs = log_container();
        assert_eq!(email_at("$span.body", ItemKind::Log, &logs), logs);
        assert_eq!(email_at("$span.**", ItemKind::Log, &logs), logs);
    }

    #[test]
    fn a_record_root_is_not_itself_scrubbed() {
        // The root level is pii `false`, as in Relay: a rule selecting the record as a
        // whole leaves it in place.
        let apps = serde_json::json!({"$log": ["@anything:remove"]});
        let logs = log_container();
        assert_eq!(scrub_json(apps, Coverage::All, ItemKind::Log, &logs), logs);
        let apps = serde_json::json!({"$span": ["@anything:remove"]});
        let span =
            serde_json::json!({"span_id": "9a3b41b84700165a", "description": "a@example.com"});
        assert_eq!(scrub_json(apps, Coverage::All, ItemKind::Span, &span), span);
    }

    #[test]
    fn a_legacy_span_is_rooted_as_an_events_span_element() {
        let span = serde_json::json!({
            "span_id": "9a3b41b84700165a", "op": "db",
            "description": "SELECT 'a@example.com'",
            "data": {"foo": "mail b@example.com", "bar": "mail c@example.com"}
        });
        let out = email_at("$span.data.foo", ItemKind::Span, &span);
        assert_eq!(out["data"]["foo"], "mail [email]");
        assert_eq!(out["data"]["bar"], span["data"]["bar"]);
        assert_eq!(out["description"], span["description"]);
        assert_eq!(
            out["_meta"]["data"]["foo"][""]["rem"][0][0],
            serde_json::json!("@email")
        );
        // The same selector on the same span inside an event gives the same span.
        let event = serde_json::json!({"spans": [span.clone()]});
        let in_event = email_at("$span.data.foo", ItemKind::Transaction, &event);
        let mut without_meta = out.clone();
        without_meta.as_object_mut().unwrap().remove("_meta");
        assert_eq!(in_event["spans"][0], without_meta);
        assert_eq!(in_event["_meta"]["spans"]["0"], out["_meta"]);
        // `description` is pii `maybe`: reached by a selector that names it with the type.
        let out = email_at("$span.description", ItemKind::Span, &span);
        assert_eq!(out["description"], "SELECT '[email]'");
        assert_eq!(out["data"], span["data"]);
        // A key path naming a different root type or a deeper level matches nothing.
        assert_eq!(email_at("$log.data.foo", ItemKind::Span, &span), span);
        assert_eq!(email_at("$span.*.data.foo", ItemKind::Span, &span), span);
    }

    #[test]
    fn span_and_trace_metric_roots_are_typed() {
        let spans = serde_json::json!({"items": [
            {"span_id": "9a3b41b84700165a", "name": "GET /",
             "attributes": {"note": {"type": "string", "value": "mail a@example.com"}}}
        ]});
        let out = email_at("$span.attributes.note.value", ItemKind::Span, &spans);
        assert_eq!(
            out["items"][0]["attributes"]["note"]["value"],
            "mail [email]"
        );
        assert_eq!(
            email_at(
                "$trace_metric.attributes.note.value",
                ItemKind::Span,
                &spans
            ),
            spans
        );
        let metrics = serde_json::json!({"items": [
            {"name": "m", "type": "counter", "value": 1,
             "attributes": {"note": {"type": "string", "value": "mail a@example.com"}}}
        ]});
        let out = email_at(
            "$trace_metric.attributes.*.value",
            ItemKind::TraceMetric,
            &metrics,
        );
        assert_eq!(
            out["items"][0]["attributes"]["note"]["value"],
            "mail [email]"
        );
        assert_eq!(
            email_at("$span.attributes.*.value", ItemKind::TraceMetric, &metrics),
            metrics
        );
    }

    #[test]
    fn untyped_record_roots_stay_invisible_to_selectors() {
        // OTLP items and profiles are walked from an `$object` root, which selectors do
        // not see: a wildcard has no level to match above a top-level field.
        let otel = serde_json::json!({"foo": "mail a@example.com"});
        assert_eq!(email_at("*.foo", ItemKind::Otel, &otel), otel);
        assert_eq!(email_at("$object.foo", ItemKind::Otel, &otel), otel);
        let out = email_at("foo", ItemKind::Otel, &otel);
        assert_eq!(out["foo"], "mail [email]");
    }
}
