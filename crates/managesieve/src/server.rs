//! The thin tokio shell: accepts connections, enforces the shared per-IP connection limits
//! and the idle timeout, moves bytes between the socket and the sans-I/O [`Session`],
//! upgrades to TLS on STARTTLS, answers the session's events from the store (through
//! `bulwark_sieve::scripts`) and the shared [`Authenticator`] (its throttle, app passwords
//! and two-factor rule), and isolates a panicking connection from the rest.

use crate::limits;
use crate::session::{AuthOutcome, Event, ScriptOp, ScriptResult, Session, SessionConfig};
use bulwark_auth::{Authenticator, LoginError};
use bulwark_net::{BoxedStream, ConnectionLimiter, TlsAcceptor};
use bulwark_sieve::scripts;
use bulwark_store::{AccountId, Store};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TLS handshake must finish within this time.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Back-off after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Socket read size.
const READ_CHUNK: usize = 16 * 1024;

/// Configuration of the ManageSieve server (the binary fills it from its TOML file).
#[derive(Debug, Clone)]
pub struct ManageSieveConfig {
    /// The `IMPLEMENTATION` capability.
    pub implementation: String,
    /// Logout after this long without a command; before login counted from the connection.
    pub idle_timeout: Duration,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// Networks exempt from `max_connections_per_ip` (`[limits] trusted_networks`).
    pub trusted_networks: Vec<bulwark_net::IpNet>,
    /// Allow AUTHENTICATE without TLS when the peer is on a loopback address.
    pub allow_plaintext_auth_on_loopback: bool,
}

impl Default for ManageSieveConfig {
    fn default() -> Self {
        ManageSieveConfig {
            implementation: "Bulwark".into(),
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
            max_connections_per_ip: limits::DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            trusted_networks: Vec::new(),
            allow_plaintext_auth_on_loopback: false,
        }
    }
}

pub struct ManageSieveServer {
    cfg: Arc<ManageSieveConfig>,
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

impl ManageSieveServer {
    pub fn new(
        cfg: ManageSieveConfig,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
    ) -> Arc<Self> {
        let limiter = ConnectionLimiter::new(cfg.max_connections_per_ip, cfg.max_connections)
            .with_trusted(&cfg.trusted_networks);
        Arc::new(ManageSieveServer {
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

    /// Serves connections from `listener` forever.
    pub async fn run(self: Arc<Self>, listener: TcpListener) {
        let (_never, shutdown) = watch::channel(false);
        self.run_until(listener, shutdown).await
    }

    /// Like [`run`](Self::run) until `shutdown` turns true: then the listener is closed and
    /// every session is told `BYE (TRYLATER)` after its current command.
    pub async fn run_until(
        self: Arc<Self>,
        listener: TcpListener,
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
                    tracing::warn!(error = %e, "ManageSieve accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Some(guard) = self.limiter.try_acquire(peer.ip()) else {
                if self.limiter.refusal_notice(peer.ip()) {
                    tracing::warn!(remote = %peer, "ManageSieve connection refused: too many connections");
                    let _ = tcp.try_write(b"BYE (TRYLATER) \"Too many connections\"\r\n");
                }
                continue;
            };
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let server = self.clone();
            let conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _guard = guard;
                let task = tokio::spawn(server.serve(tcp, peer, id, conn_shutdown));
                if let Err(e) = task.await
                    && e.is_panic()
                {
                    tracing::error!(conn = id, remote = %peer, "ManageSieve connection handler panicked");
                }
            });
        }
    }

    async fn serve(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        id: u64,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let mut stream: BoxedStream = Box::new(tcp);
        let cfg = SessionConfig {
            implementation: self.cfg.implementation.clone(),
            tls_available: self.tls.is_some(),
            plaintext_auth_allowed: self.cfg.allow_plaintext_auth_on_loopback
                && peer.ip().is_loopback(),
        };
        let mut session = Session::new(cfg, false);
        let login_deadline = tokio::time::Instant::now() + self.cfg.idle_timeout;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            while let Some(event) = session.poll_event() {
                match event {
                    Event::Close => {
                        let out = session.take_output();
                        let _ = self.write(&mut stream, &out).await;
                        let _ = stream.shutdown().await;
                        tracing::debug!(conn = id, remote = %peer, "ManageSieve connection closed");
                        return;
                    }
                    Event::StartTls => {
                        let out = session.take_output();
                        if self.write(&mut stream, &out).await.is_err() {
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
                    Event::Script { account, op } => {
                        let result = self.script(account, op).await;
                        session.script_result(result);
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
                    tracing::debug!(conn = id, remote = %peer, "ManageSieve connection dropped");
                    return;
                }
                Ok(Ok(n)) => session.feed(buf.get(..n).unwrap_or_default()),
                Err(_) => {
                    tracing::debug!(conn = id, remote = %peer, "ManageSieve idle timeout");
                    session.timed_out();
                }
            }
        }
    }

    async fn write(&self, stream: &mut BoxedStream, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.cfg.idle_timeout, write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    async fn tls_handshake(&self, stream: BoxedStream) -> Option<BoxedStream> {
        let Some(acceptor) = &self.tls else {
            tracing::warn!("ManageSieve TLS requested but no certificate is configured");
            return None;
        };
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(s)) => Some(Box::new(s)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "ManageSieve TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!("ManageSieve TLS handshake timed out");
                None
            }
        }
    }

    /// The shared login path (throttle, app passwords, two-factor rule).
    async fn login(&self, username: &str, password: &str, ip: IpAddr) -> AuthOutcome {
        match self.auth.authenticate(username, password, ip).await {
            Ok(account) => {
                tracing::info!(remote = %ip, user = %account.address, "ManageSieve login");
                AuthOutcome::Success {
                    account: account.id,
                    owner: account.address,
                }
            }
            Err(LoginError::InvalidCredentials) => AuthOutcome::InvalidCredentials,
            Err(LoginError::AppPasswordRequired) => AuthOutcome::AppPasswordRequired,
            Err(LoginError::Throttled { retry_after_secs }) => {
                AuthOutcome::Throttled { retry_after_secs }
            }
            Err(LoginError::Unavailable(_)) => AuthOutcome::Unavailable,
        }
    }

    async fn script(&self, account: AccountId, op: ScriptOp) -> ScriptResult {
        let store = self.store.as_ref();
        let result = match op {
            ScriptOp::HaveSpace { name, size } => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                scripts::have_space(store, account, &name, size)
                    .await
                    .map(|()| ScriptResult::Done)
            }
            ScriptOp::Put { name, source } => scripts::put(store, account, &name, &source)
                .await
                .map(|_| ScriptResult::Done),
            ScriptOp::List => scripts::list(store, account)
                .await
                .map(|l| ScriptResult::List(l.into_iter().map(|s| (s.name, s.active)).collect())),
            ScriptOp::SetActive(name) => scripts::set_active(store, account, name.as_deref())
                .await
                .map(|()| ScriptResult::Done),
            ScriptOp::Get(name) => scripts::get(store, account, &name)
                .await
                .map(ScriptResult::Script),
            ScriptOp::Delete(name) => scripts::delete(store, account, &name)
                .await
                .map(|()| ScriptResult::Done),
            ScriptOp::Rename { old, new } => scripts::rename(store, account, &old, &new)
                .await
                .map(|()| ScriptResult::Done),
        };
        match result {
            Ok(r) => r,
            Err(e) => {
                if let bulwark_sieve::ScriptError::Store(err) = &e {
                    tracing::warn!(error = %err, "ManageSieve store operation failed");
                }
                ScriptResult::Failed(e)
            }
        }
    }
}
