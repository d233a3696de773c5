//! `config.scrubgate.protect`: the four kinds of personal data scrubgate exists for
//! (emails, user names and ids, IP addresses, device identifiers), each expanded into
//! ordinary rules in Relay's `piiConfig` format. Nothing here is applied directly: the
//! expansion is compiled like any other `piiConfig`, after the project's own rules and
//! data-scrubbing settings, and `scrubgate check --print-rules` shows it.
//!
//! Identifier fields (`user.email`, `contexts.device.device_unique_identifier`, ...) get
//! the project's `protectMethod` (a keyed hash by default); identifiers inside free text
//! are replaced (`[email]`, `[ip]`, `[device-id]`) so the text stays readable.

use serde_json::{json, Map, Value as Json};

use super::suggest::did_you_mean;
use super::ConfigIssue;

/// One kind of personal data `protect` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    /// Email addresses: `user.email`, feedback contact emails, and any email in text.
    Emails,
    /// User ids, user names, names and segments, wherever SDKs copy them (the envelope's
    /// `trace.user_id`, span/log/metric `user.*` attributes, a session's `did`).
    UserIds,
    /// IP addresses: the known IP fields, any IP in text, and no client-IP header.
    IpAddresses,
    /// Device identifiers: the device fields of Sentry's SDKs, keys named after one,
    /// and IMEIs (Luhn-checked) and MAC addresses in text.
    DeviceIds,
}

impl Category {
    /// Every category, in the order `"all"` expands to.
    pub const ALL: [Category; 4] = [
        Category::Emails,
        Category::UserIds,
        Category::IpAddresses,
        Category::DeviceIds,
    ];

    /// The name used in `protect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Emails => "emails",
            Category::UserIds => "user_ids",
            Category::IpAddresses => "ip_addresses",
            Category::DeviceIds => "device_ids",
        }
    }

    /// The selector of the category's identifier fields (they get `protectMethod`).
    fn fields(self) -> &'static str {
        match self {
            Category::Emails => "$user.email || contexts.feedback.contact_email",
            Category::UserIds => {
                "$user.id || $user.username || $user.name || $user.segment || $user.sentry_user || contexts.feedback.name"
            }
            Category::IpAddresses => {
                "$user.ip_address || $http.env.REMOTE_ADDR || $sdk.client_ip || $span.sentry_tags.'user.ip'"
            }
            Category::DeviceIds => DEVICE_FIELDS,
        }
    }

    /// The text a replaced identifier gets.
    fn placeholder(self) -> &'static str {
        match self {
            Category::Emails => "[email]",
            Category::UserIds => "[user]",
            Category::IpAddresses => "[ip]",
            Category::DeviceIds => "[device-id]",
        }
    }

    /// The rule type that finds this category in free text, if it can be found there.
    fn text_rule_type(self) -> Option<&'static str> {
        match self {
            Category::Emails => Some("email"),
            Category::UserIds => None,
            Category::IpAddresses => Some("ip"),
            Category::DeviceIds => Some("device_id"),
        }
    }
}

/// The fields Sentry's SDKs put device identifiers in.
const DEVICE_FIELDS: &str = "contexts.device.device_unique_identifier || contexts.device.id || contexts.app.device_app_hash || $span.attributes.'device.id'.value || $log.attributes.'device.id'.value || $trace_metric.attributes.'device.id'.value";

/// Key names that say a value is a device identifier, matched case-insensitively as a
/// whole key or its last `_`/`-`/`.`-separated part (`wifi_mac` yes, `machine` no).
pub const DEVICE_KEY_PATTERN: &str = r"(?i)(^|[._-])(device[._-]?id|udid|idfa|idfv|gaid|adid|advertising[._-]?id|android[._-]?id|imei|meid|serial[._-]?number|mac|mac[._-]?address)$";

/// How identifier fields are protected (`config.scrubgate.protectMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtectMethod {
    /// A hash, keyed with the project's current hash key (the default).
    #[default]
    Hash,
    /// A placeholder such as `[email]`.
    Replace,
    /// The value is removed.
    Remove,
}

/// The `protect` settings of one project.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protect {
    /// The categories protected, without duplicates, in [`Category::ALL`] order.
    pub categories: Vec<Category>,
    /// How identifier fields are changed.
    pub method: ProtectMethod,
}

