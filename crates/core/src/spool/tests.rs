use super::*;
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{NewAccount, RcptStatus, Role};
use std::time::Instant;

/// Deadline for the replay task to drain after the store is back.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
const POLL_PAUSE: Duration = Duration::from_millis(20);

fn message(id: &str, local: &[&str], remote: &[&str]) -> SpooledMessage {
    SpooledMessage {
        envelope: SpooledEnvelope {
            id: id.to_string(),
            sender: "sender@remote.test".into(),
            local: local.iter().map(|s| s.to_string()).collect(),
            remote: remote.iter().map(|s| s.to_string()).collect(),
            received_at: 1_700_000_000,
            local_head: format!(
                "Return-Path: <sender@remote.test>\r\nReceived: from x by mx id {id}\r\n"
            ),
            relay_head: format!("Received: from x by mx id {id}\r\n"),
        },
        body: format!("Message-ID: <{id}@remote.test>\r\nSubject: hi\r\n\r\nbody {id}\r\n")
            .into_bytes(),
    }
}

/// A pipeline without hooks on `store` (what the replay goes through).
fn through(store: Arc<dyn Store>) -> Arc<crate::Pipeline> {
    crate::Pipeline::new(store, Arc::new(Notify::new()), REPLAY_QUEUE_LIFETIME_SECS)
}

/// A SQLite store with domain `example.test` and account `alice@example.test`.
async fn store_with_alice(dir: &Path) -> (Arc<dyn Store>, bulwark_store::AccountId) {
    let (store, account) = sqlite_with_alice(dir).await;
    (store, account)
}

/// [`store_with_alice`] as the concrete store (for [`SqliteStore::with_outage`]).
async fn sqlite_with_alice(dir: &Path) -> (Arc<SqliteStore>, bulwark_store::AccountId) {
    let store = SqliteStore::open(&dir.join("store")).expect("open store");
    store.domain_add("example.test").await.expect("domain");
    let account = store
        .account_create(NewAccount {
            address: "alice@example.test".into(),
            display_name: "Alice".into(),
            password_hash: "$argon2id$fake".into(),
        })
        .await
        .expect("account");
    (store, account.id)
}

async fn inbox_count(store: &dyn Store, account: bulwark_store::AccountId) -> usize {
    let inbox = crate::mailbox_with_role(store, account, Role::Inbox)
        .await
        .expect("inbox");
    store
        .mailbox_messages(account, inbox)
        .await
        .expect("messages")
        .len()
}

#[tokio::test]
async fn put_writes_a_durable_file_that_a_reopened_spool_still_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    let msg = message("A1", &["alice@example.test"], &[]);
    spool.put(&msg).await.expect("put");
    let status = spool.status();
    assert_eq!(status.messages, 1);
    assert!(status.bytes > msg.body.len() as u64);
    assert!(status.degraded, "spooled mail waiting means degraded");

    // A half-written file of a crashed writer is removed, the complete one kept.
    std::fs::write(spool.dir().join("x.msg.tmp"), b"partial").expect("temp");
    drop(spool);
    let reopened = Spool::open(dir.path(), SpoolLimits::default()).expect("reopen");
    assert_eq!(reopened.status().messages, 1);
    assert!(!reopened.dir().join("x.msg.tmp").exists());
    let files = reopened.waiting().expect("list");
    let bytes = std::fs::read(&files[0]).expect("read");
    assert_eq!(SpooledMessage::decode(&bytes).expect("decode"), msg);
}

