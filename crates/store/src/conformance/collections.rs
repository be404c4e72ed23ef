//! Conformance: account-scoped collections (compare-and-set, change log) and blob ownership
//! (who may read a blob, the collector, `account_delete`).

use super::*;

fn put(id: &str, expect: Expect, value: &str) -> ItemWrite {
    ItemWrite::put("things", id, expect, value.to_string())
}

pub async fn collections_round_trip_compare_and_set_and_changes(store: Arc<dyn Store>) {
    let (alice, _) = new_account(&store).await;
    let (bob, _) = new_account(&store).await;
    let a = alice.id;
    assert_eq!(
        store.collection_state(a, "things").await.expect("state"),
        ModSeq(0)
    );
    assert!(
        store
            .collection_get(a, "things", None)
            .await
            .expect("get")
            .is_empty()
    );

    let mut rx = store.subscribe(a);
    let v1 = store
        .collection_write(
            a,
            vec![put("x", Expect::Absent, "1"), put("y", Expect::Absent, "2")],
        )
        .await
        .expect("create");
    let change = next_change(&mut rx).await;
    assert_eq!(change.modseq, v1, "writes are published like mail");
    assert_eq!(
        change.collections,
        Some(vec!["things".to_string()]),
        "the change names the collection written (JMAP push of its type)"
    );
    assert!(change.mailboxes.is_empty());
    assert_eq!(
        store.collection_state(a, "things").await.expect("state"),
        v1
    );
    let items = store
        .collection_get(a, "things", None)
        .await
        .expect("get all");
    assert_eq!(
        items,
        vec![
            CollectionItem {
                id: "x".into(),
                version: v1,
                value: "1".into()
            },
            CollectionItem {
                id: "y".into(),
                version: v1,
                value: "2".into()
            },
        ]
    );
    // Other accounts and other collections see nothing of it.
    assert!(
        store
            .collection_get(bob.id, "things", None)
            .await
            .expect("bob")
            .is_empty()
    );
    assert!(
        store
            .collection_get(a, "other", None)
            .await
            .expect("other")
            .is_empty()
    );
    let some = store
        .collection_get(a, "things", Some(&["y".to_string(), "nope".to_string()]))
        .await
        .expect("get some");
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].id, "y");

    // Compare-and-set: a stale version, a create of an existing item, an update of a missing
    // one all fail with Conflict and write nothing — not even the valid writes beside them.
    for bad in [
        put("x", Expect::Version(ModSeq(v1.0 + 100)), "stale"),
        put("x", Expect::Absent, "again"),
        put("z", Expect::Version(v1), "missing"),
    ] {
        let err = store
            .collection_write(a, vec![put("y", Expect::Version(v1), "ok"), bad.clone()])
            .await
            .expect_err("conflict");
        assert!(matches!(err, StoreError::Conflict(_)), "{bad:?}: {err:?}");
    }
    assert_eq!(
        store.collection_state(a, "things").await.expect("state"),
        v1
    );
    let y = store
        .collection_get(a, "things", Some(&["y".into()]))
        .await
        .expect("y");
    assert_eq!(y[0].value, "2", "nothing of a failed call is written");

    let v2 = store
        .collection_write(a, vec![put("x", Expect::Version(v1), "1b")])
        .await
        .expect("update");
    assert!(v2 > v1);
    let v3 = store
        .collection_write(
            a,
            vec![
                ItemWrite::delete("things", "y", Expect::Version(v1)),
                put("z", Expect::Any, "3"),
            ],
        )
        .await
        .expect("delete and create");
    let changes = store
        .collection_changes(a, "things", v1, 100)
        .await
        .expect("changes");
    assert_eq!(changes.created, vec!["z".to_string()]);
    assert_eq!(changes.updated, vec!["x".to_string()]);
    assert_eq!(changes.destroyed, vec!["y".to_string()]);
    assert_eq!(changes.new_state, v3);
    assert!(!changes.has_more);
    // From the start: y was created and destroyed within the window, so it is not reported.
    let all = store
        .collection_changes(a, "things", ModSeq(0), 100)
        .await
        .expect("all");
    assert_eq!(all.created, vec!["x".to_string(), "z".to_string()]);
    assert!(all.updated.is_empty() && all.destroyed.is_empty());
    // Paging by whole modseqs.
    let first = store
        .collection_changes(a, "things", ModSeq(0), 1)
        .await
        .expect("page");
    assert!(first.has_more);
    assert_eq!(first.new_state, v1);
    assert_eq!(first.created.len(), 2, "one modseq is returned whole");
    let empty = store
        .collection_changes(a, "things", v3, 100)
        .await
        .expect("none");
    assert_eq!(
        empty,
        CollectionChanges {
            new_state: v3,
            ..Default::default()
        }
    );

    // Limits are checked before anything is written.
    assert!(matches!(
        store.collection_write(a, vec![]).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .collection_write(a, vec![ItemWrite::put("", "i", Expect::Any, "v".into())])
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .collection_write(AccountId(i64::MAX), vec![put("x", Expect::Any, "v")])
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Twenty writers race to replace the same version: exactly one wins (single-use codes).
pub async fn collections_concurrent_compare_and_set_has_one_winner(store: Arc<dyn Store>) {
    let (alice, _) = new_account(&store).await;
    let a = alice.id;
    let v = store
        .collection_write(a, vec![put("code", Expect::Absent, "unused")])
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .collection_write(
                    a,
                    vec![put("code", Expect::Version(v), &format!("used by {i}"))],
                )
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(_) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one compare-and-set may win");
}

pub async fn blobs_are_owned_and_collected(store: Arc<dyn Store>) {
    let (alice, inbox) = new_account(&store).await;
    let (bob, bob_inbox) = new_account(&store).await;
    let mail = append_one(&store, alice.id, inbox.id, "alice-only-blob").await;
    let blob = store.email_get(alice.id, &[mail.email]).await.expect("get")[0]
        .blob
        .clone();
    let unknown = BlobHash::of(b"never stored");

    let seen = store
        .blob_get_owned(alice.id, &[blob.clone(), unknown.clone()])
        .await
        .expect("alice");
    assert!(seen[0].is_some(), "alice reads her own message");
    assert!(seen[1].is_none());
    let seen = store
        .blob_get_owned(bob.id, &[blob.clone(), unknown.clone()])
        .await
        .expect("bob");
    assert_eq!(
        seen,
        vec![None, None],
        "bob gets the same answer as for a missing blob"
    );

    // An upload belongs to its uploader; the same content uploaded by bob is his too.
    let up = store
        .blob_put(alice.id, b"attachment of alice")
        .await
        .expect("upload");
    assert!(
        store
            .blob_get_owned(alice.id, std::slice::from_ref(&up))
            .await
            .expect("own")[0]
            .is_some()
    );
    assert!(
        store
            .blob_get_owned(bob.id, std::slice::from_ref(&up))
            .await
            .expect("other")[0]
            .is_none()
    );
    let same = store
        .blob_put(bob.id, b"attachment of alice")
        .await
        .expect("bob upload");
    assert_eq!(same, up);
    assert!(
        store
            .blob_get_owned(bob.id, std::slice::from_ref(&up))
            .await
            .expect("now his")[0]
            .is_some()
    );

    // A collection item referencing a blob makes it the account's and keeps it alive.
    let kept = store
        .blob_put(bob.id, b"kept by an item")
        .await
        .expect("upload");
    let mut w = ItemWrite::put("things", "with-blob", Expect::Any, "{}".into());
    w.blobs = vec![kept.clone()];
    store.collection_write(bob.id, vec![w]).await.expect("item");

    // The collector: young uploads stay; expired ones go unless something references them.
    store
        .blob_collect(now_unix() - 3600)
        .await
        .expect("collect young");
    assert!(store.blob_get(&up).await.expect("young").is_some());
    store.blob_collect(now_unix() + 10).await.expect("collect");
    assert!(
        store.blob_get(&up).await.expect("expired").is_none(),
        "unused upload deleted"
    );
    assert!(
        store
            .blob_get_owned(bob.id, std::slice::from_ref(&up))
            .await
            .expect("gone")[0]
            .is_none()
    );
    assert!(
        store.blob_get(&kept).await.expect("kept").is_some(),
        "item keeps its blob"
    );
    assert!(
        store.blob_get(&blob).await.expect("email").is_some(),
        "email keeps its blob"
    );
    assert!(
        store
            .blob_get_owned(bob.id, std::slice::from_ref(&kept))
            .await
            .expect("kept")[0]
            .is_some()
    );

    // A message's blob goes when its last copy is expunged.
    store
        .mailbox_expunge(alice.id, inbox.id, &[mail.uids[0].1])
        .await
        .expect("expunge");
    let shared = append_one(&store, bob.id, bob_inbox.id, "shared-content").await;
    let shared_blob = store.email_get(bob.id, &[shared.email]).await.expect("get")[0]
        .blob
        .clone();
    store.blob_collect(now_unix() + 10).await.expect("collect");
    assert!(store.blob_get(&blob).await.expect("expunged").is_none());
    assert!(store.blob_get(&shared_blob).await.expect("bob's").is_some());
    store
        .collection_write(
            bob.id,
            vec![ItemWrite::delete("things", "with-blob", Expect::Any)],
        )
        .await
        .expect("delete item");
    store.blob_collect(now_unix() + 10).await.expect("collect");
    assert!(store.blob_get(&kept).await.expect("item gone").is_none());
}

pub async fn account_delete_leaves_no_blob_or_item(store: Arc<dyn Store>) {
    let (alice, inbox) = new_account(&store).await;
    let (bob, bob_inbox) = new_account(&store).await;
    let own = append_one(&store, alice.id, inbox.id, "only-alice-has-this").await;
    let own_blob = store.email_get(alice.id, &[own.email]).await.expect("get")[0]
        .blob
        .clone();
    // The same content in both accounts: bob keeps his copy.
    let a_shared = append_one(&store, alice.id, inbox.id, "both-have-this").await;
    append_one(&store, bob.id, bob_inbox.id, "both-have-this").await;
    let shared_blob = store
        .email_get(alice.id, &[a_shared.email])
        .await
        .expect("get")[0]
        .blob
        .clone();
    let upload = store
        .blob_put(alice.id, b"alice's upload")
        .await
        .expect("upload");
    store
        .collection_write(alice.id, vec![put("x", Expect::Absent, "secret")])
        .await
        .expect("item");

    store.account_delete(alice.id).await.expect("delete");
    assert!(store.blob_get(&own_blob).await.expect("own").is_none());
    assert!(store.blob_get(&upload).await.expect("upload").is_none());
    assert!(
        store
            .blob_get(&shared_blob)
            .await
            .expect("shared")
            .is_some()
    );
    assert!(
        store
            .blob_get_owned(bob.id, &[shared_blob])
            .await
            .expect("bob")[0]
            .is_some()
    );
    assert!(
        store
            .collection_get(alice.id, "things", None)
            .await
            .expect("items")
            .is_empty()
    );
    assert_eq!(
        store
            .collection_changes(alice.id, "things", ModSeq(0), 10)
            .await
            .expect("log"),
        CollectionChanges::default()
    );
}

/// `accept` commits local copies, the queue entry and records together or not at all; a
/// retried acceptance with the same `Expect::Absent` record stores nothing twice.
pub async fn accept_is_all_or_nothing_and_idempotent(store: Arc<dyn Store>) {
    let (alice, inbox) = new_account(&store).await;
    let (bob, bob_inbox) = new_account(&store).await;
    let queued_before = store.queue_list().await.expect("queue").len();
    let acceptance = |tag: &str| Acceptance {
        local: vec![(bob.id, new_email(&[bob_inbox.id], tag))],
        queue: Some(NewQueued {
            sender: alice.address.clone(),
            recipients: vec!["carol@elsewhere.test".into()],
            raw: Arc::new(message(tag, "q@example.test")),
            expires_at: now_unix() + 3600,
        }),
        items: vec![(
            alice.id,
            ItemWrite::put(
                "submissions",
                &format!("S-{tag}"),
                Expect::Absent,
                "{}".into(),
            ),
        )],
    };
    let mut alice_changes = store.subscribe(alice.id);
    let done = store.accept(acceptance("first")).await.expect("accept");
    let change = next_change(&mut alice_changes).await;
    assert_eq!(change.collections, Some(vec!["submissions".to_string()]));
    assert_eq!(done.appended.len(), 1);
    assert!(done.queued.is_some());
    assert_eq!(uids(&store, bob.id, bob_inbox.id).await.len(), 1);
    assert_eq!(
        store.queue_list().await.expect("queue").len(),
        queued_before + 1
    );
    let record = store
        .collection_get(alice.id, "submissions", None)
        .await
        .expect("record");
    assert_eq!(record.len(), 1);

    // The same acceptance again (a client's retry): the record exists, so nothing at all
    // is stored — no second copy for bob, no second queue entry.
    let err = store.accept(acceptance("first")).await.expect_err("retry");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(uids(&store, bob.id, bob_inbox.id).await.len(), 1);
    assert_eq!(
        store.queue_list().await.expect("queue").len(),
        queued_before + 1
    );

    // A failing local part (a mailbox of another account) leaves no queue entry or record.
    let mut bad = acceptance("second");
    bad.local
        .push((bob.id, new_email(&[inbox.id], "wrong-mailbox")));
    assert!(store.accept(bad).await.is_err());
    assert_eq!(uids(&store, bob.id, bob_inbox.id).await.len(), 1);
    assert_eq!(
        store.queue_list().await.expect("queue").len(),
        queued_before + 1
    );
    assert_eq!(
        store
            .collection_get(alice.id, "submissions", None)
            .await
            .expect("records")
            .len(),
        1
    );
    // Nothing but a record: fine too.
    let only = Acceptance {
        items: vec![(
            alice.id,
            ItemWrite::put("submissions", "S-x", Expect::Absent, "{}".into()),
        )],
        ..Default::default()
    };
    assert_eq!(
        store.accept(only).await.expect("record only"),
        Accepted::default()
    );
}

/// Per-account byte counts follow every write that stores or removes mail: append,
/// delivery, copy, move, expunge, destroy and mailbox delete; other accounts' counts stay.
pub async fn account_bytes_follow_every_mail_write(store: Arc<dyn Store>) {
    let (alice, inbox) = new_account(&store).await;
    let (bob, _) = new_account(&store).await;
    let used = |id: AccountId| {
        let store = store.clone();
        async move {
            store
                .account_get(id)
                .await
                .expect("account_get")
                .expect("account")
                .used_bytes
        }
    };
    assert_eq!(used(alice.id).await, 0, "a new account holds nothing");
    let first = append_one(&store, alice.id, inbox.id, "bytes-1").await;
    let size1 = message("bytes-1", "bytes-1@example.test").len() as u64;
    assert_eq!(used(alice.id).await, size1);
    let second = append_one(&store, alice.id, inbox.id, "bytes-22").await;
    let size2 = message("bytes-22", "bytes-22@example.test").len() as u64;
    assert_eq!(used(alice.id).await, size1 + size2);

    // A copy is a second email: it counts again (as IMAP QUOTA STORAGE does).
    let archive = mailbox_by_role(&store, alice.id, Role::Archive).await;
    store
        .email_copy(alice.id, &[first.email], archive.id)
        .await
        .expect("copy");
    assert_eq!(used(alice.id).await, 2 * size1 + size2);
    // Being in two mailboxes is one email: moving adds nothing.
    store
        .email_set_mailboxes(
            alice.id,
            vec![MembershipUpdate {
                email: second.email,
                add: vec![archive.id],
                remove: vec![],
            }],
        )
        .await
        .expect("add mailbox");
    assert_eq!(used(alice.id).await, 2 * size1 + size2);
    assert_eq!(used(bob.id).await, 0, "other accounts are not charged");

    // Expunging the first email's only membership frees it.
    store
        .mailbox_expunge(alice.id, inbox.id, &[first.uids[0].1])
        .await
        .expect("expunge");
    assert_eq!(used(alice.id).await, size1 + size2);
    store
        .email_destroy(alice.id, &[second.email])
        .await
        .expect("destroy");
    assert_eq!(used(alice.id).await, size1);
    // Deleting the mailbox destroys the copy left in it.
    store
        .mailbox_delete(alice.id, archive.id)
        .await
        .expect("mailbox delete");
    assert_eq!(used(alice.id).await, 0);

    // Delivery to several accounts charges each its own copy.
    let bob_inbox = mailbox_by_role(&store, bob.id, Role::Inbox).await;
    store
        .deliver(vec![
            (alice.id, new_email(&[inbox.id], "bytes-333")),
            (bob.id, new_email(&[bob_inbox.id], "bytes-333")),
        ])
        .await
        .expect("deliver");
    let size3 = message("bytes-333", "bytes-333@example.test").len() as u64;
    assert_eq!((used(alice.id).await, used(bob.id).await), (size3, size3));
    let listed = store.account_list().await.expect("list");
    let listed = listed.iter().find(|a| a.id == bob.id).expect("bob listed");
    assert_eq!(listed.used_bytes, size3, "listings carry the count too");
}

/// A mailbox's sort order is stored, cleared back to the role default (`None`), and each
/// change is a mailbox change in the log.
pub async fn mailbox_sort_order_is_kept_and_logged(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    assert_eq!(
        inbox.sort_order, None,
        "new mailboxes keep their role's default"
    );
    let before = store.account_modseq(account.id).await.expect("modseq");
    store
        .mailbox_set_sort_order(account.id, inbox.id, Some(7))
        .await
        .expect("set");
    let got = store
        .mailbox_get(account.id, inbox.id)
        .await
        .expect("get")
        .expect("mailbox");
    assert_eq!(got.sort_order, Some(7));
    let changes = store
        .changes_since(account.id, before, 100)
        .await
        .expect("changes");
    assert_eq!(changes.mailboxes.updated, vec![inbox.id]);
    let state = store.account_modseq(account.id).await.expect("modseq");
    store
        .mailbox_set_sort_order(account.id, inbox.id, Some(7))
        .await
        .expect("same again");
    assert_eq!(
        store.account_modseq(account.id).await.expect("modseq"),
        state,
        "setting the same order changes nothing"
    );
    store
        .mailbox_set_sort_order(account.id, inbox.id, None)
        .await
        .expect("clear");
    let listed = store.mailbox_list(account.id).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .find(|m| m.id == inbox.id)
            .expect("inbox")
            .sort_order,
        None
    );
}

pub async fn item_cache_follows_every_write(store: Arc<dyn Store>) {
    use crate::item_cache::ItemCache;
    let (alice, inbox) = new_account(&store).await;
    let (bob, _) = new_account(&store).await;
    let a = alice.id;
    let cache = ItemCache::new(store.clone(), "things", 1);
    assert_eq!(cache.get(a, "x").await.expect("get"), None);
    assert!(cache.contains(a, "x"), "an absent item is remembered");
    // Mail and other collections leave the entry alone.
    append_one(&store, a, inbox.id, "mail").await;
    store
        .collection_write(
            a,
            vec![ItemWrite::put("other", "x", Expect::Any, "o".to_string())],
        )
        .await
        .expect("other collection");
    assert!(cache.contains(a, "x"), "kept across unrelated commits");
    // A write of the collection is seen by the next read, with no wait.
    let v1 = store
        .collection_write(a, vec![put("x", Expect::Absent, "one")])
        .await
        .expect("create");
    let got = cache.get(a, "x").await.expect("get").expect("present");
    assert_eq!((got.value.as_str(), got.version), ("one", v1));
    let v2 = store
        .collection_write(a, vec![put("x", Expect::Version(v1), "two")])
        .await
        .expect("update");
    let got = cache.get(a, "x").await.expect("get").expect("present");
    assert_eq!((got.value.as_str(), got.version), ("two", v2));
    // Another account (the bound is one account: the cache starts afresh).
    assert_eq!(cache.get(bob.id, "x").await.expect("get"), None);
    assert!(!cache.contains(a, "x") && cache.contains(bob.id, "x"));
    store
        .collection_write(
            a,
            vec![ItemWrite::delete("things", "x", Expect::Version(v2))],
        )
        .await
        .expect("delete");
    assert_eq!(cache.get(a, "x").await.expect("get"), None);
}

/// IMAP METADATA entries (RFC 5464) of a mailbox follow its id: RENAME keeps them, DELETE
/// removes them (logged as a collection change), other mailboxes' stay.
pub async fn mailbox_delete_drops_its_imap_metadata(store: Arc<dyn Store>) {
    use crate::collections::names;
    let (alice, _) = new_account(&store).await;
    let a = alice.id;
    let doomed = store
        .mailbox_create(a, "Doomed", None)
        .await
        .expect("create");
    let kept = store.mailbox_create(a, "Kept", None).await.expect("create");
    let writes = [doomed.id, kept.id]
        .iter()
        .map(|&m| {
            ItemWrite::put(
                names::IMAP_METADATA,
                &names::imap_metadata_item(m),
                Expect::Any,
                "{\"/private/comment\":\"eA==\"}".to_string(),
            )
        })
        .collect();
    store.collection_write(a, writes).await.expect("write");
    let key = ItemWrite::put(
        names::IMAP_URLAUTH_KEYS,
        &doomed.id.0.to_string(),
        Expect::Any,
        "00ff".to_string(),
    );
    store.collection_write(a, vec![key]).await.expect("key");
    store
        .mailbox_rename(a, doomed.id, "Renamed")
        .await
        .expect("rename");
    let items = store
        .collection_get(a, names::IMAP_METADATA, None)
        .await
        .expect("get");
    assert_eq!(items.len(), 2);
    let before = store
        .collection_state(a, names::IMAP_METADATA)
        .await
        .expect("state");
    store.mailbox_delete(a, doomed.id).await.expect("delete");
    let items = store
        .collection_get(a, names::IMAP_METADATA, None)
        .await
        .expect("get");
    assert_eq!(
        items.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![names::imap_metadata_item(kept.id)]
    );
    let changes = store
        .collection_changes(a, names::IMAP_METADATA, before, 100)
        .await
        .expect("changes");
    assert_eq!(
        changes.destroyed,
        vec![names::imap_metadata_item(doomed.id)]
    );
    // Its URLAUTH key (RFC 4467) goes with it too.
    let keys = store
        .collection_get(a, names::IMAP_URLAUTH_KEYS, None)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "{keys:?}");
    // A mailbox without entries deletes as before.
    store.mailbox_delete(a, kept.id).await.expect("delete");
}
