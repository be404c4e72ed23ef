//! The embedded backend: one SQLite file (`bulwark.db`, WAL mode, `synchronous=FULL`) in
//! the data directory, holding index and blobs so one commit covers both.
//!
//! Writes go through one writer thread with group commit ([`writer`]); reads use a small
//! pool of read-only connections on tokio's blocking pool. The admin CLI may open the same
//! file from another process at the same time (`busy_timeout` makes writers wait).

mod changes;
mod directory;
mod emails;
mod items;
mod mailboxes;
mod messages;
mod query;
mod queue;
mod read_pool;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use crate::*;
use async_trait::async_trait;
use directory::AccountColumn;
use read_pool::{
    BULK_BLOB_READ, BULK_MMAP_BYTES, BULK_READ_ITEMS, MAX_BULK_READERS, MAX_IDLE_READERS, ReadPool,
    read_on,
};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use writer::{Hub, Job, Tx};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "bulwark.db";
/// How long a connection waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes the WAL file is truncated to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// SQLite page cache per connection, in KiB (negative `cache_size` means KiB).
const CACHE_KIB: i64 = 16 * 1024;
/// Process-wide SQLite settings, applied once before the first connection opens (SQLite
/// refuses them afterwards). Memory statistics off: with them on, every SQLite allocation
/// takes one global mutex, which serialised all read connections under load.
#[allow(unsafe_code)] // FFI: see the SAFETY comment inside
fn init_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; called before any connection
        // exists in this process (if another part opened SQLite first, SQLite answers
        // SQLITE_MISUSE and changes nothing, which is harmless).
        let rc =
            unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite memory statistics stay on (SQLite already initialised)"
            );
        }
    });
}

/// Maps a SQLite failure onto the store's error vocabulary.
pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match &e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound("row".into()),
        rusqlite::Error::SqliteFailure(f, msg) => {
            let text = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                ErrorCode::ConstraintViolation => {
                    StoreError::AlreadyExists(format!("record ({text})"))
                }
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    StoreError::Unavailable(format!("database is busy: {text}"))
                }
                ErrorCode::DiskFull => StoreError::Unavailable(format!("disk full: {text}")),
                ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::ReadOnly => {
                    StoreError::Unavailable(format!("database I/O failed: {text}"))
                }
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                    StoreError::Internal(format!("database file is damaged: {text}"))
                }
                _ => StoreError::Internal(format!("sqlite: {text}")),
            }
        }
        other => StoreError::Internal(format!("sqlite: {other}")),
    }
}

