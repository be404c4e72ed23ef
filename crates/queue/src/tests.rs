//! Socket-level tests: the worker against an SMTP sink (and a DNS server) on 127.0.0.1,
//! with a real SQLite store in a temp dir.

use crate::testkit::{Rr, Sink, SinkTls, start_dns};
use crate::{QueueConfig, QueueWorker};
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{AccountId, NewAccount, NewQueued, QueueId, RcptStatus, Store, now_unix};
use std::net::{Ipv4Addr, SocketAddr};

const BACKUP_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

const MESSAGE: &[u8] = b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: hello\r\n\
Message-ID: <m1@example.test>\r\n\r\nHello Bob.\r\n.a line with a leading dot\r\n";

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    alice: AccountId,
}

async fn env() -> Env {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("open store");
    store.domain_add("example.test").await.expect("domain");
    let alice = store
        .account_create(NewAccount {
            address: "alice@example.test".into(),
            display_name: "Alice".into(),
            password_hash: "x".into(),
        })
        .await
        .expect("account")
        .id;
    Env {
        _dir: dir,
        store,
        alice,
    }
}

fn config(relay: Option<String>) -> QueueConfig {
    QueueConfig {
        hostname: "mx.example.test".into(),
        relay,
        connect_timeout: Duration::from_secs(5),
        command_timeout: Duration::from_secs(10),
        ..QueueConfig::default()
    }
}

fn worker(env: &Env, cfg: QueueConfig) -> Arc<QueueWorker> {
    QueueWorker::new(cfg, env.store.clone(), Arc::new(Notify::new()))
}

async fn enqueue(env: &Env, sender: &str, rcpts: &[&str], expires_in: i64) -> QueueId {
    env.store
        .queue_enqueue(NewQueued {
            sender: sender.into(),
            recipients: rcpts.iter().map(|r| r.to_string()).collect(),
            raw: Arc::new(MESSAGE.to_vec()),
            expires_at: now_unix() + expires_in,
        })
        .await
        .expect("enqueue")
}

/// The raw messages in the account's INBOX.
async fn inbox(env: &Env, account: AccountId) -> Vec<String> {
    let store: &dyn Store = &*env.store;
    let inbox = bulwark_core::inbox_of(store, account).await.expect("inbox");
    let mut out = Vec::new();
    for meta in store
        .mailbox_messages(account, inbox)
        .await
        .expect("messages")
    {
        let raw = store
            .blob_get(&meta.blob)
            .await
            .expect("blob")
            .expect("blob exists");
        out.push(String::from_utf8_lossy(&raw).into_owned());
    }
    out
}

#[tokio::test]
async fn delivered_message_reaches_the_relay_once_and_leaves_the_queue() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    let id = enqueue(
        &env,
        "alice@example.test",
        &["bob@remote.test", "carol@other.test"],
        3600,
    )
    .await;
    let w = worker(&env, config(Some(sink.addr.to_string())));
    assert_eq!(w.run_once().await, 1);
    let got = sink.transactions();
    assert_eq!(
        got.len(),
        1,
        "one transaction for both recipients through the relay"
    );
    assert_eq!(got[0].mail_from, "alice@example.test");
    assert_eq!(
        got[0].rcpts,
        vec![
            "bob@remote.test".to_string(),
            "carol@other.test".to_string()
        ]
    );
    assert_eq!(
        got[0].data, MESSAGE,
        "the message arrives byte for byte (dot-stuffing undone)"
    );
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
    assert_eq!(w.run_once().await, 0, "nothing left to do");
    assert_eq!(sink.transactions().len(), 1);
    assert!(inbox(&env, env.alice).await.is_empty(), "no bounce");
}

#[tokio::test]
async fn transient_failure_is_retried_with_backoff_then_delivered() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    sink.script("bob@remote.test", &["450 4.2.1 mailbox busy"]);
    let id = enqueue(&env, "alice@example.test", &["bob@remote.test"], 3600).await;
    let w = worker(&env, config(Some(sink.addr.to_string())));
    let before = now_unix();
    assert_eq!(w.run_once().await, 1);
    let entry = env
        .store
        .queue_get(id)
        .await
        .expect("get")
        .expect("still queued");
    assert_eq!(entry.attempts, 1);
    assert_eq!(entry.recipients[0].status, RcptStatus::Pending);
    let error = entry.recipients[0].last_error.clone().unwrap_or_default();
    assert!(error.starts_with("450 4.2.1 mailbox busy"), "{error}");
    // First retry after retry_base (60 s) plus at most 10 % jitter.
    assert!(
        entry.next_attempt >= before + 60 && entry.next_attempt <= now_unix() + 66,
        "{}",
        entry.next_attempt
    );
    assert_eq!(entry.lease_owner, None, "the write-back releases the lease");
    assert_eq!(w.run_once().await, 0, "not due yet");
    assert!(sink.transactions().is_empty());

    env.store.queue_retry_now(id).await.expect("retry now");
    assert_eq!(w.run_once().await, 1);
    assert_eq!(sink.transactions().len(), 1);
    assert_eq!(sink.transactions()[0].data, MESSAGE);
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
}

