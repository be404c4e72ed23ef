//! Replay of spooled messages into the store, each exactly once, through the delivery
//! [`Pipeline`] (its hooks judge each local copy, one commit per message).
//!
//! Exactly once (see the module doc of [`crate::spool`]): a message's local copies, its queue
//! entry and a **replay marker** are one [`Store::accept`]. The marker is a collection item
//! `(first local account, REPLAYED, hash of the local copy)` written with `Expect::Absent`, so
//! a replay after a crash between that commit and the file's removal finds it, the pipeline
//! answers [`DeliveryError::AlreadyAccepted`] and nothing is stored twice — inside the same
//! transaction, which also closes the old gap (the user deleting the copy and its blob being
//! dropped before the second replay). The markers are deleted once their files are gone (in batches). The
//! blob-hash checks stay in front of it: they cover a file whose first replay crashed before
//! markers existed, and a message without a local account (remote recipients only), whose
//! single write — the queue entry with its blob — is its own marker.

use super::{Spool, SpoolError, SpooledMessage};
use crate::{DeliveryError, Message, Outcome, Pipeline, Recipient, resolve_recipient};
use bulwark_store::{
    AccountId, BlobHash, Expect, ItemWrite, QueueId, RcptStatus, Store, StoreError, now_unix,
};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// How long a queue entry made at replay may try (and then bounce), like SMTP acceptance.
pub const REPLAY_QUEUE_LIFETIME_SECS: i64 = 5 * 24 * 3600;
/// The error recorded for a spooled recipient that is unknown at replay
/// (RFC 3463 X.1.1: bad destination mailbox address).
pub const UNKNOWN_AT_REPLAY: &str =
    "550 5.1.1 no such user here (found when the spooled message was replayed)";
