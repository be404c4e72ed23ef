//! Collection writes: compare-and-set of account-scoped items, one modseq per write call,
//! each write in the collection's change log — for every backend.

use crate::collections::{self, ItemWrite, OP_DELETE, OP_PUT};
use crate::engine::WriteTx;
use crate::{AccountId, ModSeq, Result};

/// Applies the writes all or nothing: every expectation is checked first, so a conflict
/// writes nothing ([`crate::StoreError::Conflict`]); then each item gets the new modseq as
/// its version. Deleting an item that is not there (with [`crate::Expect::Any`]) logs
/// nothing.
pub async fn collection_write<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    writes: &[ItemWrite],
) -> Result<ModSeq> {
    collections::validate_writes(writes)?;
    tx.lock_account(account).await?;
    tx.require_account(account).await?;
    let mut current = Vec::with_capacity(writes.len());
    for w in writes {
        let version = tx.item_version(account, &w.collection, &w.id).await?;
        w.check(version)?;
        current.push(version);
    }
    let modseq = tx.next_modseq(account).await?;
    for (w, existed) in writes.iter().zip(current) {
        let op = match &w.value {
            Some(value) => {
                tx.put_item(account, &w.collection, &w.id, modseq, value)
                    .await?;
                tx.set_item_blobs(account, &w.collection, &w.id, &w.blobs)
                    .await?;
                OP_PUT
            }
            None => {
                if existed.is_none() {
                    continue;
                }
                tx.delete_item(account, &w.collection, &w.id).await?;
                tx.set_item_blobs(account, &w.collection, &w.id, &[])
                    .await?;
                OP_DELETE
            }
        };
        tx.log_item(account, &w.collection, modseq, &w.id, op, existed.is_some())
            .await?;
    }
    Ok(modseq)
}
