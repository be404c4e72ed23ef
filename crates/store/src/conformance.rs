//! Conformance suite every [`Store`] backend must pass.
//!
//! Each check is a `pub async fn(Arc<dyn Store>)` that panics on failure. Checks create
//! their own uniquely named domain, so they may share one store ([`run_all`]) or each get a
//! fresh one ([`conformance_tests!`](crate::conformance_tests) makes one `#[tokio::test]` per
//! check).

mod collections;
mod delta;
mod envelope;
mod log;
mod mail;
mod query;
mod rules;
mod savedate;

pub use collections::*;
pub use delta::*;
pub use envelope::*;
pub use log::*;
pub use mail::*;
pub use query::*;
pub use rules::*;
pub use savedate::*;

use crate::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Every check, by name, for backends that want to drive them themselves.
pub type Check =
    fn(Arc<dyn Store>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Generates one `#[tokio::test]` per conformance check; `$make` is an expression (an
/// `async` block is fine) evaluating to an `Arc<dyn Store>`, run once per test.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store: std::sync::Arc<dyn $crate::Store> = $make;
                $crate::conformance::$name(store).await;
            }
        )*
    };
    ($make:expr) => {
        $crate::conformance_tests!($make;
            domains_accounts_and_aliases,
            app_passwords_round_trip,
            account_settings_round_trip,
            global_settings_round_trip_and_compare_and_set,
            mailbox_create_rename_delete,
            uid_validity_is_never_reused,
            append_assigns_increasing_uids,
            append_is_all_or_nothing,
            deliver_reaches_several_accounts,
            keywords_are_normalized_and_conflicts_detected,
            copy_move_and_expunge,
            expunged_since_lists_vanished_uids,
            mailbox_delete_destroys_only_orphaned_emails,
            changes_since_collapses_and_pages,
            mail_states_are_per_type,
            replies_join_the_thread,
            threads_join_in_any_order_and_merge,
            queue_lease_and_update,
            subscribe_receives_state_change,
            concurrent_appends_get_distinct_uids,
            mailbox_delta_reports_new_changed_and_expunged,
            mailbox_delta_over_most_of_a_big_mailbox_matches_the_listing,
            search_headers_in_batches_follow_the_email,
            blobs_and_summaries_in_batches,
            stored_envelopes_follow_the_email,
            save_dates_are_when_the_message_entered_the_mailbox,
            email_query_page_matches_the_full_listing,
            collections_round_trip_compare_and_set_and_changes,
            collections_concurrent_compare_and_set_has_one_winner,
            mailbox_delete_drops_its_imap_metadata,
            blobs_are_owned_and_collected,
            account_delete_leaves_no_blob_or_item,
            accept_is_all_or_nothing_and_idempotent,
            account_bytes_follow_every_mail_write,
            mailbox_sort_order_is_kept_and_logged,
            mail_rules_are_the_same_on_every_backend,
        );
    };
}

