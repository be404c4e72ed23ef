//! Account-scoped collections (see [`crate::collections`]) and blob ownership on SQLite.

use super::db_err;
use super::directory::require_account;
use super::emails::put_blob;
use super::writer::Tx;
use crate::collections::{self, CollectionChanges, CollectionItem, ItemWrite};
use crate::engine::run_ready;
use crate::{AccountId, BlobHash, ModSeq, Result, StoreError, now_unix};
use rusqlite::{Connection, OptionalExtension, params};

fn item_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<CollectionItem> {
    Ok(CollectionItem {
        id: r.get(0)?,
        version: ModSeq(r.get::<_, i64>(1)? as u64),
        value: r.get(2)?,
    })
}

pub(crate) fn collection_get(
    c: &Connection,
    account: AccountId,
    collection: &str,
    ids: Option<&[String]>,
) -> Result<Vec<CollectionItem>> {
    match ids {
        None => {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, version, value FROM items
                     WHERE account = ?1 AND collection = ?2 ORDER BY id",
                )
                .map_err(db_err)?;
            stmt.query_map(params![account.0, collection], item_of)
                .map_err(db_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db_err)
        }
        Some(ids) => {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, version, value FROM items
                     WHERE account = ?1 AND collection = ?2 AND id = ?3",
                )
                .map_err(db_err)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(item) = stmt
                    .query_row(params![account.0, collection, id], item_of)
                    .optional()
                    .map_err(db_err)?
                {
                    out.push(item);
                }
            }
            out.sort_by(|a, b| a.id.cmp(&b.id));
            out.dedup_by(|a, b| a.id == b.id);
            Ok(out)
        }
    }
}

pub(crate) fn collection_write(
    tx: &mut Tx<'_>,
    account: AccountId,
    writes: &[ItemWrite],
) -> Result<ModSeq> {
    run_ready(crate::domain::collections::collection_write(
        tx, account, writes,
    ))?
}

// ---- the engine contract's item operations ----------------------------------------------

pub(crate) fn item_version(
    c: &Connection,
    account: AccountId,
    collection: &str,
    id: &str,
) -> Result<Option<ModSeq>> {
    let version: Option<i64> = c
        .prepare_cached(
            "SELECT version FROM items WHERE account = ?1 AND collection = ?2 AND id = ?3",
        )
        .map_err(db_err)?
        .query_row(params![account.0, collection, id], |r| r.get(0))
        .optional()
        .map_err(db_err)?;
    Ok(version.map(|v| ModSeq(v as u64)))
}

pub(crate) fn put_item(
    c: &Connection,
    account: AccountId,
    collection: &str,
    id: &str,
    version: ModSeq,
    value: &str,
) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO items (account, collection, id, version, value)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (account, collection, id)
         DO UPDATE SET version = excluded.version, value = excluded.value",
    )
    .map_err(db_err)?
    .execute(params![account.0, collection, id, version.0 as i64, value])
    .map_err(db_err)?;
    Ok(())
}

pub(crate) fn delete_item(
    c: &Connection,
    account: AccountId,
    collection: &str,
    id: &str,
) -> Result<()> {
    c.prepare_cached("DELETE FROM items WHERE account = ?1 AND collection = ?2 AND id = ?3")
        .map_err(db_err)?
        .execute(params![account.0, collection, id])
        .map_err(db_err)?;
    Ok(())
}