#[tokio::test]
async fn put_beyond_the_message_or_byte_cap_is_refused_as_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = SpoolLimits {
        max_bytes: 1_000_000,
        max_messages: 2,
    };
    let spool = Spool::open(dir.path(), limits).expect("open");
    spool
        .put(&message("1", &["a@x.test"], &[]))
        .await
        .expect("1");
    spool
        .put(&message("2", &["a@x.test"], &[]))
        .await
        .expect("2");
    let third = spool.put(&message("3", &["a@x.test"], &[])).await;
    assert!(
        matches!(third, Err(SpoolError::Full { messages: 2, .. })),
        "{third:?}"
    );
    assert_eq!(spool.status().messages, 2);

    let small = Spool::open(
        &dir.path().join("small"),
        SpoolLimits {
            max_bytes: 100,
            max_messages: 10,
        },
    )
    .expect("open");
    let big = small.put(&message("big", &["a@x.test"], &[])).await;
    assert!(matches!(big, Err(SpoolError::Full { .. })), "{big:?}");
    assert_eq!(
        small.status().messages,
        0,
        "a refused message is not counted"
    );
}

#[tokio::test]
async fn offline_recipients_are_judged_by_the_remembered_domains_even_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    assert_eq!(
        spool.offline_recipient("alice@example.test"),
        OfflineRecipient::Unknown,
        "no list known yet"
    );
    spool.remember_domains(&["Example.TEST".into()]);
    assert_eq!(
        spool.offline_recipient("Alice+tag@example.test"),
        OfflineRecipient::LocalDomain
    );
    assert_eq!(
        spool.offline_recipient("bob@elsewhere.test"),
        OfflineRecipient::Remote
    );
    assert_eq!(
        spool.offline_recipient("garbage"),
        OfflineRecipient::Unknown
    );
    drop(spool);
    let reopened = Spool::open(dir.path(), SpoolLimits::default()).expect("reopen");
    assert_eq!(
        reopened.offline_recipient("x@example.test"),
        OfflineRecipient::LocalDomain
    );
}

#[tokio::test]
async fn replay_delivers_each_spooled_message_once_and_empties_the_spool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, alice) = store_with_alice(dir.path()).await;
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    spool
        .put(&message("R1", &["alice@example.test"], &[]))
        .await
        .expect("put");
    spool
        .put(&message("R2", &["ALICE+news@example.test"], &[]))
        .await
        .expect("put");
    let report = spool.replay(&through(store.clone())).await.expect("replay");
    assert_eq!(report.replayed, 2);
    assert_eq!(inbox_count(store.as_ref(), alice).await, 2);
    assert_eq!(spool.status().messages, 0);
    assert_eq!(spool.status().bytes, 0);
    let again = spool.replay(&through(store.clone())).await.expect("replay");
    assert_eq!(again, ReplayReport::default());
    assert_eq!(inbox_count(store.as_ref(), alice).await, 2);
}

#[tokio::test]
async fn replay_after_a_crash_between_commit_and_file_removal_does_not_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, alice) = store_with_alice(dir.path()).await;
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    spool
        .put(&message(
            "C1",
            &["alice@example.test"],
            &["carol@remote.test"],
        ))
        .await
        .expect("put");
    let file = spool.waiting().expect("list").remove(0);
    let saved = std::fs::read(&file).expect("read");
    spool.replay(&through(store.clone())).await.expect("replay");
    assert_eq!(inbox_count(store.as_ref(), alice).await, 1);
    assert_eq!(store.queue_list().await.expect("queue").len(), 1);

    // The node "crashed" after the commits but before deleting the file.
    std::fs::write(&file, &saved).expect("restore file");
    let restarted = Spool::open(dir.path(), SpoolLimits::default()).expect("reopen");
    let report = restarted
        .replay(&through(store.clone()))
        .await
        .expect("replay");
    assert_eq!(report.replayed, 1);
    assert_eq!(report.already_delivered, 1);
    assert_eq!(report.queued, 0);
    assert_eq!(
        inbox_count(store.as_ref(), alice).await,
        1,
        "delivered once"
    );
    assert_eq!(
        store.queue_list().await.expect("queue").len(),
        1,
        "queued once"
    );
    assert_eq!(restarted.status().messages, 0);
}

