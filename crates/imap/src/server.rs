//! The thin tokio shell: accepts connections, enforces connection limits and timeouts,
//! moves bytes between the socket and the sans-I/O parser/session, upgrades to TLS on
//! STARTTLS, and isolates a panicking connection from the rest.

use crate::config::ImapConfig;
use crate::limits::{COMMAND_BURST, MAX_COMMAND_OVERHEAD};
use crate::parser::Command;
use crate::parser::{Event, LineEvent, Parser};
use crate::session::{Next, Session};
use bulwark_auth::Authenticator;
use bulwark_net::{BoxedStream, ConnectionLimiter, MemoryBudget, Reservation, TlsAcceptor};
use bulwark_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// What a draining server tells its clients (RFC 9051 §7.1.5 BYE, RFC 5530 UNAVAILABLE).
const SHUTDOWN_BYE: &[u8] = b"* BYE [UNAVAILABLE] server shutting down\r\n";

/// Resolves once `shutdown` turns true; never if its sender is gone without draining.
async fn until_draining(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|draining| *draining).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Largest socket read (the buffer grows to it while a client sends a lot, e.g. APPEND).
const READ_CHUNK: usize = 64 * 1024;
/// Read buffer of a connection between commands: thousands of sessions sit idle, so
/// each keeps only this much (it doubles while reads fill it, up to [`READ_CHUNK`]).
const IDLE_READ_BUF: usize = 1024;
/// Output buffer capacity kept after a flush (a big FETCH must not pin its response).
const KEPT_OUTPUT: usize = 16 * 1024;
/// Pieces of a long response (each about [`crate::session::SPILL_THRESHOLD`]) queued for
/// the socket. The session is not run while a piece is being written, so however slowly
/// the client reads, a command holds at most these plus the piece being written, the
/// one being handed over and the one being built.
const SPILL_QUEUE: usize = 1;
/// A TLS handshake must finish within this time.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 5530 `UNAVAILABLE`: a temporary shortage; the client may try again.
const LITERAL_BUDGET_NO: &str =
    "NO [UNAVAILABLE] Too much mail is being received right now; try again later\r\n";
const LITERAL_BUDGET_BYE: &[u8] =
    b"* BYE [UNAVAILABLE] Too much mail is being received right now; try again later\r\n";
/// Back-off after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct ImapServer {
    cfg: Arc<ImapConfig>,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    tls: Option<TlsAcceptor>,
    limiter: ConnectionLimiter,
    next_id: AtomicU64,
    /// Mailbox changes read once for all sessions (see [`crate::feed`]).
    feeds: Arc<crate::feed::Feeds>,
    /// Memory for literals being received (APPEND), shared by every session.
    literal_budget: Arc<MemoryBudget>,
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("peer closed the connection")]
    Closed,
}

impl ImapServer {
    pub fn new(
        cfg: ImapConfig,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        tls: Option<TlsAcceptor>,
    ) -> Arc<Self> {
        let limiter = ConnectionLimiter::new(cfg.max_connections_per_ip, cfg.max_connections)
            .with_trusted(&cfg.trusted_networks);
        // One literal of the largest size always fits.
        let smallest_budget = cfg.max_literal_size.saturating_add(MAX_COMMAND_OVERHEAD);
        let literal_budget = MemoryBudget::new(cfg.literal_memory_budget.max(smallest_budget));
        Arc::new(ImapServer {
            cfg: Arc::new(cfg),
            store,
            auth,
            tls,
            limiter,
            next_id: AtomicU64::new(1),
            feeds: Arc::default(),
            literal_budget,
        })
    }

    /// Bytes of literals being received, over all sessions (for tests and metrics).
    pub fn literal_memory_in_use(&self) -> usize {
        self.literal_budget.in_use()
    }

    /// Serves connections from `listener` forever. `implicit_tls`: port 993 style.
    pub async fn run(self: Arc<Self>, listener: TcpListener, implicit_tls: bool) {
        let (_never, shutdown) = watch::channel(false);
        self.run_until(listener, implicit_tls, shutdown).await
    }

