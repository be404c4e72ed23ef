//! Socket tests: a real `SmtpServer` on 127.0.0.1:0 with a temporary SQLite store, driven by a
//! raw TCP client (and tokio-rustls for TLS).

use super::*;
use bulwark_auth::{ThrottleConfig, hash_password};
use bulwark_net::client_config_insecure;
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{NewAccount, Role};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// Deadline for anything a test waits for (never a fixed sleep).
const DEADLINE: Duration = Duration::from_secs(20);

struct TestServer {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    wakeup: Arc<Notify>,
    addrs: Vec<(ListenerKind, SocketAddr)>,
    server: Arc<SmtpServer>,
}

impl TestServer {
    async fn start(adjust: impl FnOnce(&mut SmtpConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.domain_add("example.test").await.unwrap();
        for user in ["alice", "bob"] {
            store
                .account_create(NewAccount {
                    address: format!("{user}@example.test"),
                    display_name: user.into(),
                    password_hash: hash_password("secret").unwrap(),
                })
                .await
                .unwrap();
        }
        let tls = bulwark_net::load_tls(&Default::default(), dir.path(), "localhost").unwrap();
        let mut cfg = SmtpConfig {
            hostname: "mx.example.test".into(),
            ..Default::default()
        };
        adjust(&mut cfg);
        let dyn_store: Arc<dyn Store> = store.clone();
        let auth = Arc::new(Authenticator::new(
            dyn_store.clone(),
            ThrottleConfig::default(),
        ));
        let wakeup = Arc::new(Notify::new());
        let server = SmtpServer::new(
            cfg,
            dyn_store,
            auth,
            Some(TlsAcceptor::from(tls)),
            wakeup.clone(),
        );
        let mut addrs = Vec::new();
        for kind in [
            ListenerKind::Mx,
            ListenerKind::Submission,
            ListenerKind::Submissions,
        ] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push((kind, listener.local_addr().unwrap()));
            tokio::spawn(server.clone().run(listener, kind));
        }
        TestServer {
            _dir: dir,
            store,
            wakeup,
            addrs,
            server,
        }
    }

    fn addr(&self, kind: ListenerKind) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, a)| *a)
            .unwrap()
    }

    async fn connect(&self, kind: ListenerKind) -> Client {
        let tcp = TcpStream::connect(self.addr(kind)).await.unwrap();
        let stream: BoxedStream = if kind == ListenerKind::Submissions {
            tls_connect(Box::new(tcp)).await
        } else {
            Box::new(tcp)
        };
        let mut c = Client {
            io: BufReader::new(stream),
        };
        assert!(c.reply().await.starts_with("220 "));
        c
    }

    async fn inbox(&self, address: &str) -> Vec<Vec<u8>> {
        let account = self
            .store
            .account_by_address(address)
            .await
            .unwrap()
            .unwrap();
        let inbox = bulwark_core::mailbox_with_role(self.store.as_ref(), account.id, Role::Inbox)
            .await
            .unwrap();
        let mut out = Vec::new();
        for m in self
            .store
            .mailbox_messages(account.id, inbox)
            .await
            .unwrap()
        {
            out.push(self.store.blob_get(&m.blob).await.unwrap().unwrap());
        }
        out
    }
}

async fn tls_connect(stream: BoxedStream) -> BoxedStream {
    let connector = TlsConnector::from(client_config_insecure());
    let name = ServerName::try_from("localhost").unwrap();
    Box::new(
        tokio::time::timeout(DEADLINE, connector.connect(name, stream))
            .await
            .unwrap()
            .unwrap(),
    )
}

struct Client {
    io: BufReader<BoxedStream>,
}

impl Client {
    /// Reads one (possibly multi-line) reply and returns it joined by '\n'.
    async fn reply(&mut self) -> String {
        let mut all = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(DEADLINE, self.io.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            if n == 0 {
                return all.join("\n");
            }
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            all.push(line);
            if last {
                return all.join("\n");
            }
        }
    }

