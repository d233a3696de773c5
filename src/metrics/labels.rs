//! The label values: one enum per bounded label (`as_str()` is the value), and the rule
//! ids a project can report.

use std::collections::HashSet;

use crate::protocol::envelope::ItemType as WireType;

/// The label value for rules and projects not in the loaded config.
pub const UNKNOWN: &str = "unknown";

macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $value:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $value ),+
                }
            }

            pub(super) const fn index(self) -> usize {
                self as usize
            }
        }
    };
}

label_enum! {
    /// `endpoint` label: which ingest route a request took.
    Endpoint {
        /// `/api/{id}/store/`.
        Store => "store",
        /// `/api/{id}/envelope/`.
        Envelope => "envelope",
        /// `/api/{id}/security/` and `/api/{id}/csp-report/`.
        Security => "security",
        /// `/api/{id}/minidump/`.
        Minidump => "minidump",
        /// `/api/{id}/events/{event_id}/attachments/`.
        Attachments => "attachments",
        /// `/api/{id}/unreal/{key}/`.
        Unreal => "unreal",
        /// Anything else (404s, CORS preflights).
        Other => "other",
    }
}

label_enum! {
    /// `event` label of `scrubgate_spool_requests_total`: what happened to a request in
    /// the spool.
    SpoolEvent {
        /// Written to the spool (the upstream could not take it).
        Spooled => "spooled",
        /// Delivered from the spool.
        Replayed => "replayed",
        /// Older than `spool.max_age`: dropped.
        Expired => "expired",
        /// Refused by the upstream with a 4xx on replay: dropped.
        Rejected => "rejected",
        /// Answered 5xx while the upstream took others: retried on its own backoff.
        HeldBack => "held_back",
    }
}

label_enum! {
    /// `state` label of `scrubgate_upstream_state`: the upstream as the breaker sees it.
    UpstreamStateLabel {
        /// Requests go to the upstream.
        Up => "up",
        /// Requests go to the spool until a probe succeeds.
        Down => "down",
        /// The drainer is trying the upstream.
        Probing => "probing",
    }
}

label_enum! {
    /// `status_class` label of request durations: the response status's class.
    StatusClass {
        /// 100-199.
        Informational => "1xx",
        /// 200-299.
        Success => "2xx",
        /// 300-399.
        Redirection => "3xx",
        /// 400-499.
        ClientError => "4xx",
        /// 500-599 (and anything out of range).
        ServerError => "5xx",
    }
}

impl StatusClass {
    /// The class of `status`.
    pub fn from_status(status: http::StatusCode) -> StatusClass {
        match status.as_u16() {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirection,
            400..=499 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }
}

label_enum! {
    /// `status_class` label of upstream durations: the upstream's status class, or why
    /// there was no status.
    UpstreamResult {
        /// Upstream answered 1xx (unusual).
        Informational => "1xx",
        /// Upstream answered 2xx.
        Success => "2xx",
        /// Upstream answered 3xx.
        Redirection => "3xx",
        /// Upstream answered 4xx (including 429).
        ClientError => "4xx",
        /// Upstream answered 5xx.
        ServerError => "5xx",
        /// No answer: connect failure, reset, unreadable response.
        Error => "error",
        /// No answer within `upstream.timeout`.
        Timeout => "timeout",
    }
}

impl UpstreamResult {
    /// The result for an upstream answer with `status`.
    pub fn from_status(status: http::StatusCode) -> UpstreamResult {
        match StatusClass::from_status(status) {
            StatusClass::Informational => UpstreamResult::Informational,
            StatusClass::Success => UpstreamResult::Success,
            StatusClass::Redirection => UpstreamResult::Redirection,
            StatusClass::ClientError => UpstreamResult::ClientError,
            StatusClass::ServerError => UpstreamResult::ServerError,
        }
    }
}

/// `item_type` label: an envelope item's type, by its protocol name (`other` for a type
/// the protocol does not define), or `envelope` for a whole envelope (its header, or a
/// request refused before its items were read). Store and security endpoint bodies
/// count as `event` and `security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemLabel {
    /// One item type.
    Item(WireType),
    /// A whole envelope.
    Envelope,
}

impl ItemLabel {
    /// How many values there are.
    pub const COUNT: usize = WireType::ALL.len() + 1;

    /// Every value: the item types, then `envelope`.
    pub fn all() -> impl Iterator<Item = ItemLabel> {
        WireType::ALL
            .iter()
            .map(|&t| ItemLabel::Item(t))
            .chain([ItemLabel::Envelope])
    }

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ItemLabel::Item(item_type) => item_type.as_str(),
            ItemLabel::Envelope => "envelope",
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            ItemLabel::Item(item_type) => item_type as usize,
            ItemLabel::Envelope => WireType::ALL.len(),
        }
    }
}

impl From<WireType> for ItemLabel {
    fn from(item_type: WireType) -> ItemLabel {
        ItemLabel::Item(item_type)
    }
}

label_enum! {
    /// `outcome` label: what happened to an event or item.
    Outcome {
        /// Forwarded and accepted by the upstream (or written to the outbox).
        Forwarded => "forwarded",
        /// Malformed: bad JSON, bad envelope, corrupt compression, unscrubbable (400).
        Invalid => "invalid",
        /// Over a size limit (413).
        TooLarge => "too_large",
        /// Missing or malformed auth (401).
        Unauthorized => "unauthorized",
        /// Key not valid for the project, disabled key or project (403).
        Forbidden => "forbidden",
        /// No config for the project id.
        UnknownProject => "unknown_project",
        /// The upstream answered 429.
        RateLimited => "rate_limited",
        /// The upstream answered another 4xx.
        UpstreamRejected => "upstream_rejected",
        /// The upstream failed: 5xx, unreachable or timed out.
        UpstreamError => "upstream_error",
        /// An envelope item dropped by policy (unscrubbable type, attachments dropped).
        DroppedItem => "dropped_item",
        /// Refused because too many requests were in flight (503).
        Overloaded => "overloaded",
        /// The upstream could not take it; written to the spool, which delivers it later.
        Spooled => "spooled",
        /// The upstream could not take it and the spool was full or failed (503).
        SpoolFull => "spool_full",
    }
}

label_enum! {
    /// `result` label of config reloads.
    ReloadResult {
        /// The file loaded and is in force.
        Ok => "ok",
        /// The file failed; the previous config (if any) stays in force.
        Error => "error",
    }
}

/// The rule ids a project's config can report, so that `rule` label values stay bounded.
#[derive(Debug, Clone, Default)]
pub struct RuleLabels {
    ids: HashSet<Box<str>>,
}

impl RuleLabels {
    /// The set of known rule ids (e.g. from `CompiledRules::rule_ids()`).
    pub fn new<I, S>(ids: I) -> RuleLabels
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RuleLabels {
            ids: ids.into_iter().map(|s| s.into().into_boxed_str()).collect(),
        }
    }

    /// `rule` when it is known, else [`UNKNOWN`].
    pub fn label<'a>(&'a self, rule: &'a str) -> &'a str {
        if self.ids.contains(rule) {
            rule
        } else {
            UNKNOWN
        }
    }
}
