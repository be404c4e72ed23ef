//! The mail rules of [`crate::rules`], as every backend must apply them: the same address
//! limits and folding, keyword folding, mailbox rename with children, thread lookup order.

use super::*;
use crate::rules::{MAX_ADDRESS_LEN, MAX_KEYWORD_LEN};

fn new_account_at(address: String) -> NewAccount {
    NewAccount {
        address,
        display_name: "Rules".into(),
        password_hash: "$argon2id$fake".into(),
    }
}

pub async fn mail_rules_are_the_same_on_every_backend(store: Arc<dyn Store>) {
    // Addresses: exactly the limit is accepted, one byte more refused (RFC 5321 §4.5.3.1.3).
    let domain = unique_domain();
    store.domain_add(&domain).await.expect("domain_add");
    assert!(
        store
            .domain_exists(&format!("{}.", domain.to_uppercase()))
            .await
            .expect("domain_exists")
    );
    let local = |len: usize| "l".repeat(len - 1 - domain.len());
    let max = format!("{}@{domain}", local(MAX_ADDRESS_LEN));
    assert_eq!(max.len(), MAX_ADDRESS_LEN);
    store
        .account_create(new_account_at(max.clone()))
        .await
        .expect("an address of exactly the limit");
    let over = format!("{}@{domain}", local(MAX_ADDRESS_LEN + 1));
    assert!(matches!(
        store.account_create(new_account_at(over.clone())).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.alias_add(&over, AccountId(0)).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.resolve_address(&over).await.expect("resolve"), None);
    // Local parts fold in Unicode, domains in ASCII; a trailing dot is dropped.
    let upper = format!("JÜRGEN@{}.", domain.to_uppercase());
    let jurgen = store
        .account_create(new_account_at(upper.clone()))
        .await
        .expect("account_create");
    assert_eq!(jurgen.address, format!("jürgen@{domain}"));
    for spelling in [upper.as_str(), &format!("jÜrgen@{domain}"), &jurgen.address] {
        assert_eq!(
            store.resolve_address(spelling).await.expect("resolve"),
            Some(jurgen.id),
            "{spelling}"
        );
        let found = store
            .account_by_address(spelling)
            .await
            .expect("by address");
        assert_eq!(found.map(|a| a.id), Some(jurgen.id), "{spelling}");
    }
    assert!(matches!(
        store
            .account_create(new_account_at(format!("jürgen@{domain}")))
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .alias_add(&format!("Ärger@{domain}"), jurgen.id)
        .await
        .expect("alias_add");
    store
        .alias_delete(&format!("ÄRGER@{domain}"))
        .await
        .expect("alias_delete folds like alias_add");

    // Keywords: ASCII case folds, duplicates collapse; non-atoms are refused.
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let e = append_one(&store, a, inbox.id, "rules-kw").await;
    let set = |keywords: Vec<String>| KeywordUpdate {
        email: e.email,
        op: KeywordOp::Replace,
        keywords,
        unchanged_since: None,
    };
    let kws = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let r = store
        .email_set_keywords(
            a,
            vec![set(kws(&["Custom", "$Flagged", "\\Foo", "CUSTOM"]))],
        )
        .await
        .expect("set keywords");
    assert_eq!(r.updated[0].2, kws(&["$flagged", "\\foo", "custom"]));
    for bad in ["ä", "a b", "a(b", &"k".repeat(MAX_KEYWORD_LEN + 1)] {
        assert!(
            matches!(
                store.email_set_keywords(a, vec![set(kws(&[bad]))]).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?}"
        );
    }

    // Rename of a mailbox with children: old/… → new/…, a look-alike sibling stays.
    let mut ids = Vec::new();
    for name in ["Work", "Work/A", "Work/A/B", "Workshop"] {
        let m = store.mailbox_create(a, name, None).await.expect("create");
        ids.push(m.id);
    }
    assert!(matches!(
        store.mailbox_rename(a, ids[0], "Work/A/C").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.mailbox_rename(a, ids[0], "inbox").await,
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .mailbox_rename(a, ids[0], "inbox/Work")
        .await
        .expect("rename");
    let names: std::collections::BTreeMap<MailboxId, String> = store
        .mailbox_list(a)
        .await
        .expect("list")
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect();
    let expect = ["INBOX/Work", "INBOX/Work/A", "INBOX/Work/A/B", "Workshop"];
    for (id, name) in ids.iter().zip(expect) {
        assert_eq!(names.get(id).map(String::as_str), Some(name));
    }
    // A child whose new name would be too long refuses the whole rename.
    let long = format!(
        "Deep/{}",
        "d".repeat(crate::rules::MAX_MAILBOX_NAME_LEN - 5)
    );
    let deep = store.mailbox_create(a, "Deep", None).await.expect("create");
    store.mailbox_create(a, &long, None).await.expect("create");
    assert!(matches!(
        store.mailbox_rename(a, deep.id, "Deeper").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(
        store
            .mailbox_list(a)
            .await
            .expect("list")
            .iter()
            .any(|m| m.name == long)
    );

    // Threads: every id of References counts (empty ones skipped); naming two threads'
    // emails merges them into the older one (RFC 8621 §3).
    let first = append_one(&store, a, inbox.id, "rules-t1").await;
    let second = append_one(&store, a, inbox.id, "rules-t2").await;
    assert_ne!(first.thread, second.thread);
    let mut reply = new_email(&[inbox.id], "rules-reply");
    reply.summary.in_reply_to = vec!["<>".into()];
    reply.summary.references = vec![
        "<rules-t1@example.test>".into(),
        " <rules-t2@example.test> ".into(),
        "<>".into(),
    ];
    let reply = store
        .email_append(a, vec![reply])
        .await
        .expect("append")
        .remove(0);
    assert_eq!(reply.thread, first.thread);
    let got = store
        .email_get(a, &[second.email])
        .await
        .expect("email_get");
    assert_eq!(got[0].thread, first.thread, "the later thread merged in");
}
