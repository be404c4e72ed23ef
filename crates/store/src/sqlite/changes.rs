//! The per-account change log: state, `/changes`, trimming.

use super::db_err;
use super::writer::Tx;
use crate::changelog::{
    ChangeCollapser, ChangeKind, MAIL_KINDS, MailStateCache, MailStateRead, check_changes_window,
};
use crate::{AccountId, ChangeSet, MailStates, ModSeq, Result, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn account_modseq(conn: &Connection, account: AccountId) -> Result<ModSeq> {
    Ok(account_counters(conn, account)?.0)
}

/// `(modseq, changes_floor)` of the account.
fn account_counters(conn: &Connection, account: AccountId) -> Result<(ModSeq, ModSeq)> {
    let mut stmt = conn
        .prepare_cached("SELECT modseq, changes_floor FROM accounts WHERE id = ?1")
        .map_err(db_err)?;
    let row: Option<(i64, i64)> = stmt
        .query_row([account.0], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(db_err)?;
    let (modseq, floor) = row.ok_or_else(|| StoreError::NotFound(format!("account {account}")))?;
    Ok((ModSeq(modseq as u64), ModSeq(floor as u64)))
}

/// Changes after `since`, whole modseqs at a time, at most `max` objects unless a single
/// modseq alone has more (then that modseq is returned whole, so callers always progress).
pub(crate) fn changes_since(
    conn: &Connection,
    account: AccountId,
    since: ModSeq,
    max: usize,
) -> Result<ChangeSet> {
    let (current, floor) = account_counters(conn, account)?;
    collapse(
        conn,
        account,
        since,
        current,
        floor,
        ChangeCollapser::new(since, max),
        max,
    )
}

/// Changes of one kind after `since`, up to the kind's state ([`mail_states`]).
pub(crate) fn kind_changes_since(
    conn: &Connection,
    cache: &MailStateCache,
    account: AccountId,
    kind: ChangeKind,
    since: ModSeq,
    max: usize,
) -> Result<ChangeSet> {
    let (current, floor) = account_counters(conn, account)?;
    let states = states_at(conn, cache, account, current, floor)?;
    let collapser = ChangeCollapser::of_kind(since, max, kind);
    collapse(conn, account, since, states.of(kind), floor, collapser, max)
}

/// The state of each mail type: the newest change-log row of each kind up to the account's
/// modseq, read incrementally from what `cache` kept.
pub(crate) fn mail_states(
    conn: &Connection,
    cache: &MailStateCache,
    account: AccountId,
) -> Result<MailStates> {
    let (current, floor) = account_counters(conn, account)?;
    states_at(conn, cache, account, current, floor)
}

fn states_at(
    conn: &Connection,
    cache: &MailStateCache,
    account: AccountId,
    current: ModSeq,
    floor: ModSeq,
) -> Result<MailStates> {
    let states = match cache.plan(account, current) {
        MailStateRead::Fresh(states) => states,
        MailStateRead::After(at, mut states) => {
            // One range of the (account, modseq) index: only rows since the cached read.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT kind, MAX(modseq) FROM changes
                     WHERE account = ?1 AND modseq > ?2 AND modseq <= ?3 GROUP BY kind",
                )
                .map_err(db_err)?;
            let mut rows = stmt
                .query(params![account.0, at.0 as i64, current.0 as i64])
                .map_err(db_err)?;
            while let Some(row) = rows.next().map_err(db_err)? {
                let kind = ChangeKind::from_code(row.get::<_, i64>(0).map_err(db_err)?)?;
                states.raise(kind, ModSeq(row.get::<_, i64>(1).map_err(db_err)? as u64));
            }
            states
        }
        MailStateRead::Cold => {
            // The newest row of each kind: a backward walk of the index that stops at the
            // first row of the kind.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT modseq FROM changes WHERE account = ?1 AND kind = ?2 AND modseq <= ?3
                     ORDER BY modseq DESC LIMIT 1",
                )
                .map_err(db_err)?;
            let mut states = MailStates::default();
            for kind in MAIL_KINDS {
                let newest: Option<i64> = stmt
                    .query_row(params![account.0, kind as i64, current.0 as i64], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(db_err)?;
                if let Some(m) = newest {
                    states.raise(kind, ModSeq(m as u64));
                }
            }
            states
        }
    };
    cache.keep(account, current, states);
    Ok(states.at_least(floor))
}

fn collapse(
    conn: &Connection,
    account: AccountId,
    since: ModSeq,
    current: ModSeq,
    floor: ModSeq,
    mut collapser: ChangeCollapser,
    max: usize,
) -> Result<ChangeSet> {
    check_changes_window(since, current, floor, max)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT modseq, kind, object, op FROM changes
             WHERE account = ?1 AND modseq > ?2 ORDER BY modseq, rowid",
        )
        .map_err(db_err)?;
    let mut rows = stmt
        .query(params![account.0, since.0 as i64])
        .map_err(db_err)?;
    while let Some(row) = rows.next().map_err(db_err)? {
        let modseq = row.get::<_, i64>(0).map_err(db_err)? as u64;
        let (kind, object, op) = (
            row.get::<_, i64>(1).map_err(db_err)?,
            row.get::<_, i64>(2).map_err(db_err)?,
            row.get::<_, i64>(3).map_err(db_err)?,
        );
        if !collapser.push(modseq, kind, object, op)? {
            break;
        }
    }
    Ok(collapser.finish(current))
}

/// Drops change-log rows at or below `modseq`; `changes_since(since < modseq)` then fails
/// with `CannotCalculateChanges`. The floor never moves back.
pub(crate) fn trim_changes_before(
    tx: &mut Tx<'_>,
    account: AccountId,
    modseq: ModSeq,
) -> Result<()> {
    let (current, floor) = account_counters(tx.conn, account)?;
    let new_floor = modseq.min(current).max(floor);
    tx.conn
        .execute(
            "DELETE FROM changes WHERE account = ?1 AND modseq <= ?2",
            params![account.0, new_floor.0 as i64],
        )
        .map_err(db_err)?;
    tx.conn
        .execute(
            "UPDATE accounts SET changes_floor = ?2 WHERE id = ?1",
            params![account.0, new_floor.0 as i64],
        )
        .map_err(db_err)?;
    Ok(())
}
