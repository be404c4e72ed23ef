//! Account-scoped collections (see [`bulwark_store::collections`]) and blob ownership on
//! PostgreSQL. Writers of one account serialise on its row lock (as for mail), so a
//! compare-and-set sees every committed write before it.

use crate::directory::require_account;
use crate::emails::put_blob;
use crate::pool::{Tx, get, get_modseq, sql_modseq};
use crate::schema::BLOB_LOCK;
use bulwark_store::collections::{self, CollectionChanges, CollectionItem, ItemWrite};
use bulwark_store::{AccountId, BlobHash, ModSeq, Result, now_unix};
use tokio_postgres::Row;

fn item_of(r: &Row) -> Result<CollectionItem> {
    Ok(CollectionItem {
        id: get(r, 0)?,
        version: get_modseq(r, 1)?,
        value: get(r, 2)?,
    })
}

pub(crate) async fn collection_get(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
    ids: Option<&[String]>,
) -> Result<Vec<CollectionItem>> {
    let rows = match ids {
        None => {
            tx.query(
                "SELECT id, version, value FROM items
                 WHERE account = $1 AND collection = $2 ORDER BY id",
                &[&account.0, &collection],
            )
            .await?
        }
        Some(ids) => {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            tx.query(
                "SELECT id, version, value FROM items
                 WHERE account = $1 AND collection = $2 AND id = ANY($3) ORDER BY id",
                &[&account.0, &collection, &ids],
            )
            .await?
        }
    };
    rows.iter().map(item_of).collect()
}

pub(crate) async fn collection_write(
    tx: &mut Tx<'_>,
    account: AccountId,
    writes: &[ItemWrite],
) -> Result<ModSeq> {
    bulwark_store::domain::collections::collection_write(tx, account, writes).await
}

// ---- the engine contract's item operations ----------------------------------------------

pub(crate) async fn item_version(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
    id: &str,
) -> Result<Option<ModSeq>> {
    let row = tx
        .opt(
            "SELECT version FROM items WHERE account = $1 AND collection = $2 AND id = $3",
            &[&account.0, &collection, &id],
        )
        .await?;
    row.map(|r| get_modseq(&r, 0)).transpose()
}

pub(crate) async fn put_item(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
    id: &str,
    version: ModSeq,
    value: &str,
) -> Result<()> {
    tx.exec(
        "INSERT INTO items (account, collection, id, version, value)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (account, collection, id)
         DO UPDATE SET version = excluded.version, value = excluded.value",
        &[&account.0, &collection, &id, &sql_modseq(version), &value],
    )
    .await?;
    Ok(())
}

pub(crate) async fn delete_item(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
    id: &str,
) -> Result<()> {
    tx.exec(
        "DELETE FROM items WHERE account = $1 AND collection = $2 AND id = $3",
        &[&account.0, &collection, &id],
    )
    .await?;
    Ok(())
}

