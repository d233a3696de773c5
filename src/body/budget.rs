//! The memory budget for request bodies: one global count of body bytes held in flight
//! (received, decompressed, and the decoded body while it is scrubbed and delivered).
//! Each request holds a [`Reservation`] that grows before its buffers do; a reservation
//! that would pass the budget fails at once (the request gets 503 with a short
//! `Retry-After`), so no mix of requests takes the process past it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::BodyError;

/// The budget: a limit and what is reserved against it. Clones share it.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// An empty reservation against this budget.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: 0,
        }
    }

    /// Bytes reserved now, by every request.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    fn take(&self, bytes: usize) -> bool {
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.inner.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// One request's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Budget,
    held: usize,
}

impl Reservation {
    /// Bytes held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Holds `bytes` in all: grows (failing if the budget cannot give that much) or
    /// shrinks (never fails).
    ///
    /// # Errors
    ///
    /// [`BodyError::OverBudget`] when growing would pass the budget; the reservation is
    /// unchanged then.
    pub fn resize(&mut self, bytes: usize) -> Result<(), BodyError> {
        if bytes > self.held {
            if !self.budget.take(bytes - self.held) {
                return Err(BodyError::OverBudget);
            }
        } else {
            self.budget.give_back(self.held - bytes);
        }
        self.held = bytes;
        Ok(())
    }

    /// Grows the reservation so that it holds at least `bytes`.
    ///
    /// # Errors
    ///
    /// As [`Reservation::resize`].
    pub fn at_least(&mut self, bytes: usize) -> Result<(), BodyError> {
        if bytes > self.held {
            self.resize(bytes)
        } else {
            Ok(())
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_pass_the_budget_and_give_back_on_drop() {
        let budget = Budget::new(100);
        let mut a = budget.reservation();
        let mut b = budget.reservation();
        a.resize(60).unwrap();
        assert!(matches!(b.resize(41), Err(BodyError::OverBudget)));
        assert_eq!(b.held(), 0, "a failed growth holds nothing more");
        b.resize(40).unwrap();
        assert_eq!(budget.used(), 100);
        a.resize(10).unwrap();
        assert_eq!(budget.used(), 50, "shrinking gives back");
        b.at_least(20).unwrap();
        assert_eq!(b.held(), 40, "at_least never shrinks");
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn concurrent_reservations_stay_within_the_budget() {
        let budget = Budget::new(1_000);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let budget = budget.clone();
                scope.spawn(move || {
                    for n in 0..2_000 {
                        let mut r = budget.reservation();
                        if r.resize(n % 300).is_ok() {
                            assert!(budget.used() <= budget.limit());
                        }
                    }
                });
            }
        });
        assert_eq!(budget.used(), 0);
    }
}
