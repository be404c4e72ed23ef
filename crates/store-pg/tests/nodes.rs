#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
//! Two `PgStore` instances on one database behave like two Bulwark nodes sharing it.
//! Needs `BULWARK_TEST_PG` (see `scripts/pg-test-server`); skipped without it.

use bulwark_store::conformance::{append_one, new_account, new_email};
use bulwark_store::*;
use bulwark_store_pg::PgStore;
use bulwark_store_pg::testing::fresh_database_url;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How fast a change must travel from one node to the other (the IDLE promise).
const FAN_OUT_DEADLINE: Duration = Duration::from_secs(1);
/// Deadline for recovery after connections are killed.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(15);

/// Two nodes on one fresh database, or `None` when PostgreSQL tests are disabled.
async fn two_nodes() -> Option<(Arc<PgStore>, Arc<PgStore>)> {
    let url = match fresh_database_url().await {
        Ok(Some(url)) => url,
        Ok(None) => {
            eprintln!("skipped: BULWARK_TEST_PG not set (start one with scripts/pg-test-server)");
            return None;
        }
        Err(e) => panic!("test PostgreSQL is not usable: {e}"),
    };
    // Both start at once: migrations must serialise on the advisory lock.
    let (one, two) = tokio::join!(PgStore::connect(&url), PgStore::connect(&url));
    Some((one.expect("node 1"), two.expect("node 2")))
}

async fn recv_within(rx: &mut broadcast::Receiver<StateChange>, deadline: Duration) -> StateChange {
    tokio::time::timeout(deadline, rx.recv())
        .await
        .expect("no state change in time")
        .expect("channel closed")
}

