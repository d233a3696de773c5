//! What is known of a path shape: which applications match it and whether its leaf key
//! is a `password` key, memoized by path signature per walk, per thread and (bounded)
//! across threads.

use super::Walker;
use crate::scrub::builtin;
use crate::scrub::rules::{Application, RuleKind};
use crate::scrub::schema::Pii;
use crate::scrub::sig::{BuildSigHasher, SHARED_MEMO_CAP};

/// Path facts by signature, for one rule set.
pub(super) type PathMemo = std::collections::HashMap<u128, PathFacts, BuildSigHasher>;

/// Per-thread memos of the rule sets used last, most recent first: the facts of a path
/// shape depend only on the rules, so they carry over from event to event without the
/// shared memo's locks or a fresh table per event.
const THREAD_MEMOS: usize = 4;

/// Entries a per-thread memo may hold (a bound for events with ever new path shapes).
const THREAD_MEMO_CAP: usize = 1 << 14;

thread_local! {
    static MEMOS: std::cell::RefCell<Vec<(u64, PathMemo)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Applications whose matches are memoized as bits of a `u64` mask.
pub(super) const MASK_APPS: usize = 64;

/// What depends only on a value's path signature, memoized per walk.
#[derive(Clone, Copy)]
pub(super) struct PathFacts {
    /// Bit `i`: application `i` matches.
    mask: u64,
    /// Whether the leaf key is a `password` key, once asked.
    password_key: Option<bool>,
}

/// Bit `i` set when one of the first 64 applications' rules is of a kind `is_kind` picks.
pub(super) fn app_bits(apps: &[Application], is_kind: impl Fn(&RuleKind) -> bool) -> u64 {
    apps.iter()
        .take(MASK_APPS)
        .enumerate()
        .filter(|(_, app)| app.rules.iter().any(|r| is_kind(&r.kind)))
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

impl<'r, 'a> Walker<'r, 'a> {
    /// Starts from this thread's memo for the rule set `rules_id` (see [`THREAD_MEMOS`]).
    /// `rules_id` must be unique to the rules this walker applies.
    pub fn adopt_thread_memo(&mut self, rules_id: u64) {
        let adopted = MEMOS.with(|memos| {
            let mut memos = memos.borrow_mut();
            let pos = memos.iter().position(|(id, _)| *id == rules_id)?;
            Some(memos.remove(pos).1)
        });
        if let Some(memo) = adopted {
            self.memo = memo;
        }
    }

    /// Hands the memo back to this thread for the next event with the same rules.
    pub fn return_thread_memo(&mut self, rules_id: u64) {
        let mut memo = std::mem::take(&mut self.memo);
        if memo.len() > THREAD_MEMO_CAP {
            memo.clear();
        }
        MEMOS.with(|memos| {
            let mut memos = memos.borrow_mut();
            memos.insert(0, (rules_id, memo));
            memos.truncate(THREAD_MEMOS);
        });
    }

    /// The matching applications (see [`Walker::app_mask`]) and whether the leaf's key
    /// is sensitive to the `password` rule, with one memo lookup when both are known. The
    /// key test is memoized by path signature too: it is case-insensitive, and signatures
    /// fold ASCII case.
    pub(super) fn leaf_facts(&mut self, pii: Pii) -> (u64, bool) {
        let sig = self.frames.last().map_or(0, |f| f.sig);
        if let Some(facts) = self.memo.get(&sig) {
            match (self.needs_password_key, facts.password_key) {
                (false, _) => return (facts.mask, false),
                (true, Some(hit)) => return (facts.mask, hit),
                (true, None) => {}
            }
        }
        let mask = self.app_mask(pii);
        if !self.needs_password_key {
            return (mask, false);
        }
        let hit = self.any_app(mask) && builtin::password_key_matches(self.leaf_key());
        self.memo.insert(
            sig,
            PathFacts {
                mask,
                password_key: Some(hit),
            },
        );
        (mask, hit)
    }

    /// Whether any application may match, given the memoized `mask` of the first 64.
    pub(super) fn any_app(&self, mask: u64) -> bool {
        mask != 0 || self.apps.len() > MASK_APPS
    }

    /// The indices of the applications matching the current value, in order: the set
    /// bits of `mask` for the first 64 (memoized), then the rest by evaluating their
    /// selectors (configs with more than 64 selectors are rare; they are slower, never
    /// wrong).
    pub(super) fn matching_apps(&self, mask: u64, pii: Pii) -> impl Iterator<Item = usize> + '_ {
        let bits = std::iter::successors(Some(mask).filter(|&m| m != 0), |&m| {
            Some(m & (m - 1)).filter(|&m| m != 0)
        })
        .map(|m| m.trailing_zeros() as usize);
        let wide = (MASK_APPS..self.apps.len())
            .filter(move |&i| self.apps[i].selector.matches(pii, &self.steps()));
        bits.chain(wide)
    }

    /// Bit `i` is set when application `i` matches the current value. Memoized by path
    /// signature: repeated shapes (frames, breadcrumbs, pairs) are evaluated once.
    fn app_mask(&mut self, pii: Pii) -> u64 {
        let sig = self.frames.last().map_or(0, |f| f.sig);
        if self.apps.len() <= MASK_APPS {
            if let Some(facts) = self.memo.get(&sig) {
                return facts.mask;
            }
            if let Some(mask) = self.shared_memo.and_then(|m| m.get(&sig).map(|m| *m)) {
                self.memo.insert(
                    sig,
                    PathFacts {
                        mask,
                        password_key: None,
                    },
                );
                return mask;
            }
        }
        let steps = self.steps();
        let mut mask = 0u64;
        for (i, app) in self.apps.iter().enumerate().take(MASK_APPS) {
            if app.selector.matches(pii, &steps) {
                mask |= 1 << i;
            }
        }
        drop(steps);
        self.memo.insert(
            sig,
            PathFacts {
                mask,
                password_key: None,
            },
        );
        if let Some(shared) = self.shared_memo {
            if shared.len() < SHARED_MEMO_CAP {
                shared.insert(sig, mask);
            }
        }
        mask
    }
}