#[tokio::test]
async fn permanent_failure_bounces_into_the_local_senders_inbox() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    sink.script("nobody@remote.test", &["550 5.1.1 no such user here"]);
    let id = enqueue(
        &env,
        "alice@example.test",
        &["nobody@remote.test", "bob@remote.test"],
        3600,
    )
    .await;
    let w = worker(&env, config(Some(sink.addr.to_string())));
    assert_eq!(w.run_once().await, 1);
    assert_eq!(sink.transactions().len(), 1);
    assert_eq!(
        sink.transactions()[0].rcpts,
        vec!["bob@remote.test".to_string()]
    );
    assert_eq!(
        env.store.queue_get(id).await.expect("get"),
        None,
        "all final and bounced"
    );
    let inbox = inbox(&env, env.alice).await;
    assert_eq!(inbox.len(), 1, "exactly one bounce");
    let dsn = &inbox[0];
    assert!(dsn.contains("From: Mail Delivery System <MAILER-DAEMON@mx.example.test>"));
    assert!(dsn.contains("report-type=delivery-status"));
    assert!(dsn.contains(
        "Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1"
    ));
    assert!(dsn.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user here"));
    assert!(!dsn.contains("Final-Recipient: rfc822; bob@remote.test"));
    assert!(
        dsn.contains("Message-ID: <m1@example.test>"),
        "original headers are returned"
    );
    assert!(
        env.store.queue_list().await.expect("list").is_empty(),
        "a local bounce is not queued"
    );
}

/// Records what the pipeline's hooks are shown; refuses with `refusal` if set.
struct SeenByHook {
    seen: std::sync::Mutex<Vec<(AccountId, String, Vec<u8>)>>,
    refusal: Option<bulwark_core::Refusal>,
}

#[bulwark_core::async_trait]
impl bulwark_core::DeliveryHook for SeenByHook {
    async fn check(
        &self,
        account: AccountId,
        message: &bulwark_core::Message,
    ) -> Option<bulwark_core::Refusal> {
        self.seen.lock().expect("seen").push((
            account,
            message.sender.clone(),
            message.local_raw.to_vec(),
        ));
        self.refusal.clone()
    }
}

fn pipeline_with_hook(
    env: &Env,
    refusal: Option<bulwark_core::Refusal>,
) -> (Arc<bulwark_core::Pipeline>, Arc<SeenByHook>) {
    let pipeline = bulwark_core::Pipeline::new(env.store.clone(), Arc::new(Notify::new()), 3600);
    let hook = Arc::new(SeenByHook {
        seen: std::sync::Mutex::new(Vec::new()),
        refusal,
    });
    pipeline.add_hook(hook.clone());
    (pipeline, hook)
}

#[tokio::test]
async fn a_bounce_to_a_local_sender_goes_through_the_pipelines_hooks() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    sink.script("nobody@remote.test", &["550 5.1.1 no such user here"]);
    let id = enqueue(&env, "alice@example.test", &["nobody@remote.test"], 3600).await;
    let (pipeline, hook) = pipeline_with_hook(&env, None);
    let w = QueueWorker::with_pipeline(config(Some(sink.addr.to_string())), pipeline);
    assert_eq!(w.run_once().await, 1);
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
    let seen = hook.seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 1, "the hook saw the bounce once");
    let (account, sender, raw) = &seen[0];
    assert_eq!(*account, env.alice);
    assert_eq!(sender, "", "a bounce has the null reverse-path");
    assert!(String::from_utf8_lossy(raw).contains("report-type=delivery-status"));
    assert_eq!(
        inbox(&env, env.alice).await.len(),
        1,
        "and it was delivered"
    );
}

#[tokio::test]
async fn a_bounce_refused_for_now_by_a_hook_is_retried_later() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    sink.script("nobody@remote.test", &["550 5.1.1 no such user here"]);
    let id = enqueue(&env, "alice@example.test", &["nobody@remote.test"], 3600).await;
    let busy = bulwark_core::Refusal::Temporary("scanner busy".into());
    let (pipeline, hook) = pipeline_with_hook(&env, Some(busy));
    let w = QueueWorker::with_pipeline(config(Some(sink.addr.to_string())), pipeline);
    assert_eq!(w.run_once().await, 1);
    assert_eq!(hook.seen.lock().expect("seen").len(), 1);
    assert!(inbox(&env, env.alice).await.is_empty());
    let entry = env.store.queue_get(id).await.expect("get").expect("kept");
    assert!(!entry.dsn_sent, "the bounce is still owed");
    assert!(entry.next_attempt > now_unix(), "and retried later");
}