/// Runs every check against one store, in sequence.
pub async fn run_all(store: Arc<dyn Store>) {
    domains_accounts_and_aliases(store.clone()).await;
    app_passwords_round_trip(store.clone()).await;
    account_settings_round_trip(store.clone()).await;
    global_settings_round_trip_and_compare_and_set(store.clone()).await;
    mailbox_create_rename_delete(store.clone()).await;
    uid_validity_is_never_reused(store.clone()).await;
    append_assigns_increasing_uids(store.clone()).await;
    append_is_all_or_nothing(store.clone()).await;
    deliver_reaches_several_accounts(store.clone()).await;
    keywords_are_normalized_and_conflicts_detected(store.clone()).await;
    copy_move_and_expunge(store.clone()).await;
    expunged_since_lists_vanished_uids(store.clone()).await;
    mailbox_delete_destroys_only_orphaned_emails(store.clone()).await;
    changes_since_collapses_and_pages(store.clone()).await;
    mail_states_are_per_type(store.clone()).await;
    replies_join_the_thread(store.clone()).await;
    threads_join_in_any_order_and_merge(store.clone()).await;
    queue_lease_and_update(store.clone()).await;
    subscribe_receives_state_change(store.clone()).await;
    concurrent_appends_get_distinct_uids(store.clone()).await;
    mailbox_delta_reports_new_changed_and_expunged(store.clone()).await;
    mailbox_delta_over_most_of_a_big_mailbox_matches_the_listing(store.clone()).await;
    search_headers_in_batches_follow_the_email(store.clone()).await;
    blobs_and_summaries_in_batches(store.clone()).await;
    stored_envelopes_follow_the_email(store.clone()).await;
    save_dates_are_when_the_message_entered_the_mailbox(store.clone()).await;
    email_query_page_matches_the_full_listing(store.clone()).await;
    collections_round_trip_compare_and_set_and_changes(store.clone()).await;
    collections_concurrent_compare_and_set_has_one_winner(store.clone()).await;
    mailbox_delete_drops_its_imap_metadata(store.clone()).await;
    blobs_are_owned_and_collected(store.clone()).await;
    account_delete_leaves_no_blob_or_item(store.clone()).await;
    accept_is_all_or_nothing_and_idempotent(store.clone()).await;
    account_bytes_follow_every_mail_write(store.clone()).await;
    mailbox_sort_order_is_kept_and_logged(store.clone()).await;
    item_cache_follows_every_write(store.clone()).await;
    mail_rules_are_the_same_on_every_backend(store).await;
}

// ---- helpers ---------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A domain name no other check (in this process) uses.
pub fn unique_domain() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("d{}-{n}.example.test", std::process::id())
}

/// Creates a fresh domain and account; returns the account and its INBOX.
pub async fn new_account(store: &Arc<dyn Store>) -> (Account, Mailbox) {
    let domain = unique_domain();
    store.domain_add(&domain).await.expect("domain_add");
    let account = store
        .account_create(NewAccount {
            address: format!("alice@{domain}"),
            display_name: "Alice".into(),
            password_hash: "$argon2id$fake".into(),
        })
        .await
        .expect("account_create");
    let inbox = mailbox_by_role(store, account.id, Role::Inbox).await;
    (account, inbox)
}

pub async fn mailbox_by_role(store: &Arc<dyn Store>, account: AccountId, role: Role) -> Mailbox {
    store
        .mailbox_list(account)
        .await
        .expect("mailbox_list")
        .into_iter()
        .find(|m| m.role == Some(role))
        .unwrap_or_else(|| panic!("no mailbox with role {role:?}"))
}

/// A small RFC 5322 message; `tag` makes its content unique.
pub fn message(tag: &str, message_id: &str) -> Vec<u8> {
    format!(
        "From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {tag}\r\nMessage-ID: <{message_id}>\r\n\r\nbody {tag}\r\n"
    )
    .into_bytes()
}

pub fn new_email(mailboxes: &[MailboxId], tag: &str) -> NewEmail {
    let message_id = format!("{tag}@example.test");
    NewEmail {
        mailboxes: mailboxes.to_vec(),
        raw: Arc::new(message(tag, &message_id)),
        keywords: vec![],
        received_at: 1_700_000_000,
        summary: EmailSummary {
            message_id: Some(message_id),
            subject: tag.into(),
            ..EmailSummary::default()
        },
    }
}

pub async fn append_one(
    store: &Arc<dyn Store>,
    account: AccountId,
    mailbox: MailboxId,
    tag: &str,
) -> Appended {
    let mut appended = store
        .email_append(account, vec![new_email(&[mailbox], tag)])
        .await
        .expect("email_append");
    assert_eq!(appended.len(), 1);
    appended.remove(0)
}

pub async fn uids(store: &Arc<dyn Store>, account: AccountId, mailbox: MailboxId) -> Vec<u32> {
    store
        .mailbox_messages(account, mailbox)
        .await
        .expect("mailbox_messages")
        .iter()
        .map(|m| m.uid.0)
        .collect()
}

// ---- directory -------------------------------------------------------------------------