pub(crate) fn set_item_blobs(
    c: &Connection,
    account: AccountId,
    collection: &str,
    id: &str,
    blobs: &[BlobHash],
) -> Result<()> {
    c.prepare_cached("DELETE FROM item_blobs WHERE account = ?1 AND collection = ?2 AND id = ?3")
        .map_err(db_err)?
        .execute(params![account.0, collection, id])
        .map_err(db_err)?;
    let mut stmt = c
        .prepare_cached(
            "INSERT OR IGNORE INTO item_blobs (account, hash, collection, id) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db_err)?;
    for hash in blobs {
        stmt.execute(params![account.0, hash.0, collection, id])
            .map_err(db_err)?;
    }
    Ok(())
}

pub(crate) fn log_item(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
    modseq: ModSeq,
    id: &str,
    op: i64,
    existed: bool,
) -> Result<()> {
    tx.conn
        .prepare_cached(
            "INSERT INTO item_changes (account, collection, modseq, id, op, existed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(db_err)?
        .execute(params![
            account.0,
            collection,
            modseq.0 as i64,
            id,
            op,
            existed
        ])
        .map_err(db_err)?;
    tx.note_collection(account, collection);
    Ok(())
}

pub(crate) fn collection_state(
    c: &Connection,
    account: AccountId,
    collection: &str,
) -> Result<ModSeq> {
    let m: Option<i64> = c
        .prepare_cached(
            "SELECT max(modseq) FROM item_changes WHERE account = ?1 AND collection = ?2",
        )
        .map_err(db_err)?
        .query_row(params![account.0, collection], |r| r.get(0))
        .map_err(db_err)?;
    Ok(ModSeq(m.unwrap_or(0) as u64))
}

pub(crate) fn collection_changes(
    c: &Connection,
    account: AccountId,
    collection: &str,
    since: ModSeq,
    max: usize,
) -> Result<CollectionChanges> {
    let current = collection_state(c, account, collection)?;
    let mut stmt = c
        .prepare_cached(
            "SELECT modseq, id, op, existed FROM item_changes
             WHERE account = ?1 AND collection = ?2 AND modseq > ?3
             ORDER BY modseq, rowid",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![account.0, collection, since.0 as i64], |r| {
            Ok((
                ModSeq(r.get::<_, i64>(0)? as u64),
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_err)?;
    Ok(collections::collapse(since, max, rows, current))
}

// ---- blob ownership ------------------------------------------------------------------------

/// Stores an uploaded blob and records that `account` uploaded it (now).
pub(crate) fn upload_put(tx: &mut Tx<'_>, account: AccountId, data: &[u8]) -> Result<BlobHash> {
    require_account(tx.conn, account)?;
    let hash = put_blob(tx.conn, data)?;
    tx.conn
        .prepare_cached(
            "INSERT INTO uploads (account, hash, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (account, hash) DO UPDATE SET created_at = excluded.created_at",
        )
        .map_err(db_err)?
        .execute(params![account.0, hash.0, now_unix()])
        .map_err(db_err)?;
    Ok(hash)
}

/// Does the account reference the blob (an email, an upload, a collection item)?
pub(crate) fn blob_owned(c: &Connection, account: AccountId, hash: &BlobHash) -> Result<bool> {
    c.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM emails WHERE blob = ?2 AND account = ?1)
             OR EXISTS (SELECT 1 FROM uploads WHERE account = ?1 AND hash = ?2)
             OR EXISTS (SELECT 1 FROM item_blobs WHERE account = ?1 AND hash = ?2)",
    )
    .map_err(db_err)?
    .query_row(params![account.0, hash.0], |r| r.get(0))
    .map_err(db_err)
}

/// SQL condition: blob `hash` (a column reference) is referenced by nothing.
const UNREFERENCED: &str = "NOT EXISTS (SELECT 1 FROM emails e WHERE e.blob = blobs.hash)
    AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.hash = blobs.hash)
    AND NOT EXISTS (SELECT 1 FROM item_blobs i WHERE i.hash = blobs.hash)
    AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob = blobs.hash)";

/// Forgets uploads older than `upload_before` (unix seconds), then deletes every blob
/// nothing references. Returns `(blobs, bytes)` deleted.
pub(crate) fn blob_collect(tx: &mut Tx<'_>, upload_before: i64) -> Result<(u64, u64)> {
    tx.conn
        .execute(
            "DELETE FROM uploads WHERE created_at < ?1",
            params![upload_before],
        )
        .map_err(db_err)?;
    let (count, bytes): (i64, Option<i64>) = tx
        .conn
        .query_row(
            &format!("SELECT count(*), sum(length(data)) FROM blobs WHERE {UNREFERENCED}"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_err)?;
    if count > 0 {
        tx.conn
            .execute(&format!("DELETE FROM blobs WHERE {UNREFERENCED}"), [])
            .map_err(db_err)?;
    }
    Ok((count as u64, bytes.unwrap_or(0) as u64))
}

/// Part of `account_delete`, before the account's emails go: remembers the blobs it
/// references.
pub(crate) fn account_blobs_mark(conn: &Connection, account: AccountId) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS doomed_blobs (hash TEXT PRIMARY KEY);
         DELETE FROM doomed_blobs;
         INSERT OR IGNORE INTO doomed_blobs
             SELECT blob FROM emails WHERE account = {a}
             UNION SELECT hash FROM uploads WHERE account = {a}
             UNION SELECT hash FROM item_blobs WHERE account = {a};
         DELETE FROM uploads WHERE account = {a};
         DELETE FROM item_blobs WHERE account = {a};
         DELETE FROM items WHERE account = {a};
         DELETE FROM item_changes WHERE account = {a};",
        a = account.0
    ))
    .map_err(db_err)
}

/// Part of `account_delete`, after the account's emails went: deletes the remembered blobs
/// nobody else references.
pub(crate) fn account_blobs_sweep(conn: &Connection) -> Result<()> {
    conn.execute_batch(&format!(
        "DELETE FROM blobs WHERE hash IN (SELECT hash FROM doomed_blobs) AND {UNREFERENCED};
         DELETE FROM doomed_blobs;"
    ))
    .map_err(|e| StoreError::Internal(format!("deleting the account's blobs: {e}")))
}
