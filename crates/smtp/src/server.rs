//! The tokio shell around [`Session`]: accepts connections, enforces connection limits, idle
//! timeouts and the command rate, performs TLS, and answers the session's events with the
//! store and the authenticator. It makes no protocol decisions.

use crate::limits::{self, CommandBudget, READ_CHUNK, TLS_HANDSHAKE_TIMEOUT};
use crate::session::{
    AuthOutcome, Delivery, DeliveryFailure, Event, ListenerKind, RecipientVerdict, Session,
    SessionConfig,
};
use crate::{authres, postmaster, reply};
use bulwark_auth::{Authenticator, LoginError};
use bulwark_core::Recipient;
use bulwark_core::spool::{
    OfflineRecipient, PENDING_ACCOUNT, Spool, SpooledEnvelope, SpooledMessage,
};
use bulwark_net::{BoxedStream, ConnectionLimiter, MemoryBudget, TlsAcceptor};
use bulwark_store::{Store, StoreError, now_unix};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tracing::Instrument;

/// Settings of the SMTP listeners (one server instance serves all three kinds).
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Our name in the greeting, EHLO reply and Received lines.
    pub hostname: String,
    /// Largest message accepted (advertised with SIZE, RFC 1870).
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Queued remote mail expires (bounces) this long after acceptance.
    pub queue_lifetime_secs: i64,
    /// Close a session that sends nothing for this long (RFC 5321 §4.5.3.2.7: ≥ 5 min).
    pub idle_timeout: Duration,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// Networks exempt from `max_connections_per_ip` (`[limits] trusted_networks`).
    pub trusted_networks: Vec<bulwark_net::IpNet>,
    /// Allow AUTH without TLS from 127.0.0.0/8 and ::1 (for local tools).
    pub allow_plaintext_auth_on_loopback: bool,
    /// Per-connection command rate: burst, then this many per second (excess is delayed).
    pub command_burst: u32,
    pub commands_per_second: u32,
    /// Memory all sessions together may hold for message bodies being received (at least
    /// `max_message_size` plus a little, so one message of the largest size always fits).
    pub body_memory_budget: usize,
    /// Mark inbound mail that claims one of our domains without authentication
    /// (`x-bulwark=local-domain-unauthenticated`, see [`crate::authres`]). Off when the
    /// pipeline's SPF/DKIM/DMARC checks write the `Authentication-Results` field instead.
    pub mark_local_domain_unauthenticated: bool,
    /// Storage quotas: a recipient already at its limit is deferred at RCPT.
    pub quota: bulwark_core::quota::QuotaPolicy,
    /// Greylisting of unauthenticated clients at RCPT (`[spam] greylisting`).
    pub greylist: bulwark_core::greylist::GreylistPolicy,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            hostname: "localhost".to_string(),
            max_message_size: limits::DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: limits::DEFAULT_MAX_RECIPIENTS,
            queue_lifetime_secs: limits::DEFAULT_QUEUE_LIFETIME_SECS,
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
            max_connections_per_ip: limits::DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            trusted_networks: Vec::new(),
            allow_plaintext_auth_on_loopback: false,
            command_burst: limits::COMMAND_BURST,
            commands_per_second: limits::COMMANDS_PER_SECOND,
            body_memory_budget: limits::DEFAULT_BODY_MEMORY_BUDGET,
            mark_local_domain_unauthenticated: true,
            quota: bulwark_core::quota::QuotaPolicy::default(),
            greylist: bulwark_core::greylist::GreylistPolicy::default(),
        }
    }
}

/// The SMTP server: shared state of every listener and session.
pub struct SmtpServer {
    cfg: SmtpConfig,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    tls: Option<TlsAcceptor>,
    /// The node's delivery pipeline (its own one unless [`SmtpServer::set_pipeline`]).
    pipeline: std::sync::RwLock<Arc<bulwark_core::Pipeline>>,
    limiter: ConnectionLimiter,
    sessions: AtomicU64,
    /// Where mail goes while the store is unavailable (see [`SmtpServer::set_spool`]).
    spool: OnceLock<Arc<Spool>>,
    /// Memory for message bodies being received, shared by every session.
    body_budget: Arc<MemoryBudget>,
    /// Which sender domains are ours (for the inbound mark), cached.
    local_domains: bulwark_core::local_domains::LocalDomains,
    /// The node's timers of held mail: with them, submission offers RFC 4865
    /// FUTURERELEASE (see [`SmtpServer::set_held`]).
    held: OnceLock<Arc<bulwark_core::held::Held>>,
}

