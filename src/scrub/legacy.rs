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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scrub::scrub_event_with;

    fn read(v: Json) -> (DataScrubbingSettings, Vec<ConfigIssue>) {
        let mut errors = Vec::new();
        let settings = DataScrubbingSettings::from_json(&v, "ds", &mut errors);
        (settings, errors)
    }

    fn messages(errors: &[ConfigIssue]) -> Vec<String> {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    }

    /// Scrubs `event` with the project whose `datascrubbingSettings` are `settings`.
    fn scrub(settings: Json, event: Json) -> Json {
        let config = json!({ "datascrubbingSettings": settings });
        scrub_event_with(&config, event.to_string().as_bytes())
    }

    #[test]
    fn relay_names_and_sentry_api_aliases_read_the_same() {
        let (relay, errors) = read(json!({
            "scrubData": true, "scrubDefaults": true, "scrubIpAddresses": true,
            "sensitiveFields": ["a"], "excludeFields": ["b"]
        }));
        assert!(errors.is_empty(), "{:?}", messages(&errors));
        let (sentry, errors) = read(json!({
            "dataScrubber": true, "dataScrubberDefaults": true, "scrubIPAddresses": true,
            "sensitiveFields": ["a"], "safeFields": ["b"]
        }));
        assert!(errors.is_empty(), "{:?}", messages(&errors));
        assert_eq!(relay, sentry);
        assert_eq!(
            relay,
            DataScrubbingSettings {
                scrub_data: true,
                scrub_defaults: true,
                scrub_ip_addresses: true,
                sensitive_fields: vec!["a".into()],
                exclude_fields: vec!["b".into()],
            }
        );
    }

    #[test]
    fn bad_settings_are_errors_naming_the_field() {
        let (_, errors) = read(json!({"scrubData": true, "dataScrubber": false}));
        assert_eq!(
            messages(&errors),
            ["ds.dataScrubber: scrubData is set under two names; keep one"]
        );
        let (settings, errors) = read(json!({"scrubDefault": true}));
        assert!(!settings.scrub_defaults);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "ds.scrubDefault");
        assert!(
            errors[0].message.contains("scrubDefaults"),
            "{:?}",
            errors[0]
        );
        let (_, errors) = read(json!({"scrubIPAddresses": "yes"}));
        assert_eq!(
            messages(&errors),
            ["ds.scrubIPAddresses: must be true or false"]
        );
        let (settings, errors) = read(json!({"safeFields": ["ok", 3]}));
        assert_eq!(settings.exclude_fields, ["ok"]);
        assert_eq!(messages(&errors), ["ds.safeFields.1: must be a string"]);
        let (_, errors) = read(json!({"sensitiveFields": {"a": 1}}));
        assert_eq!(
            messages(&errors),
            ["ds.sensitiveFields: must be an array of strings"]
        );
        let (_, errors) = read(json!([true]));
        assert_eq!(messages(&errors), ["ds: must be an object"]);
        let (settings, errors) = read(Json::Null);
        assert!(errors.is_empty());
        assert_eq!(settings, DataScrubbingSettings::default());
    }

    #[test]
    fn field_lists_also_read_as_newline_separated_text() {
        let (settings, errors) = read(json!({"sensitiveFields": " card_ref \n\n  order_note\n"}));
        assert!(errors.is_empty());
        assert_eq!(settings.sensitive_fields, ["card_ref", "order_note"]);
    }

    #[test]
    fn nothing_to_scrub_converts_to_no_config() {
        let settings = DataScrubbingSettings {
            scrub_defaults: true,
            sensitive_fields: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(settings.to_pii_config(), None);
        let ip_only = DataScrubbingSettings {
            scrub_ip_addresses: true,
            ..Default::default()
        };
        assert!(ip_only.to_pii_config().is_some());
    }

    #[test]
    fn defaults_filter_passwords_and_session_cookies_and_keep_ignored_fields() {
        let out = scrub(
            json!({"scrubData": true, "scrubDefaults": true}),
            json!({
                "request": {"cookies": {"sessionid": "abc123", "theme": "dark", "csrf-token": "t0k"}},
                "extra": {"password": "hunter2", "note": "card 4111 1111 1111 1111"},
                "logentry": {"formatted": "mail jane@example.com"},
                "exception": {"values": [{"type": "E", "value": "secret in jane@example.com",
                    "stacktrace": {"frames": [{"abs_path": "/home/jane/app/secret.py"}]}}]}
            }),
        );
        assert_eq!(out["request"]["cookies"]["sessionid"], "[Filtered]");
        assert_eq!(out["request"]["cookies"]["csrf-token"], "[Filtered]");
        assert_eq!(out["request"]["cookies"]["theme"], "dark");
        assert_eq!(out["extra"]["password"], "[Filtered]");
        assert_eq!(out["extra"]["note"], "card [Filtered]");
        // Replaced, never filtered whole.
        assert_eq!(out["logentry"]["formatted"], "mail [email]");
        let exception = &out["exception"]["values"][0];
        assert_eq!(exception["value"], "secret in jane@example.com");
        assert_eq!(
            exception["stacktrace"]["frames"][0]["abs_path"],
            "/home/jane/app/secret.py"
        );
    }

    #[test]
    fn ip_addresses_are_replaced_in_text_and_removed_from_ip_fields() {
        let out = scrub(
            json!({"scrubIpAddresses": true}),
            json!({"user": {"ip_address": "203.0.113.9"}, "extra": {"peer": "from 203.0.113.7"},
                   "request": {"env": {"REMOTE_ADDR": "203.0.113.8"}}}),
        );
        assert!(
            out["user"].get("ip_address").is_none_or(Json::is_null),
            "{out}"
        );
        assert!(out["request"]["env"]["REMOTE_ADDR"].is_null(), "{out}");
        assert_eq!(out["extra"]["peer"], "from [ip]");
        // Without scrubData, passwords are not this setting's business, and
        // scrubDefaults means nothing.
        let out = scrub(
            json!({"scrubIpAddresses": true, "scrubDefaults": true}),
            json!({"extra": {"password": "hunter2"}}),
        );
        assert_eq!(out["extra"]["password"], "hunter2");
    }

    #[test]
    fn sensitive_fields_match_keys_literally_and_in_any_case() {
        let event = json!({"extra": {"Customer_Ref": "C-1", "axb": "kept", "a.b": "gone", "other": "kept"}});
        let out = scrub(
            json!({"scrubData": true, "sensitiveFields": ["customer_ref", " a.b ", ""]}),
            event.clone(),
        );
        assert_eq!(out["extra"]["Customer_Ref"], "[Filtered]");
        assert_eq!(out["extra"]["a.b"], "[Filtered]");
        // `.` is a literal dot, not any character.
        assert_eq!(out["extra"]["axb"], "kept");
        assert_eq!(out["extra"]["other"], "kept");
        // Only under scrubData.
        let out = scrub(
            json!({"scrubIpAddresses": true, "sensitiveFields": ["customer_ref"]}),
            event,
        );
        assert_eq!(out["extra"]["Customer_Ref"], "C-1");
    }

    #[test]
    fn exclude_fields_are_selectors_or_literal_keys() {
        let event = json!({"extra": {"password": "a", "it's secret": "b", "api_key": "c"}});
        let out = scrub(
            json!({"scrubData": true, "scrubDefaults": true,
                   "excludeFields": ["extra.password", "it's secret", "  "]}),
            event,
        );
        assert_eq!(out["extra"]["password"], "a");
        // Not a selector (a quote and a space): a key, quoted.
        assert_eq!(out["extra"]["it's secret"], "b");
        assert_eq!(out["extra"]["api_key"], "[Filtered]");
    }
}
