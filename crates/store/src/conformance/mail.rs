//! Conformance checks for emails: append, deliver, keywords, copy/move/expunge.

use super::*;

pub async fn append_assigns_increasing_uids(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let first = append_one(&store, a, inbox.id, "one").await;
    let second = append_one(&store, a, inbox.id, "two").await;
    let third = append_one(&store, a, inbox.id, "three").await;
    assert_eq!(first.uids, vec![(inbox.id, Uid(1))]);
    assert_eq!(second.uids, vec![(inbox.id, Uid(2))]);
    assert_eq!(third.uids, vec![(inbox.id, Uid(3))]);
    assert!(first.modseq < second.modseq && second.modseq < third.modseq);
    assert_eq!(
        first.blob,
        BlobHash::of(&message("one", "one@example.test"))
    );
    assert_eq!(uids(&store, a, inbox.id).await, vec![1, 2, 3]);

    let status = store.mailbox_status(a, inbox.id).await.expect("status");
    assert_eq!(status.messages, 3);
    assert_eq!(status.unseen, 3);
    assert_eq!(status.uid_next, Uid(4));
    assert_eq!(status.uid_validity, inbox.uid_validity);
    assert_eq!(status.threads, 3);
    assert!(status.highest_modseq >= third.modseq);
    let total: u64 = ["one", "two", "three"]
        .iter()
        .map(|t| message(t, &format!("{t}@example.test")).len() as u64)
        .sum();
    assert_eq!(status.size, total);

    let raw = store
        .blob_get(&first.blob)
        .await
        .expect("blob_get")
        .expect("blob exists");
    assert_eq!(raw, message("one", "one@example.test"));
    assert_eq!(
        store
            .blob_get(&BlobHash::of(b"nothing"))
            .await
            .expect("blob_get"),
        None
    );
    let put = store.blob_put(a, b"upload").await.expect("blob_put");
    assert_eq!(put, BlobHash::of(b"upload"));
    assert_eq!(
        store.blob_put(a, b"upload").await.expect("blob_put again"),
        put,
        "content-addressed"
    );

    // One email in two mailboxes gets a UID in each; identical content shares the blob.
    let archive = mailbox_by_role(&store, a, Role::Archive).await;
    let mut new = new_email(&[inbox.id, archive.id], "one");
    new.keywords = vec!["$Seen".into(), "$seen".into(), "Custom".into()];
    let both = store
        .email_append(a, vec![new])
        .await
        .expect("append")
        .remove(0);
    assert_eq!(both.uids, vec![(inbox.id, Uid(4)), (archive.id, Uid(1))]);
    assert_eq!(both.blob, first.blob);
    let email = store
        .email_get(a, &[both.email])
        .await
        .expect("email_get")
        .remove(0);
    assert_eq!(
        email.keywords,
        vec!["$seen".to_string(), "custom".to_string()]
    );
    assert_eq!(email.mailboxes.len(), 2);
    assert_eq!(email.summary.subject, "one");
    assert_eq!(
        email.size as usize,
        message("one", "one@example.test").len()
    );
    assert_eq!(
        store
            .mailbox_status(a, inbox.id)
            .await
            .expect("status")
            .unseen,
        3
    );

    let listed = store.email_list(a).await.expect("email_list");
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].received_at >= w[1].received_at)
    );
    let metas = store.mailbox_messages(a, inbox.id).await.expect("messages");
    assert_eq!(metas[3].email, both.email);
    assert_eq!(
        metas[3].keywords,
        vec!["$seen".to_string(), "custom".to_string()]
    );
    assert_eq!(metas[0].blob, first.blob);
}

pub async fn append_is_all_or_nothing(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let (other, other_inbox) = new_account(&store).await;
    let before = store.account_modseq(account.id).await.expect("modseq");
    // The second email targets a mailbox of another account: nothing is stored.
    let result = store
        .email_append(
            account.id,
            vec![
                new_email(&[inbox.id], "good"),
                new_email(&[other_inbox.id], "bad"),
            ],
        )
        .await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    assert!(uids(&store, account.id, inbox.id).await.is_empty());
    assert!(uids(&store, other.id, other_inbox.id).await.is_empty());
    assert_eq!(
        store.account_modseq(account.id).await.expect("modseq"),
        before
    );
    let empty = store
        .email_append(account.id, vec![new_email(&[], "none")])
        .await;
    assert!(matches!(empty, Err(StoreError::Invalid(_))));
    // UIDs were not consumed by the failed attempt.
    let ok = append_one(&store, account.id, inbox.id, "after").await;
    assert_eq!(ok.uids, vec![(inbox.id, Uid(1))]);
}

