//! Conformance checks for the change log, threads, the queue, notifications and concurrency.

use super::*;
use crate::changelog::ChangeKind;

pub async fn changes_since_collapses_and_pages(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let s0 = store.account_modseq(a).await.expect("modseq");
    let e1 = append_one(&store, a, inbox.id, "ch1").await;
    store
        .email_set_keywords(
            a,
            vec![KeywordUpdate {
                email: e1.email,
                op: KeywordOp::Add,
                keywords: vec!["$seen".into()],
                unchanged_since: None,
            }],
        )
        .await
        .expect("seen");
    let e2 = append_one(&store, a, inbox.id, "ch2").await;
    store.email_destroy(a, &[e2.email]).await.expect("destroy");
    let folder = store
        .mailbox_create(a, "Folder", None)
        .await
        .expect("create");

    let c = store.changes_since(a, s0, 100).await.expect("changes");
    assert!(!c.has_more);
    assert_eq!(c.new_modseq, store.account_modseq(a).await.expect("modseq"));
    assert_eq!(
        c.emails.created,
        vec![e1.email],
        "created+updated → created; created+destroyed → omitted"
    );
    assert!(c.emails.updated.is_empty() && c.emails.destroyed.is_empty());
    assert_eq!(c.threads.created, vec![e1.thread]);
    assert_eq!(c.mailboxes.created, vec![folder.id]);
    assert_eq!(c.mailboxes.updated, vec![inbox.id]);

    let s1 = c.new_modseq;
    store
        .email_set_keywords(
            a,
            vec![KeywordUpdate {
                email: e1.email,
                op: KeywordOp::Add,
                keywords: vec!["x".into()],
                unchanged_since: None,
            }],
        )
        .await
        .expect("kw");
    let c = store.changes_since(a, s1, 100).await.expect("changes");
    assert_eq!(c.emails.updated, vec![e1.email]);
    assert!(
        c.mailboxes.updated.is_empty(),
        "a non-$seen keyword leaves mailbox counts alone"
    );
    store.email_destroy(a, &[e1.email]).await.expect("destroy");
    let c = store.changes_since(a, s1, 100).await.expect("changes");
    assert_eq!(
        c.emails.destroyed,
        vec![e1.email],
        "updated+destroyed → destroyed"
    );
    assert_eq!(c.threads.destroyed, vec![e1.thread]);
    let c = store
        .changes_since(a, c.new_modseq, 100)
        .await
        .expect("changes");
    assert_eq!(
        c,
        ChangeSet {
            new_modseq: c.new_modseq,
            ..ChangeSet::default()
        }
    );

    // Paging: many creations, small max; the pages add up to everything, in order.
    let s2 = store.account_modseq(a).await.expect("modseq");
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            append_one(&store, a, inbox.id, &format!("p{i}"))
                .await
                .email,
        );
    }
    let mut since = s2;
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let c = store.changes_since(a, since, 3).await.expect("page");
        let objects = c.emails.created.len() + c.mailboxes.updated.len() + c.threads.created.len();
        assert!(
            objects <= 3 || c.emails.created.len() == 1,
            "page too large: {c:?}"
        );
        assert!(c.new_modseq > since || !c.has_more);
        got.extend(c.emails.created);
        since = c.new_modseq;
        pages += 1;
        assert!(pages < 50, "paging does not progress");
        if !c.has_more {
            break;
        }
    }
    assert!(pages > 1, "max was honoured");
    assert_eq!(got, created);

    let current = store.account_modseq(a).await.expect("modseq");
    let future = store.changes_since(a, ModSeq(current.0 + 10), 10).await;
    assert!(
        matches!(future, Err(StoreError::CannotCalculateChanges(_))),
        "{future:?}"
    );
    assert!(matches!(
        store.changes_since(a, current, 0).await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn replies_join_the_thread(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let root = append_one(&store, a, inbox.id, "root").await;
    let mut reply = new_email(&[inbox.id], "reply");
    reply.summary.in_reply_to = vec!["<root@example.test>".into()];
    reply.summary.references = vec!["<root@example.test>".into()];
    let reply = store
        .email_append(a, vec![reply])
        .await
        .expect("append")
        .remove(0);
    assert_eq!(reply.thread, root.thread);
    // Only References (no In-Reply-To), pointing at the reply.
    let mut deeper = new_email(&[inbox.id], "deeper");
    deeper.summary.references = vec!["<unknown@x>".into(), "reply@example.test".into()];
    let deeper = store
        .email_append(a, vec![deeper])
        .await
        .expect("append")
        .remove(0);
    assert_eq!(deeper.thread, root.thread);
    let other = append_one(&store, a, inbox.id, "other").await;
    assert_ne!(other.thread, root.thread);
    let status = store.mailbox_status(a, inbox.id).await.expect("status");
    assert_eq!((status.messages, status.threads), (4, 2));
    // Message-IDs of another account do not thread.
    let (bob, bob_inbox) = new_account(&store).await;
    let mut foreign = new_email(&[bob_inbox.id], "foreign");
    foreign.summary.in_reply_to = vec!["<root@example.test>".into()];
    let foreign = store
        .email_append(bob.id, vec![foreign])
        .await
        .expect("append")
        .remove(0);
    assert_ne!(foreign.thread, root.thread);
}

/// RFC 8621 §3: threads join by any shared Message-ID (Message-ID, In-Reply-To,
/// References) in either direction, whatever the arrival order, and a missing link that
/// arrives merges two threads — with the moved emails and the destroyed thread logged.
pub async fn threads_join_in_any_order_and_merge(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let append = |email: NewEmail| {
        let store = store.clone();
        async move {
            store
                .email_append(a, vec![email])
                .await
                .expect("append")
                .remove(0)
        }
    };
    let reply_to = |tag: &str, parent: &str| {
        let mut e = new_email(&[inbox.id], tag);
        e.summary.in_reply_to = vec![format!("<{parent}>")];
        e.summary.references = vec![format!("<{parent}>")];
        e
    };
    // Two replies to an absent parent share a thread.
    let r1 = append(reply_to("r1", "absent@x")).await;
    let r2 = append(reply_to("r2", "absent@x")).await;
    assert_eq!(r1.thread, r2.thread, "siblings of an absent parent");
    // The parent arriving after its reply joins the reply's thread.
    let child = append(reply_to("late-child", "late-parent@example.test")).await;
    let parent = append_one(&store, a, inbox.id, "late-parent").await;
    assert_eq!(parent.thread, child.thread, "a parent after its reply");
    assert_ne!(parent.thread, r1.thread);
    // Two threads: a root, and a grandchild whose parent has not arrived. The parent
    // (replying to the root) is the missing link: the later thread merges into the older.
    let root = append_one(&store, a, inbox.id, "m-root").await;
    let mut grandchild = new_email(&[inbox.id], "m-grandchild");
    grandchild.summary.in_reply_to = vec!["<m-mid@example.test>".into()];
    let grandchild = append(grandchild).await;
    assert_ne!(grandchild.thread, root.thread);
    let before = store.account_modseq(a).await.expect("modseq");
    let mid = append(reply_to("m-mid", "m-root@example.test")).await;
    assert_eq!(mid.thread, root.thread, "the older thread survives");
    let got = store
        .email_get(a, &[root.email, grandchild.email, mid.email])
        .await
        .expect("email_get");
    assert!(got.iter().all(|e| e.thread == root.thread), "{got:?}");
    let c = store.changes_since(a, before, 100).await.expect("changes");
    assert_eq!(c.emails.created, vec![mid.email]);
    assert_eq!(
        c.emails.updated,
        vec![grandchild.email],
        "its threadId changed"
    );
    assert_eq!(c.threads.updated, vec![root.thread]);
    assert_eq!(c.threads.destroyed, vec![grandchild.thread]);
    let status = store.mailbox_status(a, inbox.id).await.expect("status");
    assert_eq!((status.messages, status.threads), (7, 3));
    // The merged thread keeps attracting by the absorbed thread's ids too.
    let late = append(reply_to("m-late", "m-grandchild@example.test")).await;
    assert_eq!(late.thread, root.thread);
    // A destroyed thread's ids are forgotten: a new email naming them starts afresh.
    store
        .email_destroy(a, &[r1.email, r2.email])
        .await
        .expect("destroy");
    let again = append(reply_to("r3", "absent@x")).await;
    assert_ne!(again.thread, r1.thread);
}

pub async fn queue_lease_and_update(store: Arc<dyn Store>) {
    let raw = Arc::new(b"Subject: out\r\n\r\nhello\r\n".to_vec());
    let id = store
        .queue_enqueue(NewQueued {
            sender: "alice@example.test".into(),
            recipients: vec!["a@remote.test".into(), "b@remote.test".into()],
            raw: raw.clone(),
            expires_at: now_unix() + 86_400,
        })
        .await
        .expect("enqueue");
    let entry = store.queue_get(id).await.expect("get").expect("exists");
    assert_eq!(entry.recipients.len(), 2);
    assert!(
        entry
            .recipients
            .iter()
            .all(|r| r.status == RcptStatus::Pending)
    );
    assert_eq!(entry.size as usize, raw.len());
    assert_eq!(
        store.blob_get(&entry.blob).await.expect("blob"),
        Some(raw.to_vec())
    );
    assert!(
        store
            .queue_list()
            .await
            .expect("list")
            .iter()
            .any(|q| q.id == id)
    );

    // Far in the future so entries of other checks sharing the store are due too; only ours matters.
    let now = now_unix() + 1_000;
    let leased = store
        .queue_lease_due(now, "node-a", 60, 1000)
        .await
        .expect("lease");
    let mine = leased
        .iter()
        .find(|q| q.id == id)
        .expect("our entry is leased")
        .clone();
    assert_eq!(mine.lease_owner.as_deref(), Some("node-a"));
    assert_eq!(mine.lease_until, now + 60);
    let again = store
        .queue_lease_due(now, "node-b", 60, 1000)
        .await
        .expect("lease");
    assert!(
        again.iter().all(|q| q.id != id),
        "a leased entry is not leased twice"
    );
    let expired = store
        .queue_lease_due(now + 61, "node-b", 60, 1000)
        .await
        .expect("lease");
    let theirs = expired
        .iter()
        .find(|q| q.id == id && q.lease_owner.as_deref() == Some("node-b"))
        .expect("an expired lease is taken over")
        .clone();

    // The stale holder (node-a) may not write back: not even a final "delivered".
    let mut stale = mine.clone();
    stale.recipients[0].status = RcptStatus::Delivered;
    stale.recipients[1].status = RcptStatus::Delivered;
    assert!(
        matches!(
            store.queue_update(&stale).await,
            Err(StoreError::Invalid(_))
        ),
        "a stale lease owner's update is refused"
    );
    let kept = store
        .queue_get(id)
        .await
        .expect("get")
        .expect("not deleted");
    assert_eq!(kept.lease_owner.as_deref(), Some("node-b"));
    assert!(
        kept.recipients
            .iter()
            .all(|r| r.status == RcptStatus::Pending)
    );

    // One delivered, one still pending: kept, lease released, rescheduled.
    let mut update = theirs.clone();
    update.recipients[0].status = RcptStatus::Delivered;
    update.attempts = 1;
    update.next_attempt = now + 300;
    store.queue_update(&update).await.expect("update");
    let stored = store.queue_get(id).await.expect("get").expect("kept");
    assert_eq!(
        (
            stored.attempts,
            stored.next_attempt,
            stored.lease_owner.clone()
        ),
        (1, now + 300, None)
    );
    assert_eq!(stored.recipients[0].status, RcptStatus::Delivered);
    assert!(
        store
            .queue_lease_due(now + 100, "n", 60, 1000)
            .await
            .expect("lease")
            .iter()
            .all(|q| q.id != id)
    );

    // Failed without DSN sent: kept; with DSN sent: deleted.
    let mut failed = stored.clone();
    failed.recipients[1].status = RcptStatus::Failed;
    failed.recipients[1].last_error = Some("550 no such user".into());
    store.queue_update(&failed).await.expect("update");
    assert!(
        store.queue_get(id).await.expect("get").is_some(),
        "kept until the DSN is sent"
    );
    failed.dsn_sent = true;
    store.queue_update(&failed).await.expect("update");
    assert_eq!(store.queue_get(id).await.expect("get"), None);
    assert!(matches!(
        store.queue_update(&failed).await,
        Err(StoreError::NotFound(_))
    ));

    // retry_now makes a future entry due; delete removes it.
    let id2 = store
        .queue_enqueue(NewQueued {
            sender: String::new(),
            recipients: vec!["c@remote.test".into()],
            raw,
            expires_at: 0,
        })
        .await
        .expect("enqueue");
    let mut later = store.queue_get(id2).await.expect("get").expect("exists");
    later.next_attempt = now_unix() + 10_000;
    store.queue_update(&later).await.expect("postpone");
    store.queue_retry_now(id2).await.expect("retry");
    let due = store.queue_get(id2).await.expect("get").expect("exists");
    assert!(due.next_attempt <= now_unix());
    store.queue_delete(id2).await.expect("delete");
    assert!(matches!(
        store.queue_delete(id2).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn subscribe_receives_state_change(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let mut rx = store.subscribe(account.id);
    let appended = append_one(&store, account.id, inbox.id, "notify").await;
    let change = next_change(&mut rx).await;
    assert_eq!(change.account, account.id);
    assert_eq!(change.modseq, appended.modseq);
    assert_eq!(change.mailboxes, vec![inbox.id]);
    let r = store
        .email_set_keywords(
            account.id,
            vec![KeywordUpdate {
                email: appended.email,
                op: KeywordOp::Add,
                keywords: vec!["$seen".into()],
                unchanged_since: None,
            }],
        )
        .await
        .expect("kw");
    let change = next_change(&mut rx).await;
    assert_eq!(
        (change.modseq, change.mailboxes),
        (r.modseq, vec![inbox.id])
    );
}

pub async fn concurrent_appends_get_distinct_uids(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    const PER_TASK: usize = 10;
    let (account, inbox) = new_account(&store).await;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..PER_TASK {
                let appended = append_one(&store, account.id, inbox.id, &format!("t{t}-{i}")).await;
                got.push(appended.uids[0].1.0);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for handle in handles {
        all.extend(handle.await.expect("task"));
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), TASKS * PER_TASK, "UIDs are distinct");
    assert_eq!(
        uids(&store, account.id, inbox.id).await,
        all,
        "every append landed"
    );
    let status = store
        .mailbox_status(account.id, inbox.id)
        .await
        .expect("status");
    assert_eq!(status.uid_next, Uid((TASKS * PER_TASK) as u32 + 1));
}

/// JMAP per-type states (RFC 8620 §1.2, RFC 8621 §1.5): each mail kind has its own state,
/// `/changes` of one kind counts and returns only that kind, and subscribers are told which
/// kinds a commit logged and whether it delivered mail.
pub async fn mail_states_are_per_type(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let flag = |email, keyword: &str| KeywordUpdate {
        email,
        op: KeywordOp::Add,
        keywords: vec![keyword.into()],
        unchanged_since: None,
    };
    let mut rx = store.subscribe(a);

    let e1 = append_one(&store, a, inbox.id, "pt1").await;
    let after_append = store.mail_states(a).await.expect("states");
    assert_eq!(
        after_append,
        MailStates {
            email: e1.modseq,
            mailbox: e1.modseq,
            thread: e1.modseq
        },
        "an append logs an email, its thread and the mailbox counts"
    );
    let change = next_change(&mut rx).await;
    assert_eq!(
        change.mail,
        Some(MailChanged {
            email: true,
            mailbox: true,
            thread: true,
            delivery: false
        }),
        "the user's own append is no EmailDelivery"
    );

    // A keyword other than $seen changes the Email state only.
    store
        .email_set_keywords(a, vec![flag(e1.email, "$flagged")])
        .await
        .expect("flag");
    let after_flag = store.mail_states(a).await.expect("states");
    assert!(after_flag.email > after_append.email);
    assert_eq!(after_flag.mailbox, after_append.mailbox);
    assert_eq!(after_flag.thread, after_append.thread);
    let change = next_change(&mut rx).await;
    assert_eq!(
        change.mail,
        Some(MailChanged {
            email: true,
            ..MailChanged::default()
        })
    );
    let mb = store
        .kind_changes_since(a, ChangeKind::Mailbox, after_append.mailbox, 100)
        .await
        .expect("mailbox changes");
    assert!(mb.mailboxes.updated.is_empty() && !mb.has_more);
    assert_eq!(
        mb.new_modseq, after_flag.mailbox,
        "Mailbox/changes ends at the Mailbox state"
    );
    let em = store
        .kind_changes_since(a, ChangeKind::Email, after_append.email, 100)
        .await
        .expect("email changes");
    assert_eq!(em.emails.updated, vec![e1.email]);
    assert_eq!(em.new_modseq, after_flag.email);
    assert!(em.mailboxes.updated.is_empty() && em.threads.updated.is_empty());

    // $seen changes the unread counts: the Mailbox state moves too, the Thread state not.
    store
        .email_set_keywords(a, vec![flag(e1.email, "$seen")])
        .await
        .expect("seen");
    let after_seen = store.mail_states(a).await.expect("states");
    assert!(after_seen.email > after_flag.email);
    assert_eq!(after_seen.mailbox, after_seen.email);
    assert_eq!(after_seen.thread, after_append.thread);
    let mb = store
        .kind_changes_since(a, ChangeKind::Mailbox, after_flag.mailbox, 100)
        .await
        .expect("mailbox changes");
    assert_eq!(mb.mailboxes.updated, vec![inbox.id]);
    let th = store
        .kind_changes_since(a, ChangeKind::Thread, after_seen.thread, 100)
        .await
        .expect("thread changes");
    assert!(th.threads.updated.is_empty() && th.new_modseq == after_seen.thread);

    // Delivery is EmailDelivery.
    while rx.try_recv().is_ok() {}
    store
        .deliver(vec![(a, new_email(&[inbox.id], "pt-delivered"))])
        .await
        .expect("deliver");
    let change = next_change(&mut rx).await;
    assert_eq!(change.mail.map(|m| m.delivery), Some(true));

    // Paging one kind: only its entries count towards max.
    let since = store.mail_states(a).await.expect("states").email;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            append_one(&store, a, inbox.id, &format!("pt-page{i}"))
                .await
                .email,
        );
    }
    let (mut got, mut from, mut pages) = (Vec::new(), since, 0);
    loop {
        let c = store
            .kind_changes_since(a, ChangeKind::Email, from, 2)
            .await
            .expect("page");
        assert!(c.emails.created.len() <= 2, "{c:?}");
        assert!(c.mailboxes.updated.is_empty() && c.threads.created.is_empty());
        got.extend(c.emails.created);
        from = c.new_modseq;
        pages += 1;
        assert!(pages < 20, "paging does not progress");
        if !c.has_more {
            break;
        }
    }
    assert_eq!(got, created);
    assert_eq!(from, store.mail_states(a).await.expect("states").email);

    // A state from the future cannot be answered.
    let states = store.mail_states(a).await.expect("states");
    let future = store
        .kind_changes_since(a, ChangeKind::Thread, ModSeq(states.thread.0 + 1), 10)
        .await;
    assert!(
        matches!(future, Err(StoreError::CannotCalculateChanges(_))),
        "{future:?}"
    );
}
