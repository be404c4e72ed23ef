//! The Sieve hook in a real delivery pipeline over a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_core::{Message, Outcome, Pipeline};
use bulwark_sieve::{SieveFilter, scripts};
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{AccountId, NewAccount, Store};
use std::sync::Arc;
use std::time::Duration;

async fn setup() -> (
    tempfile::TempDir,
    Arc<SqliteStore>,
    Arc<Pipeline>,
    AccountId,
    AccountId,
) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = SqliteStore::open(dir.path()).expect("open");
    store.domain_add("example.test").await.expect("domain");
    let mut ids = Vec::new();
    for a in ["alice@example.test", "bob@example.test"] {
        let new = NewAccount {
            address: a.into(),
            display_name: String::new(),
            password_hash: "x".into(),
        };
        ids.push(store.account_create(new).await.expect("account").id);
    }
    let p = Pipeline::new(store.clone(), Arc::new(tokio::sync::Notify::new()), 3600);
    p.add_hook(Arc::new(SieveFilter::new(store.clone(), "mx.example.test")));
    (dir, store, p, ids[0], ids[1])
}

fn mail(subject: &str, from: &str) -> Arc<Vec<u8>> {
    Arc::new(
        format!("From: {from}\r\nTo: alice@example.test\r\nSubject: {subject}\r\nMessage-ID: <{}@x>\r\n\r\nbody\r\n", subject.replace(' ', "."))
            .into_bytes(),
    )
}

async fn send(p: &Arc<Pipeline>, subject: &str, from: &str) -> Vec<Outcome> {
    let m = Message::new(from, vec!["alice@example.test".into()], mail(subject, from));
    let d = p.deliver(m).await.expect("deliver");
    d.outcomes.into_iter().map(|(_, o)| o).collect()
}