    async fn send(&mut self, data: &[u8]) {
        self.io.get_mut().write_all(data).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    async fn starttls(self) -> Client {
        Client {
            io: BufReader::new(tls_connect(self.io.into_inner()).await),
        }
    }

    /// True when the server closed the connection.
    async fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(DEADLINE, self.io.read_line(&mut line)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

fn code(reply: &str) -> &str {
    let last = reply.rsplit('\n').next().unwrap_or_default();
    last.get(..9).unwrap_or(last)
}

#[tokio::test]
async fn inbound_mail_lands_in_inbox_once_with_received_and_return_path() {
    let t = TestServer::start(|_| {}).await;
    let mut c = t.connect(ListenerKind::Mx).await;
    let ehlo = c.cmd("EHLO client.test").await;
    for ext in [
        "PIPELINING",
        "SIZE ",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "CHUNKING",
    ] {
        assert!(ehlo.contains(ext), "{ext} in {ehlo}");
    }
    assert!(!ehlo.contains("AUTH"));
    assert_eq!(
        code(&c.cmd("MAIL FROM:<sender@remote.test>").await),
        "250 2.1.0"
    );
    assert_eq!(
        code(&c.cmd("RCPT TO:<Alice+tag@example.test>").await),
        "250 2.1.5"
    );
    assert_eq!(&c.cmd("DATA").await[..3], "354");
    c.send(b"Subject: hello\r\nMessage-ID: <m1@remote.test>\r\n\r\nHi Alice\r\n.\r\n")
        .await;
    let queued = c.reply().await;
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    assert_eq!(code(&c.cmd("QUIT").await), "221 2.0.0");

    let inbox = t.inbox("alice@example.test").await;
    assert_eq!(inbox.len(), 1);
    let msg = String::from_utf8_lossy(&inbox[0]);
    assert!(
        msg.starts_with(
            "Return-Path: <sender@remote.test>\r\nReceived: from client.test ([127.0.0.1])"
        ),
        "{msg}"
    );
    assert!(msg.contains("by mx.example.test (Bulwark) with ESMTP id "));
    assert!(msg.contains("for <Alice+tag@example.test>;"));
    assert!(msg.ends_with("\r\n\r\nHi Alice\r\n"));
    assert!(t.inbox("bob@example.test").await.is_empty());
}

#[tokio::test]
async fn unknown_user_gets_550_and_relay_gets_554_on_mx() {
    let t = TestServer::start(|_| {}).await;
    let mut c = t.connect(ListenerKind::Mx).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<sender@remote.test>").await;
    assert_eq!(
        code(&c.cmd("RCPT TO:<nobody@example.test>").await),
        "550 5.1.1"
    );
    assert_eq!(
        code(&c.cmd("RCPT TO:<someone@elsewhere.test>").await),
        "554 5.7.1"
    );
    assert_eq!(
        code(
            &c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")
                .await
        ),
        "503 5.5.1"
    );
    assert_eq!(code(&c.cmd("DATA").await), "554 5.5.1");
}

#[tokio::test]
async fn submission_requires_starttls_then_auth_and_queues_remote_mail() {
    let t = TestServer::start(|_| {}).await;
    let mut c = t.connect(ListenerKind::Submission).await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"));
    assert_eq!(
        code(
            &c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")
                .await
        ),
        "530 5.7.0"
    );
    assert_eq!(
        code(&c.cmd("MAIL FROM:<alice@example.test>").await),
        "530 5.7.0"
    );
    assert_eq!(code(&c.cmd("STARTTLS").await), "220 2.0.0");
    let mut c = c.starttls().await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"));
    assert_eq!(
        code(&c.cmd("MAIL FROM:<alice@example.test>").await),
        "530 5.7.0"
    );
    // base64("\0alice@example.test\0wrong")
    assert_eq!(
        code(
            &c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==")
                .await
        ),
        "535 5.7.8"
    );
    assert_eq!(
        code(
            &c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")
                .await
        ),
        "235 2.7.0"
    );
    assert_eq!(
        code(&c.cmd("MAIL FROM:<bob@example.test>").await),
        "553 5.7.1"
    );
    assert_eq!(
        code(&c.cmd("MAIL FROM:<alice@example.test>").await),
        "250 2.1.0"
    );
    assert_eq!(
        code(&c.cmd("RCPT TO:<carol@remote.test>").await),
        "250 2.1.5"
    );
    assert_eq!(
        code(&c.cmd("RCPT TO:<bob@example.test>").await),
        "250 2.1.5"
    );
    let notified = t.wakeup.notified();
    assert_eq!(&c.cmd("DATA").await[..3], "354");
    c.send(b"From: alice@example.test\r\nSubject: out\r\n\r\nto carol and bob\r\n.\r\n")
        .await;
    assert_eq!(code(&c.reply().await), "250 2.0.0");
    tokio::time::timeout(DEADLINE, notified)
        .await
        .expect("queue worker woken");

    let queue = t.store.queue_list().await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].sender, "alice@example.test");
    assert_eq!(queue[0].recipients.len(), 1);
    assert_eq!(queue[0].recipients[0].address, "carol@remote.test");
    let raw = t.store.blob_get(&queue[0].blob).await.unwrap().unwrap();
    let raw = String::from_utf8_lossy(&raw);
    assert!(
        raw.starts_with("Received: ")
            && raw.contains("with ESMTPSA")
            && !raw.contains("Return-Path")
    );
    // The local recipient got it directly; nothing went to alice's Sent.
    assert_eq!(t.inbox("bob@example.test").await.len(), 1);
    let alice = t
        .store
        .account_by_address("alice@example.test")
        .await
        .unwrap()
        .unwrap();
    let sent = bulwark_core::mailbox_with_role(t.store.as_ref(), alice.id, Role::Sent)
        .await
        .unwrap();
    assert!(
        t.store
            .mailbox_messages(alice.id, sent)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn implicit_tls_submission_with_auth_login_delivers_locally() {
    let t = TestServer::start(|_| {}).await;
    let mut c = t.connect(ListenerKind::Submissions).await;
    assert!(c.cmd("EHLO client.test").await.contains("AUTH PLAIN LOGIN"));
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    assert_eq!(c.cmd("YWxpY2VAZXhhbXBsZS50ZXN0").await, "334 UGFzc3dvcmQ6");
    assert_eq!(code(&c.cmd("c2VjcmV0").await), "235 2.7.0");
    // Pipelined transaction with BDAT.
    c.send(b"MAIL FROM:<alice+x@example.test>\r\nRCPT TO:<bob@example.test>\r\nBDAT 42 LAST\r\nFrom: alice+x@example.test\r\nSubject: b\r\n\r\n").await;
    assert_eq!(code(&c.reply().await), "250 2.1.0");
    assert_eq!(code(&c.reply().await), "250 2.1.5");
    assert_eq!(code(&c.reply().await), "250 2.0.0");
    let inbox = t.inbox("bob@example.test").await;
    assert_eq!(inbox.len(), 1);
    assert!(String::from_utf8_lossy(&inbox[0]).contains("with ESMTPSA id"));
}

#[tokio::test]
async fn server_serves_the_next_client_after_garbage() {
    let t = TestServer::start(|_| {}).await;
    let mut c = t.connect(ListenerKind::Mx).await;
    c.send(b"\x00\xff\xfe garbage\r\n").await;
    assert_eq!(code(&c.reply().await), "500 5.5.2");
    c.send(&vec![b'A'; 20_000]).await;
    c.send(b"\r\n").await;
    assert_eq!(code(&c.reply().await), "500 5.5.2");
    c.send(&b"NONSENSE\r\n".repeat(30)).await;
    let mut last = String::new();
    while !last.starts_with("421") {
        last = c.reply().await;
        assert!(!last.is_empty(), "closed without 421");
    }
    assert!(c.closed().await);

    let mut c = t.connect(ListenerKind::Mx).await;
    assert!(
        c.cmd("EHLO ok.test")
            .await
            .starts_with("250-mx.example.test Hello ok.test")
    );
    assert_eq!(code(&c.cmd("NOOP").await), "250 2.0.0");
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_get_421() {
    let t = TestServer::start(|c| c.max_connections_per_ip = 1).await;
    let _first = t.connect(ListenerKind::Mx).await;
    let tcp = TcpStream::connect(t.addr(ListenerKind::Mx)).await.unwrap();
    let mut second = Client {
        io: BufReader::new(Box::new(tcp)),
    };
    assert_eq!(code(&second.reply().await), "421 4.7.0");
    assert!(second.closed().await);
}

#[tokio::test]
async fn idle_client_gets_421_and_is_disconnected() {
    let t = TestServer::start(|c| c.idle_timeout = Duration::from_millis(200)).await;
    let mut c = t.connect(ListenerKind::Mx).await;
    assert_eq!(code(&c.reply().await), "421 4.4.2");
    assert!(c.closed().await);
}

#[tokio::test]
async fn oversized_message_is_refused_with_552_and_nothing_is_stored() {
    let t = TestServer::start(|c| c.max_message_size = 10_000).await;
    let mut c = t.connect(ListenerKind::Mx).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        code(&c.cmd("MAIL FROM:<s@remote.test> SIZE=20000").await),
        "552 5.3.4"
    );
    c.cmd("MAIL FROM:<s@remote.test>").await;
    c.cmd("RCPT TO:<alice@example.test>").await;
    c.cmd("DATA").await;
    let line = format!("{}\r\n", "x".repeat(998));
    for _ in 0..100 {
        c.send(line.as_bytes()).await;
    }
    c.send(b".\r\n").await;
    assert_eq!(code(&c.reply().await), "552 5.3.4");
    assert_eq!(code(&c.cmd("NOOP").await), "250 2.0.0");
    assert!(t.inbox("alice@example.test").await.is_empty());
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_discarded() {
    let t = TestServer::start(|_| {}).await;
    let mut c = t.connect(ListenerKind::Mx).await;
    c.cmd("EHLO client.test").await;
    // RFC 3207 §4.2 / CVE-2011-0411: the injected RSET must not be answered inside TLS.
    c.send(b"STARTTLS\r\nRSET\r\n").await;
    assert_eq!(code(&c.reply().await), "220 2.0.0");
    let mut c = c.starttls().await;
    assert_eq!(code(&c.cmd("NOOP").await), "250 2.0.0");
    assert!(
        c.cmd("EHLO client.test")
            .await
            .starts_with("250-mx.example.test")
    );
    assert_eq!(code(&c.cmd("MAIL FROM:<s@remote.test>").await), "250 2.1.0");
}

#[tokio::test]
async fn smuggled_second_message_is_refused_and_nothing_is_stored() {
    let t = TestServer::start(|_| {}).await;
    let mut c = t.connect(ListenerKind::Mx).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<s@remote.test>").await;
    c.cmd("RCPT TO:<alice@example.test>").await;
    c.cmd("DATA").await;
    c.send(
        b"Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\n\
          DATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\n",
    )
    .await;
    assert_eq!(code(&c.reply().await), "554 5.6.0");
    assert_eq!(code(&c.cmd("NOOP").await), "250 2.0.0");
    assert!(t.inbox("alice@example.test").await.is_empty());
    assert!(t.inbox("bob@example.test").await.is_empty());
}

/// A hook of the delivery pipeline that refuses (e.g. over quota, a filter's reject) turns
/// into a permanent `554 5.7.1` after DATA, and nothing is stored.
#[tokio::test]
async fn a_permanent_refusal_by_the_pipeline_is_554_after_data() {
    struct Full;
    #[bulwark_core::async_trait]
    impl bulwark_core::DeliveryHook for Full {
        async fn check(
            &self,
            _account: bulwark_store::AccountId,
            _message: &bulwark_core::Message,
        ) -> Option<bulwark_core::Refusal> {
            Some(bulwark_core::Refusal::Permanent("mailbox full".into()))
        }
    }
    let t = TestServer::start(|_| {}).await;
    let pipeline = bulwark_core::Pipeline::new(t.store.clone(), t.wakeup.clone(), 3600);
    pipeline.add_hook(Arc::new(Full));
    t.server.set_pipeline(pipeline);
    let mut c = t.connect(ListenerKind::Mx).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<sender@remote.test>").await;
    assert_eq!(
        code(&c.cmd("RCPT TO:<alice@example.test>").await),
        "250 2.1.5"
    );
    assert_eq!(&c.cmd("DATA").await[..3], "354");
    c.send(b"Subject: big\r\n\r\nHi\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(
        reply.starts_with("554 5.7.1 Message refused: mailbox full"),
        "{reply}"
    );
    assert!(t.inbox("alice@example.test").await.is_empty());
}

/// Refuses bob's copy (e.g. his mailbox is full); everyone else's passes.
struct RefuseBob(bulwark_store::AccountId);
#[bulwark_core::async_trait]
impl bulwark_core::DeliveryHook for RefuseBob {
    async fn check(
        &self,
        account: bulwark_store::AccountId,
        _message: &bulwark_core::Message,
    ) -> Option<bulwark_core::Refusal> {
        (account == self.0).then(|| bulwark_core::Refusal::Permanent("mailbox full".into()))
    }
}

/// A server whose pipeline refuses bob; then one message from `sender` to alice and bob.
async fn send_to_alice_and_refused_bob(sender: &str) -> TestServer {
    let t = TestServer::start(|_| {}).await;
    let bob = t
        .store
        .account_by_address("bob@example.test")
        .await
        .unwrap()
        .unwrap()
        .id;
    let pipeline = bulwark_core::Pipeline::new(t.store.clone(), t.wakeup.clone(), 3600);
    pipeline.add_hook(Arc::new(RefuseBob(bob)));
    t.server.set_pipeline(pipeline);
    let mut c = t.connect(ListenerKind::Mx).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        code(&c.cmd(&format!("MAIL FROM:<{sender}>")).await),
        "250 2.1.0"
    );
    for rcpt in ["alice@example.test", "bob@example.test"] {
        assert_eq!(
            code(&c.cmd(&format!("RCPT TO:<{rcpt}>")).await),
            "250 2.1.5"
        );
    }
    assert_eq!(&c.cmd("DATA").await[..3], "354");
    c.send(b"Subject: for both\r\nMessage-ID: <both@remote.test>\r\n\r\nHi\r\n.\r\n")
        .await;
    assert_eq!(code(&c.reply().await), "250 2.0.0", "alice took it");
    t
}

/// RFC 5321 §3.7, §4.2.5: after `250` for the transaction, a recipient the pipeline refused
/// is reported to the sender by an RFC 3464 bounce from the null reverse-path.
#[tokio::test]
async fn a_recipient_refused_after_data_is_bounced_to_the_sender() {
    let t = send_to_alice_and_refused_bob("sender@remote.test").await;
    assert_eq!(t.inbox("alice@example.test").await.len(), 1);
    assert!(t.inbox("bob@example.test").await.is_empty());
    let queued = t.store.queue_list().await.unwrap();
    assert_eq!(
        queued.len(),
        1,
        "the bounce is queued for the remote sender"
    );
    assert_eq!(queued[0].sender, "", "bounces use the null reverse-path");
    assert_eq!(queued[0].recipients.len(), 1);
    assert_eq!(queued[0].recipients[0].address, "sender@remote.test");
    let raw = t.store.blob_get(&queued[0].blob).await.unwrap().unwrap();
    let dsn = String::from_utf8_lossy(&raw);
    assert!(dsn.contains("report-type=delivery-status"), "{dsn}");
    assert!(dsn.contains("To: <sender@remote.test>\r\n"));
    assert!(dsn.contains(
        "Final-Recipient: rfc822; bob@example.test\r\nAction: failed\r\nStatus: 5.7.1\r\n"
    ));
    assert!(dsn.contains("Diagnostic-Code: smtp; 554 5.7.1 Message refused: mailbox full"));
    assert!(
        !dsn.contains("Final-Recipient: rfc822; alice@example.test"),
        "delivered recipients are not reported"
    );
    assert!(
        dsn.contains("Message-ID: <both@remote.test>"),
        "the original headers are returned"
    );
}

/// RFC 5321 §6.1: refusals for a message from the null reverse-path are not bounced.
#[tokio::test]
async fn refused_recipients_of_a_bounce_are_not_bounced() {
    let t = send_to_alice_and_refused_bob("").await;
    assert_eq!(t.inbox("alice@example.test").await.len(), 1);
    assert!(t.store.queue_list().await.unwrap().is_empty());
}

/// One message over the MX: `MAIL FROM:<sender>`, one `RCPT TO` line, `body`.
async fn send_on_mx(t: &TestServer, sender: &str, rcpt: &str, body: &str) -> String {
    let mut c = t.connect(ListenerKind::Mx).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        code(&c.cmd(&format!("MAIL FROM:<{sender}>")).await),
        "250 2.1.0"
    );
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    if !r.starts_with("250") {
        return r;
    }
    assert_eq!(&c.cmd("DATA").await[..3], "354");
    c.send(format!("{body}\r\n.\r\n").as_bytes()).await;
    c.reply().await
}

#[tokio::test]
async fn postmaster_without_a_domain_and_of_a_local_domain_is_always_accepted() {
    let t = TestServer::start(|_| {}).await;
    // No postmaster account or alias: the oldest account of the primary domain gets it.
    let r = send_on_mx(&t, "x@remote.test", "Postmaster", "Subject: pm1\r\n\r\nhi").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let r = send_on_mx(
        &t,
        "x@remote.test",
        "postmaster@example.test",
        "Subject: pm2\r\n\r\nhi",
    )
    .await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let inbox = t.inbox("alice@example.test").await;
    assert_eq!(inbox.len(), 2);
    assert!(String::from_utf8_lossy(&inbox[0]).contains("for <postmaster@example.test>;"));
    // An alias named postmaster wins.
    let bob = t
        .store
        .account_by_address("bob@example.test")
        .await
        .unwrap()
        .unwrap();
    t.store
        .alias_add("postmaster@example.test", bob.id)
        .await
        .unwrap();
    let r = send_on_mx(&t, "x@remote.test", "postmaster", "Subject: pm3\r\n\r\nhi").await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(t.inbox("bob@example.test").await.len(), 1);
    let r = send_on_mx(
        &t,
        "x@remote.test",
        "postmaster@remote.test",
        "Subject: x\r\n\r\nhi",
    )
    .await;
    assert!(r.starts_with("554 5.7.1"), "not ours: {r}");
}

#[tokio::test]
async fn mx_mail_claiming_a_local_sender_is_marked_and_forged_results_removed() {
    let t = TestServer::start(|_| {}).await;
    let forged = "Authentication-Results: mx.example.test; dkim=pass header.d=example.test\r\n";
    let body = format!("{forged}From: Alice <alice@example.test>\r\nSubject: spoof\r\n\r\nhi");
    let r = send_on_mx(&t, "alice@example.test", "bob@example.test", &body).await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let body = "From: Alice <alice@example.test>\r\nSubject: header only\r\n\r\nhi";
    send_on_mx(&t, "someone@remote.test", "bob@example.test", body).await;
    let body = format!("{forged}From: Carol <carol@remote.test>\r\nSubject: remote\r\n\r\nhi");
    send_on_mx(&t, "carol@remote.test", "bob@example.test", &body).await;
    let inbox = t.inbox("bob@example.test").await;
    assert_eq!(inbox.len(), 3);
    let mark = "Authentication-Results: mx.example.test; auth=none; \
                x-bulwark=local-domain-unauthenticated\r\n";
    for (i, raw) in inbox.iter().enumerate() {
        let msg = String::from_utf8_lossy(raw);
        assert!(!msg.contains("dkim=pass"), "forged results removed: {msg}");
        assert_eq!(msg.contains(mark), i < 2, "{msg}");
    }
    // Authenticated submission is not marked.
    let mut c = t.connect(ListenerKind::Submissions).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        code(
            &c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=")
                .await
        ),
        "235 2.7.0"
    );
    c.cmd("MAIL FROM:<alice@example.test>").await;
    c.cmd("RCPT TO:<bob@example.test>").await;
    c.cmd("DATA").await;
    c.send(b"From: alice@example.test\r\nSubject: real\r\n\r\nhi\r\n.\r\n")
        .await;
    assert!(c.reply().await.starts_with("250 2.0.0"));
    let inbox = t.inbox("bob@example.test").await;
    assert!(!String::from_utf8_lossy(&inbox[3]).contains("Authentication-Results"));
}
