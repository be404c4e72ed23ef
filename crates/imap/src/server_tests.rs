//! Socket tests: a real server on 127.0.0.1:0 and a small IMAP test client.

use crate::session::tests_support::{PASSWORD, USER, fresh_store, msg};
use crate::{ImapConfig, ImapServer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Every read in the test client gives up after this long (a deadline, not a sleep).
const READ_DEADLINE: Duration = Duration::from_secs(20);

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> (Client, String) {
        let s = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = s.into_split();
        let mut c = Client {
            r: BufReader::new(r),
            w,
        };
        let greeting = c.line().await;
        (c, greeting)
    }

    /// One response line, with any literal it announces read in.
    async fn line(&mut self) -> String {
        let mut full = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(READ_DEADLINE, self.r.read_until(b'\n', &mut line))
                .await
                .expect("response within the deadline")
                .expect("read");
            assert!(
                n > 0,
                "server closed; so far: {}",
                String::from_utf8_lossy(&full)
            );
            full.extend_from_slice(&line);
            let text = String::from_utf8_lossy(&line).into_owned();
            let trimmed = text.trim_end();
            let literal = trimmed
                .strip_suffix('}')
                .and_then(|s| s.rsplit_once('{'))
                .and_then(|(_, n)| n.parse::<usize>().ok());
            match literal {
                Some(n) => {
                    let mut buf = vec![0u8; n];
                    tokio::time::timeout(READ_DEADLINE, self.r.read_exact(&mut buf))
                        .await
                        .expect("literal within the deadline")
                        .expect("read literal");
                    full.extend_from_slice(&buf);
                }
                None => return String::from_utf8_lossy(&full).into_owned(),
            }
        }
    }

    async fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).await.expect("write");
    }

    /// Sends `tag text` and returns everything up to and including the tagged response.
    async fn cmd(&mut self, tag: &str, text: &str) -> String {
        self.send(format!("{tag} {text}\r\n").as_bytes()).await;
        self.until_tagged(tag).await
    }

    async fn until_tagged(&mut self, tag: &str) -> String {
        let mut all = String::new();
        loop {
            let l = self.line().await;
            all.push_str(&l);
            if l.starts_with(&format!("{tag} ")) {
                return all;
            }
        }
    }

    /// Reads lines until one contains `needle`.
    async fn wait_for(&mut self, needle: &str) -> String {
        let mut all = String::new();
        loop {
            let l = self.line().await;
            all.push_str(&l);
            if l.contains(needle) {
                return all;
            }
        }
    }

    async fn login(&mut self) {
        let out = self.cmd("l", &format!("LOGIN {USER} \"{PASSWORD}\"")).await;
        assert!(out.contains("l OK"), "{out}");
    }

    /// APPEND with a synchronizing literal: waits for `+` before sending the message.
    async fn append(&mut self, tag: &str, mailbox: &str, m: &str) -> String {
        self.send(format!("{tag} APPEND {mailbox} {{{}}}\r\n", m.len()).as_bytes())
            .await;
        let cont = self.line().await;
        assert!(cont.starts_with('+'), "{cont}");
        self.send(format!("{m}\r\n").as_bytes()).await;
        self.until_tagged(tag).await
    }
}

async fn start(cfg: ImapConfig) -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tmp");
    let (store, auth) = fresh_store(dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = ImapServer::new(cfg, store, auth, None);
    tokio::spawn(server.run(listener, false));
    (addr, dir)
}

fn loopback_cfg() -> ImapConfig {
    ImapConfig {
        allow_plaintext_auth_on_loopback: true,
        ..ImapConfig::default()
    }
}