pub async fn deliver_reaches_several_accounts(store: Arc<dyn Store>) {
    let (alice, alice_inbox) = new_account(&store).await;
    let (bob, bob_inbox) = new_account(&store).await;
    let delivered = store
        .deliver(vec![
            (alice.id, new_email(&[alice_inbox.id], "hi")),
            (bob.id, new_email(&[bob_inbox.id], "hi")),
        ])
        .await
        .expect("deliver");
    assert_eq!(delivered.len(), 2);
    assert_eq!(
        (delivered[0].account, delivered[1].account),
        (alice.id, bob.id)
    );
    assert_eq!(delivered[0].blob, delivered[1].blob);
    assert_eq!(uids(&store, alice.id, alice_inbox.id).await, vec![1]);
    assert_eq!(uids(&store, bob.id, bob_inbox.id).await, vec![1]);
    let failed = store
        .deliver(vec![
            (alice.id, new_email(&[alice_inbox.id], "x")),
            (AccountId(i64::MAX), new_email(&[bob_inbox.id], "x")),
        ])
        .await;
    assert!(failed.is_err());
    assert_eq!(
        uids(&store, alice.id, alice_inbox.id).await,
        vec![1],
        "failed delivery stored nothing"
    );
}

pub async fn keywords_are_normalized_and_conflicts_detected(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let e = append_one(&store, a, inbox.id, "k").await;
    let update = |op, kws: &[&str], since: Option<ModSeq>| KeywordUpdate {
        email: e.email,
        op,
        keywords: kws.iter().map(|s| s.to_string()).collect(),
        unchanged_since: since,
    };
    let r = store
        .email_set_keywords(
            a,
            vec![update(
                KeywordOp::Add,
                &["$Seen", "$Flagged", "$seen"],
                None,
            )],
        )
        .await
        .expect("add");
    assert_eq!(r.updated.len(), 1);
    let (_, m1, kws) = &r.updated[0];
    assert_eq!(kws, &vec!["$flagged".to_string(), "$seen".to_string()]);
    assert!(*m1 > e.modseq);
    assert_eq!(r.modseq, *m1);
    assert_eq!(
        store
            .mailbox_status(a, inbox.id)
            .await
            .expect("status")
            .unseen,
        0
    );
    let meta = store
        .mailbox_messages(a, inbox.id)
        .await
        .expect("messages")
        .remove(0);
    assert_eq!(meta.modseq, *m1);
    assert_eq!(
        store
            .mailbox_get(a, inbox.id)
            .await
            .expect("get")
            .expect("inbox")
            .highest_modseq,
        *m1
    );

    // Adding what is there changes nothing and takes no modseq.
    let r = store
        .email_set_keywords(a, vec![update(KeywordOp::Add, &["$seen"], None)])
        .await
        .expect("noop");
    assert!(r.updated.is_empty() && r.conflicts.is_empty());
    assert_eq!(r.modseq, *m1);

    // RFC 7162 §3.1.3: UNCHANGEDSINCE older than the message's modseq → conflict.
    let stale = ModSeq(m1.0 - 1);
    let r = store
        .email_set_keywords(a, vec![update(KeywordOp::Remove, &["$seen"], Some(stale))])
        .await
        .expect("conflict");
    assert_eq!(r.conflicts, vec![e.email]);
    assert!(r.updated.is_empty());
    let r = store
        .email_set_keywords(a, vec![update(KeywordOp::Remove, &["$SEEN"], Some(*m1))])
        .await
        .expect("remove");
    assert_eq!(r.updated[0].2, vec!["$flagged".to_string()]);
    let r = store
        .email_set_keywords(
            a,
            vec![update(KeywordOp::Replace, &["Work", "$draft"], None)],
        )
        .await
        .expect("replace");
    assert_eq!(
        r.updated[0].2,
        vec!["$draft".to_string(), "work".to_string()]
    );
    let bad = store
        .email_set_keywords(a, vec![update(KeywordOp::Add, &["two words"], None)])
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))));
    let email = store.email_get(a, &[e.email]).await.expect("get").remove(0);
    assert_eq!(
        email.keywords,
        vec!["$draft".to_string(), "work".to_string()]
    );
    assert_eq!(email.modseq, r.updated[0].1);
}