    /// Connections open now (for a drain to wait on).
    pub fn open_connections(&self) -> usize {
        self.limiter.open_connections()
    }

    /// Like [`run`](Self::run) until `shutdown` turns true: then the listener is closed,
    /// IDLE sessions get `* BYE [UNAVAILABLE]` at once and others after their current
    /// command; the sessions end on their own, so watch [`open_connections`](Self::open_connections).
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
                    tracing::warn!(error = %e, "IMAP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Some(guard) = self.limiter.try_acquire(peer.ip()) else {
                // Cheap refusals: one `* BYE` (RFC 9051 §7.1.5, as the greeting) and log line
                // per second per address, never waiting on the client; the others are
                // just closed.
                if self.limiter.refusal_notice(peer.ip()) {
                    tracing::warn!(remote = %peer, "IMAP connection refused: too many connections");
                    if !implicit_tls {
                        let _ = tcp.try_write(b"* BYE Too many connections, try again later\r\n");
                    }
                }
                continue;
            };
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let server = self.clone();
            let conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _guard = guard;
                // Panic isolation: the connection runs in its own task; a panic ends
                // only that task and is logged with the connection id.
                let task = tokio::spawn(server.serve(tcp, peer, implicit_tls, id, conn_shutdown));
                if let Err(e) = task.await
                    && e.is_panic()
                {
                    tracing::error!(conn = id, remote = %peer, "IMAP connection handler panicked");
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
        shutdown: watch::Receiver<bool>,
    ) {
        let _ = tcp.set_nodelay(true);
        let stream: BoxedStream = if implicit_tls {
            let Some(acceptor) = self.tls.clone() else {
                tracing::error!("IMAP implicit TLS listener without a TLS configuration");
                return;
            };
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => {
                    tracing::debug!(conn = id, remote = %peer, error = %e, "IMAP TLS handshake failed");
                    return;
                }
                Err(_) => return,
            }
        } else {
            Box::new(tcp)
        };
        let session = Session::new(
            self.cfg.clone(),
            self.store.clone(),
            self.auth.clone(),
            peer.ip(),
            implicit_tls,
            self.tls.is_some(),
        )
        .with_feeds(self.feeds.clone());
        let mut conn = Conn::new(
            stream,
            session,
            self.tls.clone(),
            self.cfg.clone(),
            shutdown,
        );
        conn.literal_memory = Reservation::empty(&self.literal_budget);
        match conn.run().await {
            Ok(()) | Err(ConnError::Closed) => {
                tracing::debug!(conn = id, remote = %peer, "IMAP connection closed")
            }
            Err(e) => {
                tracing::debug!(conn = id, remote = %peer, error = %e, "IMAP connection ended")
            }
        }
    }
}

/// One connection's I/O state.
struct Conn {
    stream: BoxedStream,
    parser: Parser,
    session: Session,
    out: Vec<u8>,
    /// Pieces of a long response the session handed over while its command runs;
    /// written before `out`.
    spilled: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    tls: Option<TlsAcceptor>,
    cfg: Arc<ImapConfig>,
    bucket: TokenBucket,
    /// Turns true when the server drains.
    shutdown: watch::Receiver<bool>,
    /// RFC 9051 §5.4 autologout before login: counted from the connection, so a client that
    /// sends a byte now and then does not keep an anonymous session open.
    login_deadline: tokio::time::Instant,
    /// The server's literal budget held by the command being read (given back after it).
    literal_memory: Reservation,
}

impl Conn {
    fn new(
        stream: BoxedStream,
        mut session: Session,
        tls: Option<TlsAcceptor>,
        cfg: Arc<ImapConfig>,
        shutdown: watch::Receiver<bool>,
    ) -> Conn {
        let (sink, spilled) = mpsc::channel(SPILL_QUEUE);
        session.set_spill(sink);
        Conn::with_spill(stream, session, spilled, tls, cfg, shutdown)
    }

