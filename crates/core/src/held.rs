//! Mail held for later (RFC 4865 FUTURERELEASE, from SMTP submission and JMAP
//! EmailSubmission `sendAt`, RFC 8621 §7; undo send is a short hold the client may cancel).
//!
//! A held message is a `pending` record in one of the account's hold collections
//! ([`HOLD_COLLECTIONS`]: JMAP's `submissions`, SMTP's `smtp-holds`) that owns the message's
//! blob; nothing else about it lives on a node. Every node runs one [`Held`]: a timer per
//! pending record it knows of (read from the store at start, learned from other nodes
//! through the change feed, or scheduled by the protocol that made it) that releases it at
//! its time through the one delivery pipeline, committing the record's change to `final`
//! in the same transaction with compare-and-set on its version: when two nodes' timers
//! fire, or a cancel races the release, exactly one wins.
//!
//! The record is JSON with at least the fields of [`HeldRecord`]; a protocol may keep more
//! in it (JMAP's identity and email ids), and the release keeps those untouched.

use crate::{Pipeline, Recipient};
use bulwark_store::collections::names::{SMTP_HOLDS, SUBMISSIONS};
use bulwark_store::{AccountId, BlobHash, Expect, ItemWrite, Store, StoreError, now_unix};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

/// The collections whose pending records [`Held`] releases.
pub const HOLD_COLLECTIONS: [&str; 2] = [SUBMISSIONS, SMTP_HOLDS];
/// Longest hold (RFC 4865 `max-future-release-interval`, JMAP `maxDelayedSend`): 30 days.
pub const MAX_HOLD_SECS: i64 = 30 * 24 * 3600;
/// Delay before a release that failed on a store error is tried again.
const RETRY_AFTER_SECS: i64 = 30;
/// Longest sleep of the timer (it re-reads the earliest due time after it).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// RFC 8621 §7 `undoStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UndoStatus {
    Pending,
    #[default]
    Final,
    Canceled,
}

impl UndoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UndoStatus::Pending => "pending",
            UndoStatus::Final => "final",
            UndoStatus::Canceled => "canceled",
        }
    }
}

/// The part of a hold record the release reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeldRecord {
    pub id: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// When it is (or was) released, unix seconds.
    pub send_at: i64,
    /// recipient → (SMTP reply, delivered: `yes`/`queued`/`no`).
    pub delivery: Vec<(String, String, String)>,
    #[serde(default)]
    pub undo_status: UndoStatus,
    /// While pending: the blob of the message to send, owned by the record.
    #[serde(default)]
    pub held: Option<BlobHash>,
}

impl HeldRecord {
    /// A new pending record for `rcpt_to`, released at `send_at`.
    pub fn pending(
        id: String,
        mail_from: String,
        rcpt_to: Vec<String>,
        send_at: i64,
    ) -> HeldRecord {
        let delivery = every_recipient(&rcpt_to, "250 2.0.0 held for later delivery", "queued");
        HeldRecord {
            id,
            mail_from,
            rcpt_to,
            send_at,
            delivery,
            undo_status: UndoStatus::Pending,
            held: None,
        }
    }

    /// The record as the JSON object [`hold`] stores.
    pub fn into_map(self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }
}

/// The same delivery status for every recipient.
pub fn every_recipient(
    rcpt_to: &[String],
    reply: &str,
    delivered: &str,
) -> Vec<(String, String, String)> {
    rcpt_to
        .iter()
        .map(|r| (r.clone(), reply.to_string(), delivered.to_string()))
        .collect()
}

/// Each recipient's delivery status at acceptance.
pub fn delivery_of(resolved: &[(String, Recipient)]) -> Vec<(String, String, String)> {
    resolved
        .iter()
        .map(|(r, found)| match found {
            Recipient::Local(_) => (
                r.clone(),
                "250 2.0.0 delivered locally".to_string(),
                "yes".to_string(),
            ),
            _ => (
                r.clone(),
                "250 2.0.0 queued".to_string(),
                "queued".to_string(),
            ),
        })
        .collect()
}