#[tokio::test]
async fn expired_entry_bounces_with_delivery_time_expired() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    sink.script("bob@remote.test", &["451 4.3.0 try again later"]);
    let id = enqueue(&env, "alice@example.test", &["bob@remote.test"], -1).await;
    let w = worker(&env, config(Some(sink.addr.to_string())));
    assert_eq!(w.run_once().await, 1);
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
    let inbox = inbox(&env, env.alice).await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("Status: 4.4.7"), "{}", inbox[0]);
    assert!(inbox[0].contains("delivery time expired; last error: 451 4.3.0 try again later"));
    assert!(inbox[0].contains("Diagnostic-Code: smtp; 451 4.3.0 try again later"));
}

#[tokio::test]
async fn unreachable_relay_leaves_the_entry_pending_with_the_error() {
    let env = env().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let id = enqueue(&env, "alice@example.test", &["bob@remote.test"], 3600).await;
    let w = worker(&env, config(Some(addr.to_string())));
    assert_eq!(w.run_once().await, 1);
    let entry = env
        .store
        .queue_get(id)
        .await
        .expect("get")
        .expect("still queued");
    assert_eq!(entry.attempts, 1);
    assert_eq!(entry.recipients[0].status, RcptStatus::Pending);
    let error = entry.recipients[0].last_error.clone().unwrap_or_default();
    assert!(
        error.contains("cannot connect") && error.contains(&addr.to_string()),
        "{error}"
    );
    assert!(entry.next_attempt > now_unix());
    assert!(inbox(&env, env.alice).await.is_empty());
}

#[tokio::test]
async fn remote_sender_gets_a_queued_bounce_and_bounces_are_never_bounced() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    sink.script(
        "nobody@remote.test",
        &["550 5.1.1 unknown", "550 5.1.1 unknown"],
    );
    let w = worker(&env, config(Some(sink.addr.to_string())));
    let id = enqueue(
        &env,
        "someone@elsewhere.test",
        &["nobody@remote.test"],
        3600,
    )
    .await;
    assert_eq!(w.run_once().await, 1);
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
    let queued = env.store.queue_list().await.expect("list");
    assert_eq!(
        queued.len(),
        1,
        "the bounce is queued for the remote sender"
    );
    assert_eq!(queued[0].sender, "", "bounces use the null reverse-path");
    assert!(
        queued[0].expires_at >= now_unix() + crate::DEFAULT_DSN_LIFETIME_SECS - 60,
        "a bounce keeps its own lifetime"
    );
    assert_eq!(queued[0].recipients[0].address, "someone@elsewhere.test");
    assert_eq!(w.run_once().await, 1);
    let bounce = sink.transactions().pop().expect("bounce sent");
    assert_eq!(bounce.mail_from, "");
    assert!(
        String::from_utf8_lossy(&bounce.data)
            .contains("Final-Recipient: rfc822; nobody@remote.test")
    );

    // A bounce that fails is dropped without a bounce of its own.
    let bounce_id = env
        .store
        .queue_enqueue(NewQueued {
            sender: String::new(),
            recipients: vec!["nobody@remote.test".into()],
            raw: Arc::new(MESSAGE.to_vec()),
            expires_at: now_unix() + 3600,
        })
        .await
        .expect("enqueue");
    assert_eq!(w.run_once().await, 1);
    assert_eq!(env.store.queue_get(bounce_id).await.expect("get"), None);
    assert!(
        env.store.queue_list().await.expect("list").is_empty(),
        "no bounce of a bounce"
    );
}

#[tokio::test]
async fn starttls_is_used_when_the_server_offers_it() {
    let env = env().await;
    let tls_dir = tempfile::tempdir().expect("temp dir");
    let server = bulwark_net::load_tls(
        &bulwark_net::TlsFiles::default(),
        tls_dir.path(),
        "sink.test",
    )
    .expect("tls");
    let sink = Sink::start(SinkTls::Real(tokio_rustls::TlsAcceptor::from(server))).await;
    let id = enqueue(&env, "alice@example.test", &["bob@remote.test"], 3600).await;
    let w = worker(&env, config(Some(sink.addr.to_string())));
    assert_eq!(w.run_once().await, 1);
    let got = sink.transactions();
    assert_eq!(got.len(), 1);
    assert!(got[0].tls, "the transaction ran inside TLS");
    assert_eq!(got[0].data, MESSAGE);
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
}