/// Markers deleted per commit after a pass (well below the store's write limit per call).
const MARKER_BATCH: usize = 256;
/// The collection of replay markers (one item per message being replayed, removed with
/// its spool file).
pub const REPLAYED: &str = "spool-replayed";

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
    pub async fn replay(&self, pipeline: &Arc<Pipeline>) -> Result<ReplayReport, ReplayError> {
        let store = pipeline.store().as_ref();
        let mut report = ReplayReport::default();
        let mut lookups = Lookups::default();
        // Markers of messages whose files are gone, deleted in batches (one commit each).
        let mut spent: BTreeMap<AccountId, Vec<String>> = BTreeMap::new();
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
            match replay_one(pipeline, &message, &mut lookups, &mut report).await {
                Ok(marker) => {
                    self.remove(&path)?;
                    report.replayed += 1;
                    if let Some((account, key)) = marker {
                        let keys = spent.entry(account).or_default();
                        keys.push(key);
                        if keys.len() >= MARKER_BATCH {
                            remove_markers(store, account, std::mem::take(keys)).await;
                        }
                    }
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
        for (account, keys) in spent {
            remove_markers(store, account, keys).await;
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

/// Recipient lookups of one pass (a spool is typically many messages to the same few
/// recipients; the directory does not change meaningfully within a pass).
#[derive(Default)]
struct Lookups {
    recipients: HashMap<String, Recipient>,
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
}

/// The marker's key: the content address of the local copy (unique per message, see the
/// module doc of [`crate::spool`]).
fn marker_key(local: &[u8]) -> String {
    BlobHash::of(local).0
}

/// Deletes the markers of messages whose files are gone. A leftover (the store failed now,
/// or the pass stopped early) is harmless: the file that could be replayed again no longer
/// exists, and no other message has the same key.
async fn remove_markers(store: &dyn Store, account: AccountId, keys: Vec<String>) {
    if keys.is_empty() {
        return;
    }
    let writes = keys
        .iter()
        .map(|key| ItemWrite::delete(REPLAYED, key, Expect::Any))
        .collect();
    if let Err(e) = store.collection_write(account, writes).await {
        tracing::warn!(error = %e, markers = keys.len(), "spool: cannot remove replay markers");
    }
}

/// Replays one message; `Ok` carries the marker to delete once the file is removed.
async fn replay_one(
    pipeline: &Arc<Pipeline>,
    message: &SpooledMessage,
    lookups: &mut Lookups,
    report: &mut ReplayReport,
) -> Result<Option<(AccountId, String)>, StoreError> {
    let store = pipeline.store().as_ref();
    let envelope = &message.envelope;
    let mut local: Vec<(String, AccountId)> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for address in &envelope.local {
        match lookups.recipient(store, address).await? {
            Recipient::Local(account) => local.push((address.clone(), account)),
            Recipient::UnknownUser | Recipient::Remote => unknown.push(address.clone()),
        }
    }
    let local_raw = message.local_message();
    let relay = message.relay_message();
    let relay_hash = BlobHash::of(&relay);
    // Committed before a crash by a replay without markers: the blobs say so.
    let local_done = !local.is_empty() && already_stored(store, &local_raw).await?;
    let queue_wanted = !envelope.remote.is_empty() || !unknown.is_empty();
    let queue_done = queue_wanted && already_stored(store, &relay).await?;
    if local_done {
        report.already_delivered += 1;
    }
    let mut resolved: Vec<(String, Recipient)> = Vec::new();
    if !local_done {
        resolved.extend(
            local
                .iter()
                .map(|(a, id)| (a.clone(), Recipient::Local(*id))),
        );
    }
    if queue_wanted && !queue_done {
        // One queue entry carries the remote recipients and the unknown ones (marked failed
        // below), so the queue worker relays the first and sends one DSN for the second.
        resolved.extend(
            envelope
                .remote
                .iter()
                .chain(&unknown)
                .map(|a| (a.clone(), Recipient::Remote)),
        );
    }
    report.unknown_recipients += unknown.len() as u64;
    let marker = (!local_done)
        .then(|| local.iter().map(|(_, id)| *id).min())
        .flatten()
        .map(|account| (account, marker_key(&local_raw)));
    let mut queued = None;
    let mut refused: Vec<(String, String)> = Vec::new();
    if !resolved.is_empty() {
        let mut m = Message::new(&envelope.sender, Vec::new(), Arc::new(local_raw));
        m.resolved = resolved;
        m.remote_raw = Some(Arc::new(relay.clone()));
        m.received_at = envelope.received_at;
        // The entry may try for the replay lifetime from now, like a fresh acceptance.
        m.queue_lifetime_secs = Some(
            now_unix()
                .saturating_sub(envelope.received_at)
                .max(0)
                .saturating_add(REPLAY_QUEUE_LIFETIME_SECS),
        );
        if let Some((account, key)) = &marker {
            m.records = vec![(
                *account,
                ItemWrite::put(
                    REPLAYED,
                    key,
                    Expect::Absent,
                    serde_json::json!({ "id": envelope.id }).to_string(),
                ),
            )];
        }
        match pipeline.deliver(m).await {
            Ok(done) => {
                queued = done.queued;
                if queued.is_some() {
                    report.queued += 1;
                }
                for (address, outcome) in done.outcomes {
                    if let Outcome::Refused(why) = outcome {
                        refused.push((address, crate::dsn::refusal_diagnostic(&why)));
                    }
                }
            }
            Err(DeliveryError::AlreadyAccepted) => report.already_delivered += 1,
            Err(DeliveryError::Store(e)) => return Err(e),
        }
    }
    if !unknown.is_empty() {
        let id = match queued {
            Some(id) => Some(id),
            // Queued before a crash: finish marking its unknown recipients if that was lost.
            None => store
                .queue_list()
                .await?
                .into_iter()
                .find(|q| q.blob == relay_hash)
                .map(|q| q.id),
        };
        if let Some(id) = id {
            let failed: Vec<(String, String)> = unknown
                .iter()
                .map(|u| (u.clone(), UNKNOWN_AT_REPLAY.to_string()))
                .collect();
            mark_failed(store, id, &failed).await?;
        }
    }
    if !refused.is_empty() && !envelope.sender.is_empty() {
        bounce_refused(store, message, &relay, &refused).await;
    }
    Ok(marker)
}

/// Local recipients a hook refused at replay were accepted (`250`) during the outage, so the
/// sender is told (RFC 5321 §3.7): an entry with them already failed, bounced by the queue
/// worker (which knows our hostname). Best effort after the commit; logged if it fails.
async fn bounce_refused(
    store: &dyn Store,
    message: &SpooledMessage,
    relay: &[u8],
    refused: &[(String, String)],
) {
    let entry = bulwark_store::NewQueued {
        sender: message.envelope.sender.clone(),
        recipients: refused.iter().map(|(a, _)| a.clone()).collect(),
        raw: Arc::new(relay.to_vec()),
        expires_at: now_unix().saturating_add(REPLAY_QUEUE_LIFETIME_SECS),
    };
    let result = match store.queue_enqueue(entry).await {
        Ok(id) => mark_failed(store, id, refused).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::error!(id = %message.envelope.id, error = %e, "spool: cannot queue the bounce for recipients refused at replay");
    }
}

/// Marks these recipients of the entry failed with their errors, so the worker bounces them.
async fn mark_failed(
    store: &dyn Store,
    id: QueueId,
    failed: &[(String, String)],
) -> Result<(), StoreError> {
    let Some(mut entry) = store.queue_get(id).await? else {
        return Ok(());
    };
    if entry.lease_owner.is_some() {
        // A worker holds it already; it will try them and bounce them itself.
        return Ok(());
    }
    let mut changed = false;
    for rcpt in &mut entry.recipients {
        if rcpt.status != RcptStatus::Pending {
            continue;
        }
        if let Some((_, error)) = failed
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(&rcpt.address))
        {
            rcpt.status = RcptStatus::Failed;
            rcpt.last_error = Some(error.clone());
            changed = true;
        }
    }
    if changed {
        store.queue_update(&entry).await?;
    }
    Ok(())
}
