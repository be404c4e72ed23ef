//! Group commit on PostgreSQL (the embedded store's writer thread does the same for SQLite):
//! concurrent deliveries ([`Store::accept`](bulwark_store::Store::accept)) and mail writes of
//! IMAP and JMAP (append, keywords, moves, expunge) share one transaction, so one account
//! lock, one NOTIFY and one WAL flush serve many of them. Each caller still gets its answer
//! only after that transaction committed.
//!
//! * A few writer tasks, each owning a queue; a write goes to the writer of its lowest
//!   account id, so one account's writes on this node meet in one writer and never wait
//!   for each other's row locks.
//! * A writer takes what queued up while its last transaction ran (at most [`MAX_JOBS`]
//!   writes, [`MAX_BYTES`] of mail): under light load a batch is one write and adds no
//!   latency; under heavy load batches grow by themselves.
//! * Every account of the batch is locked first, in id order, as one write does, so
//!   batches on other nodes cannot deadlock with it. The writes run in arrival order.
//! * A batch that fails for a reason of one write (a retried submission's conflict, a
//!   mailbox that is gone) rolled back as a whole; its writes then run one by one, so each
//!   gets its own answer. A store outage fails the whole batch (nothing runs again: an
//!   answer lost with the connection may hide a commit).
//! * Collection writes (compare-and-set by design, conflicts are normal answers) are not
//!   batched: a conflict would roll the batch back.

use crate::Shared;
use crate::emails::{self, NewMemberships};
use crate::pool::{self, Tx};
use bulwark_store::sqlite::CommitStats;
use bulwark_store::{
    Acceptance, Accepted, AccountId, Appended, KeywordResult, KeywordUpdate, MailboxId,
    MembershipUpdate, ModSeq, NewEmail, Result, StoreError, Uid,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Writer tasks (each holds at most one pooled connection while it commits). Two: one
/// fills its next batch while the other commits; more only made batches smaller.
const WRITERS: usize = 2;
/// Writes per transaction at most.
pub(crate) const MAX_JOBS: usize = 64;
/// Bytes of mail per transaction at most (a batch holds them in memory until commit).
const MAX_BYTES: usize = 16 << 20;
/// Writes waiting for one writer before callers wait to queue theirs.
const QUEUE: usize = 1024;

/// One batched write: a [`bulwark_store::Store`] call's arguments.
pub(crate) enum Write {
    Accept(Acceptance),
    Append(AccountId, Vec<NewEmail>),
    Keywords(AccountId, Vec<KeywordUpdate>),
    Mailboxes(AccountId, Vec<MembershipUpdate>),
    Expunge(AccountId, MailboxId, Vec<Uid>),
}

/// The answer of one [`Write`].
pub(crate) enum Written {
    Accepted(Accepted),
    Appended(Vec<Appended>),
    Keywords(KeywordResult),
    Mailboxes(NewMemberships),
    Expunged(ModSeq),
}

impl Write {
    /// Accounts the write locks, in id order.
    fn accounts(&self) -> BTreeSet<AccountId> {
        match self {
            Write::Accept(a) => a
                .local
                .iter()
                .map(|(a, _)| *a)
                .chain(a.items.iter().map(|(a, _)| *a))
                .collect(),
            Write::Append(a, _)
            | Write::Keywords(a, _)
            | Write::Mailboxes(a, _)
            | Write::Expunge(a, _, _) => BTreeSet::from([*a]),
        }
    }

    /// Bytes of mail it carries.
    fn size(&self) -> usize {
        match self {
            Write::Accept(a) => a.local.iter().map(|(_, e)| e.raw.len()).sum(),
            Write::Append(_, new) => new.iter().map(|e| e.raw.len()).sum(),
            _ => 0,
        }
    }

    /// Email rows it inserts (how many ids the transaction takes at once).
    fn rows(&self) -> usize {
        match self {
            Write::Accept(a) => a.local.len(),
            Write::Append(_, new) => new.len(),
            _ => 0,
        }
    }

    async fn run(&self, tx: &mut Tx<'_>) -> Result<Written> {
        Ok(match self {
            Write::Accept(a) => Written::Accepted(bulwark_store::domain::accept(tx, a).await?),
            Write::Append(account, new) => {
                Written::Appended(emails::email_append(tx, *account, new).await?)
            }
            Write::Keywords(account, updates) => {
                Written::Keywords(emails::set_keywords(tx, *account, updates).await?)
            }
            Write::Mailboxes(account, updates) => {
                Written::Mailboxes(emails::set_mailboxes(tx, *account, updates).await?)
            }
            Write::Expunge(account, mailbox, uids) => {
                Written::Expunged(emails::mailbox_expunge(tx, *account, *mailbox, uids).await?)
            }
        })
    }
}

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Written>>,
}

/// The writer tasks' queues. The tasks end when this is dropped (after their last batch).
pub(crate) struct Writers {
    queues: Vec<mpsc::Sender<Job>>,
    stats: Arc<Stats>,
}

/// Transactions the writers committed and writes they carried.
#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    jobs: AtomicU64,
}

/// The answer of a write was of another kind than the write (a bug, not a condition).
fn mismatched() -> StoreError {
    StoreError::Internal("the store's writer answered with another kind of result".into())
}

