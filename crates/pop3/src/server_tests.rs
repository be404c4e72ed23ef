//! Socket tests: a real server on 127.0.0.1:0 over a real SQLite store.

use super::*;
use bulwark_auth::{ThrottleConfig, hash_password};
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{MailboxId, NewAccount, NewEmail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const USER: &str = "alice@example.test";
const PASSWORD: &str = "correct horse";
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

    async fn line(&mut self) -> String {
        let mut line = Vec::new();
        tokio::time::timeout(READ_DEADLINE, self.r.read_until(b'\n', &mut line))
            .await
            .expect("response within the deadline")
            .expect("read");
        String::from_utf8_lossy(&line).into_owned()
    }

    /// One command, one status line.
    async fn cmd(&mut self, text: &str) -> String {
        self.w
            .write_all(format!("{text}\r\n").as_bytes())
            .await
            .expect("write");
        self.line().await
    }

    /// A multi-line response after its status line, unstuffed.
    async fn body(&mut self) -> Vec<u8> {
        let mut wire = Vec::new();
        loop {
            let l = self.line().await;
            wire.extend_from_slice(l.as_bytes());
            if l == ".\r\n" {
                return crate::stuff::unstuff(&wire).expect("well-formed multi-line response");
            }
        }
    }

    async fn login(addr: SocketAddr) -> Client {
        let (mut c, g) = Client::connect(addr).await;
        assert!(g.starts_with("+OK"), "{g}");
        assert!(c.cmd(&format!("USER {USER}")).await.starts_with("+OK"));
        let r = c.cmd(&format!("PASS {PASSWORD}")).await;
        assert!(r.starts_with("+OK Logged in"), "{r}");
        c
    }

    /// True when the server closed the connection (EOF).
    async fn closed(&mut self) -> bool {
        let mut line = Vec::new();
        matches!(
            tokio::time::timeout(READ_DEADLINE, self.r.read_until(b'\n', &mut line)).await,
            Ok(Ok(0))
        )
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    addr: SocketAddr,
    account: AccountId,
    inbox: MailboxId,
}

fn message(i: usize) -> Vec<u8> {
    format!(
        "From: bob@example.org\r\nTo: {USER}\r\nSubject: msg-{i}\r\n\r\nline one\r\n.dotted {i}\r\n"
    )
    .into_bytes()
}

async fn start(messages: usize, cfg: Pop3Config) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open store");
    store.domain_add("example.test").await.expect("domain");
    let account = store
        .account_create(NewAccount {
            address: USER.into(),
            display_name: "Alice".into(),
            password_hash: hash_password(PASSWORD).expect("hash"),
        })
        .await
        .expect("account")
        .id;
    let inbox = store
        .mailbox_list(account)
        .await
        .expect("list")
        .into_iter()
        .find(|m| m.role == Some(Role::Inbox))
        .expect("inbox")
        .id;
    let emails: Vec<NewEmail> = (1..=messages)
        .map(|i| NewEmail {
            mailboxes: vec![inbox],
            summary: bulwark_core::summarize(&message(i)),
            raw: Arc::new(message(i)),
            keywords: vec![],
            received_at: 1_700_000_000,
        })
        .collect();
    store.email_append(account, emails).await.expect("fill");
    let auth = Arc::new(Authenticator::new(store.clone(), ThrottleConfig::default()));
    let server = Pop3Server::new(cfg, store.clone(), auth, None);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server.run(listener, false));
    Fixture {
        _dir: dir,
        store,
        addr,
        account,
        inbox,
    }
}

fn loopback_cfg() -> Pop3Config {
    Pop3Config {
        allow_plaintext_auth_on_loopback: true,
        ..Pop3Config::default()
    }
}

impl Fixture {
    async fn inbox_uids(&self) -> Vec<u32> {
        self.store
            .mailbox_messages(self.account, self.inbox)
            .await
            .expect("messages")
            .iter()
            .map(|m| m.uid.0)
            .collect()
    }
}

#[tokio::test]
async fn retr_returns_the_stored_bytes_and_quit_expunges() {
    let f = start(3, loopback_cfg()).await;
    let mut c = Client::login(f.addr).await;
    assert_eq!(
        c.cmd("STAT").await,
        format!("+OK 3 {}\r\n", 3 * message(1).len())
    );
    let r = c.cmd("RETR 2").await;
    assert_eq!(r, format!("+OK {} octets\r\n", message(2).len()));
    assert_eq!(c.body().await, message(2));
    assert!(c.cmd("DELE 1").await.starts_with("+OK"));
    assert!(c.cmd("QUIT").await.contains("1 messages deleted"));
    assert!(c.closed().await);
    let metas = f
        .store
        .mailbox_messages(f.account, f.inbox)
        .await
        .expect("messages");
    assert_eq!(metas.len(), 2);
    // RETR marked message 2 as seen, at QUIT.
    let seen: Vec<bool> = metas
        .iter()
        .map(|m| m.keywords.iter().any(|k| k == "$seen"))
        .collect();
    assert_eq!(seen, vec![true, false]);
}

#[tokio::test]
async fn a_dropped_connection_deletes_nothing() {
    let f = start(2, loopback_cfg()).await;
    let before = f.inbox_uids().await;
    let mut c = Client::login(f.addr).await;
    assert!(c.cmd("DELE 1").await.starts_with("+OK"));
    assert!(c.cmd("DELE 2").await.starts_with("+OK"));
    drop(c);
    // A new session still sees both; its login proves the old one is gone or harmless.
    let mut c2 = Client::login(f.addr).await;
    assert_eq!(c2.cmd("STAT").await.split(' ').nth(1), Some("2"));
    assert_eq!(f.inbox_uids().await, before);
}