    /// A connection whose session spills into a sink that feeds `spilled`.
    fn with_spill(
        stream: BoxedStream,
        session: Session,
        spilled: mpsc::Receiver<Vec<u8>>,
        tls: Option<TlsAcceptor>,
        cfg: Arc<ImapConfig>,
        shutdown: watch::Receiver<bool>,
    ) -> Conn {
        Conn {
            stream,
            parser: Parser::new(cfg.max_literal_size),
            session,
            out: Vec::new(),
            spilled,
            buf: vec![0u8; IDLE_READ_BUF],
            tls,
            bucket: TokenBucket::new(cfg.commands_per_second),
            login_deadline: tokio::time::Instant::now() + cfg.pre_auth_timeout,
            literal_memory: Reservation::empty(&MemoryBudget::unlimited()),
            cfg,
            shutdown,
        }
    }

    /// When the next read gives up: the idle timeout after login, the login deadline before.
    fn read_deadline(&self) -> tokio::time::Instant {
        if self.session.is_authenticated() {
            tokio::time::Instant::now() + self.cfg.idle_timeout
        } else {
            self.login_deadline
        }
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = write_piece(&mut self.stream, &self.out, self.cfg.idle_timeout).await;
        self.out.clear();
        self.out.shrink_to(KEPT_OUTPUT);
        r
    }

    /// Runs one command, writing the pieces of a long response as the session hands
    /// them over; what is left in `out` is for the caller to flush. A failed write ends
    /// the command (and the connection) at once.
    async fn handle_streaming(&mut self, cmd: Command) -> Result<Next, ConnError> {
        let Conn {
            stream,
            session,
            out,
            spilled,
            cfg,
            ..
        } = self;
        let timeout = cfg.idle_timeout;
        let next = {
            let handle = session.handle(cmd, out);
            tokio::pin!(handle);
            loop {
                tokio::select! {
                    next = &mut handle => break next,
                    Some(piece) = spilled.recv() => write_piece(stream, &piece, timeout).await?,
                }
            }
        };
        // Pieces handed over just before the command finished come before `out`.
        while let Ok(piece) = spilled.try_recv() {
            write_piece(stream, &piece, timeout).await?;
        }
        Ok(next)
    }

