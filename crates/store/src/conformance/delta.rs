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

/// A delta that covers most of a big mailbox (a session that last saw it before a mass
/// delivery; backends may read it with one scan instead of their indexes) says exactly
/// what the full listing says about the messages changed after the mark.
pub async fn mailbox_delta_over_most_of_a_big_mailbox_matches_the_listing(store: Arc<dyn Store>) {
    const MESSAGES: usize = 5_000;
    const BATCH: usize = 500;
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let modseq_now = || async {
        store
            .mailbox_get(a, inbox.id)
            .await
            .expect("get")
            .expect("inbox")
            .highest_modseq
    };
    let start = modseq_now().await;
    let mut marks = vec![start];
    let mut emails = Vec::with_capacity(MESSAGES);
    for batch in 0..MESSAGES / BATCH {
        let news = (0..BATCH)
            .map(|i| new_email(&[inbox.id], &format!("big{}", batch * BATCH + i)))
            .collect();
        emails.extend(store.email_append(a, news).await.expect("append"));
        if batch == 1 {
            marks.push(modseq_now().await);
        }
    }
    store
        .email_set_keywords(
            a,
            vec![KeywordUpdate {
                email: emails[7].email,
                op: KeywordOp::Add,
                keywords: vec!["$flagged".into()],
                unchanged_since: None,
            }],
        )
        .await
        .expect("keywords");
    store
        .mailbox_expunge(a, inbox.id, &[Uid(3), Uid(4_000)])
        .await
        .expect("expunge");
    let full = store.mailbox_messages(a, inbox.id).await.expect("list");
    assert_eq!(full.len(), MESSAGES - 2);
    for mark in marks {
        let delta = store.mailbox_delta(a, inbox.id, mark).await.expect("delta");
        let want: Vec<&MessageMeta> = full.iter().filter(|m| m.modseq > mark).collect();
        assert_eq!(delta.changed.iter().collect::<Vec<_>>(), want);
        assert_eq!(delta.expunged, vec![Uid(3), Uid(4_000)]);
        assert_eq!(delta.highest_modseq, modseq_now().await);
    }
    let flagged = full.iter().find(|m| m.uid == Uid(8)).expect("uid 8");
    assert_eq!(flagged.keywords, vec!["$flagged".to_string()]);
}

/// IMAP SEARCH SUBJECT/FROM/TO/CC read only these fields; they are the summary's, follow
/// the email on copy, and leave with it.
pub async fn search_headers_in_batches_follow_the_email(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let archive = mailbox_by_role(&store, a, Role::Archive).await;
    let headers = |n: u32| SearchHeaders {
        subject: format!("Grüße {n}"),
        from: format!("Zoë {n} <z{n}@example.test>"),
        to: format!("to{n}@example.test"),
        cc: if n == 2 {
            String::new()
        } else {
            format!("cc{n}@example.test")
        },
    };
    let news = (1..=4)
        .map(|n| {
            let h = headers(n);
            let mut e = new_email(&[inbox.id], &h.subject);
            e.summary.from = h.from;
            e.summary.to = h.to;
            e.summary.cc = h.cc;
            e
        })
        .collect();
    let appended = store.email_append(a, news).await.expect("append");
    store
        .mailbox_expunge(a, inbox.id, &[Uid(3)])
        .await
        .expect("expunge");
    let read = |mailbox: MailboxId, uids: Vec<u32>| {
        let store = store.clone();
        async move {
            let uids: Vec<Uid> = uids.into_iter().map(Uid).collect();
            store
                .message_search_headers(a, mailbox, &uids)
                .await
                .expect("search headers")
                .into_iter()
                .map(|(u, h)| (u.0, h))
                .collect::<Vec<_>>()
        }
    };
    let want = vec![(1, headers(1)), (2, headers(2)), (4, headers(4))];
    // Dense, unordered with duplicates and unknown UIDs, sparse, empty.
    assert_eq!(read(inbox.id, vec![1, 2, 3, 4]).await, want);
    assert_eq!(read(inbox.id, vec![4, 1, 99, 2, 1, 3]).await, want);
    assert_eq!(
        read(inbox.id, vec![4, 4_000_000, 1]).await,
        vec![(1, headers(1)), (4, headers(4))]
    );
    assert!(read(inbox.id, vec![]).await.is_empty());
    // The same fields as the stored summary.
    let summaries = store
        .message_summaries(a, inbox.id, &[Uid(1), Uid(2), Uid(4)])
        .await
        .expect("summaries");
    let from_summaries: Vec<(u32, SearchHeaders)> = summaries
        .into_iter()
        .map(|(u, s)| (u.0, SearchHeaders::from(s)))
        .collect();
    assert_eq!(from_summaries, want);
    // A copy carries them; a destroyed email's are gone with it.
    store
        .email_copy(a, &[appended[3].email], archive.id)
        .await
        .expect("copy");
    assert_eq!(read(archive.id, vec![1]).await, vec![(1, headers(4))]);
    store
        .email_destroy(a, &[appended[3].email])
        .await
        .expect("destroy");
    assert_eq!(read(inbox.id, vec![4]).await, vec![]);
    assert_eq!(read(archive.id, vec![1]).await, vec![(1, headers(4))]);
    assert!(matches!(
        store
            .message_search_headers(a, MailboxId(i64::MAX), &[Uid(1)])
            .await,
        Err(StoreError::NotFound(_))
    ));
}
