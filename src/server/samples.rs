//! Samples of rule hits for the console: per project, a bounded ring of the latest
//! changes the live rules made (with `config.scrubgate.samples`) and the changes shadow
//! rules would have made. A sample holds the rule, the path, the method, the event id,
//! the item type and the matched text's shape (`aaaa@aaaaaaa.aaa`), never the text.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::scrub::Change;

/// Samples kept per project; older ones are dropped.
pub const SAMPLES_PER_PROJECT: usize = 200;

/// One rule hit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// The rule id (as in `_meta`).
    pub rule: String,
    /// Where, e.g. `exception.values.0.value`.
    pub path: String,
    /// The method it applied (or would apply).
    pub method: &'static str,
    /// The matched text's shape (letters `a`/`A`, digits `9`, at most 64 characters).
    pub shape: String,
    /// True for a shadow rule (nothing was changed).
    pub shadow: bool,
    /// The event id of the request, when it has one.
    pub event_id: Option<String>,
    /// The item type (`event`, `span`, ...).
    pub item_type: &'static str,
}

/// The shortest time between two sampled payloads of one project: paths and shapes are
/// recorded only for those (about ten a second), so sampling costs nearly nothing.
pub const SAMPLE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// The samples of every project.
#[derive(Debug, Default)]
pub struct SampleStore {
    by_project: Mutex<HashMap<u64, VecDeque<Sample>>>,
    last_sampled: Mutex<HashMap<u64, std::time::Instant>>,
}

impl SampleStore {
    /// Whether the next payload of `project` is to be sampled (at most one per
    /// [`SAMPLE_INTERVAL`]); when it is, the caller records paths and shapes.
    pub fn take_turn(&self, project: u64) -> bool {
        let now = std::time::Instant::now();
        let mut last = self.last_sampled.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(&project) {
            Some(at) if now.duration_since(*at) < SAMPLE_INTERVAL => false,
            _ => {
                last.insert(project, now);
                true
            }
        }
    }

    /// Adds the changes of one payload.
    pub fn record(
        &self,
        project: u64,
        changes: &[Change],
        shadow: bool,
        event_id: Option<&str>,
        item_type: &'static str,
    ) {
        if changes.is_empty() {
            return;
        }
        let mut by_project = self.by_project.lock().unwrap_or_else(|p| p.into_inner());
        let ring = by_project.entry(project).or_default();
        for change in changes {
            if ring.len() == SAMPLES_PER_PROJECT {
                ring.pop_front();
            }
            ring.push_back(Sample {
                rule: change.rule.to_string(),
                path: change.path.clone(),
                method: change.method.as_str(),
                shape: change.shape.clone().unwrap_or_default(),
                shadow,
                event_id: event_id.map(str::to_owned),
                item_type,
            });
        }
    }

    /// The samples of `project`, newest first.
    pub fn of(&self, project: u64) -> Vec<Sample> {
        let by_project = self.by_project.lock().unwrap_or_else(|p| p.into_inner());
        by_project
            .get(&project)
            .map(|ring| ring.iter().rev().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::Method;

    fn change(n: usize) -> Change {
        Change {
            path: format!("extra.v{n}"),
            rule: "@email".into(),
            method: Method::Replace,
            shape: Some("aaaa@aaaaaaa.aaa".into()),
        }
    }

    #[test]
    fn one_payload_per_project_per_interval_is_sampled() {
        let store = SampleStore::default();
        assert!(store.take_turn(1));
        assert!(!store.take_turn(1));
        assert!(store.take_turn(2), "another project has its own turn");
        std::thread::sleep(SAMPLE_INTERVAL);
        assert!(store.take_turn(1));
    }

    #[test]
    fn the_ring_keeps_the_latest_samples_per_project() {
        let store = SampleStore::default();
        let changes: Vec<Change> = (0..SAMPLES_PER_PROJECT + 5).map(change).collect();
        store.record(1, &changes, true, Some("abc"), "event");
        let samples = store.of(1);
        assert_eq!(samples.len(), SAMPLES_PER_PROJECT);
        assert_eq!(
            samples[0].path,
            format!("extra.v{}", SAMPLES_PER_PROJECT + 4)
        );
        assert!(samples
            .iter()
            .all(|s| s.shadow && s.shape == "aaaa@aaaaaaa.aaa"));
        assert!(store.of(2).is_empty());
    }
}
