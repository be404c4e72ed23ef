//! Steady load with real protocol clients against every node: SMTP senders, IMAP sessions
//! (APPEND + FETCH) and JMAP clients holding a Bearer token. Clients move to the next node
//! when theirs fails. Every acknowledged message's Message-ID goes into the ledger; every
//! operation is an event (time, kind, ok) from which recovery time is computed.

use crate::imap::ImapClient;
use crate::jmap::{self, HttpConn};
use crate::message;
use crate::smtp::{Outcome, SmtpClient};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Pause between two operations of one client: steady load that leaves CPU for the nodes.
const PACE: Duration = Duration::from_millis(20);
/// Pause before retrying after a failed operation (a reconnect storm helps nobody).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// An IMAP client logs out and signs in again (on the next node) after this many rounds, so
/// password logins happen during every fault (as with mobile clients reconnecting).
const IMAP_ROUNDS_PER_LOGIN: u32 = 25;
/// How often the load balancer probes `/readyz`, and how long one probe may take.
const HEALTH_INTERVAL: Duration = Duration::from_millis(500);
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// `/readyz` changes kept for the report.
const KEPT_READINESS: usize = 16;
/// Client error texts kept for the report (the count is kept in full).
const KEPT_ERRORS: usize = 12;

/// Which protocol an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Smtp,
    Imap,
    Jmap,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Smtp => "smtp",
            Kind::Imap => "imap",
            Kind::Jmap => "jmap",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// When the operation ended.
    pub at: Instant,
    pub kind: Kind,
    pub ok: bool,
    /// How long it took (a stall shows here even when it ends well).
    pub took: Duration,
}

/// Addresses of one node's listeners (stable across restarts).
#[derive(Debug, Clone)]
pub struct Target {
    pub smtp: String,
    pub imap: String,
    pub http: String,
}

/// How many clients of each kind.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub smtp: usize,
    pub imap: usize,
    pub jmap: usize,
}

pub struct Shared {
    targets: Vec<Target>,
    run: String,
    user: String,
    pass: String,
    stop: AtomicBool,
    /// Per target: did its last `/readyz` probe answer 200 (as a load balancer would see it).
    ready: Vec<AtomicBool>,
    /// Changes of `/readyz` answers, in order.
    readiness: Mutex<Vec<String>>,
    seq: AtomicU64,
    acked: Mutex<Vec<String>>,
    events: Mutex<Vec<Event>>,
    errors: Mutex<Vec<String>>,
    relogins: AtomicU64,
    relogin_examples: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// One operation, started at `started`, ended now.
    fn record(&self, kind: Kind, ok: bool, started: Instant) {
        let at = Instant::now();
        lock(&self.events).push(Event {
            at,
            kind,
            ok,
            took: at.saturating_duration_since(started),
        });
    }

    fn error(&self, started: Instant, kind: Kind, what: String) {
        self.record(kind, false, started);
        let mut errors = lock(&self.errors);
        if errors.len() < KEPT_ERRORS {
            errors.push(format!("{}: {what}", kind.as_str()));
        }
    }

    /// Records a failed operation, then moves the client on to the next node after a pause.
    async fn fail_over(&self, started: Instant, kind: Kind, what: String, node: &mut usize) {
        self.error(started, kind, what);
        *node += 1;
        tokio::time::sleep(RETRY_PAUSE).await;
    }

    /// A token from before was refused: the user would have to sign in again.
    fn relogin(&self, started: Instant, what: String) {
        self.relogins.fetch_add(1, Ordering::Relaxed);
        let mut examples = lock(&self.relogin_examples);
        if examples.len() < KEPT_ERRORS {
            examples.push(what.clone());
        }
        drop(examples);
        self.error(started, Kind::Jmap, what);
    }