impl Protect {
    /// Reads `protect` and `protectMethod` from the `config.scrubgate` object `ours`,
    /// pushing every problem with its path (under `path`).
    pub fn from_json(ours: &Json, path: &str, errors: &mut Vec<ConfigIssue>) -> Protect {
        let mut out = Protect::default();
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        match ours.get("protect") {
            None | Some(Json::Null) => {}
            Some(Json::Array(list)) => {
                for (i, v) in list.iter().enumerate() {
                    match v.as_str() {
                        Some("all") => out.categories.extend(Category::ALL),
                        Some(name) => match Category::ALL.iter().find(|c| c.as_str() == name) {
                            Some(c) => out.categories.push(*c),
                            None => {
                                let mut choices = names.clone();
                                choices.push("all");
                                errors.push(ConfigIssue {
                                    path: format!("{path}.protect.{i}"),
                                    message: format!(
                                        "unknown category {name:?} (expected emails, user_ids, ip_addresses, device_ids or all){}",
                                        did_you_mean(name, &choices)
                                    ),
                                });
                            }
                        },
                        None => errors.push(ConfigIssue {
                            path: format!("{path}.protect.{i}"),
                            message: "must be a category name (string)".into(),
                        }),
                    }
                }
            }
            Some(_) => errors.push(ConfigIssue {
                path: format!("{path}.protect"),
                message: "must be an array of categories, e.g. [\"all\"]".into(),
            }),
        }
        out.categories.sort();
        out.categories.dedup();
        match ours.get("protectMethod").map(Json::as_str) {
            None | Some(Some("hash")) => {}
            Some(Some("replace")) => out.method = ProtectMethod::Replace,
            Some(Some("remove")) => out.method = ProtectMethod::Remove,
            Some(_) => errors.push(ConfigIssue {
                path: format!("{path}.protectMethod"),
                message: "must be \"hash\", \"replace\" or \"remove\"".into(),
            }),
        }
        out
    }

    /// The `piiConfig` the settings expand to, or `None` when nothing is protected.
    /// Hash rules carry no key: the compiler gives them the project's current key.
    pub fn to_pii_config(&self) -> Option<Json> {
        if self.categories.is_empty() {
            return None;
        }
        let mut rules = Map::new();
        let mut applications = Map::new();
        let mut text_rules = Vec::new();
        let mut all_fields = Vec::new();
        for &category in &self.categories {
            let name = category.as_str();
            let field_rule = format!("protect-{name}");
            rules.insert(
                field_rule.clone(),
                self.field_rule(category.placeholder(), "anything"),
            );
            applications.insert(category.fields().to_string(), json!([field_rule]));
            all_fields.push(category.fields());
            if let Some(ty) = category.text_rule_type() {
                let text_rule = format!("protect-{name}-in-text");
                rules.insert(
                    text_rule.clone(),
                    json!({"type": ty, "redaction": {"method": "replace", "text": category.placeholder()}}),
                );
                text_rules.push(Json::String(text_rule));
            }
            if category == Category::DeviceIds {
                let key_rule = "protect-device_ids-by-key".to_string();
                let mut rule = self.field_rule(category.placeholder(), "redact_pair");
                rule["keyPattern"] = Json::String(DEVICE_KEY_PATTERN.into());
                rules.insert(key_rule.clone(), rule);
                // Tag values are pii `maybe`: only a selector that names tags reaches them.
                applications.insert(
                    format!("($string || $number) && !({DEVICE_FIELDS})"),
                    json!([key_rule]),
                );
                applications.insert("tags.*".into(), json!([key_rule]));
            }
        }
        if !text_rules.is_empty() {
            // `($string) && ...` sorts after `($string || $number) && ...` (Relay orders
            // applications by selector text), so a value the device-key rule took is not
            // first turned into `[device-id]` text.
            applications.insert(
                format!("($string) && !({})", all_fields.join(" || ")),
                Json::Array(text_rules),
            );
        }
        Some(json!({"rules": rules, "applications": applications}))
    }

    fn field_rule(&self, placeholder: &str, ty: &str) -> Json {
        let redaction = match self.method {
            ProtectMethod::Hash => json!({"method": "hash"}),
            ProtectMethod::Replace => json!({"method": "replace", "text": placeholder}),
            ProtectMethod::Remove => json!({"method": "remove"}),
        };
        json!({"type": ty, "redaction": redaction})
    }
}