    /// Reads more bytes into the parser; on the autologout timer, says BYE.
    async fn read_more(&mut self) -> Result<(), ConnError> {
        let deadline = self.read_deadline();
        let read = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)).await;
        self.after_read(read).await
    }

    /// Between commands with NOTIFY on (RFC 5465): reads the next command, or sends what
    /// changed as soon as the store reports it.
    async fn read_or_notify(&mut self) -> Result<(), ConnError> {
        let deadline = self.read_deadline();
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            read = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)) => {
                self.after_read(read).await
            }
            () = self.session.wait_for_any_change() => {
                self.session.notify_between_commands(&mut self.out).await;
                self.flush().await
            }
            () = until_draining(&mut shutdown) => self.bye_shutting_down().await,
        }
    }

    async fn after_read(
        &mut self,
        read: Result<std::io::Result<usize>, tokio::time::error::Elapsed>,
    ) -> Result<(), ConnError> {
        match read {
            Ok(Ok(0)) => Err(ConnError::Closed),
            Ok(Ok(n)) => {
                self.parser.feed(&self.buf[..n]);
                self.grow_if_full(n);
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                // RFC 9051 §5.4 autologout.
                let bye: &[u8] = if self.session.is_authenticated() {
                    b"* BYE Autologout; idle for too long\r\n"
                } else {
                    b"* BYE Autologout; no login within the time allowed\r\n"
                };
                self.out.extend_from_slice(bye);
                let _ = self.flush().await;
                Err(ConnError::Timeout)
            }
        }
    }

    async fn run(&mut self) -> Result<(), ConnError> {
        self.session.greeting(&mut self.out);
        self.flush().await?;
        loop {
            self.parser.set_pre_auth(!self.session.is_authenticated());
            match self.parser.next_event() {
                // Between commands (nothing half-read): a draining server says goodbye.
                Event::NeedMoreData if self.parser.buffered() == 0 => {
                    if *self.shutdown.borrow() {
                        return self.bye_shutting_down().await;
                    }
                    if self.session.notify_active() {
                        self.read_or_notify().await?;
                        if *self.shutdown.borrow() {
                            return Ok(());
                        }
                        continue;
                    }
                    let mut shutdown = self.shutdown.clone();
                    tokio::select! {
                        r = self.read_more() => r?,
                        () = until_draining(&mut shutdown) => return self.bye_shutting_down().await,
                    }
                }
                Event::NeedMoreData => self.read_more().await?,
                Event::NeedLiteral { size, non_sync } => {
                    if !self.reserve_literal(size).await {
                        if non_sync {
                            // RFC 7888 §4: the bytes are on their way; we will not buffer them.
                            self.out.extend_from_slice(LITERAL_BUDGET_BYE);
                            let _ = self.flush().await;
                            return Ok(());
                        }
                        // RFC 9051 §7.5: refused instead of `+`; the client sends nothing.
                        let tag = self.parser.refuse_literal().unwrap_or_else(|| "*".into());
                        self.literal_memory = Reservation::empty(self.literal_memory.budget());
                        self.out
                            .extend_from_slice(format!("{tag} {LITERAL_BUDGET_NO}").as_bytes());
                        self.flush().await?;
                    } else if !non_sync {
                        // RFC 9051 §7.5: continuation request for a synchronizing literal.
                        self.out.extend_from_slice(b"+ Ready for literal data\r\n");
                        self.flush().await?;
                    }
                }
                Event::Error(e) => {
                    self.literal_memory = Reservation::empty(self.literal_memory.budget());
                    let next = self.session.parse_error(e, &mut self.out);
                    self.flush().await?;
                    if next == Next::Logout {
                        return Ok(());
                    }
                }
                Event::Command(cmd) => {
                    if let Some(wait) = self.bucket.take(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                    let next = self.handle_streaming(cmd).await?;
                    self.literal_memory = Reservation::empty(self.literal_memory.budget());
                    self.flush().await?;
                    self.release_buffers();
                    match next {
                        Next::Continue => {}
                        Next::Logout => {
                            let _ = self.stream.shutdown().await;
                            return Ok(());
                        }
                        Next::StartTls => self.start_tls().await?,
                        Next::Idle => self.idle().await?,
                        Next::AuthContinue => self.auth_continue().await?,
                    }
                }
            }
        }
    }

    /// Reserves a literal's bytes from the server's budget before it is read, waiting a
    /// little for other sessions' APPENDs to finish; false when it does not fit.
    async fn reserve_literal(&mut self, size: u64) -> bool {
        let Ok(size) = usize::try_from(size) else {
            return false;
        };
        let total = self.literal_memory.held().saturating_add(size);
        self.literal_memory
            .grow_within(total, self.cfg.literal_memory_wait)
            .await
    }

    async fn bye_shutting_down(&mut self) -> Result<(), ConnError> {
        self.out.extend_from_slice(SHUTDOWN_BYE);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
        Ok(())
    }

    /// A read that filled the buffer means more is coming: read bigger pieces.
    fn grow_if_full(&mut self, n: usize) {
        if n == self.buf.len() && self.buf.len() < READ_CHUNK {
            self.buf.resize((self.buf.len() * 2).min(READ_CHUNK), 0);
        }
    }

    /// Between commands: give back what a large command made the buffers grow to.
    fn release_buffers(&mut self) {
        if self.buf.len() > IDLE_READ_BUF && self.parser.buffered() == 0 {
            self.buf = vec![0u8; IDLE_READ_BUF];
        }
        self.parser.release_memory();
    }

    async fn start_tls(&mut self) -> Result<(), ConnError> {
        let Some(acceptor) = self.tls.clone() else {
            return Err(ConnError::Closed);
        };
        // Bytes pipelined after STARTTLS were sent in plaintext: never execute them.
        self.parser.discard_buffered();
        let plain = std::mem::replace(&mut self.stream, Box::new(tokio::io::duplex(1).0));
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(plain)).await {
            Ok(Ok(tls)) => {
                self.stream = Box::new(tls);
                self.session.tls_started();
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(ConnError::Timeout),
        }
    }

    /// Reads one raw line (AUTHENTICATE continuation).
    async fn raw_line(&mut self) -> Result<Option<Vec<u8>>, ConnError> {
        loop {
            match self.parser.next_line() {
                LineEvent::Line(l) => return Ok(Some(l)),
                LineEvent::TooLong => return Ok(None),
                LineEvent::NeedMoreData => self.read_more().await?,
            }
        }
    }

    async fn auth_continue(&mut self) -> Result<(), ConnError> {
        let line = self.raw_line().await?.unwrap_or_else(|| b"*".to_vec());
        let next = self
            .session
            .authenticate_continue(&line, &mut self.out)
            .await;
        self.flush().await?;
        if next == Next::Logout {
            Err(ConnError::Closed)
        } else {
            Ok(())
        }
    }

    /// RFC 2177: report changes at once until `DONE`; end after the maximum duration.
    async fn idle(&mut self) -> Result<(), ConnError> {
        let deadline = tokio::time::Instant::now() + self.cfg.max_idle_duration;
        let mut shutdown = self.shutdown.clone();
        loop {
            match self.parser.next_line() {
                LineEvent::Line(line) => {
                    let next = self.session.idle_done(&line, &mut self.out).await;
                    self.flush().await?;
                    return if next == Next::Logout {
                        Err(ConnError::Closed)
                    } else {
                        Ok(())
                    };
                }
                LineEvent::TooLong => {
                    let next = self.session.idle_done(b"", &mut self.out).await;
                    self.flush().await?;
                    return if next == Next::Logout {
                        Err(ConnError::Closed)
                    } else {
                        Ok(())
                    };
                }
                LineEvent::NeedMoreData => {}
            }
            tokio::select! {
                r = self.stream.read(&mut self.buf) => match r {
                    Ok(0) => return Err(ConnError::Closed),
                    Ok(n) => self.parser.feed(&self.buf[..n]),
                    Err(e) => return Err(e.into()),
                },
                _ = self.session.wait_for_change() => {
                    self.session.idle_update(&mut self.out).await;
                    self.flush().await?;
                }
                () = until_draining(&mut shutdown) => {
                    self.out.extend_from_slice(SHUTDOWN_BYE);
                    let _ = self.flush().await;
                    return Err(ConnError::Closed);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.out.extend_from_slice(b"* BYE IDLE lasted too long; please reconnect\r\n");
                    let _ = self.flush().await;
                    return Err(ConnError::Timeout);
                }
            }
        }
    }
}

