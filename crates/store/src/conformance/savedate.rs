//! When a message was placed into a mailbox (RFC 8514 SAVEDATE): kept per membership.

use super::*;

async fn save_dates(
    store: &Arc<dyn Store>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[u32],
) -> Vec<(u32, i64)> {
    let uids: Vec<Uid> = uids.iter().map(|&u| Uid(u)).collect();
    store
        .message_save_dates(account, mailbox, &uids)
        .await
        .expect("save dates")
        .into_iter()
        .map(|(u, d)| (u.0, d))
        .collect()
}

fn assert_between(got: i64, lo: i64, hi: i64) {
    assert!(lo <= got && got <= hi, "save date {got} not in {lo}..={hi}");
}

pub async fn save_dates_are_when_the_message_entered_the_mailbox(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let archive = mailbox_by_role(&store, a, Role::Archive).await;
    // The internal date is long ago; the save date is the append.
    let before = now_unix();
    let appended = store
        .email_append(
            a,
            vec![
                new_email(&[inbox.id], "s1"),
                new_email(&[inbox.id], "s2"),
                new_email(&[inbox.id], "s3"),
            ],
        )
        .await
        .expect("append");
    let after = now_unix();
    let got = save_dates(&store, a, inbox.id, &[3, 1, 99, 2, 1]).await;
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 2, 3]);
    for &(_, d) in &got {
        assert_between(d, before, after);
    }
    // Sparse sets, unknown UIDs and the empty set.
    assert_eq!(
        save_dates(&store, a, inbox.id, &[3, 4_000_000]).await.len(),
        1
    );
    assert!(save_dates(&store, a, inbox.id, &[]).await.is_empty());
    // A copy and a move get the time they entered the archive.
    let before = now_unix();
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
    let after = now_unix();
    let got = save_dates(&store, a, archive.id, &[1, 2]).await;
    assert_eq!(got.len(), 2);
    for &(_, d) in &got {
        assert_between(d, before, after);
    }
    // Expunged UIDs are left out; an unknown mailbox is NotFound.
    store
        .mailbox_expunge(a, inbox.id, &[Uid(1)])
        .await
        .expect("expunge");
    assert_eq!(
        save_dates(&store, a, inbox.id, &[1, 2, 3])
            .await
            .iter()
            .map(|g| g.0)
            .collect::<Vec<_>>(),
        vec![2]
    );
    assert!(matches!(
        store
            .message_save_dates(a, MailboxId(i64::MAX), &[Uid(1)])
            .await,
        Err(StoreError::NotFound(_))
    ));
}
