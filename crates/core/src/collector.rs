//! The blob collector: deletes message content and uploads nobody references any more
//! ([`bulwark_store::Store::blob_collect`]) — a message's blob once its last copy is
//! expunged, an upload not used by an email or item within [`UPLOAD_TTL_SECS`].

use bulwark_store::{Store, now_unix};
use std::sync::Arc;
use std::time::Duration;

/// An upload (JMAP `/jmap/upload`) that nothing references is kept this long (RFC 8620 §6.1
/// asks for at least an hour).
pub const UPLOAD_TTL_SECS: i64 = 24 * 3600;
/// How often the collector runs.
pub const COLLECT_INTERVAL: Duration = Duration::from_secs(3600);
/// The first run after start (not at once: a starting node has better things to do).
pub const FIRST_COLLECT_AFTER: Duration = Duration::from_secs(60);

/// One pass: returns `(blobs, bytes)` deleted.
pub async fn collect_once(store: &dyn Store) -> bulwark_store::Result<(u64, u64)> {
    let (blobs, bytes) = store.blob_collect(now_unix() - UPLOAD_TTL_SECS).await?;
    if blobs > 0 {
        tracing::info!(blobs, bytes, "blob collector: unreferenced blobs deleted");
    }
    Ok((blobs, bytes))
}

/// Runs [`collect_once`] every [`COLLECT_INTERVAL`] until the task is aborted. Every node may
/// run it (the backends serialise deleters against writers).
pub fn spawn(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(FIRST_COLLECT_AFTER).await;
        loop {
            if let Err(e) = collect_once(store.as_ref()).await {
                tracing::warn!(error = %e, "blob collector: pass failed; next pass later");
            }
            tokio::time::sleep(COLLECT_INTERVAL).await;
        }
    })
}
