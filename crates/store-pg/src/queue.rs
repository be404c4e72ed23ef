//! The shared outbound queue. Several nodes lease from it at once: `FOR UPDATE SKIP LOCKED`
//! hands each due entry to exactly one of them; a lease that is not released in time
//! (a dead node) expires and the entry is due again.
//!
//! * **One clock**: lease times are on the database clock, so nodes whose clocks drift do
//!   not steal each other's leases. A node's `now` is used as given while it is within
//!   [`MAX_CLOCK_SKEW_SECS`] of the database's `now()`; beyond that it is shifted by the
//!   measured skew (tests pass a future `now` on purpose; the shift keeps its offset).
//! * **Only the holder writes back**: [`queue_update`] refuses an entry whose `lease_owner`
//!   is not the current one (the lease expired and another node took it over).

use crate::emails::put_blob;
use crate::pool::{Tx, get, get_u32};
use bulwark_store::rules;
use bulwark_store::{BlobHash, NewQueued, QueueId, Queued, Result, StoreError, now_unix};
use tokio_postgres::Row;

/// How far a node's clock may be from the database clock before the database clock wins.
pub(crate) const MAX_CLOCK_SKEW_SECS: i64 = 2;

/// The database's transaction time in unix seconds.
async fn db_now(tx: &mut Tx<'_>) -> Result<i64> {
    let row = tx
        .one("SELECT floor(extract(epoch FROM now()))::BIGINT", &[])
        .await?;
    get(&row, 0)
}

/// `requested` (a time the node computed from its clock `node_now`) moved onto the database
/// clock when the two clocks are further apart than [`MAX_CLOCK_SKEW_SECS`].
pub(crate) fn on_database_clock(requested: i64, node_now: i64, db_now: i64) -> i64 {
    let skew = node_now.saturating_sub(db_now);
    if skew.abs() > MAX_CLOCK_SKEW_SECS {
        requested.saturating_sub(skew)
    } else {
        requested
    }
}

fn queued_from_row(r: &Row) -> Result<Queued> {
    let id = QueueId(get(r, 0)?);
    let recipients = rules::recipients_from_json(id, get(r, 2)?)?;
    Ok(Queued {
        id,
        sender: get(r, 1)?,
        recipients,
        blob: BlobHash(get(r, 3)?),
        size: get_u32(r, 4)?,
        created_at: get(r, 5)?,
        next_attempt: get(r, 6)?,
        attempts: get_u32(r, 7)?,
        expires_at: get(r, 8)?,
        dsn_sent: get(r, 9)?,
        lease_owner: get(r, 10)?,
        lease_until: get(r, 11)?,
    })
}

pub(crate) async fn queue_enqueue(tx: &mut Tx<'_>, msg: &NewQueued) -> Result<QueueId> {
    let recipients = rules::queued_recipients(&msg.recipients)?;
    let size = rules::stored_size(&msg.raw, "message")?;
    let blob = put_blob(tx, &msg.raw).await?;
    let now = db_now(tx).await?;
    let row = tx
        .one(
            "INSERT INTO queue (sender, recipients, blob, size, created_at, next_attempt, attempts,
                                expires_at, dsn_sent, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, $5, $5, 0, $6, FALSE, NULL, 0) RETURNING id",
            &[
                &msg.sender,
                &rules::recipients_to_json(&recipients)?,
                &blob.0,
                &i64::from(size),
                &now,
                &msg.expires_at,
            ],
        )
        .await?;
    Ok(QueueId(get(&row, 0)?))
}

pub(crate) async fn queue_list(tx: &mut Tx<'_>) -> Result<Vec<Queued>> {
    let rows = tx
        .query(
            "SELECT id, sender, recipients, blob, size, created_at, next_attempt, attempts,
                    expires_at, dsn_sent, lease_owner, lease_until
             FROM queue ORDER BY next_attempt, id",
            &[],
        )
        .await?;
    rows.iter().map(queued_from_row).collect()
}

