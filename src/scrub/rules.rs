//! Rule specs (Relay's `piiConfig` JSON), the built-in rules, and their compilation into
//! flat, sorted applications. All validation happens here, at load time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use regex::Regex;
use serde_json::{Map, Value as Json};
use smallvec::SmallVec;

use super::builtin::Pattern;
use super::selector::Selector;
use super::ConfigIssue;

/// How the warning about a hash rule without a key starts.
pub const UNKEYED_HASH_WARNING: &str = "hashes without a key";

/// Compiled size limit for custom regexes (Relay's limit).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

/// HMAC algorithm of a hash redaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HashAlgorithm {
    /// HMAC-SHA1 (Relay's only algorithm; the default).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// How a match is redacted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Redaction {
    /// `default`: inherit the parent's redaction, else remove.
    Default,
    /// Delete the value / empty the span.
    Remove,
    /// Replace with a text.
    Replace(String),
    /// Replace every character with `*`.
    Mask,
    /// Replace with an uppercase hex HMAC.
    Hash {
        /// The HMAC algorithm.
        algorithm: HashAlgorithm,
        /// The key, `None` for Relay's empty key (the project's current key, when it
        /// has one, is filled in at compile time).
        key: Option<Arc<[u8]>>,
    },
}

/// One of a project's hash keys (`vars.hashKey`, or an entry of `vars.hashKeys`).
#[derive(Clone, PartialEq, Eq)]
pub struct HashKey {
    /// The key's id (`hashKey` for `vars.hashKey`), named in pseudonym lookups.
    pub id: Arc<str>,
    /// The key bytes (never empty).
    pub key: Arc<[u8]>,
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never in a log line or a panic message.
        f.debug_struct("HashKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a rule looks for.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// The whole value.
    Anything,
    /// A built-in value pattern.
    Builtin(Pattern),
    /// A custom regex; `groups` are the replaced capture groups (default `{0}`).
    Regex {
        /// The compiled regex.
        regex: Regex,
        /// Replaced groups.
        groups: SmallVec<[u8; 2]>,
    },
    /// The password rule: bearer tokens, sensitive keys, sensitive words in values.
    Password,
    /// Key (or value) matches `key` → whole value.
    RedactPair {
        /// The key pattern.
        key: Regex,
    },
}

/// One flattened rule as applied.
#[derive(Debug, Clone)]
pub struct RuleRef {
    /// The id of the rule that does the work (sort key).
    pub id: Arc<str>,
    /// The id recorded in remarks (the outer id when `hideInner`).
    pub origin: Arc<str>,
    /// What it matches.
    pub kind: Arc<RuleKind>,
    /// How it redacts.
    pub redaction: Redaction,
}

/// A selector and its sorted, de-duplicated rules.
#[derive(Debug, Clone)]
pub struct Application {
    /// Where the rules apply.
    pub selector: Selector,
    /// The selector as written in the config.
    pub source: String,
    /// Rules ordered by id.
    pub rules: Vec<RuleRef>,
}

/// A rule spec as read from JSON.
#[derive(Debug, Clone)]
struct Spec {
    ty: SpecType,
    redaction: Redaction,
}

#[derive(Debug, Clone)]
enum SpecType {
    Kind(Arc<RuleKind>),
    /// A rule type this version does not know.
    Unknown(String),
    Multiple {
        rules: Vec<String>,
        hide_inner: bool,
    },
    Alias {
        rule: String,
        hide_inner: bool,
    },
}

fn builtin_pattern(ty: &str) -> Option<Pattern> {
    Some(match ty {
        "ip" => Pattern::Ip,
        "imei" => Pattern::Imei,
        "mac" => Pattern::Mac,
        "uuid" => Pattern::Uuid,
        "email" => Pattern::Email,
        "iban" => Pattern::Iban,
        "creditcard" => Pattern::Creditcard,
        "pemkey" => Pattern::Pemkey,
        "urlauth" | "url_auth" => Pattern::UrlAuth,
        "usssn" | "us_ssn" => Pattern::UsSsn,
        "userpath" => Pattern::Userpath,
        "bearer" => Pattern::Bearer,
        "deviceid" | "device_id" => Pattern::DeviceId,
        _ => return None,
    })
}

fn replace(text: &str) -> Redaction {
    Redaction::Replace(text.to_string())
}

fn sha1_hash() -> Redaction {
    Redaction::Hash {
        algorithm: HashAlgorithm::Sha1,
        key: None,
    }
}

/// The built-in rule `id`, if there is one.
fn builtin(id: &str) -> Option<Spec> {
    let kind = |k: RuleKind| SpecType::Kind(Arc::new(k));
    let alias = |target: &str| Spec {
        ty: SpecType::Alias {
            rule: target.to_string(),
            hide_inner: true,
        },
        redaction: Redaction::Default,
    };
    let multiple = |rules: &[&str]| Spec {
        ty: SpecType::Multiple {
            rules: rules.iter().map(|s| s.to_string()).collect(),
            hide_inner: false,
        },
        redaction: Redaction::Default,
    };
    match id {
        "@common" => {
            return Some(multiple(&[
                "@iban",
                "@ip",
                "@email",
                "@creditcard",
                "@pemkey",
                "@urlauth",
                "@userpath",
                "@password",
                "@usssn",
                "@bearer",
            ]))
        }
        "@common:filter" => {
            return Some(multiple(&[
                "@creditcard:filter",
                "@iban:filter",
                "@pemkey:filter",
                "@urlauth:legacy",
                "@userpath:filter",
                "@password:filter",
                "@usssn:filter",
                "@bearer:filter",
            ]))
        }
        "@urlauth:legacy" => {
            // Legacy Sentry's URL password pattern: only the password is replaced.
            return Some(Spec {
                ty: kind(RuleKind::Builtin(Pattern::UrlAuthLegacy)),
                redaction: replace("[Filtered]"),
            });
        }
        _ => {}
    }
    let name = id.strip_prefix('@')?;
    let (ty, method) = name.split_once(':').unwrap_or((name, ""));
    let rule_kind = match ty {
        "anything" => RuleKind::Anything,
        "password" => RuleKind::Password,
        other => RuleKind::Builtin(builtin_pattern(other)?),
    };
    // Bare ids are aliases (with hideInner) of one method variant.
    let (default_method, replace_text) = match ty {
        "ip" => ("replace", "[ip]"),
        "imei" => ("replace", "[imei]"),
        "mac" => ("mask", "[mac]"),
        "uuid" => ("mask", "[uuid]"),
        "email" => ("replace", "[email]"),
        "iban" => ("replace", "[iban]"),
        "creditcard" => ("replace", "[creditcard]"),
        "pemkey" => ("replace", "[pemkey]"),
        "urlauth" => ("replace", "[auth]"),
        "usssn" => ("mask", "[us-ssn]"),
        "userpath" => ("replace", "[user]"),
        "password" => ("remove", "[password]"),
        "anything" => ("replace", "[Filtered]"),
        "bearer" => ("replace", "Bearer [token]"),
        "deviceid" => ("replace", "[device-id]"),
        _ => return None,
    };
    if method.is_empty() {
        return Some(alias(&format!("@{ty}:{default_method}")));
    }
    let redaction = match method {
        "replace" => replace(replace_text),
        "remove" => Redaction::Remove,
        "hash" => sha1_hash(),
        // Relay quirk, kept for output compatibility: `@imei:mask` hashes.
        "mask" if ty == "imei" => sha1_hash(),
        "mask" => Redaction::Mask,
        "filter"
            if matches!(
                ty,
                "creditcard"
                    | "iban"
                    | "pemkey"
                    | "usssn"
                    | "password"
                    | "anything"
                    | "userpath"
                    | "bearer"
            ) =>
        {
            replace("[Filtered]")
        }
        _ => return None,
    };
    Some(Spec {
        ty: kind(rule_kind),
        redaction,
    })
}

/// Context for reading one `piiConfig`.
pub struct Reader<'e> {
    /// JSON path prefix of the piiConfig (for error messages).
    pub prefix: String,
    /// Resolves `${NAME}` references.
    pub env: &'e dyn Fn(&str) -> Option<String>,
    /// Problems found.
    pub errors: Vec<ConfigIssue>,
    /// Non-fatal findings.
    pub warnings: Vec<ConfigIssue>,
}

