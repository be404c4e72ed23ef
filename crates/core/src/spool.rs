//! The local durable spool: inbound mail accepted while the mailbox store is unavailable.
//!
//! **Acceptance.** When a delivery fails with [`StoreError::Unavailable`], the SMTP server
//! writes the message with its envelope to `data_dir/spool/` and only then answers `250`:
//! write `NAME.tmp`, fsync it, rename to `NAME.msg`, fsync the directory (so both the
//! content and the name survive a power cut). The spool is bounded
//! ([`SpoolLimits`]); beyond the cap [`Spool::put`] fails with [`SpoolError::Full`] and
//! the client gets a temporary `451 4.3.0`.
//!
//! **Recipients during an outage.** Recipients cannot be resolved to accounts without the
//! store. Each successful domain-list read is remembered in memory and in
//! `spool/domains.json`; during an outage a recipient in one of those domains is accepted
//! ([`Spool::offline_recipient`]) and resolved fully at replay. A recipient that turns out
//! unknown at replay is reported to the sender by a DSN sent by the outbound queue.
//!
//! **Replay, each message once.** A replay task ([`Spool::spawn_replay_through`]) probes the
//! store and, once it answers, delivers the spooled messages oldest first through the
//! delivery [`Pipeline`](crate::Pipeline) (its hooks judge replayed mail like any other),
//! then deletes each file (and fsyncs the directory). A crash can happen between the store
//! commit and the file deletion, so the file alone cannot say whether a message was
//! delivered. Two keys say it:
//!
//! * a **replay marker**, a collection item ([`REPLAYED`], keyed by the local copy's hash)
//!   written with `Expect::Absent` in the same [`Store::accept`] as the local copies and the
//!   queue entry: a second replay of the same file is refused by the store itself and stores
//!   nothing. The marker is deleted after the file. It needs a local account to belong to;
//! * the **content address** of what was written: each spooled message carries its own
//!   `Received:` line (unique transaction id and time), so the local copy and the relay copy
//!   have blob hashes no other message has, and a store writes a blob in the same
//!   transaction as the emails (or queue entry) that use it. Before each step replay asks
//!   `blob_get(hash)`: present means that step committed before the crash and is skipped.
//!   This covers a message without local recipients (its one write is the queue entry) and a
//!   file whose first replay ran before markers existed.
//!
//! (The marker closes the gap the blob check alone has — the user deleting the delivered
//! message and the collector dropping its blob between the crash and the replay.)

mod replay;

