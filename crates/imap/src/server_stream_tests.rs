//! Streaming of long responses: a big FETCH reaches the client in pieces while it is
//! built, byte for byte what the session writes without streaming, and a client that
//! stops reading stops the command instead of making the server buffer the response.

use super::{Conn, SPILL_QUEUE};
use crate::parser::parse_command;
use crate::session::tests_support::{PASSWORD, USER, append_many, fresh_store};
use crate::session::{SPILL_THRESHOLD, Session};
use crate::{ImapConfig, ImapServer};
use bulwark_auth::Authenticator;
use bulwark_net::TlsAcceptor;
use bulwark_store::sqlite::SqliteStore;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, mpsc, watch};

/// Messages in the big mailbox: its FETCH responses are many spill pieces long.
const BIG_MAILBOX: usize = 20_000;
/// Every wait in these tests gives up after this long (a deadline, not a sleep).
const DEADLINE: Duration = Duration::from_secs(60);
/// How often a test looks again at something it waits for (within [`DEADLINE`]).
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Bytes the in-memory "socket" of the back-pressure test holds.
const PIPE_CAPACITY: usize = 64 * 1024;
/// Upper bound of one message's FETCH response in these tests.
const ONE_RESPONSE: usize = 16 * 1024;

/// The commands whose responses are compared: ENVELOPE from stored envelopes, full
/// content (read in batches), and items without content.
const BIG_FETCHES: [&str; 3] = [
    "f1 FETCH 1:* (ENVELOPE)",
    "f2 UID FETCH 1:* (FLAGS BODY.PEEK[])",
    "f3 FETCH 1:* (UID FLAGS RFC822.SIZE)",
];

fn loopback_cfg() -> ImapConfig {
    ImapConfig {
        allow_plaintext_auth_on_loopback: true,
        ..ImapConfig::default()
    }
}

/// A store whose INBOX holds `n` messages, appended in one transaction (fast).
async fn big_store(dir: &std::path::Path, n: usize) -> (Arc<SqliteStore>, Arc<Authenticator>) {
    let (store, auth) = fresh_store(dir).await;
    append_many(&*store, 0, n).await;
    (store, auth)
}

fn new_session(store: Arc<SqliteStore>, auth: Arc<Authenticator>) -> Session {
    let remote: IpAddr = "127.0.0.1".parse().expect("ip");
    Session::new(Arc::new(loopback_cfg()), store, auth, remote, false, false)
}

/// Runs `line` on `session` (no sink unless one was set) and returns what it wrote.
async fn run(session: &mut Session, line: &str) -> Vec<u8> {
    let cmd = parse_command(line.as_bytes()).expect("parses");
    let mut out = Vec::new();
    session.handle(cmd, &mut out).await;
    out
}

