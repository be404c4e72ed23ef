//! Connection limits per remote IP and in total.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open connections; [`ConnectionLimiter::try_acquire`] refuses above the limits.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Mutex<Counts>>,
    max_per_ip: usize,
    max_total: usize,
}

#[derive(Debug, Default)]
struct Counts {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Releases its slot when dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    inner: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl ConnectionLimiter {
    pub fn new(max_per_ip: usize, max_total: usize) -> Self {
        ConnectionLimiter {
            inner: Arc::default(),
            max_per_ip,
            max_total,
        }
    }

    /// A slot for a new connection from `ip`, or `None` when a limit is reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<ConnectionGuard> {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let current = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if current >= self.max_per_ip || counts.total >= self.max_total {
            return None;
        }
        counts.per_ip.insert(ip, current + 1);
        counts.total += 1;
        Some(ConnectionGuard {
            inner: self.inner.clone(),
            ip,
        })
    }

    pub fn open_connections(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
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
    fn total_limit_applies_across_ips() {
        let limiter = ConnectionLimiter::new(10, 1);
        let _a = limiter.try_acquire("127.0.0.1".parse().unwrap()).unwrap();
        assert!(limiter.try_acquire("127.0.0.2".parse().unwrap()).is_none());
    }
}
