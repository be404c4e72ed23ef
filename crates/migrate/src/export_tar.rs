//! The Bulwark archive as one tar stream: the web client's "Download my data"
//! (`GET /migrate/export`, [`crate::http`]).
//!
//! The tar holds one directory, `TOP/`, with exactly what `bulwark export --format archive`
//! writes into its directory (`TOP/messages/SHA256.eml`, each content once, and
//! `TOP/manifest.json`), so untarring it gives a directory `bulwark import` reads back.
//! The manifest comes last, as the export writes it last: it lists every message. Memory
//! stays bounded whatever the account's size: messages are read from the store in batches
//! and each batch goes out before the next is read; only the manifest's entries (metadata,
//! no content) are kept to the end.

use crate::ExportSummary;
use crate::archive::{self, ArchivedItem, ArchivedMailbox, ArchivedMessage, Manifest};
use anyhow::{Context, anyhow, bail};
use bulwark_core::keyword_case::KeywordCase;
use bulwark_store::{AccountId, BlobHash, EmailId, MessageMeta, Store};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;
use tokio::sync::mpsc;

/// Messages read per store call.
const BATCH: usize = 64;
/// Content read per store call (at least one message, whatever its size).
const BATCH_BYTES: u64 = 8 << 20;
/// Tar bytes gathered before they are sent on.
const SEND_AT: usize = 1 << 20;

/// `bulwark-ADDRESS-YYYY-MM-DD`: the download's name (`.tar` added) and its top directory.
/// Only letters, digits and `@._+-` are kept from the address (others become `_`), so the
/// name is safe in a `Content-Disposition` and as a directory name.
pub fn archive_tar_name(address: &str, unix: i64) -> String {
    let safe: String = address
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let (y, m, d) = bulwark_core::civil::civil_from_days(unix.div_euclid(86_400));
    format!("bulwark-{safe}-{y:04}-{m:02}-{d:02}")
}

/// Gathers tar entries and sends them on in chunks.
struct TarOut<'a> {
    tar: tar::Builder<Vec<u8>>,
    out: &'a mpsc::Sender<std::io::Result<Vec<u8>>>,
    top: &'a str,
    mtime: u64,
}

impl TarOut<'_> {
    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        // GNU headers: a path longer than ustar's 100 bytes (a long address, the 64-digit
        // hash) gets a GNU long-name entry, which GNU tar, bsdtar and Python read.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h
    }

    fn dir(&mut self, rel: &str) -> anyhow::Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
        let path = format!("{}/{rel}", self.top);
        self.tar.append_data(&mut h, path, std::io::empty())?;
        Ok(())
    }

    fn file(&mut self, rel: &str, content: &[u8]) -> anyhow::Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, content.len() as u64);
        let path = format!("{}/{rel}", self.top);
        self.tar.append_data(&mut h, path, content)?;
        Ok(())
    }

    /// Sends what was gathered when it is `at` bytes or more; fails when the receiver
    /// is gone (the download was closed).
    async fn send(&mut self, at: usize) -> anyhow::Result<()> {
        if self.tar.get_ref().len() < at || self.tar.get_ref().is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(self.tar.get_mut());
        self.out
            .send(Ok(chunk))
            .await
            .map_err(|_| anyhow!("the download was closed"))
    }
}

