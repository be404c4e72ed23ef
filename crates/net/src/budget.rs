//! A byte budget shared by every session of one server: the memory all of them together may
//! hold for message bodies being received (SMTP DATA/BDAT, IMAP APPEND literals). A session
//! reserves bytes before it buffers them and gives them back when the body is dropped, so a
//! handful of clients sending huge, never-finished messages cannot make the server hold
//! gigabytes (issue 13, item 5). Plain atomics: usable from sans-I/O sessions too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The shared budget; hand out [`Reservation`]s with [`MemoryBudget::try_reserve`].
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    /// Reservations up to this many bytes may use the whole budget; larger ones only
    /// `limit - small_reserve`, so a few huge bodies cannot starve the many small ones.
    small: usize,
    small_reserve: usize,
    used: AtomicUsize,
    released: Notify,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Self::with_reserve_for_small(limit, 0, 0)
    }

    /// A budget of `limit` bytes of which `reserve` is kept for reservations of at most
    /// `small` bytes: the part of a reservation beyond `small` never takes those.
    pub fn with_reserve_for_small(limit: usize, small: usize, reserve: usize) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit,
            small,
            small_reserve: reserve.min(limit),
            used: AtomicUsize::new(0),
            released: Notify::new(),
        })
    }

    /// No limit (tests, tools).
    pub fn unlimited() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved right now, over all sessions.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Takes `bytes` more from the budget for a reservation that then holds `total`, if
    /// they fit.
    fn take(&self, bytes: usize, total: usize) -> bool {
        let ceiling = if total <= self.small {
            self.limit
        } else {
            self.limit - self.small_reserve
        };
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|sum| *sum <= ceiling)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        if bytes > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.released.notify_waiters();
        }
    }

    /// A reservation of `bytes`, or `None` when the budget cannot hold them now.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut r = Reservation::empty(self);
        r.try_grow_to(bytes).then_some(r)
    }

    /// Like [`try_reserve`](Self::try_reserve), waiting up to `wait` for other sessions to
    /// give bytes back.
    pub async fn reserve_within(
        self: &Arc<Self>,
        bytes: usize,
        wait: Duration,
    ) -> Option<Reservation> {
        let mut r = Reservation::empty(self);
        r.grow_within(bytes, wait).await.then_some(r)
    }
}

/// Bytes held from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    held: usize,
}

impl Reservation {
    /// Holds nothing yet.
    pub fn empty(budget: &Arc<MemoryBudget>) -> Reservation {
        Reservation {
            budget: budget.clone(),
            held: 0,
        }
    }

    pub fn held(&self) -> usize {
        self.held
    }

    /// The budget this reservation is part of.
    pub fn budget(&self) -> &Arc<MemoryBudget> {
        &self.budget
    }

    /// Grows the reservation to `total` bytes (never shrinks it); false when the budget
    /// cannot hold that much now (the reservation is unchanged then).
    pub fn try_grow_to(&mut self, total: usize) -> bool {
        if total <= self.held {
            return true;
        }
        let more = total - self.held;
        if self.budget.take(more, total) {
            self.held = total;
            true
        } else {
            false
        }
    }
}

impl Reservation {
    /// Like [`try_grow_to`](Self::try_grow_to), waiting up to `wait` for other sessions to
    /// give bytes back; false at once when `total` exceeds the whole budget.
    pub async fn grow_within(&mut self, total: usize, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let budget = self.budget.clone();
        loop {
            let released = budget.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.try_grow_to(total) {
                return true;
            }
            if total > budget.limit {
                return false;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return false;
            }
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
    fn reservations_share_the_budget_and_give_it_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.try_reserve(60).expect("fits");
        assert!(budget.try_reserve(50).is_none(), "60 + 50 > 100");
        let b = budget.try_reserve(40).expect("fits exactly");
        assert!(!a.try_grow_to(61), "the budget is full");
        assert_eq!((a.held(), budget.in_use()), (60, 100));
        drop(b);
        assert!(a.try_grow_to(100));
        drop(a);
        assert_eq!(budget.in_use(), 0);
        assert!(
            budget.try_reserve(101).is_none(),
            "more than the whole budget"
        );
    }

    #[test]
    fn large_reservations_leave_the_reserve_to_small_ones() {
        let budget = MemoryBudget::with_reserve_for_small(100, 10, 30);
        let mut big = budget.try_reserve(60).expect("fits under 70");
        assert!(!big.try_grow_to(71), "beyond the large share");
        let smalls: Vec<_> = (0..4).filter_map(|_| budget.try_reserve(10)).collect();
        assert_eq!(smalls.len(), 4, "the rest is there for small ones");
        assert!(budget.try_reserve(1).is_none(), "full");
    }

    #[tokio::test]
    async fn a_waiting_reservation_gets_the_bytes_another_one_gives_back() {
        let budget = MemoryBudget::new(100);
        let first = budget.try_reserve(100).expect("fits");
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve_within(70, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        drop(first);
        let got = waiter.await.expect("task");
        assert_eq!(got.map(|r| r.held()), Some(70));
        let none = budget.reserve_within(200, Duration::from_secs(30)).await;
        assert!(none.is_none(), "larger than the budget: refused at once");
    }
}
