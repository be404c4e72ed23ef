//! Bulwark's storage contract: one [`Store`] trait, two backends.
//!
//! * `sqlite` — the embedded default (a single SQLite file in WAL mode inside `data_dir`).
//! * PostgreSQL — for multi-node (a later issue).
//!
//! # Durability contract
//! Every mutating method returns only after its effect is durable (the transaction is
//! committed with `synchronous=FULL`, or the PostgreSQL commit returned). Callers acknowledge
//! to clients (`250`, `OK`, JMAP success) only after such a call returned `Ok`.
//! Backends use group commit: concurrent writers share one fsync.
//!
//! # Change log
//! Each account has one monotonically increasing [`ModSeq`]. Every change to an email
//! (created, keywords changed, mailbox membership changed, destroyed) or a mailbox takes the
//! next modseq and is written to the account's change log. IMAP CONDSTORE/QRESYNC and JMAP
//! state strings are both read from it. After each commit the backend publishes a
//! [`StateChange`] to subscribers of that account ([`Store::subscribe`]).
//!
//! # Keywords
//! Flags are stored in JMAP keyword form (lowercase `$seen`, `$flagged`, `$answered`,
//! `$draft`, `$deleted`, or any custom keyword lowercased). IMAP maps its system flags with
//! [`model::imap_flag_to_keyword`] / [`model::keyword_to_imap_flag`].

pub mod blob_cache;
pub mod changelog;
pub mod collections;
// The conformance suite is test code that other crates compile without cfg(test).
#[cfg(any(test, feature = "conformance"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub mod conformance;
pub mod domain;
pub mod email_page;
pub mod engine;
pub mod fold;
pub mod item_cache;
pub mod model;
pub mod outage;
pub mod rules;
pub mod sqlite;

pub use collections::{CollectionChanges, CollectionItem, Expect, ItemWrite};
pub use email_page::{EmailPage, EmailPageQuery};
pub use model::*;

use async_trait::async_trait;
use tokio::sync::broadcast;

/// Errors every backend maps its failures onto.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid: {0}")]
    Invalid(String),
    /// The backend cannot be reached right now (a temporary condition; retry later).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A compare-and-set write found another version than it expected (someone else wrote
    /// first); nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The change log no longer reaches back to the requested modseq.
    #[error("changes since {0} can no longer be calculated")]
    CannotCalculateChanges(u64),
    #[error("internal store error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The error of [`Store::queue_update`] by a node that no longer holds the entry's lease
/// (`holder` holds it now, or nobody).
pub fn lease_lost(entry: &Queued, holder: Option<&str>) -> StoreError {
    StoreError::Invalid(format!(
        "queue entry {} is leased by {}, not {}: the lease expired and was taken over",
        entry.id,
        holder.unwrap_or("nobody"),
        entry.lease_owner.as_deref().unwrap_or("nobody"),
    ))
}

