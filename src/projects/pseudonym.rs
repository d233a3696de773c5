//! Data-subject lookups: the exact text a project's rules put in place of a value (the
//! pseudonym of an email under each of the project's hash keys, or the mask, replace or
//! remove result), and a Sentry search query that finds it. A person asking for their
//! data gives an email; the operator searches for its pseudonym.

use serde_json::{json, Value as Json};

use super::ProjectConfig;
use crate::scrub::{ItemKind, ScrubOptions};

/// The fields a lookup tries when no selector is given.
pub const SELECTORS: [&str; 5] = [
    "user.email",
    "user.id",
    "user.username",
    "user.ip_address",
    "trace.user_id",
];

/// What the project's rules make of a value at one selector, under one key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pseudonym {
    /// The field, e.g. `user.email`.
    pub selector: String,
    /// The text the rules put there; `None` when they remove the value.
    pub replacement: Option<String>,
    /// The hash key it was made with (`None`: the project has no key).
    pub key_id: Option<String>,
    /// A Sentry search query for it (`user.email:<hash>`), when something is there.
    pub query: Option<String>,
}

/// Why a lookup could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PseudonymError {
    /// The selector is not one the lookup knows.
    #[error("unknown selector {0:?} (expected user.email, user.id, user.username, user.ip_address or trace.user_id)")]
    UnknownSelector(String),
    /// The project's rules could not be compiled under an older key (its environment
    /// variable is gone, say).
    #[error("the rules cannot be compiled under key {key_id:?}: {message}")]
    Key {
        /// The key's id.
        key_id: String,
        /// The first problem.
        message: String,
    },
}

