//! The per-account change log: state, `/changes`, trimming (same semantics as the
//! embedded backend; rows of one modseq are ordered by insertion via `seq`).

use crate::pool::{Kind, Op, Tx, get, get_modseq, pg_err, sql_modseq};
use bulwark_store::{
    AccountId, ChangeSet, EmailId, MailboxId, ModSeq, ObjectChanges, Result, StoreError, ThreadId,
};
use futures::StreamExt;
use std::collections::{HashMap, HashSet};

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

/// What happened to one object over the window, collapsed (RFC 8620 §5.2).
struct Collapsed {
    created_in_window: bool,
    last: Op,
}

fn op_from(value: i64) -> Result<Op> {
    match value {
        0 => Ok(Op::Created),
        1 => Ok(Op::Updated),
        2 => Ok(Op::Destroyed),
        other => Err(StoreError::Internal(format!(
            "unknown change op {other} in the change log"
        ))),
    }
}

fn kind_from(value: i64) -> Result<Kind> {
    match value {
        0 => Ok(Kind::Email),
        1 => Ok(Kind::Mailbox),
        2 => Ok(Kind::Thread),
        other => Err(StoreError::Internal(format!(
            "unknown change kind {other} in the change log"
        ))),
    }
}

/// Changes after `since`, whole modseqs at a time, at most `max` objects unless a single
/// modseq alone has more (then that modseq is returned whole, so callers always progress).
pub(crate) async fn changes_since(
    tx: &mut Tx<'_>,
    account: AccountId,
    since: ModSeq,
    max: usize,
) -> Result<ChangeSet> {
    if max == 0 {
        return Err(StoreError::Invalid("max changes must be positive".into()));
    }
    let (current, floor) = account_counters(tx, account).await?;
    if since < floor || since > current {
        return Err(StoreError::CannotCalculateChanges(since.0));
    }
    let rows = tx
        .stream(
            "SELECT modseq, kind, object, op FROM changes
             WHERE account = $1 AND modseq > $2 ORDER BY modseq, seq",
            &[&account.0, &sql_modseq(since)],
        )
        .await?;
    let mut rows = std::pin::pin!(rows);

    // Collapsed objects in order of first appearance, and where each one sits.
    let mut collapsed: Vec<((Kind, i64), Collapsed)> = Vec::new();
    let mut index: HashMap<(Kind, i64), usize> = HashMap::new();
    // Rows of the modseq being read; applied once the whole modseq is known to fit.
    let mut group: Vec<(Kind, i64, Op)> = Vec::new();
    let mut group_modseq: Option<u64> = None;
    let mut complete_to = since.0;
    let mut has_more = false;
    loop {
        let row = match rows.next().await {
            Some(row) => {
                let row = row.map_err(pg_err)?;
                Some((
                    get_modseq(&row, 0)?.0,
                    kind_from(get(&row, 1)?)?,
                    get::<i64>(&row, 2)?,
                    op_from(get(&row, 3)?)?,
                ))
            }
            None => None,
        };
        if let Some(g) = group_modseq
            && row.as_ref().is_none_or(|(modseq, ..)| *modseq != g)
        {
            let new_objects: HashSet<(Kind, i64)> = group
                .iter()
                .map(|&(kind, object, _)| (kind, object))
                .filter(|key| !index.contains_key(key))
                .collect();
            if !collapsed.is_empty() && collapsed.len() + new_objects.len() > max {
                has_more = true;
                break;
            }
            for (kind, object, op) in group.drain(..) {
                match index.get(&(kind, object)) {
                    Some(&i) => {
                        if let Some((_, c)) = collapsed.get_mut(i) {
                            c.last = op;
                        }
                    }
                    None => {
                        index.insert((kind, object), collapsed.len());
                        let c = Collapsed {
                            created_in_window: op == Op::Created,
                            last: op,
                        };
                        collapsed.push(((kind, object), c));
                    }
                }
            }
            complete_to = g;
        }
        match row {
            Some((modseq, kind, object, op)) => {
                group_modseq = Some(modseq);
                group.push((kind, object, op));
            }
            None => break,
        }
    }

    let mut set = ChangeSet {
        new_modseq: if has_more {
            ModSeq(complete_to)
        } else {
            current
        },
        has_more,
        ..ChangeSet::default()
    };
    for ((kind, object), c) in &collapsed {
        match kind {
            Kind::Email => push_change(&mut set.emails, EmailId(*object), c),
            Kind::Mailbox => push_change(&mut set.mailboxes, MailboxId(*object), c),
            Kind::Thread => push_change(&mut set.threads, ThreadId(*object), c),
        }
    }
    Ok(set)
}

/// RFC 8620 §5.2: created-then-destroyed is omitted, created-then-updated is created.
fn push_change<T>(changes: &mut ObjectChanges<T>, id: T, c: &Collapsed) {
    match (c.created_in_window, c.last) {
        (true, Op::Destroyed) => {}
        (true, _) => changes.created.push(id),
        (false, Op::Destroyed) => changes.destroyed.push(id),
        (false, _) => changes.updated.push(id),
    }
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