#[tokio::test]
async fn mx_lookup_routes_to_the_preferred_host_and_null_mx_fails() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    let dns = start_dns(vec![
        // The preferred MX (10) accepts; the backup (20) would not be reached.
        (
            "mx-test.example",
            Rr::Mx(20, "backup.mx-test.example".into()),
        ),
        ("mx-test.example", Rr::Mx(10, "mail.mx-test.example".into())),
        ("mail.mx-test.example", Rr::A(Ipv4Addr::LOCALHOST)),
        ("backup.mx-test.example", Rr::A(BACKUP_IP)),
        // No MX: the domain's own address is the implicit MX (RFC 5321 §5.1).
        ("implicit.example", Rr::A(Ipv4Addr::LOCALHOST)),
        ("nullmx.example", Rr::Mx(0, ".".into())),
    ])
    .await;
    // A second sink on another loopback address, same port: the backup MX must stay unused.
    let backup = Sink::start_at(
        SocketAddr::new(BACKUP_IP.into(), sink.addr.port()),
        SinkTls::None,
    )
    .await
    .ok();
    let cfg = QueueConfig {
        smtp_port: sink.addr.port(),
        resolver: Some(
            bulwark_dns::Resolver::new(&bulwark_dns::DnsConfig {
                servers: vec![dns],
                timeout: std::time::Duration::from_secs(2),
            })
            .expect("resolver"),
        ),
        ..config(None)
    };
    let w = worker(&env, cfg);
    let id = enqueue(
        &env,
        "alice@example.test",
        &[
            "bob@mx-test.example",
            "carol@implicit.example",
            "dave@nullmx.example",
            "erin@nxdomain.example",
        ],
        3600,
    )
    .await;
    assert_eq!(w.run_once().await, 1);
    let mut rcpts: Vec<String> = sink
        .transactions()
        .into_iter()
        .flat_map(|t| t.rcpts)
        .collect();
    rcpts.sort();
    assert_eq!(
        rcpts,
        vec![
            "bob@mx-test.example".to_string(),
            "carol@implicit.example".to_string()
        ]
    );
    assert_eq!(sink.transactions().len(), 2, "one transaction per domain");
    if let Some(backup) = backup {
        assert!(
            backup.transactions().is_empty(),
            "the less preferred MX was not used"
        );
    }
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
    let inbox = inbox(&env, env.alice).await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains(
        "Final-Recipient: rfc822; dave@nullmx.example\r\nAction: failed\r\nStatus: 5.1.10"
    ));
    assert!(inbox[0].contains(
        "Final-Recipient: rfc822; erin@nxdomain.example\r\nAction: failed\r\nStatus: 5.1.2"
    ));
}

#[tokio::test]
async fn running_worker_delivers_after_a_wakeup() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    let wakeup = Arc::new(Notify::new());
    let w = QueueWorker::new(
        config(Some(sink.addr.to_string())),
        env.store.clone(),
        wakeup.clone(),
    );
    let task = tokio::spawn(w.run());
    let id = enqueue(&env, "alice@example.test", &["bob@remote.test"], 3600).await;
    wakeup.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.store.queue_get(id).await.expect("get").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sink.transactions().len(), 1);
    task.abort();
}

#[tokio::test]
async fn failed_tls_handshake_falls_back_to_cleartext() {
    let env = env().await;
    let sink = Sink::start(SinkTls::Broken).await;
    let id = enqueue(&env, "alice@example.test", &["bob@remote.test"], 3600).await;
    let w = worker(&env, config(Some(sink.addr.to_string())));
    assert_eq!(w.run_once().await, 1);
    let got = sink.transactions();
    assert_eq!(
        got.len(),
        1,
        "delivered on the second, cleartext connection"
    );
    assert!(!got[0].tls);
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
}

#[tokio::test]
async fn internationalized_recipient_fails_when_the_server_lacks_smtputf8() {
    let env = env().await;
    let sink = Sink::start(SinkTls::None).await;
    let id = enqueue(&env, "alice@example.test", &["bøb@remote.test"], 3600).await;
    let w = worker(&env, config(Some(sink.addr.to_string())));
    assert_eq!(w.run_once().await, 1);
    assert!(sink.transactions().is_empty());
    assert_eq!(env.store.queue_get(id).await.expect("get"), None);
    let inbox = inbox(&env, env.alice).await;
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].contains("Status: 5.6.7"), "{}", inbox[0]);
}
