//! One project file: Relay's project-config JSON (`projectId`, `disabled`, `publicKeys`,
//! `config.piiConfig`, `config.datascrubbingSettings`) plus scrubgate's own per-project
//! options (`config.scrubgate`), read and validated. The rules themselves are compiled by
//! [`crate::scrub::compile`]; everything else here (keys, `disabled`, policies) is the
//! proxy's business, not the engine's.

use serde_json::Value as Json;

use crate::scrub::{
    CompileOptions, CompiledRules, ConfigErrors, ConfigIssue, Coverage, HashKey, Protect,
};

/// What happens to envelope `attachment` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachmentPolicy {
    /// Forward every attachment, each scrubbed as its kind can be (default).
    #[default]
    Forward,
    /// Forward what scrubgate scrubs (minidumps, text, JSON, view hierarchies, native
    /// event payloads); drop images and other binaries (counted).
    ScrubbedOnly,
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
#[derive(Debug, Clone)]
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
    /// The `protect` categories and method (`config.scrubgate.protect`).
    pub protect: Protect,
    /// Shadow rules (`config.scrubgate.shadow`): evaluated on live traffic, counted and
    /// sampled, never applied.
    pub shadow: Option<CompiledRules>,
    /// Sample the live rules' changes too (`config.scrubgate.samples`).
    pub samples: bool,
    /// The project's hash keys, the current one first.
    pub hash_keys: Vec<HashKey>,
    /// Every `piiConfig` applied, in order, with where it comes from (`check
    /// --print-rules`).
    pub expanded_rules: Vec<(String, Json)>,
    /// Warnings (not errors), e.g. a hash rule without a key.
    pub warnings: Vec<ConfigIssue>,
    /// The file's `config` object as written (for the console and pseudonym lookups
    /// under older keys; `${NAME}` references are kept unresolved).
    pub config_json: Json,
    /// The compiled rules.
    pub rules: CompiledRules,
}

/// `config.scrubgate`: scrubgate's own per-project options.
struct ScrubgateOptions {
    coverage: Coverage,
    attachments: AttachmentPolicy,
    forward_unknown_items: bool,
    protect: Protect,
    samples: bool,
}

/// The keys `config.scrubgate` may hold.
const SCRUBGATE_KEYS: [&str; 7] = [
    "coverage",
    "attachments",
    "forwardUnknownItems",
    "protect",
    "protectMethod",
    "shadow",
    "samples",
];

impl ScrubgateOptions {
    /// Reads the object, pushing every problem (unknown keys with a "did you mean").
    fn from_json(ours: &Json, errors: &mut Vec<ConfigIssue>) -> ScrubgateOptions {
        if let Some(obj) = ours.as_object() {
            for key in obj.keys() {
                if !SCRUBGATE_KEYS.contains(&key.as_str()) {
                    issue(
                        errors,
                        format!("config.scrubgate.{key}"),
                        format!(
                            "unknown key (expected {}){}",
                            SCRUBGATE_KEYS.join(", "),
                            crate::scrub::did_you_mean(key, &SCRUBGATE_KEYS)
                        ),
                    );
                }
            }
        }
        let coverage = match ours.get("coverage") {
            None => Coverage::Relay,
            Some(Json::String(s)) if s == "relay" => Coverage::Relay,
            Some(Json::String(s)) if s == "all" => Coverage::All,
            Some(_) => {
                issue(
                    errors,
                    "config.scrubgate.coverage",
                    "must be \"relay\" or \"all\"",
                );
                Coverage::Relay
            }
        };
        let attachments = match ours.get("attachments").map(|v| v.as_str()) {
            None | Some(Some("forward")) => AttachmentPolicy::Forward,
            Some(Some("scrubbed_only")) => AttachmentPolicy::ScrubbedOnly,
            Some(Some("drop")) => AttachmentPolicy::Drop,
            Some(_) => {
                issue(
                    errors,
                    "config.scrubgate.attachments",
                    "must be \"forward\", \"scrubbed_only\" or \"drop\"",
                );
                AttachmentPolicy::Forward
            }
        };
        let forward_unknown_items = match ours.get("forwardUnknownItems") {
            None => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => {
                issue(
                    errors,
                    "config.scrubgate.forwardUnknownItems",
                    "must be true or false",
                );
                false
            }
        };
        let protect = Protect::from_json(ours, "config.scrubgate", errors);
        let samples = match ours.get("samples") {
            None => false,
            Some(Json::Bool(b)) => *b,
            Some(_) => {
                issue(errors, "config.scrubgate.samples", "must be true or false");
                false
            }
        };
        ScrubgateOptions {
            coverage,
            attachments,
            forward_unknown_items,
            protect,
            samples,
        }
    }
}

fn issue(errors: &mut Vec<ConfigIssue>, path: impl Into<String>, message: impl Into<String>) {
    errors.push(ConfigIssue {
        path: path.into(),
        message: message.into(),
    });
}