/// The one storage trait. Every protocol reads and writes through it (via `bulwark-core`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- domains --------------------------------------------------------------------
    async fn domain_add(&self, name: &str) -> Result<()>;
    async fn domain_delete(&self, name: &str) -> Result<()>;
    async fn domain_list(&self) -> Result<Vec<String>>;
    /// Is `name` (lowercase) a local domain?
    async fn domain_exists(&self, name: &str) -> Result<bool>;

    // ---- accounts, aliases, app passwords ----------------------------------------
    /// Creates the account and its special-use mailboxes (INBOX, Sent, Drafts, Trash,
    /// Junk, Archive). The address's domain must exist.
    async fn account_create(&self, new: NewAccount) -> Result<Account>;
    async fn account_get(&self, id: AccountId) -> Result<Option<Account>>;
    /// Looks up by primary address (case-insensitive).
    async fn account_by_address(&self, address: &str) -> Result<Option<Account>>;
    async fn account_list(&self) -> Result<Vec<Account>>;
    async fn account_set_password(&self, id: AccountId, password_hash: &str) -> Result<()>;
    async fn account_set_display_name(&self, id: AccountId, name: &str) -> Result<()>;
    /// Deletes the account with all its mailboxes, emails, aliases, app passwords, settings
    /// and collection items, and every blob that no other account or queue entry references.
    async fn account_delete(&self, id: AccountId) -> Result<()>;

    async fn alias_add(&self, alias: &str, account: AccountId) -> Result<()>;
    async fn alias_delete(&self, alias: &str) -> Result<()>;
    /// All aliases, `(alias, account)` pairs.
    async fn alias_list(&self) -> Result<Vec<(String, AccountId)>>;
    /// Exact lookup of a full address (case-insensitive) as primary address or alias.
    /// Plus-addressing is resolved by the caller (bulwark-core).
    async fn resolve_address(&self, address: &str) -> Result<Option<AccountId>>;
    /// Every address that belongs to the account (primary first, then aliases).
    async fn account_addresses(&self, id: AccountId) -> Result<Vec<String>>;

    async fn app_password_add(
        &self,
        account: AccountId,
        name: &str,
        hash: &str,
    ) -> Result<AppPassword>;
    async fn app_password_list(&self, account: AccountId) -> Result<Vec<AppPassword>>;
    async fn app_password_delete(&self, account: AccountId, id: i64) -> Result<()>;

    /// Per-account settings as opaque strings (JSON by convention), e.g. `totp`,
    /// `vacation`, `identities`. `None` deletes. Deleted with the account.
    async fn setting_get(&self, account: AccountId, key: &str) -> Result<Option<String>>;
    async fn setting_set(&self, account: AccountId, key: &str, value: Option<&str>) -> Result<()>;

    /// Settings shared by every node, not tied to an account (e.g. `token-keys`, the token
    /// signing key set). Opaque strings (JSON by convention). `None` deletes.
    async fn global_setting_get(&self, key: &str) -> Result<Option<String>>;
    async fn global_setting_set(&self, key: &str, value: Option<&str>) -> Result<()>;
    /// Compare-and-set: writes `value` only if the current value equals `expected` (`None`:
    /// the key is absent, i.e. insert-if-absent). Returns whether it wrote. Atomic between
    /// nodes, so concurrent writers never lose each other's update silently.
    async fn global_setting_replace(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool>;

    // ---- mailboxes ------------------------------------------------------------------
    async fn mailbox_list(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    async fn mailbox_get(&self, account: AccountId, id: MailboxId) -> Result<Option<Mailbox>>;
    /// Creates a mailbox with a fresh UIDVALIDITY that no earlier mailbox of the account
    /// had. `name` is the full path with `/` as separator; parents are not auto-created.
    async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
        role: Option<Role>,
    ) -> Result<Mailbox>;
    /// Renames the mailbox and every mailbox below it (`old/…` → `new/…`).
    async fn mailbox_rename(&self, account: AccountId, id: MailboxId, new_name: &str)
    -> Result<()>;
    /// Deletes the mailbox; emails that are in no other mailbox are destroyed.
    async fn mailbox_delete(&self, account: AccountId, id: MailboxId) -> Result<()>;
    async fn mailbox_set_subscribed(
        &self,
        account: AccountId,
        id: MailboxId,
        subscribed: bool,
    ) -> Result<()>;
    async fn mailbox_set_role(
        &self,
        account: AccountId,
        id: MailboxId,
        role: Option<Role>,
    ) -> Result<()>;
    /// The user's sort order for the mailbox (JMAP `sortOrder`); `None` restores the role's
    /// default. A change is a mailbox change in the change log.
    async fn mailbox_set_sort_order(
        &self,
        account: AccountId,
        id: MailboxId,
        sort_order: Option<u32>,
    ) -> Result<()>;
    /// Counts for STATUS / LIST-STATUS / JMAP Mailbox.
    async fn mailbox_status(&self, account: AccountId, id: MailboxId) -> Result<MailboxStatus>;

    // ---- emails ----------------------------------------------------------------------
    /// Stores each new email (blob + index entries) in one durable transaction; all or
    /// nothing. Returns one [`Appended`] per request, in order.
    async fn email_append(&self, account: AccountId, new: Vec<NewEmail>) -> Result<Vec<Appended>>;
    /// Delivers to several accounts at once (one SMTP transaction with many recipients):
    /// all or nothing, durable on return.
    async fn deliver(&self, deliveries: Vec<(AccountId, NewEmail)>) -> Result<Vec<Appended>>;
    /// Commits a whole accepted message in one durable transaction, all or nothing: its
    /// local copies ([`Store::deliver`]), its queue entry ([`Store::queue_enqueue`]) and the
    /// collection items written with it ([`Store::collection_write`], one modseq per
    /// account). The one store call of the delivery pipeline.
    async fn accept(&self, acceptance: Acceptance) -> Result<Accepted>;
    /// The messages of one mailbox ordered by UID.
    async fn mailbox_messages(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageMeta>>;
    /// UIDs expunged from the mailbox with a modseq greater than `since` (QRESYNC VANISHED).
    async fn expunged_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<Vec<Uid>>;
    async fn email_get(&self, account: AccountId, ids: &[EmailId]) -> Result<Vec<Email>>;
    /// What changed in the mailbox after `since` (messages with a greater modseq, UIDs
    /// expunged after it, its HIGHESTMODSEQ): IMAP's incremental resync of a selected mailbox.
    /// The default reads the whole listing; backends answer from their indexes.
    async fn mailbox_delta(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<MailboxDelta> {
        let highest_modseq = self
            .mailbox_get(account, mailbox)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?
            .highest_modseq;
        let mut changed = self.mailbox_messages(account, mailbox).await?;
        changed.retain(|m| m.modseq > since);
        let expunged = self.expunged_since(account, mailbox, since).await?;
        Ok(MailboxDelta {
            highest_modseq,
            changed,
            expunged,
        })
    }
    /// Several blobs in one read, in the order asked (`None` for unknown hashes): IMAP
    /// FETCH/SEARCH read message content in batches. The default reads blob by blob.
    async fn blob_get_many(&self, hashes: &[BlobHash]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            out.push(self.blob_get(hash).await?);
        }
        Ok(out)
    }
    /// The stored [`EmailSummary`] of the messages with these UIDs, ordered by UID; UIDs not
    /// in the mailbox are left out (IMAP SEARCH FROM/SUBJECT/… without reading blobs).
    async fn message_summaries(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, EmailSummary)>> {
        let wanted: std::collections::HashSet<Uid> = uids.iter().copied().collect();
        let metas: Vec<MessageMeta> = self
            .mailbox_messages(account, mailbox)
            .await?
            .into_iter()
            .filter(|m| wanted.contains(&m.uid))
            .collect();
        let ids: Vec<EmailId> = metas.iter().map(|m| m.email).collect();
        let mut summaries: std::collections::HashMap<EmailId, EmailSummary> = self
            .email_get(account, &ids)
            .await?
            .into_iter()
            .map(|e| (e.id, e.summary))
            .collect();
        Ok(metas
            .iter()
            .filter_map(|m| Some((m.uid, summaries.remove(&m.email)?)))
            .collect())
    }
    /// The subject/from/to/cc of the messages with these UIDs, ordered by UID; UIDs not in
    /// the mailbox are left out (IMAP SEARCH SUBJECT/FROM/TO/CC reads only these). The
    /// default takes them from [`Store::message_summaries`].
    async fn message_search_headers(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, SearchHeaders)>> {
        Ok(self
            .message_summaries(account, mailbox, uids)
            .await?
            .into_iter()
            .map(|(uid, s)| (uid, SearchHeaders::from(s)))
            .collect())
    }
    /// The stored IMAP ENVELOPE ([`EmailSummary::imap_envelope`]) of the messages with
    /// these UIDs, ordered by UID; UIDs not in the mailbox are left out, `None` where no
    /// envelope was stored (messages stored before envelopes were). IMAP FETCH ENVELOPE reads
    /// these instead of the content. The default has none stored: it returns nothing, and
    /// the caller renders from the content.
    async fn message_envelopes(
        &self,
        _account: AccountId,
        _mailbox: MailboxId,
        _uids: &[Uid],
    ) -> Result<Vec<(Uid, Option<Vec<u8>>)>> {
        Ok(Vec::new())
    }
    /// When the messages with these UIDs were placed into the mailbox (RFC 8514 SAVEDATE,
    /// unix seconds), ordered by UID; UIDs not in the mailbox are left out. Messages stored
    /// before save dates were kept report their internal date.
    async fn message_save_dates(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, i64)>>;
    /// All emails of the account (for JMAP queries), ordered by received_at descending.
    async fn email_list(&self, account: AccountId) -> Result<Vec<Email>>;
    /// One page of a list view (JMAP Email/query's common shape), read with an indexed,
    /// windowed query. The default answers from [`Store::email_list`]. Errors with
    /// [`StoreError::Invalid`] when [`EmailPageQuery::validate`] fails.
    async fn email_query_page(
        &self,
        account: AccountId,
        query: &EmailPageQuery,
    ) -> Result<EmailPage> {
        query.validate()?;
        Ok(query.page_of(self.email_list(account).await?))
    }
    /// A blob by hash, whoever owns it: for internal readers that took the hash from the
    /// account's own rows (IMAP FETCH, the queue, spool replay). Anything that takes a blob
    /// id from a client uses [`Store::blob_get_owned`].
    async fn blob_get(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>>;
    /// Stores a blob uploaded by `account` (JMAP upload); the account owns it until the
    /// upload expires ([`Store::blob_collect`]) — longer if an email or item references it.
    /// Durable on return.
    async fn blob_put(&self, account: AccountId, data: &[u8]) -> Result<BlobHash>;
    /// The blobs, in the order asked, that `account` references — through one of its emails,
    /// its uploads or an item of its collections. Others are `None`, exactly as for a blob
    /// that does not exist, so nobody can learn whether another account holds some content.
    async fn blob_get_owned(
        &self,
        account: AccountId,
        hashes: &[BlobHash],
    ) -> Result<Vec<Option<Vec<u8>>>>;
    /// The garbage collector: forgets uploads made before `upload_before` (unix seconds),
    /// then deletes every blob that no email, upload, collection item or queue entry
    /// references. Returns `(blobs, bytes)` deleted.
    async fn blob_collect(&self, upload_before: i64) -> Result<(u64, u64)>;

    // ---- account-scoped collections (see [`collections`]) -----------------------------
    /// Items of one collection: those of `ids` that exist (`Some`), or all (`None`), ordered
    /// by id.
    async fn collection_get(
        &self,
        account: AccountId,
        collection: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<CollectionItem>>;
    /// Applies the writes in one durable transaction, all or nothing; each must meet its
    /// [`Expect`] or the call fails with [`StoreError::Conflict`] and writes nothing. Every
    /// written item gets the returned modseq as its version (the account's next modseq, so
    /// subscribers get a [`StateChange`]).
    async fn collection_write(&self, account: AccountId, writes: Vec<ItemWrite>) -> Result<ModSeq>;
    /// What changed in the collection after `since` (ids created, updated, destroyed), at
    /// most about `max` ids (then `has_more`).
    async fn collection_changes(
        &self,
        account: AccountId,
        collection: &str,
        since: ModSeq,
        max: usize,
    ) -> Result<CollectionChanges>;
    /// The collection's state: the modseq of its last write (0 if it was never written).
    async fn collection_state(&self, account: AccountId, collection: &str) -> Result<ModSeq>;

    /// Changes keywords. An update whose `unchanged_since` is older than the email's
    /// modseq is not applied and is reported in [`KeywordResult::conflicts`].
    async fn email_set_keywords(
        &self,
        account: AccountId,
        updates: Vec<KeywordUpdate>,
    ) -> Result<KeywordResult>;
    /// Adds/removes mailbox memberships (IMAP MOVE, JMAP mailboxIds). New memberships get
    /// new UIDs. An email left in no mailbox is destroyed. Returns the new (mailbox, uid)
    /// pairs per email.
    async fn email_set_mailboxes(
        &self,
        account: AccountId,
        updates: Vec<MembershipUpdate>,
    ) -> Result<Vec<(EmailId, Vec<(MailboxId, Uid)>)>>;
    /// IMAP COPY: creates new emails (sharing the blob, copying keywords) in `dest`.
    /// Returns `(source, new email, new uid)`.
    async fn email_copy(
        &self,
        account: AccountId,
        ids: &[EmailId],
        dest: MailboxId,
    ) -> Result<Vec<(EmailId, EmailId, Uid)>>;
    /// Removes these UIDs from the mailbox (IMAP EXPUNGE); emails left in no mailbox are destroyed.
    async fn mailbox_expunge(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<ModSeq>;
    async fn email_destroy(&self, account: AccountId, ids: &[EmailId]) -> Result<()>;

    // ---- change log -------------------------------------------------------------------
    /// The account's highest modseq (its state).
    async fn account_modseq(&self, account: AccountId) -> Result<ModSeq>;
    /// What changed after `since`, at most `max` object entries (then `has_more`).
    async fn changes_since(
        &self,
        account: AccountId,
        since: ModSeq,
        max: usize,
    ) -> Result<ChangeSet>;
    /// The state of each mail data type: the modseq of its newest change-log entry (JMAP's
    /// per-type states, RFC 8620 §1.2: an Email change leaves the Mailbox state alone unless
    /// mailbox counts changed).
    async fn mail_states(&self, account: AccountId) -> Result<MailStates>;
    /// [`Store::changes_since`] for one kind: only its entries count towards `max`, and the
    /// new modseq is the kind's state ([`Store::mail_states`]) once nothing is left.
    async fn kind_changes_since(
        &self,
        account: AccountId,
        kind: changelog::ChangeKind,
        since: ModSeq,
        max: usize,
    ) -> Result<ChangeSet>;
    /// Receives a [`StateChange`] after each committed change of the account.
    fn subscribe(&self, account: AccountId) -> broadcast::Receiver<StateChange>;
    /// Receives every account's [`StateChange`]s (caches of collection items listen here).
    /// The channel is closed when this node may have missed changes (its change feed was
    /// lost): then everything may have changed, and the receiver subscribes again.
    fn subscribe_all(&self) -> broadcast::Receiver<StateChange>;

    // ---- outbound queue -----------------------------------------------------------------
    async fn queue_enqueue(&self, msg: NewQueued) -> Result<QueueId>;
    async fn queue_list(&self) -> Result<Vec<Queued>>;
    async fn queue_get(&self, id: QueueId) -> Result<Option<Queued>>;
    /// Leases up to `max` entries due at `now` (unix seconds) for `lease_secs` to `node`.
    async fn queue_lease_due(
        &self,
        now: i64,
        node: &str,
        lease_secs: i64,
        max: usize,
    ) -> Result<Vec<Queued>>;
    /// Writes back an entry after a delivery attempt (recipient states, next attempt,
    /// attempts, releases the lease). Entries whose recipients are all final are deleted.
    ///
    /// Only the lease holder may write: the stored `lease_owner` must equal
    /// `entry.lease_owner` (both `None` for an entry nobody leases, e.g. `queue get` then
    /// postpone). A stale holder — its lease expired and another node leased the entry —
    /// gets [`StoreError::Invalid`] (see [`lease_lost`]) and nothing is written, so the entry
    /// is delivered by one node only. A vanished entry gives [`StoreError::NotFound`].
    async fn queue_update(&self, entry: &Queued) -> Result<()>;
    /// Makes the entry due now (`bulwark queue retry`).
    async fn queue_retry_now(&self, id: QueueId) -> Result<()>;
    async fn queue_delete(&self, id: QueueId) -> Result<()>;
}
