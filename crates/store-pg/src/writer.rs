//! Group commit of deliveries on PostgreSQL (the embedded store's writer thread does the
//! same for SQLite): concurrent [`Store::accept`](bulwark_store::Store::accept) calls share
//! one transaction, so one account lock, one NOTIFY and one WAL flush serve many messages.
//! Each caller still gets its answer only after that transaction committed.
//!
//! * A few writer tasks, each owning a queue; an acceptance goes to the writer of its
//!   lowest account id, so one account's deliveries on this node meet in one writer and
//!   never wait for each other's row locks.
//! * A writer takes what queued up while its last transaction ran (at most [`MAX_JOBS`]
//!   acceptances, [`MAX_BYTES`] of mail): under light load a batch is one message and adds
//!   no latency; under heavy load batches grow by themselves.
//! * Every account of the batch is locked first, in id order, as one acceptance does, so
//!   batches on other nodes cannot deadlock with it.
//! * A batch that fails for a reason of one acceptance (a retried submission's conflict,
//!   an invalid address) rolled back as a whole; its acceptances then run one by one, so
//!   each gets its own answer. A store outage fails the whole batch (nothing runs again:
//!   an answer lost with the connection may hide a commit).

use crate::Shared;
use crate::pool::{self, Tx};
use bulwark_store::sqlite::CommitStats;
use bulwark_store::{Acceptance, Accepted, AccountId, Result, StoreError};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Writer tasks (each holds at most one pooled connection while it commits).
const WRITERS: usize = 2;
/// Acceptances per transaction at most.
pub(crate) const MAX_JOBS: usize = 64;
/// Bytes of mail per transaction at most (a batch holds them in memory until commit).
const MAX_BYTES: usize = 16 << 20;
/// Acceptances waiting for one writer before callers wait to queue theirs.
const QUEUE: usize = 1024;

struct Job {
    acceptance: Acceptance,
    reply: oneshot::Sender<Result<Accepted>>,
}

/// The writer tasks' queues. The tasks end when this is dropped (after their last batch).
pub(crate) struct Writers {
    queues: Vec<mpsc::Sender<Job>>,
    stats: Arc<Stats>,
}

/// Transactions the writers committed and acceptances they carried.
#[derive(Default)]
struct Stats {
    commits: AtomicU64,
    jobs: AtomicU64,
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

    /// Batches committed and acceptances they carried since start (`jobs / commits` is the
    /// average batch size; failed batches count, their one-by-one reruns too).
    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            jobs: self.stats.jobs.load(Ordering::Relaxed),
        }
    }

    /// Commits `acceptance` in the next batch of its writer; answers after the commit.
    pub(crate) async fn accept(&self, acceptance: Acceptance) -> Result<Accepted> {
        let lowest = accounts(&acceptance).next().map_or(0, |a| a.0);
        let index = usize::try_from(lowest.rem_euclid(self.queues.len() as i64)).unwrap_or(0);
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the store's writer has stopped".into());
        let queue = self.queues.get(index).ok_or_else(gone)?;
        queue
            .send(Job { acceptance, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Accounts an acceptance locks, in id order.
fn accounts(acceptance: &Acceptance) -> impl Iterator<Item = AccountId> {
    acceptance
        .local
        .iter()
        .map(|(a, _)| *a)
        .chain(acceptance.items.iter().map(|(a, _)| *a))
        .collect::<BTreeSet<_>>()
        .into_iter()
}

fn size(acceptance: &Acceptance) -> usize {
    acceptance.local.iter().map(|(_, e)| e.raw.len()).sum()
}

async fn run(shared: Arc<Shared>, stats: Arc<Stats>, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut bytes = size(&first.acceptance);
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS && bytes < MAX_BYTES {
            match queue.try_recv() {
                Ok(job) => {
                    bytes += size(&job.acceptance);
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
            let result = accept_one(shared, &job.acceptance).await;
            let _ = job.reply.send(result);
        }
        return;
    }
    let acceptances: Vec<&Acceptance> = batch.iter().map(|j| &j.acceptance).collect();
    let outcome = write_tx!(shared, |tx| accept_all(tx, &acceptances).await);
    match outcome {
        Ok(accepted) => {
            for (job, accepted) in batch.into_iter().zip(accepted) {
                let _ = job.reply.send(Ok(accepted));
            }
        }
        Err(e) if matches!(e, StoreError::Unavailable(_)) && !pool::is_conflict(&e) => {
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, jobs = batch.len(), "store-pg: a batch failed; committing its deliveries one by one");
            for job in batch {
                let result = accept_one(shared, &job.acceptance).await;
                let _ = job.reply.send(result);
            }
        }
    }
}

async fn accept_one(shared: &Shared, acceptance: &Acceptance) -> Result<Accepted> {
    write_tx!(shared, |tx| {
        tx.expected_rows = acceptance.local.len();
        bulwark_store::domain::accept(tx, acceptance).await
    })
}

/// Every acceptance of a batch in the caller's transaction, all accounts locked first.
async fn accept_all(tx: &mut Tx<'_>, acceptances: &[&Acceptance]) -> Result<Vec<Accepted>> {
    tx.expected_rows = acceptances.iter().map(|a| a.local.len()).sum();
    let all: BTreeSet<AccountId> = acceptances.iter().flat_map(|a| accounts(a)).collect();
    for account in all {
        tx.lock_account(account).await?;
    }
    let refs: Vec<(i64, String)> = acceptances
        .iter()
        .flat_map(|a| a.local.iter())
        .flat_map(|(account, email)| {
            bulwark_store::rules::thread_ref_ids(&email.summary)
                .into_iter()
                .map(move |id| (account.0, id))
        })
        .collect();
    if !refs.is_empty() {
        tx.prefetch_thread_refs(refs).await?;
    }
    let mut out = Vec::with_capacity(acceptances.len());
    for acceptance in acceptances {
        out.push(bulwark_store::domain::accept(tx, acceptance).await?);
    }
    Ok(out)
}
