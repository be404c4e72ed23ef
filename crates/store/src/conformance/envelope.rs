//! The IMAP ENVELOPE stored with each email ([`EmailSummary::imap_envelope`]).

use super::*;

/// Stored envelope bytes of `uids` in `mailbox`, as `(uid, bytes)`.
async fn envelopes(
    store: &Arc<dyn Store>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[u32],
) -> Vec<(u32, Option<Vec<u8>>)> {
    let uids: Vec<Uid> = uids.iter().map(|&u| Uid(u)).collect();
    store
        .message_envelopes(account, mailbox, &uids)
        .await
        .expect("envelopes")
        .into_iter()
        .map(|(u, e)| (u.0, e))
        .collect()
}

pub async fn stored_envelopes_follow_the_email(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let archive = mailbox_by_role(&store, a, Role::Archive).await;
    // Any bytes: an envelope may hold 8-bit literals (and the store must not care).
    let first = b"(\"e1\" {4}\r\n\xff\x00\xe9x NIL)".to_vec();
    let third = b"(NIL \"e3\")".to_vec();
    let mut e1 = new_email(&[inbox.id], "e1");
    e1.summary.imap_envelope = Some(first.clone());
    let e2 = new_email(&[inbox.id], "e2");
    let mut e3 = new_email(&[inbox.id], "e3");
    e3.summary.imap_envelope = Some(third.clone());
    let appended = store
        .email_append(a, vec![e1, e2, e3])
        .await
        .expect("append");
    let want = vec![
        (1, Some(first.clone())),
        (2, None),
        (3, Some(third.clone())),
    ];
    // Dense (one range scan), unordered with duplicates and an unknown UID, sparse, empty.
    assert_eq!(envelopes(&store, a, inbox.id, &[1, 2, 3]).await, want);
    assert_eq!(
        envelopes(&store, a, inbox.id, &[3, 1, 99, 2, 1]).await,
        want
    );
    assert_eq!(
        envelopes(&store, a, inbox.id, &[3, 4_000_000, 1]).await,
        vec![(1, Some(first.clone())), (3, Some(third.clone()))]
    );
    assert!(envelopes(&store, a, inbox.id, &[]).await.is_empty());
    // The JSON summary does not carry it; message_envelopes is the one reader.
    let got = store.email_get(a, &[appended[0].email]).await.expect("get");
    assert_eq!(got[0].summary.subject, "e1");
    assert_eq!(got[0].summary.imap_envelope, None);

    // A copy keeps it, a move keeps it, an expunge drops the UID.
    store
        .email_copy(a, &[appended[0].email], archive.id)
        .await
        .expect("copy");
    store
        .email_set_mailboxes(
            a,
            vec![MembershipUpdate {
                email: appended[2].email,
                add: vec![archive.id],
                remove: vec![inbox.id],
            }],
        )
        .await
        .expect("move");
    assert_eq!(
        envelopes(&store, a, archive.id, &[1, 2]).await,
        vec![(1, Some(first.clone())), (2, Some(third))]
    );
    store
        .mailbox_expunge(a, inbox.id, &[Uid(1)])
        .await
        .expect("expunge");
    assert_eq!(
        envelopes(&store, a, inbox.id, &[1, 2, 3]).await,
        vec![(2, None)]
    );
    assert!(matches!(
        store
            .message_envelopes(a, MailboxId(i64::MAX), &[Uid(1)])
            .await,
        Err(StoreError::NotFound(_))
    ));
}