/// Resolves once `shutdown` turns true; never if its sender is gone without draining.
async fn until_draining(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How long we try to tell a refused client why before dropping it.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

impl SmtpServer {
    pub fn new(
        cfg: SmtpConfig,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
        queue_wakeup: Arc<Notify>,
    ) -> Arc<Self> {
        let limiter = ConnectionLimiter::new(cfg.max_connections_per_ip, cfg.max_connections)
            .with_trusted(&cfg.trusted_networks);
        let pipeline =
            bulwark_core::Pipeline::new(store.clone(), queue_wakeup, cfg.queue_lifetime_secs);
        // A quarter is kept for small messages, so a few huge bodies cannot keep everyone
        // else out; one message of the largest size (and the slack of its last read) still
        // always fits.
        let reserve = cfg.body_memory_budget / 4;
        let smallest_budget = cfg
            .max_message_size
            .saturating_add(limits::FIRST_BODY_RESERVATION + READ_CHUNK)
            .saturating_add(reserve);
        let body_budget = MemoryBudget::with_reserve_for_small(
            cfg.body_memory_budget.max(smallest_budget),
            limits::SMALL_BODY,
            reserve,
        );
        Arc::new(SmtpServer {
            cfg,
            local_domains: bulwark_core::local_domains::LocalDomains::new(store.clone()),
            store,
            auth,
            tls,
            pipeline: std::sync::RwLock::new(pipeline),
            limiter,
            sessions: AtomicU64::new(0),
            spool: OnceLock::new(),
            held: OnceLock::new(),
            body_budget,
        })
    }

    /// Deliver through `pipeline` (the node's shared one, with its hooks) instead of a
    /// pipeline of this server's own.
    pub fn set_pipeline(&self, pipeline: Arc<bulwark_core::Pipeline>) {
        *self.pipeline.write().unwrap_or_else(|e| e.into_inner()) = pipeline;
    }

    fn pipeline(&self) -> Arc<bulwark_core::Pipeline> {
        self.pipeline
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Bytes of message bodies being received, over all sessions (for tests and metrics).
    pub fn body_memory_in_use(&self) -> usize {
        self.body_budget.in_use()
    }

    /// Accept mail into this local durable spool while the store is unavailable (without
    /// one, such mail is refused with `451 4.3.0`). Set once, before serving.
    /// Offers RFC 4865 FUTURERELEASE on submission: held mail is recorded in the account's
    /// `smtp-holds` collection and released by `held` (the node's timers).
    pub fn set_held(&self, held: Arc<bulwark_core::held::Held>) {
        let _ = self.held.set(held);
    }

    pub fn set_spool(&self, spool: Arc<Spool>) {
        if self.spool.set(spool).is_err() {
            tracing::warn!("smtp: the spool was already set; keeping the first one");
        }
    }

    /// Accept loop for one listener; runs until the task is dropped. Each connection is its
    /// own task; a panic in one is logged and does not affect others.
    pub async fn run(self: Arc<Self>, listener: TcpListener, kind: ListenerKind) {
        let (_never, shutdown) = watch::channel(false);
        self.run_until(listener, kind, shutdown).await
    }

    /// Connections open now, over all listeners (for a drain to wait on).
    pub fn open_connections(&self) -> usize {
        self.limiter.open_connections()
    }

    /// Like [`run`](Self::run) until `shutdown` turns true: then the listener is closed and
    /// each session finishes its current transaction, then gets `421 4.3.2` (RFC 5321
    /// §3.8); watch [`open_connections`](Self::open_connections) to see them end.
    pub async fn run_until(
        self: Arc<Self>,
        listener: TcpListener,
        kind: ListenerKind,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = until_draining(&mut shutdown) => return,
            };
            let (tcp, peer) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, ?kind, "smtp accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            };
            let Some(guard) = self.limiter.try_acquire(peer.ip()) else {
                // One 421 and log line per second per address; others just close.
                if self.limiter.refusal_notice(peer.ip()) {
                    tracing::warn!(%peer, ?kind, "smtp connection refused: too many connections");
                    tokio::spawn(refuse(tcp, kind));
                }
                continue;
            };
            let id = self.next_session_id();
            let server = self.clone();
            let task_id = id.clone();
            let conn_shutdown = shutdown.clone();
            let span = tracing::info_span!("smtp", session = %id, %peer, ?kind);
            let handle = tokio::spawn(
                async move {
                    let _guard = guard;
                    server.serve(tcp, peer, kind, task_id, conn_shutdown).await;
                }
                .instrument(span),
            );
            tokio::spawn(async move {
                if let Err(e) = handle.await
                    && e.is_panic()
                {
                    tracing::error!(session = %id, %peer, "smtp session panicked: {e}");
                }
            });
        }
    }

    fn next_session_id(&self) -> String {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed);
        format!("{:08X}{:06X}", now_unix() as u32, n & 0xFF_FFFF)
    }

    async fn serve(
        &self,
        tcp: TcpStream,
        peer: SocketAddr,
        kind: ListenerKind,
        id: String,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let mut stream: BoxedStream = Box::new(tcp);
        let mut tls = false;
        if kind == ListenerKind::Submissions {
            match self.tls_handshake(stream).await {
                Some(s) => stream = s,
                None => return,
            }
            tls = true;
        }
        let cfg = SessionConfig {
            hostname: self.cfg.hostname.clone(),
            kind,
            max_message_size: self.cfg.max_message_size,
            max_recipients: self.cfg.max_recipients,
            tls_available: self.tls.is_some(),
            plaintext_auth_allowed: self.cfg.allow_plaintext_auth_on_loopback
                && peer.ip().is_loopback(),
            future_release: (kind.is_submission() && self.held.get().is_some()).then(now_unix),
        };
        let mut session =
            Session::new(cfg, peer.ip(), tls, id).with_body_budget(self.body_budget.clone());
        let mut budget = CommandBudget::with_rate(
            Instant::now(),
            self.cfg.command_burst,
            self.cfg.commands_per_second,
        );
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            while let Some(event) = session.poll_event() {
                match event {
                    Event::Close => {
                        let _ = self.flush(&mut stream, &mut session).await;
                        let _ = stream.shutdown().await;
                        return;
                    }
                    Event::StartTls => {
                        if self.flush(&mut stream, &mut session).await.is_err() {
                            return;
                        }
                        match self.tls_handshake(stream).await {
                            Some(s) => stream = s,
                            None => return,
                        }
                        session.tls_established();
                    }
                    Event::Authenticate { username, password } => {
                        let outcome = self.authenticate(&username, &password, peer.ip()).await;
                        session.auth_result(outcome);
                    }
                    Event::CheckRecipient {
                        address,
                        size,
                        sender,
                        authenticated,
                    } => {
                        let greylist = (!authenticated).then_some((peer.ip(), sender.as_str()));
                        let verdict = self.check_recipient(&address, size, greylist).await;
                        session.recipient_resolved(verdict);
                    }
                    Event::Deliver(delivery) => {
                        let result = self.deliver(*delivery).await;
                        session.delivery_result(result);
                    }
                }
            }
            if self.flush(&mut stream, &mut session).await.is_err() {
                return;
            }
            // Too many commands too fast: slow this client down (RFC 2920 pipelining bursts
            // fit in the bucket).
            if let Some(wait) = budget.spend(session.take_command_count(), Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            // Draining: a session between transactions is told 421 and closed.
            let idle_between_transactions = !session.in_transaction();
            if idle_between_transactions && *shutdown.borrow() {
                session.shutdown();
                continue;
            }
            let read = tokio::select! {
                r = tokio::time::timeout(self.cfg.idle_timeout, stream.read(&mut buf)) => r,
                () = until_draining(&mut shutdown), if idle_between_transactions => {
                    session.shutdown();
                    continue;
                }
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => session.feed(buf.get(..n).unwrap_or_default()),
                Err(_) => {
                    tracing::info!("idle timeout");
                    session.timed_out();
                }
            }
        }
    }

    async fn flush(&self, stream: &mut BoxedStream, session: &mut Session) -> std::io::Result<()> {
        let out = session.take_output();
        if out.is_empty() {
            return Ok(());
        }
        let write = async {
            stream.write_all(&out).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.cfg.idle_timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    async fn tls_handshake(&self, stream: BoxedStream) -> Option<BoxedStream> {
        let Some(acceptor) = &self.tls else {
            tracing::warn!("TLS requested but no certificate is configured");
            return None;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(s)) => Some(Box::new(s)),
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::info!("TLS handshake timed out");
                None
            }
        }
    }

    async fn authenticate(&self, username: &str, password: &str, ip: IpAddr) -> AuthOutcome {
        match self.auth.authenticate(username, password, ip).await {
            Ok(account) => match self.store.account_addresses(account.id).await {
                Ok(addresses) => {
                    tracing::info!(user = %account.address, "authenticated");
                    AuthOutcome::Success {
                        account: account.id,
                        addresses,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the account's addresses");
                    AuthOutcome::Unavailable
                }
            },
            Err(LoginError::InvalidCredentials) => AuthOutcome::InvalidCredentials,
            Err(LoginError::AppPasswordRequired) => AuthOutcome::AppPasswordRequired,
            Err(LoginError::Throttled { .. }) => AuthOutcome::Throttled,
            Err(LoginError::Unavailable(_)) => AuthOutcome::Unavailable,
        }
    }

    /// `size`: the size declared at MAIL (0 if none), so a mailbox the message would take
    /// past its quota is deferred here, per recipient, rather than after DATA.
    /// `greylist`: the client's address and the sender, for an unauthenticated client.
    async fn check_recipient(
        &self,
        address: &str,
        size: usize,
        greylist: Option<(std::net::IpAddr, &str)>,
    ) -> RecipientVerdict {
        match self.resolve_postmaster(address).await {
            Ok(Some(verdict)) => return verdict,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, rcpt = %address, "postmaster lookup failed");
                return RecipientVerdict::TemporaryFailure;
            }
        }
        match bulwark_core::resolve_recipient(self.store.as_ref(), address).await {
            // A mailbox the declared size (or, undeclared, one more octet) would take past
            // its quota is deferred here, per recipient, so the others get the message now
            // (the pipeline checks again with the real size after DATA). A store error
            // admits: the delivery then meets the same error and is answered as such.
            Ok(Recipient::Local(account)) => {
                let adding = size.max(1) as u64;
                match bulwark_core::quota::admits(
                    self.store.as_ref(),
                    account,
                    self.cfg.quota,
                    adding,
                )
                .await
                {
                    Ok(false) => RecipientVerdict::MailboxFull,
                    _ => match greylist {
                        // RFC 6647: a first attempt waits; a store error lets it in.
                        Some((ip, sender)) if self.cfg.greylist.enabled => {
                            match bulwark_core::greylist::admits(
                                self.store.as_ref(),
                                account,
                                ip,
                                sender,
                                self.cfg.greylist,
                                bulwark_store::now_unix(),
                            )
                            .await
                            {
                                Ok(false) => {
                                    tracing::info!(%ip, %sender, rcpt = %address, "greylisted");
                                    RecipientVerdict::Greylisted
                                }
                                _ => RecipientVerdict::Local(account),
                            }
                        }
                        _ => RecipientVerdict::Local(account),
                    },
                }
            }
            Ok(Recipient::UnknownUser) => RecipientVerdict::UnknownUser,
            Ok(Recipient::Remote) => RecipientVerdict::Remote,
            Err(StoreError::Unavailable(e)) if let Some(spool) = self.spool.get() => {
                spool.note_store_unavailable();
                // Judged from the last known local domains; resolved fully at replay.
                match spool.offline_recipient(address) {
                    OfflineRecipient::LocalDomain => RecipientVerdict::Local(PENDING_ACCOUNT),
                    OfflineRecipient::Remote => RecipientVerdict::Remote,
                    OfflineRecipient::Unknown => {
                        tracing::warn!(error = %e, rcpt = %address, "store unavailable and no known domain list");
                        RecipientVerdict::TemporaryFailure
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rcpt = %address, "recipient lookup failed");
                RecipientVerdict::TemporaryFailure
            }
        }
    }

    /// RFC 5321 §4.5.1: bare `<postmaster>` and `postmaster@` a local domain are always
    /// accepted (see [`crate::postmaster`]); `None` for every other address.
    async fn resolve_postmaster(
        &self,
        address: &str,
    ) -> Result<Option<RecipientVerdict>, StoreError> {
        let store = self.store.as_ref();
        if address.eq_ignore_ascii_case(crate::wire::POSTMASTER) {
            let Some(full) = postmaster::bare_postmaster_address(store, &self.cfg.hostname).await?
            else {
                return Ok(Some(RecipientVerdict::UnknownUser));
            };
            return Ok(Some(
                match postmaster::resolve_postmaster(store, &full).await? {
                    Some(account) => RecipientVerdict::LocalAs {
                        address: full,
                        account,
                    },
                    None => RecipientVerdict::UnknownUser,
                },
            ));
        }
        if !postmaster::is_postmaster_address(address) {
            return Ok(None);
        }
        Ok(postmaster::resolve_postmaster(store, address)
            .await?
            .map(RecipientVerdict::Local))
    }

    /// On the inbound MX: removes `Authentication-Results` fields for our hostname that
    /// came from outside, and marks mail that claims one of our domains without
    /// authentication (see [`crate::authres`]).
    async fn mark_inbound(&self, d: &mut Delivery) {
        if !d.inbound_mx {
            return;
        }
        let host = &self.cfg.hostname;
        if let Some(stripped) = authres::strip_own(&d.body, host) {
            d.body = stripped;
        }
        if self.cfg.mark_local_domain_unauthenticated
            && self.local_domains.claimed_by(&d.sender, &d.body).await
        {
            let mark = authres::local_domain_unauthenticated(host);
            let mut body = Vec::with_capacity(mark.len() + d.body.len());
            body.extend_from_slice(mark.as_bytes());
            body.extend_from_slice(&d.body);
            d.body = body;
        }
    }

    /// RFC 4865: records the message as held until `at` (durable before `Ok`, so `250`
    /// means it will be released even if this node goes away) and sets this node's timer.
    /// Held mail is not spooled: with the store away the client is told to try again.
    async fn hold_for_later(&self, d: &Delivery, at: i64, now: i64) -> Result<(), DeliveryFailure> {
        use bulwark_core::held::{self, HeldRecord};
        use bulwark_store::collections::names::SMTP_HOLDS;
        let (Some(account), Some(timers)) = (d.account, self.held.get()) else {
            return Err(DeliveryFailure::Temporary(
                "FUTURERELEASE is not available here".into(),
            ));
        };
        let rcpt_to: Vec<String> = d
            .local
            .iter()
            .map(|(a, _)| a.clone())
            .chain(d.remote.iter().cloned())
            .collect();
        let id = format!("smtp-{}", d.id);
        let record = HeldRecord::pending(id.clone(), d.sender.clone(), rcpt_to, at);
        let raw = d.relay_message(now);
        match held::hold(
            self.store.as_ref(),
            account,
            SMTP_HOLDS,
            record.into_map(),
            &raw,
        )
        .await
        {
            Ok(_) => {
                timers.schedule(account, SMTP_HOLDS, &id, at);
                tracing::info!(id = %d.id, %account, release_at = at, "message held for later delivery (FUTURERELEASE)");
                Ok(())
            }
            Err(e) => {
                tracing::error!(id = %d.id, error = %e, "cannot hold the message");
                Err(DeliveryFailure::Temporary(e.to_string()))
            }
        }
    }

    /// Stores the message (see [`Self::deliver_to_store`]); when the store is unavailable
    /// (or a recipient was accepted during an outage), writes it to the local spool
    /// instead. Either way it is durable before `Ok`.
    async fn deliver(&self, mut d: Delivery) -> Result<(), DeliveryFailure> {
        self.mark_inbound(&mut d).await;
        let now = now_unix();
        if let Some(at) = d.hold.map(|h| h.release_at(now)).filter(|at| *at > now) {
            return self.hold_for_later(&d, at, now).await;
        }
        let spool = self.spool.get();
        let unresolved = d
            .local
            .iter()
            .any(|(_, account)| *account == PENDING_ACCOUNT);
        if !unresolved || spool.is_none() {
            match self.deliver_to_store(&d, now).await {
                Ok(()) => return Ok(()),
                Err(StoreFailure::Store(StoreError::Unavailable(_))) if spool.is_some() => {}
                Err(StoreFailure::Store(e)) => {
                    return Err(DeliveryFailure::Temporary(e.to_string()));
                }
                Err(StoreFailure::Refused(bulwark_core::Refusal::Permanent(why))) => {
                    return Err(DeliveryFailure::Permanent(why));
                }
                Err(StoreFailure::Refused(bulwark_core::Refusal::Temporary(why))) => {
                    return Err(DeliveryFailure::Temporary(why));
                }
            }
        }
        let include_remote = true;
        let Some(spool) = spool else {
            return Err(DeliveryFailure::Temporary(
                "no spool for recipients accepted during a store outage".into(),
            ));
        };
        spool.note_store_unavailable();
        let message = spooled_message(&d, now, include_remote).map_err(|e| {
            tracing::error!(id = %d.id, error = %e, "cannot spool the message");
            DeliveryFailure::Temporary(e)
        })?;
        match spool.put(&message).await {
            Ok(()) => {
                tracing::info!(
                    id = %d.id,
                    sender = %d.sender,
                    local = d.local.len(),
                    remote = message.envelope.remote.len(),
                    size = d.body.len(),
                    "message accepted into the spool (store unavailable)"
                );
                Ok(())
            }
            Err(e) => {
                tracing::error!(id = %d.id, error = %e, "spooling failed");
                Err(DeliveryFailure::Temporary(e.to_string()))
            }
        }
    }

    /// Hands the message to the delivery pipeline: local copies and the queue entry for
    /// remote recipients are committed together (all or nothing), so a client's retry after
    /// an error never duplicates a copy.
    async fn deliver_to_store(&self, d: &Delivery, now: i64) -> Result<(), StoreFailure> {
        let local_raw = Arc::new(d.local_message(now));
        let mut message = bulwark_core::Message::new(&d.sender, Vec::new(), local_raw.clone());
        message.received_at = now;
        message.origin = Some(bulwark_core::Origin {
            ip: d.trace.peer,
            helo: d.trace.helo.clone(),
            authenticated: d.authenticated.clone(),
        });
        message.resolved = d
            .local
            .iter()
            .map(|(address, account)| (address.clone(), Recipient::Local(*account)))
            .chain(d.remote.iter().map(|r| (r.clone(), Recipient::Remote)))
            .collect();
        if !d.remote.is_empty() {
            message.remote_raw = Some(Arc::new(d.relay_message(now)));
        }
        let done = match self.pipeline().deliver(message).await {
            Ok(done) => done,
            Err(bulwark_core::DeliveryError::Store(e)) => {
                tracing::error!(id = %d.id, error = %e, "delivery failed");
                return Err(StoreFailure::Store(e));
            }
            Err(e @ bulwark_core::DeliveryError::AlreadyAccepted) => {
                // SMTP passes no records, so this cannot happen; answer "try again".
                return Err(StoreFailure::Store(StoreError::Internal(e.to_string())));
            }
        };
        let refused: Vec<(&str, &bulwark_core::Refusal)> = done.refused().collect();
        if !refused.is_empty() && refused.len() == done.outcomes.len() {
            // Nobody took it: one SMTP reply for the transaction (RFC 5321 §4.2.5).
            let (rcpt, why) = refused[0];
            tracing::info!(id = %d.id, rcpt, reason = why.reason(), "message refused");
            return Err(StoreFailure::Refused(why.clone()));
        }
        for (rcpt, why) in &refused {
            tracing::warn!(id = %d.id, rcpt, reason = why.reason(), "recipient refused after DATA");
        }
        if !refused.is_empty() {
            self.bounce_refused(d, &refused, &local_raw, now).await;
        }
        tracing::info!(
            id = %d.id,
            sender = %d.sender,
            local = d.local.len(),
            remote = d.remote.len(),
            size = d.body.len(),
            "message accepted"
        );
        Ok(())
    }
}