impl ProjectConfig {
    /// Parses, validates and compiles a project config in Relay's JSON format.
    /// `env` resolves `${NAME}` references in hash keys.
    ///
    /// # Errors
    /// Every problem found, each with its JSON path.
    pub fn from_json(
        bytes: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ProjectConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let root: Json = serde_json::from_slice(bytes).map_err(|e| {
            ConfigErrors(vec![ConfigIssue {
                path: format!("(line {}, column {})", e.line(), e.column()),
                message: format!("invalid JSON: {e}"),
            }])
        })?;
        let Some(obj) = root.as_object() else {
            return Err(ConfigErrors(vec![ConfigIssue {
                path: "(root)".into(),
                message: "must be a JSON object".into(),
            }]));
        };
        let project_id = match obj.get("projectId") {
            None | Some(Json::Null) => None,
            Some(Json::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(Json::String(s)) if s.parse::<u64>().is_ok() => s.parse().ok(),
            Some(_) => {
                issue(&mut errors, "projectId", "must be a positive integer");
                None
            }
        };
        let disabled = obj.get("disabled").and_then(Json::as_bool).unwrap_or(false);
        let mut public_keys = Vec::new();
        match obj.get("publicKeys") {
            None | Some(Json::Null) => {}
            Some(Json::Array(keys)) => {
                for (i, k) in keys.iter().enumerate() {
                    let key = k.get("publicKey").and_then(Json::as_str);
                    match key {
                        Some(key)
                            if key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()) =>
                        {
                            public_keys.push(PublicKey {
                                public_key: key.to_ascii_lowercase(),
                                is_enabled: k
                                    .get("isEnabled")
                                    .and_then(Json::as_bool)
                                    .unwrap_or(true),
                            })
                        }
                        _ => issue(
                            &mut errors,
                            format!("publicKeys.{i}.publicKey"),
                            "must be 32 hexadecimal characters",
                        ),
                    }
                }
            }
            Some(_) => issue(&mut errors, "publicKeys", "must be an array"),
        }
        let empty = Json::Object(Default::default());
        let config = match obj.get("config") {
            None | Some(Json::Null) => &empty,
            Some(c @ Json::Object(_)) => c,
            Some(_) => {
                issue(&mut errors, "config", "must be an object");
                &empty
            }
        };
        for misplaced in ["applications", "rules", "vars"] {
            if config.get(misplaced).is_some() {
                issue(
                    &mut errors,
                    format!("config.{misplaced}"),
                    "belongs inside config.piiConfig (Relay silently ignores it here, so these rules would never run)",
                );
            }
        }
        let empty_ours = Json::Object(Default::default());
        let ours = match config.get("scrubgate") {
            None | Some(Json::Null) => &empty_ours,
            Some(o @ Json::Object(_)) => o,
            Some(_) => {
                issue(&mut errors, "config.scrubgate", "must be an object");
                &empty_ours
            }
        };
        let options = ScrubgateOptions::from_json(ours, &mut errors);
        let compiled = match crate::scrub::compile(
            config,
            "config",
            &CompileOptions {
                coverage: options.coverage,
                protect: options.protect.clone(),
                env,
            },
        ) {
            Ok(c) => Some(c),
            Err(ConfigErrors(more)) => {
                errors.extend(more);
                None
            }
        };
        let compiled = match compiled {
            Some(c) if errors.is_empty() => c,
            _ => return Err(ConfigErrors(errors)),
        };
        let shadow = match ours.get("shadow") {
            None | Some(Json::Null) => None,
            Some(pii) => match crate::scrub::compile_pii(
                pii,
                "config.scrubgate.shadow",
                options.coverage,
                &compiled.hash_keys,
                env,
            ) {
                Ok(rules) => Some(rules),
                Err(ConfigErrors(more)) => return Err(ConfigErrors(more)),
            },
        };
        Ok(ProjectConfig {
            project_id,
            disabled,
            public_keys,
            scrubs_ip_addresses: compiled.scrubs_ip_addresses,
            attachments: options.attachments,
            forward_unknown_items: options.forward_unknown_items,
            protect: options.protect,
            shadow,
            samples: options.samples,
            hash_keys: compiled.hash_keys,
            expanded_rules: compiled.expanded,
            warnings: compiled.warnings,
            config_json: config.clone(),
            rules: compiled.rules,
        })
    }

    /// Compiles a bare `piiConfig` and/or `datascrubbingSettings` for tests and tools.
    ///
    /// # Errors
    /// As [`ProjectConfig::from_json`].
    pub fn from_config_value(config: Json) -> Result<ProjectConfig, ConfigErrors> {
        let doc = serde_json::json!({ "config": config });
        let bytes = serde_json::to_vec(&doc).map_err(|e| {
            ConfigErrors(vec![ConfigIssue {
                path: "config".into(),
                message: e.to_string(),
            }])
        })?;
        ProjectConfig::from_json(&bytes, &|_| None)
    }
}