#[tokio::test]
async fn concurrent_sessions_each_keep_their_snapshot() {
    let f = start(2, loopback_cfg()).await;
    let mut a = Client::login(f.addr).await;
    let mut b = Client::login(f.addr).await;
    let uidl_a = {
        assert!(a.cmd("UIDL").await.starts_with("+OK"));
        a.body().await
    };
    // New mail during the sessions is not shown to them.
    f.store
        .email_append(
            f.account,
            vec![NewEmail {
                mailboxes: vec![f.inbox],
                summary: bulwark_core::summarize(&message(9)),
                raw: Arc::new(message(9)),
                keywords: vec![],
                received_at: 1_700_000_001,
            }],
        )
        .await
        .expect("append");
    assert!(b.cmd("DELE 1").await.starts_with("+OK"));
    assert!(b.cmd("QUIT").await.starts_with("+OK"));
    assert!(a.cmd("STAT").await.starts_with("+OK 2 "));
    // A deletes the message B already expunged: a no-op, still +OK.
    assert!(a.cmd("DELE 1").await.starts_with("+OK"));
    assert!(a.cmd("QUIT").await.starts_with("+OK"));
    assert_eq!(f.inbox_uids().await.len(), 2);
    // UIDL is stable across sessions: message 2 keeps its id, the new one gets a new one.
    let mut c = Client::login(f.addr).await;
    assert!(c.cmd("UIDL").await.starts_with("+OK"));
    let uidl_c = String::from_utf8_lossy(&c.body().await).into_owned();
    let second = String::from_utf8_lossy(&uidl_a)
        .lines()
        .nth(1)
        .and_then(|l| l.split(' ').nth(1))
        .map(str::to_string)
        .expect("uid of message 2");
    assert_eq!(
        uidl_c.lines().next().and_then(|l| l.split(' ').nth(1)),
        Some(second.as_str())
    );
    assert_eq!(uidl_c.lines().count(), 2);
}

#[tokio::test]
async fn plaintext_login_is_refused_without_the_loopback_exception() {
    let f = start(1, Pop3Config::default()).await;
    let (mut c, _) = Client::connect(f.addr).await;
    let capa = {
        assert!(c.cmd("CAPA").await.starts_with("+OK"));
        String::from_utf8_lossy(&c.body().await).into_owned()
    };
    assert!(!capa.contains("USER"), "{capa}");
    // No TLS configured here: STLS is neither offered nor possible.
    assert!(!capa.contains("STLS"), "{capa}");
    let r = c.cmd(&format!("USER {USER}")).await;
    assert_eq!(
        r,
        "-ERR Logging in without TLS is not allowed; use STLS first\r\n"
    );
}

#[tokio::test]
async fn wrong_password_is_refused_with_the_auth_code() {
    let f = start(1, loopback_cfg()).await;
    let (mut c, _) = Client::connect(f.addr).await;
    c.cmd(&format!("USER {USER}")).await;
    let r = c.cmd("PASS nope").await;
    assert!(
        r.starts_with("-ERR [AUTH] Invalid user name or password"),
        "{r}"
    );
}

#[tokio::test]
async fn connections_per_ip_are_limited() {
    let cfg = Pop3Config {
        max_connections_per_ip: 1,
        ..loopback_cfg()
    };
    let f = start(0, cfg).await;
    let (_first, g) = Client::connect(f.addr).await;
    assert!(g.starts_with("+OK"));
    let (mut second, g) = Client::connect(f.addr).await;
    assert!(g.starts_with("-ERR [SYS/TEMP] Too many connections"), "{g}");
    assert!(second.closed().await);
}

#[tokio::test]
async fn idle_clients_are_logged_out() {
    let cfg = Pop3Config {
        idle_timeout: Duration::from_millis(300),
        ..loopback_cfg()
    };
    let f = start(0, cfg).await;
    let (mut c, _) = Client::connect(f.addr).await;
    assert_eq!(c.line().await, "-ERR Autologout; idle for too long\r\n");
    assert!(c.closed().await);
}

#[tokio::test]
async fn drain_ends_sessions_without_update() {
    let f = start(1, loopback_cfg()).await;
    let (tx, rx) = watch::channel(false);
    let auth = Arc::new(Authenticator::new(
        f.store.clone(),
        ThrottleConfig::default(),
    ));
    let server = Pop3Server::new(loopback_cfg(), f.store.clone(), auth, None);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server.clone().run_until(listener, false, rx));
    let mut c = Client::login(addr).await;
    assert!(c.cmd("DELE 1").await.starts_with("+OK"));
    tx.send(true).expect("drain");
    assert!(
        c.line()
            .await
            .starts_with("-ERR [SYS/TEMP] Server shutting down")
    );
    assert!(c.closed().await);
    assert_eq!(f.inbox_uids().await.len(), 1);
}

#[test]
fn token_bucket_slows_down_after_the_burst() {
    let t = Instant::now();
    let mut b = TokenBucket::new(10, t);
    assert_eq!(b.spend(COMMAND_BURST, t), None);
    let wait = b.spend(1, t).expect("must wait");
    assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
    assert_eq!(b.spend(1, t + Duration::from_secs(1)), None);
}