/// Writes `bytes` to the client and flushes them (through TLS too) within `timeout`.
async fn write_piece(
    stream: &mut BoxedStream,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), ConnError> {
    let written = tokio::time::timeout(timeout, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await;
    match written {
        Ok(r) => Ok(r?),
        Err(_) => Err(ConnError::Timeout),
    }
}

/// Commands-per-second limit: a token bucket that slows a flooding client down instead
/// of disconnecting it.
struct TokenBucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32) -> Self {
        TokenBucket {
            tokens: f64::from(COMMAND_BURST),
            rate: f64::from(rate.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes a token; returns how long to wait first when the bucket is empty.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(f64::from(COMMAND_BURST));
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            None
        } else {
            Some(Duration::from_secs_f64(-self.tokens / self.rate))
        }
    }
}

#[cfg(test)]
#[path = "server_stream_tests.rs"]
mod stream_tests;

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use std::time::{Duration, Instant};

    #[test]
    fn token_bucket_slows_down_after_the_burst() {
        let mut b = TokenBucket::new(10);
        let t = Instant::now();
        for _ in 0..crate::limits::COMMAND_BURST {
            assert_eq!(b.take(t), None);
        }
        let wait = b.take(t).expect("must wait");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert_eq!(b.take(t + Duration::from_secs(1)), None);
    }
}
