//! Failed-login throttling per remote IP and per account (in memory, per node).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Sliding window in which failures count.
    pub window: Duration,
    /// Failures from one IP inside the window before that IP is refused until the window passes.
    pub ip_max_failures: u32,
    /// Failures on one account after which each attempt is delayed by `account_delay`.
    pub account_delay_after: u32,
    pub account_delay: Duration,
    /// Failures on one account after which it refuses logins for `account_lockout` (short).
    pub account_max_failures: u32,
    pub account_lockout: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            window: Duration::from_secs(600),
            ip_max_failures: 10,
            account_delay_after: 3,
            account_delay: Duration::from_secs(2),
            account_max_failures: 20,
            account_lockout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Go on after waiting this long.
    Delay(Duration),
    /// Refuse now (temporary); retry after this long.
    Refuse(Duration),
}

#[derive(Debug, Default)]
struct Failures {
    times: Vec<Instant>,
}

impl Failures {
    fn prune(&mut self, now: Instant, window: Duration) {
        self.times.retain(|t| now.duration_since(*t) < window);
    }
}

/// Tracks failures; cheap to call on every login.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    by_ip: Mutex<HashMap<IpAddr, Failures>>,
    by_account: Mutex<HashMap<String, Failures>>,
}

/// Bound on tracked keys so an attacker cycling usernames cannot grow memory without limit.
const MAX_TRACKED_KEYS: usize = 100_000;

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            by_ip: Mutex::default(),
            by_account: Mutex::default(),
        }
    }

    pub fn check(&self, ip: IpAddr, account: &str) -> Verdict {
        self.check_at(ip, account, Instant::now())
    }

    fn check_at(&self, ip: IpAddr, account: &str, now: Instant) -> Verdict {
        let c = &self.config;
        if let Some(f) = lock(&self.by_ip).get_mut(&ip) {
            f.prune(now, c.window);
            if f.times.len() as u32 >= c.ip_max_failures {
                let oldest = f.times.first().copied().unwrap_or(now);
                return Verdict::Refuse(c.window.saturating_sub(now.duration_since(oldest)));
            }
        }
        if let Some(f) = lock(&self.by_account).get_mut(account) {
            f.prune(now, c.window);
            let n = f.times.len() as u32;
            if n >= c.account_max_failures {
                let last = f.times.last().copied().unwrap_or(now);
                let since = now.duration_since(last);
                if since < c.account_lockout {
                    return Verdict::Refuse(c.account_lockout - since);
                }
            }
            if n >= c.account_delay_after {
                return Verdict::Delay(c.account_delay);
            }
        }
        Verdict::Allow
    }

    pub fn record_failure(&self, ip: IpAddr, account: &str) {
        let now = Instant::now();
        {
            let mut map = lock(&self.by_ip);
            if map.len() >= MAX_TRACKED_KEYS {
                map.retain(|_, f| {
                    f.times
                        .iter()
                        .any(|t| now.duration_since(*t) < self.config.window)
                });
            }
            map.entry(ip).or_default().times.push(now);
        }
        let mut map = lock(&self.by_account);
        if map.len() >= MAX_TRACKED_KEYS {
            map.retain(|_, f| {
                f.times
                    .iter()
                    .any(|t| now.duration_since(*t) < self.config.window)
            });
        }
        map.entry(account.to_string()).or_default().times.push(now);
    }

    /// A success clears the IP's record (the account's stays: other IPs may be attacking it).
    pub fn record_success(&self, ip: IpAddr, _account: &str) {
        lock(&self.by_ip).remove(&ip);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ip_is_refused_after_too_many_failures_but_other_ips_are_not() {
        let t = Throttle::new(ThrottleConfig {
            ip_max_failures: 3,
            account_delay_after: 100,
            account_max_failures: 100,
            ..Default::default()
        });
        for _ in 0..3 {
            assert_eq!(t.check(ip("10.0.0.1"), "a@x"), Verdict::Allow);
            t.record_failure(ip("10.0.0.1"), "a@x");
        }
        assert!(matches!(t.check(ip("10.0.0.1"), "a@x"), Verdict::Refuse(_)));
        assert_eq!(t.check(ip("10.0.0.2"), "a@x"), Verdict::Allow);
    }

    #[test]
    fn account_gets_delay_then_short_lockout_that_expires() {
        let cfg = ThrottleConfig {
            ip_max_failures: 1000,
            account_delay_after: 2,
            account_max_failures: 4,
            account_lockout: Duration::from_secs(60),
            ..Default::default()
        };
        let t = Throttle::new(cfg);
        let now = Instant::now();
        t.record_failure(ip("10.0.0.1"), "a@x");
        t.record_failure(ip("10.0.0.2"), "a@x");
        assert!(matches!(
            t.check_at(ip("10.0.0.3"), "a@x", now),
            Verdict::Delay(_)
        ));
        t.record_failure(ip("10.0.0.3"), "a@x");
        t.record_failure(ip("10.0.0.4"), "a@x");
        assert!(matches!(
            t.check_at(ip("10.0.0.5"), "a@x", Instant::now()),
            Verdict::Refuse(_)
        ));
        // After the lockout the account is usable again (only delayed).
        let later = Instant::now() + Duration::from_secs(61);
        assert!(matches!(
            t.check_at(ip("10.0.0.5"), "a@x", later),
            Verdict::Delay(_)
        ));
    }

    #[test]
    fn success_clears_the_ip_record() {
        let t = Throttle::new(ThrottleConfig {
            ip_max_failures: 2,
            ..Default::default()
        });
        t.record_failure(ip("10.0.0.1"), "a@x");
        t.record_success(ip("10.0.0.1"), "a@x");
        t.record_failure(ip("10.0.0.1"), "a@x");
        assert_ne!(
            t.check(ip("10.0.0.1"), "b@x"),
            Verdict::Refuse(Duration::ZERO)
        );
        assert!(!matches!(
            t.check(ip("10.0.0.1"), "b@x"),
            Verdict::Refuse(_)
        ));
    }
}