/// Writes a pending record for `raw` (the message as it will be sent) in `collection`,
/// with `Expect::Absent` on `record.id` so a client retrying gets no second hold:
/// `Ok(false)` when that id was held before. The record owns the message's blob.
pub async fn hold(
    store: &dyn Store,
    account: AccountId,
    collection: &str,
    mut record: Map<String, Value>,
    raw: &[u8],
) -> Result<bool, StoreError> {
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| StoreError::Invalid("a hold record needs an id".into()))?;
    let hash = store.blob_put(account, raw).await?;
    record.insert(
        "undo_status".into(),
        Value::from(UndoStatus::Pending.as_str()),
    );
    record.insert("held".into(), Value::from(hash.0.clone()));
    let value = serde_json::to_string(&record).map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut write = ItemWrite::put(collection, &id, Expect::Absent, value);
    write.blobs = vec![hash];
    match store.collection_write(account, vec![write]).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

type Due = (i64, AccountId, &'static str, String);

/// The hold timers of one node.
#[derive(Default)]
pub struct Held {
    due: Mutex<BTreeSet<Due>>,
    wake: Notify,
    pipeline: std::sync::OnceLock<Weak<Pipeline>>,
}

impl Held {
    /// Starts the timers of `pipeline`'s node (until the pipeline is dropped): what is
    /// pending in the store already (held before a restart, or by other nodes) and what
    /// other nodes hold or cancel later.
    pub fn start(pipeline: &Arc<Pipeline>) -> Arc<Held> {
        let held = Arc::new(Held::default());
        let _ = held.pipeline.set(Arc::downgrade(pipeline));
        let store = pipeline.store().clone();
        let scanned = Arc::downgrade(&held);
        let scan_store = store.clone();
        tokio::spawn(async move {
            let Ok(accounts) = scan_store.account_list().await else {
                tracing::warn!("held mail: cannot list accounts; only new holds are timed");
                return;
            };
            for account in accounts {
                let Some(held) = scanned.upgrade() else {
                    return;
                };
                held.rescan(scan_store.as_ref(), account.id).await;
            }
        });
        let watched = Arc::downgrade(&held);
        let mut rx = store.subscribe_all();
        tokio::spawn(async move {
            loop {
                let change = rx.recv().await;
                let Some(held) = watched.upgrade() else {
                    return;
                };
                match change {
                    Ok(c)
                        if !c.local
                            && c.collections.as_ref().is_none_or(|n| {
                                n.iter().any(|n| HOLD_COLLECTIONS.contains(&n.as_str()))
                            }) =>
                    {
                        held.rescan(store.as_ref(), c.account).await;
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => rx = store.subscribe_all(),
                }
            }
        });
        tokio::spawn(timer(Arc::downgrade(&held)));
        held
    }

    /// Releases record `id` of `collection` (one of [`HOLD_COLLECTIONS`]) at `at`.
    pub fn schedule(&self, account: AccountId, collection: &str, id: &str, at: i64) {
        let Some(collection) = HOLD_COLLECTIONS.iter().find(|c| **c == collection) else {
            return;
        };
        self.due.lock().unwrap_or_else(|e| e.into_inner()).insert((
            at,
            account,
            collection,
            id.to_string(),
        ));
        self.wake.notify_one();
    }

    /// Times every pending record of the account.
    async fn rescan(&self, store: &dyn Store, account: AccountId) {
        for collection in HOLD_COLLECTIONS {
            let Ok(items) = store.collection_get(account, collection, None).await else {
                continue;
            };
            for item in items {
                if let Ok(r) = serde_json::from_str::<HeldRecord>(&item.value)
                    && r.undo_status == UndoStatus::Pending
                {
                    self.schedule(account, collection, &r.id, r.send_at);
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn timer(held: Weak<Held>) {
    loop {
        let Some(h) = held.upgrade() else { return };
        let now = now_ms();
        let due: Vec<Due> = {
            let mut set = h.due.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            while set.first().is_some_and(|first| first.0 * 1000 <= now) {
                out.extend(set.pop_first());
            }
            out
        };
        let Some(pipeline) = h.pipeline.get().and_then(Weak::upgrade) else {
            return;
        };
        for (_, account, collection, id) in due {
            let pipeline = pipeline.clone();
            let retry = held.clone();
            tokio::spawn(async move {
                if let Err(e) = release(&pipeline, account, collection, &id).await {
                    tracing::warn!(%account, collection, hold = %id, error = %e, "held mail not released; retrying");
                    if let Some(h) = retry.upgrade() {
                        h.schedule(account, collection, &id, now_unix() + RETRY_AFTER_SECS);
                    }
                }
            });
        }
        drop(pipeline);
        let next = h
            .due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .map(|e| e.0);
        let sleep = match next {
            Some(at) => {
                Duration::from_millis(u64::try_from(at * 1000 - now).unwrap_or(0)).min(MAX_SLEEP)
            }
            None => MAX_SLEEP,
        };
        let woken = {
            let h = h.clone();
            async move { h.wake.notified().await }
        };
        drop(h);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = woken => {}
        }
    }
}

/// Puts the release's figures into the stored record, keeping the fields it does not know.
fn merged(mut stored: Map<String, Value>, record: &HeldRecord) -> Result<String, StoreError> {
    if let Ok(Value::Object(fields)) = serde_json::to_value(record) {
        stored.extend(fields);
    }
    serde_json::to_string(&stored).map_err(|e| StoreError::Internal(e.to_string()))
}

/// Sends one held message if it is still pending and due.
async fn release(
    pipeline: &Arc<Pipeline>,
    account: AccountId,
    collection: &str,
    id: &str,
) -> Result<(), StoreError> {
    let store = pipeline.store().clone();
    let items = store
        .collection_get(account, collection, Some(&[id.to_string()]))
        .await?;
    let Some(item) = items.into_iter().next() else {
        return Ok(()); // destroyed
    };
    let Ok(Value::Object(stored)) = serde_json::from_str::<Value>(&item.value) else {
        return Ok(());
    };
    let Ok(mut record) = serde_json::from_value::<HeldRecord>(Value::Object(stored.clone())) else {
        return Ok(());
    };
    if record.undo_status != UndoStatus::Pending {
        return Ok(()); // canceled, or released by another node
    }
    if record.send_at > now_unix() {
        return Ok(()); // moved later; its own timer is set
    }
    let raw = match &record.held {
        Some(hash) => store.blob_get(hash).await?,
        None => None,
    };
    // Recipients are resolved again: an account may have gone meanwhile.
    let mut resolved = Vec::new();
    let mut unknown = Vec::new();
    for r in &record.rcpt_to {
        match crate::resolve_recipient(store.as_ref(), r).await? {
            Recipient::UnknownUser => unknown.push(r.clone()),
            found => resolved.push((r.clone(), found)),
        }
    }
    record.undo_status = UndoStatus::Final;
    record.held = None;
    record.delivery = delivery_of(&resolved);
    record.delivery.extend(
        unknown
            .into_iter()
            .map(|r| (r, "550 5.1.1 no such user".to_string(), "no".to_string())),
    );
    let Some(raw) = raw.filter(|_| !resolved.is_empty()) else {
        // Nothing to send (no recipient left, or the blob is gone): the record says so.
        if record.delivery.is_empty() {
            record.delivery = every_recipient(&record.rcpt_to, "451 4.3.0 message lost", "no");
        }
        let value = merged(stored, &record)?;
        let write = ItemWrite::put(collection, id, Expect::Version(item.version), value);
        return match store.collection_write(account, vec![write]).await {
            Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        };
    };
    let value = merged(stored, &record)?;
    let mut message = crate::Message::new(&record.mail_from, Vec::new(), Arc::new(raw));
    message.received_at = now_unix();
    message.resolved = resolved;
    message.records = vec![(
        account,
        ItemWrite::put(collection, id, Expect::Version(item.version), value),
    )];
    match pipeline.deliver(message).await {
        Ok(_) => {
            tracing::info!(%account, collection, hold = %id, "held mail released");
            Ok(())
        }
        // Canceled or released elsewhere between our read and our commit.
        Err(crate::DeliveryError::AlreadyAccepted) => Ok(()),
        Err(crate::DeliveryError::Store(e)) => Err(e),
    }
}
