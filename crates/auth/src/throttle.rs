//! Failed-login throttling per remote IP and per account (in memory, per node).
//!
//! * Atomic check-and-record (issue 13, item 9): [`Throttle::begin`] reserves an attempt
//!   slot *before* the password is checked. A slot in flight counts like a failure until the
//!   attempt ends ([`Attempt::failed`], [`Attempt::succeeded`], or dropped: neither), so N
//!   concurrent guesses from one IP get at most [`ThrottleConfig::ip_max_failures`] real
//!   password checks; the others wait for a slot and are refused once the failures are in.
//! * Per-IP failures remember the account they were for (item 10): a success clears only that
//!   account's failures from that IP, so an attacker's own account cannot reset the count.
//! * Known devices (item 11): an IP that signed in to the account before
//!   ([`KNOWN_DEVICE_TTL`]), or a caller that vouches for the device (a device cookie, a valid
//!   token), is exempt from the per-account delay and lock-out. During a per-account lock-out
//!   an unknown device is admitted with [`Admission::AppPasswordsOnly`]: app passwords (79
//!   random bits, not guessable) still work, the account password is not even checked. The
//!   per-account delay is a fixed [`ThrottleConfig::account_delay`], never growing.

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
    /// Failures on one account after which each attempt from an unknown device is delayed by
    /// `account_delay`.
    pub account_delay_after: u32,
    pub account_delay: Duration,
    /// Failures on one account after which unknown devices may use only app passwords, for
    /// `account_lockout` after the last failure.
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

/// What [`Throttle::check`] says about an attempt (without reserving anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Go on after waiting this long.
    Delay(Duration),
    /// Refuse now (temporary); retry after this long.
    Refuse(Duration),
}

/// Which credentials an admitted attempt may check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every credential of the account.
    Full,
    /// The account is locked for unknown devices: only app passwords are checked; the
    /// account password is refused unchecked (retry after this long).
    AppPasswordsOnly { retry_after: Duration },
}

/// How long a successful sign-in makes its IP a known device of the account.
pub const KNOWN_DEVICE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Known IPs remembered per account (oldest forgotten first).
pub const MAX_KNOWN_IPS_PER_ACCOUNT: usize = 16;
/// Longest wait for an attempt slot when the IP's slots are all in flight; then refused.
pub const MAX_SLOT_WAIT: Duration = Duration::from_secs(15);
/// Bound on tracked keys so an attacker cycling usernames cannot grow memory without limit.
const MAX_TRACKED_KEYS: usize = 100_000;

#[derive(Debug, Default)]
struct IpRecord {
    /// Failure times, with the (normalised) account name each was for.
    failures: Vec<(Instant, String)>,
    in_flight: u32,
}

#[derive(Debug, Default)]
struct AccountRecord {
    /// Failure times, with the IP each came from.
    failures: Vec<(Instant, IpAddr)>,
    in_flight: u32,
    /// IPs that signed in successfully, with the time of the last success.
    known: HashMap<IpAddr, Instant>,
}

#[derive(Debug, Default)]
struct State {
    by_ip: HashMap<IpAddr, IpRecord>,
    by_account: HashMap<String, AccountRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    FailedForIpOnly,
    Succeeded,
    Neither,
}

enum Reservation {
    Granted(Admission, Option<Duration>),
    Wait,
    Refuse(Duration),
}

/// Tracks failures and attempts in flight; cheap to call on every login.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    state: Mutex<State>,
    released: tokio::sync::Notify,
}

/// A reserved attempt: end it with [`Attempt::failed`] or [`Attempt::succeeded`]; dropping it
/// (store unavailable, a second factor still to come, the client went away) releases the slot
/// without counting anything.
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    ip: IpAddr,
    account: String,
    admission: Admission,
    open: bool,
}

impl Attempt<'_> {
    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// Counts a failure for the IP and the account and releases the slot. An attempt admitted
    /// with [`Admission::AppPasswordsOnly`] never checked the account password, so its failure
    /// counts for the IP only (it must not prolong the account's lock-out).
    pub fn failed(mut self) {
        self.open = false;
        let outcome = match self.admission {
            Admission::Full => Outcome::Failed,
            Admission::AppPasswordsOnly { .. } => Outcome::FailedForIpOnly,
        };
        self.throttle.finish(self.ip, &self.account, outcome);
    }

    /// Clears this account's failures from this IP, makes the IP a known device of the
    /// account, and releases the slot.
    pub fn succeeded(mut self) {
        self.open = false;
        self.throttle
            .finish(self.ip, &self.account, Outcome::Succeeded);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.open {
            self.throttle
                .finish(self.ip, &self.account, Outcome::Neither);
        }
    }
}