/// Logs in and selects INBOX.
async fn selected_session(store: Arc<SqliteStore>, auth: Arc<Authenticator>) -> Session {
    let mut s = new_session(store, auth);
    let login = run(&mut s, &format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(
        login.starts_with(b"l OK"),
        "{}",
        String::from_utf8_lossy(&login)
    );
    // IMAP4rev2: no \Recent, so every session's FETCH answers are byte-identical (in
    // IMAP4rev1 the first session to select gets the messages as recent).
    run(&mut s, "e ENABLE IMAP4rev2").await;
    run(&mut s, "s SELECT INBOX").await;
    s
}

/// What a session without streaming answers to each of `lines`.
async fn unstreamed(
    store: Arc<SqliteStore>,
    auth: Arc<Authenticator>,
    lines: &[&str],
) -> Vec<Vec<u8>> {
    let mut s = selected_session(store, auth).await;
    let mut all = Vec::new();
    for line in lines {
        all.push(run(&mut s, line).await);
    }
    all
}

/// A client that keeps the raw bytes it reads.
struct Raw<S> {
    s: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Raw<S> {
    fn new(s: S) -> Self {
        Raw { s, buf: Vec::new() }
    }

    async fn send(&mut self, line: &str) {
        self.s
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
    }

    /// Reads more bytes into `buf`; counts them in `read` when given.
    async fn read_some(&mut self, read: Option<&AtomicUsize>) {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(DEADLINE, self.s.read(&mut chunk))
            .await
            .expect("response within the deadline")
            .expect("read");
        assert!(n > 0, "server closed the connection");
        if let Some(read) = read {
            read.fetch_add(n, Ordering::SeqCst);
        }
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Everything up to and including the line tagged `tag`.
    async fn until_tagged(&mut self, tag: &str, read: Option<&AtomicUsize>) -> Vec<u8> {
        let needle = format!("\r\n{tag} ");
        let mut scanned = 0;
        loop {
            let start = if self.buf.starts_with(&needle.as_bytes()[2..]) {
                Some(0)
            } else {
                find(&self.buf[scanned..], needle.as_bytes()).map(|p| scanned + p + 2)
            };
            if let Some(start) = start
                && let Some(end) = find(&self.buf[start..], b"\r\n")
            {
                let rest = self.buf.split_off(start + end + 2);
                return std::mem::replace(&mut self.buf, rest);
            }
            scanned = self.buf.len().saturating_sub(needle.len());
            self.read_some(read).await;
        }
    }

    /// Sends `line` (tagged with its first word) and returns the whole response.
    async fn cmd(&mut self, line: &str) -> Vec<u8> {
        self.send(line).await;
        let tag = line.split(' ').next().unwrap_or_default();
        self.until_tagged(tag, None).await
    }

    async fn greeting_login_select(&mut self) {
        self.until_tagged("*", None).await;
        let login = self.cmd(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
        assert!(
            login.starts_with(b"l OK"),
            "{}",
            String::from_utf8_lossy(&login)
        );
        self.cmd("e ENABLE IMAP4rev2").await;
        let select = self.cmd("s SELECT INBOX").await;
        assert!(
            String::from_utf8_lossy(&select).contains(&format!("* {BIG_MAILBOX} EXISTS")),
            "{}",
            String::from_utf8_lossy(&select)
        );
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Asserts `got` is `want` byte for byte (without printing megabytes when not).
fn assert_same(line: &str, got: &[u8], want: &[u8]) {
    let first_diff = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got.len() == want.len() && first_diff.is_none(),
        "{line}: {} bytes streamed, {} unstreamed, first difference at {first_diff:?}",
        got.len(),
        want.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spilled_pieces_are_bounded_and_add_up_to_the_unstreamed_response() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, auth) = big_store(dir.path(), BIG_MAILBOX).await;
    let want = unstreamed(store.clone(), auth.clone(), &BIG_FETCHES).await;
    let mut session = selected_session(store, auth).await;
    for (line, want) in BIG_FETCHES.iter().zip(want) {
        assert!(
            want.len() > 2 * SPILL_THRESHOLD,
            "{line}: too short to stream"
        );
        let (sink, mut pieces) = mpsc::channel(SPILL_QUEUE);
        session.set_spill(sink);
        let cmd = parse_command(line.as_bytes()).expect("parses");
        let mut task = tokio::spawn(async move {
            let mut out = Vec::new();
            session.handle(cmd, &mut out).await;
            (session, out)
        });
        let mut got = Vec::new();
        let mut count = 0;
        let mut take = |piece: Vec<u8>| {
            assert!(
                piece.len() >= SPILL_THRESHOLD && piece.len() < SPILL_THRESHOLD + ONE_RESPONSE,
                "{line}: piece of {} bytes",
                piece.len()
            );
            got.extend_from_slice(&piece);
            count += 1;
        };
        let streamed = tokio::time::timeout(DEADLINE, async {
            loop {
                tokio::select! {
                    Some(piece) = pieces.recv() => take(piece),
                    done = &mut task => break done.expect("no panic"),
                }
            }
        });
        let (back, rest) = streamed.await.expect("command ends within the deadline");
        // A piece handed over just before the command ended.
        while let Ok(piece) = pieces.try_recv() {
            take(piece);
        }
        session = back;
        assert!(rest.len() < SPILL_THRESHOLD + ONE_RESPONSE, "{line}");
        got.extend_from_slice(&rest);
        assert!(count >= 2, "{line}: only {count} pieces");
        assert_same(line, &got, &want);
    }
}

async fn serve(
    store: Arc<SqliteStore>,
    auth: Arc<Authenticator>,
    tls: Option<TlsAcceptor>,
    implicit_tls: bool,
) -> SocketAddr {
    serve_with_handle(store, auth, tls, implicit_tls).await.0
}

async fn serve_with_handle(
    store: Arc<SqliteStore>,
    auth: Arc<Authenticator>,
    tls: Option<TlsAcceptor>,
    implicit_tls: bool,
) -> (SocketAddr, Arc<ImapServer>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = ImapServer::new(loopback_cfg(), store, auth, tls);
    tokio::spawn(server.clone().run(listener, implicit_tls));
    (addr, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_fetch_over_tcp_is_byte_identical_to_the_unstreamed_response() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, auth) = big_store(dir.path(), BIG_MAILBOX).await;
    let want = unstreamed(store.clone(), auth.clone(), &BIG_FETCHES).await;
    let addr = serve(store, auth, None, false).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut c = Raw::new(tcp);
    c.greeting_login_select().await;
    for (line, want) in BIG_FETCHES.iter().zip(&want) {
        assert_same(line, &c.cmd(line).await, want);
    }
    // The connection keeps serving after the long responses.
    assert_eq!(c.cmd("n NOOP").await, b"n OK NOOP completed\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_fetch_over_implicit_tls_and_starttls_is_byte_identical() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, auth) = big_store(dir.path(), BIG_MAILBOX).await;
    let lines = &BIG_FETCHES[..2];
    let want = unstreamed(store.clone(), auth.clone(), lines).await;
    let server_tls = bulwark_net::load_tls(&Default::default(), dir.path(), "localhost")
        .expect("self-signed TLS");
    let acceptor = TlsAcceptor::from(server_tls);
    let connector = tokio_rustls::TlsConnector::from(bulwark_net::client_config_insecure());
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("name");

    let implicit = serve(store.clone(), auth.clone(), Some(acceptor.clone()), true).await;
    let tcp = tokio::net::TcpStream::connect(implicit)
        .await
        .expect("connect");
    let tls = connector
        .connect(name.clone(), tcp)
        .await
        .expect("handshake");
    let mut c = Raw::new(tls);
    c.greeting_login_select().await;
    for (line, want) in lines.iter().zip(&want) {
        assert_same(line, &c.cmd(line).await, want);
    }

    let plain = serve(store, auth, Some(acceptor), false).await;
    let tcp = tokio::net::TcpStream::connect(plain)
        .await
        .expect("connect");
    let mut c = Raw::new(tcp);
    c.until_tagged("*", None).await;
    let ok = c.cmd("t STARTTLS").await;
    assert!(ok.starts_with(b"t OK"), "{}", String::from_utf8_lossy(&ok));
    let tls = connector.connect(name, c.s).await.expect("handshake");
    let mut c = Raw::new(tls);
    let login = c.cmd(&format!("l LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(
        login.starts_with(b"l OK"),
        "{}",
        String::from_utf8_lossy(&login)
    );
    c.cmd("e ENABLE IMAP4rev2").await;
    c.cmd("s SELECT INBOX").await;
    for (line, want) in lines.iter().zip(&want) {
        assert_same(line, &c.cmd(line).await, want);
    }
}

/// Bytes the session handed over and bytes the client read, watched between the
/// session and the connection.
#[derive(Default)]
struct Gauge {
    spilled: AtomicUsize,
    read: AtomicUsize,
    /// The most the session was ever ahead of the client.
    max_ahead: AtomicUsize,
}

/// The server's end of the in-memory socket: says when a write has to wait because
/// the client is not reading.
struct StallSignal<S> {
    inner: S,
    stalled: Arc<Notify>,
}

impl<S: AsyncRead + Unpin> AsyncRead for StallSignal<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallSignal<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if r.is_pending() {
            this.stalled.notify_one();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Times the test client waits for the server to stall, reading one chunk in between.
const STALLS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_stops_the_fetch_instead_of_growing_buffers() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, auth) = big_store(dir.path(), BIG_MAILBOX).await;
    let line = "f UID FETCH 1:* (FLAGS BODY.PEEK[])";
    let want = unstreamed(store.clone(), auth.clone(), &[line])
        .await
        .remove(0);
    // Pieces: one being written, one queued for the connection, one in the relay, one
    // the session is handing over, one being built; plus what the pipe holds.
    let bound = PIPE_CAPACITY + 5 * (SPILL_THRESHOLD + ONE_RESPONSE);
    assert!(want.len() > 2 * bound, "response too short to show a bound");

    // session → relay (counts) → connection → pipe → client.
    let mut session = new_session(store, auth);
    let (to_relay, mut from_session) = mpsc::channel::<Vec<u8>>(SPILL_QUEUE);
    session.set_spill(to_relay);
    let (to_conn, from_relay) = mpsc::channel(SPILL_QUEUE);
    let (client_io, server_io) = tokio::io::duplex(PIPE_CAPACITY);
    let stalled = Arc::new(Notify::new());
    let server_io = StallSignal {
        inner: server_io,
        stalled: stalled.clone(),
    };
    let (_drain, shutdown) = watch::channel(false);
    let cfg = Arc::new(loopback_cfg());
    let mut conn = Conn::with_spill(
        Box::new(server_io),
        session,
        from_relay,
        None,
        cfg,
        shutdown,
    );
    tokio::spawn(async move { conn.run().await });
    let gauge = Arc::new(Gauge::default());
    let g = gauge.clone();
    tokio::spawn(async move {
        while let Some(piece) = from_session.recv().await {
            let spilled = g.spilled.fetch_add(piece.len(), Ordering::SeqCst) + piece.len();
            let ahead = spilled.saturating_sub(g.read.load(Ordering::SeqCst));
            g.max_ahead.fetch_max(ahead, Ordering::SeqCst);
            if to_conn.send(piece).await.is_err() {
                return;
            }
        }
    });

    let mut c = Raw::new(client_io);
    c.greeting_login_select().await;
    c.send(line).await;
    // The client reads one chunk each time the server has to wait for it.
    for _ in 0..STALLS {
        tokio::time::timeout(DEADLINE, stalled.notified())
            .await
            .expect("the server waits for a client that does not read");
        let spilled = gauge.spilled.load(Ordering::SeqCst);
        let read = gauge.read.load(Ordering::SeqCst);
        assert!(
            spilled - read.min(spilled) <= bound,
            "{spilled} bytes handed over, {read} read by the client (bound {bound})"
        );
        c.read_some(Some(&gauge.read)).await;
    }
    assert!(
        gauge.spilled.load(Ordering::SeqCst) < want.len() / 2,
        "the session ran ahead of a slow client"
    );
    // Now read the rest: the FETCH completes and is complete.
    let got = c.until_tagged("f", Some(&gauge.read)).await;
    assert_same(line, &got, &want);
    let spilled = gauge.spilled.load(Ordering::SeqCst);
    assert!(
        spilled + SPILL_THRESHOLD + ONE_RESPONSE > want.len(),
        "only {spilled} of {} bytes were streamed",
        want.len()
    );
    let max_ahead = gauge.max_ahead.load(Ordering::SeqCst);
    assert!(
        max_ahead <= bound,
        "the session ran {max_ahead} bytes ahead of the client"
    );
    assert_eq!(c.cmd("n NOOP").await, b"n OK NOOP completed\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_during_a_streamed_fetch_ends_the_connection() {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, auth) = big_store(dir.path(), BIG_MAILBOX).await;
    let (addr, server) = serve_with_handle(store, auth, None, false).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut c = Raw::new(tcp);
    c.greeting_login_select().await;
    c.send("f UID FETCH 1:* (FLAGS BODY.PEEK[])").await;
    // The response has started streaming; then the client goes away.
    c.read_some(None).await;
    assert!(c.buf.starts_with(b"* 1 FETCH (UID 1 FLAGS () BODY[] {"));
    drop(c);
    let gone = tokio::time::timeout(DEADLINE, async {
        while server.open_connections() > 0 {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    });
    gone.await
        .expect("a failed write while streaming ends the connection");
}
