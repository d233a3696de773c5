//! Rate-limited warnings. Dropped envelope items: at most one line per project and item
//! type per [`INTERVAL`]; failed requests: at most one line per cause per
//! [`FAILURE_INTERVAL`]. Each line says how many events it stands for, and names the
//! project, item type, reason or cause, never any content.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::ItemLabel;

/// The shortest time between two warnings for the same project and item type.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// Remembers when each (project, item type) was last warned about.
#[derive(Debug, Default)]
pub struct DropLog {
    last: Mutex<HashMap<(u64, ItemLabel), (Instant, u64)>>,
}

impl DropLog {
    /// Records one dropped item; logs a warning unless one was logged for the same project
    /// and item type within [`INTERVAL`]. Returns whether it logged.
    pub fn dropped(&self, project: u64, item_type: ItemLabel, reason: &'static str) -> bool {
        let now = Instant::now();
        let suppressed = {
            let Ok(mut last) = self.last.lock() else {
                return false;
            };
            let entry = last
                .entry((project, item_type))
                .or_insert((now - INTERVAL * 2, 0));
            if now.duration_since(entry.0) < INTERVAL {
                entry.1 += 1;
                return false;
            }
            let suppressed = entry.1;
            *entry = (now, 0);
            suppressed
        };
        tracing::warn!(
            project,
            item_type = item_type.as_str(),
            reason,
            suppressed_since_last = suppressed,
            "envelope item dropped"
        );
        true
    }
}

/// The shortest time between two warnings for the same kind of failed request.
pub const FAILURE_INTERVAL: Duration = Duration::from_secs(10);

/// Warnings for requests that failed on our side (5xx), rate-limited: at most one line
/// per kind of failure (its static detail text) per [`FAILURE_INTERVAL`], which says how
/// many failures it stands for. While the upstream is down and the spool full, every
/// request fails the same way; one line every few seconds says so.
#[derive(Debug, Default)]
pub struct FailureLog {
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl FailureLog {
    /// Records one failed request; logs a warning unless one was logged for the same
    /// failure within [`FAILURE_INTERVAL`]. Returns whether it logged.
    pub fn failed(
        &self,
        endpoint: &'static str,
        project: Option<u64>,
        cause: &'static str,
    ) -> bool {
        let now = Instant::now();
        let suppressed = {
            let Ok(mut last) = self.last.lock() else {
                return false;
            };
            let entry = last.entry(cause).or_insert((now - FAILURE_INTERVAL * 2, 0));
            if now.duration_since(entry.0) < FAILURE_INTERVAL {
                entry.1 += 1;
                return false;
            }
            let suppressed = entry.1;
            *entry = (now, 0);
            suppressed
        };
        tracing::warn!(
            endpoint,
            project,
            cause,
            suppressed_since_last = suppressed,
            "request failed"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::envelope::ItemType;

    #[test]
    fn one_failure_warning_per_cause_per_interval() {
        let log = FailureLog::default();
        assert!(log.failed(
            "store",
            Some(1),
            "upstream unavailable and the spool is full"
        ));
        for _ in 0..6 {
            assert!(!log.failed(
                "store",
                Some(2),
                "upstream unavailable and the spool is full"
            ));
        }
        assert!(log.failed("envelope", Some(1), "too many request bytes in flight"));
    }

    #[test]
    fn one_warning_per_project_and_type_per_interval() {
        let log = DropLog::default();
        assert!(log.dropped(1, ItemLabel::Item(ItemType::ReplayVideo), "not scrubbed"));
        assert!(!log.dropped(1, ItemLabel::Item(ItemType::ReplayVideo), "not scrubbed"));
        assert!(log.dropped(2, ItemLabel::Item(ItemType::ReplayVideo), "not scrubbed"));
        assert!(log.dropped(1, ItemLabel::Item(ItemType::Statsd), "not scrubbed"));
        assert!(!log.dropped(2, ItemLabel::Item(ItemType::ReplayVideo), "not scrubbed"));
    }
}
