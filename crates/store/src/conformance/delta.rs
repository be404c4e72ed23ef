//! Conformance checks for IMAP's read paths: incremental mailbox deltas and batch reads.

use super::*;

pub async fn mailbox_delta_reports_new_changed_and_expunged(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let first = append_one(&store, a, inbox.id, "d1").await;
    append_one(&store, a, inbox.id, "d2").await;
    append_one(&store, a, inbox.id, "d3").await;
    let mark = store
        .mailbox_get(a, inbox.id)
        .await
        .expect("get")
        .expect("inbox")
        .highest_modseq;

    let quiet = store.mailbox_delta(a, inbox.id, mark).await.expect("delta");
    assert_eq!(quiet.highest_modseq, mark);
    assert!(quiet.changed.is_empty() && quiet.expunged.is_empty());

    store
        .email_set_keywords(
            a,
            vec![KeywordUpdate {
                email: first.email,
                op: KeywordOp::Add,
                keywords: vec!["$seen".into()],
                unchanged_since: None,
            }],
        )
        .await
        .expect("keywords");
    store
        .mailbox_expunge(a, inbox.id, &[Uid(2)])
        .await
        .expect("expunge");
    let fourth = append_one(&store, a, inbox.id, "d4").await;

    let delta = store.mailbox_delta(a, inbox.id, mark).await.expect("delta");
    let changed: Vec<(u32, Vec<String>)> = delta
        .changed
        .iter()
        .map(|m| (m.uid.0, m.keywords.clone()))
        .collect();
    assert_eq!(changed, vec![(1, vec!["$seen".to_string()]), (4, vec![])]);
    assert!(delta.changed.iter().all(|m| m.modseq > mark));
    assert_eq!(delta.expunged, vec![Uid(2)]);
    assert_eq!(delta.highest_modseq, fourth.modseq);
    // The same state as a full listing, for the messages that changed.
    let full = store.mailbox_messages(a, inbox.id).await.expect("list");
    for m in &delta.changed {
        assert!(
            full.contains(m),
            "delta entry {m:?} differs from the listing"
        );
    }

    let later = store
        .mailbox_delta(a, inbox.id, delta.highest_modseq)
        .await
        .expect("delta");
    assert!(later.changed.is_empty() && later.expunged.is_empty());
    assert!(matches!(
        store.mailbox_delta(a, MailboxId(i64::MAX), mark).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn blobs_and_summaries_in_batches(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    for tag in ["c1", "c2", "c3", "c4"] {
        append_one(&store, a, inbox.id, tag).await;
    }
    store
        .mailbox_expunge(a, inbox.id, &[Uid(3)])
        .await
        .expect("expunge");
    let wanted = [Uid(4), Uid(1), Uid(3), Uid(99), Uid(1)];
    let blobs = store
        .blob_get_many(&[
            BlobHash::of(&message("c4", "c4@example.test")),
            BlobHash::of(b"never stored"),
            BlobHash::of(&message("c1", "c1@example.test")),
        ])
        .await
        .expect("blobs");
    assert_eq!(
        blobs,
        vec![
            Some(message("c4", "c4@example.test")),
            None,
            Some(message("c1", "c1@example.test")),
        ]
    );
    let summaries = store
        .message_summaries(a, inbox.id, &wanted)
        .await
        .expect("summaries");
    let subjects: Vec<(u32, String)> = summaries
        .into_iter()
        .map(|(u, s)| (u.0, s.subject))
        .collect();
    assert_eq!(subjects, vec![(1, "c1".into()), (4, "c4".into())]);
    // A sparse set far apart (an IN list, not a range scan) and an empty one.
    let sparse = store
        .message_summaries(a, inbox.id, &[Uid(1), Uid(4_000_000)])
        .await
        .expect("summaries");
    assert_eq!(sparse.len(), 1);
    assert!(
        store
            .message_summaries(a, inbox.id, &[])
            .await
            .expect("summaries")
            .is_empty()
    );
}
