//! The upstream's rate limits as the drainer keeps them: `X-Sentry-Rate-Limits` per data
//! category (else `Retry-After`, else a minute, for every category), and the categories
//! a spooled request belongs to. A limited entry stays in the spool while the drainer
//! goes on with entries of other categories.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;

use crate::protocol::envelope::Envelope;

/// Longest wait any limit may ask for.
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Wait for a 429 that says nothing about how long.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// Active limits: until when each category (or every category) is limited.
#[derive(Debug, Default)]
pub struct RateLimits {
    all: Option<Instant>,
    by_category: HashMap<String, Instant>,
}

impl RateLimits {
    /// Takes in a 429's headers.
    pub fn update(&mut self, headers: &HeaderMap, now: Instant) {
        let limits = headers
            .get("x-sentry-rate-limits")
            .and_then(|v| v.to_str().ok())
            .map(parse_rate_limits)
            .unwrap_or_default();
        if limits.is_empty() {
            let wait = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(DEFAULT_WAIT, Duration::from_secs);
            self.limit_all(now + wait.clamp(Duration::from_secs(1), MAX_WAIT));
            return;
        }
        for (wait, categories) in limits {
            let until = now + wait;
            if categories.is_empty() {
                self.limit_all(until);
            }
            for category in categories {
                let entry = self.by_category.entry(category).or_insert(until);
                *entry = (*entry).max(until);
            }
        }
    }

    fn limit_all(&mut self, until: Instant) {
        self.all = Some(self.all.map_or(until, |all| all.max(until)));
    }

    /// True when a request of `categories` must wait.
    pub fn blocks(&self, categories: &[&str], now: Instant) -> bool {
        if self.all.is_some_and(|until| until > now) {
            return true;
        }
        // An envelope waits while any of its categories is limited: it is sent whole.
        categories.iter().any(|category| {
            self.by_category
                .get(*category)
                .is_some_and(|until| *until > now)
        })
    }

    /// How long until the first active limit ends, if any is active.
    pub fn next_expiry(&self, now: Instant) -> Option<Duration> {
        self.all
            .into_iter()
            .chain(self.by_category.values().copied())
            .filter(|until| *until > now)
            .min()
            .map(|until| until - now)
    }
}

/// `X-Sentry-Rate-Limits`: `retry_after:categories:scope[:reason[:namespaces]]`, comma
/// separated; categories `;` separated, none meaning every category.
fn parse_rate_limits(value: &str) -> Vec<(Duration, Vec<String>)> {
    value
        .split(',')
        .filter_map(|limit| {
            let mut fields = limit.trim().split(':');
            let seconds: f64 = fields.next()?.trim().parse().ok()?;
            if !seconds.is_finite() || seconds < 0.0 {
                return None;
            }
            let wait = Duration::from_secs_f64(seconds.ceil().max(1.0)).min(MAX_WAIT);
            let categories = fields
                .next()
                .unwrap_or("")
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            Some((wait, categories))
        })
        .collect()
}

/// The data categories of a spooled request: `error` for a store event, `security` for
/// a report, the categories of an envelope's items.
pub fn categories(path_and_query: &str, body: &[u8]) -> Vec<&'static str> {
    if path_and_query.contains("/envelope/") {
        let mut out = Vec::new();
        if let Ok(envelope) = Envelope::parse(Bytes::copy_from_slice(body)) {
            for item in envelope.items() {
                let category = item_category(item.ty());
                if !out.contains(&category) {
                    out.push(category);
                }
            }
        }
        out
    } else if path_and_query.contains("/security/") || path_and_query.contains("/csp-report/") {
        vec!["security"]
    } else {
        vec!["error"]
    }
}

/// Sentry's data category for an item type.
fn item_category(item_type: &str) -> &'static str {
    match item_type {
        "event" | "raw_security" => "error",
        "transaction" => "transaction",
        "security" => "security",
        "attachment" => "attachment",
        "session" | "sessions" => "session",
        "profile" => "profile",
        "profile_chunk" => "profile_chunk",
        "replay_event" | "replay_recording" | "replay_video" => "replay",
        "check_in" => "monitor",
        "span" | "otel_span" => "span",
        "log" | "otel_log" => "log_item",
        "trace_metric" => "trace_metric",
        "feedback" | "user_report" => "user_report_v2",
        "statsd" | "metric_buckets" => "metric_bucket",
        "client_report" => "internal",
        _ => "default",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn categories_are_limited_one_by_one() {
        let now = Instant::now();
        let mut limits = RateLimits::default();
        limits.update(
            &headers(
                "x-sentry-rate-limits",
                "30:error;attachment:organization:quota, 120:transaction:project",
            ),
            now,
        );
        assert!(limits.blocks(&["error"], now));
        assert!(limits.blocks(&["span", "transaction"], now), "any category");
        assert!(!limits.blocks(&["span"], now));
        assert!(!limits.blocks(&["error"], now + Duration::from_secs(31)));
        assert!(limits.blocks(&["transaction"], now + Duration::from_secs(31)));
        assert_eq!(limits.next_expiry(now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn an_empty_category_list_or_a_bare_429_limits_everything() {
        let now = Instant::now();
        let mut limits = RateLimits::default();
        limits.update(&headers("x-sentry-rate-limits", "5::organization"), now);
        assert!(limits.blocks(&["log_item"], now));
        let mut limits = RateLimits::default();
        limits.update(&headers("retry-after", "7"), now);
        assert!(limits.blocks(&["error"], now + Duration::from_secs(6)));
        assert!(!limits.blocks(&["error"], now + Duration::from_secs(8)));
        let mut limits = RateLimits::default();
        limits.update(&HeaderMap::new(), now);
        assert_eq!(limits.next_expiry(now), Some(DEFAULT_WAIT));
        // Nonsense is ignored, and a huge value is capped.
        let mut limits = RateLimits::default();
        limits.update(
            &headers("x-sentry-rate-limits", "x:error, 99999999:span"),
            now,
        );
        assert!(!limits.blocks(&["error"], now));
        assert_eq!(limits.next_expiry(now), Some(MAX_WAIT));
    }

    #[test]
    fn spooled_requests_know_their_categories() {
        assert_eq!(categories("/api/1/store/", b"{}"), ["error"]);
        assert_eq!(
            categories("/api/1/security/?sentry_key=x", b"{}"),
            ["security"]
        );
        let envelope = b"{}\n{\"type\":\"span\",\"length\":2}\n{}\n{\"type\":\"log\",\"length\":2}\n{}\n{\"type\":\"span\",\"length\":2}\n{}\n";
        assert_eq!(
            categories("/api/1/envelope/", envelope),
            ["span", "log_item"]
        );
    }
}
