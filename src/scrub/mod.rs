//! The scrubbing engine (pure: no I/O, no tokio, no metrics).
//!
//! Rules in, event in, scrubbed event and a report out.

pub mod builtin;

use std::net::IpAddr;

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
    /// An envelope header (`trace.user_id`).
    EnvelopeHeader,
}

/// Per-call inputs that are not part of the rules.
#[derive(Debug, Clone, Default)]
pub struct ScrubOptions {
    /// The client IP used to resolve `{{auto}}` in `user.ip_address`.
    pub client_ip: Option<IpAddr>,
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
    /// Dotted path of the changed value, e.g. `user.email`.
    pub path: String,
    /// The rule id as it appears in `_meta` remarks.
    pub rule: String,
    /// How the value was changed.
    pub method: Method,
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
}

// ---------------------------------------------------------------------------
// TEMPORARY API SKELETON: the engine lands in later commits; the signatures
// below are the contract other modules build against.
// ---------------------------------------------------------------------------

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
    /// The payload is JSON but not an object.
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

/// What happens to envelope `attachment` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachmentPolicy {
    /// Forward attachments unchanged (default).
    #[default]
    Forward,
    /// Drop attachments (counted).
    Drop,
}

/// A public key of a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// 32 hex characters.
    pub public_key: String,
    /// Disabled keys are refused with 403.
    pub is_enabled: bool,
}

/// A loaded, validated and compiled project config.
#[derive(Debug)]
pub struct ProjectConfig {
    /// `projectId` from the file, if present.
    pub project_id: Option<u64>,
    /// A disabled project refuses all events (403).
    pub disabled: bool,
    /// The project's public keys.
    pub public_keys: Vec<PublicKey>,
    /// True when the project's rules remove IP addresses (`scrubIpAddresses`);
    /// then no client IP is forwarded in any header.
    pub scrubs_ip_addresses: bool,
    /// What to do with attachment items (`config.scrubgate.attachments`).
    pub attachments: AttachmentPolicy,
    /// Forward envelope item types the engine cannot scrub
    /// (`config.scrubgate.forwardUnknownItems`, default false: drop them).
    pub forward_unknown_items: bool,
    /// Warnings (not errors), e.g. a hash rule without a key.
    pub warnings: Vec<ConfigIssue>,
    /// The compiled rules.
    pub rules: CompiledRules,
}

/// Compiled processor instructions of one project.
#[derive(Debug, Default)]
pub struct CompiledRules {}

impl ProjectConfig {
    /// Parses, validates and compiles a project config in Relay's JSON format.
    /// `env` resolves `${NAME}` references in hash keys.
    pub fn from_json(
        _bytes: &[u8],
        _env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProjectConfig, ConfigErrors> {
        unimplemented!("engine lands later")
    }
}

impl CompiledRules {
    /// Scrubs one payload of the given kind.
    pub fn scrub(
        &self,
        _kind: ItemKind,
        _input: &[u8],
        _opts: &ScrubOptions,
    ) -> Result<Scrubbed, ScrubError> {
        unimplemented!("engine lands later")
    }

    /// Every rule id that can appear in a report (bounded metric label values).
    pub fn rule_ids(&self) -> Vec<String> {
        Vec::new()
    }
}
