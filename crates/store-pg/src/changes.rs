//! The per-account change log: state, `/changes`, trimming (same semantics as the
//! embedded backend; rows of one modseq are ordered by insertion via `seq`).

use crate::pool::{Tx, get, get_modseq, pg_err, sql_modseq};
use bulwark_store::changelog::{
    ChangeCollapser, ChangeKind, MailStateCache, MailStateRead, check_changes_window,
};
use bulwark_store::{AccountId, ChangeSet, MailStates, ModSeq, Result, StoreError};
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
    let collapser = ChangeCollapser::new(since, max);
    collapse(tx, account, since, current, floor, collapser, max).await
}

/// Changes of one kind after `since`, up to the kind's state ([`mail_states`]).
pub(crate) async fn kind_changes_since(
    tx: &mut Tx<'_>,
    cache: &MailStateCache,
    account: AccountId,
    kind: ChangeKind,
    since: ModSeq,
    max: usize,
) -> Result<ChangeSet> {
    let (current, floor) = account_counters(tx, account).await?;
    let states = states_at(tx, cache, account, current, floor).await?;
    let collapser = ChangeCollapser::of_kind(since, max, kind);
    collapse(tx, account, since, states.of(kind), floor, collapser, max).await
}

/// The state of each mail type: the newest change-log row of each kind up to the account's
/// modseq, read incrementally from what `cache` kept.
pub(crate) async fn mail_states(
    tx: &mut Tx<'_>,
    cache: &MailStateCache,
    account: AccountId,
) -> Result<MailStates> {
    let (current, floor) = account_counters(tx, account).await?;
    states_at(tx, cache, account, current, floor).await
}

async fn states_at(
    tx: &mut Tx<'_>,
    cache: &MailStateCache,
    account: AccountId,
    current: ModSeq,
    floor: ModSeq,
) -> Result<MailStates> {
    let (mut states, rows) = match cache.plan(account, current) {
        MailStateRead::Fresh(states) => (states, Vec::new()),
        MailStateRead::After(at, states) => {
            // One range of the (account, modseq) index: only rows since the cached read.
            let rows = tx
                .query(
                    "SELECT kind, MAX(modseq) FROM changes
                     WHERE account = $1 AND modseq > $2 AND modseq <= $3 GROUP BY kind",
                    &[&account.0, &sql_modseq(at), &sql_modseq(current)],
                )
                .await?;
            (states, rows)
        }
        MailStateRead::Cold => {
            // The newest row of each kind, each a backward walk of the index that stops at
            // the kind's first row; one round trip.
            let rows = tx
                .query(
                    "SELECT k.kind, (SELECT c.modseq FROM changes c
                                      WHERE c.account = $1 AND c.kind = k.kind AND c.modseq <= $2
                                      ORDER BY c.modseq DESC LIMIT 1)
                     FROM (VALUES (0::BIGINT), (1::BIGINT), (2::BIGINT)) AS k(kind)",
                    &[&account.0, &sql_modseq(current)],
                )
                .await?;
            (MailStates::default(), rows)
        }
    };
    for row in rows {
        let kind = ChangeKind::from_code(get::<i64>(&row, 0)?)?;
        if let Some(modseq) = get::<Option<i64>>(&row, 1)? {
            states.raise(kind, ModSeq(modseq as u64));
        }
    }
    cache.keep(account, current, states);
    Ok(states.at_least(floor))
}

async fn collapse(
    tx: &mut Tx<'_>,
    account: AccountId,
    since: ModSeq,
    current: ModSeq,
    floor: ModSeq,
    mut collapser: ChangeCollapser,
    max: usize,
) -> Result<ChangeSet> {
    check_changes_window(since, current, floor, max)?;
    let rows = tx
        .stream(
            "SELECT modseq, kind, object, op FROM changes
             WHERE account = $1 AND modseq > $2 ORDER BY modseq, seq",
            &[&account.0, &sql_modseq(since)],
        )
        .await?;
    let mut rows = std::pin::pin!(rows);
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
