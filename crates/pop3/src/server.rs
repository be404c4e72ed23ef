//! The thin tokio shell: accepts connections, enforces the shared per-IP connection limits
//! and the timeouts, moves bytes between the socket and the sans-I/O [`Session`], upgrades
//! to TLS on STLS, answers the session's events from the store and the shared
//! [`Authenticator`] (its throttle, app passwords and two-factor rule), and isolates a
//! panicking connection from the rest.

use crate::limits::{self, COMMAND_BURST};
use crate::session::{
    AuthOutcome, Event, Maildrop, MaildropMessage, RetrieveFailure, Session, SessionConfig, Update,
};
use bulwark_auth::{Authenticator, LoginError};
use bulwark_net::{BoxedStream, ConnectionLimiter, TlsAcceptor};
use bulwark_store::{AccountId, BlobHash, KeywordOp, KeywordUpdate, Role, Store, StoreError};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TLS handshake must finish within this time.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Back-off after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Socket read size.
const READ_CHUNK: usize = 4096;

/// Configuration of the POP3 server (the binary fills it from its TOML file).
#[derive(Debug, Clone)]
pub struct Pop3Config {
    /// Name in the greeting.
    pub hostname: String,
    /// Autologout after this long without a command (RFC 1939 §3: at least 10 minutes). Before
    /// login it is counted from the connection, so a client that sends a byte now and then
    /// does not keep an anonymous session open longer.
    pub idle_timeout: Duration,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// Networks exempt from `max_connections_per_ip` (`[limits] trusted_networks`).
    pub trusted_networks: Vec<bulwark_net::IpNet>,
    /// Allow USER/PASS and AUTH without TLS when the peer is on a loopback address.
    pub allow_plaintext_auth_on_loopback: bool,
    /// Commands per second per connection (token bucket refill rate).
    pub commands_per_second: u32,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            hostname: "localhost".into(),
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
            max_connections_per_ip: limits::DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            trusted_networks: Vec::new(),
            allow_plaintext_auth_on_loopback: false,
            commands_per_second: limits::COMMANDS_PER_SECOND,
        }
    }
}

pub struct Pop3Server {
    cfg: Arc<Pop3Config>,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    tls: Option<TlsAcceptor>,
    limiter: ConnectionLimiter,
    next_id: AtomicU64,
}