impl IpRecord {
    fn prune(&mut self, now: Instant, window: Duration) {
        self.failures
            .retain(|(t, _)| now.duration_since(*t) < window);
    }
}

impl AccountRecord {
    fn prune(&mut self, now: Instant, window: Duration) {
        self.failures
            .retain(|(t, _)| now.duration_since(*t) < window);
        self.known
            .retain(|_, t| now.duration_since(*t) < KNOWN_DEVICE_TTL);
    }
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            state: Mutex::default(),
            released: tokio::sync::Notify::new(),
        }
    }

    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Whether this node saw `account` sign in from `ip` within [`KNOWN_DEVICE_TTL`].
    pub fn knows(&self, ip: IpAddr, account: &str) -> bool {
        let now = Instant::now();
        lock(&self.state)
            .by_account
            .get(account)
            .and_then(|r| r.known.get(&ip))
            .is_some_and(|t| now.duration_since(*t) < KNOWN_DEVICE_TTL)
    }

    /// Whether attempts on `account` from unknown devices are delayed or restricted now.
    pub fn under_pressure(&self, account: &str) -> bool {
        let now = Instant::now();
        let state = lock(&self.state);
        state.by_account.get(account).is_some_and(|r| {
            let fresh = r
                .failures
                .iter()
                .filter(|(t, _)| now.duration_since(*t) < self.config.window)
                .count() as u32;
            fresh + r.in_flight
                >= self
                    .config
                    .account_delay_after
                    .min(self.config.account_max_failures)
        })
    }

    /// What an attempt would meet now, without reserving a slot (for display and tests).
    pub fn check(&self, ip: IpAddr, account: &str) -> Verdict {
        let mut state = lock(&self.state);
        match self.reserve(&mut state, ip, account, false, Instant::now(), false) {
            Reservation::Granted(Admission::Full, None) => Verdict::Allow,
            Reservation::Granted(Admission::Full, Some(d)) => Verdict::Delay(d),
            Reservation::Granted(Admission::AppPasswordsOnly { retry_after }, _) => {
                Verdict::Refuse(retry_after)
            }
            Reservation::Wait => Verdict::Delay(Duration::ZERO),
            Reservation::Refuse(d) => Verdict::Refuse(d),
        }
    }

    /// Reserves an attempt slot for `account` from `ip`, waiting (up to [`MAX_SLOT_WAIT`])
    /// while the IP's slots are all in flight, and sleeping the per-account delay when due.
    /// `known_device`: the caller vouches that this device signed in to the account before.
    /// `Err(retry_after)` when the IP is refused.
    pub async fn begin(
        &self,
        ip: IpAddr,
        account: &str,
        known_device: bool,
    ) -> Result<Attempt<'_>, Duration> {
        let deadline = tokio::time::Instant::now() + MAX_SLOT_WAIT;
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a release in between is not missed.
            notified.as_mut().enable();
            let reservation = {
                let mut state = lock(&self.state);
                self.reserve(&mut state, ip, account, known_device, Instant::now(), true)
            };
            match reservation {
                Reservation::Refuse(d) => return Err(d),
                Reservation::Granted(admission, delay) => {
                    let attempt = Attempt {
                        throttle: self,
                        ip,
                        account: account.to_string(),
                        admission,
                        open: true,
                    };
                    if let Some(d) = delay {
                        tokio::time::sleep(d).await;
                    }
                    return Ok(attempt);
                }
                Reservation::Wait => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(Duration::from_secs(1));
                    }
                }
            }
        }
    }

    fn reserve(
        &self,
        state: &mut State,
        ip: IpAddr,
        account: &str,
        known_device: bool,
        now: Instant,
        take: bool,
    ) -> Reservation {
        let c = &self.config;
        if take {
            let fresh = |t: &Instant| now.duration_since(*t) < c.window;
            bound(&mut state.by_ip, |r| {
                r.in_flight > 0 || r.failures.iter().any(|(t, _)| fresh(t))
            });
            bound(&mut state.by_account, |r| {
                r.in_flight > 0
                    || r.failures.iter().any(|(t, _)| fresh(t))
                    || r.known
                        .values()
                        .any(|t| now.duration_since(*t) < KNOWN_DEVICE_TTL)
            });
        }
        let ip_record = state.by_ip.entry(ip).or_default();
        ip_record.prune(now, c.window);
        let failures = ip_record.failures.len() as u32;
        if failures >= c.ip_max_failures {
            let oldest = ip_record.failures.first().map(|(t, _)| *t).unwrap_or(now);
            return Reservation::Refuse(c.window.saturating_sub(now.duration_since(oldest)));
        }
        if failures + ip_record.in_flight >= c.ip_max_failures {
            return Reservation::Wait;
        }
        let acct = state.by_account.entry(account.to_string()).or_default();
        acct.prune(now, c.window);
        let known = known_device || acct.known.contains_key(&ip);
        let pressure = acct.failures.len() as u32 + acct.in_flight;
        let (admission, delay) = if known {
            (Admission::Full, None)
        } else {
            let since_last = acct
                .failures
                .last()
                .map(|(t, _)| now.duration_since(*t))
                .unwrap_or(Duration::ZERO);
            let locked = pressure >= c.account_max_failures
                && (acct.in_flight > 0 || since_last < c.account_lockout);
            if locked {
                let retry_after = c.account_lockout.saturating_sub(since_last);
                (
                    Admission::AppPasswordsOnly {
                        retry_after: retry_after.max(Duration::from_secs(1)),
                    },
                    None,
                )
            } else if pressure >= c.account_delay_after {
                (Admission::Full, Some(c.account_delay))
            } else {
                (Admission::Full, None)
            }
        };
        if take {
            acct.in_flight += 1;
            if let Some(r) = state.by_ip.get_mut(&ip) {
                r.in_flight += 1;
            }
        }
        Reservation::Granted(admission, delay)
    }

    /// Ends an attempt.
    fn finish(&self, ip: IpAddr, account: &str, outcome: Outcome) {
        let now = Instant::now();
        {
            let mut state = lock(&self.state);
            let State {
                by_ip, by_account, ..
            } = &mut *state;
            let ip_record = by_ip.entry(ip).or_default();
            ip_record.in_flight = ip_record.in_flight.saturating_sub(1);
            let acct = by_account.entry(account.to_string()).or_default();
            acct.in_flight = acct.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Failed => {
                    ip_record.failures.push((now, account.to_string()));
                    acct.failures.push((now, ip));
                }
                Outcome::FailedForIpOnly => {
                    ip_record.failures.push((now, account.to_string()));
                }
                Outcome::Succeeded => {
                    ip_record.failures.retain(|(_, a)| a != account);
                    acct.failures.retain(|(_, i)| *i != ip);
                    acct.known.insert(ip, now);
                    if acct.known.len() > MAX_KNOWN_IPS_PER_ACCOUNT
                        && let Some(oldest) =
                            acct.known.iter().min_by_key(|(_, t)| **t).map(|(i, _)| *i)
                    {
                        acct.known.remove(&oldest);
                    }
                }
                Outcome::Neither => {}
            }
        }
        self.released.notify_waiters();
    }
}

