//! The PostgreSQL backend of Bulwark's [`Store`] trait, for running several nodes on one
//! database. Behaviour matches the embedded SQLite backend (`bulwark_store::sqlite`): both
//! pass `bulwark_store::conformance`.
//!
//! * **Durability**: every mutating call returns after the COMMIT of the transaction that
//!   holds it returned with `synchronous_commit=on`. Mail writes (deliveries, append,
//!   keywords, moves, expunge) are group-committed: concurrent ones share one transaction
//!   ([`writer`]), whose hottest rows go out as one statement per table ([`buffer`]).
//! * **Concurrency between nodes**: writers of an account first lock the account's counter
//!   row (`SELECT … FOR UPDATE`), so modseqs and UIDs are allocated one transaction at a
//!   time per account and UIDs are never reused; directory changes take an advisory lock.
//!   Deadlocks between multi-account deliveries are retried.
//! * **Change fan-out**: see [`hub`]: NOTIFY at commit, LISTEN on a dedicated connection.
//! * **Queue**: leases use `FOR UPDATE SKIP LOCKED`; an unreleased lease expires.
//! * **Failures**: an unreachable or broken connection is [`StoreError::Unavailable`];
//!   broken connections are dropped and the next call opens a new one.

mod buffer;
mod changes;
mod directory;
mod emails;
mod hub;
mod items;
mod mailboxes;
mod messages;
mod pool;
mod query;
mod queue;
mod schema;
pub mod testing;

use async_trait::async_trait;
use bulwark_store::*;
use directory::AccountColumn;
use hub::Hub;
pub use pool::{CALL_TIMEOUT, CONNECT_TIMEOUT, STATEMENT_TIMEOUT};
use pool::{Notes, Pool, Tx};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Attempts of one write transaction that hit a deadlock or serialization failure.
const MAX_TX_ATTEMPTS: u32 = 5;

/// Runs `$body` (an expression using `$tx: &mut Tx`, evaluating to `Result<T>`) in a
/// read-write transaction; commits, NOTIFYs other nodes, publishes locally. Run again on
/// a transaction conflict (deadlock) or when BEGIN met a connection that died while idle.
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store: &$crate::Shared = $store.shared();
        let committed = store
            .bounded(async {
                let mut attempt = 1u32;
                loop {
                    let mut pooled = store.pool.get().await?;
                    let outcome = async {
                        let mut tx = pooled.begin(false).await?;
                        let value = {
                            let $tx = &mut tx;
                            $body
                        }?;
                        let notes = std::mem::take(&mut tx.notes);
                        $crate::notify(&mut tx, &notes, &store.origin).await?;
                        tx.commit().await?;
                        Ok::<_, StoreError>((value, notes))
                    }
                    .await;
                    let stale = pooled.finish(&outcome);
                    match outcome {
                        Err(e)
                            if (stale || $crate::pool::is_conflict(&e)) && attempt < $crate::MAX_TX_ATTEMPTS =>
                        {
                            tracing::debug!(error = %e, attempt, "store-pg: running the transaction again");
                            attempt += 1;
                        }
                        other => break other,
                    }
                }
            })
            .await;
        committed.map(|(value, notes)| {
            // Publish before answering: a caller that got its answer and subscribes next
            // must not receive changes it already knows about.
            store.hub.publish_notes(notes);
            value
        })
    }};
}

/// Runs `$body` in a read-only snapshot transaction (again on a connection that died idle).
macro_rules! read_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store: &$crate::Shared = $store.shared();
        store
            .bounded(async {
                let mut attempt = 1u32;
                loop {
                    let mut pooled = store.pool.get().await?;
                    let outcome = async {
                        let mut tx = pooled.begin(true).await?;
                        let value = {
                            let $tx = &mut tx;
                            $body
                        }?;
                        tx.commit().await?;
                        Ok::<_, StoreError>(value)
                    }
                    .await;
                    let stale = pooled.finish(&outcome);
                    match outcome {
                        Err(_) if stale && attempt < $crate::MAX_TX_ATTEMPTS => attempt += 1,
                        other => break other,
                    }
                }
            })
            .await
    }};
}

// After the macros: the writer runs its batches with `write_tx!`.
mod writer;

/// Queues one NOTIFY per changed account; PostgreSQL delivers them at COMMIT.
async fn notify(tx: &mut Tx<'_>, notes: &Notes, origin: &str) -> Result<()> {
    for (account, noted) in notes.iter() {
        let payload = hub::encode(
            account,
            noted.modseq,
            &noted.mailboxes,
            &noted.collections,
            &noted.mail,
            origin,
        );
        tx.exec_later(
            "SELECT pg_notify($1, $2)",
            vec![Box::new(hub::CHANNEL), Box::new(payload)],
        )
        .await?;
    }
    Ok(())
}

