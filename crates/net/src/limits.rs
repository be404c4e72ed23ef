//! Connection limits per remote IP and in total, and the process-wide budget of file
//! descriptors every listener's connections share ([`FdBudget`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// Counts open connections; [`ConnectionLimiter::try_acquire`] refuses above the limits.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Mutex<Counts>>,
    max_per_ip: usize,
    max_total: usize,
    budget: Arc<FdBudget>,
}

/// How many connections all listeners of the process may hold together: the file-descriptor
/// limit minus a reserve for the store, spool, logs and accept itself (set once at start with
/// [`FdBudget::set_limit`]; unlimited until then). A listener full of idle connections then
/// gets refusals of its own instead of `Too many open files` on every listener (issue 13 item 4).
#[derive(Debug)]
pub struct FdBudget {
    limit: AtomicUsize,
    in_use: AtomicUsize,
}

static PROCESS_BUDGET: LazyLock<Arc<FdBudget>> = LazyLock::new(|| Arc::new(FdBudget::new()));

impl FdBudget {
    pub fn new() -> Self {
        FdBudget {
            limit: AtomicUsize::new(usize::MAX),
            in_use: AtomicUsize::new(0),
        }
    }

    /// The budget every [`ConnectionLimiter::new`] shares.
    pub fn process() -> Arc<FdBudget> {
        PROCESS_BUDGET.clone()
    }

    pub fn set_limit(&self, connections: usize) {
        self.limit.store(connections, Ordering::Relaxed);
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Connections open across all listeners.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    fn try_take(&self) -> bool {
        let limit = self.limit();
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        let _ = self
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

impl Default for FdBudget {
    fn default() -> Self {
        FdBudget::new()
    }
}

#[derive(Debug, Default)]
struct Counts {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Releases its slot (and its share of the [`FdBudget`]) when dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    inner: Arc<Mutex<Counts>>,
    budget: Arc<FdBudget>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    /// Limits of one listener, sharing the process-wide [`FdBudget::process`].
    pub fn new(max_per_ip: usize, max_total: usize) -> Self {
        Self::with_budget(max_per_ip, max_total, FdBudget::process())
    }

    pub fn with_budget(max_per_ip: usize, max_total: usize, budget: Arc<FdBudget>) -> Self {
        ConnectionLimiter {
            inner: Arc::default(),
            max_per_ip,
            max_total,
            budget,
        }
    }

    /// A slot for a new connection from `ip`, or `None` when a limit is reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<ConnectionGuard> {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let current = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if current >= self.max_per_ip || counts.total >= self.max_total {
            return None;
        }
        if !self.budget.try_take() {
            tracing::warn!(
                limit = self.budget.limit(),
                "connection refused: the process is at its file-descriptor budget"
            );
            return None;
        }
        counts.per_ip.insert(ip, current + 1);
        counts.total += 1;
        Some(ConnectionGuard {
            inner: self.inner.clone(),
            budget: self.budget.clone(),
            ip,
        })
    }

    pub fn open_connections(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.budget.give_back();
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_limit_refuses_and_releases_on_drop() {
        let limiter = ConnectionLimiter::new(2, 100);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = limiter.try_acquire(ip).unwrap();
        let _b = limiter.try_acquire(ip).unwrap();
        assert!(limiter.try_acquire(ip).is_none());
        assert!(limiter.try_acquire("127.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(limiter.try_acquire(ip).is_some());
    }

    #[test]
    fn fd_budget_is_shared_by_every_listener_and_released_on_drop() {
        let budget = Arc::new(FdBudget::new());
        budget.set_limit(3);
        let http = ConnectionLimiter::with_budget(10, 100, budget.clone());
        let imap = ConnectionLimiter::with_budget(10, 100, budget.clone());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = http.try_acquire(ip).unwrap();
        let _b = http.try_acquire(ip).unwrap();
        let _c = imap.try_acquire(ip).unwrap();
        assert!(imap.try_acquire(ip).is_none());
        assert!(http.try_acquire("127.0.0.2".parse().unwrap()).is_none());
        assert_eq!(budget.in_use(), 3);
        drop(a);
        assert!(imap.try_acquire(ip).is_some());
    }

    #[test]
    fn total_limit_applies_across_ips() {
        let limiter = ConnectionLimiter::new(10, 1);
        let _a = limiter.try_acquire("127.0.0.1".parse().unwrap()).unwrap();
        assert!(limiter.try_acquire("127.0.0.2".parse().unwrap()).is_none());
    }
}
