//! Connection limits per remote IP and in total, and the process-wide budget of file
//! descriptors every listener's connections share ([`FdBudget`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

pub use ipnet::IpNet;

/// A refused address gets at most one refusal line (`* BYE`, `421`, `-ERR`, `503`) per
/// this interval; further refusals within it are closed without a word.
pub const REFUSAL_NOTICE_INTERVAL: Duration = Duration::from_secs(1);
/// Addresses whose last refusal notice is remembered; past this, entries older than
/// [`REFUSAL_NOTICE_INTERVAL`] are dropped (and, if all are recent, every one).
const MAX_NOTICE_ENTRIES: usize = 4096;

/// Counts open connections; [`ConnectionLimiter::try_acquire`] refuses above the limits.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Mutex<Counts>>,
    max_per_ip: usize,
    max_total: usize,
    budget: Arc<FdBudget>,
    /// Networks exempt from the per-IP limit (`[limits] trusted_networks`: a proxy or
    /// webmail host that carries many users' connections from one address).
    trusted: Arc<[IpNet]>,
    /// When each recently refused address last got a refusal notice.
    notices: Arc<Mutex<HashMap<IpAddr, Instant>>>,
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
            trusted: Arc::from(Vec::new()),
            notices: Arc::default(),
        }
    }

    /// Exempts these networks from the per-IP limit (the total limit still applies).
    pub fn with_trusted(mut self, networks: &[IpNet]) -> Self {
        self.trusted = Arc::from(networks.to_vec());
        self
    }

    /// Is `ip` in a trusted network? (An IPv4-mapped IPv6 address counts as its IPv4.)
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// A slot for a new connection from `ip`, or `None` when a limit is reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<ConnectionGuard> {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let current = counts.per_ip.get(&ip).copied().unwrap_or(0);
        let per_ip_full = current >= self.max_per_ip && !self.is_trusted(ip);
        if per_ip_full || counts.total >= self.max_total {
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

    /// For a connection from `ip` that [`try_acquire`](Self::try_acquire) refused: may it
    /// get the protocol's one-line refusal (and a log line)? At most one per
    /// [`REFUSAL_NOTICE_INTERVAL`] per address; the rest are just closed, so a client
    /// reconnecting in a loop costs an accept and a close, not a write and a log line each.
    pub fn refusal_notice(&self, ip: IpAddr) -> bool {
        self.refusal_notice_at(ip, Instant::now())
    }

    fn refusal_notice_at(&self, ip: IpAddr, now: Instant) -> bool {
        let mut notices = self.notices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = notices.get(&ip)
            && now.saturating_duration_since(*last) < REFUSAL_NOTICE_INTERVAL
        {
            return false;
        }
        if notices.len() >= MAX_NOTICE_ENTRIES {
            notices.retain(|_, at| now.saturating_duration_since(*at) < REFUSAL_NOTICE_INTERVAL);
            if notices.len() >= MAX_NOTICE_ENTRIES {
                notices.clear();
            }
        }
        notices.insert(ip, now);
        true
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
    fn trusted_networks_skip_the_per_ip_limit_but_not_the_total() {
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        let limiter = ConnectionLimiter::new(1, 4).with_trusted(&nets);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let held: Vec<_> = (0..3)
            .map(|_| limiter.try_acquire(proxy).unwrap())
            .collect();
        assert!(limiter.is_trusted("::ffff:10.9.9.9".parse().unwrap()));
        assert!(limiter.is_trusted("fd12::1".parse().unwrap()));
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(!limiter.is_trusted(other));
        let _one = limiter.try_acquire(other).unwrap();
        assert!(
            limiter.try_acquire(proxy).is_none(),
            "the total limit still holds"
        );
        drop(held);
        assert!(
            limiter.try_acquire(other).is_none(),
            "untrusted: one per IP"
        );
    }

    #[test]
    fn refusal_notices_are_one_per_second_per_address() {
        let limiter = ConnectionLimiter::new(1, 10);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(limiter.refusal_notice_at(a, t0));
        assert!(!limiter.refusal_notice_at(a, t0 + Duration::from_millis(10)));
        assert!(!limiter.refusal_notice_at(a, t0 + Duration::from_millis(999)));
        assert!(limiter.refusal_notice_at(b, t0 + Duration::from_millis(10)));
        assert!(limiter.refusal_notice_at(a, t0 + Duration::from_millis(1000)));
        // The memory of refused addresses stays bounded.
        for n in 0..(MAX_NOTICE_ENTRIES as u32 + 10) {
            limiter.refusal_notice_at(IpAddr::from(n.to_be_bytes()), t0 + Duration::from_secs(5));
        }
        assert!(limiter.notices.lock().unwrap().len() <= MAX_NOTICE_ENTRIES);
    }

    #[test]
    fn total_limit_applies_across_ips() {
        let limiter = ConnectionLimiter::new(10, 1);
        let _a = limiter.try_acquire("127.0.0.1".parse().unwrap()).unwrap();
        assert!(limiter.try_acquire("127.0.0.2".parse().unwrap()).is_none());
    }
}