/// Resolves once `shutdown` turns true; never if its sender is gone without draining.
async fn until_draining(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Pop3Server {
    pub fn new(
        cfg: Pop3Config,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
    ) -> Arc<Self> {
        let limiter = ConnectionLimiter::new(cfg.max_connections_per_ip, cfg.max_connections)
            .with_trusted(&cfg.trusted_networks);
        Arc::new(Pop3Server {
            cfg: Arc::new(cfg),
            store,
            auth,
            tls,
            limiter,
            next_id: AtomicU64::new(1),
        })
    }

    /// Connections open now (for a drain to wait on).
    pub fn open_connections(&self) -> usize {
        self.limiter.open_connections()
    }

    /// Serves connections from `listener` forever. `implicit_tls`: port 995 style.
    pub async fn run(self: Arc<Self>, listener: TcpListener, implicit_tls: bool) {
        let (_never, shutdown) = watch::channel(false);
        self.run_until(listener, implicit_tls, shutdown).await
    }

    /// Like [`run`](Self::run) until `shutdown` turns true: then the listener is closed and
    /// every session is told `-ERR [SYS/TEMP]` and closed after its current command (without
    /// the UPDATE state: nothing is deleted); watch [`open_connections`](Self::open_connections).
    pub async fn run_until(
        self: Arc<Self>,
        listener: TcpListener,
        implicit_tls: bool,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = until_draining(&mut shutdown) => return,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "POP3 accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Some(guard) = self.limiter.try_acquire(peer.ip()) else {
                // One refusal line and log line per second per address; others just close.
                if self.limiter.refusal_notice(peer.ip()) {
                    tracing::warn!(remote = %peer, "POP3 connection refused: too many connections");
                    if !implicit_tls {
                        let _ = tcp.try_write(
                            b"-ERR [SYS/TEMP] Too many connections, try again later\r\n",
                        );
                    }
                }
                continue;
            };
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let server = self.clone();
            let conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _guard = guard;
                // Panic isolation: the connection runs in its own task; a panic ends only
                // that task and is logged with the connection id.
                let task = tokio::spawn(server.serve(tcp, peer, implicit_tls, id, conn_shutdown));
                if let Err(e) = task.await
                    && e.is_panic()
                {
                    tracing::error!(conn = id, remote = %peer, "POP3 connection handler panicked");
                }
            });
        }
    }

    async fn serve(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        implicit_tls: bool,
        id: u64,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let mut stream: BoxedStream = Box::new(tcp);
        if implicit_tls {
            match self.tls_handshake(stream).await {
                Some(s) => stream = s,
                None => return,
            }
        }
        let cfg = SessionConfig {
            hostname: self.cfg.hostname.clone(),
            tls_available: self.tls.is_some(),
            plaintext_auth_allowed: self.cfg.allow_plaintext_auth_on_loopback
                && peer.ip().is_loopback(),
        };
        let mut session = Session::new(cfg, implicit_tls);
        let mut bucket = TokenBucket::new(self.cfg.commands_per_second, Instant::now());
        let login_deadline = tokio::time::Instant::now() + self.cfg.idle_timeout;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            while let Some(event) = session.poll_event() {
                match event {
                    Event::Close => {
                        let _ = self.write_all_output(&mut stream, &mut session).await;
                        let _ = stream.shutdown().await;
                        tracing::debug!(conn = id, remote = %peer, "POP3 connection closed");
                        return;
                    }
                    Event::StartTls => {
                        if self
                            .write_all_output(&mut stream, &mut session)
                            .await
                            .is_err()
                        {
                            return;
                        }
                        match self.tls_handshake(stream).await {
                            Some(s) => stream = s,
                            None => return,
                        }
                        session.tls_established();
                    }
                    Event::Authenticate { username, password } => {
                        let outcome = self.login(&username, &password, peer.ip()).await;
                        session.auth_result(outcome);
                    }
                    Event::Retrieve { blob } => {
                        let result = self.fetch(&blob).await;
                        session.retrieved(result);
                    }
                    Event::Update(update) => {
                        let applied = self.update(update).await;
                        session.update_result(applied);
                    }
                }
            }
            let out = session.take_output();
            if !out.is_empty() {
                if self.write(&mut stream, &out).await.is_err() {
                    return;
                }
                continue;
            }
            // Too many commands too fast: slow this client down.
            if let Some(wait) = bucket.spend(session.take_command_count(), Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            if *shutdown.borrow() {
                session.shutdown();
                continue;
            }
            let deadline = if session.is_authenticated() {
                tokio::time::Instant::now() + self.cfg.idle_timeout
            } else {
                login_deadline
            };
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, stream.read(&mut buf)) => r,
                () = until_draining(&mut shutdown) => {
                    session.shutdown();
                    continue;
                }
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    // RFC 1939 §6: without QUIT there is no UPDATE state; nothing is deleted.
                    tracing::debug!(conn = id, remote = %peer, "POP3 connection dropped");
                    return;
                }
                Ok(Ok(n)) => session.feed(buf.get(..n).unwrap_or_default()),
                Err(_) => {
                    tracing::debug!(conn = id, remote = %peer, "POP3 autologout");
                    session.timed_out();
                }
            }
        }
    }

    async fn write(&self, stream: &mut BoxedStream, bytes: &[u8]) -> std::io::Result<()> {
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.cfg.idle_timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// Writes every pending reply (and the rest of a message being sent).
    async fn write_all_output(
        &self,
        stream: &mut BoxedStream,
        session: &mut Session,
    ) -> std::io::Result<()> {
        loop {
            let out = session.take_output();
            if out.is_empty() {
                return Ok(());
            }
            self.write(stream, &out).await?;
        }
    }

    async fn tls_handshake(&self, stream: BoxedStream) -> Option<BoxedStream> {
        let Some(acceptor) = &self.tls else {
            tracing::warn!("POP3 TLS requested but no certificate is configured");
            return None;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(s)) => Some(Box::new(s)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "POP3 TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!("POP3 TLS handshake timed out");
                None
            }
        }
    }

    /// The shared login path (throttle, app passwords, two-factor rule), then the maildrop.
    async fn login(&self, username: &str, password: &str, ip: IpAddr) -> AuthOutcome {
        match self.auth.authenticate(username, password, ip).await {
            Ok(account) => match self.open_maildrop(account.id).await {
                Ok(drop) => {
                    tracing::info!(remote = %ip, user = %account.address, messages = drop.messages.len(), "POP3 login");
                    AuthOutcome::Success(drop)
                }
                Err(e) => {
                    tracing::error!(error = %e, user = %account.address, "cannot read the POP3 maildrop");
                    AuthOutcome::MaildropUnavailable
                }
            },
            Err(LoginError::InvalidCredentials) => AuthOutcome::InvalidCredentials,
            Err(LoginError::AppPasswordRequired) => AuthOutcome::AppPasswordRequired,
            Err(LoginError::Throttled { retry_after_secs }) => {
                AuthOutcome::Throttled { retry_after_secs }
            }
            Err(LoginError::Unavailable(_)) => AuthOutcome::Unavailable,
        }
    }

    /// The account's INBOX, message by message in UID order.
    async fn open_maildrop(&self, account: AccountId) -> Result<Maildrop, StoreError> {
        let inbox = self
            .store
            .mailbox_list(account)
            .await?
            .into_iter()
            .find(|m| m.role == Some(Role::Inbox) || m.name == "INBOX")
            .ok_or_else(|| StoreError::NotFound("INBOX".into()))?;
        let mut metas = self.store.mailbox_messages(account, inbox.id).await?;
        metas.sort_by_key(|m| m.uid);
        Ok(Maildrop {
            account,
            mailbox: inbox.id,
            uid_validity: inbox.uid_validity,
            messages: metas
                .into_iter()
                .map(|m| MaildropMessage {
                    uid: m.uid,
                    email: m.email,
                    blob: m.blob,
                    size: u64::from(m.size),
                })
                .collect(),
        })
    }

    async fn fetch(&self, blob: &BlobHash) -> Result<Vec<u8>, RetrieveFailure> {
        match self.store.blob_get(blob).await {
            Ok(Some(data)) => Ok(data),
            Ok(None) => Err(RetrieveFailure::Gone),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a message for POP3");
                Err(RetrieveFailure::Unavailable)
            }
        }
    }

    /// The UPDATE state: `$seen` on what was retrieved, then the expunge. Only the expunge
    /// decides the answer (a lost `$seen` is not worth a `-ERR`).
    async fn update(&self, u: Update) -> bool {
        if !u.seen.is_empty() {
            let updates = u
                .seen
                .iter()
                .map(|&email| KeywordUpdate {
                    email,
                    op: KeywordOp::Add,
                    keywords: vec!["$seen".into()],
                    unchanged_since: None,
                })
                .collect();
            if let Err(e) = self.store.email_set_keywords(u.account, updates).await {
                tracing::warn!(error = %e, "cannot mark POP3-retrieved messages as seen");
            }
        }
        if u.expunge.is_empty() {
            return true;
        }
        match self
            .store
            .mailbox_expunge(u.account, u.mailbox, &u.expunge)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(error = %e, "POP3 QUIT could not expunge the deleted messages");
                false
            }
        }
    }
}

/// Commands-per-second limit: a token bucket that slows a flooding client down instead of
/// disconnecting it.
struct TokenBucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, now: Instant) -> Self {
        TokenBucket {
            tokens: f64::from(COMMAND_BURST),
            rate: f64::from(rate.max(1)),
            last: now,
        }
    }

    /// Spends `n` tokens; how long to wait first when the bucket went negative.
    fn spend(&mut self, n: u32, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(f64::from(COMMAND_BURST));
        self.tokens -= f64::from(n);
        if self.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-self.tokens / self.rate))
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
