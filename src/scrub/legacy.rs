//! Default data scrubbing (`datascrubbingSettings`) converted into a `piiConfig`, the way
//! Relay converts it, so both paths share one engine.

use serde_json::{Map, Value as Json};

use super::rules::pii_config_json;
use super::selector::Selector;
use super::ConfigIssue;

/// Relay's `DataScrubbingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataScrubbingSettings {
    /// `scrubData`
    pub scrub_data: bool,
    /// `scrubDefaults`
    pub scrub_defaults: bool,
    /// `scrubIpAddresses`
    pub scrub_ip_addresses: bool,
    /// `sensitiveFields`
    pub sensitive_fields: Vec<String>,
    /// `excludeFields`
    pub exclude_fields: Vec<String>,
}

/// Cookies that are always filtered under the default scrubbing.
const SENSITIVE_COOKIES: &[&str] = &[
    "sentrysid",
    "sudo",
    "su",
    "session",
    "__session",
    "sessionid",
    "user_session",
    "symfony",
    "phpsessid",
    "fasthttpsessionid",
    "mysession",
    "irissessionid",
    "_vercel_jwt",
    "csrf",
    "xsrf",
    "_xsrf",
    "_csrf",
    "csrf-token",
    "csrf_token",
    "xsrf-token",
    "xsrf_token",
    "fastcsrf",
    "_iris_csrf",
];

/// Fields the default scrubbing never touches.
const IGNORED: &str = "debug_meta.** || $frame.filename || $frame.abs_path || $logentry.formatted || $error.value || $http.headers.user-agent";

/// Fields that only get non-destructive replacements.
const REPLACE_ONLY: &str = "$logentry.formatted || $log.body";

/// Fields that hold the client IP.
const KNOWN_IP_FIELDS: &str =
    "$http.env.REMOTE_ADDR || $user.ip_address || $sdk.client_ip || $span.sentry_tags.'user.ip'";