impl<'e> Reader<'e> {
    /// A reader of a config found at JSON path `prefix`, resolving `${NAME}` with `env`.
    pub fn new(prefix: String, env: &'e dyn Fn(&str) -> Option<String>) -> Reader<'e> {
        Reader {
            prefix,
            env,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn error(&mut self, path: impl AsRef<str>, message: impl Into<String>) {
        self.errors.push(ConfigIssue {
            path: format!("{}{}", self.prefix, path.as_ref()),
            message: message.into(),
        });
    }

    fn warn(&mut self, path: impl AsRef<str>, message: impl Into<String>) {
        self.warnings.push(ConfigIssue {
            path: format!("{}{}", self.prefix, path.as_ref()),
            message: message.into(),
        });
    }

    /// A hash key: the literal text, or the environment variable `${NAME}` names. An
    /// empty key is an error, not "no key": it would hash as Relay's unkeyed HMAC while
    /// the operator believes the hashes are keyed.
    fn resolve_secret(&mut self, path: &str, raw: &str) -> Option<Arc<[u8]>> {
        let value = match raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            // `${NAME:-fallback}`: the fallback when NAME is unset (quick starts), with a
            // warning, since a key written in a shared file keys nothing secret.
            Some(inner) if inner.contains(":-") => {
                let (name, fallback) = inner.split_once(":-").unwrap_or((inner, ""));
                match (self.env)(name) {
                    Some(v) if !v.is_empty() => v,
                    _ if fallback.is_empty() => {
                        self.error(
                            path,
                            format!("environment variable {name} is not set and the fallback is empty; a hash key must not be empty"),
                        );
                        return None;
                    }
                    _ => {
                        self.warn(
                            path,
                            format!("environment variable {name} is not set: the hash key is the fallback written in this file, which anyone who has the file can use to reverse hashes by trying candidates; set {name}"),
                        );
                        fallback.to_string()
                    }
                }
            }
            Some(name) => {
                match (self.env)(name) {
                    Some(v) if v.is_empty() => {
                        self.error(
                        path,
                        format!("environment variable {name} is empty; a hash key must not be empty"),
                    );
                        return None;
                    }
                    Some(v) => v,
                    None => {
                        self.error(path, format!("environment variable {name} is not set"));
                        return None;
                    }
                }
            }
            None if raw.is_empty() => {
                self.error(
                    path,
                    "a hash key must not be empty (leave the key out for Relay's unkeyed hash)",
                );
                return None;
            }
            None => raw.to_string(),
        };
        Some(Arc::from(value.into_bytes()))
    }

    /// The project's hash keys from `vars`: `hashKeys` (an ordered list of
    /// `{"id", "key"}`, the first one current) or `hashKey` (one key, id `hashKey`).
    fn read_hash_keys(&mut self, vars: Option<&Json>) -> Vec<HashKey> {
        let Some(vars) = vars else {
            return Vec::new();
        };
        let Some(obj) = vars.as_object() else {
            self.error(".vars", "must be an object");
            return Vec::new();
        };
        for key in obj.keys() {
            if !matches!(key.as_str(), "hashKey" | "hashKeys") {
                let hint = super::suggest::did_you_mean(key, &["hashKey", "hashKeys"]);
                self.error(
                    format!(".vars.{key}"),
                    format!("unknown key (expected hashKey or hashKeys){hint}"),
                );
            }
        }
        let mut keys = Vec::new();
        match (obj.get("hashKey"), obj.get("hashKeys")) {
            (Some(_), Some(_)) => self.error(
                ".vars",
                "set hashKey or hashKeys, not both (hashKeys' first entry is the current key)",
            ),
            (Some(Json::String(k)), None) => {
                if let Some(key) = self.resolve_secret(".vars.hashKey", k) {
                    keys.push(HashKey {
                        id: Arc::from("hashKey"),
                        key,
                    });
                }
            }
            (Some(_), None) => self.error(".vars.hashKey", "must be a string"),
            (None, Some(Json::Array(list))) => {
                if list.is_empty() {
                    self.error(".vars.hashKeys", "must list at least one key");
                }
                for (i, entry) in list.iter().enumerate() {
                    let path = format!(".vars.hashKeys.{i}");
                    let (Some(id), Some(raw)) = (
                        entry.get("id").and_then(Json::as_str),
                        entry.get("key").and_then(Json::as_str),
                    ) else {
                        self.error(&path, "must be an object with string \"id\" and \"key\"");
                        continue;
                    };
                    if keys.iter().any(|k: &HashKey| &*k.id == id) {
                        self.error(
                            format!("{path}.id"),
                            format!("key id {id:?} is listed twice"),
                        );
                    }
                    if let Some(key) = self.resolve_secret(&format!("{path}.key"), raw) {
                        keys.push(HashKey {
                            id: Arc::from(id),
                            key,
                        });
                    }
                }
            }
            (None, Some(_)) => self.error(
                ".vars.hashKeys",
                "must be an array of {\"id\": ..., \"key\": ...}, the current key first",
            ),
            (None, None) => {}
        }
        keys
    }

    fn read_redaction(
        &mut self,
        path: &str,
        v: Option<&Json>,
        default_key: &Option<Arc<[u8]>>,
    ) -> Redaction {
        let Some(v) = v else {
            return Redaction::Default;
        };
        let Some(obj) = v.as_object() else {
            self.error(path, "must be an object with a \"method\"");
            return Redaction::Default;
        };
        let method = obj
            .get("method")
            .and_then(Json::as_str)
            .unwrap_or("default");
        match method {
            "default" => Redaction::Default,
            "remove" => Redaction::Remove,
            "mask" => Redaction::Mask,
            "replace" => match obj.get("text") {
                None => replace("[Filtered]"),
                Some(Json::String(t)) => Redaction::Replace(t.clone()),
                Some(_) => {
                    self.error(format!("{path}.text"), "must be a string");
                    Redaction::Default
                }
            },
            "hash" => {
                let algorithm = match obj.get("algorithm").map(|a| a.as_str()) {
                    None | Some(Some("HMAC-SHA1")) => HashAlgorithm::Sha1,
                    Some(Some("HMAC-SHA256")) => HashAlgorithm::Sha256,
                    Some(Some("HMAC-SHA512")) => HashAlgorithm::Sha512,
                    Some(_) => {
                        self.error(
                            format!("{path}.algorithm"),
                            "unknown hash algorithm (expected HMAC-SHA1, HMAC-SHA256 or HMAC-SHA512)",
                        );
                        HashAlgorithm::Sha1
                    }
                };
                let key = match obj.get("key") {
                    None => default_key.clone(),
                    Some(Json::String(k)) => self.resolve_secret(&format!("{path}.key"), k),
                    Some(_) => {
                        self.error(format!("{path}.key"), "must be a string");
                        None
                    }
                };
                Redaction::Hash { algorithm, key }
            }
            other => {
                self.error(
                    format!("{path}.method"),
                    format!("unknown redaction method {other:?} (expected remove, replace, mask, hash or default)"),
                );
                Redaction::Default
            }
        }
    }

    fn read_regex(
        &mut self,
        path: &str,
        v: Option<&Json>,
        case_insensitive: bool,
    ) -> Option<Regex> {
        let Some(Json::String(src)) = v else {
            self.error(path, "must be a string (a regular expression)");
            return None;
        };
        match regex::RegexBuilder::new(src)
            .size_limit(REGEX_SIZE_LIMIT)
            .case_insensitive(case_insensitive)
            .build()
        {
            Ok(r) => Some(r),
            Err(e) => {
                let msg = match e {
                    regex::Error::CompiledTooBig(limit) => {
                        format!("regex is too large once compiled (limit {limit} bytes)")
                    }
                    other => format!("invalid regex: {}", other.to_string().replace('\n', " ")),
                };
                self.error(path, msg);
                None
            }
        }
    }

    fn read_rule(&mut self, id: &str, v: &Json, default_key: &Option<Arc<[u8]>>) -> Option<Spec> {
        let path = format!("rules.{id}");
        let Some(obj) = v.as_object() else {
            self.error(&path, "must be an object");
            return None;
        };
        let redaction = self.read_redaction(
            &format!("{path}.redaction"),
            obj.get("redaction"),
            default_key,
        );
        let ty = obj.get("type").and_then(Json::as_str).unwrap_or("");
        let kind = |k| Some(SpecType::Kind(Arc::new(k)));
        let spec_type = match ty {
            "pattern" => {
                let regex = self.read_regex(&format!("{path}.pattern"), obj.get("pattern"), false);
                let groups = match obj.get("replaceGroups") {
                    None | Some(Json::Null) => SmallVec::from_slice(&[0]),
                    Some(Json::Array(gs)) => {
                        let mut out = SmallVec::new();
                        for (i, g) in gs.iter().enumerate() {
                            match g.as_u64().filter(|g| *g < 256) {
                                Some(g) => out.push(g as u8),
                                None => self.error(
                                    format!("{path}.replaceGroups.{i}"),
                                    "must be a group index (0-255)",
                                ),
                            }
                        }
                        if let Some(r) = &regex {
                            for g in &out {
                                if usize::from(*g) >= r.captures_len() {
                                    self.error(
                                        format!("{path}.replaceGroups"),
                                        format!("group {g} does not exist in the pattern"),
                                    );
                                }
                            }
                        }
                        out
                    }
                    Some(_) => {
                        self.error(
                            format!("{path}.replaceGroups"),
                            "must be an array of group indices",
                        );
                        SmallVec::new()
                    }
                };
                regex.and_then(|regex| kind(RuleKind::Regex { regex, groups }))
            }
            "redact_pair" | "redactPair" => self
                .read_regex(&format!("{path}.keyPattern"), obj.get("keyPattern"), false)
                .and_then(|key| kind(RuleKind::RedactPair { key })),
            "anything" => kind(RuleKind::Anything),
            "password" => kind(RuleKind::Password),
            "multiple" => {
                let rules = self.read_id_list(&format!("{path}.rules"), obj.get("rules"));
                Some(SpecType::Multiple {
                    rules,
                    hide_inner: obj
                        .get("hideInner")
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
                })
            }
            "alias" => match obj.get("rule").and_then(Json::as_str) {
                Some(rule) => Some(SpecType::Alias {
                    rule: rule.to_string(),
                    hide_inner: obj
                        .get("hideInner")
                        .and_then(Json::as_bool)
                        .unwrap_or(false),
                }),
                None => {
                    self.error(format!("{path}.rule"), "must be a rule id");
                    None
                }
            },
            other => {
                match builtin_pattern(other).filter(|_| other != "urlauth" && other != "usssn") {
                    Some(p) => kind(RuleKind::Builtin(p)),
                    None => {
                        // Relay ignores unknown types (forward compatibility); so do we,
                        // with a warning, unless an application uses the rule: then it
                        // would silently scrub nothing, and the config is refused.
                        self.warn(
                            format!("{path}.type"),
                            format!("unknown rule type {other:?}; the rule is ignored"),
                        );
                        Some(SpecType::Unknown(other.to_string()))
                    }
                }
            }
        }?;
        Some(Spec {
            ty: spec_type,
            redaction,
        })
    }

    fn read_id_list(&mut self, path: &str, v: Option<&Json>) -> Vec<String> {
        let Some(Json::Array(items)) = v else {
            self.error(path, "must be an array of rule ids");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => self.error(format!("{path}.{i}"), "must be a rule id (string)"),
            }
        }
        out
    }
}

/// The compiled form of one `piiConfig`.
#[derive(Debug, Clone, Default)]
pub struct CompiledPii {
    /// Applications in order.
    pub applications: Vec<Application>,
    /// The hash keys of `vars`, the current one first (empty: Relay's unkeyed hash).
    pub hash_keys: Vec<HashKey>,
}

/// Reads and compiles a `piiConfig` object. Hashes without a key of their own use the
/// current key of `vars` or, when the config has no `vars` keys, `inherited_keys` (the
/// project's keys, for configs generated from its settings).
pub fn compile_pii_config(
    reader: &mut Reader<'_>,
    v: &Json,
    inherited_keys: &[HashKey],
) -> CompiledPii {
    let Some(obj) = v.as_object() else {
        if !v.is_null() {
            reader.error("", "must be an object");
        }
        return CompiledPii::default();
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "rules" | "vars" | "applications") {
            let hint = super::suggest::did_you_mean(key, &["rules", "vars", "applications"]);
            reader.error(
                format!(".{key}"),
                format!("unknown key (expected rules, vars or applications){hint}"),
            );
        }
    }
    let mut hash_keys = reader.read_hash_keys(obj.get("vars"));
    if hash_keys.is_empty() {
        hash_keys = inherited_keys.to_vec();
    }
    let default_key = hash_keys.first().map(|k| k.key.clone());
    let mut specs: BTreeMap<String, Spec> = BTreeMap::new();
    if let Some(rules) = obj.get("rules") {
        match rules.as_object() {
            Some(rules) => {
                let saved = std::mem::take(&mut reader.prefix);
                reader.prefix = format!("{saved}.");
                for (id, spec) in rules {
                    if let Some(spec) = reader.read_rule(id, spec, &default_key) {
                        specs.insert(id.clone(), spec);
                    }
                }
                reader.prefix = saved;
            }
            None => reader.error(".rules", "must be an object of rule id to rule"),
        }
    }
    let mut applications = Vec::new();
    match obj.get("applications") {
        None => {}
        Some(Json::Object(apps)) => {
            for (sel_src, ids) in apps {
                let path = format!(".applications.'{sel_src}'");
                let selector = match Selector::parse(sel_src) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        reader.error(&path, format!("invalid selector: {e}"));
                        None
                    }
                };
                let ids = reader.read_id_list(&path, Some(ids));
                let mut rules: Vec<RuleRef> = Vec::new();
                for (i, id) in ids.iter().enumerate() {
                    let mut stack = Vec::new();
                    if let Err(msg) = flatten(&specs, id, None, &mut rules, &mut stack) {
                        reader.error(format!("{path}.{i}"), msg);
                    }
                }
                // The project's key keys every hash it makes, the built-in `:hash` rules
                // included; a rule's own `redaction.key` wins (it is already set).
                if let Some(k) = &default_key {
                    for r in &mut rules {
                        if let Redaction::Hash {
                            key: key @ None, ..
                        } = &mut r.redaction
                        {
                            *key = Some(k.clone());
                        }
                    }
                }
                rules.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.origin.cmp(&b.origin)));
                rules.dedup_by(|a, b| {
                    a.id == b.id && a.origin == b.origin && a.redaction == b.redaction
                });
                for r in &rules {
                    if matches!(&r.redaction, Redaction::Hash { key: None, .. }) {
                        reader.warn(
                            format!("{path}.{}", r.origin),
                            format!("{UNKEYED_HASH_WARNING}: an unkeyed hash of an IP address or email can be reversed by trying candidates; set redaction.key or vars.hashKey"),
                        );
                    }
                }
                if let Some(selector) = selector {
                    applications.push(Application {
                        selector,
                        source: sel_src.clone(),
                        rules,
                    });
                }
            }
        }
        Some(_) => reader.error(".applications", "must be an object of selector to rule ids"),
    }
    sort_applications(reader, &mut applications);
    reader.warnings.dedup();
    CompiledPii {
        applications,
        hash_keys,
    }
}