pub async fn copy_move_and_expunge(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let archive = mailbox_by_role(&store, a, Role::Archive).await;
    let trash = mailbox_by_role(&store, a, Role::Trash).await;
    let e1 = append_one(&store, a, inbox.id, "c1").await;
    let e2 = append_one(&store, a, inbox.id, "c2").await;
    store
        .email_set_keywords(
            a,
            vec![KeywordUpdate {
                email: e1.email,
                op: KeywordOp::Add,
                keywords: vec!["$flagged".into()],
                unchanged_since: None,
            }],
        )
        .await
        .expect("flag");

    // COPY: a new email sharing the blob and keywords.
    let copied = store
        .email_copy(a, &[e1.email, e2.email], archive.id)
        .await
        .expect("copy");
    assert_eq!(copied.len(), 2);
    assert_eq!(
        (copied[0].0, copied[0].2, copied[1].2),
        (e1.email, Uid(1), Uid(2))
    );
    assert_ne!(copied[0].1, e1.email);
    let copy = store
        .email_get(a, &[copied[0].1])
        .await
        .expect("get")
        .remove(0);
    assert_eq!(copy.blob, e1.blob);
    assert_eq!(copy.keywords, vec!["$flagged".to_string()]);
    assert_eq!(copy.mailboxes, vec![(archive.id, Uid(1))]);
    assert_eq!(
        uids(&store, a, inbox.id).await,
        vec![1, 2],
        "source untouched"
    );

    // MOVE: new UID in Trash, gone from INBOX, same email object.
    let moved = store
        .email_set_mailboxes(
            a,
            vec![MembershipUpdate {
                email: e1.email,
                add: vec![trash.id],
                remove: vec![inbox.id],
            }],
        )
        .await
        .expect("move");
    assert_eq!(moved, vec![(e1.email, vec![(trash.id, Uid(1))])]);
    assert_eq!(uids(&store, a, inbox.id).await, vec![2]);
    let email = store
        .email_get(a, &[e1.email])
        .await
        .expect("get")
        .remove(0);
    assert_eq!(email.mailboxes, vec![(trash.id, Uid(1))]);

    // EXPUNGE of the last membership destroys the email; UIDs are not reused.
    let before = store
        .mailbox_get(a, trash.id)
        .await
        .expect("get")
        .expect("trash")
        .highest_modseq;
    let modseq = store
        .mailbox_expunge(a, trash.id, &[Uid(1), Uid(99)])
        .await
        .expect("expunge");
    assert!(modseq > before);
    assert!(uids(&store, a, trash.id).await.is_empty());
    assert!(
        store
            .email_get(a, &[e1.email])
            .await
            .expect("get")
            .is_empty()
    );
    let again = append_one(&store, a, trash.id, "c3").await;
    assert_eq!(again.uids, vec![(trash.id, Uid(2))]);

    // Removing the last mailbox via set_mailboxes destroys too; destroy removes everywhere.
    store
        .email_set_mailboxes(
            a,
            vec![MembershipUpdate {
                email: again.email,
                add: vec![],
                remove: vec![trash.id],
            }],
        )
        .await
        .expect("remove");
    assert!(
        store
            .email_get(a, &[again.email])
            .await
            .expect("get")
            .is_empty()
    );
    store.email_destroy(a, &[e2.email]).await.expect("destroy");
    assert!(uids(&store, a, inbox.id).await.is_empty());
    assert_eq!(
        store
            .mailbox_status(a, inbox.id)
            .await
            .expect("status")
            .messages,
        0
    );
    assert_eq!(
        store
            .mailbox_status(a, archive.id)
            .await
            .expect("status")
            .messages,
        2
    );
}

pub async fn expunged_since_lists_vanished_uids(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    for tag in ["v1", "v2", "v3"] {
        append_one(&store, a, inbox.id, tag).await;
    }
    let mark = store
        .mailbox_get(a, inbox.id)
        .await
        .expect("get")
        .expect("inbox")
        .highest_modseq;
    let after_first = store
        .mailbox_expunge(a, inbox.id, &[Uid(2)])
        .await
        .expect("expunge");
    store
        .mailbox_expunge(a, inbox.id, &[Uid(3)])
        .await
        .expect("expunge");
    assert_eq!(
        store
            .expunged_since(a, inbox.id, mark)
            .await
            .expect("since"),
        vec![Uid(2), Uid(3)]
    );
    assert_eq!(
        store
            .expunged_since(a, inbox.id, after_first)
            .await
            .expect("since"),
        vec![Uid(3)]
    );
    let now = store
        .mailbox_get(a, inbox.id)
        .await
        .expect("get")
        .expect("inbox")
        .highest_modseq;
    assert!(
        store
            .expunged_since(a, inbox.id, now)
            .await
            .expect("since")
            .is_empty()
    );
    // The remaining message keeps its modseq below the expunges.
    let metas = store.mailbox_messages(a, inbox.id).await.expect("messages");
    assert_eq!(metas.len(), 1);
    assert!(metas[0].modseq <= mark);
}

pub async fn mailbox_delete_destroys_only_orphaned_emails(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let folder = store
        .mailbox_create(a, "Folder", None)
        .await
        .expect("create");
    let only_here = append_one(&store, a, folder.id, "only").await;
    let shared = store
        .email_append(a, vec![new_email(&[folder.id, inbox.id], "shared")])
        .await
        .expect("append");
    store.mailbox_delete(a, folder.id).await.expect("delete");
    assert!(
        store
            .email_get(a, &[only_here.email])
            .await
            .expect("get")
            .is_empty()
    );
    let kept = store.email_get(a, &[shared[0].email]).await.expect("get");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].mailboxes, vec![(inbox.id, Uid(1))]);
}
