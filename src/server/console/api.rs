//! The console's JSON API. Every handler answers JSON; errors are `{"detail": ...}` or,
//! for a config that does not compile, `{"errors": [{"path", "message"}]}` with 400.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value as Json};

use super::Console;
use crate::body::collect_limited;
use crate::projects::pseudonym::pseudonyms;
use crate::projects::{Project, ProjectConfig};
use crate::scrub::{ConfigIssue, ItemKind, ScrubOptions};
use crate::server::error::json_detail;
use crate::server::ingest::scrub_envelope_offline;
use crate::spool::UpstreamState;

/// Routes one authorized `/api/` request.
pub(super) async fn route(console: &Console, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["api", "status"]) => status(console),
        (&Method::GET, ["api", "projects"]) => projects(console),
        (&Method::GET, ["api", "projects", id]) => match project(console, id) {
            Ok(project) => {
                let mut summary = summarize(console, &project, &RuleCounts::gather(console));
                summary["config"] = masked(project.config.config_json.clone());
                summary["applied_in_order"] = Json::Array(
                    project
                        .config
                        .expanded_rules
                        .iter()
                        .map(|(source, pii)| json!({"source": source, "piiConfig": masked(pii.clone())}))
                        .collect(),
                );
                ok(summary)
            }
            Err(response) => *response,
        },
        (&Method::GET, ["api", "projects", id, "samples"]) => match project(console, id) {
            Ok(project) => ok(json!({ "samples": console.state.samples.of(project.id) })),
            Err(response) => *response,
        },
        (&Method::POST, ["api", "scrub"]) => match body(console, req).await {
            Ok(body) => scrub(console, body).await,
            Err(response) => *response,
        },
        (&Method::POST, ["api", "pseudonym"]) => match body(console, req).await {
            Ok(body) => pseudonym(console, &body),
            Err(response) => *response,
        },
        (&Method::POST, ["api", "reload"]) => reload(console).await,
        (_, ["api", "status" | "projects" | "scrub" | "pseudonym" | "reload", ..]) => {
            json_detail(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => json_detail(StatusCode::NOT_FOUND, "not found"),
    }
}

fn ok(value: Json) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn bad_request(detail: &str) -> Response<Full<Bytes>> {
    json_detail(StatusCode::BAD_REQUEST, detail)
}