impl SmtpServer {
    /// RFC 5321 §3.7, §4.2.5: once the transaction is accepted (`250` for some recipients),
    /// the others' refusals are ours to report: an RFC 3464 bounce to the envelope sender
    /// (never to the null one, §6.1), through the pipeline. Best effort after the commit:
    /// if it cannot be stored the failure is logged (the message itself is delivered).
    async fn bounce_refused(
        &self,
        d: &Delivery,
        refused: &[(&str, &bulwark_core::Refusal)],
        original: &[u8],
        now: i64,
    ) {
        if d.sender.is_empty() {
            tracing::info!(id = %d.id, "refused recipients of a bounce are not bounced");
            return;
        }
        let diagnostics: Vec<String> = refused
            .iter()
            .map(|(_, why)| bulwark_core::dsn::refusal_diagnostic(why))
            .collect();
        let report = bulwark_core::dsn::DsnReport {
            id: &d.id,
            sender: &d.sender,
            arrival: now,
            failed: refused
                .iter()
                .zip(&diagnostics)
                .map(|((rcpt, _), error)| bulwark_core::dsn::FailedRecipient {
                    address: rcpt,
                    error,
                })
                .collect(),
        };
        let dsn = bulwark_core::dsn::build_dsn(&self.cfg.hostname, &report, original, now);
        match bulwark_core::dsn::send_dsn(
            &self.pipeline(),
            &d.sender,
            dsn,
            self.cfg.queue_lifetime_secs,
            now,
        )
        .await
        {
            Ok(bulwark_core::Outcome::Refused(why)) => {
                tracing::warn!(id = %d.id, sender = %d.sender, reason = why.reason(), "bounce for refused recipients refused");
            }
            Ok(_) => {
                tracing::info!(id = %d.id, sender = %d.sender, refused = refused.len(), "bounce sent for refused recipients");
            }
            Err(e) => {
                tracing::error!(id = %d.id, sender = %d.sender, error = %e, "cannot send the bounce for refused recipients");
            }
        }
    }
}