    fn next_id(&self, kind: Kind) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        message::message_id(&self.run, kind.as_str(), n)
    }

    /// The first target from `cursor` on whose `/readyz` says ready; `cursor` if none is.
    fn pick(&self, cursor: usize) -> usize {
        first_ready(cursor, self.ready.len(), |i| {
            self.ready[i].load(Ordering::Relaxed)
        })
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What the load saw, once stopped.
#[derive(Debug, Default)]
pub struct Outcomes {
    pub acked: Vec<String>,
    pub events: Vec<Event>,
    pub errors: Vec<String>,
    pub relogins: u64,
    /// What refused the tokens (first few).
    pub relogin_examples: Vec<String>,
    /// How the nodes' `/readyz` answers changed during the load.
    pub readiness: Vec<String>,
}

impl Outcomes {
    pub fn client_errors(&self) -> u64 {
        self.events.iter().filter(|e| !e.ok).count() as u64
    }

    /// Failed operations per kind, e.g. "smtp 3, imap 0, jmap 12".
    pub fn errors_by_kind(&self) -> String {
        [Kind::Smtp, Kind::Imap, Kind::Jmap]
            .iter()
            .map(|k| {
                let n = self.events.iter().filter(|e| e.kind == *k && !e.ok).count();
                format!("{} {n}", k.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The longest single operation, of any kind and outcome.
    pub fn longest_operation(&self) -> Duration {
        self.events.iter().map(|e| e.took).max().unwrap_or_default()
    }

    pub fn successes(&self) -> u64 {
        self.events.iter().filter(|e| e.ok).count() as u64
    }

    /// Seconds from `from` until every client kind that failed at or after `fault` succeeded
    /// again after its last failure; `Some(0.0)` if nothing failed, `None` if a kind never
    /// succeeded again.
    pub fn recovery_seconds(&self, fault: Instant, from: Instant) -> Option<f64> {
        let mut worst = 0.0f64;
        for kind in [Kind::Smtp, Kind::Imap, Kind::Jmap] {
            let of_kind = self.events.iter().filter(|e| e.kind == kind);
            let Some(last_error) = of_kind
                .clone()
                .filter(|e| !e.ok && e.at >= fault)
                .map(|e| e.at)
                .max()
            else {
                continue;
            };
            let back = of_kind
                .filter(|e| e.ok && e.at > last_error)
                .map(|e| e.at)
                .min()?;
            worst = worst.max(back.saturating_duration_since(from).as_secs_f64());
        }
        Some(worst)
    }
}

pub struct Load {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(targets: Vec<Target>, run: &str, user: &str, pass: &str, mix: Mix) -> Load {
        let targets_len = targets.len();
        let shared = Arc::new(Shared {
            targets,
            run: run.to_string(),
            user: user.to_string(),
            pass: pass.to_string(),
            stop: AtomicBool::new(false),
            ready: (0..targets_len).map(|_| AtomicBool::new(true)).collect(),
            readiness: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            acked: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
            relogins: AtomicU64::new(0),
            relogin_examples: Mutex::new(Vec::new()),
        });
        let mut tasks = vec![tokio::spawn(health_checks(shared.clone()))];
        for i in 0..mix.smtp {
            tasks.push(tokio::spawn(smtp_client(shared.clone(), i)));
        }
        for i in 0..mix.imap {
            tasks.push(tokio::spawn(imap_client(shared.clone(), i)));
        }
        for i in 0..mix.jmap {
            tasks.push(tokio::spawn(jmap_client(shared.clone(), i)));
        }
        Load { shared, tasks }
    }

    /// Operations that succeeded so far (to wait until load is flowing).
    pub fn successes(&self) -> usize {
        lock(&self.shared.events).iter().filter(|e| e.ok).count()
    }

    /// Stops every client after its current operation and returns what they saw.
    pub async fn stop(self) -> Outcomes {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        Outcomes {
            acked: std::mem::take(&mut *lock(&self.shared.acked)),
            events: std::mem::take(&mut *lock(&self.shared.events)),
            errors: std::mem::take(&mut *lock(&self.shared.errors)),
            relogins: self.shared.relogins.load(Ordering::Relaxed),
            relogin_examples: std::mem::take(&mut *lock(&self.shared.relogin_examples)),
            readiness: std::mem::take(&mut *lock(&self.shared.readiness)),
        }
    }
}

/// The first index from `cursor` on (wrapping over `n`) that is ready; `cursor` if none is.
fn first_ready(cursor: usize, n: usize, ready: impl Fn(usize) -> bool) -> usize {
    (cursor..cursor + n)
        .find(|i| ready(i % n))
        .unwrap_or(cursor)
}

/// A load balancer's view: probes every node's `/readyz` and marks it in or out of rotation.
/// Clients keep their connection to a node that leaves rotation; new connections avoid it.
async fn health_checks(s: Arc<Shared>) {
    let started = Instant::now();
    let mut last: Vec<String> = vec!["ready".to_string(); s.targets.len()];
    while !s.stopped() {
        for (i, t) in s.targets.iter().enumerate() {
            let probe = async {
                let mut http = HttpConn::connect(&t.http).await.ok()?;
                http.request("GET", "/readyz", None, "", b"").await.ok()
            };
            let (ready, state) = match tokio::time::timeout(HEALTH_TIMEOUT, probe).await {
                Ok(Some(a)) if a.status == 200 => (true, "ready".to_string()),
                Ok(Some(a)) => {
                    let body = String::from_utf8_lossy(&a.body);
                    let body: String = body.trim().chars().take(80).collect();
                    (false, format!("{} \"{body}\"", a.status))
                }
                Ok(None) => (false, "unreachable".to_string()),
                Err(_) => (false, format!("no answer within {HEALTH_TIMEOUT:?}")),
            };
            s.ready[i].store(ready, Ordering::Relaxed);
            if state != last[i] {
                let mut log = lock(&s.readiness);
                if log.len() < KEPT_READINESS {
                    log.push(format!(
                        "node{} /readyz {state} at {:.1} s",
                        i + 1,
                        started.elapsed().as_secs_f64()
                    ));
                }
                last[i] = state;
            }
        }
        tokio::time::sleep(HEALTH_INTERVAL).await;
    }
}

async fn smtp_client(s: Arc<Shared>, index: usize) {
    let mut node = index;
    let mut client: Option<SmtpClient> = None;
    while !s.stopped() {
        let op = Instant::now();
        if client.is_none() {
            node = s.pick(node);
        }
        let target = &s.targets[node % s.targets.len()];
        let mut c = match client.take() {
            Some(c) => c,
            None => match SmtpClient::connect(&target.smtp).await {
                Ok(c) => c,
                Err(e) => {
                    s.fail_over(op, Kind::Smtp, e.to_string(), &mut node).await;
                    continue;
                }
            },
        };
        let id = s.next_id(Kind::Smtp);
        let body = message::build(&id, &s.user);
        match c.send(&s.user, &body).await {
            Ok(Outcome::Accepted) => {
                lock(&s.acked).push(id);
                s.record(Kind::Smtp, true, op);
                client = Some(c);
                tokio::time::sleep(PACE).await;
            }
            Ok(Outcome::Refused(text)) => {
                s.error(op, Kind::Smtp, format!("{} refused: {text}", target.smtp));
                // 421 closes the session (RFC 5321 §3.8): reconnect, elsewhere.
                if text.starts_with("421") {
                    node += 1;
                } else {
                    client = Some(c);
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => {
                s.fail_over(op, Kind::Smtp, e.to_string(), &mut node).await;
            }
        }
    }
    if let Some(c) = client {
        c.quit().await;
    }
}

async fn imap_client(s: Arc<Shared>, index: usize) {
    let mut node = index;
    let mut client: Option<ImapClient> = None;
    let mut rounds = 0u32;
    while !s.stopped() {
        let op = Instant::now();
        if client.is_none() {
            node = s.pick(node);
        }
        let target = &s.targets[node % s.targets.len()];
        let mut c = match client.take() {
            Some(c) => c,
            None => match ImapClient::open_inbox(&target.imap, &s.user, &s.pass).await {
                Ok(c) => c,
                Err(e) => {
                    s.fail_over(op, Kind::Imap, e.to_string(), &mut node).await;
                    continue;
                }
            },
        };
        let id = s.next_id(Kind::Imap);
        let body = message::build(&id, &s.user);
        let appended = match c.append("INBOX", &body).await {
            Ok(r) if r.ok => {
                lock(&s.acked).push(id);
                s.record(Kind::Imap, true, op);
                true
            }
            Ok(r) => {
                s.error(
                    op,
                    Kind::Imap,
                    format!("APPEND at {}: {}", target.imap, r.status),
                );
                false
            }
            Err(e) => {
                s.fail_over(op, Kind::Imap, e.to_string(), &mut node).await;
                continue;
            }
        };
        let read = if c.exists > 0 {
            "FETCH * (UID FLAGS)"
        } else {
            "NOOP"
        };
        let op = Instant::now();
        match c.command(read).await {
            Ok(r) if r.ok => s.record(Kind::Imap, true, op),
            Ok(r) => s.error(
                op,
                Kind::Imap,
                format!("{read} at {}: {}", target.imap, r.status),
            ),
            Err(e) => {
                s.fail_over(op, Kind::Imap, e.to_string(), &mut node).await;
                continue;
            }
        }
        rounds += 1;
        if rounds.is_multiple_of(IMAP_ROUNDS_PER_LOGIN) {
            c.logout().await;
            node += 1;
        } else {
            client = Some(c);
        }
        tokio::time::sleep(if appended { PACE } else { RETRY_PAUSE }).await;
    }
    if let Some(c) = client {
        c.logout().await;
    }
}

/// A JMAP client: signs in once, then keeps its token; a 401 for that token is a re-login.
async fn jmap_client(s: Arc<Shared>, index: usize) {
    let mut node = index;
    let mut token: Option<String> = None;
    // The node that issued the token (for the report when another node refuses it).
    let mut issued_by = String::new();
    let mut account: Option<String> = None;
    let mut http: Option<HttpConn> = None;
    while !s.stopped() {
        let op = Instant::now();
        if http.is_none() {
            node = s.pick(node);
        }
        let target = &s.targets[node % s.targets.len()];
        let Some(bearer) = token.clone() else {
            match jmap::password_grant(&target.http, &s.user, &s.pass).await {
                Ok(t) => {
                    token = Some(t.access);
                    issued_by = target.http.clone();
                }
                Err(e) => {
                    s.fail_over(op, Kind::Jmap, e.to_string(), &mut node).await;
                }
            }
            continue;
        };
        let mut conn = match http.take() {
            Some(c) => c,
            None => match HttpConn::connect(&target.http).await {
                Ok(c) => c,
                Err(e) => {
                    s.fail_over(op, Kind::Jmap, e.to_string(), &mut node).await;
                    continue;
                }
            },
        };
        let answer = match account.clone() {
            None => jmap::account_id(&mut conn, &bearer).await,
            Some(a) => {
                conn.request(
                    "POST",
                    "/jmap/api",
                    Some(&format!("Bearer {bearer}")),
                    "application/json",
                    &jmap::newest_emails_body(&a),
                )
                .await
            }
        };
        match answer {
            Err(e) => {
                s.fail_over(op, Kind::Jmap, e.to_string(), &mut node).await;
            }
            Ok(a) if a.status == 401 => {
                s.relogin(
                    op,
                    format!(
                        "{} refused (401) the token issued by {issued_by}",
                        target.http
                    ),
                );
                token = None;
                http = Some(conn);
            }
            Ok(a) if account.is_none() => match jmap::session_account(&a) {
                Some(id) => {
                    account = Some(id);
                    s.record(Kind::Jmap, true, op);
                    http = Some(conn);
                }
                None => {
                    s.error(
                        op,
                        Kind::Jmap,
                        format!("session at {}: HTTP {}", target.http, a.status),
                    );
                    http = Some(conn);
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            },
            Ok(a) => {
                if jmap::api_succeeded(&a) {
                    s.record(Kind::Jmap, true, op);
                    tokio::time::sleep(PACE).await;
                } else {
                    s.error(
                        op,
                        Kind::Jmap,
                        format!("API at {}: {}", target.http, jmap::failure_text(&a)),
                    );
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                http = Some(conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(at: Instant, kind: Kind, ok: bool) -> Event {
        Event {
            at,
            kind,
            ok,
            took: Duration::from_millis(5),
        }
    }

    #[test]
    fn recovery_is_first_success_after_the_last_failure_of_the_slowest_kind() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let o = Outcomes {
            events: vec![
                ev(s(1), Kind::Smtp, true),
                ev(s(10), Kind::Smtp, false),
                ev(s(12), Kind::Smtp, true),
                ev(s(11), Kind::Imap, false),
                ev(s(14), Kind::Imap, false),
                ev(s(17), Kind::Imap, true),
                ev(s(18), Kind::Jmap, true),
            ],
            ..Outcomes::default()
        };
        assert_eq!(o.recovery_seconds(s(10), s(10)), Some(7.0));
        // Measured from when the fault was lifted.
        assert_eq!(o.recovery_seconds(s(10), s(15)), Some(2.0));
        assert_eq!(o.client_errors(), 3);
        assert_eq!(o.errors_by_kind(), "smtp 1, imap 2, jmap 0");
    }

    #[test]
    fn clients_skip_nodes_that_are_not_ready_unless_none_is() {
        let ready = [true, false, true];
        assert_eq!(first_ready(1, 3, |i| ready[i]) % 3, 2);
        assert_eq!(first_ready(3, 3, |i| ready[i]) % 3, 0);
        assert_eq!(first_ready(4, 3, |_| false), 4);
    }

    #[test]
    fn recovery_is_zero_without_failures_and_none_when_never_back() {
        let t0 = Instant::now();
        let ok = Outcomes {
            events: vec![ev(t0, Kind::Smtp, true)],
            ..Outcomes::default()
        };
        assert_eq!(ok.recovery_seconds(t0, t0), Some(0.0));
        let never = Outcomes {
            events: vec![
                ev(t0, Kind::Jmap, true),
                ev(t0 + Duration::from_secs(1), Kind::Jmap, false),
            ],
            ..Outcomes::default()
        };
        assert_eq!(never.recovery_seconds(t0, t0), None);
    }
}