/// What the store's calls and its writer tasks share: the pool, the change hub and the
/// instance's origin id.
pub(crate) struct Shared {
    pool: Arc<Pool>,
    hub: Arc<Hub>,
    /// Random id of this instance, carried in NOTIFY payloads to skip our own.
    origin: String,
    /// Per-type mail states last read ([`bulwark_store::changelog::MailStateCache`]).
    mail_states: bulwark_store::changelog::MailStateCache,
}

impl Shared {
    fn shared(&self) -> &Shared {
        self
    }

    /// Runs one call with the overall deadline; a hung server becomes `Unavailable`.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(pool::CALL_TIMEOUT, call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::Unavailable(format!(
                "PostgreSQL did not answer within {} s",
                pool::CALL_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// The PostgreSQL store. Cheap to share as `Arc<PgStore>` / `Arc<dyn Store>`.
pub struct PgStore {
    shared: Arc<Shared>,
    /// Group commit of deliveries ([`writer`]).
    writers: writer::Writers,
    listener: tokio::task::JoinHandle<()>,
}

impl PgStore {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("origin", &self.shared.origin)
            .finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), creates or migrates the schema
    /// (safe when several nodes start at once) and starts listening for other nodes'
    /// changes. Must be called inside a tokio runtime.
    pub async fn connect(url: &str) -> Result<Arc<PgStore>> {
        let pool = Pool::new(url)?;
        schema::migrate(&pool).await?;
        // Listening before returning: no change committed after `connect` is missed.
        let listening = hub::listen(pool.config()).await?;
        let hub = Arc::new(Hub::default());
        let origin = format!("{:016x}", rand::random::<u64>());
        let listener = tokio::spawn(hub::run_listener(
            listening,
            pool.config().clone(),
            hub.clone(),
            pool.clone(),
            origin.clone(),
        ));
        let shared = Arc::new(Shared {
            pool,
            hub,
            origin,
            mail_states: Default::default(),
        });
        Ok(Arc::new(PgStore {
            writers: writer::Writers::start(shared.clone()),
            shared,
            listener,
        }))
    }

    /// Delivery batches committed and acceptances they carried since connect (group
    /// commit, see [`writer`]); `jobs / commits` is the average batch size.
    pub fn commit_stats(&self) -> bulwark_store::sqlite::CommitStats {
        self.writers.stats()
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        read_tx!(self, |tx| tx.one("SELECT 1", &[]).await.map(|_| ()))
    }