fn quote_key(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl DataScrubbingSettings {
    /// Reads the settings object, reporting type errors under `path`.
    pub fn from_json(v: &Json, path: &str, errors: &mut Vec<ConfigIssue>) -> Self {
        let mut out = DataScrubbingSettings::default();
        let Some(obj) = v.as_object() else {
            if !v.is_null() {
                errors.push(ConfigIssue {
                    path: path.to_string(),
                    message: "must be an object".into(),
                });
            }
            return out;
        };
        // Relay's names, and the names of Sentry's project API (operators copy settings
        // from there). Any other key is a typo that would silently scrub less.
        const KEYS: [(&str, Option<&str>); 5] = [
            ("scrubData", Some("dataScrubber")),
            ("scrubDefaults", Some("dataScrubberDefaults")),
            ("scrubIpAddresses", Some("scrubIPAddresses")),
            ("sensitiveFields", None),
            ("excludeFields", Some("safeFields")),
        ];
        let known: Vec<&str> = KEYS
            .iter()
            .flat_map(|(name, alias)| std::iter::once(*name).chain(*alias))
            .collect();
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                errors.push(ConfigIssue {
                    path: format!("{path}.{key}"),
                    message: format!(
                        "unknown key (expected scrubData, scrubDefaults, scrubIpAddresses, sensitiveFields or excludeFields){}",
                        super::suggest::did_you_mean(key, &known)
                    ),
                });
            }
        }
        // The value of `name`, under its Relay name or its Sentry API alias.
        let get = |name: &str, errors: &mut Vec<ConfigIssue>| -> Option<(String, &Json)> {
            let alias = KEYS.iter().find(|(n, _)| *n == name).and_then(|(_, a)| *a);
            match (obj.get(name), alias.and_then(|a| obj.get(a))) {
                (Some(v), Some(_)) => {
                    errors.push(ConfigIssue {
                        path: format!("{path}.{}", alias.unwrap_or(name)),
                        message: format!("{name} is set under two names; keep one"),
                    });
                    Some((name.to_string(), v))
                }
                (Some(v), None) => Some((name.to_string(), v)),
                (None, Some(v)) => Some((alias.unwrap_or(name).to_string(), v)),
                (None, None) => None,
            }
        };
        let flag = |name: &str, errors: &mut Vec<ConfigIssue>| match get(name, errors) {
            None | Some((_, Json::Null)) => false,
            Some((_, Json::Bool(b))) => *b,
            Some((key, _)) => {
                errors.push(ConfigIssue {
                    path: format!("{path}.{key}"),
                    message: "must be true or false".into(),
                });
                false
            }
        };
        out.scrub_data = flag("scrubData", errors);
        out.scrub_defaults = flag("scrubDefaults", errors);
        out.scrub_ip_addresses = flag("scrubIpAddresses", errors);
        let list = |name: &str, errors: &mut Vec<ConfigIssue>| -> Vec<String> {
            match get(name, errors) {
                None | Some((_, Json::Null)) => Vec::new(),
                Some((key, Json::Array(items))) => items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match s.as_str() {
                        Some(s) => Some(s.to_string()),
                        None => {
                            errors.push(ConfigIssue {
                                path: format!("{path}.{key}.{i}"),
                                message: "must be a string".into(),
                            });
                            None
                        }
                    })
                    .collect(),
                // Sentry's project API also takes these as newline-separated text.
                Some((_, Json::String(text))) => text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
                Some((key, _)) => {
                    errors.push(ConfigIssue {
                        path: format!("{path}.{key}"),
                        message: "must be an array of strings".into(),
                    });
                    Vec::new()
                }
            }
        };
        out.sensitive_fields = list("sensitiveFields", errors);
        out.exclude_fields = list("excludeFields", errors);
        out
    }

    /// The equivalent `piiConfig`, or `None` when the settings scrub nothing.
    pub fn to_pii_config(&self) -> Option<Json> {
        if !self.scrub_data && !self.scrub_ip_addresses {
            return None;
        }
        let mut base = format!("($string || $number || $array || $object) && !({IGNORED})");
        for field in &self.exclude_fields {
            let field = field.trim();
            if field.is_empty() {
                continue;
            }
            // A safe field is a selector when it parses as one, else a literal key.
            let sel = if Selector::parse(field).is_ok() {
                field.to_string()
            } else {
                quote_key(field)
            };
            base.push_str(&format!(" && !({sel})"));
        }
        let mut rules = Map::new();
        let mut apps: Vec<(String, Vec<&str>)> = Vec::new();
        let mut base_rules = Vec::new();
        if self.scrub_data && self.scrub_defaults {
            base_rules.push("@common:filter");
            let cookies = SENSITIVE_COOKIES
                .iter()
                .map(|c| format!("*.cookies.{}", quote_key(c)))
                .collect::<Vec<_>>()
                .join(" || ");
            apps.push((cookies, vec!["@anything:filter"]));
            apps.push((
                REPLACE_ONLY.to_string(),
                vec![
                    "@email:replace",
                    "@creditcard:replace",
                    "@iban:replace",
                    "@usssn:replace",
                    "@bearer:replace",
                ],
            ));
        }
        if self.scrub_ip_addresses {
            base_rules.push("@ip:replace");
            apps.push((KNOWN_IP_FIELDS.to_string(), vec!["@anything:remove"]));
        }
        let fields: Vec<String> = self
            .sensitive_fields
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
            .map(regex::escape)
            .collect();
        if self.scrub_data && !fields.is_empty() {
            let mut rule = Map::new();
            rule.insert("type".into(), "redact_pair".into());
            rule.insert(
                "keyPattern".into(),
                format!("(?i){}", fields.join("|")).into(),
            );
            let mut redaction = Map::new();
            redaction.insert("method".into(), "replace".into());
            redaction.insert("text".into(), "[Filtered]".into());
            rule.insert("redaction".into(), Json::Object(redaction));
            rules.insert("strip-fields".into(), Json::Object(rule));
            base_rules.push("strip-fields");
        }
        if !base_rules.is_empty() {
            apps.push((base, base_rules));
        }
        Some(pii_config_json(rules, apps))
    }
}