/// Orders applications the way Relay's `BTreeMap<SelectorSpec, _>` does: by the parsed
/// selector (see [`Selector`]'s order), not by its text. Two selectors that parse the same
/// (`$string` and `freeform`, `a` and `'a'`) are one map key in Relay, where the later one
/// in the config replaces the earlier: so here, with a warning naming both. (`a.B` and
/// `a.b` are two keys, as in Relay: both apply, `B` first.)
fn sort_applications(reader: &mut Reader<'_>, apps: &mut Vec<Application>) {
    // Stable: equal selectors stay in config order, so the last of a run is the later one.
    apps.sort_by(|a, b| a.selector.cmp(&b.selector));
    let mut kept: Vec<Application> = Vec::with_capacity(apps.len());
    for app in apps.drain(..) {
        match kept.last_mut() {
            Some(prev) if prev.selector == app.selector => {
                reader.warn(
                    format!(".applications.'{}'", prev.source),
                    format!(
                        "selects the same fields as '{}', which replaces it (as in Relay); merge their rules into one selector",
                        app.source
                    ),
                );
                *prev = app;
            }
            _ => kept.push(app),
        }
    }
    *apps = kept;
}

/// Resolves `id` (custom rules first, then built-ins) into flat rule refs.
fn flatten(
    specs: &BTreeMap<String, Spec>,
    id: &str,
    parent: Option<(&str, &Redaction, bool)>,
    out: &mut Vec<RuleRef>,
    stack: &mut Vec<String>,
) -> Result<(), String> {
    if stack.iter().any(|s| s == id) {
        return Err(format!("rule {id:?} refers to itself"));
    }
    let builtin_spec;
    let spec = match specs.get(id) {
        Some(s) => s,
        None => {
            builtin_spec = builtin(id).ok_or_else(|| format!("unknown rule id {id:?}"))?;
            &builtin_spec
        }
    };
    // A parent's redaction overrides the child's unless it is `default`.
    let redaction = match parent {
        Some((_, r, _)) if *r != Redaction::Default => r.clone(),
        _ => spec.redaction.clone(),
    };
    let origin_for = |own: &str| -> String {
        match parent {
            Some((outer, _, true)) => outer.to_string(),
            _ => own.to_string(),
        }
    };
    stack.push(id.to_string());
    let result = match &spec.ty {
        SpecType::Unknown(ty) => Err(format!(
            "rule {id:?} has an unknown type {ty:?}: applying it would scrub nothing"
        )),
        SpecType::Kind(kind) => {
            out.push(RuleRef {
                id: Arc::from(id),
                origin: Arc::from(origin_for(id).as_str()),
                kind: kind.clone(),
                redaction: match redaction {
                    Redaction::Default => Redaction::Remove,
                    r => r,
                },
            });
            Ok(())
        }
        SpecType::Multiple { rules, hide_inner } => {
            let origin = origin_for(id);
            let mut res = Ok(());
            for r in rules {
                let hide = *hide_inner || matches!(parent, Some((_, _, true)));
                if let Err(e) = flatten(specs, r, Some((&origin, &redaction, hide)), out, stack) {
                    res = Err(e);
                }
            }
            res
        }
        SpecType::Alias { rule, hide_inner } => {
            let origin = origin_for(id);
            let hide = *hide_inner || matches!(parent, Some((_, _, true)));
            flatten(specs, rule, Some((&origin, &redaction, hide)), out, stack)
        }
    };
    stack.pop();
    result
}

