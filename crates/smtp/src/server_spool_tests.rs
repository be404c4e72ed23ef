//! Store outages seen through a real `SmtpServer` socket: mail is spooled before `250`,
//! replayed once when the store is back; without room (or a spool) the answer is a clean
//! `451 4.3.0`; AUTH answers `454 4.7.0`.

use super::*;
use bulwark_auth::{ThrottleConfig, hash_password};
use bulwark_core::spool::{SpoolLimits, SpoolStatus};
use bulwark_store::outage::Outage as Switch;
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{NewAccount, Role};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Deadline for anything a test waits for (never a fixed sleep).
const DEADLINE: Duration = Duration::from_secs(20);
const POLL_PAUSE: Duration = Duration::from_millis(20);

struct Outage {
    _dir: tempfile::TempDir,
    inner: Arc<SqliteStore>,
    outage: Arc<Switch>,
    spool: Option<Arc<Spool>>,
    addr: SocketAddr,
    submission: SocketAddr,
}

impl Outage {
    /// A server on a switchable store with `alice@example.test`; with a spool of `limits`
    /// (its replay task running) unless `None`.
    async fn start(limits: Option<SpoolLimits>) -> Outage {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = SqliteStore::open(&dir.path().join("store")).expect("store");
        inner.domain_add("example.test").await.expect("domain");
        inner
            .account_create(NewAccount {
                address: "alice@example.test".into(),
                display_name: "Alice".into(),
                password_hash: hash_password("secret").expect("hash"),
            })
            .await
            .expect("account");
        let (store, outage) = inner.with_outage();
        let dyn_store: Arc<dyn Store> = store.clone();
        let auth = Arc::new(Authenticator::new(
            dyn_store.clone(),
            ThrottleConfig::default(),
        ));
        let cfg = SmtpConfig {
            hostname: "mx.example.test".into(),
            allow_plaintext_auth_on_loopback: true,
            ..Default::default()
        };
        let wakeup = Arc::new(Notify::new());
        let server = SmtpServer::new(cfg, dyn_store.clone(), auth, None, wakeup.clone());
        let spool = limits.map(|limits| {
            let spool = Spool::open(dir.path(), limits).expect("spool");
            spool.remember_domains(&["example.test".into()]);
            spool.spawn_replay(dyn_store.clone(), wakeup.clone());
            server.set_spool(spool.clone());
            spool
        });
        let mx = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = mx.local_addr().expect("addr");
        tokio::spawn(server.clone().run(mx, ListenerKind::Mx));
        let sub = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let submission = sub.local_addr().expect("addr");
        tokio::spawn(server.run(sub, ListenerKind::Submission));
        Outage {
            _dir: dir,
            inner,
            outage,
            spool,
            addr,
            submission,
        }
    }

    fn status(&self) -> SpoolStatus {
        self.spool.as_ref().expect("spool").status()
    }

    async fn inbox(&self) -> Vec<Vec<u8>> {
        let account = self
            .inner
            .account_by_address("alice@example.test")
            .await
            .expect("lookup")
            .expect("alice");
        let inbox = bulwark_core::mailbox_with_role(self.inner.as_ref(), account.id, Role::Inbox)
            .await
            .expect("inbox");
        let mut out = Vec::new();
        for m in self
            .inner
            .mailbox_messages(account.id, inbox)
            .await
            .expect("messages")
        {
            out.push(
                self.inner
                    .blob_get(&m.blob)
                    .await
                    .expect("blob")
                    .expect("present"),
            );
        }
        out
    }
}

struct Client {
    io: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut c = Client {
            io: BufReader::new(tcp),
        };
        assert!(c.reply().await.starts_with("220 "));
        c
    }

    /// One (possibly multi-line) reply; its last line.
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(DEADLINE, self.io.read_line(&mut line))
                .await
                .expect("reply in time")
                .expect("read");
            if n == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_string();
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("write");
        self.reply().await
    }

    /// MAIL, one RCPT, DATA; the final reply (or the first refusal).
    async fn send_mail(&mut self, rcpt: &str, message_id: &str) -> String {
        let mail = self.cmd("MAIL FROM:<sender@remote.test>").await;
        if !mail.starts_with("250") {
            return mail;
        }
        let rcpt = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        if !rcpt.starts_with("250") {
            let _ = self.cmd("RSET").await;
            return rcpt;
        }
        let data = self.cmd("DATA").await;
        assert!(data.starts_with("354"), "{data}");
        self.cmd(&format!(
            "Message-ID: <{message_id}>\r\nSubject: outage\r\n\r\nhello\r\n."
        ))
        .await
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

#[tokio::test]
async fn mail_accepted_during_a_store_outage_is_spooled_then_delivered_once() {
    let t = Outage::start(Some(SpoolLimits::default())).await;
    let mut c = Client::connect(t.addr).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    assert!(
        c.send_mail("alice@example.test", "before@x")
            .await
            .starts_with("250")
    );
    t.outage.set_down(true);
    for i in 0..3 {
        let reply = c
            .send_mail("alice+tag@example.test", &format!("during{i}@x"))
            .await;
        assert!(reply.starts_with("250 "), "{reply}");
    }
    assert_eq!(t.status().messages, 3, "spooled before 250");
    assert!(t.status().degraded);
    t.outage.set_down(false);
    wait_until("spool drained", || !t.status().degraded).await;
    let inbox = t.inbox().await;
    assert_eq!(inbox.len(), 4);
    for i in 0..3 {
        let id = format!("Message-ID: <during{i}@x>");
        let copies = inbox
            .iter()
            .filter(|m| String::from_utf8_lossy(m).contains(&id))
            .count();
        assert_eq!(copies, 1, "{id}");
    }
    let replayed = String::from_utf8_lossy(&inbox[3]).to_string();
    assert!(
        replayed.starts_with("Return-Path: <sender@remote.test>\r\nReceived: "),
        "{replayed}"
    );
}

#[tokio::test]
async fn a_full_spool_answers_451_and_keeps_the_client_retrying() {
    let t = Outage::start(Some(SpoolLimits {
        max_bytes: 1_000_000,
        max_messages: 0,
    }))
    .await;
    t.outage.set_down(true);
    let mut c = Client::connect(t.addr).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    let reply = c.send_mail("alice@example.test", "full@x").await;
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
    assert_eq!(t.status().messages, 0);
}

#[tokio::test]
async fn without_a_spool_an_outage_is_a_temporary_451_not_a_hang() {
    let t = Outage::start(None).await;
    t.outage.set_down(true);
    let mut c = Client::connect(t.addr).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    let reply = c.send_mail("alice@example.test", "nospool@x").await;
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
}

#[tokio::test]
async fn unknown_domains_during_an_outage_are_not_relayed_for_strangers() {
    let t = Outage::start(Some(SpoolLimits::default())).await;
    t.outage.set_down(true);
    let mut c = Client::connect(t.addr).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    let reply = c.send_mail("someone@elsewhere.test", "relay@x").await;
    assert!(
        reply.starts_with("554") || reply.starts_with("550"),
        "{reply}"
    );
    assert_eq!(t.status().messages, 0);
}

#[tokio::test]
async fn auth_during_a_store_outage_is_a_temporary_454() {
    let t = Outage::start(Some(SpoolLimits::default())).await;
    t.outage.set_down(true);
    let mut c = Client::connect(t.submission).await;
    assert!(c.cmd("EHLO client.test").await.starts_with("250"));
    // AUTH PLAIN "\0alice@example.test\0secret"
    let reply = c
        .cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")
        .await;
    assert!(reply.starts_with("454 4.7.0"), "{reply}");
}