/// Writes the account's complete archive as a tar under `top/` into `out`, chunk by chunk,
/// ending with the tar trailer. An error (store down, download closed) stops it: the caller
/// must then end the stream with an error, so a cut download is never taken for whole.
pub async fn archive_tar(
    store: &dyn Store,
    account: AccountId,
    address: &str,
    top: &str,
    out: &mpsc::Sender<std::io::Result<Vec<u8>>>,
) -> anyhow::Result<ExportSummary> {
    let started = Instant::now();
    let exported_at = bulwark_store::now_unix();
    let mut summary = ExportSummary::default();
    let mut mailboxes = store.mailbox_list(account).await?;
    // As `export`: INBOX first, then by name, so parents come before their children.
    mailboxes.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
    let mut manifest = Manifest {
        format: archive::FORMAT.into(),
        version: archive::VERSION,
        account: address.to_string(),
        exported_at,
        mailboxes: Vec::new(),
        messages: Vec::new(),
        collections: BTreeMap::new(),
    };
    let case = KeywordCase::load(store, account).await?;
    let shown = |keywords: &[String]| case.shown_keywords(keywords);
    let mut w = TarOut {
        tar: tar::Builder::new(Vec::new()),
        out,
        top,
        mtime: u64::try_from(exported_at).unwrap_or(0),
    };
    w.dir("")?;
    w.dir("messages/")?;
    let mut archived: HashMap<EmailId, usize> = HashMap::new();
    let mut written: HashSet<BlobHash> = HashSet::new();
    for mb in &mailboxes {
        summary.folders += 1;
        manifest.mailboxes.push(ArchivedMailbox {
            name: mb.name.clone(),
            role: mb.role.map(|r| r.as_jmap().to_string()),
            subscribed: mb.subscribed,
            sort_order: mb.sort_order,
        });
        let metas = store.mailbox_messages(account, mb.id).await?;
        // Each email once: a later folder only adds its name to the entry.
        let mut wanted: Vec<&MessageMeta> = Vec::new();
        for m in &metas {
            match archived.get(&m.email) {
                Some(&i) => manifest.messages[i].mailboxes.push(mb.name.clone()),
                None => wanted.push(m),
            }
        }
        let mut rest = wanted.as_slice();
        while !rest.is_empty() {
            let mut n = 0;
            let mut bytes = 0u64;
            while n < rest.len() && n < BATCH && (n == 0 || bytes < BATCH_BYTES) {
                bytes += u64::from(rest[n].size);
                n += 1;
            }
            let (batch, tail) = rest.split_at(n);
            rest = tail;
            let hashes: Vec<BlobHash> = batch.iter().map(|m| m.blob.clone()).collect();
            let blobs = store.blob_get_many(&hashes).await?;
            for (meta, blob) in batch.iter().zip(blobs) {
                let Some(raw) = blob else {
                    bail!(
                        "the content of message UID {} in {} is missing from the store",
                        meta.uid,
                        mb.name
                    );
                };
                let file = format!("messages/{}.eml", meta.blob.0);
                if written.insert(meta.blob.clone()) {
                    w.file(&file, &raw)?;
                }
                summary.messages += 1;
                archived.insert(meta.email, manifest.messages.len());
                manifest.messages.push(ArchivedMessage {
                    file,
                    sha256: meta.blob.0.clone(),
                    size: raw.len() as u64,
                    mailboxes: vec![mb.name.clone()],
                    keywords: shown(&meta.keywords),
                    received_at: meta.received_at,
                });
                w.send(SEND_AT).await?;
            }
        }
    }
    for c in archive::COLLECTIONS {
        let items = store.collection_get(account, c, None).await?;
        if !items.is_empty() {
            manifest.collections.insert(
                c.to_string(),
                items
                    .into_iter()
                    .map(|i| ArchivedItem {
                        id: i.id,
                        value: i.value,
                    })
                    .collect(),
            );
        }
    }
    let json = serde_json::to_vec_pretty(&manifest).context("cannot write the manifest")?;
    w.file(archive::MANIFEST, &json)?;
    w.tar.finish()?;
    w.send(0).await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_safe_and_dated() {
        // 2026-12-03 12:00 UTC.
        assert_eq!(
            super::archive_tar_name("alice@example.test", 1_796_299_200),
            "bulwark-alice@example.test-2026-12-03"
        );
        assert_eq!(
            super::archive_tar_name("a\"b/c\r\n@x.test", 0),
            "bulwark-a_b_c__@x.test-1970-01-01"
        );
    }
}
