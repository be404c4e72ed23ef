//! Helpers shared by session and socket tests.

use bulwark_auth::{Authenticator, ThrottleConfig, hash_password};
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{AccountId, MailboxId, NewAccount, NewEmail, Role, Store};
use std::sync::Arc;

pub(crate) const PASSWORD: &str = "correct horse";
pub(crate) const USER: &str = "alice@example.test";

pub(crate) fn msg(subject: &str, body: &str) -> String {
    format!(
        "From: Bob <bob@example.org>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\nDate: Mon, 4 Mar 2024 10:00:00 +0000\r\n\r\n{body}\r\n"
    )
}

/// A fresh store with one account.
pub(crate) async fn fresh_store(dir: &std::path::Path) -> (Arc<SqliteStore>, Arc<Authenticator>) {
    let store = SqliteStore::open(dir).expect("open store");
    store.domain_add("example.test").await.expect("domain");
    store
        .account_create(NewAccount {
            address: USER.into(),
            display_name: "Alice".into(),
            password_hash: hash_password(PASSWORD).expect("hash"),
        })
        .await
        .expect("account");
    let auth = Arc::new(Authenticator::new(store.clone(), ThrottleConfig::default()));
    (store, auth)
}

/// The account and INBOX of [`USER`].
pub(crate) async fn user_inbox(store: &dyn Store) -> (AccountId, MailboxId) {
    let account = store
        .account_by_address(USER)
        .await
        .expect("lookup")
        .expect("account");
    let inbox = store
        .mailbox_list(account.id)
        .await
        .expect("list")
        .into_iter()
        .find(|m| m.role == Some(Role::Inbox))
        .expect("inbox");
    (account.id, inbox.id)
}

/// Appends messages `from..to` (subject `msg-<i>`, body `body word<i> here`) to [`USER`]'s
/// INBOX in one store transaction (fast).
pub(crate) async fn append_many(store: &dyn Store, from: usize, to: usize) {
    let (account, inbox) = user_inbox(store).await;
    let emails: Vec<NewEmail> = (from..to)
        .map(|i| {
            let raw = msg(&format!("msg-{i}"), &format!("body word{i} here"));
            NewEmail {
                mailboxes: vec![inbox],
                summary: bulwark_core::summarize(raw.as_bytes()),
                raw: Arc::new(raw.into_bytes()),
                keywords: vec![],
                received_at: 1_700_000_000,
            }
        })
        .collect();
    store.email_append(account, emails).await.expect("fill");
}
