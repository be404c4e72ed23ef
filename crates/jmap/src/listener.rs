//! The `http` listener's accept loop (issue 13 item 4): instead of `axum::serve`, which has
//! no connection limits and no timeouts, connections are counted per IP and in total like
//! the SMTP and IMAP listeners (`bulwark_net::ConnectionLimiter`, which also keeps the
//! process inside its file-descriptor budget), request heads must arrive within
//! `header_timeout` (slowloris; between keep-alive requests too), and a connection with no
//! traffic either way for `idle_timeout` is closed.

use axum::Router;
use axum::extract::ConnectInfo;
use bulwark_net::{ConnectionGuard, ConnectionLimiter};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Connection limits and timeouts of one HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    /// Networks exempt from `max_connections_per_ip` (`[limits] trusted_networks`: a
    /// reverse proxy or webmail host).
    pub trusted_networks: Arc<[bulwark_net::IpNet]>,
    /// Longest time from the start of waiting for a request head to its last header line.
    pub header_timeout: Duration,
    /// A connection silent this long in both directions is closed.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections_per_ip: 20,
            max_connections: 1000,
            trusted_networks: Arc::from(Vec::new()),
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Pause after a failed `accept` (e.g. `EMFILE`) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a refused connection may take to read our 503 before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Refused connections lingering at once; past this they are closed at once.
const MAX_LINGERING_REFUSALS: usize = 64;
/// While stopping, how often we look whether the connections have ended.
const STOP_POLL: Duration = Duration::from_millis(50);

const REFUSAL_BODY: &str = "too many connections; try again later\n";

fn refusal() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    )
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets the
/// requests in flight finish (idle keep-alive connections close at once) and returns when
/// every connection has ended.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limiter = ConnectionLimiter::new(limits.max_connections_per_ip, limits.max_connections)
        .with_trusted(&limits.trusted_networks);
    let lingering = Arc::new(AtomicUsize::new(0));
    let tasks = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Some(guard) = limiter.try_acquire(peer.ip()) else {
            // One 503 and log line per second per address; others just close.
            if limiter.refusal_notice(peer.ip()) {
                tracing::warn!(remote = %peer, "HTTP connection refused: too many connections");
                refuse(tcp, &lingering);
            }
            continue;
        };
        let app = app.clone();
        let limits = limits.clone();
        let stop = stop_rx.clone();
        let task = TaskCount::enter(&tasks);
        tokio::spawn(async move {
            let _task = task;
            serve_connection(tcp, peer, guard, app, limits, stop).await;
        });
    }
    drop(listener);
    stop_tx.send_replace(true);
    // Connections upgraded to WebSocket live on in their own tasks (still counted by the
    // limiter); the HTTP connections end once their request in flight is answered.
    while tasks.load(Ordering::Acquire) > 0 {
        tokio::time::sleep(STOP_POLL).await;
    }
}

/// Counts running connection tasks until dropped.
struct TaskCount(Arc<AtomicUsize>);

impl TaskCount {
    fn enter(count: &Arc<AtomicUsize>) -> TaskCount {
        count.fetch_add(1, Ordering::AcqRel);
        TaskCount(count.clone())
    }
}

impl Drop for TaskCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers 503 and closes. The answer lingers briefly (reading what the client sent, so
/// closing does not reset the connection before the client read it), a bounded number at once.
fn refuse(mut tcp: TcpStream, lingering: &Arc<AtomicUsize>) {
    let text = refusal();
    if lingering.fetch_add(1, Ordering::AcqRel) >= MAX_LINGERING_REFUSALS {
        lingering.fetch_sub(1, Ordering::AcqRel);
        let _ = tcp.try_write(text.as_bytes());
        return;
    }
    let lingering = lingering.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            tcp.write_all(text.as_bytes()).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tcp.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
        lingering.fetch_sub(1, Ordering::AcqRel);
    });
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    guard: ConnectionGuard,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    // The slot goes with the socket: a connection upgraded to WebSocket leaves hyper (and
    // this task) but keeps counting against the caps until the socket closes.
    let io = TokioIo::new(IdleTimeout::new(tcp, limits.idle_timeout).holding(guard));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` would add: handlers read the peer.
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(remote = %peer, error = %e, "HTTP connection ended");
            }
            false
        }
        r = stop.wait_for(|s| *s) => {
            drop(r);
            true
        }
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// A stream that fails with `TimedOut` once nothing was read or written for `timeout`.
pub struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    _slot: Option<ConnectionGuard>,
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        let now = Instant::now();
        IdleTimeout {
            inner,
            timeout,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            _slot: None,
        }
    }

    /// Keeps `slot` (a connection-limit slot) for as long as the stream lives.
    pub fn holding(mut self, slot: ConnectionGuard) -> Self {
        self._slot = Some(slot);
        self
    }

    /// `Ready(TimedOut)` once idle for `timeout`; else registers the waker and is pending.
    /// Activity only records a time; the timer is moved when it fires early.
    fn poll_idle<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        loop {
            let deadline = self.last_activity + self.timeout;
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if self.last_activity + self.timeout <= Instant::now() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "HTTP connection idle too long",
                    )));
                }
                Poll::Ready(()) => continue,
            }
        }
    }
}

impl<S> IdleTimeout<S> {
    /// A write's outcome: bytes written are activity; a pending write waits under the idle
    /// deadline (a client that stops reading is as idle as one that stops sending).
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.last_activity = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.poll_idle(cx),
            ready => ready,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.poll_idle(cx),
            ready => ready,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