/// The pseudonyms of `value` under every hash key of `project` (the current one first),
/// at `selector` or at every field of [`SELECTORS`].
///
/// # Errors
/// [`PseudonymError`] for an unknown selector or a key the rules cannot be compiled
/// under.
pub fn pseudonyms(
    project: &ProjectConfig,
    value: &str,
    selector: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Pseudonym>, PseudonymError> {
    let selectors: Vec<&str> = match selector {
        Some(s) if SELECTORS.contains(&s) => vec![s],
        Some(s) => return Err(PseudonymError::UnknownSelector(s.to_string())),
        None => SELECTORS.to_vec(),
    };
    let mut out = Vec::new();
    if project.hash_keys.is_empty() {
        for selector in &selectors {
            out.push(lookup(project, value, selector, None));
        }
        return Ok(out);
    }
    for (i, key) in project.hash_keys.iter().enumerate() {
        let rotated;
        let rules_project = if i == 0 {
            project
        } else {
            rotated = with_current_key(project, i, env).map_err(|message| PseudonymError::Key {
                key_id: key.id.to_string(),
                message,
            })?;
            &rotated
        };
        for selector in &selectors {
            out.push(lookup(rules_project, value, selector, Some(&key.id)));
        }
    }
    Ok(out)
}

/// The project with its `index`-th hash key made the current one.
fn with_current_key(
    project: &ProjectConfig,
    index: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ProjectConfig, String> {
    let mut config = project.config_json.clone();
    let keys = config
        .pointer_mut("/piiConfig/vars/hashKeys")
        .and_then(Json::as_array_mut)
        .ok_or_else(|| "the project lists no hashKeys".to_string())?;
    if index >= keys.len() {
        return Err(format!("there is no key number {index}"));
    }
    let key = keys.remove(index);
    keys.insert(0, key);
    let doc = serde_json::to_vec(&json!({ "config": config })).map_err(|e| e.to_string())?;
    ProjectConfig::from_json(&doc, env).map_err(|e| {
        e.0.first()
            .map(ToString::to_string)
            .unwrap_or_else(|| "invalid".into())
    })
}

/// What `project`'s rules make of `value` at `selector`.
fn lookup(project: &ProjectConfig, value: &str, selector: &str, key_id: Option<&str>) -> Pseudonym {
    let (kind, input, path): (ItemKind, Json, &[&str]) = match selector {
        "trace.user_id" => (
            ItemKind::EnvelopeHeader,
            json!({"trace": {"user_id": value}}),
            &["trace", "user_id"],
        ),
        other => {
            let field = other.strip_prefix("user.").unwrap_or(other);
            (
                ItemKind::Event,
                json!({"user": {field: value}}),
                &["user", field][..],
            )
        }
    };
    let scrubbed = serde_json::to_vec(&input)
        .ok()
        .and_then(|bytes| {
            project
                .rules
                .scrub(kind, &bytes, &ScrubOptions::default())
                .ok()
        })
        .and_then(|out| serde_json::from_slice::<Json>(&out.bytes).ok())
        .unwrap_or(Json::Null);
    let at = |path: &[&str]| {
        path.iter()
            .try_fold(&scrubbed, |v, k| v.get(*k))
            .and_then(|v| match v {
                Json::String(s) => Some(s.clone()),
                Json::Null => None,
                other => Some(other.to_string()),
            })
    };
    let mut field = match selector {
        "trace.user_id" => "user.id",
        other => other,
    };
    let mut replacement = at(path);
    if selector == "user.ip_address" && replacement.is_none() {
        // A hashed IP address is no address: Relay moves it to `user.id`.
        if let Some(moved) = at(&["user", "id"]) {
            replacement = Some(moved);
            field = "user.id";
        }
    }
    let query = replacement.as_ref().map(|r| search_query(field, r));
    Pseudonym {
        selector: selector.to_string(),
        replacement,
        key_id: key_id.map(str::to_string),
        query,
    }
}

/// A Sentry search query for `field` equal to `value` (quoted when it needs it).
fn search_query(field: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'));
    if plain {
        format!("{field}:{value}")
    } else {
        format!(
            "{field}:\"{}\"",
            value.replace('\\', "\\\\").replace('"', "\\\"")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(config: Json, env: &dyn Fn(&str) -> Option<String>) -> ProjectConfig {
        let doc = serde_json::to_vec(&json!({ "config": config })).unwrap();
        ProjectConfig::from_json(&doc, env).unwrap()
    }

    #[test]
    fn an_email_under_every_key_with_its_query() {
        let env = |name: &str| match name {
            "NOW" => Some("key".to_string()),
            "OLD" => Some("old-key".to_string()),
            _ => None,
        };
        let p = project(
            json!({
                "piiConfig": {"vars": {"hashKeys": [
                    {"id": "2026-12", "key": "${NOW}"}, {"id": "2026-06", "key": "${OLD}"}
                ]}},
                "scrubgate": {"protect": ["emails"]}
            }),
            &env,
        );
        let found = pseudonyms(&p, "jane@example.com", Some("user.email"), &env).unwrap();
        assert_eq!(found.len(), 2);
        // HMAC-SHA1("key", "jane@example.com").
        assert_eq!(
            found[0].replacement.as_deref(),
            Some("10E85523CCA75DA0550BE3E6F7A129AEFD07BF10")
        );
        assert_eq!(found[0].key_id.as_deref(), Some("2026-12"));
        assert_eq!(
            found[0].query.as_deref(),
            Some("user.email:10E85523CCA75DA0550BE3E6F7A129AEFD07BF10")
        );
        assert_eq!(found[1].key_id.as_deref(), Some("2026-06"));
        let old = found[1].replacement.as_deref().unwrap();
        assert_eq!(old.len(), 40);
        assert_ne!(old, found[0].replacement.as_deref().unwrap());
    }

    #[test]
    fn every_selector_when_none_is_given_and_unknown_ones_refused() {
        let p = project(
            json!({"piiConfig": {
                "applications": {"$user.email": ["@email:replace"], "$user.username": ["@anything:remove"]}
            }}),
            &|_| None,
        );
        let found = pseudonyms(&p, "jane@example.com", None, &|_| None).unwrap();
        let by: std::collections::HashMap<&str, &Pseudonym> =
            found.iter().map(|p| (p.selector.as_str(), p)).collect();
        assert_eq!(by.len(), SELECTORS.len());
        assert_eq!(by["user.email"].replacement.as_deref(), Some("[email]"));
        assert_eq!(
            by["user.email"].query.as_deref(),
            Some("user.email:\"[email]\"")
        );
        assert_eq!(by["user.username"].replacement, None);
        assert_eq!(by["user.username"].query, None);
        // No rule touches user.id: the value itself is what the store holds.
        assert_eq!(
            by["user.id"].replacement.as_deref(),
            Some("jane@example.com")
        );
        assert!(by.values().all(|p| p.key_id.is_none()));
        assert_eq!(
            pseudonyms(&p, "x", Some("user.mail"), &|_| None),
            Err(PseudonymError::UnknownSelector("user.mail".into()))
        );
    }
}
