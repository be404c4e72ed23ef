//! Helpers shared by session and socket tests.

use bulwark_auth::{Authenticator, ThrottleConfig, hash_password};
use bulwark_store::sqlite::SqliteStore;
use bulwark_store::{NewAccount, Store};
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
