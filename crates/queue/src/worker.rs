//! The delivery worker: lease due entries, deliver each pending recipient, write back the
//! outcome, bounce failures once.

use crate::QueueConfig;
use crate::client::{self, ClientSettings, Envelope, RcptOutcome, SessionError, Target, TlsUse};
use crate::dsn::{EXPIRED_TEXT, build_dsn};
use crate::mx::{self, RouteError};
use crate::sts::Sts;
use bulwark_core::mta_sts::Mode as StsMode;
use bulwark_core::{Outcome, Pipeline, Refusal};
use bulwark_store::{QueueRcpt, Queued, RcptStatus, Store, now_unix};
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// The longest the idle loop sleeps before looking at the queue again (other nodes may
/// have enqueued, or leases of a dead node may have run out).
pub const MAX_IDLE: Duration = Duration::from_secs(60);
/// The shortest sleep between passes when nothing is due yet.
const MIN_IDLE: Duration = Duration::from_secs(1);
/// Sleep after the store failed, before the next pass.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(5);
/// Upper bound of the random delay added to a retry, in seconds.
pub const MAX_JITTER_SECS: i64 = 300;

/// Seconds until the next attempt after `attempts` failed attempts (1 = the first one):
/// `min(base · 2^(attempts-1), max)`, at least one second.
pub fn retry_delay(attempts: u32, base_secs: i64, max_secs: i64) -> i64 {
    let exponent = attempts.saturating_sub(1).min(62);
    let factor = 1i64.checked_shl(exponent).unwrap_or(i64::MAX);
    base_secs.max(1).saturating_mul(factor).min(max_secs.max(1))
}

/// A random extra delay in `[0, min(delay/10, MAX_JITTER_SECS)]`, so entries that failed
/// together do not retry in lockstep.
pub fn retry_jitter(delay_secs: i64) -> i64 {
    let span = (delay_secs / 10).clamp(0, MAX_JITTER_SECS);
    if span == 0 {
        return 0;
    }
    let random = std::collections::hash_map::RandomState::new().hash_one(now_unix());
    (random % (span as u64 + 1)) as i64
}

/// The durable outbound delivery worker. Several nodes may run one each on a shared store:
/// entries are leased before they are worked on.
pub struct QueueWorker {
    /// Replaced as a whole by [`QueueWorker::set_config`]; a pass keeps the one it started with.
    inner: std::sync::RwLock<Arc<Inner>>,
}

struct Inner {
    cfg: QueueConfig,
    store: Arc<dyn Store>,
    wakeup: Arc<Notify>,
    /// Bounces are delivered through it (hooks, one commit, local or queued).
    pipeline: Arc<Pipeline>,
    client: ClientSettings,
    /// The MX resolver, or why it could not be built (MX delivery then fails temporarily).
    resolver: Result<bulwark_dns::Resolver, String>,
    /// Recipient domains' MTA-STS policies (`None` when `mta_sts` is off or there is no
    /// resolver).
    sts: Option<Sts>,
}

impl QueueWorker {
    /// A worker with a delivery pipeline of its own (no hooks) for its bounces.
    pub fn new(cfg: QueueConfig, store: Arc<dyn Store>, wakeup: Arc<Notify>) -> Arc<Self> {
        let pipeline = Pipeline::new(store, wakeup, cfg.dsn_lifetime_secs);
        QueueWorker::with_pipeline(cfg, pipeline)
    }

    /// A worker that delivers its bounces through `pipeline` (the node's shared one, with
    /// its hooks); it works on the pipeline's store and waits on its queue wake-up.
    pub fn with_pipeline(cfg: QueueConfig, pipeline: Arc<Pipeline>) -> Arc<Self> {
        Arc::new(QueueWorker {
            inner: std::sync::RwLock::new(Arc::new(Inner::new(cfg, pipeline))),
        })
    }