#[tokio::test]
async fn recipients_unknown_at_replay_are_queued_as_failed_for_a_dsn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, alice) = store_with_alice(dir.path()).await;
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    spool
        .put(&message(
            "U1",
            &["alice@example.test", "nobody@example.test"],
            &["carol@remote.test"],
        ))
        .await
        .expect("put");
    let report = spool.replay(&through(store.clone())).await.expect("replay");
    assert_eq!(report.unknown_recipients, 1);
    assert_eq!(inbox_count(store.as_ref(), alice).await, 1);
    let queue = store.queue_list().await.expect("queue");
    assert_eq!(queue.len(), 1);
    let entry = &queue[0];
    assert_eq!(entry.sender, "sender@remote.test");
    let status = |addr: &str| {
        entry
            .recipients
            .iter()
            .find(|r| r.address == addr)
            .map(|r| r.status)
    };
    assert_eq!(status("carol@remote.test"), Some(RcptStatus::Pending));
    assert_eq!(status("nobody@example.test"), Some(RcptStatus::Failed));
    let raw = store
        .blob_get(&entry.blob)
        .await
        .expect("blob")
        .expect("raw");
    assert!(raw.starts_with(b"Received: from x by mx id U1"));
}

#[tokio::test]
async fn replay_stops_at_an_unavailable_store_and_keeps_every_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (inner, alice) = sqlite_with_alice(dir.path()).await;
    let (store, outage) = inner.with_outage();
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    spool
        .put(&message("D1", &["alice@example.test"], &[]))
        .await
        .expect("put");
    outage.set_down(true);
    let outcome = spool.replay(&through(store.clone())).await;
    assert!(
        matches!(outcome, Err(ReplayError::Store(StoreError::Unavailable(_)))),
        "{outcome:?}"
    );
    let status = spool.status();
    assert_eq!(status.messages, 1);
    assert!(status.store_unavailable && status.degraded);
    assert_eq!(inbox_count(inner.as_ref(), alice).await, 0);
}

#[tokio::test]
async fn damaged_files_are_set_aside_not_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = store_with_alice(dir.path()).await;
    std::fs::create_dir_all(dir.path().join(SPOOL_DIR)).expect("dir");
    std::fs::write(
        dir.path().join(SPOOL_DIR).join("0-bad.msg"),
        b"not a spool file",
    )
    .expect("w");
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    assert_eq!(spool.status().messages, 1);
    let report = spool.replay(&through(store.clone())).await.expect("replay");
    assert_eq!(report.set_aside, 1);
    assert_eq!(spool.status().messages, 0);
    assert!(spool.dir().join(DAMAGED_DIR).join("0-bad.msg").exists());
}

#[tokio::test]
async fn the_replay_task_drains_the_spool_once_the_store_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (inner, alice) = sqlite_with_alice(dir.path()).await;
    let (store, outage) = inner.with_outage();
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    outage.set_down(true);
    let task = spool.spawn_replay(store.clone(), Arc::new(Notify::new()));
    for i in 0..5 {
        spool
            .put(&message(&format!("T{i}"), &["alice@example.test"], &[]))
            .await
            .expect("put");
    }
    let deadline = Instant::now() + DRAIN_DEADLINE;
    while !spool.status().store_unavailable {
        assert!(
            Instant::now() < deadline,
            "the task never noticed the outage"
        );
        tokio::time::sleep(POLL_PAUSE).await;
    }
    assert_eq!(spool.status().messages, 5);
    outage.set_down(false);
    while spool.status().degraded {
        assert!(
            Instant::now() < deadline,
            "not drained: {:?}",
            spool.status()
        );
        tokio::time::sleep(POLL_PAUSE).await;
    }
    assert_eq!(inbox_count(inner.as_ref(), alice).await, 5);
    assert_eq!(
        spool.offline_recipient("x@example.test"),
        OfflineRecipient::LocalDomain,
        "the task remembered the domain list"
    );
    task.abort();
}