use crate::split_address;
use bulwark_store::{AccountId, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

pub use replay::{
    REPLAY_QUEUE_LIFETIME_SECS, REPLAYED, ReplayError, ReplayReport, UNKNOWN_AT_REPLAY,
};

/// Placeholder account of a recipient accepted during an outage (resolved at replay).
/// No backend assigns id 0 (ids start at 1).
pub const PENDING_ACCOUNT: AccountId = AccountId(0);

/// Directory below `data_dir` holding the spool.
pub const SPOOL_DIR: &str = "spool";
/// Default cap on the spool's size in bytes (`spool_max_bytes`).
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Default cap on the number of spooled messages (`spool_max_messages`).
pub const DEFAULT_SPOOL_MAX_MESSAGES: u64 = 100_000;
/// How often the replay task probes the store while it is down or the spool is not empty.
pub const REPLAY_PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How often the known-domain list is refreshed while the store is healthy.
pub const DOMAIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// First bytes of every spool file (format version 1).
const MAGIC: &[u8] = b"BULWARK-SPOOL-1\n";
/// Largest envelope line we read back (the body follows it).
const MAX_ENVELOPE_LEN: usize = 16 * 1024 * 1024;
const MESSAGE_SUFFIX: &str = ".msg";
const TEMP_SUFFIX: &str = ".tmp";
const DOMAINS_FILE: &str = "domains.json";
/// Spool files that cannot be read are moved here (kept for an operator, never deleted).
const DAMAGED_DIR: &str = "damaged";

/// Errors of the spool itself (the store's errors stay [`StoreError`]).
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the spool is full ({messages} messages, {bytes} bytes; limits {max_messages}, {max_bytes})"
    )]
    Full {
        messages: u64,
        bytes: u64,
        max_messages: u64,
        max_bytes: u64,
    },
    #[error("spool I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool file {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("the spool writer task failed: {0}")]
    Task(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Caps of the spool (config keys `spool_max_bytes`, `spool_max_messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    pub max_bytes: u64,
    pub max_messages: u64,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            max_messages: DEFAULT_SPOOL_MAX_MESSAGES,
        }
    }
}

/// What `/readyz` and `bulwark status` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolStatus {
    /// Messages waiting for replay.
    pub messages: u64,
    /// Their size on disk.
    pub bytes: u64,
    /// The last store call we know of failed with `Unavailable`.
    pub store_unavailable: bool,
    /// Degraded: the store is unavailable or spooled mail is still waiting.
    pub degraded: bool,
}

/// The envelope of a spooled message; the local and relay copies are `*_head + body`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpooledEnvelope {
    /// The SMTP transaction id (as in `250 … queued as ID`).
    pub id: String,
    /// Envelope sender (empty for `<>`).
    pub sender: String,
    /// Local recipients as given; resolved to accounts at replay.
    pub local: Vec<String>,
    /// Remote recipients (authenticated submission), queued at replay.
    pub remote: Vec<String>,
    /// Unix seconds of acceptance (the emails' received time).
    pub received_at: i64,
    /// Trace fields of the local copy (`Return-Path:` + `Received:`).
    pub local_head: String,
    /// Trace fields of the relay copy (`Received:`).
    pub relay_head: String,
}

/// One message in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledMessage {
    pub envelope: SpooledEnvelope,
    /// The message as received (without our trace fields).
    pub body: Vec<u8>,
}

impl SpooledMessage {
    /// The bytes delivered to local mailboxes.
    pub fn local_message(&self) -> Vec<u8> {
        concat(&self.envelope.local_head, &self.body)
    }
    /// The bytes queued for remote recipients (and for DSNs of unknown local ones).
    pub fn relay_message(&self) -> Vec<u8> {
        concat(&self.envelope.relay_head, &self.body)
    }

    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let envelope = serde_json::to_vec(&self.envelope)?;
        let mut out = Vec::with_capacity(MAGIC.len() + envelope.len() + 1 + self.body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&envelope);
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<SpooledMessage, String> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("not a Bulwark spool file (version 1)")?;
        let end = rest
            .iter()
            .take(MAX_ENVELOPE_LEN)
            .position(|&b| b == b'\n')
            .ok_or("the envelope line is not terminated")?;
        let (line, body) = rest.split_at(end);
        let envelope = serde_json::from_slice(line).map_err(|e| format!("envelope: {e}"))?;
        Ok(SpooledMessage {
            envelope,
            body: body.get(1..).unwrap_or_default().to_vec(),
        })
    }
}

fn concat(head: &str, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(head.len() + body.len());
    v.extend_from_slice(head.as_bytes());
    v.extend_from_slice(body);
    v
}

/// How a recipient is judged while the store cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineRecipient {
    /// In a domain that was local at the last successful read: accept, resolve at replay.
    LocalDomain,
    /// Not one of the domains known to be local.
    Remote,
    /// No domain list was ever read (or it is not an address): answer temporarily.
    Unknown,
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    messages: u64,
    bytes: u64,
}

/// The spool of one node. Share it as `Arc<Spool>`.
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
    usage: Mutex<Usage>,
    store_unavailable: AtomicBool,
    domains: RwLock<Option<BTreeSet<String>>>,
    sequence: AtomicU64,
    /// Wakes the replay task early (a message was spooled).
    wake: Notify,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.dir)
            .field("status", &self.status())
            .finish()
    }
}

impl Spool {
    /// Opens (creating) `data_dir/spool`: removes half-written temp files, counts what is
    /// waiting, loads the remembered domain list.
    pub fn open(data_dir: &Path, limits: SpoolLimits) -> Result<Arc<Spool>, SpoolError> {
        let dir = data_dir.join(SPOOL_DIR);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let mut usage = Usage::default();
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(TEMP_SUFFIX) {
                // Never acknowledged: the rename had not happened.
                std::fs::remove_file(&path).map_err(io_error(&path))?;
            } else if name.ends_with(MESSAGE_SUFFIX) {
                let len = entry.metadata().map_err(io_error(&path))?.len();
                usage.messages += 1;
                usage.bytes += len;
            }
        }
        let domains = match std::fs::read(dir.join(DOMAINS_FILE)) {
            Ok(bytes) => serde_json::from_slice::<BTreeSet<String>>(&bytes).ok(),
            Err(_) => None,
        };
        tracing::info!(
            dir = %dir.display(),
            max_messages = limits.max_messages,
            max_bytes = limits.max_bytes,
            "spool: ready"
        );
        if usage.messages > 0 {
            tracing::warn!(
                messages = usage.messages,
                bytes = usage.bytes,
                "spool: mail from an earlier outage is waiting for replay"
            );
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        Ok(Arc::new(Spool {
            dir,
            limits,
            usage: Mutex::new(usage),
            store_unavailable: AtomicBool::new(false),
            domains: RwLock::new(domains),
            sequence: AtomicU64::new(nanos),
            wake: Notify::new(),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limits(&self) -> SpoolLimits {
        self.limits
    }

    /// Spooled count and bytes, and whether the node is degraded.
    pub fn status(&self) -> SpoolStatus {
        let usage = *self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let store_unavailable = self.store_unavailable.load(Ordering::Relaxed);
        SpoolStatus {
            messages: usage.messages,
            bytes: usage.bytes,
            store_unavailable,
            degraded: store_unavailable || usage.messages > 0,
        }
    }

    /// Records that a store call failed with `Unavailable` (the replay task clears it
    /// when the store answers again).
    pub fn note_store_unavailable(&self) {
        if !self.store_unavailable.swap(true, Ordering::Relaxed) {
            tracing::warn!("spool: the mailbox store is unavailable; inbound mail is spooled");
            // The replay task switches to probing often.
            self.wake.notify_one();
        }
    }

    fn note_store_available(&self) {
        if self.store_unavailable.swap(false, Ordering::Relaxed) {
            tracing::info!("spool: the mailbox store answers again");
        }
    }

    /// Judges a recipient without the store, from the last known local domains.
    pub fn offline_recipient(&self, address: &str) -> OfflineRecipient {
        let Some((_, domain)) = split_address(address) else {
            return OfflineRecipient::Unknown;
        };
        let domains = self.domains.read().unwrap_or_else(|e| e.into_inner());
        match domains.as_ref() {
            None => OfflineRecipient::Unknown,
            Some(list) if list.contains(&domain) => OfflineRecipient::LocalDomain,
            Some(_) => OfflineRecipient::Remote,
        }
    }

    /// Remembers the local domains (in memory, and on disk when the list changed).
    pub fn remember_domains(&self, list: &[String]) {
        let new: BTreeSet<String> = list.iter().map(|d| d.to_ascii_lowercase()).collect();
        {
            let mut domains = self.domains.write().unwrap_or_else(|e| e.into_inner());
            if domains.as_ref() == Some(&new) {
                return;
            }
            *domains = Some(new.clone());
        }
        let written = serde_json::to_vec(&new)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| write_durably(&self.dir, DOMAINS_FILE, &bytes));
        if let Err(e) = written {
            tracing::warn!(error = %e, "spool: cannot remember the domain list on disk");
        }
    }

    /// Writes the message durably (see the module doc); `Ok` means it may be acknowledged.
    pub async fn put(self: &Arc<Self>, message: &SpooledMessage) -> Result<(), SpoolError> {
        let bytes = message.encode().map_err(|e| SpoolError::Damaged {
            path: self.dir.clone(),
            reason: format!("cannot encode the envelope: {e}"),
        })?;
        let len = bytes.len() as u64;
        self.reserve(len)?;
        let name = format!(
            "{:020}-{:016x}{MESSAGE_SUFFIX}",
            message.envelope.received_at.max(0),
            self.sequence.fetch_add(1, Ordering::Relaxed)
        );
        let dir = self.dir.clone();
        let written =
            tokio::task::spawn_blocking(move || write_durably(&dir, &name, &bytes).map(|_| name))
                .await;
        match written {
            Ok(Ok(name)) => {
                tracing::info!(id = %message.envelope.id, file = %name, "spool: message spooled");
                self.wake.notify_one();
                Ok(())
            }
            Ok(Err(source)) => {
                self.release(len);
                Err(SpoolError::Io {
                    path: self.dir.clone(),
                    source,
                })
            }
            Err(e) => {
                self.release(len);
                Err(SpoolError::Task(e.to_string()))
            }
        }
    }

    fn reserve(&self, len: u64) -> Result<(), SpoolError> {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if usage.messages + 1 > self.limits.max_messages
            || usage.bytes.saturating_add(len) > self.limits.max_bytes
        {
            return Err(SpoolError::Full {
                messages: usage.messages,
                bytes: usage.bytes,
                max_messages: self.limits.max_messages,
                max_bytes: self.limits.max_bytes,
            });
        }
        usage.messages += 1;
        usage.bytes += len;
        Ok(())
    }

    fn release(&self, len: u64) {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.messages = usage.messages.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(len);
    }

    /// Spool files waiting, oldest first.
    fn waiting(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(io_error(&self.dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(MESSAGE_SUFFIX))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// Removes a replayed file durably and forgets its size.
    fn remove(&self, path: &Path) -> Result<(), SpoolError> {
        let len = std::fs::metadata(path).map_err(io_error(path))?.len();
        std::fs::remove_file(path).map_err(io_error(path))?;
        sync_dir(&self.dir).map_err(io_error(&self.dir))?;
        self.release(len);
        Ok(())
    }

    /// Moves an unreadable file aside (kept for an operator) and forgets it.
    fn set_aside(&self, path: &Path, reason: &str) {
        let damaged = self.dir.join(DAMAGED_DIR);
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let moved = std::fs::create_dir_all(&damaged).and_then(|_| {
            let name = path.file_name().unwrap_or_default();
            std::fs::rename(path, damaged.join(name))
        });
        match moved {
            Ok(()) => {
                tracing::error!(file = %path.display(), reason, "spool: damaged file set aside");
                self.release(len);
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "spool: cannot set a damaged file aside")
            }
        }
    }

    /// Starts the replay task: probes the store, refreshes the known domains, and replays
    /// the spool whenever the store answers. `queue_wakeup` is notified after queueing.
    pub fn spawn_replay(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        queue_wakeup: Arc<Notify>,
    ) -> tokio::task::JoinHandle<()> {
        let pipeline = crate::Pipeline::new(store, queue_wakeup, REPLAY_QUEUE_LIFETIME_SECS);
        self.spawn_replay_through(pipeline)
    }

    /// Like [`Spool::spawn_replay`], replaying through `pipeline` (the node's shared one,
    /// with its hooks) and its store.
    pub fn spawn_replay_through(
        self: &Arc<Self>,
        pipeline: Arc<crate::Pipeline>,
    ) -> tokio::task::JoinHandle<()> {
        let spool = self.clone();
        tokio::spawn(async move { spool.replay_loop(pipeline).await })
    }

    async fn replay_loop(self: Arc<Self>, pipeline: Arc<crate::Pipeline>) {
        let store = pipeline.store().clone();
        loop {
            match store.domain_list().await {
                Ok(list) => {
                    self.remember_domains(&list);
                    self.note_store_available();
                    if self.status().messages > 0 {
                        match self.replay(&pipeline).await {
                            Ok(report) if report.queued > 0 => pipeline.queue_wakeup().notify_one(),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "spool: replay interrupted"),
                        }
                    }
                }
                Err(StoreError::Unavailable(e)) => {
                    tracing::debug!(error = %e, "spool: store still unavailable");
                    self.note_store_unavailable();
                }
                Err(e) => tracing::warn!(error = %e, "spool: cannot read the domain list"),
            }
            let status = self.status();
            let pause = if status.degraded {
                REPLAY_PROBE_INTERVAL
            } else {
                DOMAIN_REFRESH_INTERVAL
            };
            let _ = tokio::time::timeout(pause, self.wake.notified()).await;
        }
    }
}

/// Writes `dir/name` so that it is complete or absent after a crash: temp file, fsync,
/// rename, fsync of the directory.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dir.join(format!("{name}{TEMP_SUFFIX}"));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
