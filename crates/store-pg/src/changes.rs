//! The per-account change log: state, `/changes`, trimming (same semantics as the
//! embedded backend; rows of one modseq are ordered by insertion via `seq`).

use crate::pool::{Tx, get, get_modseq, pg_err, sql_modseq};
use bulwark_store::changelog::{ChangeCollapser, check_changes_window};
use bulwark_store::{AccountId, ChangeSet, ModSeq, Result, StoreError};
use futures::StreamExt;

pub(crate) async fn account_modseq(tx: &mut Tx<'_>, account: AccountId) -> Result<ModSeq> {
    Ok(account_counters(tx, account).await?.0)
}

/// `(modseq, changes_floor)` of the account.
async fn account_counters(tx: &mut Tx<'_>, account: AccountId) -> Result<(ModSeq, ModSeq)> {
    let row = tx
        .opt(
            "SELECT modseq, changes_floor FROM accounts WHERE id = $1",
            &[&account.0],
        )
        .await?;
    let row = row.ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    Ok((get_modseq(&row, 0)?, get_modseq(&row, 1)?))
}

/// Changes after `since`, whole modseqs at a time, at most `max` objects unless a single
/// modseq alone has more (then that modseq is returned whole, so callers always progress).
pub(crate) async fn changes_since(
    tx: &mut Tx<'_>,
    account: AccountId,
    since: ModSeq,
    max: usize,
) -> Result<ChangeSet> {
    let (current, floor) = account_counters(tx, account).await?;
    check_changes_window(since, current, floor, max)?;
    let rows = tx
        .stream(
            "SELECT modseq, kind, object, op FROM changes
             WHERE account = $1 AND modseq > $2 ORDER BY modseq, seq",
            &[&account.0, &sql_modseq(since)],
        )
        .await?;
    let mut rows = std::pin::pin!(rows);

    let mut collapser = ChangeCollapser::new(since, max);
    while let Some(row) = rows.next().await {
        let row = row.map_err(pg_err)?;
        let (modseq, kind, object, op) = (
            get_modseq(&row, 0)?.0,
            get::<i64>(&row, 1)?,
            get::<i64>(&row, 2)?,
            get::<i64>(&row, 3)?,
        );
        if !collapser.push(modseq, kind, object, op)? {
            break;
        }
    }
    Ok(collapser.finish(current))
}

/// Drops change-log rows at or below `modseq`; `changes_since(since < modseq)` then fails
/// with `CannotCalculateChanges`. The floor never moves back.
pub(crate) async fn trim_changes_before(
    tx: &mut Tx<'_>,
    account: AccountId,
    modseq: ModSeq,
) -> Result<()> {
    tx.lock_account(account).await?;
    let (current, floor) = account_counters(tx, account).await?;
    let new_floor = sql_modseq(modseq.min(current).max(floor));
    tx.exec(
        "DELETE FROM changes WHERE account = $1 AND modseq <= $2",
        &[&account.0, &new_floor],
    )
    .await?;
    tx.exec(
        "UPDATE accounts SET changes_floor = $2 WHERE id = $1",
        &[&account.0, &new_floor],
    )
    .await?;
    Ok(())
}
