//! Entries held back: ones the upstream answered 5xx while it took the entries after
//! them. Such an entry (one the store cannot digest, say) must not block the spool's
//! head, nor be dropped while the store may still take it: it is retried on its own
//! backoff, doubling from [`FIRST_RETRY`] to [`LAST_RETRY`], until it is delivered,
//! refused with a 4xx or expires with `spool.max_age`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The first retry of a held entry.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest pause between two retries of a held entry.
const LAST_RETRY: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Hold {
    strikes: u32,
    retry_at: Instant,
}

/// The held entries, by spool id; the drainer owns it.
#[derive(Debug, Default)]
pub(super) struct HeldBack {
    entries: HashMap<i64, Hold>,
}

impl HeldBack {
    /// True while `id` waits for its next retry.
    pub fn blocks(&self, id: i64, now: Instant) -> bool {
        self.entries
            .get(&id)
            .is_some_and(|hold| hold.retry_at > now)
    }

    /// True when `id` is held (waiting or due).
    pub fn contains(&self, id: i64) -> bool {
        self.entries.contains_key(&id)
    }

    /// Holds `id` back once more; returns how many times it has been.
    pub fn hold(&mut self, id: i64, now: Instant) -> u32 {
        let hold = self.entries.entry(id).or_insert(Hold {
            strikes: 0,
            retry_at: now,
        });
        hold.strikes = hold.strikes.saturating_add(1);
        let doublings = (hold.strikes - 1).min(16);
        hold.retry_at = now + FIRST_RETRY.saturating_mul(1 << doublings).min(LAST_RETRY);
        hold.strikes
    }

    /// Forgets `id` (delivered, refused or gone).
    pub fn release(&mut self, id: i64) {
        self.entries.remove(&id);
    }

    /// Keeps only the ids `still_spooled` says are.
    pub fn retain(&mut self, mut still_spooled: impl FnMut(i64) -> bool) {
        self.entries.retain(|&id, _| still_spooled(id));
    }

    /// How long until the first held entry is due, if any is held.
    pub fn next_retry(&self, now: Instant) -> Option<Duration> {
        self.entries
            .values()
            .map(|hold| hold.retry_at.saturating_duration_since(now))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_entry_waits_on_a_doubling_backoff_until_released() {
        let mut held = HeldBack::default();
        let now = Instant::now();
        assert!(!held.blocks(7, now));
        assert_eq!(held.next_retry(now), None);
        assert_eq!(held.hold(7, now), 1);
        assert!(held.blocks(7, now));
        assert!(!held.blocks(8, now));
        assert!(!held.blocks(7, now + FIRST_RETRY));
        assert_eq!(held.next_retry(now), Some(FIRST_RETRY));
        assert_eq!(held.hold(7, now), 2);
        assert_eq!(held.next_retry(now), Some(FIRST_RETRY * 2));
        for _ in 0..40 {
            held.hold(7, now);
        }
        assert_eq!(held.next_retry(now), Some(LAST_RETRY));
        held.release(7);
        assert!(!held.contains(7));
        assert!(!held.blocks(7, now));
    }

    #[test]
    fn retain_forgets_entries_no_longer_spooled() {
        let mut held = HeldBack::default();
        let now = Instant::now();
        held.hold(1, now);
        held.hold(2, now);
        held.retain(|id| id == 2);
        assert!(!held.contains(1));
        assert!(held.contains(2));
    }
}
