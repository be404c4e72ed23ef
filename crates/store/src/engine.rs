//! The engine contract: the typed-table operations one write transaction offers, which each
//! backend implements once, in its own SQL ([`crate::sqlite`] here, `bulwark-store-pg`).
//!
//! The mail rules above it — UID and MODSEQ allocation, threading, keyword changes with
//! CONDSTORE conflicts, memberships, orphan handling (an email in no mailbox is destroyed,
//! then its thread if it was the last), the change log entries each change writes — are
//! written once, in [`crate::domain`], generic over [`WriteTx`]. A backend cannot get them
//! wrong or let them drift; it only says how a row is read or written.
//!
//! Every method runs inside the caller's transaction: nothing is visible to others until
//! the backend commits, and a failure anywhere rolls back all of it. The operations are
//! `async` so the PostgreSQL backend can await its round trips; the SQLite backend's are
//! synchronous inside (its writer thread owns the connection) and run to completion at the
//! first poll ([`run_ready`]).
//!
//! Compare-and-set of collection items, blobs with owners, the change log's reads, pub/sub
//! ([`crate::Store::subscribe`]) and leases ([`crate::Store::queue_lease_due`]) are the
//! other parts of the contract; they have one implementation per backend already and no
//! rules of their own to share.

use crate::changelog::{ChangeKind, ChangeOp};
use crate::{
    AccountId, BlobHash, EmailId, EmailSummary, Mailbox, MailboxId, ModSeq, NewQueued, QueueId,
    Result, Role, StoreError, ThreadId, Uid,
};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// A new email row, as [`WriteTx::insert_email`] stores it (with its search and envelope
/// copies where the backend keeps them).
#[derive(Debug)]
pub struct EmailRow<'a> {
    pub account: AccountId,
    pub thread: ThreadId,
    pub blob: &'a BlobHash,
    pub size: u32,
    pub received_at: i64,
    /// [`crate::rules::keywords_to_text`] of the normalised keywords.
    pub keywords: String,
    pub seen: bool,
    pub modseq: ModSeq,
    /// [`crate::rules::normalize_message_id`] of the Message-ID, for thread lookups.
    pub message_id: Option<String>,
    /// The summary as stored (JSON), and the summary itself for backends that keep parts of
    /// it in their own columns (search headers, IMAP envelope).
    pub summary_json: String,
    pub summary: &'a EmailSummary,
}

/// One write transaction of a backend, as the mail rules see it.
#[allow(async_fn_in_trait)] // implemented for concrete transaction types only
pub trait WriteTx {
    // ---- accounts and the change log ----------------------------------------------------
    /// Serialises writers of the account until commit (PostgreSQL: its counter row; a
    /// single-writer backend has nothing to do).
    async fn lock_account(&mut self, account: AccountId) -> Result<()>;
    /// [`StoreError::NotFound`] unless the account exists.
    async fn require_account(&mut self, account: AccountId) -> Result<()>;
    /// Takes the account's next modseq (and notes it for subscribers).
    async fn next_modseq(&mut self, account: AccountId) -> Result<ModSeq>;
    /// The account's highest modseq.
    async fn account_modseq(&mut self, account: AccountId) -> Result<ModSeq>;
    /// Appends one entry to the account's change log.
    async fn log(
        &mut self,
        account: AccountId,
        modseq: ModSeq,
        kind: ChangeKind,
        object: i64,
        op: ChangeOp,
    ) -> Result<()>;

    /// Notes for subscribers that new mail was delivered to the account (JMAP
    /// `EmailDelivery`, RFC 8621 §1.5), as opposed to the user's own append or import.
    fn note_delivery(&mut self, account: AccountId);

