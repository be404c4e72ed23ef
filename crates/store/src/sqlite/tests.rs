//! The conformance suite against SqliteStore, plus backend-specific behaviour.

use super::*;
use crate::conformance::{append_one, new_account, new_email, uids};

/// A store in a fresh temporary directory; the directory lives as long as the test.
fn fresh() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    (store, dir)
}

/// Keeps every temporary directory of the conformance tests until the process ends.
fn fresh_dyn() -> Arc<dyn Store> {
    let (store, dir) = fresh();
    std::mem::forget(dir);
    store
}

mod conformance {
    crate::conformance_tests!(super::fresh_dyn());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_suite_runs_on_one_shared_store() {
    let (store, _dir) = fresh();
    crate::conformance::run_all(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_drop_keeps_data_and_uid_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (account, inbox, blob);
    {
        let store: Arc<dyn Store> = SqliteStore::open(dir.path()).expect("open");
        (account, inbox) = new_account(&store).await;
        append_one(&store, account.id, inbox.id, "a").await;
        let b = append_one(&store, account.id, inbox.id, "b").await;
        blob = b.blob.clone();
        store
            .mailbox_expunge(account.id, inbox.id, &[Uid(2)])
            .await
            .expect("expunge");
    }
    let store: Arc<dyn Store> = SqliteStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store
            .account_get(account.id)
            .await
            .expect("get")
            .map(|a| a.address),
        Some(account.address.clone())
    );
    let reopened = store
        .mailbox_get(account.id, inbox.id)
        .await
        .expect("get")
        .expect("inbox");
    assert_eq!(reopened.uid_validity, inbox.uid_validity);
    assert_eq!(reopened.uid_next, Uid(3));
    assert_eq!(uids(&store, account.id, inbox.id).await, vec![1]);
    let c = append_one(&store, account.id, inbox.id, "c").await;
    assert_eq!(c.uids, vec![(inbox.id, Uid(3))], "UID 2 is never reused");
    assert!(store.blob_get(&blob).await.expect("blob").is_some());
    let m = store
        .mailbox_create(account.id, "New", None)
        .await
        .expect("create");
    let all: Vec<u32> = store
        .mailbox_list(account.id)
        .await
        .expect("list")
        .iter()
        .map(|m| m.uid_validity)
        .collect();
    assert_eq!(all.iter().filter(|&&v| v == m.uid_validity).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_twice_is_idempotent_and_uses_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = SqliteStore::open(dir.path()).expect("open");
    // A second handle on the same file, as the admin CLI has while the server runs.
    let second = SqliteStore::open(dir.path()).expect("open again");
    let domain = crate::conformance::unique_domain();
    second.domain_add(&domain).await.expect("cli writes");
    assert!(first.domain_exists(&domain).await.expect("server reads"));
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("raw open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, schema::SCHEMA_VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_writing_at_once_both_succeed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server: Arc<dyn Store> = SqliteStore::open(dir.path()).expect("open");
    let cli: Arc<dyn Store> = SqliteStore::open(dir.path()).expect("open");
    let (account, inbox) = new_account(&server).await;
    let mut tasks = Vec::new();
    for (n, store) in [server.clone(), cli.clone()].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                append_one(&store, account.id, inbox.id, &format!("s{n}-{i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(
        uids(&server, account.id, inbox.id).await,
        (1..=40).collect::<Vec<u32>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_change_log_refuses_older_states() {
    let (store, _dir) = fresh();
    let dynstore: Arc<dyn Store> = store.clone();
    let (account, inbox) = new_account(&dynstore).await;
    let s0 = store.account_modseq(account.id).await.expect("modseq");
    let e1 = append_one(&dynstore, account.id, inbox.id, "t1").await;
    let e2 = append_one(&dynstore, account.id, inbox.id, "t2").await;
    store
        .trim_changes_before(account.id, e1.modseq)
        .await
        .expect("trim");
    let old = store.changes_since(account.id, s0, 100).await;
    assert_eq!(old, Err(StoreError::CannotCalculateChanges(s0.0)));
    let c = store
        .changes_since(account.id, e1.modseq, 100)
        .await
        .expect("changes");
    assert_eq!(c.emails.created, vec![e2.email]);
    // The floor never moves back.
    store
        .trim_changes_before(account.id, ModSeq(1))
        .await
        .expect("trim");
    assert!(store.changes_since(account.id, s0, 100).await.is_err());
    // The floor survives a reopen.
    drop(dynstore);
    drop(store);
    let reopened = SqliteStore::open(_dir.path()).expect("reopen");
    assert!(reopened.changes_since(account.id, s0, 100).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job_in_a_batch_does_not_affect_the_others() {
    let (store, _dir) = fresh();
    let dynstore: Arc<dyn Store> = store.clone();
    let (account, inbox) = new_account(&dynstore).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let store = dynstore.clone();
        tasks.push(tokio::spawn(async move {
            // Every third job targets a missing mailbox and must fail alone.
            let target = if i % 3 == 0 {
                MailboxId(i64::MAX)
            } else {
                inbox.id
            };
            store
                .email_append(account.id, vec![new_email(&[target], &format!("b{i}"))])
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => assert!(matches!(e, StoreError::NotFound(_)), "{e:?}"),
        }
    }
    assert_eq!(ok, 21);
    assert_eq!(
        uids(&dynstore, account.id, inbox.id).await,
        (1..=21).collect::<Vec<u32>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_status_and_listing_are_fast_on_a_large_mailbox() {
    const MESSAGES: usize = 20_000;
    let (store, _dir) = fresh();
    let dynstore: Arc<dyn Store> = store.clone();
    let (account, inbox) = new_account(&dynstore).await;
    let batch: Vec<NewEmail> = (0..MESSAGES)
        .map(|i| new_email(&[inbox.id], &format!("big{i}")))
        .collect();
    store
        .email_append(account.id, batch)
        .await
        .expect("bulk append");
    let started = std::time::Instant::now();
    let status = store
        .mailbox_status(account.id, inbox.id)
        .await
        .expect("status");
    let metas = store
        .mailbox_messages(account.id, inbox.id)
        .await
        .expect("messages");
    let elapsed = started.elapsed();
    assert_eq!(status.messages as usize, MESSAGES);
    assert_eq!(metas.len(), MESSAGES);
    // Generous bound for a debug build on a shared 2-core machine.
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_commits() {
    const JOBS: usize = 64;
    let (store, _dir) = fresh();
    let dynstore: Arc<dyn Store> = store.clone();
    let (account, inbox) = new_account(&dynstore).await;
    let before = store.commit_stats();
    let mut tasks = Vec::new();
    for i in 0..JOBS {
        let store = dynstore.clone();
        tasks.push(tokio::spawn(async move {
            append_one(&store, account.id, inbox.id, &format!("g{i}")).await
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let after = store.commit_stats();
    let (commits, jobs) = (after.commits - before.commits, after.jobs - before.jobs);
    assert_eq!(jobs, JOBS as u64);
    assert!(
        commits < jobs,
        "{jobs} jobs took {commits} commits: no group commit happened"
    );
}

/// Environment of the child half of `acknowledged_appends_survive_sigkill`.
const CRASH_DIR_ENV: &str = "BULWARK_STORE_CRASH_DIR";
const CRASH_TARGET_ENV: &str = "BULWARK_STORE_CRASH_TARGET";
/// Acknowledged appends the parent waits for before it kills the child.
const CRASH_AFTER_ACKS: usize = 150;

/// Child half of `acknowledged_appends_survive_sigkill`: appends from 4 tasks and prints
/// `acked TAG` after each durable append, until killed (or a safety deadline). Without the
/// environment variables it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_appends_until_killed() {
    use std::io::Write;
    let (Ok(dir), Ok(target)) = (
        std::env::var(CRASH_DIR_ENV),
        std::env::var(CRASH_TARGET_ENV),
    ) else {
        return;
    };
    let (account, mailbox) = target.split_once(':').expect("target is ACCOUNT:MAILBOX");
    let account = AccountId(account.parse().expect("account id"));
    let mailbox = MailboxId(mailbox.parse().expect("mailbox id"));
    let store: Arc<dyn Store> = SqliteStore::open(Path::new(&dir)).expect("open");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while std::time::Instant::now() < deadline {
                let tag = format!("crash-{t}-{i}");
                append_one(&store, account, mailbox, &tag).await;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "acked {tag}");
                let _ = out.flush();
                i += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let (account, inbox) = {
        let store: Arc<dyn Store> = SqliteStore::open(dir.path()).expect("open");
        new_account(&store).await
    };
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "sqlite::tests::crash_child_appends_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, dir.path())
        .env(CRASH_TARGET_ENV, format!("{}:{}", account.id, inbox.id))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(tag) = line.strip_prefix("acked ") {
                acked.push(tag.to_string());
                if acked.len() >= CRASH_AFTER_ACKS {
                    break;
                }
            }
        }
        acked
    })
    .await
    .expect("reader");
    child.kill().expect("SIGKILL the child");
    let _ = child.wait();
    assert_eq!(acked.len(), CRASH_AFTER_ACKS, "child stopped early");

    let store: Arc<dyn Store> = SqliteStore::open(dir.path()).expect("reopen after SIGKILL");
    let metas = store
        .mailbox_messages(account.id, inbox.id)
        .await
        .expect("messages");
    let ids: Vec<EmailId> = metas.iter().map(|m| m.email).collect();
    let subjects: Vec<String> = store
        .email_get(account.id, &ids)
        .await
        .expect("emails")
        .into_iter()
        .map(|e| e.summary.subject)
        .collect();
    for tag in &acked {
        assert_eq!(
            subjects.iter().filter(|s| *s == tag).count(),
            1,
            "{tag} acknowledged but not stored once"
        );
    }
    // The store still takes writes, with fresh UIDs.
    let after = append_one(&store, account.id, inbox.id, "after-crash").await;
    assert!(metas.iter().all(|m| m.uid < after.uids[0].1));
}

/// Manual timing for a 100k-message mailbox: `cargo test -p bulwark-store --release -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow; prints timings"]
async fn timing_of_a_100k_message_mailbox() {
    const MESSAGES: usize = 100_000;
    let (store, _dir) = fresh();
    let dynstore: Arc<dyn Store> = store.clone();
    let (account, inbox) = new_account(&dynstore).await;
    let started = std::time::Instant::now();
    for chunk in 0..MESSAGES / 10_000 {
        let batch: Vec<NewEmail> = (0..10_000)
            .map(|i| new_email(&[inbox.id], &format!("big{chunk}-{i}")))
            .collect();
        store
            .email_append(account.id, batch)
            .await
            .expect("bulk append");
    }
    println!("append {MESSAGES}: {:?}", started.elapsed());
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let status = store
            .mailbox_status(account.id, inbox.id)
            .await
            .expect("status");
        let status_time = t.elapsed();
        let t = std::time::Instant::now();
        let metas = store
            .mailbox_messages(account.id, inbox.id)
            .await
            .expect("messages");
        println!(
            "status: {status_time:?}, messages ({}): {:?}",
            metas.len(),
            t.elapsed()
        );
        assert_eq!(status.messages as usize, MESSAGES);
    }
    let t = std::time::Instant::now();
    let updates: Vec<KeywordUpdate> = store
        .mailbox_messages(account.id, inbox.id)
        .await
        .expect("messages")
        .iter()
        .map(|m| KeywordUpdate {
            email: m.email,
            op: KeywordOp::Add,
            keywords: vec!["$seen".into()],
            unchanged_since: None,
        })
        .collect();
    store
        .email_set_keywords(account.id, updates)
        .await
        .expect("flag all");
    println!("flag all seen: {:?}", t.elapsed());
}

/// The test outage switch sits at the engine: every kind of call through the switched
/// handle fails while it is down (a write, a read, a cached blob), the other handle works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_handle_refuses_every_transaction_and_the_first_handle_keeps_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inner = SqliteStore::open(dir.path()).expect("open");
    let first: Arc<dyn Store> = inner.clone();
    let (account, inbox) = new_account(&first).await;
    let appended = append_one(&first, account.id, inbox.id, "outage").await;
    let (view, outage) = inner.with_outage();
    // Read once while up, so the blob sits in the shared cache.
    assert!(view.blob_get(&appended.blob).await.expect("blob").is_some());
    outage.set_down(true);
    let unavailable = |r: std::result::Result<(), StoreError>| {
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    };
    unavailable(view.domain_list().await.map(drop));
    unavailable(view.mailbox_list(account.id).await.map(drop));
    unavailable(view.blob_get(&appended.blob).await.map(drop));
    unavailable(
        view.email_append(account.id, vec![new_email(&[inbox.id], "x")])
            .await
            .map(drop),
    );
    assert_eq!(outage.refused(), 4);
    assert_eq!(
        first
            .mailbox_messages(account.id, inbox.id)
            .await
            .expect("read")
            .len(),
        1,
        "nothing was written through the switched handle; the first handle reads"
    );
    outage.set_down(false);
    assert!(view.mailbox_list(account.id).await.is_ok());
}

/// The per-type states read incrementally from the cache equal the ones a fresh store reads
/// from the whole log, also after the log was trimmed (then no state is below the floor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_mail_states_equal_a_cold_read() {
    let (store, dir) = fresh();
    let dynstore: Arc<dyn Store> = store.clone();
    let (account, inbox) = new_account(&dynstore).await;
    let a = account.id;
    let e1 = append_one(&dynstore, a, inbox.id, "c1").await;
    assert_eq!(
        store.mail_states(a).await.expect("states").thread,
        e1.modseq
    );
    let folder = store
        .mailbox_create(a, "Later", None)
        .await
        .expect("create");
    for keyword in ["$flagged", "x", "y"] {
        store
            .email_set_keywords(
                a,
                vec![KeywordUpdate {
                    email: e1.email,
                    op: KeywordOp::Add,
                    keywords: vec![keyword.into()],
                    unchanged_since: None,
                }],
            )
            .await
            .expect("keyword");
    }
    let warm = store.mail_states(a).await.expect("states");
    assert_eq!(warm.mailbox, folder.highest_modseq);
    assert!(warm.email > warm.mailbox && warm.thread == e1.modseq);
    let cold = SqliteStore::open(dir.path())
        .expect("second handle")
        .mail_states(a)
        .await
        .expect("states");
    assert_eq!(warm, cold);

    let floor = store.account_modseq(a).await.expect("modseq");
    store.trim_changes_before(a, floor).await.expect("trim");
    let trimmed = store.mail_states(a).await.expect("states");
    assert_eq!(
        trimmed,
        MailStates {
            email: floor,
            mailbox: floor,
            thread: floor
        },
        "no state below the floor, or /changes could never answer it"
    );
    assert!(
        store
            .kind_changes_since(
                a,
                crate::changelog::ChangeKind::Mailbox,
                trimmed.mailbox,
                10
            )
            .await
            .is_ok()
    );
}
