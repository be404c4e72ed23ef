//! The durable outbound queue.

use super::db_err;
use super::emails::put_blob;
use super::writer::Tx;
use crate::rules;
use crate::{BlobHash, NewQueued, QueueId, Queued, Result, StoreError, now_unix};
use rusqlite::{Connection, OptionalExtension, Row, params};

const QUEUE_COLUMNS: &str = "id, sender, recipients, blob, size, created_at, next_attempt, attempts, expires_at, \
                             dsn_sent, lease_owner, lease_until";

/// A row plus its recipient JSON, decoded outside rusqlite's error type.
fn queued_from_row(r: &Row<'_>) -> rusqlite::Result<(Queued, String)> {
    Ok((
        Queued {
            id: QueueId(r.get(0)?),
            sender: r.get(1)?,
            recipients: Vec::new(),
            blob: BlobHash(r.get(3)?),
            size: r.get(4)?,
            created_at: r.get(5)?,
            next_attempt: r.get(6)?,
            attempts: r.get(7)?,
            expires_at: r.get(8)?,
            dsn_sent: r.get(9)?,
            lease_owner: r.get(10)?,
            lease_until: r.get(11)?,
        },
        r.get(2)?,
    ))
}

fn decode(row: (Queued, String)) -> Result<Queued> {
    let (mut queued, json) = row;
    queued.recipients = rules::recipients_from_json(queued.id, &json)?;
    Ok(queued)
}

pub(crate) fn queue_enqueue(tx: &mut Tx<'_>, msg: &NewQueued) -> Result<QueueId> {
    let recipients = rules::queued_recipients(&msg.recipients)?;
    let size = rules::stored_size(&msg.raw, "message")?;
    let blob = put_blob(tx.conn, &msg.raw)?;
    let now = now_unix();
    tx.conn
        .execute(
            "INSERT INTO queue (sender, recipients, blob, size, created_at, next_attempt, attempts, expires_at,
                                dsn_sent, lease_owner, lease_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, 0, ?6, 0, NULL, 0)",
            params![msg.sender, rules::recipients_to_json(&recipients)?, blob.0, size, now, msg.expires_at],
        )
        .map_err(db_err)?;
    Ok(QueueId(tx.conn.last_insert_rowid()))
}

pub(crate) fn queue_list(conn: &Connection) -> Result<Vec<Queued>> {
    let sql = format!("SELECT {QUEUE_COLUMNS} FROM queue ORDER BY next_attempt, id");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt.query_map([], queued_from_row).map_err(db_err)?;
    rows.map(|row| decode(row.map_err(db_err)?)).collect()
}

pub(crate) fn queue_get(conn: &Connection, id: QueueId) -> Result<Option<Queued>> {
    let sql = format!("SELECT {QUEUE_COLUMNS} FROM queue WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let row = stmt
        .query_row([id.0], queued_from_row)
        .optional()
        .map_err(db_err)?;
    row.map(decode).transpose()
}

/// Leases due entries whose lease has expired (atomically: the writer runs one job at a time).
pub(crate) fn queue_lease_due(
    tx: &mut Tx<'_>,
    now: i64,
    node: &str,
    lease_secs: i64,
    max: usize,
) -> Result<Vec<Queued>> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let sql = format!(
        "UPDATE queue SET lease_owner = ?2, lease_until = ?3
         WHERE id IN (SELECT id FROM queue WHERE next_attempt <= ?1 AND lease_until <= ?1
                      ORDER BY next_attempt, id LIMIT ?4)
         RETURNING {QUEUE_COLUMNS}"
    );
    let mut stmt = tx.conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(
            params![now, node, now.saturating_add(lease_secs), limit],
            queued_from_row,
        )
        .map_err(db_err)?;
    let mut leased = rows
        .map(|row| decode(row.map_err(db_err)?))
        .collect::<Result<Vec<_>>>()?;
    leased.sort_by_key(|q| (q.next_attempt, q.id));
    Ok(leased)
}

/// Writes back an attempt and releases the lease; deletes the entry once every recipient
/// is final and any failure has been reported by a DSN.
pub(crate) fn queue_update(tx: &mut Tx<'_>, entry: &Queued) -> Result<()> {
    // Only the lease holder writes back: a node whose lease expired and was taken over
    // must not overwrite (or delete) the new holder's entry.
    let n = if rules::queue_entry_done(entry) {
        tx.conn
            .execute(
                "DELETE FROM queue WHERE id = ?1 AND lease_owner IS ?2",
                params![entry.id.0, entry.lease_owner],
            )
            .map_err(db_err)?
    } else {
        tx.conn
            .execute(
                "UPDATE queue SET recipients = ?2, next_attempt = ?3, attempts = ?4, dsn_sent = ?5,
                                  lease_owner = NULL, lease_until = 0
                 WHERE id = ?1 AND lease_owner IS ?6",
                params![
                    entry.id.0,
                    rules::recipients_to_json(&entry.recipients)?,
                    entry.next_attempt,
                    entry.attempts,
                    entry.dsn_sent,
                    entry.lease_owner
                ],
            )
            .map_err(db_err)?
    };
    if n == 0 {
        let holder: Option<Option<String>> = tx
            .conn
            .query_row(
                "SELECT lease_owner FROM queue WHERE id = ?1",
                [entry.id.0],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        return Err(match holder {
            Some(holder) => crate::lease_lost(entry, holder.as_deref()),
            None => StoreError::NotFound(format!("queue entry {}", entry.id)),
        });
    }
    Ok(())
}

pub(crate) fn queue_retry_now(tx: &mut Tx<'_>, id: QueueId) -> Result<()> {
    let n = tx
        .conn
        .execute(
            "UPDATE queue SET next_attempt = ?2 WHERE id = ?1",
            params![id.0, now_unix()],
        )
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("queue entry {id}")));
    }
    Ok(())
}

pub(crate) fn queue_delete(tx: &mut Tx<'_>, id: QueueId) -> Result<()> {
    let n = tx
        .conn
        .execute("DELETE FROM queue WHERE id = ?1", [id.0])
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("queue entry {id}")));
    }
    Ok(())
}