/// The marker is written in the same transaction as the copy, so a replay after a crash
/// (before the file was removed) stores nothing again — even when the user deleted the copy
/// and the collector dropped its blob meanwhile (which the blob check alone cannot see).
#[tokio::test]
async fn a_crashed_replay_does_not_redeliver_a_copy_deleted_and_collected_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, alice) = store_with_alice(dir.path()).await;
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    let msg = message("G1", &["alice@example.test"], &[]);
    spool.put(&msg).await.expect("put");
    let file = spool.waiting().expect("list").remove(0);
    let saved = std::fs::read(&file).expect("read");
    spool.replay(&through(store.clone())).await.expect("replay");
    assert!(
        store
            .collection_get(alice, REPLAYED, None)
            .await
            .expect("markers")
            .is_empty(),
        "the marker goes with the file"
    );

    // The node "crashed" after the commit: the file and the marker are still there.
    std::fs::write(&file, &saved).expect("restore file");
    let key = bulwark_store::BlobHash::of(&msg.local_message()).0;
    let marker =
        bulwark_store::ItemWrite::put(REPLAYED, &key, bulwark_store::Expect::Absent, "{}".into());
    store
        .collection_write(alice, vec![marker])
        .await
        .expect("marker");
    // Meanwhile the user deletes the message and the collector drops its blob.
    let emails = store.email_list(alice).await.expect("emails");
    let ids: Vec<_> = emails.iter().map(|e| e.id).collect();
    store.email_destroy(alice, &ids).await.expect("destroy");
    store
        .blob_collect(bulwark_store::now_unix() + 1)
        .await
        .expect("collect");
    assert_eq!(store.blob_get(&emails[0].blob).await.expect("blob"), None);

    let restarted = Spool::open(dir.path(), SpoolLimits::default()).expect("reopen");
    let report = restarted
        .replay(&through(store.clone()))
        .await
        .expect("replay");
    assert_eq!(report.replayed, 1);
    assert_eq!(report.already_delivered, 1);
    assert_eq!(
        inbox_count(store.as_ref(), alice).await,
        0,
        "not delivered again"
    );
    assert_eq!(restarted.status().messages, 0);
    assert!(
        store
            .collection_get(alice, REPLAYED, None)
            .await
            .expect("markers")
            .is_empty()
    );
}

/// Refuses every local copy and remembers what it was shown.
struct RefuseAll(std::sync::Mutex<Vec<String>>);
#[async_trait::async_trait]
impl crate::DeliveryHook for RefuseAll {
    async fn check(
        &self,
        _account: bulwark_store::AccountId,
        message: &crate::Message,
    ) -> Option<crate::Refusal> {
        self.0
            .lock()
            .expect("seen")
            .push(String::from_utf8_lossy(&message.local_raw).into_owned());
        Some(crate::Refusal::Permanent("mailbox full".into()))
    }
}

/// Replay goes through the pipeline: its hooks judge each local copy, and a copy refused
/// then (after `250` during the outage) is queued as failed so the worker bounces it.
#[tokio::test]
async fn replayed_mail_goes_through_the_hooks_and_a_refusal_is_bounced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, alice) = store_with_alice(dir.path()).await;
    let spool = Spool::open(dir.path(), SpoolLimits::default()).expect("open");
    spool
        .put(&message("H1", &["alice@example.test"], &[]))
        .await
        .expect("put");
    let pipeline = through(store.clone());
    let hook = Arc::new(RefuseAll(std::sync::Mutex::new(Vec::new())));
    pipeline.add_hook(hook.clone());
    let report = spool.replay(&pipeline).await.expect("replay");
    assert_eq!(report.replayed, 1);
    let seen = hook.0.lock().expect("seen").clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains("Received: from x by mx id H1"));
    assert_eq!(inbox_count(store.as_ref(), alice).await, 0);
    let queue = store.queue_list().await.expect("queue");
    assert_eq!(queue.len(), 1, "a bounce is owed to the sender");
    assert_eq!(queue[0].sender, "sender@remote.test");
    assert_eq!(queue[0].recipients[0].address, "alice@example.test");
    assert_eq!(queue[0].recipients[0].status, RcptStatus::Failed);
    assert_eq!(
        queue[0].recipients[0].last_error.as_deref(),
        Some("554 5.7.1 Message refused: mailbox full")
    );
    assert_eq!(spool.status().messages, 0);
}