/// The first change at or after `modseq` (a remote node may still deliver older ones).
async fn recv_at_least(rx: &mut broadcast::Receiver<StateChange>, modseq: ModSeq) -> StateChange {
    loop {
        let change = recv_within(rx, FAN_OUT_DEADLINE).await;
        if change.modseq >= modseq {
            return change;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_on_one_node_reaches_subscriber_on_the_other_within_a_second() {
    let Some((one, two)) = two_nodes().await else {
        return;
    };
    let one: Arc<dyn Store> = one;
    let two: Arc<dyn Store> = two;
    // Created on node 2: its own changes are published before the call returns, so its
    // subscriber below sees only what comes later. Node 1 hears of the creation by NOTIFY,
    // possibly after subscribing, so its receiver skips older changes.
    let (account, inbox) = new_account(&two).await;
    let mut on_one = one.subscribe(account.id);
    let mut on_two = two.subscribe(account.id);

    let first = append_one(&two, account.id, inbox.id, "from node 2").await;
    let remote = recv_at_least(&mut on_one, first.modseq).await;
    assert_eq!(
        remote,
        StateChange {
            account: account.id,
            modseq: first.modseq,
            mailboxes: vec![inbox.id],
            collections: Some(Vec::new()),
            // An append is the user's own: no EmailDelivery.
            mail: Some(MailChanged {
                email: true,
                mailbox: true,
                thread: true,
                delivery: false,
            }),
            local: false,
        }
    );
    // The writing node publishes its own change exactly once (not again via NOTIFY).
    let local = recv_within(&mut on_two, FAN_OUT_DEADLINE).await;
    assert_eq!(local.modseq, first.modseq);
    let second = append_one(&two, account.id, inbox.id, "again").await;
    assert_eq!(
        recv_within(&mut on_two, FAN_OUT_DEADLINE).await.modseq,
        second.modseq,
        "the first change was not published twice"
    );
    assert_eq!(
        recv_at_least(&mut on_one, second.modseq).await.modseq,
        second.modseq
    );
    // And the other way round.
    let third = append_one(&one, account.id, inbox.id, "from node 1").await;
    assert_eq!(
        recv_within(&mut on_two, FAN_OUT_DEADLINE).await.modseq,
        third.modseq
    );
    assert_eq!(
        recv_within(&mut on_one, FAN_OUT_DEADLINE).await.modseq,
        third.modseq
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_both_nodes_get_distinct_uids() {
    const TASKS_PER_NODE: usize = 6;
    const PER_TASK: usize = 10;
    let Some((one, two)) = two_nodes().await else {
        return;
    };
    let nodes: [Arc<dyn Store>; 2] = [one, two];
    let (account, inbox) = new_account(&nodes[0]).await;
    let mut handles = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for t in 0..TASKS_PER_NODE {
            let node = node.clone();
            handles.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..PER_TASK {
                    let tag = format!("n{n}-t{t}-{i}");
                    got.push(append_one(&node, account.id, inbox.id, &tag).await);
                }
                got
            }));
        }
    }
    let mut uids = BTreeSet::new();
    let mut modseqs = BTreeSet::new();
    for handle in handles {
        for appended in handle.await.expect("task") {
            uids.insert(appended.uids[0].1.0);
            modseqs.insert(appended.modseq);
        }
    }
    let total = 2 * TASKS_PER_NODE * PER_TASK;
    assert_eq!(uids.len(), total, "UIDs are distinct across nodes");
    assert_eq!(modseqs.len(), total, "modseqs are distinct across nodes");
    assert_eq!(uids.iter().copied().max(), Some(total as u32));
    let status = nodes[1]
        .mailbox_status(account.id, inbox.id)
        .await
        .expect("status");
    assert_eq!(
        (status.messages as usize, status.uid_next),
        (total, Uid(total as u32 + 1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossed_multi_account_deliveries_from_both_nodes_all_land() {
    const ROUNDS: usize = 15;
    let Some((one, two)) = two_nodes().await else {
        return;
    };
    let one: Arc<dyn Store> = one;
    let two: Arc<dyn Store> = two;
    let (alice, alice_inbox) = new_account(&one).await;
    let (bob, bob_inbox) = new_account(&one).await;
    // Node 1 delivers alice-then-bob, node 2 bob-then-alice, with identical blobs: the
    // orderings that deadlock without consistent locking.
    let forward = {
        let one = one.clone();
        tokio::spawn(async move {
            for i in 0..ROUNDS {
                one.deliver(vec![
                    (alice.id, new_email(&[alice_inbox.id], &format!("x{i}"))),
                    (bob.id, new_email(&[bob_inbox.id], &format!("y{i}"))),
                ])
                .await
                .expect("deliver on node 1");
            }
        })
    };
    let backward = {
        let two = two.clone();
        tokio::spawn(async move {
            for i in 0..ROUNDS {
                two.deliver(vec![
                    (bob.id, new_email(&[bob_inbox.id], &format!("x{i}"))),
                    (alice.id, new_email(&[alice_inbox.id], &format!("y{i}"))),
                ])
                .await
                .expect("deliver on node 2");
            }
        })
    };
    forward.await.expect("node 1 task");
    backward.await.expect("node 2 task");
    for (account, inbox) in [(alice.id, alice_inbox.id), (bob.id, bob_inbox.id)] {
        let messages = two.mailbox_messages(account, inbox).await.expect("list");
        assert_eq!(messages.len(), 2 * ROUNDS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_sharing_blobs_in_crossed_order_are_retried_not_lost() {
    const ROUNDS: usize = 10;
    let Some((one, two)) = two_nodes().await else {
        return;
    };
    let one: Arc<dyn Store> = one;
    let two: Arc<dyn Store> = two;
    let (alice, alice_inbox) = new_account(&one).await;
    let (bob, bob_inbox) = new_account(&one).await;
    // Different accounts (no common row lock) inserting the same two blobs in opposite
    // order: PostgreSQL may report a deadlock, which the store runs again.
    let spawn = |node: Arc<dyn Store>, account: AccountId, inbox: MailboxId, flip: bool| {
        tokio::spawn(async move {
            for i in 0..ROUNDS {
                let (x, y) = (format!("bx{i}"), format!("by{i}"));
                let (first, second) = if flip { (y, x) } else { (x, y) };
                node.email_append(
                    account,
                    vec![new_email(&[inbox], &first), new_email(&[inbox], &second)],
                )
                .await
                .expect("append");
            }
        })
    };
    let a = spawn(one.clone(), alice.id, alice_inbox.id, false);
    let b = spawn(two.clone(), bob.id, bob_inbox.id, true);
    a.await.expect("node 1 task");
    b.await.expect("node 2 task");
    for (account, inbox) in [(alice.id, alice_inbox.id), (bob.id, bob_inbox.id)] {
        let uids: Vec<u32> = one
            .mailbox_messages(account, inbox)
            .await
            .expect("list")
            .iter()
            .map(|m| m.uid.0)
            .collect();
        assert_eq!(uids, (1..=(2 * ROUNDS) as u32).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_leasing_gives_each_entry_to_one_node_and_dead_leases_expire() {
    const ENTRIES: usize = 30;
    const BATCH: usize = 3;
    const LEASE_SECS: i64 = 600;
    let Some((one, two)) = two_nodes().await else {
        return;
    };
    let one: Arc<dyn Store> = one;
    let two: Arc<dyn Store> = two;
    let mut all = BTreeSet::new();
    for i in 0..ENTRIES {
        let id = one
            .queue_enqueue(NewQueued {
                sender: "alice@example.test".into(),
                recipients: vec![format!("r{i}@remote.test")],
                raw: Arc::new(format!("Subject: {i}\r\n\r\nbody\r\n").into_bytes()),
                expires_at: now_unix() + 86_400,
            })
            .await
            .expect("enqueue");
        all.insert(id);
    }
    let now = now_unix() + 1;
    let lease_all = |node: Arc<dyn Store>, name: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let leased = node
                    .queue_lease_due(now, name, LEASE_SECS, BATCH)
                    .await
                    .expect("lease");
                if leased.is_empty() {
                    return mine;
                }
                for entry in leased {
                    assert_eq!(entry.lease_owner.as_deref(), Some(name));
                    mine.push(entry.id);
                }
            }
        })
    };
    let (a, b) = tokio::join!(
        lease_all(one.clone(), "node-1"),
        lease_all(two.clone(), "node-2")
    );
    let (a, b) = (a.expect("node 1"), b.expect("node 2"));
    let a_set: BTreeSet<QueueId> = a.iter().copied().collect();
    let b_set: BTreeSet<QueueId> = b.iter().copied().collect();
    assert_eq!(a_set.len() + b_set.len(), ENTRIES, "no entry leased twice");
    assert!(a_set.is_disjoint(&b_set));
    assert_eq!(a_set.union(&b_set).copied().collect::<BTreeSet<_>>(), all);

    // Node 1 "dies" holding its leases: after they expire node 2 takes them over.
    drop(one);
    let later = now + LEASE_SECS;
    let taken = two
        .queue_lease_due(later, "node-2", LEASE_SECS, ENTRIES)
        .await
        .expect("lease after expiry");
    let taken: BTreeSet<QueueId> = taken.iter().map(|q| q.id).collect();
    assert_eq!(taken, all, "every expired lease is taken over");
}

/// Kills every connection to the test database (as a server restart or failover would).
async fn kill_connections(url: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    let driver = tokio::spawn(connection);
    client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("terminate backends");
    drop(client);
    let _ = driver.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_change_fan_out_recover_after_connections_are_killed() {
    let url = match fresh_database_url().await {
        Ok(Some(url)) => url,
        Ok(None) => {
            eprintln!("skipped: BULWARK_TEST_PG not set");
            return;
        }
        Err(e) => panic!("test PostgreSQL is not usable: {e}"),
    };
    let one = PgStore::connect(&url).await.expect("node 1");
    let two = PgStore::connect(&url).await.expect("node 2");
    let dyn_one: Arc<dyn Store> = one.clone();
    let dyn_two: Arc<dyn Store> = two.clone();
    let (account, inbox) = new_account(&dyn_one).await;
    let mut on_one = dyn_one.subscribe(account.id);

    kill_connections(&url).await;

    // The next call on each node works again (a dead idle connection is replaced).
    let deadline = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    let appended = loop {
        match dyn_two
            .email_append(account.id, vec![new_email(&[inbox.id], "after kill")])
            .await
        {
            Ok(mut appended) => break appended.remove(0),
            Err(StoreError::Unavailable(e)) if tokio::time::Instant::now() < deadline => {
                eprintln!("still unavailable: {e}");
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("append after kill: {e}"),
        }
    };
    one.ping().await.expect("node 1 answers after the kill");

    // Node 1's listener reconnects and (by NOTIFY or catch-up) reports the change.
    loop {
        let change = recv_within(&mut on_one, RECOVERY_DEADLINE).await;
        if change.modseq >= appended.modseq {
            assert!(change.mailboxes.contains(&inbox.id), "{change:?}");
            break;
        }
    }
}

/// Group commit (`writer`): concurrent deliveries to one mailbox share transactions, each
/// caller is answered with its own UID, and a delivery that fails (unknown mailbox) in a
/// batch gets its own error while the rest of its batch still lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_share_commits_and_a_failing_one_fails_alone() {
    const JOBS: usize = 80;
    let Some((one, _two)) = two_nodes().await else {
        return;
    };
    let store: Arc<dyn Store> = one.clone();
    let (account, inbox) = new_account(&store).await;
    let before = one.commit_stats();
    let mut tasks = Vec::new();
    for i in 0..JOBS {
        let store = store.clone();
        // Every tenth delivery names a mailbox that does not exist.
        let mailbox = if i % 10 == 7 {
            MailboxId(i64::MAX - 1)
        } else {
            inbox.id
        };
        tasks.push(tokio::spawn(async move {
            store
                .deliver(vec![(account.id, new_email(&[mailbox], &format!("g{i}")))])
                .await
        }));
    }
    let mut uids = BTreeSet::new();
    let mut failed = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(appended) => {
                assert_ne!(i % 10, 7, "delivery {i} to a missing mailbox succeeded");
                let (mailbox, uid) = appended[0].uids[0];
                assert_eq!(mailbox, inbox.id);
                assert!(uids.insert(uid), "UID {uid} given twice");
            }
            Err(StoreError::NotFound(_)) => {
                assert_eq!(i % 10, 7, "delivery {i} failed");
                failed += 1;
            }
            Err(e) => panic!("delivery {i}: {e}"),
        }
    }
    assert_eq!(failed, JOBS / 10);
    let messages = store
        .mailbox_messages(account.id, inbox.id)
        .await
        .expect("list");
    let listed: BTreeSet<Uid> = messages.iter().map(|m| m.uid).collect();
    assert_eq!(
        listed, uids,
        "every acknowledged delivery is listed once, nothing else"
    );
    let after = one.commit_stats();
    let (commits, jobs) = (after.commits - before.commits, after.jobs - before.jobs);
    assert_eq!(jobs, JOBS as u64);
    assert!(
        commits < jobs,
        "{jobs} deliveries took {commits} batches: no group commit"
    );
}

/// Threads inside one group-commit batch (the batch reads references ahead, then keeps them
/// up to date itself): a reply delivered together with its parent, in either order, joins
/// the parent's thread (RFC 8621 §3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_and_reply_in_one_batch_share_a_thread() {
    const PAIRS: usize = 30;
    let Some((one, _two)) = two_nodes().await else {
        return;
    };
    let store: Arc<dyn Store> = one.clone();
    let (account, inbox) = new_account(&store).await;
    let mut tasks = Vec::new();
    for i in 0..PAIRS {
        let parent = new_email(&[inbox.id], &format!("parent{i}"));
        let mut reply = new_email(&[inbox.id], &format!("reply{i}"));
        reply.summary.in_reply_to = vec![format!("parent{i}@example.test")];
        // Half the pairs arrive reply first.
        let pair = if i % 2 == 0 {
            [parent, reply]
        } else {
            [reply, parent]
        };
        for email in pair {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .deliver(vec![(account.id, email)])
                    .await
                    .expect("deliver")[0]
                    .clone()
            }));
        }
    }
    let mut appended = Vec::new();
    for t in tasks {
        appended.push(t.await.expect("task"));
    }
    let threads: BTreeSet<ThreadId> = appended.iter().map(|a| a.thread).collect();
    assert_eq!(
        threads.len(),
        PAIRS,
        "each parent and its reply share one thread"
    );
    for pair in appended.chunks(2) {
        let emails = store
            .email_get(account.id, &[pair[0].email, pair[1].email])
            .await
            .expect("get");
        assert_eq!(emails[0].thread, emails[1].thread, "a pair split: {pair:?}");
    }
}