/// (mailbox name, keywords) of every copy of `subject` in the account.
async fn copies(
    store: &SqliteStore,
    account: AccountId,
    subject: &str,
) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for mb in store.mailbox_list(account).await.expect("list") {
        for m in store
            .mailbox_messages(account, mb.id)
            .await
            .expect("messages")
        {
            let raw = store
                .blob_get(&m.blob)
                .await
                .expect("blob")
                .unwrap_or_default();
            if String::from_utf8_lossy(&raw).contains(&format!("Subject: {subject}\r\n")) {
                out.push((mb.name.clone(), m.keywords.clone()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn the_active_script_files_flags_discards_rejects_and_redirects() {
    let (_dir, store, p, alice, bob) = setup().await;
    let s = store.as_ref() as &dyn Store;
    store
        .mailbox_create(alice, "Work", None)
        .await
        .expect("mailbox");
    let script = r#"require ["fileinto", "imap4flags", "reject", "copy"];
if header :contains "subject" "report" { fileinto :flags "\\Flagged" "Work"; stop; }
if header :contains "subject" "both" { fileinto :copy "Work"; }
if header :contains "subject" "spam" { discard; stop; }
if header :contains "subject" "refuse" { reject "not wanted here"; stop; }
if header :contains "subject" "forward" { redirect "bob@example.test"; stop; }
if header :contains "subject" "loop" { redirect "alice@example.test"; stop; }
if header :contains "subject" "missing" { fileinto "No/Such"; stop; }
"#;
    scripts::put(s, alice, "rules", script).await.expect("put");
    // Not active yet: plain INBOX.
    send(&p, "report one", "x@remote.test").await;
    assert_eq!(
        copies(&store, alice, "report one").await,
        vec![("INBOX".into(), vec![])]
    );
    scripts::set_active(s, alice, Some("rules"))
        .await
        .expect("activate");
    send(&p, "report two", "x@remote.test").await;
    assert_eq!(
        copies(&store, alice, "report two").await,
        vec![("Work".into(), vec!["$flagged".into()])]
    );
    send(&p, "both ways", "x@remote.test").await;
    assert_eq!(
        copies(&store, alice, "both ways").await,
        vec![("INBOX".into(), vec![]), ("Work".into(), vec![])]
    );
    let o = send(&p, "spam offer", "x@remote.test").await;
    assert_eq!(
        o,
        vec![Outcome::Delivered(alice)],
        "discard is accepted, silently"
    );
    assert!(copies(&store, alice, "spam offer").await.is_empty());
    let o = send(&p, "refuse this", "x@remote.test").await;
    assert!(
        matches!(&o[0], Outcome::Refused(r) if r.is_permanent() && r.reason().starts_with("550 5.7.1 not wanted")),
        "{o:?}"
    );
    assert!(copies(&store, alice, "refuse this").await.is_empty());
    send(&p, "missing folder", "x@remote.test").await;
    assert_eq!(
        copies(&store, alice, "missing folder").await,
        vec![("INBOX".into(), vec![])]
    );
    send(&p, "loop me", "x@remote.test").await;
    assert_eq!(
        copies(&store, alice, "loop me").await,
        vec![("INBOX".into(), vec![])],
        "a redirect to oneself keeps"
    );
    send(&p, "forward please", "x@remote.test").await;
    assert!(copies(&store, alice, "forward please").await.is_empty());
    // The redirect goes out after the commit, through the pipeline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while copies(&store, bob, "forward please").await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the redirect never reached bob"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        copies(&store, bob, "forward please").await,
        vec![("INBOX".into(), vec![])]
    );
}

#[tokio::test]
async fn vacation_answers_once_per_sender_from_the_null_sender() {
    let (_dir, store, p, alice, bob) = setup().await;
    let s = store.as_ref() as &dyn Store;
    let script = r#"require "vacation";
vacation :days 7 :subject "Away" "I am away until Monday.";
"#;
    scripts::put(s, alice, "away", script).await.expect("put");
    scripts::set_active(s, alice, Some("away"))
        .await
        .expect("activate");
    let carol = store
        .account_create(NewAccount {
            address: "carol@example.test".into(),
            display_name: String::new(),
            password_hash: "x".into(),
        })
        .await
        .expect("carol")
        .id;
    send(&p, "hello one", "bob@example.test").await;
    send(&p, "hello two", "bob@example.test").await;
    assert_eq!(copies(&store, alice, "hello one").await.len(), 1, "kept");
    // The second message from bob found the first one's id: nothing more was recorded.
    let seen = store
        .collection_get(alice, bulwark_store::collections::names::SIEVE_SEEN, None)
        .await
        .expect("seen");
    assert_eq!(seen.len(), 1, "{seen:?}");
    // A later sender's reply arrives after any reply to bob's second message would have.
    send(&p, "hello three", "carol@example.test").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while copies(&store, carol, "Away").await.is_empty()
        || copies(&store, bob, "Away").await.is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no vacation replies"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        copies(&store, bob, "Away").await.len(),
        1,
        "one reply per sender per :days"
    );
}

/// Issue 16 "bad input": scripts that include each other forever stop at the nesting
/// limit, and the message is kept (RFC 5228 §2.10.6); delivery goes on.
#[tokio::test]
async fn an_include_loop_is_stopped_and_the_message_kept() {
    let (_dir, store, p, alice, _bob) = setup().await;
    let s = store.as_ref() as &dyn Store;
    store
        .mailbox_create(alice, "Work", None)
        .await
        .expect("mailbox");
    scripts::put(
        s,
        alice,
        "a",
        "require [\"include\", \"fileinto\"];\nfileinto \"Work\";\ninclude \"b\";\n",
    )
    .await
    .expect("a");
    scripts::put(s, alice, "b", "require \"include\";\ninclude \"a\";\n")
        .await
        .expect("b");
    scripts::set_active(s, alice, Some("a"))
        .await
        .expect("activate");
    let o = send(&p, "looping include", "x@remote.test").await;
    assert_eq!(o, vec![Outcome::Delivered(alice)]);
    assert_eq!(
        copies(&store, alice, "looping include").await,
        vec![("INBOX".into(), vec![])],
        "the failed run keeps the message in INBOX"
    );
}