/// Every rule id that can appear in remarks (for bounded metric labels).
pub fn origins(apps: &[Application]) -> BTreeSet<String> {
    apps.iter()
        .flat_map(|a| a.rules.iter().map(|r| r.origin.to_string()))
        .collect()
}

/// Builds a piiConfig JSON object (used by the legacy conversion).
pub fn pii_config_json(rules: Map<String, Json>, applications: Vec<(String, Vec<&str>)>) -> Json {
    let mut apps = Map::new();
    for (sel, ids) in applications {
        apps.insert(
            sel,
            Json::Array(ids.into_iter().map(|s| Json::String(s.into())).collect()),
        );
    }
    let mut obj = Map::new();
    obj.insert("rules".into(), Json::Object(rules));
    obj.insert("applications".into(), Json::Object(apps));
    Json::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(v: Json) -> (CompiledPii, Vec<ConfigIssue>, Vec<ConfigIssue>) {
        let env = |name: &str| (name == "MY_KEY").then(|| "s3cret".to_string());
        let mut r = Reader {
            prefix: "piiConfig".into(),
            env: &env,
            errors: vec![],
            warnings: vec![],
        };
        let c = compile_pii_config(&mut r, &v, &[]);
        (c, r.errors, r.warnings)
    }

    #[test]
    fn every_builtin_type_has_all_methods() {
        for ty in [
            "creditcard",
            "password",
            "ip",
            "imei",
            "email",
            "uuid",
            "pemkey",
            "urlauth",
            "usssn",
            "userpath",
            "mac",
            "anything",
            "iban",
            "bearer",
        ] {
            for m in ["", ":mask", ":remove", ":hash", ":replace"] {
                let id = format!("@{ty}{m}");
                assert!(builtin(&id).is_some(), "missing builtin {id}");
            }
        }
        for id in [
            "@common",
            "@common:filter",
            "@urlauth:legacy",
            "@password:filter",
            "@anything:filter",
            "@bearer:filter",
        ] {
            assert!(builtin(id).is_some(), "missing builtin {id}");
        }
        assert!(builtin("@email:filter").is_none());
        assert!(builtin("@nope").is_none());
    }

    #[test]
    fn bare_ids_alias_with_hide_inner() {
        let (c, errors, _) = compile(serde_json::json!({"applications": {"$string": ["@ip"]}}));
        assert!(errors.is_empty());
        let r = &c.applications[0].rules[0];
        assert_eq!(&*r.id, "@ip:replace");
        assert_eq!(&*r.origin, "@ip");
        assert_eq!(r.redaction, Redaction::Replace("[ip]".into()));
    }

    #[test]
    fn common_filter_flattens_sorted_without_hiding() {
        let (c, errors, _) =
            compile(serde_json::json!({"applications": {"$string": ["@common:filter"]}}));
        assert!(errors.is_empty());
        let ids: Vec<_> = c.applications[0]
            .rules
            .iter()
            .map(|r| r.origin.to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "@bearer:filter",
                "@creditcard:filter",
                "@iban:filter",
                "@password:filter",
                "@pemkey:filter",
                "@urlauth:legacy",
                "@userpath:filter",
                "@usssn:filter"
            ]
        );
    }

    #[test]
    fn custom_rule_overrides_builtin_and_parent_redaction_wins() {
        let (c, errors, _) = compile(serde_json::json!({
            "rules": {
                "0": {"type": "ip", "redaction": {"method": "replace"}},
                "both": {"type": "multiple", "rules": ["@email", "0"], "hideInner": true,
                         "redaction": {"method": "mask"}}
            },
            "applications": {"$string": ["both"]}
        }));
        assert!(errors.is_empty(), "{errors:?}");
        let rules = &c.applications[0].rules;
        assert_eq!(rules.len(), 2);
        assert!(rules
            .iter()
            .all(|r| &*r.origin == "both" && r.redaction == Redaction::Mask));
    }

    #[test]
    fn errors_name_the_path() {
        let (_, errors, _) = compile(serde_json::json!({
            "rules": {
                "bad_re": {"type": "pattern", "pattern": "(unclosed"},
                "bad_method": {"type": "email", "redaction": {"method": "shred"}},
                "bad_type": {"type": "telepathy"},
                "big": {"type": "pattern", "pattern": "\\w{1000}\\w{1000}\\w{1000}"},
                "bad_group": {"type": "pattern", "pattern": "(a)", "replaceGroups": [2]},
                "env_key": {"type": "anything", "redaction": {"method": "hash", "key": "${MISSING}"}}
            },
            "applications": {"$string": ["nope"], "$nosuch": ["@ip"], "extra.": ["@ip"]}
        }));
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "piiConfig.rules.bad_re.pattern",
            "piiConfig.rules.bad_method.redaction.method",
            "piiConfig.rules.big.pattern",
            "piiConfig.rules.bad_group.replaceGroups",
            "piiConfig.rules.env_key.redaction.key",
            "piiConfig.applications.'$string'.0",
            "piiConfig.applications.'$nosuch'",
            "piiConfig.applications.'extra.'",
        ] {
            assert!(
                paths.contains(&expected),
                "no error at {expected}: {errors:#?}"
            );
        }
        assert!(errors.iter().any(|e| e.message.contains("MISSING")));
        assert!(errors.iter().any(|e| e.message.contains("too large")));
    }

    #[test]
    fn keyed_hash_from_env_and_unkeyed_warning() {
        let (c, errors, warnings) = compile(serde_json::json!({
            "rules": {"k": {"type": "email", "redaction": {"method": "hash", "algorithm": "HMAC-SHA256", "key": "${MY_KEY}"}}},
            "applications": {"$string": ["k", "@ip:hash"]}
        }));
        assert!(errors.is_empty(), "{errors:?}");
        let k = c.applications[0]
            .rules
            .iter()
            .find(|r| &*r.id == "k")
            .unwrap();
        assert_eq!(
            k.redaction,
            Redaction::Hash {
                algorithm: HashAlgorithm::Sha256,
                key: Some(Arc::from(b"s3cret".to_vec()))
            }
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].path.ends_with("@ip:hash"));
    }

    #[test]
    fn unknown_rule_types_are_ignored_unless_applied() {
        let (_, errors, warnings) = compile(serde_json::json!({
            "rules": {"future": {"type": "telepathy"}},
            "applications": {"$string": ["@ip"]}
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.path == "piiConfig.rules.future.type"),
            "{warnings:?}"
        );
        let (_, errors, _) = compile(serde_json::json!({
            "rules": {"future": {"type": "telepathy"}},
            "applications": {"$string": ["future"]}
        }));
        assert!(
            errors
                .iter()
                .any(|e| e.path == "piiConfig.applications.'$string'.0"
                    && e.message.contains("unknown type")),
            "{errors:?}"
        );
    }

    #[test]
    fn self_reference_is_an_error() {
        let (_, errors, _) = compile(serde_json::json!({
            "rules": {"a": {"type": "alias", "rule": "b"}, "b": {"type": "alias", "rule": "a"}},
            "applications": {"$string": ["a"]}
        }));
        assert!(errors
            .iter()
            .any(|e| e.message.contains("refers to itself")));
    }
}