    // ---- mailboxes ------------------------------------------------------------------------
    /// The mailbox, or [`StoreError::NotFound`] when the account has no such mailbox.
    async fn require_mailbox(&mut self, account: AccountId, mailbox: MailboxId) -> Result<Mailbox>;
    /// Takes the mailbox's next UID (UIDNEXT only grows); `None` when the mailbox does not
    /// exist or has used up its 32-bit UIDs.
    async fn take_uid(&mut self, account: AccountId, mailbox: MailboxId) -> Result<Option<Uid>>;
    /// Raises the mailbox's HIGHESTMODSEQ to `modseq` and notes it for subscribers.
    async fn touch_mailbox(
        &mut self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<()>;

    /// Takes the next UIDVALIDITY from the database-wide counter (never one an earlier
    /// mailbox had, RFC 9051 §2.3.1.1).
    async fn next_uid_validity(&mut self) -> Result<u32>;
    async fn mailbox_by_name(
        &mut self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<MailboxId>>;
    /// Does a mailbox of the account have this role?
    async fn role_taken(&mut self, account: AccountId, role: Role) -> Result<bool>;
    /// A new mailbox row (UIDNEXT 1, HIGHESTMODSEQ `modseq`).
    async fn insert_mailbox(
        &mut self,
        account: AccountId,
        name: &str,
        role: Option<Role>,
        uid_validity: u32,
        subscribed: bool,
        modseq: ModSeq,
    ) -> Result<MailboxId>;
    /// The mailbox and those whose name starts with `children_prefix`, with their names.
    async fn mailbox_and_children(
        &mut self,
        account: AccountId,
        mailbox: MailboxId,
        children_prefix: &str,
    ) -> Result<Vec<(MailboxId, String)>>;
    async fn set_mailbox_name(&mut self, mailbox: MailboxId, name: &str) -> Result<()>;
    async fn set_mailbox_subscribed(&mut self, mailbox: MailboxId, subscribed: bool) -> Result<()>;
    async fn set_mailbox_role(&mut self, mailbox: MailboxId, role: Option<Role>) -> Result<()>;
    async fn set_mailbox_sort_order(
        &mut self,
        mailbox: MailboxId,
        sort_order: Option<u32>,
    ) -> Result<()>;
    /// The mailbox's `(uid, email)` pairs in UID order.
    async fn mailbox_members(&mut self, mailbox: MailboxId) -> Result<Vec<(Uid, EmailId)>>;
    /// Deletes the (emptied) mailbox row and its expunge records.
    async fn delete_mailbox(&mut self, mailbox: MailboxId) -> Result<()>;

    // ---- memberships ----------------------------------------------------------------------
    /// Puts the email into the mailbox under `uid`; `saved_at` (unix seconds) is when it
    /// was placed there (RFC 8514 SAVEDATE).
    async fn insert_membership(
        &mut self,
        mailbox: MailboxId,
        uid: Uid,
        email: EmailId,
        modseq: ModSeq,
        saved_at: i64,
    ) -> Result<()>;
    /// Deletes the membership and records the UID as expunged at `modseq` (QRESYNC).
    async fn delete_membership(
        &mut self,
        mailbox: MailboxId,
        uid: Uid,
        modseq: ModSeq,
    ) -> Result<()>;
    /// The email's memberships, ordered by mailbox.
    async fn memberships_of(&mut self, email: EmailId) -> Result<Vec<(MailboxId, Uid)>>;
    /// The email at this UID of the mailbox.
    async fn email_at(&mut self, mailbox: MailboxId, uid: Uid) -> Result<Option<EmailId>>;

    // ---- blobs, threads, emails -----------------------------------------------------------
    /// Stores a blob once (content-addressed); returns its hash.
    async fn put_blob(&mut self, data: &[u8]) -> Result<BlobHash>;
    /// The distinct threads that any of these (normalised) Message-IDs of the account's
    /// references table belong to (RFC 8621 §3).
    async fn threads_of_refs(
        &mut self,
        account: AccountId,
        ids: &[String],
    ) -> Result<Vec<ThreadId>>;
    /// Enters the Message-IDs into the account's references table as `thread`'s (an id
    /// already there is moved to `thread`).
    async fn add_thread_refs(
        &mut self,
        account: AccountId,
        ids: &[String],
        thread: ThreadId,
    ) -> Result<()>;
    /// Moves every email and reference of thread `from` into `into` (the emails at
    /// `modseq`) and deletes `from`; returns the moved emails.
    async fn merge_thread(
        &mut self,
        from: ThreadId,
        into: ThreadId,
        modseq: ModSeq,
    ) -> Result<Vec<EmailId>>;
    async fn insert_thread(&mut self, account: AccountId) -> Result<ThreadId>;
    /// Is there no email left in the thread?
    async fn thread_is_empty(&mut self, thread: ThreadId) -> Result<bool>;
    /// Deletes the thread row and its references.
    async fn delete_thread(&mut self, thread: ThreadId) -> Result<()>;
    async fn insert_email(&mut self, row: &EmailRow<'_>) -> Result<EmailId>;
    /// A new email row copying `source` (blob, thread, keywords, summary) at `modseq`;
    /// returns it and its thread.
    async fn copy_email(&mut self, source: EmailId, modseq: ModSeq) -> Result<(EmailId, ThreadId)>;
    async fn email_exists(&mut self, account: AccountId, email: EmailId) -> Result<bool>;
    /// The stored keyword text and the modseq of the last keyword change.
    async fn email_keywords(
        &mut self,
        account: AccountId,
        email: EmailId,
    ) -> Result<Option<(String, ModSeq)>>;
    async fn set_email_keywords(
        &mut self,
        email: EmailId,
        keywords: &str,
        seen: bool,
        modseq: ModSeq,
    ) -> Result<()>;
    async fn set_email_modseq(&mut self, email: EmailId, modseq: ModSeq) -> Result<()>;
    /// Deletes the email row (and what the backend keeps beside it); returns its thread,
    /// `None` when there was no such email.
    async fn delete_email(&mut self, email: EmailId) -> Result<Option<ThreadId>>;

    // ---- the outbound queue ------------------------------------------------------------------
    /// Stores a new queue entry (its message as a blob the entry references).
    async fn enqueue(&mut self, message: &NewQueued) -> Result<QueueId>;

    // ---- collection items ([`crate::collections`]) ------------------------------------------
    /// The item's current version, `None` when it does not exist.
    async fn item_version(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
    ) -> Result<Option<ModSeq>>;
    /// Creates or replaces the item at `version`.
    async fn put_item(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
        version: ModSeq,
        value: &str,
    ) -> Result<()>;
    async fn delete_item(&mut self, account: AccountId, collection: &str, id: &str) -> Result<()>;
    /// Replaces the blobs the item references (ownership: [`crate::Store::blob_get_owned`]).
    async fn set_item_blobs(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
        blobs: &[BlobHash],
    ) -> Result<()>;
    /// Appends to the collection's change log (and notes the collection for subscribers).
    async fn log_item(
        &mut self,
        account: AccountId,
        collection: &str,
        modseq: ModSeq,
        id: &str,
        op: i64,
        existed: bool,
    ) -> Result<()>;
}

/// Runs a future that never waits — the SQLite backend's [`WriteTx`] operations are
/// synchronous — to completion on the calling thread. One that would wait is a bug in the
/// backend, reported as an internal error rather than blocking the writer.
pub fn run_ready<F: Future>(future: F) -> Result<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(StoreError::Internal(
            "a synchronous store operation tried to wait".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_futures_run_and_waiting_ones_are_refused() {
        assert_eq!(run_ready(async { 7 }).unwrap(), 7);
        let never = std::future::pending::<()>();
        assert!(matches!(run_ready(never), Err(StoreError::Internal(_))));
    }
}