/// Why [`SmtpServer::deliver_to_store`] stored nothing.
enum StoreFailure {
    Store(StoreError),
    /// Every recipient was refused (by a hook of the pipeline).
    Refused(bulwark_core::Refusal),
}

/// The delivery as a spool entry: the trace fields are fixed now, so a replay stores the
/// very bytes a direct delivery would have (and their hash identifies them).
fn spooled_message(d: &Delivery, now: i64, include_remote: bool) -> Result<SpooledMessage, String> {
    let head_of = |full: Vec<u8>| {
        let head_len = full.len().saturating_sub(d.body.len());
        String::from_utf8(full.get(..head_len).unwrap_or_default().to_vec())
            .map_err(|_| "trace fields are not UTF-8".to_string())
    };
    let remote = if include_remote {
        d.remote.clone()
    } else {
        Vec::new()
    };
    Ok(SpooledMessage {
        envelope: SpooledEnvelope {
            id: d.id.clone(),
            sender: d.sender.clone(),
            local: d.local.iter().map(|(address, _)| address.clone()).collect(),
            // Also the carrier of DSNs for recipients unknown at replay.
            relay_head: head_of(d.relay_message(now))?,
            remote,
            received_at: now,
            local_head: head_of(d.local_message(now))?,
        },
        body: d.body.clone(),
    })
}

/// Tells a client over the connection limit to come back later (not on implicit-TLS ports,
/// where plaintext would only confuse the client's TLS stack).
async fn refuse(mut tcp: TcpStream, kind: ListenerKind) {
    if kind != ListenerKind::Submissions {
        let bytes = reply::TOO_MANY_CONNECTIONS.to_bytes();
        let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, tcp.write_all(&bytes)).await;
    }
    let _ = tcp.shutdown().await;
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "server_spool_tests.rs"]
mod spool_tests;