/// Referencing a blob takes the shared blob lock, so the collector cannot delete it meanwhile.
pub(crate) async fn set_item_blobs(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
    id: &str,
    blobs: &[BlobHash],
) -> Result<()> {
    tx.exec(
        "DELETE FROM item_blobs WHERE account = $1 AND collection = $2 AND id = $3",
        &[&account.0, &collection, &id],
    )
    .await?;
    if blobs.is_empty() {
        return Ok(());
    }
    tx.exec("SELECT pg_advisory_xact_lock_shared($1)", &[&BLOB_LOCK])
        .await?;
    for hash in blobs {
        tx.exec(
            "INSERT INTO item_blobs (account, hash, collection, id)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&account.0, &hash.0, &collection, &id],
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn log_item(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
    modseq: ModSeq,
    id: &str,
    op: i64,
    existed: bool,
) -> Result<()> {
    tx.exec(
        "INSERT INTO item_changes (account, collection, modseq, id, op, existed)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &account.0,
            &collection,
            &sql_modseq(modseq),
            &id,
            &op,
            &existed,
        ],
    )
    .await?;
    tx.note_collection(account, collection);
    Ok(())
}

pub(crate) async fn collection_state(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
) -> Result<ModSeq> {
    let row = tx
        .one(
            "SELECT coalesce(max(modseq), 0) FROM item_changes
             WHERE account = $1 AND collection = $2",
            &[&account.0, &collection],
        )
        .await?;
    get_modseq(&row, 0)
}

pub(crate) async fn collection_changes(
    tx: &mut Tx<'_>,
    account: AccountId,
    collection: &str,
    since: ModSeq,
    max: usize,
) -> Result<CollectionChanges> {
    let current = collection_state(tx, account, collection).await?;
    let rows = tx
        .query(
            "SELECT modseq, id, op, existed FROM item_changes
             WHERE account = $1 AND collection = $2 AND modseq > $3
             ORDER BY modseq, seq",
            &[&account.0, &collection, &sql_modseq(since)],
        )
        .await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok((
                get_modseq(r, 0)?,
                get::<String>(r, 1)?,
                get::<i64>(r, 2)?,
                get::<bool>(r, 3)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(collections::collapse(since, max, rows, current))
}

// ---- blob ownership ------------------------------------------------------------------------

pub(crate) async fn upload_put(
    tx: &mut Tx<'_>,
    account: AccountId,
    data: &[u8],
) -> Result<BlobHash> {
    require_account(tx, account).await?;
    let hash = put_blob(tx, data).await?;
    tx.exec(
        "INSERT INTO uploads (account, hash, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (account, hash) DO UPDATE SET created_at = excluded.created_at",
        &[&account.0, &hash.0, &now_unix()],
    )
    .await?;
    Ok(hash)
}

/// Which of the hashes the account references (an email, an upload, a collection item).
pub(crate) async fn blobs_owned(
    tx: &mut Tx<'_>,
    account: AccountId,
    hashes: &[BlobHash],
) -> Result<Vec<bool>> {
    let keys: Vec<&str> = hashes.iter().map(|h| h.0.as_str()).collect();
    let rows = tx
        .query(
            "SELECT h FROM unnest($2::text[]) AS h
             WHERE EXISTS (SELECT 1 FROM emails WHERE blob = h AND account = $1)
                OR EXISTS (SELECT 1 FROM uploads WHERE account = $1 AND hash = h)
                OR EXISTS (SELECT 1 FROM item_blobs WHERE account = $1 AND hash = h)",
            &[&account.0, &keys],
        )
        .await?;
    let owned: std::collections::HashSet<String> = rows
        .iter()
        .map(|r| get::<String>(r, 0))
        .collect::<Result<_>>()?;
    Ok(hashes.iter().map(|h| owned.contains(&h.0)).collect())
}

/// Forgets uploads made before `upload_before`, then deletes every blob nothing references
/// (under the exclusive blob lock, so no transaction is about to reference one).
pub(crate) async fn blob_collect(tx: &mut Tx<'_>, upload_before: i64) -> Result<(u64, u64)> {
    tx.exec("SELECT pg_advisory_xact_lock($1)", &[&BLOB_LOCK])
        .await?;
    tx.exec(
        "DELETE FROM uploads WHERE created_at < $1",
        &[&upload_before],
    )
    .await?;
    let row = tx
        .one(
            "WITH gone AS (
                 DELETE FROM blobs b WHERE
                     NOT EXISTS (SELECT 1 FROM emails e WHERE e.blob = b.hash)
                     AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.hash = b.hash)
                     AND NOT EXISTS (SELECT 1 FROM item_blobs i WHERE i.hash = b.hash)
                     AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob = b.hash)
                 RETURNING octet_length(b.data) AS n)
             SELECT count(*), coalesce(sum(n), 0)::bigint FROM gone",
            &[],
        )
        .await?;
    Ok((get::<i64>(&row, 0)? as u64, get::<i64>(&row, 1)? as u64))
}

/// Part of `account_delete`, before the account's emails go: the blobs it references; its
/// uploads, items and their log go now.
pub(crate) async fn account_blobs_mark(tx: &mut Tx<'_>, account: AccountId) -> Result<Vec<String>> {
    let rows = tx
        .query(
            "SELECT blob FROM emails WHERE account = $1
             UNION SELECT hash FROM uploads WHERE account = $1
             UNION SELECT hash FROM item_blobs WHERE account = $1",
            &[&account.0],
        )
        .await?;
    let hashes = rows
        .iter()
        .map(|r| get::<String>(r, 0))
        .collect::<Result<Vec<_>>>()?;
    for sql in [
        "DELETE FROM uploads WHERE account = $1",
        "DELETE FROM item_blobs WHERE account = $1",
        "DELETE FROM items WHERE account = $1",
        "DELETE FROM item_changes WHERE account = $1",
    ] {
        tx.exec(sql, &[&account.0]).await?;
    }
    Ok(hashes)
}

/// Part of `account_delete`, after the account's emails went: deletes those of `hashes`
/// that nobody else references.
pub(crate) async fn account_blobs_sweep(tx: &mut Tx<'_>, hashes: &[String]) -> Result<()> {
    if hashes.is_empty() {
        return Ok(());
    }
    tx.exec("SELECT pg_advisory_xact_lock($1)", &[&BLOB_LOCK])
        .await?;
    for chunk in hashes.chunks(1000) {
        let keys: Vec<&str> = chunk.iter().map(String::as_str).collect();
        tx.exec(
            "DELETE FROM blobs b WHERE b.hash = ANY($1)
                 AND NOT EXISTS (SELECT 1 FROM emails e WHERE e.blob = b.hash)
                 AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.hash = b.hash)
                 AND NOT EXISTS (SELECT 1 FROM item_blobs i WHERE i.hash = b.hash)
                 AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.blob = b.hash)",
            &[&keys],
        )
        .await?;
    }
    Ok(())
}