pub(crate) async fn queue_get(tx: &mut Tx<'_>, id: QueueId) -> Result<Option<Queued>> {
    let row = tx
        .opt(
            "SELECT id, sender, recipients, blob, size, created_at, next_attempt, attempts,
                    expires_at, dsn_sent, lease_owner, lease_until
             FROM queue WHERE id = $1",
            &[&id.0],
        )
        .await?;
    row.as_ref().map(queued_from_row).transpose()
}

/// Leases due entries whose lease has expired. Rows another node is leasing right now are
/// skipped, not waited for, so each entry goes to one node.
pub(crate) async fn queue_lease_due(
    tx: &mut Tx<'_>,
    now: i64,
    node: &str,
    lease_secs: i64,
    max: usize,
) -> Result<Vec<Queued>> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let database_now = db_now(tx).await?;
    let now = on_database_clock(now, now_unix(), database_now);
    let rows = tx
        .query(
            "UPDATE queue SET lease_owner = $2, lease_until = $3
             WHERE id IN (SELECT id FROM queue WHERE next_attempt <= $1 AND lease_until <= $1
                          ORDER BY next_attempt, id LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING id, sender, recipients, blob, size, created_at, next_attempt, attempts,
                       expires_at, dsn_sent, lease_owner, lease_until",
            &[&now, &node, &now.saturating_add(lease_secs), &limit],
        )
        .await?;
    let mut leased = rows
        .iter()
        .map(queued_from_row)
        .collect::<Result<Vec<_>>>()?;
    leased.sort_by_key(|q| (q.next_attempt, q.id));
    Ok(leased)
}

/// Writes back an attempt and releases the lease; deletes the entry once every recipient
/// is final and any failure has been reported by a DSN. Refused when `entry.lease_owner`
/// is not the current lease owner (`None` = not leased): a node whose lease expired and
/// was taken over must not overwrite the new holder's work.
pub(crate) async fn queue_update(tx: &mut Tx<'_>, entry: &Queued) -> Result<()> {
    let row = tx
        .opt(
            "SELECT lease_owner FROM queue WHERE id = $1 FOR UPDATE",
            &[&entry.id.0],
        )
        .await?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("queue entry {}", entry.id)));
    };
    let current: Option<String> = get(&row, 0)?;
    if current != entry.lease_owner {
        return Err(bulwark_store::lease_lost(entry, current.as_deref()));
    }
    let n = if rules::queue_entry_done(entry) {
        tx.exec("DELETE FROM queue WHERE id = $1", &[&entry.id.0])
            .await?
    } else {
        tx.exec(
            "UPDATE queue SET recipients = $2, next_attempt = $3, attempts = $4, dsn_sent = $5,
                              lease_owner = NULL, lease_until = 0
             WHERE id = $1",
            &[
                &entry.id.0,
                &rules::recipients_to_json(&entry.recipients)?,
                &entry.next_attempt,
                &i64::from(entry.attempts),
                &entry.dsn_sent,
            ],
        )
        .await?
    };
    if n == 0 {
        return Err(StoreError::NotFound(format!("queue entry {}", entry.id)));
    }
    Ok(())
}

pub(crate) async fn queue_retry_now(tx: &mut Tx<'_>, id: QueueId) -> Result<()> {
    let n = tx
        .exec(
            "UPDATE queue SET next_attempt = floor(extract(epoch FROM now()))::BIGINT
             WHERE id = $1",
            &[&id.0],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("queue entry {id}")));
    }
    Ok(())
}

pub(crate) async fn queue_delete(tx: &mut Tx<'_>, id: QueueId) -> Result<()> {
    let n = tx.exec("DELETE FROM queue WHERE id = $1", &[&id.0]).await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("queue entry {id}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_clocks_keep_the_nodes_time() {
        assert_eq!(on_database_clock(1_000, 1_000, 999), 1_000);
        assert_eq!(
            on_database_clock(5_000, 1_000, 1_002),
            5_000,
            "test offsets kept"
        );
    }

    #[test]
    fn skewed_node_clocks_move_onto_the_database_clock() {
        // Node 60 s ahead: its "now" is the database's now.
        assert_eq!(on_database_clock(1_060, 1_060, 1_000), 1_000);
        // Node 30 s behind, asking for a time 10 s after its now.
        assert_eq!(on_database_clock(980, 970, 1_000), 1_010);
    }
}