/// Keeps a map under [`MAX_TRACKED_KEYS`]: drops idle entries when it is full.
fn bound<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, busy: impl Fn(&V) -> bool) {
    if map.len() >= MAX_TRACKED_KEYS {
        map.retain(|_, v| busy(v));
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

    async fn fail(t: &Throttle, from: &str, account: &str) {
        t.begin(ip(from), account, false).await.unwrap().failed();
    }

    #[tokio::test]
    async fn ip_is_refused_after_too_many_failures_but_other_ips_are_not() {
        let t = Throttle::new(ThrottleConfig {
            ip_max_failures: 3,
            account_delay_after: 100,
            account_max_failures: 100,
            ..Default::default()
        });
        for _ in 0..3 {
            assert_eq!(t.check(ip("10.0.0.1"), "a@x"), Verdict::Allow);
            fail(&t, "10.0.0.1", "a@x").await;
        }
        assert!(matches!(t.check(ip("10.0.0.1"), "a@x"), Verdict::Refuse(_)));
        assert!(t.begin(ip("10.0.0.1"), "a@x", false).await.is_err());
        assert_eq!(t.check(ip("10.0.0.2"), "a@x"), Verdict::Allow);
    }

    #[tokio::test]
    async fn concurrent_attempts_from_one_ip_get_at_most_the_limit_of_checks() {
        let t = std::sync::Arc::new(Throttle::new(ThrottleConfig {
            ip_max_failures: 10,
            account_delay_after: 1000,
            account_max_failures: 1000,
            ..Default::default()
        }));
        let checks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..300 {
            let (t, checks) = (t.clone(), checks.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(attempt) = t.begin(ip("10.0.0.1"), "a@x", false).await else {
                    return;
                };
                checks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // The "password check" takes a while, so every task is in flight at once.
                tokio::time::sleep(Duration::from_millis(50)).await;
                attempt.failed();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(checks.load(std::sync::atomic::Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn a_dropped_attempt_releases_its_slot_without_counting() {
        let t = Throttle::new(ThrottleConfig {
            ip_max_failures: 1,
            ..Default::default()
        });
        drop(t.begin(ip("10.0.0.1"), "a@x", false).await.unwrap());
        assert_eq!(t.check(ip("10.0.0.1"), "a@x"), Verdict::Allow);
    }

    #[tokio::test]
    async fn account_gets_delay_then_only_app_passwords_for_unknown_devices() {
        let cfg = ThrottleConfig {
            ip_max_failures: 1000,
            account_delay_after: 2,
            account_delay: Duration::from_millis(10),
            account_max_failures: 4,
            account_lockout: Duration::from_secs(60),
            ..Default::default()
        };
        let t = Throttle::new(cfg);
        t.begin(ip("10.0.0.9"), "a@x", false)
            .await
            .unwrap()
            .succeeded();
        fail(&t, "10.0.0.1", "a@x").await;
        fail(&t, "10.0.0.2", "a@x").await;
        assert!(matches!(t.check(ip("10.0.0.3"), "a@x"), Verdict::Delay(_)));
        fail(&t, "10.0.0.3", "a@x").await;
        fail(&t, "10.0.0.4", "a@x").await;
        let a = t.begin(ip("10.0.0.5"), "a@x", false).await.unwrap();
        assert!(matches!(a.admission(), Admission::AppPasswordsOnly { .. }));
        drop(a);
        // A known device: the IP that signed in before, or one the caller vouches for.
        let a = t.begin(ip("10.0.0.9"), "a@x", false).await.unwrap();
        assert_eq!(a.admission(), Admission::Full);
        drop(a);
        let a = t.begin(ip("10.0.0.6"), "a@x", true).await.unwrap();
        assert_eq!(a.admission(), Admission::Full);
        drop(a);
        // After the lock-out, unknown devices are only delayed again.
        let later = Instant::now() + Duration::from_secs(61);
        let mut state = lock(&t.state);
        assert!(matches!(
            t.reserve(&mut state, ip("10.0.0.5"), "a@x", false, later, false),
            Reservation::Granted(Admission::Full, Some(_))
        ));
    }

    #[tokio::test]
    async fn success_clears_only_that_accounts_failures_from_the_ip() {
        let t = Throttle::new(ThrottleConfig {
            ip_max_failures: 3,
            account_delay_after: 100,
            account_max_failures: 100,
            ..Default::default()
        });
        // An attacker sprays alice's password and signs in to their own account in between.
        for _ in 0..3 {
            assert!(
                !matches!(t.check(ip("10.0.0.1"), "alice@x"), Verdict::Refuse(_)),
                "refused too early"
            );
            t.begin(ip("10.0.0.1"), "mallory@x", false)
                .await
                .unwrap()
                .succeeded();
            fail(&t, "10.0.0.1", "alice@x").await;
        }
        assert!(matches!(
            t.check(ip("10.0.0.1"), "alice@x"),
            Verdict::Refuse(_)
        ));
        // A user's own typo is forgiven by their own success.
        let t = Throttle::new(ThrottleConfig {
            ip_max_failures: 2,
            ..Default::default()
        });
        fail(&t, "10.0.0.1", "a@x").await;
        t.begin(ip("10.0.0.1"), "a@x", false)
            .await
            .unwrap()
            .succeeded();
        fail(&t, "10.0.0.1", "a@x").await;
        assert!(!matches!(
            t.check(ip("10.0.0.1"), "b@x"),
            Verdict::Refuse(_)
        ));
    }
}