pub async fn domains_accounts_and_aliases(store: Arc<dyn Store>) {
    let domain = unique_domain();
    store.domain_add(&domain).await.expect("domain_add");
    assert!(matches!(
        store.domain_add(&domain).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(store.domain_list().await.expect("list").contains(&domain));
    assert!(
        store
            .domain_exists(&domain.to_uppercase())
            .await
            .expect("exists")
    );
    assert!(
        !store
            .domain_exists("nowhere.invalid")
            .await
            .expect("exists")
    );

    let missing = store
        .account_create(NewAccount {
            address: "x@unknown-domain.invalid".into(),
            display_name: String::new(),
            password_hash: "h".into(),
        })
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    let account = store
        .account_create(NewAccount {
            address: format!("Alice@{}", domain.to_uppercase()),
            display_name: "Alice".into(),
            password_hash: "hash1".into(),
        })
        .await
        .expect("account_create");
    assert_eq!(account.address, format!("alice@{domain}"));
    let again = store
        .account_create(NewAccount {
            address: account.address.clone(),
            display_name: String::new(),
            password_hash: "h".into(),
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists(_))),
        "{again:?}"
    );

    let mailboxes = store.mailbox_list(account.id).await.expect("mailbox_list");
    assert_eq!(mailboxes.len(), 6);
    for role in Role::ALL {
        let m = mailboxes
            .iter()
            .find(|m| m.role == Some(role))
            .expect("role mailbox");
        assert_eq!(m.name, role.default_name());
        assert_eq!(m.uid_next, Uid(1));
    }
    assert!(
        mailboxes
            .iter()
            .find(|m| m.name == "INBOX")
            .is_some_and(|m| m.subscribed)
    );

    let by_address = store
        .account_by_address(&format!("ALICE@{domain}"))
        .await
        .expect("by_address");
    assert_eq!(by_address.as_ref().map(|a| a.id), Some(account.id));
    assert_eq!(
        store.account_get(account.id).await.expect("get"),
        Some(account.clone())
    );
    assert!(
        store
            .account_list()
            .await
            .expect("list")
            .iter()
            .any(|a| a.id == account.id)
    );

    store
        .account_set_password(account.id, "hash2")
        .await
        .expect("passwd");
    store
        .account_set_display_name(account.id, "Alice A.")
        .await
        .expect("name");
    let updated = store
        .account_get(account.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (
            updated.password_hash.as_str(),
            updated.display_name.as_str()
        ),
        ("hash2", "Alice A.")
    );
    assert!(matches!(
        store.account_set_password(AccountId(i64::MAX), "h").await,
        Err(StoreError::NotFound(_))
    ));

    let alias = format!("sales@{domain}");
    store
        .alias_add(&alias.to_uppercase(), account.id)
        .await
        .expect("alias_add");
    assert!(matches!(
        store.alias_add(&alias, account.id).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.alias_add(&account.address, account.id).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(
        store
            .alias_list()
            .await
            .expect("aliases")
            .contains(&(alias.clone(), account.id))
    );
    assert_eq!(
        store
            .resolve_address(&alias.to_uppercase())
            .await
            .expect("resolve"),
        Some(account.id)
    );
    assert_eq!(
        store
            .resolve_address(&account.address)
            .await
            .expect("resolve"),
        Some(account.id)
    );
    assert_eq!(
        store
            .resolve_address(&format!("nobody@{domain}"))
            .await
            .expect("resolve"),
        None
    );
    assert_eq!(
        store
            .account_addresses(account.id)
            .await
            .expect("addresses"),
        vec![account.address.clone(), alias.clone()]
    );

    // A domain in use cannot be deleted.
    assert!(store.domain_delete(&domain).await.is_err());
    store.alias_delete(&alias).await.expect("alias_delete");
    assert!(matches!(
        store.alias_delete(&alias).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .account_delete(account.id)
        .await
        .expect("account_delete");
    assert_eq!(store.account_get(account.id).await.expect("get"), None);
    assert_eq!(
        store
            .resolve_address(&account.address)
            .await
            .expect("resolve"),
        None
    );
    assert!(
        store
            .mailbox_list(account.id)
            .await
            .expect("list")
            .is_empty()
    );
    store.domain_delete(&domain).await.expect("domain_delete");
    assert!(!store.domain_exists(&domain).await.expect("exists"));
    assert!(matches!(
        store.domain_delete(&domain).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn app_passwords_round_trip(store: Arc<dyn Store>) {
    let (account, _) = new_account(&store).await;
    let phone = store
        .app_password_add(account.id, "phone", "h1")
        .await
        .expect("add");
    let laptop = store
        .app_password_add(account.id, "laptop", "h2")
        .await
        .expect("add");
    assert_eq!(
        (phone.name.as_str(), phone.hash.as_str(), phone.account),
        ("phone", "h1", account.id)
    );
    let list = store.app_password_list(account.id).await.expect("list");
    assert_eq!(list, vec![phone.clone(), laptop.clone()]);
    store
        .app_password_delete(account.id, phone.id)
        .await
        .expect("delete");
    assert_eq!(
        store.app_password_list(account.id).await.expect("list"),
        vec![laptop.clone()]
    );
    let (other, _) = new_account(&store).await;
    // Another account cannot delete it.
    assert!(matches!(
        store.app_password_delete(other.id, laptop.id).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn account_settings_round_trip(store: Arc<dyn Store>) {
    let (account, _) = new_account(&store).await;
    let (other, _) = new_account(&store).await;
    assert_eq!(
        store.setting_get(account.id, "totp").await.expect("get"),
        None
    );
    store
        .setting_set(account.id, "totp", Some("{\"secret\":1}"))
        .await
        .expect("set");
    store
        .setting_set(account.id, "totp", Some("{\"secret\":2}"))
        .await
        .expect("overwrite");
    assert_eq!(
        store
            .setting_get(account.id, "totp")
            .await
            .expect("get")
            .as_deref(),
        Some("{\"secret\":2}")
    );
    assert_eq!(
        store.setting_get(other.id, "totp").await.expect("get"),
        None
    );
    store
        .setting_set(account.id, "totp", None)
        .await
        .expect("delete");
    assert_eq!(
        store.setting_get(account.id, "totp").await.expect("get"),
        None
    );
    assert!(matches!(
        store
            .setting_set(AccountId(i64::MAX), "totp", Some("x"))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn global_settings_round_trip_and_compare_and_set(store: Arc<dyn Store>) {
    // A key no other check or run uses (the store may be shared and long-lived).
    let key = format!("test-{}", unique_domain());
    assert_eq!(store.global_setting_get(&key).await.expect("get"), None);
    assert!(
        store
            .global_setting_replace(&key, None, "v1")
            .await
            .expect("insert if absent")
    );
    assert!(
        !store
            .global_setting_replace(&key, None, "other")
            .await
            .expect("second insert loses"),
        "insert-if-absent must not overwrite"
    );
    assert!(
        !store
            .global_setting_replace(&key, Some("stale"), "other")
            .await
            .expect("stale compare"),
        "compare-and-set with a stale value must not write"
    );
    assert!(
        store
            .global_setting_replace(&key, Some("v1"), "v2")
            .await
            .expect("compare-and-set")
    );
    assert_eq!(
        store
            .global_setting_get(&key)
            .await
            .expect("get")
            .as_deref(),
        Some("v2")
    );
    store
        .global_setting_set(&key, Some("v3"))
        .await
        .expect("set");
    assert_eq!(
        store
            .global_setting_get(&key)
            .await
            .expect("get")
            .as_deref(),
        Some("v3")
    );
    store.global_setting_set(&key, None).await.expect("delete");
    assert_eq!(store.global_setting_get(&key).await.expect("get"), None);
}

// ---- mailboxes -------------------------------------------------------------------------

pub async fn mailbox_create_rename_delete(store: Arc<dyn Store>) {
    let (account, inbox) = new_account(&store).await;
    let a = account.id;
    let work = store.mailbox_create(a, "Work", None).await.expect("create");
    let projects = store
        .mailbox_create(a, "Work/Projects", None)
        .await
        .expect("create child");
    assert_eq!(work.uid_next, Uid(1));
    assert!(matches!(
        store.mailbox_create(a, "Work", None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.mailbox_create(a, "inbox", None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.mailbox_create(a, "", None).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.mailbox_create(a, "a//b", None).await,
        Err(StoreError::Invalid(_))
    ));
    let child = store
        .mailbox_create(a, "inbox/Sub", None)
        .await
        .expect("inbox child");
    assert_eq!(child.name, "INBOX/Sub");

    store
        .mailbox_rename(a, work.id, "Jobs")
        .await
        .expect("rename");
    let renamed = store
        .mailbox_get(a, work.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(renamed.name, "Jobs");
    assert_eq!(
        renamed.uid_validity, work.uid_validity,
        "rename keeps UIDVALIDITY"
    );
    let child = store
        .mailbox_get(a, projects.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(child.name, "Jobs/Projects");
    assert!(matches!(
        store.mailbox_rename(a, work.id, "Sent").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.mailbox_rename(a, work.id, "Jobs/Projects/x").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.mailbox_rename(a, inbox.id, "Old").await.is_err());

    store
        .mailbox_set_subscribed(a, projects.id, true)
        .await
        .expect("subscribe");
    assert!(
        store
            .mailbox_get(a, projects.id)
            .await
            .expect("get")
            .is_some_and(|m| m.subscribed)
    );
    store
        .mailbox_set_subscribed(a, projects.id, false)
        .await
        .expect("unsubscribe");
    assert!(
        store
            .mailbox_get(a, projects.id)
            .await
            .expect("get")
            .is_some_and(|m| !m.subscribed)
    );

    let archive = mailbox_by_role(&store, a, Role::Archive).await;
    assert!(matches!(
        store
            .mailbox_set_role(a, work.id, Some(Role::Archive))
            .await,
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .mailbox_set_role(a, archive.id, None)
        .await
        .expect("clear role");
    store
        .mailbox_set_role(a, work.id, Some(Role::Archive))
        .await
        .expect("set role");
    assert_eq!(mailbox_by_role(&store, a, Role::Archive).await.id, work.id);

    store.mailbox_delete(a, projects.id).await.expect("delete");
    assert_eq!(store.mailbox_get(a, projects.id).await.expect("get"), None);
    assert!(matches!(
        store.mailbox_delete(a, projects.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store.mailbox_delete(a, inbox.id).await.is_err(),
        "INBOX cannot be deleted"
    );

    // Another account sees none of it.
    let (other, _) = new_account(&store).await;
    assert_eq!(
        store.mailbox_get(other.id, work.id).await.expect("get"),
        None
    );
    assert!(
        store
            .mailbox_rename(other.id, work.id, "Mine")
            .await
            .is_err()
    );
}

pub async fn uid_validity_is_never_reused(store: Arc<dyn Store>) {
    let (account, _) = new_account(&store).await;
    let mut seen: Vec<u32> = store
        .mailbox_list(account.id)
        .await
        .expect("list")
        .iter()
        .map(|m| m.uid_validity)
        .collect();
    for _ in 0..3 {
        let m = store
            .mailbox_create(account.id, "Temp", None)
            .await
            .expect("create");
        assert_ne!(m.uid_validity, 0);
        assert!(
            !seen.contains(&m.uid_validity),
            "UIDVALIDITY {} reused",
            m.uid_validity
        );
        seen.push(m.uid_validity);
        store
            .mailbox_delete(account.id, m.id)
            .await
            .expect("delete");
    }
}

/// Waits for a state change on `rx` with a deadline.
pub async fn next_change(rx: &mut tokio::sync::broadcast::Receiver<StateChange>) -> StateChange {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no state change within 10 s")
        .expect("channel closed")
}