#[tokio::test]
async fn socket_session_login_append_fetch_store_search_move_expunge() {
    let (addr, _dir) = start(loopback_cfg()).await;
    let (mut c, greeting) = Client::connect(addr).await;
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2"),
        "{greeting}"
    );
    // Sync literal for the password.
    c.send(format!("l LOGIN {USER} {{{}}}\r\n", PASSWORD.len()).as_bytes())
        .await;
    assert!(c.line().await.starts_with('+'));
    c.send(format!("{PASSWORD}\r\n").as_bytes()).await;
    assert!(c.until_tagged("l").await.contains("l OK"));
    let out = c.append("a1", "INBOX", &msg("sock", "socket body")).await;
    assert!(out.contains("a1 OK [APPENDUID"), "{out}");
    // LITERAL+: no continuation.
    let m = msg("plus", "non-sync");
    c.send(format!("a2 APPEND INBOX (\\Seen) {{{}+}}\r\n{m}\r\n", m.len()).as_bytes())
        .await;
    assert!(c.until_tagged("a2").await.contains("a2 OK"));
    let out = c.cmd("s", "SELECT INBOX").await;
    assert!(out.contains("* 2 EXISTS"), "{out}");
    let out = c.cmd("f", "FETCH 1 (FLAGS BODY[])").await;
    assert!(
        out.contains("socket body") && out.contains("\\Seen"),
        "{out}"
    );
    let out = c.cmd("st", "STORE 2 +FLAGS (\\Deleted)").await;
    assert!(
        out.contains("* 2 FETCH (FLAGS (") && out.contains("\\Deleted") && out.contains("\\Seen"),
        "{out}"
    );
    let out = c.cmd("se", "SEARCH DELETED").await;
    assert!(out.contains("* SEARCH 2\r\n"), "{out}");
    let out = c.cmd("m", "MOVE 1 Archive").await;
    assert!(out.contains("* 1 EXPUNGE") && out.contains("m OK"), "{out}");
    let out = c.cmd("x", "EXPUNGE").await;
    assert!(out.contains("* 1 EXPUNGE") && out.contains("x OK"), "{out}");
    let out = c.cmd("bad", "FROB").await;
    assert_eq!(out, "bad BAD Unknown command FROB\r\n");
    let out = c.cmd("o", "LOGOUT").await;
    assert!(out.contains("* BYE") && out.contains("o OK"), "{out}");
}

