//! The reserved mailbox `postmaster` (RFC 5321 §4.5.1): every server that delivers mail must
//! accept `<Postmaster>` without a domain and `postmaster@` each of its domains, even when the
//! operator created no such account or alias.
//!
//! * Bare `<postmaster>` is `postmaster@<primary domain>`: the local domain the server's
//!   hostname is in (`mail.example.test` → `example.test`; the longest match wins), else the
//!   first local domain by name.
//! * `postmaster@<local domain>` goes to the account or alias of that name when there is one;
//!   otherwise to the oldest account of that domain (the first one created, on a new server
//!   the operator's own), else to the oldest account of the server.

use bulwark_core::{Recipient, resolve_recipient, split_address};
use bulwark_store::{AccountId, Store, StoreError};

/// The local part, compared case-insensitively (RFC 5321 §4.5.1).
const LOCAL_PART: &str = "postmaster";

/// The primary domain for a bare `<postmaster>`, `None` without any local domain.
pub(crate) async fn primary_domain(
    store: &dyn Store,
    hostname: &str,
) -> Result<Option<String>, StoreError> {
    let domains = store.domain_list().await?;
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let in_host = domains
        .iter()
        .filter(|d| host == **d || host.ends_with(&format!(".{d}")))
        .max_by_key(|d| d.len());
    Ok(in_host.or(domains.first()).cloned())
}

/// Where mail for `address` (a `postmaster@` of a local domain) goes when no account or
/// alias has that address: the oldest account of the domain, else of the server.
async fn fallback_account(
    store: &dyn Store,
    domain: &str,
) -> Result<Option<AccountId>, StoreError> {
    let accounts = store.account_list().await?;
    let suffix = format!("@{domain}");
    let of_domain = accounts
        .iter()
        .filter(|a| a.address.to_ascii_lowercase().ends_with(&suffix))
        .min_by_key(|a| a.id);
    Ok(of_domain
        .or(accounts.iter().min_by_key(|a| a.id))
        .map(|a| a.id))
}

/// Is `address` `postmaster@…` (any case)?
pub(crate) fn is_postmaster_address(address: &str) -> bool {
    split_address(address).is_some_and(|(local, _)| local == LOCAL_PART)
}

/// Resolves `postmaster@domain` (a local domain): its account or alias, else the fallback
/// account. `None` only when the domain is not local or the server has no account at all.
pub(crate) async fn resolve_postmaster(
    store: &dyn Store,
    address: &str,
) -> Result<Option<AccountId>, StoreError> {
    match resolve_recipient(store, address).await? {
        Recipient::Local(account) => Ok(Some(account)),
        Recipient::Remote => Ok(None),
        Recipient::UnknownUser => match split_address(address) {
            Some((_, domain)) => fallback_account(store, &domain).await,
            None => Ok(None),
        },
    }
}

/// The full address a bare `<postmaster>` stands for, `None` without local domains.
pub(crate) async fn bare_postmaster_address(
    store: &dyn Store,
    hostname: &str,
) -> Result<Option<String>, StoreError> {
    Ok(primary_domain(store, hostname)
        .await?
        .map(|d| format!("{LOCAL_PART}@{d}")))
}
