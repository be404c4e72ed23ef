//! Submissions held for later (RFC 4865 FUTURERELEASE in JMAP, RFC 8621 §7: send later, and
//! undo send as a short hold the client may cancel).
//!
//! A held submission is a `pending` record in the account's `submissions` collection that
//! owns the message's blob; nothing else about it lives on a node. Every node keeps a timer
//! per pending record it knows of (read from the store at start, learned from other nodes
//! through the change feed) and releases it at its time through the one delivery pipeline,
//! committing the record's change to `final` in the same transaction with compare-and-set on
//! its version: when two nodes' timers fire, or a cancel races the release, exactly one wins.

use crate::JmapServer;
use crate::submission::{SubmissionRecord, UndoStatus};
use bulwark_core::Recipient;
use bulwark_store::collections::names::SUBMISSIONS;
use bulwark_store::{AccountId, Expect, ItemWrite, now_unix};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;

/// Delay before a release that failed on a store error is tried again.
const RETRY_AFTER_SECS: i64 = 30;
/// Longest sleep of the timer (it re-reads the earliest due time after it).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// The timers of one node.
#[derive(Default)]
pub struct Held {
    due: Mutex<BTreeSet<(i64, AccountId, String)>>,
    wake: Notify,
}

impl Held {
    /// Releases submission `id` of `account` at `at` (unix seconds).
    pub fn schedule(&self, account: AccountId, id: &str, at: i64) {
        self.due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((at, account, id.to_string()));
        self.wake.notify_one();
    }

    /// Starts the timer and the watchers for `server` (until the server is dropped).
    pub fn start(server: &Arc<JmapServer>) {
        let held = server.held();
        let weak = Arc::downgrade(server);
        // What is pending in the store already (held before a restart, or by other nodes).
        let scan = weak.clone();
        let scanned = held.clone();
        tokio::spawn(async move {
            let Some(server) = scan.upgrade() else { return };
            let Ok(accounts) = server.store.account_list().await else {
                tracing::warn!("held submissions: cannot list accounts; only new holds are timed");
                return;
            };
            for account in accounts {
                scanned.rescan(&server, account.id).await;
            }
        });
        // Holds and cancels made on other nodes.
        let watch = weak.clone();
        let watched = held.clone();
        let mut rx = server.store.subscribe_all();
        tokio::spawn(async move {
            loop {
                let change = rx.recv().await;
                let Some(server) = watch.upgrade() else {
                    return;
                };
                match change {
                    Ok(c)
                        if !c.local
                            && c.collections
                                .as_ref()
                                .is_none_or(|n| n.iter().any(|n| n == SUBMISSIONS)) =>
                    {
                        watched.rescan(&server, c.account).await;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => rx = server.store.subscribe_all(),
                }
            }
        });
        tokio::spawn(timer(weak, held));
    }

    /// Times every pending submission of the account.
    async fn rescan(&self, server: &JmapServer, account: AccountId) {
        let Ok(items) = server
            .store
            .collection_get(account, SUBMISSIONS, None)
            .await
        else {
            return;
        };
        for item in items {
            if let Ok(r) = serde_json::from_str::<SubmissionRecord>(&item.value)
                && r.undo_status == UndoStatus::Pending
            {
                self.schedule(account, &r.id, r.send_at);
            }
        }
    }
}

async fn timer(server: Weak<JmapServer>, held: Arc<Held>) {
    loop {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let due: Vec<(i64, AccountId, String)> = {
            let mut set = held.due.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = Vec::new();
            while let Some(first) = set.first() {
                if first.0 * 1000 > now_ms {
                    break;
                }
                if let Some(entry) = set.pop_first() {
                    out.push(entry);
                }
            }
            out
        };
        let Some(srv) = server.upgrade() else { return };
        for (_, account, id) in due {
            let srv = srv.clone();
            let held = held.clone();
            tokio::spawn(async move {
                if let Err(e) = release(&srv, account, &id).await {
                    tracing::warn!(%account, submission = %id, error = %e, "held submission not released; retrying");
                    held.schedule(account, &id, now_unix() + RETRY_AFTER_SECS);
                }
            });
        }
        drop(srv);
        let next = held
            .due
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .map(|e| e.0);
        let sleep = match next {
            Some(at) => {
                Duration::from_millis(u64::try_from(at * 1000 - now_ms).unwrap_or(0)).min(MAX_SLEEP)
            }
            None => MAX_SLEEP,
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = held.wake.notified() => {}
        }
    }
}

/// Sends one held submission if it is still pending and due.
async fn release(
    server: &JmapServer,
    account: AccountId,
    id: &str,
) -> Result<(), bulwark_store::StoreError> {
    let store = &server.store;
    let items = store
        .collection_get(account, SUBMISSIONS, Some(&[id.to_string()]))
        .await?;
    let Some(item) = items.into_iter().next() else {
        return Ok(()); // destroyed
    };
    let Ok(mut record) = serde_json::from_str::<SubmissionRecord>(&item.value) else {
        return Ok(());
    };
    if record.undo_status != UndoStatus::Pending {
        return Ok(()); // canceled, or released by another node
    }
    if record.send_at > now_unix() {
        server.held().schedule(account, id, record.send_at);
        return Ok(());
    }
    let raw = match &record.held {
        Some(hash) => store.blob_get(hash).await?,
        None => None,
    };
    // Recipients are resolved again: an account may have gone meanwhile.
    let mut resolved = Vec::new();
    let mut unknown = Vec::new();
    for r in &record.rcpt_to {
        match bulwark_core::resolve_recipient(store.as_ref(), r).await? {
            Recipient::UnknownUser => unknown.push(r.clone()),
            found => resolved.push((r.clone(), found)),
        }
    }
    record.undo_status = UndoStatus::Final;
    record.held = None;
    record.delivery = crate::submission::delivery_of(&resolved);
    record.delivery.extend(
        unknown
            .into_iter()
            .map(|r| (r, "550 5.1.1 no such user".to_string(), "no".to_string())),
    );
    let Some(raw) = raw.filter(|_| !resolved.is_empty()) else {
        // Nothing to send (no recipient left, or the blob is gone): the record says so.
        if record.delivery.is_empty() {
            record.delivery =
                crate::submission::every_recipient(&record, "451 4.3.0 message lost", "no");
        }
        let value = serde_json::to_string(&record)
            .map_err(|e| bulwark_store::StoreError::Internal(e.to_string()))?;
        let write = ItemWrite::put(SUBMISSIONS, id, Expect::Version(item.version), value);
        return match store.collection_write(account, vec![write]).await {
            Ok(_) | Err(bulwark_store::StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        };
    };
    let value = serde_json::to_string(&record)
        .map_err(|e| bulwark_store::StoreError::Internal(e.to_string()))?;
    let mut message = bulwark_core::Message::new(&record.mail_from, Vec::new(), Arc::new(raw));
    message.received_at = now_unix();
    message.resolved = resolved;
    message.records = vec![(
        account,
        ItemWrite::put(SUBMISSIONS, id, Expect::Version(item.version), value),
    )];
    match server.pipeline().deliver(message).await {
        Ok(_) => {
            tracing::info!(%account, submission = %id, "held submission released");
            Ok(())
        }
        // Canceled or released elsewhere between our read and our commit.
        Err(bulwark_core::DeliveryError::AlreadyAccepted) => Ok(()),
        Err(bulwark_core::DeliveryError::Store(e)) => Err(e),
    }
}