    /// Drops the account's change-log entries at or below `modseq` (a retention step).
    /// Afterwards `changes_since(since < modseq)` fails with
    /// [`StoreError::CannotCalculateChanges`]; the floor is stored and never lowered.
    pub async fn trim_changes_before(&self, account: AccountId, modseq: ModSeq) -> Result<()> {
        write_tx!(self, |tx| changes::trim_changes_before(tx, account, modseq)
            .await)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn domain_add(&self, name: &str) -> Result<()> {
        write_tx!(self, |tx| directory::domain_add(tx, name).await)
    }
    async fn domain_delete(&self, name: &str) -> Result<()> {
        write_tx!(self, |tx| directory::domain_delete(tx, name).await)
    }
    async fn domain_list(&self) -> Result<Vec<String>> {
        read_tx!(self, |tx| directory::domain_list(tx).await)
    }
    async fn domain_exists(&self, name: &str) -> Result<bool> {
        read_tx!(self, |tx| directory::domain_exists(tx, name).await)
    }

    async fn account_create(&self, new: NewAccount) -> Result<Account> {
        write_tx!(self, |tx| directory::account_create(tx, &new).await)
    }
    async fn account_get(&self, id: AccountId) -> Result<Option<Account>> {
        read_tx!(self, |tx| directory::account_get(tx, id).await)
    }
    async fn account_by_address(&self, address: &str) -> Result<Option<Account>> {
        read_tx!(self, |tx| directory::account_by_address(tx, address).await)
    }
    async fn account_list(&self) -> Result<Vec<Account>> {
        read_tx!(self, |tx| directory::account_list(tx).await)
    }
    async fn account_set_password(&self, id: AccountId, password_hash: &str) -> Result<()> {
        write_tx!(self, |tx| directory::account_set_column(
            tx,
            id,
            AccountColumn::PasswordHash,
            password_hash
        )
        .await)
    }
    async fn account_set_display_name(&self, id: AccountId, name: &str) -> Result<()> {
        write_tx!(self, |tx| directory::account_set_column(
            tx,
            id,
            AccountColumn::DisplayName,
            name
        )
        .await)
    }
    async fn account_delete(&self, id: AccountId) -> Result<()> {
        write_tx!(self, |tx| directory::account_delete(tx, id).await)
    }

    async fn alias_add(&self, alias: &str, account: AccountId) -> Result<()> {
        write_tx!(self, |tx| directory::alias_add(tx, alias, account).await)
    }
    async fn alias_delete(&self, alias: &str) -> Result<()> {
        write_tx!(self, |tx| directory::alias_delete(tx, alias).await)
    }
    async fn alias_list(&self) -> Result<Vec<(String, AccountId)>> {
        read_tx!(self, |tx| directory::alias_list(tx).await)
    }
    async fn resolve_address(&self, address: &str) -> Result<Option<AccountId>> {
        read_tx!(self, |tx| directory::resolve_address(tx, address).await)
    }
    async fn account_addresses(&self, id: AccountId) -> Result<Vec<String>> {
        read_tx!(self, |tx| directory::account_addresses(tx, id).await)
    }

    async fn app_password_add(
        &self,
        account: AccountId,
        name: &str,
        hash: &str,
    ) -> Result<AppPassword> {
        write_tx!(self, |tx| directory::app_password_add(
            tx, account, name, hash
        )
        .await)
    }
    async fn app_password_list(&self, account: AccountId) -> Result<Vec<AppPassword>> {
        read_tx!(self, |tx| directory::app_password_list(tx, account).await)
    }
    async fn app_password_delete(&self, account: AccountId, id: i64) -> Result<()> {
        write_tx!(self, |tx| directory::app_password_delete(tx, account, id)
            .await)
    }

    async fn setting_get(&self, account: AccountId, key: &str) -> Result<Option<String>> {
        read_tx!(self, |tx| directory::setting_get(tx, account, key).await)
    }
    async fn setting_set(&self, account: AccountId, key: &str, value: Option<&str>) -> Result<()> {
        write_tx!(self, |tx| directory::setting_set(tx, account, key, value)
            .await)
    }

    async fn global_setting_get(&self, key: &str) -> Result<Option<String>> {
        read_tx!(self, |tx| directory::global_setting_get(tx, key).await)
    }
    async fn global_setting_set(&self, key: &str, value: Option<&str>) -> Result<()> {
        write_tx!(self, |tx| directory::global_setting_set(tx, key, value)
            .await)
    }
    async fn global_setting_replace(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool> {
        write_tx!(self, |tx| directory::global_setting_replace(
            tx, key, expected, value
        )
        .await)
    }

    async fn mailbox_list(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        read_tx!(self, |tx| mailboxes::mailbox_list(tx, account).await)
    }
    async fn mailbox_get(&self, account: AccountId, id: MailboxId) -> Result<Option<Mailbox>> {
        read_tx!(self, |tx| mailboxes::mailbox_get(tx, account, id).await)
    }
    async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
        role: Option<Role>,
    ) -> Result<Mailbox> {
        write_tx!(self, |tx| mailboxes::mailbox_create(
            tx, account, name, role
        )
        .await)
    }
    async fn mailbox_rename(
        &self,
        account: AccountId,
        id: MailboxId,
        new_name: &str,
    ) -> Result<()> {
        write_tx!(self, |tx| mailboxes::mailbox_rename(
            tx, account, id, new_name
        )
        .await)
    }
    async fn mailbox_delete(&self, account: AccountId, id: MailboxId) -> Result<()> {
        write_tx!(self, |tx| mailboxes::mailbox_delete(tx, account, id).await)
    }
    async fn mailbox_set_subscribed(
        &self,
        account: AccountId,
        id: MailboxId,
        subscribed: bool,
    ) -> Result<()> {
        write_tx!(self, |tx| mailboxes::mailbox_set_subscribed(
            tx, account, id, subscribed
        )
        .await)
    }
    async fn mailbox_set_role(
        &self,
        account: AccountId,
        id: MailboxId,
        role: Option<Role>,
    ) -> Result<()> {
        write_tx!(self, |tx| mailboxes::mailbox_set_role(
            tx, account, id, role
        )
        .await)
    }
    async fn mailbox_set_sort_order(
        &self,
        account: AccountId,
        id: MailboxId,
        sort_order: Option<u32>,
    ) -> Result<()> {
        write_tx!(self, |tx| mailboxes::mailbox_set_sort_order(
            tx, account, id, sort_order
        )
        .await)
    }
    async fn mailbox_status(&self, account: AccountId, id: MailboxId) -> Result<MailboxStatus> {
        read_tx!(self, |tx| mailboxes::mailbox_status(tx, account, id).await)
    }

    async fn email_append(&self, account: AccountId, new: Vec<NewEmail>) -> Result<Vec<Appended>> {
        self.writers.append(account, new).await
    }
    async fn deliver(&self, deliveries: Vec<(AccountId, NewEmail)>) -> Result<Vec<Appended>> {
        let acceptance = Acceptance {
            local: deliveries,
            ..Acceptance::default()
        };
        Ok(self.writers.accept(acceptance).await?.appended)
    }
    async fn accept(&self, acceptance: Acceptance) -> Result<Accepted> {
        self.writers.accept(acceptance).await
    }
    async fn mailbox_messages(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageMeta>> {
        read_tx!(self, |tx| messages::mailbox_messages(tx, account, mailbox)
            .await)
    }
    async fn expunged_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<Vec<Uid>> {
        read_tx!(self, |tx| messages::expunged_since(
            tx, account, mailbox, since
        )
        .await)
    }
    async fn mailbox_delta(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<MailboxDelta> {
        read_tx!(self, |tx| messages::mailbox_delta(
            tx, account, mailbox, since
        )
        .await)
    }
    async fn blob_get_many(&self, hashes: &[BlobHash]) -> Result<Vec<Option<Vec<u8>>>> {
        read_tx!(self, |tx| messages::blob_get_many(tx, hashes).await)
    }
    async fn message_summaries(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, EmailSummary)>> {
        read_tx!(self, |tx| messages::message_summaries(
            tx, account, mailbox, uids
        )
        .await)
    }
    async fn message_search_headers(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, SearchHeaders)>> {
        read_tx!(self, |tx| messages::message_search_headers(
            tx, account, mailbox, uids
        )
        .await)
    }
    async fn message_envelopes(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Option<Vec<u8>>)>> {
        read_tx!(self, |tx| messages::message_envelopes(
            tx, account, mailbox, uids
        )
        .await)
    }
    async fn message_save_dates(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, i64)>> {
        read_tx!(self, |tx| messages::message_save_dates(
            tx, account, mailbox, uids
        )
        .await)
    }
    async fn email_get(&self, account: AccountId, ids: &[EmailId]) -> Result<Vec<Email>> {
        read_tx!(self, |tx| messages::email_get(tx, account, ids).await)
    }
    async fn email_list(&self, account: AccountId) -> Result<Vec<Email>> {
        read_tx!(self, |tx| messages::email_list(tx, account).await)
    }
    async fn email_query_page(
        &self,
        account: AccountId,
        query: &EmailPageQuery,
    ) -> Result<EmailPage> {
        read_tx!(self, |tx| query::email_query_page(tx, account, query).await)
    }
    async fn blob_get(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>> {
        read_tx!(self, |tx| messages::blob_get(tx, hash).await)
    }
    async fn blob_put(&self, account: AccountId, data: &[u8]) -> Result<BlobHash> {
        write_tx!(self, |tx| items::upload_put(tx, account, data).await)
    }
    async fn blob_get_owned(
        &self,
        account: AccountId,
        hashes: &[BlobHash],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        read_tx!(self, |tx| {
            let owned = items::blobs_owned(tx, account, hashes).await?;
            let wanted: Vec<BlobHash> = hashes
                .iter()
                .zip(&owned)
                .filter(|(_, o)| **o)
                .map(|(h, _)| h.clone())
                .collect();
            let mut read = messages::blob_get_many(tx, &wanted).await?.into_iter();
            Ok::<_, StoreError>(
                owned
                    .into_iter()
                    .map(|o| if o { read.next().flatten() } else { None })
                    .collect::<Vec<_>>(),
            )
        })
    }
    async fn blob_collect(&self, upload_before: i64) -> Result<(u64, u64)> {
        write_tx!(self, |tx| items::blob_collect(tx, upload_before).await)
    }

    async fn collection_get(
        &self,
        account: AccountId,
        collection: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<CollectionItem>> {
        read_tx!(self, |tx| items::collection_get(
            tx, account, collection, ids
        )
        .await)
    }
    async fn collection_write(&self, account: AccountId, writes: Vec<ItemWrite>) -> Result<ModSeq> {
        write_tx!(self, |tx| items::collection_write(tx, account, &writes)
            .await)
    }
    async fn collection_changes(
        &self,
        account: AccountId,
        collection: &str,
        since: ModSeq,
        max: usize,
    ) -> Result<CollectionChanges> {
        read_tx!(self, |tx| items::collection_changes(
            tx, account, collection, since, max
        )
        .await)
    }
    async fn collection_state(&self, account: AccountId, collection: &str) -> Result<ModSeq> {
        read_tx!(self, |tx| items::collection_state(tx, account, collection)
            .await)
    }

    async fn email_set_keywords(
        &self,
        account: AccountId,
        updates: Vec<KeywordUpdate>,
    ) -> Result<KeywordResult> {
        self.writers.keywords(account, updates).await
    }
    async fn email_set_mailboxes(
        &self,
        account: AccountId,
        updates: Vec<MembershipUpdate>,
    ) -> Result<Vec<(EmailId, Vec<(MailboxId, Uid)>)>> {
        self.writers.mailboxes(account, updates).await
    }
    async fn email_copy(
        &self,
        account: AccountId,
        ids: &[EmailId],
        dest: MailboxId,
    ) -> Result<Vec<(EmailId, EmailId, Uid)>> {
        write_tx!(self, |tx| emails::email_copy(tx, account, ids, dest).await)
    }
    async fn mailbox_expunge(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<ModSeq> {
        self.writers.expunge(account, mailbox, uids.to_vec()).await
    }
    async fn email_destroy(&self, account: AccountId, ids: &[EmailId]) -> Result<()> {
        write_tx!(self, |tx| emails::email_destroy(tx, account, ids).await)
    }

    async fn account_modseq(&self, account: AccountId) -> Result<ModSeq> {
        read_tx!(self, |tx| changes::account_modseq(tx, account).await)
    }
    async fn changes_since(
        &self,
        account: AccountId,
        since: ModSeq,
        max: usize,
    ) -> Result<ChangeSet> {
        read_tx!(self, |tx| changes::changes_since(tx, account, since, max)
            .await)
    }
    async fn mail_states(&self, account: AccountId) -> Result<MailStates> {
        let cache = &self.shared.mail_states;
        read_tx!(self, |tx| changes::mail_states(tx, cache, account).await)
    }
    async fn kind_changes_since(
        &self,
        account: AccountId,
        kind: bulwark_store::changelog::ChangeKind,
        since: ModSeq,
        max: usize,
    ) -> Result<ChangeSet> {
        let cache = &self.shared.mail_states;
        read_tx!(self, |tx| changes::kind_changes_since(
            tx, cache, account, kind, since, max
        )
        .await)
    }
    fn subscribe(&self, account: AccountId) -> broadcast::Receiver<StateChange> {
        self.shared.hub.subscribe(account)
    }
    fn subscribe_all(&self) -> broadcast::Receiver<StateChange> {
        self.shared.hub.subscribe_all()
    }

    async fn queue_enqueue(&self, msg: NewQueued) -> Result<QueueId> {
        write_tx!(self, |tx| queue::queue_enqueue(tx, &msg).await)
    }
    async fn queue_list(&self) -> Result<Vec<Queued>> {
        read_tx!(self, |tx| queue::queue_list(tx).await)
    }
    async fn queue_get(&self, id: QueueId) -> Result<Option<Queued>> {
        read_tx!(self, |tx| queue::queue_get(tx, id).await)
    }
    async fn queue_lease_due(
        &self,
        now: i64,
        node: &str,
        lease_secs: i64,
        max: usize,
    ) -> Result<Vec<Queued>> {
        write_tx!(self, |tx| queue::queue_lease_due(
            tx, now, node, lease_secs, max
        )
        .await)
    }
    async fn queue_update(&self, entry: &Queued) -> Result<()> {
        write_tx!(self, |tx| queue::queue_update(tx, entry).await)
    }
    async fn queue_retry_now(&self, id: QueueId) -> Result<()> {
        write_tx!(self, |tx| queue::queue_retry_now(tx, id).await)
    }
    async fn queue_delete(&self, id: QueueId) -> Result<()> {
        write_tx!(self, |tx| queue::queue_delete(tx, id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        // A port that was just free: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let result = PgStore::connect(&url).await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn malformed_url_is_invalid() {
        let result = PgStore::connect("postgres://u@h:notaport/db").await;
        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    }
}
