//! The mail domain, written once above the engine contract ([`crate::engine::WriteTx`]):
//! every backend runs these functions inside its own write transaction.

pub mod collections;
pub mod emails;
pub mod mailboxes;

use crate::collections::by_account;
use crate::engine::WriteTx;
use crate::{Acceptance, Accepted, AccountId, Result};
use std::collections::BTreeSet;

/// Commits a whole accepted message in the caller's transaction: its local copies, its queue
/// entry and the collection items written with it ([`crate::Store::accept`]). Every account
/// involved is locked first, in id order, so concurrent acceptances cannot deadlock.
pub async fn accept<T: WriteTx>(tx: &mut T, acceptance: &Acceptance) -> Result<Accepted> {
    let accounts: BTreeSet<AccountId> = acceptance
        .local
        .iter()
        .map(|(a, _)| *a)
        .chain(acceptance.items.iter().map(|(a, _)| *a))
        .collect();
    for account in accounts {
        tx.lock_account(account).await?;
    }
    let appended = if acceptance.local.is_empty() {
        Vec::new()
    } else {
        emails::deliver(tx, &acceptance.local).await?
    };
    let queued = match &acceptance.queue {
        Some(q) => Some(tx.enqueue(q).await?),
        None => None,
    };
    for (account, writes) in by_account(acceptance.items.clone()) {
        collections::collection_write(tx, account, &writes).await?;
    }
    Ok(Accepted { appended, queued })
}
