//! Group commit: one writer thread owns the write connection. Mutating calls send a job;
//! the thread drains every queued job (up to [`MAX_BATCH`]), runs each inside its own
//! SAVEPOINT of one transaction, commits once (one fsync), then answers all jobs and
//! publishes the [`StateChange`]s.

use super::db_err;
use crate::{AccountId, MailboxId, ModSeq, Result, StateChange, StoreError};
use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use tokio::sync::broadcast;

/// Most jobs committed together in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Capacity of each account's change broadcast channel.
const SUBSCRIBE_CAPACITY: usize = 256;

/// Answers a job once the fate of its transaction is known.
pub(crate) type Reply = Box<dyn FnOnce(Result<()>) + Send>;
/// A unit of work run by the writer thread; returns whether it succeeded and its reply.
pub(crate) type Job = Box<dyn FnOnce(&mut Tx<'_>) -> (bool, Reply) + Send>;

pub(crate) use crate::changelog::{ChangeKind as Kind, ChangeOp as Op};

/// What one committed batch changed, per account.
pub(crate) use crate::changelog::CommitNotes as Notes;

/// The write transaction as seen by a job: the connection plus change-log helpers.
pub(crate) struct Tx<'c> {
    pub(crate) conn: &'c Connection,
    notes: Notes,
}

impl Tx<'_> {
    /// Takes the account's next modseq.
    pub(crate) fn next_modseq(&mut self, account: AccountId) -> Result<ModSeq> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE accounts SET modseq = modseq + 1 WHERE id = ?1 RETURNING modseq",
            )
            .map_err(db_err)?;
        let mut rows = stmt.query([account.0]).map_err(db_err)?;
        let Some(row) = rows.next().map_err(db_err)? else {
            return Err(StoreError::NotFound(format!("account {account}")));
        };
        let modseq = ModSeq(row.get::<_, i64>(0).map_err(db_err)? as u64);
        self.notes.note_modseq(account, modseq);
        Ok(modseq)
    }

    /// Appends one row to the account's change log.
    pub(crate) fn log(
        &mut self,
        account: AccountId,
        modseq: ModSeq,
        kind: Kind,
        object: i64,
        op: Op,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO changes (account, modseq, kind, object, op) VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(db_err)?;
        stmt.execute(params![
            account.0,
            modseq.0 as i64,
            kind as i64,
            object,
            op as i64
        ])
        .map_err(db_err)?;
        Ok(())
    }

    /// Notes for subscribers that an item of the collection was written.
    pub(crate) fn note_collection(&mut self, account: AccountId, collection: &str) {
        self.notes.note_collection(account, collection);
    }

    /// Raises the mailbox's HIGHESTMODSEQ and notes it for subscribers.
    pub(crate) fn touch_mailbox(
        &mut self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE mailboxes SET highest_modseq = ?2 WHERE id = ?1 AND highest_modseq < ?2",
            )
            .map_err(db_err)?;
        stmt.execute(params![mailbox.0, modseq.0 as i64])
            .map_err(db_err)?;
        self.notes.note_mailbox(account, mailbox);
        Ok(())
    }
}

/// Per-account broadcast channels for [`StateChange`]s.
#[derive(Default)]
pub(crate) struct Hub {
    senders: Mutex<HashMap<AccountId, broadcast::Sender<StateChange>>>,
    /// Committed transactions and the jobs they carried (group-commit effectiveness).
    commits: AtomicU64,
    jobs: AtomicU64,
}

impl Hub {
    /// `(commits, jobs)` committed so far.
    pub(crate) fn counters(&self) -> (u64, u64) {
        (
            self.commits.load(Ordering::Relaxed),
            self.jobs.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn subscribe(&self, account: AccountId) -> broadcast::Receiver<StateChange> {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        senders
            .entry(account)
            .or_insert_with(|| broadcast::channel(SUBSCRIBE_CAPACITY).0)
            .subscribe()
    }

    fn publish(&self, notes: Notes) {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        for change in notes.into_state_changes() {
            let account = change.account;
            let Some(sender) = senders.get(&account) else {
                continue;
            };
            if sender.send(change).is_err() {
                // Nobody listens any more; drop the channel (a new subscribe recreates it).
                senders.remove(&account);
            }
        }
    }
}

/// The writer thread's loop; ends when every sender is gone.
pub(crate) fn run(conn: Connection, jobs: Receiver<Job>, hub: std::sync::Arc<Hub>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(8);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, batch, &hub);
    }
}

fn run_batch(conn: &Connection, batch: Vec<Job>, hub: &Hub) {
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = db_err(e);
        tracing::warn!(error = %err, "store: cannot begin write transaction");
        // Run nothing; every job hears the error. Jobs are dropped unrun, so answer them
        // through a transaction-less path: their oneshot senders drop, callers see an error.
        drop(batch);
        return;
    }
    let mut notes = Notes::default();
    let mut broken: Option<StoreError> = None;
    for job in batch {
        if broken.is_some() {
            // The transaction is unusable; dropping the job makes its caller see an error.
            continue;
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            broken = Some(db_err(e));
            continue;
        }
        let mut tx = Tx {
            conn,
            notes: Notes::default(),
        };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut tx)));
        let job_notes = tx.notes;
        let ok = match outcome {
            Ok((ok, reply)) => {
                replies.push(reply);
                ok
            }
            Err(_) => {
                tracing::error!("store: write job panicked; its changes are rolled back");
                false
            }
        };
        let end = if ok {
            notes.merge(job_notes);
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = end {
            broken = Some(db_err(e));
        }
    }
    let committed = match broken {
        Some(err) => Err(err),
        None => conn.execute_batch("COMMIT").map_err(db_err),
    };
    match committed {
        Ok(()) => {
            hub.commits.fetch_add(1, Ordering::Relaxed);
            hub.jobs.fetch_add(replies.len() as u64, Ordering::Relaxed);
            // Publish first: a caller that got its answer may subscribe next and must not
            // then receive changes it already knows about.
            hub.publish(notes);
            for reply in replies {
                reply(Ok(()));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "store: write transaction failed");
            let _ = conn.execute_batch("ROLLBACK");
            for reply in replies {
                reply(Err(err.clone()));
            }
        }
    }
}