/// `{"errors": [{"path", "message"}]}` with 400.
fn config_errors(issues: &[ConfigIssue]) -> Response<Full<Bytes>> {
    let errors: Vec<Json> = issues
        .iter()
        .map(|i| json!({"path": i.path, "message": i.message}))
        .collect();
    let mut response = ok(json!({ "errors": errors }));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// The JSON object of a request body (bounded, within the in-flight byte budget).
async fn body(
    console: &Console,
    req: Request<Incoming>,
) -> Result<Json, Box<Response<Full<Bytes>>>> {
    let mut reservation = console.state.budget.reservation();
    let bytes = collect_limited(
        req.into_body(),
        super::MAX_API_BODY,
        super::API_BODY_TIMEOUT,
        &mut reservation,
    )
    .await
    .map_err(|error| {
        let status = match error {
            crate::body::BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            crate::body::BodyError::OverBudget => StatusCode::SERVICE_UNAVAILABLE,
            crate::body::BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        };
        Box::new(json_detail(status, "cannot read the request body"))
    })?;
    match serde_json::from_slice::<Json>(&bytes) {
        Ok(value @ Json::Object(_)) => Ok(value),
        Ok(_) => Err(Box::new(bad_request(
            "the request body must be a JSON object",
        ))),
        Err(e) => Err(Box::new(bad_request(&format!(
            "the request body is not JSON: {e}"
        )))),
    }
}

/// The project of a path segment, or the answer saying why there is none.
fn project(
    console: &Console,
    id: &str,
) -> Result<std::sync::Arc<Project>, Box<Response<Full<Bytes>>>> {
    let id: u64 = id
        .parse()
        .map_err(|_| Box::new(bad_request("the project id must be a number")))?;
    console
        .state
        .projects
        .get(id)
        .ok_or_else(|| Box::new(json_detail(StatusCode::NOT_FOUND, "no such project")))
}

fn status(console: &Console) -> Response<Full<Bytes>> {
    let delivery = &console.state.delivery;
    let (state, spool) = match delivery.spool() {
        _ if delivery.forwarder().is_outbox() => ("outbox", Json::Null),
        None => ("up", Json::Null),
        Some(spool) => {
            let state = match spool.breaker().state() {
                UpstreamState::Up => "up",
                UpstreamState::Down => "down",
                UpstreamState::Probing => "probing",
            };
            let (entries, bytes) = spool.size();
            (state, json!({"entries": entries, "bytes": bytes}))
        }
    };
    ok(json!({"upstream": {"state": state}, "spool": spool}))
}

fn projects(console: &Console) -> Response<Full<Bytes>> {
    let counts = RuleCounts::gather(console);
    let list: Vec<Json> = console
        .state
        .projects
        .ids()
        .into_iter()
        .filter_map(|id| console.state.projects.get(id))
        .map(|project| summarize(console, &project, &counts))
        .collect();
    ok(json!({ "projects": list }))
}

/// One project as the console lists it.
fn summarize(console: &Console, project: &Project, counts: &RuleCounts) -> Json {
    let config = &project.config;
    let keys: Vec<String> = config
        .public_keys
        .iter()
        .map(|k| mask_key(&k.public_key))
        .collect();
    let errors: Vec<Json> = console
        .state
        .projects
        .last_failure(project.id)
        .iter()
        .map(|i| json!({"path": i.path, "message": i.message}))
        .collect();
    let result = if errors.is_empty() { "ok" } else { "error" };
    let protect: Vec<&str> = config
        .protect
        .categories
        .iter()
        .map(|c| c.as_str())
        .collect();
    json!({
        "id": project.id,
        "keys": keys,
        "rule_count": config.rules.rule_ids().len(),
        "coverage": match config.rules.coverage() {
            crate::scrub::Coverage::Relay => "relay",
            crate::scrub::Coverage::All => "all",
        },
        "protect": protect,
        "reload": {"result": result, "errors": errors},
        "hits": counts.of(REDACTIONS, &project.id_label),
        "shadow_hits": counts.of(SHADOW_MATCHES, &project.id_label),
    })
}

/// A public key as the console shows it: its first and last four characters.
fn mask_key(key: &str) -> String {
    if key.len() <= 8 {
        return "…".to_string();
    }
    format!("{}…{}", &key[..4], &key[key.len() - 4..])
}

const REDACTIONS: &str = "scrubgate_redactions_total";
const SHADOW_MATCHES: &str = "scrubgate_shadow_matches_total";

/// The per-rule counters of every project, read from one scrape of the registry.
struct RuleCounts(BTreeMap<(&'static str, String), BTreeMap<String, u64>>);

impl RuleCounts {
    fn gather(console: &Console) -> RuleCounts {
        let mut out = BTreeMap::new();
        for metric_family in console.registry.gather() {
            let Some(family) = [REDACTIONS, SHADOW_MATCHES]
                .into_iter()
                .find(|f| metric_family.name() == *f)
            else {
                continue;
            };
            for metric in metric_family.get_metric() {
                let label = |name: &str| {
                    metric
                        .get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                };
                if let (Some(project), Some(rule)) = (label("project"), label("rule")) {
                    let rules: &mut BTreeMap<String, u64> =
                        out.entry((family, project)).or_default();
                    *rules.entry(rule).or_insert(0) += metric.get_counter().get_value() as u64;
                }
            }
        }
        RuleCounts(out)
    }

    /// Counter `family`'s values for `project`, by rule.
    fn of(&self, family: &'static str, project: &str) -> BTreeMap<String, u64> {
        self.0
            .get(&(family, project.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

/// A config with its hash keys hidden: literal keys become `********` (references to
/// environment variables, `${NAME}`, are kept: they name no secret).
fn masked(mut value: Json) -> Json {
    fn walk(value: &mut Json) {
        match value {
            Json::Object(map) => {
                for (k, v) in map.iter_mut() {
                    let secret = matches!(k.as_str(), "hashKey" | "key");
                    match v {
                        // A reference names no secret, but a `${NAME:-fallback}`'s
                        // fallback is one.
                        Json::String(s) if secret && s.starts_with("${") => {
                            if let Some((name, _)) = s.split_once(":-") {
                                *s = format!("{name}:-********}}");
                            }
                        }
                        Json::String(s) if secret => *s = "********".to_string(),
                        other => walk(other),
                    }
                }
            }
            Json::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// `POST /api/scrub`: `{"project": id | "config": {...}, "event": {...} | "envelope":
/// "text", "item_type"?: "event"}`.
async fn scrub(console: &Console, body: Json) -> Response<Full<Bytes>> {
    let project = match (body.get("project"), body.get("config")) {
        (Some(id), None) => {
            let id = id
                .as_u64()
                .map(|id| id.to_string())
                .unwrap_or_else(|| id.as_str().unwrap_or_default().to_string());
            match project(console, &id) {
                Ok(project) => project,
                Err(response) => return *response,
            }
        }
        (None, Some(config)) => {
            let doc = json!({ "config": config });
            let bytes = doc.to_string().into_bytes();
            match ProjectConfig::from_json(&bytes, &crate::projects::env_var) {
                Ok(config) => std::sync::Arc::new(Project::new(0, config, "(console)".into())),
                Err(errors) => return config_errors(&errors.0),
            }
        }
        _ => {
            return bad_request(
                "give \"project\" (an id) or \"config\" (a project file's config object)",
            )
        }
    };
    let limits = console.state.config.limits;
    let max_depth = limits.max_json_depth;
    match (body.get("event"), body.get("envelope")) {
        (Some(event), None) => {
            let kind = match item_kind(body.get("item_type")) {
                Ok(kind) => kind,
                Err(detail) => return bad_request(detail),
            };
            let input = event.to_string().into_bytes();
            let result = console
                .state
                .decode_pool
                .run(move || {
                    let opts = ScrubOptions {
                        client_ip: None,
                        max_depth,
                        record_paths: true,
                    };
                    project.config.rules.scrub(kind, &input, &opts)
                })
                .await;
            match result {
                Ok(scrubbed) => {
                    let event: Json = serde_json::from_slice(&scrubbed.bytes).unwrap_or(Json::Null);
                    let changes: Vec<Json> = scrubbed
                        .report
                        .changes
                        .iter()
                        .map(|c| json!({"path": c.path, "rule": &*c.rule, "method": c.method.as_str()}))
                        .collect();
                    ok(json!({"event": event, "changes": changes}))
                }
                Err(error) => bad_request(&format!("the event cannot be scrubbed: {error}")),
            }
        }
        (None, Some(Json::String(text))) => {
            let text = text.clone().into_bytes();
            let result = console
                .state
                .decode_pool
                .run(move || scrub_envelope_offline(&project, &text, &limits))
                .await;
            match result {
                Ok((bytes, changes)) => {
                    // One entry per item that changed, in envelope order (the header
                    // first, as `"index": null`).
                    let mut items: Vec<(Option<usize>, &str, Vec<Json>)> = Vec::new();
                    for c in &changes {
                        let change = json!({"path": c.change.path, "rule": &*c.change.rule, "method": c.change.method.as_str()});
                        match items.iter_mut().find(|(i, _, _)| *i == c.item) {
                            Some((_, _, list)) => list.push(change),
                            None => items.push((c.item, c.item_type.as_str(), vec![change])),
                        }
                    }
                    let items: Vec<Json> = items
                        .into_iter()
                        .map(|(index, ty, changes)| json!({"index": index, "type": ty, "changes": changes}))
                        .collect();
                    ok(json!({"envelope": String::from_utf8_lossy(&bytes), "items": items}))
                }
                Err(error) => bad_request(&format!("the envelope is refused: {}", error.detail())),
            }
        }
        _ => bad_request("give \"event\" (a JSON object) or \"envelope\" (its text)"),
    }
}

fn item_kind(name: Option<&Json>) -> Result<ItemKind, &'static str> {
    match name.map(Json::as_str) {
        None => Ok(ItemKind::Event),
        Some(Some(name)) => ItemKind::from_name(name).ok_or(
            "item_type must be an envelope item type scrubgate scrubs as one payload (event, transaction, span, log, ...)",
        ),
        Some(None) => Err("item_type must be a string"),
    }
}

/// `POST /api/pseudonym`: `{"project": id, "value": "...", "selector"?: "user.email"}`.
fn pseudonym(console: &Console, body: &Json) -> Response<Full<Bytes>> {
    let Some(id) = body.get("project").and_then(Json::as_u64) else {
        return bad_request("\"project\" must be a project id");
    };
    let Some(value) = body.get("value").and_then(Json::as_str) else {
        return bad_request("\"value\" must be a string");
    };
    let selector = match body.get("selector") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.is_empty() => None,
        Some(Json::String(s)) => Some(s.as_str()),
        Some(_) => return bad_request("\"selector\" must be a string"),
    };
    let project = match project(console, &id.to_string()) {
        Ok(project) => project,
        Err(response) => return *response,
    };
    match pseudonyms(&project.config, value, selector, &crate::projects::env_var) {
        Ok(results) => ok(json!({ "results": results })),
        Err(error) => bad_request(&error.to_string()),
    }
}

/// `POST /api/reload`: re-reads every project file now.
async fn reload(console: &Console) -> Response<Full<Bytes>> {
    let projects = std::sync::Arc::clone(&console.state.projects);
    let summary = tokio::task::spawn_blocking(move || projects.reload_all()).await;
    let Ok(summary) = summary else {
        return json_detail(StatusCode::INTERNAL_SERVER_ERROR, "the reload failed");
    };
    let errors: Vec<Json> = summary
        .errors
        .iter()
        .flat_map(|error| {
            let file = error.path().display().to_string();
            error
                .issues()
                .into_iter()
                .map(move |i| json!({"file": file, "path": i.path, "message": i.message}))
        })
        .collect();
    ok(json!({"loaded": summary.loaded.len(), "errors": errors}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_hash_keys_are_masked_and_references_kept() {
        let config = json!({"piiConfig": {
            "vars": {"hashKey": "literal-secret", "hashKeys": [{"id": "a", "key": "${K}"}, {"id": "b", "key": "old-secret"}]},
            "rules": {"r": {"type": "anything", "redaction": {"method": "hash", "key": "rule-secret"}}}
        }});
        let text = masked(config).to_string();
        let fallback = masked(json!({"vars": {"hashKey": "${K2:-quickstart-secret}"}}));
        assert_eq!(fallback["vars"]["hashKey"], "${K2:-********}");
        for secret in ["literal-secret", "old-secret", "rule-secret"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("${K}"), "{text}");
        assert!(text.contains("\"id\":\"a\""), "{text}");
    }

    #[test]
    fn public_keys_are_shown_by_their_ends() {
        assert_eq!(mask_key("a4f6c2d8e1b34f7a9c0d5e2b8f1a3c6d"), "a4f6…3c6d");
        assert_eq!(mask_key("short"), "…");
    }
}
