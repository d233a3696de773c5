//! Warnings for dropped envelope items, rate-limited: at most one line per project and
//! item type per [`INTERVAL`], which also says how many drops it stands for. The lines
//! name the project, the item type and the reason, never any content.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::envelope::ItemType;

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