/// Settings every connection (writer and readers) gets.
pub(crate) fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    conn.execute_batch(&format!(
        // temp_store stays on files: in-memory statement journals make large savepoints
        // quadratic (every statement truncates a linked list of journal chunks).
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -{CACHE_KIB};
         PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
    ))
    .map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Group-commit counters, see [`SqliteStore::commit_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    pub commits: u64,
    pub jobs: u64,
}

/// The embedded store. Cheap to share as `Arc<SqliteStore>` / `Arc<dyn Store>`.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    /// Recently read blobs (content-addressed, never stale).
    blobs: Arc<crate::blob_cache::BlobCache>,
    readers: Arc<ReadPool>,
    /// Memory-mapped readers for scans of whole mailboxes.
    bulk_readers: Arc<ReadPool>,
    hub: Arc<Hub>,
    /// Per-type mail states last read ([`crate::changelog::MailStateCache`]).
    mail_states: Arc<crate::changelog::MailStateCache>,
    path: PathBuf,
    /// A test outage switch every transaction of this handle consults
    /// ([`SqliteStore::with_outage`]).
    outage: Option<Arc<crate::outage::Outage>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `data_dir/bulwark.db`, migrates the schema and starts the
    /// writer thread. Safe after a crash: SQLite replays or discards the WAL on open.
    pub fn open(data_dir: &Path) -> Result<Arc<SqliteStore>> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        init_sqlite();
        let mut conn = Connection::open(&path).map_err(db_err)?;
        configure(&conn)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{} cannot use write-ahead logging (journal mode {mode})",
                path.display()
            )));
        }
        schema::migrate(&mut conn)?;
        let (jobs, receiver) = mpsc::channel::<Job>();
        let hub = Arc::new(Hub::default());
        let writer_hub = hub.clone();
        std::thread::Builder::new()
            .name("bulwark-store-writer".into())
            .spawn(move || writer::run(conn, receiver, writer_hub))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        let readers = Arc::new(ReadPool::new(path.clone(), MAX_IDLE_READERS, 0));
        let bulk_readers = Arc::new(ReadPool::new(
            path.clone(),
            MAX_BULK_READERS,
            BULK_MMAP_BYTES,
        ));
        Ok(Arc::new(SqliteStore {
            jobs,
            blobs: Arc::new(crate::blob_cache::BlobCache::new(
                crate::blob_cache::DEFAULT_CACHE_BYTES,
            )),
            readers,
            bulk_readers,
            hub,
            mail_states: Arc::default(),
            path,
            outage: None,
        }))
    }

    /// A second handle on the same database (same writer, readers, cache and change feed)
    /// whose every transaction fails with `Unavailable` while the returned switch is down:
    /// a store outage for tests. This handle keeps working.
    pub fn with_outage(&self) -> (Arc<SqliteStore>, Arc<crate::outage::Outage>) {
        let outage = Arc::new(crate::outage::Outage::default());
        let view = SqliteStore {
            jobs: self.jobs.clone(),
            blobs: self.blobs.clone(),
            readers: self.readers.clone(),
            bulk_readers: self.bulk_readers.clone(),
            hub: self.hub.clone(),
            mail_states: self.mail_states.clone(),
            path: self.path.clone(),
            outage: Some(outage.clone()),
        };
        (Arc::new(view), outage)
    }

    fn check_outage(&self) -> Result<()> {
        match &self.outage {
            Some(outage) => outage.check(),
            None => Ok(()),
        }
    }

    /// Write transactions committed and jobs they carried since open; `jobs / commits` is
    /// the average group-commit batch size (for metrics).
    pub fn commit_stats(&self) -> CommitStats {
        let (commits, jobs) = self.hub.counters();
        CommitStats { commits, jobs }
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Drops the account's change-log entries at or below `modseq` (a retention step).
    /// Afterwards `changes_since(since)` with `since < modseq` fails with
    /// [`StoreError::CannotCalculateChanges`]; the floor is stored and never lowered.
    pub async fn trim_changes_before(&self, account: AccountId, modseq: ModSeq) -> Result<()> {
        self.write(move |tx| changes::trim_changes_before(tx, account, modseq))
            .await
    }

    /// Runs `f` on a pooled read-only connection inside one read transaction (a consistent
    /// snapshot), on tokio's blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.check_outage()?;
        read_on(self.readers.clone(), f).await
    }

    /// [`SqliteStore::read_bulk`] for a read of `items` messages when that is a scan
    /// ([`BULK_READ_ITEMS`] or more), else [`SqliteStore::read`].
    async fn read_sized<T, F>(&self, items: usize, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if items >= BULK_READ_ITEMS {
            self.read_bulk(f).await
        } else {
            self.read(f).await
        }
    }

    /// [`SqliteStore::read`] on a memory-mapped connection, for reads that scan a large
    /// part of a mailbox.
    async fn read_bulk<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.check_outage()?;
        read_on(self.bulk_readers.clone(), f).await
    }
    /// Sends `f` to the writer thread; returns once the batch holding it has committed.
    async fn write<T, F>(&self, mut f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Tx<'_>) -> Result<T> + Send + 'static,
    {
        self.check_outage()?;
        let (answer, answered) = oneshot::channel::<Result<T>>();
        // The last run's result, handed over by `answer` (the writer may run a job twice:
        // see the writer module).
        let kept = std::sync::Arc::new(std::sync::Mutex::new(None::<Result<T>>));
        let slot = kept.clone();
        let job = Job {
            run: Box::new(move |tx: &mut Tx<'_>| {
                let result = f(tx);
                let ok = result.is_ok();
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                ok
            }),
            answer: Box::new(move |committed: Result<()>| {
                let result = kept.lock().unwrap_or_else(|e| e.into_inner()).take();
                let result = result.unwrap_or_else(|| {
                    Err(StoreError::Internal(
                        "the write job failed; its changes were rolled back".into(),
                    ))
                });
                let _ = answer.send(committed.and(result));
            }),
        };
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("the store's writer thread has stopped".into()))?;
        answered.await.map_err(|_| {
            StoreError::Unavailable("the write transaction could not be run; try again".into())
        })?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn domain_add(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |tx| directory::domain_add(tx, &name)).await
    }
    async fn domain_delete(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |tx| directory::domain_delete(tx, &name))
            .await
    }
    async fn domain_list(&self) -> Result<Vec<String>> {
        self.read(directory::domain_list).await
    }
    async fn domain_exists(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.read(move |c| directory::domain_exists(c, &name)).await
    }

    async fn account_create(&self, new: NewAccount) -> Result<Account> {
        self.write(move |tx| directory::account_create(tx, &new))
            .await
    }
    async fn account_get(&self, id: AccountId) -> Result<Option<Account>> {
        self.read(move |c| directory::account_get(c, id)).await
    }
    async fn account_by_address(&self, address: &str) -> Result<Option<Account>> {
        let address = address.to_string();
        self.read(move |c| directory::account_by_address(c, &address))
            .await
    }
    async fn account_list(&self) -> Result<Vec<Account>> {
        self.read(directory::account_list).await
    }
    async fn account_set_password(&self, id: AccountId, password_hash: &str) -> Result<()> {
        let hash = password_hash.to_string();
        self.write(move |tx| {
            directory::account_set_column(tx, id, AccountColumn::PasswordHash, &hash)
        })
        .await
    }
    async fn account_set_display_name(&self, id: AccountId, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |tx| {
            directory::account_set_column(tx, id, AccountColumn::DisplayName, &name)
        })
        .await
    }
    async fn account_delete(&self, id: AccountId) -> Result<()> {
        self.write(move |tx| directory::account_delete(tx, id))
            .await?;
        // The account's blobs are gone from the database; none may be served from memory.
        self.blobs.clear();
        Ok(())
    }

    async fn alias_add(&self, alias: &str, account: AccountId) -> Result<()> {
        let alias = alias.to_string();
        self.write(move |tx| directory::alias_add(tx, &alias, account))
            .await
    }
    async fn alias_delete(&self, alias: &str) -> Result<()> {
        let alias = alias.to_string();
        self.write(move |tx| directory::alias_delete(tx, &alias))
            .await
    }
    async fn alias_list(&self) -> Result<Vec<(String, AccountId)>> {
        self.read(directory::alias_list).await
    }
    async fn resolve_address(&self, address: &str) -> Result<Option<AccountId>> {
        let address = address.to_string();
        self.read(move |c| directory::resolve_address(c, &address))
            .await
    }
    async fn account_addresses(&self, id: AccountId) -> Result<Vec<String>> {
        self.read(move |c| directory::account_addresses(c, id))
            .await
    }

    async fn app_password_add(
        &self,
        account: AccountId,
        name: &str,
        hash: &str,
    ) -> Result<AppPassword> {
        let (name, hash) = (name.to_string(), hash.to_string());
        self.write(move |tx| directory::app_password_add(tx, account, &name, &hash))
            .await
    }
    async fn app_password_list(&self, account: AccountId) -> Result<Vec<AppPassword>> {
        self.read(move |c| directory::app_password_list(c, account))
            .await
    }
    async fn app_password_delete(&self, account: AccountId, id: i64) -> Result<()> {
        self.write(move |tx| directory::app_password_delete(tx, account, id))
            .await
    }

    async fn setting_get(&self, account: AccountId, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.read(move |c| directory::setting_get(c, account, &key))
            .await
    }
    async fn setting_set(&self, account: AccountId, key: &str, value: Option<&str>) -> Result<()> {
        let key = key.to_string();
        let value = value.map(str::to_string);
        self.write(move |tx| directory::setting_set(tx, account, &key, value.as_deref()))
            .await
    }

    async fn global_setting_get(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.read(move |c| directory::global_setting_get(c, &key))
            .await
    }
    async fn global_setting_set(&self, key: &str, value: Option<&str>) -> Result<()> {
        let key = key.to_string();
        let value = value.map(str::to_string);
        self.write(move |tx| directory::global_setting_set(tx, &key, value.as_deref()))
            .await
    }
    async fn global_setting_replace(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool> {
        let key = key.to_string();
        let expected = expected.map(str::to_string);
        let value = value.to_string();
        self.write(move |tx| {
            directory::global_setting_replace(tx, &key, expected.as_deref(), &value)
        })
        .await
    }

    async fn mailbox_list(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.read(move |c| mailboxes::mailbox_list(c, account))
            .await
    }
    async fn mailbox_get(&self, account: AccountId, id: MailboxId) -> Result<Option<Mailbox>> {
        self.read(move |c| mailboxes::mailbox_get(c, account, id))
            .await
    }
    async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
        role: Option<Role>,
    ) -> Result<Mailbox> {
        let name = name.to_string();
        self.write(move |tx| mailboxes::mailbox_create(tx, account, &name, role))
            .await
    }
    async fn mailbox_rename(
        &self,
        account: AccountId,
        id: MailboxId,
        new_name: &str,
    ) -> Result<()> {
        let new_name = new_name.to_string();
        self.write(move |tx| mailboxes::mailbox_rename(tx, account, id, &new_name))
            .await
    }
    async fn mailbox_delete(&self, account: AccountId, id: MailboxId) -> Result<()> {
        self.write(move |tx| mailboxes::mailbox_delete(tx, account, id))
            .await
    }
    async fn mailbox_set_subscribed(
        &self,
        account: AccountId,
        id: MailboxId,
        subscribed: bool,
    ) -> Result<()> {
        self.write(move |tx| mailboxes::mailbox_set_subscribed(tx, account, id, subscribed))
            .await
    }
    async fn mailbox_set_role(
        &self,
        account: AccountId,
        id: MailboxId,
        role: Option<Role>,
    ) -> Result<()> {
        self.write(move |tx| mailboxes::mailbox_set_role(tx, account, id, role))
            .await
    }
    async fn mailbox_set_sort_order(
        &self,
        account: AccountId,
        id: MailboxId,
        sort_order: Option<u32>,
    ) -> Result<()> {
        self.write(move |tx| mailboxes::mailbox_set_sort_order(tx, account, id, sort_order))
            .await
    }
    async fn mailbox_status(&self, account: AccountId, id: MailboxId) -> Result<MailboxStatus> {
        self.read(move |c| mailboxes::mailbox_status(c, account, id))
            .await
    }

    async fn email_append(&self, account: AccountId, new: Vec<NewEmail>) -> Result<Vec<Appended>> {
        self.write(move |tx| emails::email_append(tx, account, &new))
            .await
    }
    async fn deliver(&self, deliveries: Vec<(AccountId, NewEmail)>) -> Result<Vec<Appended>> {
        self.write(move |tx| emails::deliver(tx, &deliveries)).await
    }
    async fn accept(&self, acceptance: Acceptance) -> Result<Accepted> {
        self.write(move |tx| crate::engine::run_ready(crate::domain::accept(tx, &acceptance))?)
            .await
    }
    async fn mailbox_messages(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageMeta>> {
        self.read_bulk(move |c| messages::mailbox_messages(c, account, mailbox))
            .await
    }
    async fn expunged_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<Vec<Uid>> {
        self.read(move |c| messages::expunged_since(c, account, mailbox, since))
            .await
    }
    async fn mailbox_delta(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<MailboxDelta> {
        let indexed = self
            .read(move |c| messages::mailbox_delta_unless_large(c, account, mailbox, since))
            .await?;
        match indexed {
            Some(delta) => Ok(delta),
            None => {
                self.read_bulk(move |c| messages::mailbox_delta_scan(c, account, mailbox, since))
                    .await
            }
        }
    }
    async fn blob_get_many(&self, hashes: &[BlobHash]) -> Result<Vec<Option<Vec<u8>>>> {
        self.check_outage()?;
        let mut found: Vec<Option<Vec<u8>>> = hashes.iter().map(|h| self.blobs.get(h)).collect();
        let missing: Vec<(usize, BlobHash)> = found
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_none())
            .map(|(i, _)| (i, hashes[i].clone()))
            .collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let wanted: Vec<BlobHash> = missing.iter().map(|(_, h)| h.clone()).collect();
        // A scan (SEARCH BODY over a mailbox) reads mapped pages and leaves the cache to
        // what is read again soon: caching it would copy every blob and evict the rest.
        let scan = missing.len() >= BULK_BLOB_READ;
        let read = if scan {
            self.read_bulk(move |c| messages::blob_get_many(c, &wanted))
                .await?
        } else {
            self.read(move |c| messages::blob_get_many(c, &wanted))
                .await?
        };
        for ((i, hash), data) in missing.into_iter().zip(read) {
            if !scan && let Some(data) = &data {
                self.blobs.put(&hash, data);
            }
            found[i] = data;
        }
        Ok(found)
    }
    async fn message_summaries(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, EmailSummary)>> {
        let uids = uids.to_vec();
        self.read_sized(uids.len(), move |c| {
            messages::message_summaries(c, account, mailbox, &uids)
        })
        .await
    }
    async fn message_search_headers(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, SearchHeaders)>> {
        let uids = uids.to_vec();
        self.read_sized(uids.len(), move |c| {
            messages::message_search_headers(c, account, mailbox, &uids)
        })
        .await
    }
    async fn message_envelopes(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Option<Vec<u8>>)>> {
        let uids = uids.to_vec();
        self.read_sized(uids.len(), move |c| {
            messages::message_envelopes(c, account, mailbox, &uids)
        })
        .await
    }
    async fn message_save_dates(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, i64)>> {
        let uids = uids.to_vec();
        self.read_sized(uids.len(), move |c| {
            messages::message_save_dates(c, account, mailbox, &uids)
        })
        .await
    }
    async fn email_get(&self, account: AccountId, ids: &[EmailId]) -> Result<Vec<Email>> {
        let ids = ids.to_vec();
        self.read(move |c| messages::email_get(c, account, &ids))
            .await
    }
    async fn email_list(&self, account: AccountId) -> Result<Vec<Email>> {
        self.read(move |c| messages::email_list(c, account)).await
    }
    async fn email_query_page(
        &self,
        account: AccountId,
        query: &EmailPageQuery,
    ) -> Result<EmailPage> {
        let query = query.clone();
        self.read(move |c| query::email_query_page(c, account, &query))
            .await
    }
    async fn blob_get(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>> {
        // One blob is a batch of one: the same cache lookup and fill.
        let mut one = self.blob_get_many(std::slice::from_ref(hash)).await?;
        Ok(one.pop().flatten())
    }
    async fn blob_put(&self, account: AccountId, data: &[u8]) -> Result<BlobHash> {
        let data = data.to_vec();
        self.write(move |tx| items::upload_put(tx, account, &data))
            .await
    }
    async fn blob_get_owned(
        &self,
        account: AccountId,
        hashes: &[BlobHash],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let asked = hashes.to_vec();
        let owned: Vec<bool> = self
            .read(move |c| {
                asked
                    .iter()
                    .map(|h| items::blob_owned(c, account, h))
                    .collect()
            })
            .await?;
        let wanted: Vec<BlobHash> = hashes
            .iter()
            .zip(&owned)
            .filter(|(_, o)| **o)
            .map(|(h, _)| h.clone())
            .collect();
        let mut read = self.blob_get_many(&wanted).await?.into_iter();
        Ok(owned
            .into_iter()
            .map(|o| if o { read.next().flatten() } else { None })
            .collect())
    }
    async fn blob_collect(&self, upload_before: i64) -> Result<(u64, u64)> {
        let (count, bytes) = self
            .write(move |tx| items::blob_collect(tx, upload_before))
            .await?;
        if count > 0 {
            // Content-addressed, so never stale — but a deleted blob must not be served.
            self.blobs.clear();
        }
        Ok((count, bytes))
    }

    async fn collection_get(
        &self,
        account: AccountId,
        collection: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<CollectionItem>> {
        let collection = collection.to_string();
        let ids = ids.map(<[String]>::to_vec);
        self.read(move |c| items::collection_get(c, account, &collection, ids.as_deref()))
            .await
    }
    async fn collection_write(&self, account: AccountId, writes: Vec<ItemWrite>) -> Result<ModSeq> {
        self.write(move |tx| items::collection_write(tx, account, &writes))
            .await
    }
    async fn collection_changes(
        &self,
        account: AccountId,
        collection: &str,
        since: ModSeq,
        max: usize,
    ) -> Result<CollectionChanges> {
        let collection = collection.to_string();
        self.read(move |c| items::collection_changes(c, account, &collection, since, max))
            .await
    }
    async fn collection_state(&self, account: AccountId, collection: &str) -> Result<ModSeq> {
        let collection = collection.to_string();
        self.read(move |c| items::collection_state(c, account, &collection))
            .await
    }

    async fn email_set_keywords(
        &self,
        account: AccountId,
        updates: Vec<KeywordUpdate>,
    ) -> Result<KeywordResult> {
        self.write(move |tx| emails::set_keywords(tx, account, &updates))
            .await
    }
    async fn email_set_mailboxes(
        &self,
        account: AccountId,
        updates: Vec<MembershipUpdate>,
    ) -> Result<Vec<(EmailId, Vec<(MailboxId, Uid)>)>> {
        self.write(move |tx| emails::set_mailboxes(tx, account, &updates))
            .await
    }
    async fn email_copy(
        &self,
        account: AccountId,
        ids: &[EmailId],
        dest: MailboxId,
    ) -> Result<Vec<(EmailId, EmailId, Uid)>> {
        let ids = ids.to_vec();
        self.write(move |tx| emails::email_copy(tx, account, &ids, dest))
            .await
    }
    async fn mailbox_expunge(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<ModSeq> {
        let uids = uids.to_vec();
        self.write(move |tx| emails::mailbox_expunge(tx, account, mailbox, &uids))
            .await
    }
    async fn email_destroy(&self, account: AccountId, ids: &[EmailId]) -> Result<()> {
        let ids = ids.to_vec();
        self.write(move |tx| emails::email_destroy(tx, account, &ids))
            .await
    }

    async fn account_modseq(&self, account: AccountId) -> Result<ModSeq> {
        self.read(move |c| changes::account_modseq(c, account))
            .await
    }
    async fn changes_since(
        &self,
        account: AccountId,
        since: ModSeq,
        max: usize,
    ) -> Result<ChangeSet> {
        self.read(move |c| changes::changes_since(c, account, since, max))
            .await
    }
    async fn mail_states(&self, account: AccountId) -> Result<MailStates> {
        let cache = self.mail_states.clone();
        self.read(move |c| changes::mail_states(c, &cache, account))
            .await
    }
    async fn kind_changes_since(
        &self,
        account: AccountId,
        kind: crate::changelog::ChangeKind,
        since: ModSeq,
        max: usize,
    ) -> Result<ChangeSet> {
        let cache = self.mail_states.clone();
        self.read(move |c| changes::kind_changes_since(c, &cache, account, kind, since, max))
            .await
    }
    fn subscribe(&self, account: AccountId) -> broadcast::Receiver<StateChange> {
        self.hub.subscribe(account)
    }
    fn subscribe_all(&self) -> broadcast::Receiver<StateChange> {
        self.hub.subscribe_all()
    }

    async fn queue_enqueue(&self, msg: NewQueued) -> Result<QueueId> {
        self.write(move |tx| queue::queue_enqueue(tx, &msg)).await
    }
    async fn queue_list(&self) -> Result<Vec<Queued>> {
        self.read(queue::queue_list).await
    }
    async fn queue_get(&self, id: QueueId) -> Result<Option<Queued>> {
        self.read(move |c| queue::queue_get(c, id)).await
    }
    async fn queue_lease_due(
        &self,
        now: i64,
        node: &str,
        lease_secs: i64,
        max: usize,
    ) -> Result<Vec<Queued>> {
        let node = node.to_string();
        self.write(move |tx| queue::queue_lease_due(tx, now, &node, lease_secs, max))
            .await
    }
    async fn queue_update(&self, entry: &Queued) -> Result<()> {
        let entry = entry.clone();
        self.write(move |tx| queue::queue_update(tx, &entry)).await
    }
    async fn queue_retry_now(&self, id: QueueId) -> Result<()> {
        self.write(move |tx| queue::queue_retry_now(tx, id)).await
    }
    async fn queue_delete(&self, id: QueueId) -> Result<()> {
        self.write(move |tx| queue::queue_delete(tx, id)).await
    }
}
