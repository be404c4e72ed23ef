//! Read-only connection pools: the ordinary one for short reads, and a small memory-mapped
//! one for scans of whole mailboxes (listings, SEARCH, FETCH 1:*).

use super::{configure, db_err};
use crate::{Result, StoreError};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Idle read connections kept open (above this, every extra concurrent reader would open and
/// close a connection per query: with 200 IMAP clients that churn cost more than the reads).
/// It is also the most reads run at once: further reads wait for a connection to come back.
pub(super) const MAX_IDLE_READERS: usize = 32;
/// Connections of the bulk-scan pool (whole-mailbox listings, SEARCH, FETCH 1:*): few, since
/// each such read already runs for tens of milliseconds.
pub(super) const MAX_BULK_READERS: usize = 4;
/// Bytes of the database file the bulk-scan connections map into memory, so scanning a
/// mailbox reads pages in place instead of copying each one. Ordinary short reads stay
/// unmapped: in WAL mode every commit by another connection makes a mapped reader drop its
/// whole mapping at its next read, which short reads under a write-heavy load paid for.
pub(super) const BULK_MMAP_BYTES: i64 = 1 << 30;
/// A `blob_get_many` missing at least this many blobs from the cache is a scan: it runs on
/// the bulk pool and does not fill the cache.
pub(super) const BULK_BLOB_READ: usize = 64;
/// Reads of per-message data (summaries, search headers, envelopes) for at least this many
/// messages run on the bulk pool; smaller ones (a client's newest 50) on the ordinary one.
pub(super) const BULK_READ_ITEMS: usize = 256;

/// Read-only connections, reused.
pub(super) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// At most `max_idle` reads at once, so no read opens a throw-away connection.
    pub(super) slots: Arc<tokio::sync::Semaphore>,
    max_idle: usize,
    /// `PRAGMA mmap_size` of this pool's connections (0: no mapping).
    mmap_bytes: i64,
}

impl ReadPool {
    pub(super) fn take(&self) -> Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags).map_err(db_err)?;
                configure(&conn)?;
                if self.mmap_bytes > 0 {
                    // Answers with the size SQLite settled on; nothing to check.
                    conn.query_row(
                        &format!("PRAGMA mmap_size = {}", self.mmap_bytes),
                        [],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(db_err)?;
                }
                Ok(conn)
            }
        }
    }

    pub(super) fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
    }

    pub(super) fn new(path: PathBuf, max_idle: usize, mmap_bytes: i64) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(max_idle)),
            max_idle,
            mmap_bytes,
        }
    }
}

/// Runs `f` on a connection of `pool` inside one read transaction (a consistent snapshot),
/// on tokio's blocking pool.
pub(super) async fn read_on<T, F>(pool: Arc<ReadPool>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    let slot = pool
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| StoreError::Unavailable("the store's readers are closed".into()))?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let conn = pool.take()?;
        let result = {
            let snapshot = conn.unchecked_transaction().map_err(db_err)?;
            let result = f(&snapshot);
            // Read-only: ending the snapshot by rollback is all that is needed.
            drop(snapshot);
            result
        };
        pool.give_back(conn);
        result
    })
    .await
    .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{new_account, new_email};
    use crate::sqlite::SqliteStore;
    use crate::{BlobHash, NewEmail, Store};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_readers_map_the_file_and_ordinary_readers_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        let mmap = |pool: &ReadPool| -> i64 {
            let conn = pool.take().expect("connection");
            conn.query_row("PRAGMA mmap_size", [], |r| r.get(0))
                .expect("mmap_size")
        };
        assert!(mmap(&store.bulk_readers) > 0);
        assert_eq!(mmap(&store.readers), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_scans_see_writes_committed_after_their_mapping_was_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = SqliteStore::open(dir.path()).expect("open");
        let store: Arc<dyn Store> = sqlite.clone();
        let (account, inbox) = new_account(&store).await;
        let a = account.id;
        let batch = |from: usize| -> Vec<NewEmail> {
            (from..from + BULK_BLOB_READ)
                .map(|i| new_email(&[inbox.id], &format!("scan{i}")))
                .collect()
        };
        let first = store.email_append(a, batch(0)).await.expect("append");
        let listed = store.mailbox_messages(a, inbox.id).await.expect("list");
        assert_eq!(listed.len(), BULK_BLOB_READ);
        let second = store
            .email_append(a, batch(BULK_BLOB_READ))
            .await
            .expect("append more");
        let listed = store.mailbox_messages(a, inbox.id).await.expect("list");
        assert_eq!(listed.len(), 2 * BULK_BLOB_READ);
        // A scan-sized blob read (bulk pool, not cached) returns every content in order.
        let hashes: Vec<BlobHash> = first
            .iter()
            .chain(&second)
            .map(|e| e.blob.clone())
            .collect();
        let blobs = store.blob_get_many(&hashes).await.expect("blobs");
        assert_eq!(blobs.len(), hashes.len());
        for (i, blob) in blobs.iter().enumerate() {
            let raw = blob.as_ref().expect("stored blob");
            let text = String::from_utf8_lossy(raw);
            assert!(text.contains(&format!("Subject: scan{i}\r\n")), "{text}");
        }
    }
}
