//! The subscription list (RFC 3501 §6.3.6–§6.3.7, RFC 9051 §6.3.7–§6.3.8).
//!
//! Subscriptions are names, not mailboxes: "A server MUST NOT unilaterally remove an
//! existing mailbox name from the subscription list even if a mailbox by that name no longer
//! exists" (RFC 3501 §6.3.6), so DELETE keeps the name subscribed, and LIST (SUBSCRIBED)
//! then shows it `\NonExistent` (RFC 5258 §3.1). An existing mailbox's subscription is the
//! store's `subscribed` flag (which JMAP `isSubscribed` shares); names without a mailbox are
//! items of the account collection [`names::IMAP_SUBSCRIPTIONS`]. Creating a mailbox whose
//! name is subscribed turns the item back into the flag.

use super::{CmdError, Session};
use bulwark_store::collections::{Expect, ItemWrite, MAX_NAME_LEN, names};
use bulwark_store::{BlobHash, Mailbox, StoreError};
use std::collections::BTreeSet;

/// Most subscribed names without a mailbox per account (SUBSCRIBE of a missing name beyond
/// it is refused).
pub(crate) const MAX_ORPHAN_SUBSCRIPTIONS: usize = 1000;

/// The collection item id of a subscribed name: the name itself when it fits, else its
/// hash (the value always holds the name).
fn item_id(name: &str) -> String {
    if name.len() <= MAX_NAME_LEN && !name.chars().any(char::is_control) {
        name.to_string()
    } else {
        format!("sha256:{}", BlobHash::of(name.as_bytes()).0)
    }
}

impl Session {
    /// Subscribed names that have no mailbox.
    pub(crate) async fn orphan_subscriptions(&self) -> Result<Vec<String>, StoreError> {
        let Ok(account) = self.account_id() else {
            return Ok(Vec::new());
        };
        let items = self
            .store
            .collection_get(account, names::IMAP_SUBSCRIPTIONS, None)
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|i| serde_json::from_str::<String>(&i.value).ok())
            .collect())
    }

    /// Every subscribed name: existing mailboxes flagged subscribed and the orphans.
    pub(crate) async fn subscribed_names(
        &self,
        mailboxes: &[Mailbox],
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut all: BTreeSet<String> = mailboxes
            .iter()
            .filter(|m| m.subscribed)
            .map(|m| m.name.clone())
            .collect();
        all.extend(self.orphan_subscriptions().await?);
        Ok(all)
    }

    /// Keeps `name` subscribed without a mailbox (DELETE of a subscribed mailbox, SUBSCRIBE
    /// of a missing name).
    pub(crate) async fn add_orphan_subscription(&self, name: &str) -> Result<(), CmdError> {
        let account = self.account_id()?;
        let write = ItemWrite::put(
            names::IMAP_SUBSCRIPTIONS,
            &item_id(name),
            Expect::Any,
            serde_json::to_string(name).unwrap_or_default(),
        );
        self.store.collection_write(account, vec![write]).await?;
        Ok(())
    }

    /// Drops `name` from the names subscribed without a mailbox; whether it was there.
    pub(crate) async fn remove_orphan_subscription(&self, name: &str) -> Result<bool, CmdError> {
        let account = self.account_id()?;
        let id = item_id(name);
        let present = !self
            .store
            .collection_get(
                account,
                names::IMAP_SUBSCRIPTIONS,
                Some(std::slice::from_ref(&id)),
            )
            .await?
            .is_empty();
        if present {
            let write = ItemWrite::delete(names::IMAP_SUBSCRIPTIONS, &id, Expect::Any);
            self.store.collection_write(account, vec![write]).await?;
        }
        Ok(present)
    }
}