#[tokio::test]
async fn idle_session_sees_exists_fetch_and_expunge_from_another_session() {
    let (addr, _dir) = start(loopback_cfg()).await;
    let (mut a, _) = Client::connect(addr).await;
    let (mut b, _) = Client::connect(addr).await;
    a.login().await;
    b.login().await;
    a.cmd("s", "SELECT INBOX").await;
    b.cmd("s", "SELECT INBOX").await;
    a.send(b"i IDLE\r\n").await;
    assert!(a.line().await.starts_with("+ "));
    b.append("ap", "INBOX", &msg("idle", "x")).await;
    a.wait_for("* 1 EXISTS").await;
    b.cmd("b1", "NOOP").await;
    b.cmd("st", "STORE 1 +FLAGS (\\Flagged)").await;
    // `a` was the first to see the message: it is recent there (RFC 3501 §2.3.2).
    a.wait_for("FLAGS (\\Flagged \\Recent)").await;
    b.cmd("st2", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    b.cmd("x", "EXPUNGE").await;
    a.wait_for("* 1 EXPUNGE").await;
    a.send(b"DONE\r\n").await;
    let out = a.until_tagged("i").await;
    assert!(out.contains("i OK IDLE terminated"), "{out}");
}

#[tokio::test]
async fn oversize_literal_gets_toobig_and_the_connection_keeps_serving() {
    let cfg = ImapConfig {
        max_literal_size: 1000,
        ..loopback_cfg()
    };
    let (addr, _dir) = start(cfg).await;
    let (mut c, _) = Client::connect(addr).await;
    c.login().await;
    let out = c.cmd("a", "APPEND INBOX {5000}").await;
    assert_eq!(
        out,
        "a NO [TOOBIG] Message of 5000 octets exceeds the limit of 1000 octets\r\n"
    );
    let out = c.cmd("n", "NOOP").await;
    assert!(out.contains("n OK"), "{out}");
    // A non-synchronizing oversize literal cannot be skipped: BYE and close.
    c.send(b"b APPEND INBOX {5000+}\r\n").await;
    let l = c.line().await;
    assert!(l.starts_with("b BAD [TOOBIG]"), "{l}");
    let l = c.line().await;
    assert!(l.starts_with("* BYE [TOOBIG]"), "{l}");
}

#[tokio::test]
async fn login_without_tls_from_non_loopback_policy_is_refused() {
    let (addr, _dir) = start(ImapConfig::default()).await;
    let (mut c, greeting) = Client::connect(addr).await;
    assert!(greeting.contains("LOGINDISABLED"), "{greeting}");
    let out = c.cmd("l", &format!("LOGIN {USER} \"{PASSWORD}\"")).await;
    assert!(out.starts_with("l NO [PRIVACYREQUIRED]"), "{out}");
}

#[tokio::test]
async fn before_login_a_large_literal_is_refused_without_a_continuation() {
    let (addr, _dir) = start(loopback_cfg()).await;
    let (mut c, _) = Client::connect(addr).await;
    // Synchronizing: tagged BAD instead of `+`; the client sends nothing and may go on.
    let out = c.cmd("a", "APPEND INBOX {100000}").await;
    assert!(
        out.starts_with(
            "a BAD [TOOBIG] Literal of 100000 octets is too large before authentication"
        ),
        "{out}"
    );
    let out = c.cmd("b", "LOGIN {100000}").await;
    assert!(out.starts_with("b BAD [TOOBIG]"), "{out}");
    // Small literals (LOGIN with a literal password) still work, and after login APPEND does.
    c.send(format!("l LOGIN {USER} {{{}}}\r\n", PASSWORD.len()).as_bytes())
        .await;
    assert!(c.line().await.starts_with('+'));
    c.send(format!("{PASSWORD}\r\n").as_bytes()).await;
    assert!(c.until_tagged("l").await.contains("l OK"));
    let out = c
        .append("a2", "INBOX", &msg("after", &"x".repeat(20_000)))
        .await;
    assert!(out.contains("a2 OK"), "{out}");
    // Non-synchronizing before login: answered BAD, then the connection is closed.
    let (mut d, _) = Client::connect(addr).await;
    d.send(b"n APPEND INBOX {100000+}\r\n").await;
    assert!(d.line().await.starts_with("n BAD [TOOBIG]"));
    assert!(d.line().await.starts_with("* BYE [TOOBIG]"));
}

#[tokio::test]
async fn the_login_deadline_counts_from_the_connection_not_from_the_last_byte() {
    let cfg = ImapConfig {
        pre_auth_timeout: Duration::from_secs(1),
        ..loopback_cfg()
    };
    let (addr, _dir) = start(cfg).await;
    let (mut c, _) = Client::connect(addr).await;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    // A byte every 200 ms (never a whole command): before the fix each byte restarted the
    // 1 s timer, so the session stayed open as long as the bytes kept coming.
    let bye = loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no BYE 10 s after connecting"
        );
        let _ = c.w.write_all(b"x").await;
        match tokio::time::timeout(Duration::from_millis(200), c.r.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => break String::from_utf8_lossy(&buf[..n]).into_owned(),
            Ok(_) => panic!("closed without BYE"),
            Err(_) => {}
        }
    };
    assert!(bye.starts_with("* BYE Autologout"), "{bye}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn appends_share_the_literal_memory_budget_and_a_literal_beyond_it_is_refused() {
    let cfg = ImapConfig {
        max_literal_size: 100_000,
        literal_memory_budget: 0,
        literal_memory_wait: Duration::from_millis(300),
        ..loopback_cfg()
    };
    let (addr, _dir) = start(cfg).await;
    let (mut a, _) = Client::connect(addr).await;
    let (mut b, _) = Client::connect(addr).await;
    a.login().await;
    b.login().await;
    // The budget is one largest literal plus the command overhead (164 KB): a holds 100 KB.
    a.send(b"a1 APPEND INBOX {100000}\r\n").await;
    assert!(a.line().await.starts_with('+'));
    a.send(&[b'x'; 50_000]).await;
    let out = b.cmd("b1", "APPEND INBOX {90000}").await;
    assert_eq!(
        out,
        "b1 NO [UNAVAILABLE] Too much mail is being received right now; try again later\r\n"
    );
    a.send(&[b'x'; 50_000]).await;
    a.send(b"\r\n").await;
    assert!(a.until_tagged("a1").await.contains("a1 OK"));
    // Given back after the command: now it fits.
    let out = b
        .append("b2", "INBOX", &msg("fits", &"y".repeat(80_000)))
        .await;
    assert!(out.contains("b2 OK"), "{out}");
}