impl Writers {
    /// Starts the writer tasks (inside a tokio runtime).
    pub(crate) fn start(shared: Arc<Shared>) -> Writers {
        let stats = Arc::new(Stats::default());
        let queues = (0..WRITERS)
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(run(shared.clone(), stats.clone(), rx));
                tx
            })
            .collect();
        Writers { queues, stats }
    }

    /// Batches committed and writes they carried since start (`jobs / commits` is the
    /// average batch size; failed batches count, their one-by-one reruns too).
    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            jobs: self.stats.jobs.load(Ordering::Relaxed),
        }
    }

    /// Commits `write` in the next batch of its writer; answers after the commit.
    pub(crate) async fn submit(&self, write: Write) -> Result<Written> {
        let lowest = write.accounts().first().map_or(0, |a| a.0);
        let index = usize::try_from(lowest.rem_euclid(self.queues.len() as i64)).unwrap_or(0);
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the store's writer has stopped".into());
        let queue = self.queues.get(index).ok_or_else(gone)?;
        queue.send(Job { write, reply }).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    pub(crate) async fn accept(&self, acceptance: Acceptance) -> Result<Accepted> {
        match self.submit(Write::Accept(acceptance)).await? {
            Written::Accepted(a) => Ok(a),
            _ => Err(mismatched()),
        }
    }

    pub(crate) async fn append(
        &self,
        account: AccountId,
        new: Vec<NewEmail>,
    ) -> Result<Vec<Appended>> {
        match self.submit(Write::Append(account, new)).await? {
            Written::Appended(a) => Ok(a),
            _ => Err(mismatched()),
        }
    }

    pub(crate) async fn keywords(
        &self,
        account: AccountId,
        updates: Vec<KeywordUpdate>,
    ) -> Result<KeywordResult> {
        match self.submit(Write::Keywords(account, updates)).await? {
            Written::Keywords(k) => Ok(k),
            _ => Err(mismatched()),
        }
    }

    pub(crate) async fn mailboxes(
        &self,
        account: AccountId,
        updates: Vec<MembershipUpdate>,
    ) -> Result<NewMemberships> {
        match self.submit(Write::Mailboxes(account, updates)).await? {
            Written::Mailboxes(m) => Ok(m),
            _ => Err(mismatched()),
        }
    }

    pub(crate) async fn expunge(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: Vec<Uid>,
    ) -> Result<ModSeq> {
        match self.submit(Write::Expunge(account, mailbox, uids)).await? {
            Written::Expunged(m) => Ok(m),
            _ => Err(mismatched()),
        }
    }
}

async fn run(shared: Arc<Shared>, stats: Arc<Stats>, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut bytes = first.write.size();
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS && bytes < MAX_BYTES {
            match queue.try_recv() {
                Ok(job) => {
                    bytes += job.write.size();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        commit(&shared, batch).await;
    }
}

/// Commits one batch and answers every job in it.
async fn commit(shared: &Shared, batch: Vec<Job>) {
    if batch.len() == 1 {
        for job in batch {
            let result = run_one(shared, &job.write).await;
            let _ = job.reply.send(result);
        }
        return;
    }
    let writes: Vec<&Write> = batch.iter().map(|j| &j.write).collect();
    let outcome = write_tx!(shared, |tx| run_all(tx, &writes).await);
    match outcome {
        Ok(written) => {
            for (job, written) in batch.into_iter().zip(written) {
                let _ = job.reply.send(Ok(written));
            }
        }
        Err(e) if matches!(e, StoreError::Unavailable(_)) && !pool::is_conflict(&e) => {
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, jobs = batch.len(), "store-pg: a batch failed; committing its writes one by one");
            for job in batch {
                let result = run_one(shared, &job.write).await;
                let _ = job.reply.send(result);
            }
        }
    }
}

async fn run_one(shared: &Shared, write: &Write) -> Result<Written> {
    write_tx!(shared, |tx| {
        tx.expected_rows = write.rows();
        write.run(tx).await
    })
}

/// Every write of a batch in the caller's transaction, all accounts locked first.
async fn run_all(tx: &mut Tx<'_>, writes: &[&Write]) -> Result<Vec<Written>> {
    tx.expected_rows = writes.iter().map(|w| w.rows()).sum();
    let all: BTreeSet<AccountId> = writes.iter().flat_map(|w| w.accounts()).collect();
    for account in all {
        tx.lock_account(account).await?;
    }
    let refs: Vec<(i64, String)> = writes
        .iter()
        .flat_map(|w| match w {
            Write::Accept(a) => a.local.iter().map(|(a, e)| (*a, e)).collect::<Vec<_>>(),
            Write::Append(a, new) => new.iter().map(|e| (*a, e)).collect(),
            _ => Vec::new(),
        })
        .flat_map(|(account, email)| {
            bulwark_store::rules::thread_ref_ids(&email.summary)
                .into_iter()
                .map(move |id| (account.0, id))
        })
        .collect();
    if !refs.is_empty() {
        tx.prefetch_thread_refs(refs).await?;
    }
    let mut out = Vec::with_capacity(writes.len());
    for write in writes {
        out.push(write.run(tx).await?);
    }
    Ok(out)
}
