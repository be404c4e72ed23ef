//! [`Store::email_query_page`]: the windowed list-view read gives the same page as the
//! reference answer over [`Store::email_list`], ties and out-of-range positions included.

use super::*;

/// Appends `count` emails to `mailbox` with the given received_at values (cycled) and keywords.
async fn append_at(
    store: &Arc<dyn Store>,
    account: AccountId,
    mailboxes: &[MailboxId],
    tag: &str,
    times: &[i64],
    keywords: &[&str],
) {
    let emails = times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let mut e = new_email(mailboxes, &format!("{tag}-{i}"));
            e.received_at = t;
            e.keywords = keywords.iter().map(|k| k.to_string()).collect();
            e
        })
        .collect();
    store.email_append(account, emails).await.expect("append");
}

pub async fn email_query_page_matches_the_full_listing(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let archive = mailbox_by_role(&store, a, Role::Archive).await;
    // Many equal received_at values (ties broken by id), both mailboxes, keywords.
    let times = [300, 100, 200, 100, 300, 100, 50, 200];
    append_at(&store, a, &[inbox.id], "plain", &times, &[]).await;
    append_at(&store, a, &[inbox.id], "seen", &times, &["$seen"]).await;
    append_at(
        &store,
        a,
        &[archive.id],
        "flagged",
        &times,
        &["$flagged", "$seen"],
    )
    .await;
    append_at(
        &store,
        a,
        &[inbox.id, archive.id],
        "both",
        &[100, 400],
        &["$seen$x"],
    )
    .await;
    // Another account's emails never show.
    let (other, other_inbox) = new_account(&store).await;
    append_at(&store, other.id, &[other_inbox.id], "other", &times, &[]).await;

    let all = store.email_list(a).await.expect("email_list");
    assert_eq!(all.len(), 26);
    let shapes = [
        (None, vec![], vec![]),
        (Some(inbox.id), vec![], vec![]),
        (Some(archive.id), vec![], vec![]),
        (Some(inbox.id), vec![], vec!["$seen".to_string()]),
        (
            None,
            vec!["$seen".to_string()],
            vec!["$flagged".to_string()],
        ),
        (Some(archive.id), vec!["$seen".to_string()], vec![]),
        // A mailbox of another account has no emails of this one.
        (Some(other_inbox.id), vec![], vec![]),
    ];
    for (mailbox, has_keywords, not_keywords) in shapes {
        for ascending in [false, true] {
            for (position, limit) in [
                (0, 50),
                (0, 5),
                (3, 4),
                (17, 100),
                (25, 1),
                (26, 5),
                (1000, 5),
                (4, 0),
                (1000, 0),
            ] {
                for calculate_total in [false, true] {
                    let q = EmailPageQuery {
                        mailbox,
                        has_keywords: has_keywords.clone(),
                        not_keywords: not_keywords.clone(),
                        ascending,
                        position,
                        limit,
                        calculate_total,
                    };
                    let want = q.page_of(all.clone());
                    let got = store.email_query_page(a, &q).await.expect("page");
                    assert_eq!(got.ids, want.ids, "{q:?}");
                    assert_eq!(got.position, want.position, "{q:?}");
                    if calculate_total {
                        assert_eq!(got.total, want.total, "{q:?}");
                    } else if let Some(total) = got.total {
                        assert_eq!(Some(total), want.total, "{q:?}");
                    }
                }
            }
        }
    }
    // The newest in the inbox: the later of the two received at 400, then ties by id.
    let newest = store
        .email_query_page(
            a,
            &EmailPageQuery {
                mailbox: Some(inbox.id),
                limit: 3,
                ..EmailPageQuery::default()
            },
        )
        .await
        .expect("page");
    let received: Vec<i64> = store
        .email_get(a, &newest.ids)
        .await
        .expect("get")
        .iter()
        .map(|e| e.received_at)
        .collect();
    assert_eq!(received, vec![400, 300, 300]);
    assert!(
        newest.ids[1] > newest.ids[2],
        "equal times: higher id first"
    );

    // A keyword a text match would misread is refused, not answered wrongly.
    let bad = EmailPageQuery {
        has_keywords: vec!["$seen $flagged".into()],
        limit: 5,
        ..EmailPageQuery::default()
    };
    assert!(matches!(
        store.email_query_page(a, &bad).await,
        Err(StoreError::Invalid(_))
    ));
}