    /// The settings in use now.
    fn inner(&self) -> Arc<Inner> {
        match self.inner.read() {
            Ok(inner) => inner.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The configuration in use now.
    pub fn config(&self) -> QueueConfig {
        self.inner().cfg.clone()
    }

    /// Applies a new configuration (relay, retry delays, …) from the next pass on; attempts
    /// in flight finish with the old one. The lease owner (`node_id`) should not change.
    pub fn set_config(&self, cfg: QueueConfig) {
        let old = self.inner();
        let next = Arc::new(Inner::new(cfg, old.pipeline.clone()));
        match self.inner.write() {
            Ok(mut inner) => *inner = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        old.wakeup.notify_one();
    }

    /// Runs forever: a pass over due entries, then sleep until the next is due (at most
    /// [`MAX_IDLE`]) or the wake-up is notified (a new entry was enqueued).
    pub async fn run(self: Arc<Self>) {
        let (_never, stop) = watch::channel(false);
        self.run_until(stop).await
    }

    /// Like [`run`](Self::run) until `stop` turns true: then no new entries are leased, the
    /// pass in flight finishes (its outcomes written back) and this returns.
    pub async fn run_until(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        info!(node = %self.inner().cfg.node_id, "outbound queue worker started");
        loop {
            if *stop.borrow() {
                break;
            }
            let inner = self.inner();
            let leased = self.run_once().await;
            if leased >= inner.cfg.batch_size.max(1) {
                continue;
            }
            let idle = inner.time_until_next_due().await;
            tokio::select! {
                _ = inner.wakeup.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                stopped = async { stop.wait_for(|stopped| *stopped).await.is_ok() } => {
                    if !stopped {
                        // The sender is gone without stopping: keep running.
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
        info!(node = %self.inner().cfg.node_id, "outbound queue worker stopped");
    }

    /// One pass: leases up to `batch_size` due entries, attempts them (`max_parallel` at a
    /// time) and writes every outcome back. Returns how many entries were attempted.
    pub async fn run_once(&self) -> usize {
        self.inner().run_once().await
    }
}

impl Inner {
    fn new(cfg: QueueConfig, pipeline: Arc<Pipeline>) -> Inner {
        let tls_verified = match bulwark_net::client_config_verified(cfg.tls_ca_file.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                // Checked by `config check`; here the system roots alone still verify.
                warn!("outbound queue: [outbound] tls_ca_file not used: {e}");
                bulwark_net::client_config_system_roots()
            }
        };
        let client = ClientSettings {
            hostname: cfg.hostname.clone(),
            connect_timeout: cfg.connect_timeout,
            command_timeout: cfg.command_timeout,
            tls: cfg.starttls.then(bulwark_net::client_config_insecure),
            tls_verified: tls_verified.clone(),
        };
        let resolver = match &cfg.resolver {
            Some(r) => Ok(r.clone()),
            None => bulwark_dns::Resolver::new(&bulwark_dns::DnsConfig::default()),
        };
        if let Err(e) = &resolver {
            warn!("outbound queue: no DNS resolver, delivery will be retried: {e}");
        }
        let sts = match (&resolver, cfg.mta_sts && cfg.relay.is_none()) {
            (Ok(resolver), true) => Some(Sts {
                store: pipeline.store().clone(),
                resolver: resolver.clone(),
                tls: tls_verified,
                port: std::env::var("BULWARK_MTA_STS_PORT")
                    .ok()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(443),
            }),
            _ => None,
        };
        Inner {
            cfg,
            store: pipeline.store().clone(),
            wakeup: pipeline.queue_wakeup().clone(),
            pipeline,
            client,
            resolver,
            sts,
        }
    }

    async fn run_once(self: Arc<Self>) -> usize {
        let cfg = &self.cfg;
        let leased = match self
            .store
            .queue_lease_due(
                now_unix(),
                &cfg.node_id,
                cfg.lease_secs,
                cfg.batch_size.max(1),
            )
            .await
        {
            Ok(entries) => entries,
            Err(e) => {
                warn!("outbound queue: cannot lease due entries: {e}");
                return 0;
            }
        };
        let count = leased.len();
        let permits = Arc::new(Semaphore::new(cfg.max_parallel.max(1)));
        let mut tasks = JoinSet::new();
        for entry in leased {
            // Only entries leased to us: another node's entry is never attempted here.
            if entry.lease_owner.as_deref() != Some(cfg.node_id.as_str()) {
                warn!(id = %entry.id, owner = ?entry.lease_owner, node = %cfg.node_id, "outbound queue: skipping an entry leased to another node");
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let inner = self.clone();
            tasks.spawn(async move {
                let _permit = permit;
                inner.process(entry).await;
            });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(e) = joined {
                warn!("outbound queue: delivery task failed: {e}");
            }
        }
        count
    }

    async fn time_until_next_due(&self) -> Duration {
        let entries = match self.store.queue_list().await {
            Ok(entries) => entries,
            Err(e) => {
                warn!("outbound queue: cannot list entries: {e}");
                return STORE_ERROR_PAUSE;
            }
        };
        let now = now_unix();
        let next = entries
            .iter()
            .map(|e| e.next_attempt.max(e.lease_until))
            .min();
        match next {
            Some(at) => {
                Duration::from_secs(at.saturating_sub(now).max(0) as u64).clamp(MIN_IDLE, MAX_IDLE)
            }
            None => MAX_IDLE,
        }
    }

    /// One delivery attempt for a leased entry, then the write-back (always).
    async fn process(&self, mut entry: Queued) {
        let raw = match self.store.blob_get(&entry.blob).await {
            Ok(Some(raw)) => Some(raw),
            Ok(None) => {
                fail_pending(
                    &mut entry,
                    "554 5.3.0 message content is missing from the store",
                );
                None
            }
            Err(e) => {
                defer_pending(
                    &mut entry,
                    &format!("cannot read the message from the store: {e}"),
                );
                None
            }
        };
        if let Some(raw) = &raw {
            // Write back before the lease runs out, so no other node attempts the same
            // entry at the same time (which could deliver twice).
            let budget = Duration::from_secs((self.cfg.lease_secs.max(1) as u64 * 9).div_ceil(10));
            if tokio::time::timeout(budget, self.attempt(&mut entry, raw))
                .await
                .is_err()
            {
                defer_pending(
                    &mut entry,
                    "delivery attempt took longer than the queue lease; retrying later",
                );
            }
        }
        entry.attempts = entry.attempts.saturating_add(1);
        let now = now_unix();
        expire_pending(&mut entry, now);
        let mut retry = entry
            .recipients
            .iter()
            .any(|r| r.status == RcptStatus::Pending);
        // One DSN per entry (the model has one `dsn_sent` flag), so it waits until no
        // recipient is pending and then reports every failure together.
        if !entry.dsn_sent
            && !retry
            && entry
                .recipients
                .iter()
                .any(|r| r.status == RcptStatus::Failed)
        {
            match self
                .send_dsn(&entry, raw.as_deref().unwrap_or(&[]), now)
                .await
            {
                Ok(()) => entry.dsn_sent = true,
                Err(e) => {
                    warn!(id = %entry.id, "outbound queue: cannot send the bounce, will retry: {e}");
                    retry = true;
                }
            }
        }
        if retry {
            let delay = retry_delay(
                entry.attempts,
                self.cfg.retry_base_secs,
                self.cfg.retry_max_secs,
            );
            entry.next_attempt = now
                .saturating_add(delay)
                .saturating_add(retry_jitter(delay));
        }
        log_outcome(&entry);
        match self.store.queue_update(&entry).await {
            Ok(()) => {}
            Err(e @ bulwark_store::StoreError::Invalid(_)) => {
                // Our lease ran out and another node took the entry: its outcome counts.
                warn!(id = %entry.id, node = %self.cfg.node_id, "outbound queue: lease lost, attempt not written back: {e}");
            }
            Err(e) => {
                // The lease runs out and another pass retries the entry.
                warn!(id = %entry.id, "outbound queue: cannot write back the attempt: {e}");
            }
        }
    }

    /// Delivers every pending recipient once: all through the relay, or grouped by domain.
    async fn attempt(&self, entry: &mut Queued, raw: &[u8]) {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, rcpt) in entry.recipients.iter_mut().enumerate() {
            if rcpt.status != RcptStatus::Pending {
                continue;
            }
            let key = match (&self.cfg.relay, rcpt.address.rsplit_once('@')) {
                (Some(_), _) => String::new(),
                (None, Some((_, domain))) if !domain.is_empty() => domain.to_ascii_lowercase(),
                (None, _) => {
                    set_outcome(
                        rcpt,
                        RcptOutcome::Permanent("501 5.1.3 recipient address has no domain".into()),
                    );
                    continue;
                }
            };
            groups.entry(key).or_default().push(i);
        }
        for (domain, indices) in groups {
            let routed = match &self.cfg.relay {
                Some(relay) => match &self.resolver {
                    Ok(resolver) => mx::route_relay(resolver, relay).await,
                    Err(e) => Err(RouteError::Temporary(format!("no DNS resolver: {e}"))),
                },
                None => match &self.resolver {
                    Ok(resolver) => mx::route_domain(resolver, &domain, self.cfg.smtp_port).await,
                    Err(e) => Err(RouteError::Temporary(format!("no DNS resolver: {e}"))),
                },
            };
            let outcomes = match routed {
                Ok(targets) => {
                    let recipients: Vec<String> = indices
                        .iter()
                        .map(|&i| entry.recipients[i].address.clone())
                        .collect();
                    let envelope = Envelope {
                        sender: &entry.sender,
                        recipients: &recipients,
                        raw,
                    };
                    match self.apply_sts(&domain, targets).await {
                        Ok((targets, tls_use)) => {
                            self.deliver_to_targets(&targets, &envelope, tls_use).await
                        }
                        Err(text) => vec![RcptOutcome::Temporary(text); indices.len()],
                    }
                }
                Err(RouteError::Permanent(text)) => {
                    vec![RcptOutcome::Permanent(text); indices.len()]
                }
                Err(RouteError::Temporary(text)) => {
                    vec![RcptOutcome::Temporary(text); indices.len()]
                }
            };
            for (&i, outcome) in indices.iter().zip(outcomes) {
                set_outcome(&mut entry.recipients[i], outcome);
            }
        }
    }

    /// The MX hosts of `domain` its MTA-STS policy lets us use, and how (RFC 8461 §5): in
    /// `enforce` mode only the listed hosts, with verified TLS; `Err` (deliver later) when no
    /// host qualifies. In `testing` mode (or with no policy) every host, opportunistically;
    /// what enforce would have refused is logged.
    async fn apply_sts(
        &self,
        domain: &str,
        targets: Vec<Target>,
    ) -> Result<(Vec<Target>, TlsUse), String> {
        let Some(sts) = &self.sts else {
            return Ok((targets, TlsUse::Opportunistic));
        };
        let Some(policy) = sts.policy(domain).await else {
            return Ok((targets, TlsUse::Opportunistic));
        };
        match policy.mode {
            StsMode::None => Ok((targets, TlsUse::Opportunistic)),
            StsMode::Testing => {
                for t in targets.iter().filter(|t| !policy.allows(&t.host)) {
                    warn!(%domain, host = %t.host, "MTA-STS (testing): the MX host is not in the domain's policy");
                }
                Ok((targets, TlsUse::Opportunistic))
            }
            StsMode::Enforce => {
                let total = targets.len();
                let allowed: Vec<Target> = targets
                    .into_iter()
                    .filter(|t| policy.allows(&t.host))
                    .collect();
                if allowed.is_empty() {
                    warn!(%domain, "MTA-STS (enforce): none of the {total} MX addresses is in the domain's policy");
                    return Err(format!(
                        "4.7.5 none of the MX hosts of {domain} is allowed by its MTA-STS policy (enforce; RFC 8461)"
                    ));
                }
                Ok((allowed, TlsUse::Required))
            }
        }
    }

    /// Tries the hosts in order until one gives per-recipient answers (RFC 5321 §5.1).
    async fn deliver_to_targets(
        &self,
        targets: &[Target],
        envelope: &Envelope<'_>,
        tls_use: TlsUse,
    ) -> Vec<RcptOutcome> {
        let mut last_error = String::from("no mail host to try");
        for target in targets {
            let mut result =
                client::send_transaction(&self.client, target, envelope, tls_use).await;
            if tls_use == TlsUse::Opportunistic
                && let Err(SessionError::TlsHandshake { .. }) = &result
            {
                // RFC 7435 §1.2 (opportunistic security): TLS is tried when offered, and a host
                // whose handshake fails gets the message in cleartext rather than not at all.
                debug!(%target, "STARTTLS failed, retrying without TLS");
                result =
                    client::send_transaction(&self.client, target, envelope, TlsUse::Off).await;
            }
            match result {
                Ok(outcomes) => return outcomes,
                Err(e) => {
                    debug!(%target, "delivery attempt failed: {e}");
                    last_error = e.to_string();
                }
            }
        }
        vec![RcptOutcome::Temporary(last_error); envelope.recipients.len()]
    }

    /// Sends the bounce to the original sender through the pipeline, from the null
    /// reverse-path: into the local INBOX if the sender is ours, else queued. Bounces are
    /// never bounced (RFC 5321 §6.1). `Err` (the store failed, or a hook refused it for now)
    /// means "retry the bounce later".
    async fn send_dsn(&self, entry: &Queued, raw: &[u8], now: i64) -> Result<(), String> {
        if entry.sender.is_empty() {
            info!(id = %entry.id, "outbound queue: a bounce failed; not bouncing a bounce");
            return Ok(());
        }
        let dsn = build_dsn(&self.cfg.hostname, entry, raw, now);
        let outcome = bulwark_core::dsn::send_dsn(
            &self.pipeline,
            &entry.sender,
            dsn,
            self.cfg.dsn_lifetime_secs,
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
        match outcome {
            Outcome::Delivered(_) => {
                info!(id = %entry.id, sender = %entry.sender, "outbound queue: bounce delivered locally");
            }
            Outcome::Queued => {
                info!(id = %entry.id, sender = %entry.sender, "outbound queue: bounce queued");
            }
            Outcome::Refused(Refusal::Permanent(why)) => {
                warn!(id = %entry.id, sender = %entry.sender, reason = %why, "outbound queue: bounce dropped, refused for the sender");
            }
            Outcome::Refused(Refusal::Temporary(why)) => return Err(why),
        }
        Ok(())
    }
}

fn set_outcome(rcpt: &mut QueueRcpt, outcome: RcptOutcome) {
    match outcome {
        RcptOutcome::Delivered => {
            rcpt.status = RcptStatus::Delivered;
            rcpt.last_error = None;
        }
        RcptOutcome::Permanent(text) => {
            rcpt.status = RcptStatus::Failed;
            rcpt.last_error = Some(text);
        }
        RcptOutcome::Temporary(text) => rcpt.last_error = Some(text),
    }
}

fn fail_pending(entry: &mut Queued, text: &str) {
    for rcpt in entry
        .recipients
        .iter_mut()
        .filter(|r| r.status == RcptStatus::Pending)
    {
        set_outcome(rcpt, RcptOutcome::Permanent(text.to_string()));
    }
}

fn defer_pending(entry: &mut Queued, text: &str) {
    for rcpt in entry
        .recipients
        .iter_mut()
        .filter(|r| r.status == RcptStatus::Pending)
    {
        set_outcome(rcpt, RcptOutcome::Temporary(text.to_string()));
    }
}

/// Pending recipients of an entry past its lifetime fail with the last error kept.
pub(crate) fn expire_pending(entry: &mut Queued, now: i64) {
    if now <= entry.expires_at {
        return;
    }
    for rcpt in entry
        .recipients
        .iter_mut()
        .filter(|r| r.status == RcptStatus::Pending)
    {
        rcpt.status = RcptStatus::Failed;
        rcpt.last_error = Some(match rcpt.last_error.take() {
            Some(last) => format!("{EXPIRED_TEXT}; last error: {last}"),
            None => EXPIRED_TEXT.to_string(),
        });
    }
}

fn log_outcome(entry: &Queued) {
    for rcpt in &entry.recipients {
        match rcpt.status {
            RcptStatus::Delivered => {
                info!(id = %entry.id, rcpt = %rcpt.address, "outbound: delivered")
            }
            RcptStatus::Failed => {
                warn!(id = %entry.id, rcpt = %rcpt.address, error = rcpt.last_error.as_deref().unwrap_or(""), "outbound: failed")
            }
            RcptStatus::Pending => {
                info!(id = %entry.id, rcpt = %rcpt.address, error = rcpt.last_error.as_deref().unwrap_or(""), next_attempt = entry.next_attempt, "outbound: deferred")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_from_base_up_to_max() {
        assert_eq!(retry_delay(1, 60, 14_400), 60);
        assert_eq!(retry_delay(2, 60, 14_400), 120);
        assert_eq!(retry_delay(3, 60, 14_400), 240);
        assert_eq!(retry_delay(8, 60, 14_400), 7_680);
        assert_eq!(retry_delay(9, 60, 14_400), 14_400);
        assert_eq!(retry_delay(500, 60, 14_400), 14_400);
        assert_eq!(retry_delay(0, 60, 14_400), 60);
        assert_eq!(retry_delay(3, 0, 0), 1, "never zero, so a pass cannot spin");
    }

    #[test]
    fn jitter_is_small_and_non_negative() {
        for delay in [0, 5, 60, 600, 14_400, i64::MAX] {
            let j = retry_jitter(delay);
            assert!((0..=MAX_JITTER_SECS).contains(&j));
            assert!(j <= delay / 10);
        }
    }

    #[test]
    fn expiry_fails_only_pending_recipients_and_keeps_the_last_error() {
        let mut entry = Queued {
            id: bulwark_store::QueueId(1),
            sender: "a@x.test".into(),
            recipients: vec![
                QueueRcpt {
                    address: "b@y.test".into(),
                    status: RcptStatus::Pending,
                    last_error: Some("450 busy".into()),
                },
                QueueRcpt {
                    address: "c@y.test".into(),
                    status: RcptStatus::Delivered,
                    last_error: None,
                },
            ],
            blob: bulwark_store::BlobHash("h".into()),
            size: 1,
            created_at: 0,
            next_attempt: 0,
            attempts: 3,
            expires_at: 100,
            dsn_sent: false,
            lease_owner: None,
            lease_until: 0,
        };
        expire_pending(&mut entry, 100);
        assert_eq!(entry.recipients[0].status, RcptStatus::Pending);
        expire_pending(&mut entry, 101);
        assert_eq!(entry.recipients[0].status, RcptStatus::Failed);
        assert_eq!(
            entry.recipients[0].last_error.as_deref(),
            Some("delivery time expired; last error: 450 busy")
        );
        assert_eq!(entry.recipients[1].status, RcptStatus::Delivered);
    }
}
