//! The mail core: the operations every protocol shares on top of the [`Store`].
//!
//! * recipient resolution (local domains, aliases, plus-addressing `user+tag@`),
//! * the one delivery pipeline every path that puts mail somewhere uses ([`pipeline`]),
//! * header summaries extracted once at delivery (threading, sorting, JMAP previews),
//! * the local durable spool for inbound mail while the store is unavailable ([`spool`]),
//! * who may send as which address ([`sender`]), the same rule for every submission path.

/// Kept here for callers that found it in this crate first; it lives in `bulwark-store`.
pub use bulwark_store::outage;
pub mod civil;
pub mod collector;
pub mod dsn;
pub mod greylist;
pub mod held;
pub mod keyword_case;
pub mod local_domains;
pub mod mta_sts;
pub mod pipeline;
pub mod quota;
/// For implementing [`DeliveryHook`] without depending on `async-trait` directly.
pub use async_trait::async_trait;
pub mod sender;
pub mod spool;
mod summary;

pub use pipeline::{
    DeliveryError, DeliveryHook, Filing, Folder, ForwardSealer, Message, Origin, Outcome, Outgoing,
    Pipeline, Refusal, Verdict,
};
pub use summary::{envelope, header, imap_string, summarize};

use bulwark_store::{AccountId, EmailSummary, MailboxId, NewEmail, Role, Store, StoreError};
use std::sync::Arc;

/// Longest address we accept: the store's rule (RFC 5321 §4.5.3.1.3, 254 without brackets).
pub const MAX_ADDRESS_LEN: usize = bulwark_store::rules::MAX_ADDRESS_LEN;

/// What an envelope recipient resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A mailbox on this server.
    Local(AccountId),
    /// The domain is ours but no such user/alias exists.
    UnknownUser,
    /// Not one of our domains (relay needed).
    Remote,
}

/// Splits and lowercases `local@domain` (angle brackets allowed); `None` if it is not an
/// address. The same rule as the store's ([`bulwark_store::rules::normalize_address`]), so
/// a recipient is looked up exactly as its account was stored.
pub fn split_address(address: &str) -> Option<(String, String)> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (address, domain) = bulwark_store::rules::normalize_address(address).ok()?;
    let local = address.strip_suffix(domain.as_str())?.strip_suffix('@')?;
    Some((local.to_string(), domain))
}

/// Resolves an envelope recipient: exact address or alias first, then with the `+tag`
/// sub-address removed (`alice+news@example.test` → `alice@example.test`).
pub async fn resolve_recipient(store: &dyn Store, address: &str) -> Result<Recipient, StoreError> {
    let Some((local, domain)) = split_address(address) else {
        return Ok(Recipient::Remote);
    };
    if !store.domain_exists(&domain).await? {
        return Ok(Recipient::Remote);
    }
    if let Some(id) = store.resolve_address(&format!("{local}@{domain}")).await? {
        return Ok(Recipient::Local(id));
    }
    if let Some((base, _tag)) = local.split_once('+')
        && !base.is_empty()
        && let Some(id) = store.resolve_address(&format!("{base}@{domain}")).await?
    {
        return Ok(Recipient::Local(id));
    }
    Ok(Recipient::UnknownUser)
}

/// A message to store as IMAP APPEND and `bulwark import` store one: the raw bytes, their
/// header summary ([`summarize`]), the keywords and the internal date, in these mailboxes.
pub fn new_email(
    mailboxes: Vec<MailboxId>,
    raw: Arc<Vec<u8>>,
    keywords: Vec<String>,
    received_at: i64,
) -> NewEmail {
    let summary = summarize(&raw);
    NewEmail {
        mailboxes,
        raw,
        keywords,
        received_at,
        summary,
    }
}

/// What a local delivery stores for one recipient: the message in its INBOX, no keywords.
pub(crate) fn inbox_email(
    inbox: MailboxId,
    raw: &Arc<Vec<u8>>,
    summary: &EmailSummary,
    received_at: i64,
) -> NewEmail {
    NewEmail {
        mailboxes: vec![inbox],
        raw: raw.clone(),
        keywords: vec![],
        received_at,
        summary: summary.clone(),
    }
}

/// The account's INBOX id.
pub async fn inbox_of(
    store: &dyn Store,
    account: AccountId,
) -> Result<bulwark_store::MailboxId, StoreError> {
    mailbox_with_role(store, account, Role::Inbox).await
}

/// The account's mailbox with this special-use role.
pub async fn mailbox_with_role(
    store: &dyn Store,
    account: AccountId,
    role: Role,
) -> Result<bulwark_store::MailboxId, StoreError> {
    store
        .mailbox_list(account)
        .await?
        .into_iter()
        .find(|m| m.role == Some(role))
        .map(|m| m.id)
        .ok_or_else(|| {
            StoreError::NotFound(format!("{} mailbox of account {account}", role.as_jmap()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_address_lowercases_and_rejects_garbage() {
        assert_eq!(
            split_address("<Alice@Example.TEST>"),
            Some(("alice".into(), "example.test".into()))
        );
        assert_eq!(split_address("no-at-sign"), None);
        assert_eq!(split_address("@example.test"), None);
        assert_eq!(split_address("a@"), None);
        assert_eq!(split_address(&format!("{}@x.test", "a".repeat(300))), None);
        // The store's limit: 254 bytes without the brackets (RFC 5321 §4.5.3.1.3).
        let max = format!("{}@x.test", "a".repeat(MAX_ADDRESS_LEN - 7));
        assert!(split_address(&format!("<{max}>")).is_some());
        assert_eq!(split_address(&format!("<a{max}>")), None);
        // Unicode local parts fold as the store folds them.
        assert_eq!(
            split_address("JÜRGEN@Example.TEST."),
            Some(("jürgen".into(), "example.test".into()))
        );
    }
}
