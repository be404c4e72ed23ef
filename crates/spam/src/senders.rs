//! "First mail from a sender" (a phishing signal): per account, the From addresses of mail it
//! received that was not spam, as items of the account collection `senders-seen` (item id: a
//! hash of the address, value: when first seen). A message whose From is not among them
//! scores `FIRST_FROM_SENDER` for that account. Spam does not teach it (a spammer cannot make
//! itself known by sending), and records older than [`FORGET_AFTER_SECS`] are swept, so the
//! collection stays bounded by a year of real correspondents.

use bulwark_store::{AccountId, Expect, ItemWrite, Store, StoreError};
use sha2::Digest as _;

pub const COLLECTION: &str = "senders-seen";
/// A sender not heard from... is forgotten after this (its record is swept).
pub const FORGET_AFTER_SECS: i64 = 400 * 86_400;

fn item_id(address: &str) -> String {
    let d = sha2::Sha256::digest(address.to_lowercase().as_bytes());
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The header From address of a message, lowercase.
pub fn header_from(raw: &[u8]) -> Option<String> {
    let (from, _) = bulwark_core::sender::header_senders(raw);
    from.into_iter().next().map(|a| a.to_lowercase())
}

/// Whether the account had mail from `address` before. A store error says "known" (no
/// points on a guess).
pub async fn known(store: &dyn Store, account: AccountId, address: &str) -> bool {
    let id = item_id(address);
    match store
        .collection_get(account, COLLECTION, Some(std::slice::from_ref(&id)))
        .await
    {
        Ok(items) => !items.is_empty(),
        Err(_) => true,
    }
}

/// Remembers `address` for the account (nothing when it is already known).
pub async fn remember(store: &dyn Store, account: AccountId, address: &str) {
    let id = item_id(address);
    if known(store, account, address).await {
        return;
    }
    let now = bulwark_store::now_unix();
    let write = ItemWrite::put(COLLECTION, &id, Expect::Absent, now.to_string());
    match store.collection_write(account, vec![write]).await {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => tracing::debug!(error = %e, "cannot remember the sender"),
    }
    if bulwark_core::greylist::sweep_due(&id) {
        bulwark_core::greylist::sweep_collection(store, account, COLLECTION, |v| {
            v.parse::<i64>()
                .map_or(true, |t| now - t > FORGET_AFTER_SECS)
        })
        .await;
    }
}
