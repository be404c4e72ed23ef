//! Replay of spooled messages into the store, each exactly once (see the module doc of
//! [`crate::spool`] for why the blob hash is the idempotency key).

use super::{Spool, SpoolError, SpooledMessage};
use crate::{Recipient, inbox_email, inbox_of, resolve_recipient, summarize};
use bulwark_store::{
    AccountId, BlobHash, MailboxId, NewQueued, QueueId, RcptStatus, Store, StoreError, now_unix,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// How long a queue entry made at replay may try (and then bounce), like SMTP acceptance.
pub const REPLAY_QUEUE_LIFETIME_SECS: i64 = 5 * 24 * 3600;
/// The error recorded for a spooled recipient that is unknown at replay
/// (RFC 3463 X.1.1: bad destination mailbox address).
pub const UNKNOWN_AT_REPLAY: &str =
    "550 5.1.1 no such user here (found when the spooled message was replayed)";

/// What one replay pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Messages fully replayed and removed from the spool.
    pub replayed: u64,
    /// Local deliveries skipped because the store already had them (crash mid-replay).
    pub already_delivered: u64,
    /// Queue entries made (remote recipients and DSNs for unknown ones).
    pub queued: u64,
    /// Recipients unknown at replay (reported to the sender by DSN).
    pub unknown_recipients: u64,
    /// Damaged files set aside.
    pub set_aside: u64,
}

/// Why a pass stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

impl Spool {
    /// Replays every waiting message, oldest first. Stops at the first `Unavailable`
    /// (the rest waits for the next pass); other store errors skip that message for now.
    pub async fn replay(&self, store: &dyn Store) -> Result<ReplayReport, ReplayError> {
        let mut report = ReplayReport::default();
        let mut lookups = Lookups::default();
        let files = self.waiting()?;
        if !files.is_empty() {
            tracing::info!(messages = files.len(), "spool: replaying");
        }
        for path in files {
            let bytes = match tokio::fs::read(&path).await {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(SpoolError::Io { path, source }.into()),
            };
            let message = match SpooledMessage::decode(&bytes) {
                Ok(message) => message,
                Err(reason) => {
                    self.set_aside(&path, &reason);
                    report.set_aside += 1;
                    continue;
                }
            };
            match replay_one(store, &message, &mut lookups, &mut report).await {
                Ok(()) => {
                    self.remove(&path)?;
                    report.replayed += 1;
                }
                Err(e @ StoreError::Unavailable(_)) => {
                    self.note_store_unavailable();
                    return Err(e.into());
                }
                Err(e) => {
                    tracing::error!(
                        id = %message.envelope.id,
                        file = %file_name(&path),
                        error = %e,
                        "spool: replay of a message failed; kept for the next pass"
                    );
                }
            }
        }
        if report.replayed > 0 {
            tracing::info!(?report, "spool: replay finished");
        }
        Ok(report)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Does the store already hold exactly these bytes (the step committed earlier)?
async fn already_stored(store: &dyn Store, bytes: &[u8]) -> Result<bool, StoreError> {
    Ok(store.blob_get(&BlobHash::of(bytes)).await?.is_some())
}

/// Recipient and INBOX lookups of one pass (a spool is typically many messages to the same
/// few recipients; the directory does not change meaningfully within a pass).
#[derive(Default)]
struct Lookups {
    recipients: HashMap<String, Recipient>,
    inboxes: HashMap<AccountId, MailboxId>,
}

impl Lookups {
    async fn recipient(
        &mut self,
        store: &dyn Store,
        address: &str,
    ) -> Result<Recipient, StoreError> {
        let key = address.to_lowercase();
        if let Some(known) = self.recipients.get(&key) {
            return Ok(known.clone());
        }
        let resolved = resolve_recipient(store, address).await?;
        self.recipients.insert(key, resolved.clone());
        Ok(resolved)
    }

    async fn inbox(
        &mut self,
        store: &dyn Store,
        account: AccountId,
    ) -> Result<MailboxId, StoreError> {
        if let Some(inbox) = self.inboxes.get(&account) {
            return Ok(*inbox);
        }
        let inbox = inbox_of(store, account).await?;
        self.inboxes.insert(account, inbox);
        Ok(inbox)
    }
}

async fn replay_one(
    store: &dyn Store,
    message: &SpooledMessage,
    lookups: &mut Lookups,
    report: &mut ReplayReport,
) -> Result<(), StoreError> {
    let envelope = &message.envelope;
    let mut accounts: Vec<AccountId> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for address in &envelope.local {
        match lookups.recipient(store, address).await? {
            Recipient::Local(account) => accounts.push(account),
            Recipient::UnknownUser | Recipient::Remote => unknown.push(address.clone()),
        }
    }
    accounts.sort();
    accounts.dedup();
    if !accounts.is_empty() {
        let local = message.local_message();
        if already_stored(store, &local).await? {
            report.already_delivered += 1;
        } else {
            // Like `deliver_local`, with the pass's INBOX lookups: one transaction.
            let raw = Arc::new(local);
            let summary = summarize(&raw);
            let mut deliveries = Vec::with_capacity(accounts.len());
            for account in accounts {
                let inbox = lookups.inbox(store, account).await?;
                deliveries.push((
                    account,
                    inbox_email(inbox, &raw, &summary, envelope.received_at),
                ));
            }
            store.deliver(deliveries).await?;
        }
    }
    // One queue entry carries the remote recipients and the unknown ones (already failed),
    // so the queue worker relays the first and sends one DSN for the second.
    if envelope.remote.is_empty() && unknown.is_empty() {
        return Ok(());
    }
    report.unknown_recipients += unknown.len() as u64;
    let relay = Arc::new(message.relay_message());
    let hash = BlobHash::of(&relay);
    let id = if already_stored(store, &relay).await? {
        // Queued before a crash: finish marking its unknown recipients if that was lost.
        match store
            .queue_list()
            .await?
            .into_iter()
            .find(|q| q.blob == hash)
        {
            Some(entry) => entry.id,
            None => return Ok(()),
        }
    } else {
        let mut recipients = envelope.remote.clone();
        recipients.extend(unknown.iter().cloned());
        let id = store
            .queue_enqueue(NewQueued {
                sender: envelope.sender.clone(),
                recipients,
                raw: relay,
                expires_at: now_unix().saturating_add(REPLAY_QUEUE_LIFETIME_SECS),
            })
            .await?;
        report.queued += 1;
        id
    };
    if !unknown.is_empty() {
        mark_failed(store, id, &unknown).await?;
    }
    Ok(())
}

/// Marks the unknown recipients of the entry failed, so the worker bounces them.
async fn mark_failed(store: &dyn Store, id: QueueId, unknown: &[String]) -> Result<(), StoreError> {
    let Some(mut entry) = store.queue_get(id).await? else {
        return Ok(());
    };
    if entry.lease_owner.is_some() {
        // A worker holds it already; it will try them and bounce them itself.
        return Ok(());
    }
    let mut changed = false;
    for rcpt in &mut entry.recipients {
        if rcpt.status == RcptStatus::Pending
            && unknown
                .iter()
                .any(|u| u.eq_ignore_ascii_case(&rcpt.address))
        {
            rcpt.status = RcptStatus::Failed;
            rcpt.last_error = Some(UNKNOWN_AT_REPLAY.to_string());
            changed = true;
        }
    }
    if changed {
        store.queue_update(&entry).await?;
    }
    Ok(())
}
