//! `bulwark import`: reads a source and appends its messages to an account.
//!
//! Resumable without a journal: before the first message of a folder is stored, the
//! folder's listing is read once and the SHA-256 of every message in it (the store's blob
//! hash) counted; a source message whose exact bytes are already there is skipped (and
//! counted off, so a source holding the same message twice still gets both copies once).
//! One listing per folder, then a hash lookup per message: no scan per message.

use crate::archive;
use crate::flags;
use crate::maildir;
use crate::mbox::{MboxItem, MboxReader};
use anyhow::{Context, anyhow, bail};
use bulwark_core::keyword_case::{self, KeywordCase};
use bulwark_store::collections::{Expect, ItemWrite, MAX_WRITES};
use bulwark_store::{AccountId, BlobHash, Mailbox, MailboxId, NewEmail, Role, Store, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod bytes;
pub use bytes::import_bytes;

/// What `import` found at the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Mbox,
    Maildir,
    /// One `.eml` file (one RFC 5322 message).
    Eml,
    /// A directory of `.eml` files.
    EmlDir,
    /// A directory of `*.mbox` files, one folder each (what `export --format mbox` writes).
    MboxDir,
    Archive,
}

impl SourceKind {
    pub fn describe(self) -> &'static str {
        match self {
            SourceKind::Mbox => "mbox",
            SourceKind::Maildir => "Maildir",
            SourceKind::Eml => ".eml file",
            SourceKind::EmlDir => "directory of .eml files",
            SourceKind::MboxDir => "directory of mbox files",
            SourceKind::Archive => "Bulwark archive",
        }
    }
}

/// What is at `path`: a directory with a Bulwark `manifest.json` is an archive, one with
/// `cur/`/`new/` (or Maildir folders) a Maildir, one with `.eml` files a directory of them;
/// a file that starts with a `From ` line is an mbox, any other file one message.
pub fn detect(path: &Path) -> anyhow::Result<SourceKind> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        if archive::is_archive(path) {
            return Ok(SourceKind::Archive);
        }
        if path.join(archive::MANIFEST).exists() {
            archive::read_manifest(path)?;
        }
        if !maildir::folders(path)?.is_empty() {
            return Ok(SourceKind::Maildir);
        }
        if !eml_files(path)?.is_empty() {
            return Ok(SourceKind::EmlDir);
        }
        if !mbox_files(path)?.is_empty() {
            return Ok(SourceKind::MboxDir);
        }
        bail!(
            "{} is neither a Maildir (no cur/ or new/), a Bulwark archive (no manifest.json) nor a directory of .eml or .mbox files",
            path.display()
        );
    }
    let mut first = Vec::new();
    let mut r = std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    loop {
        first.clear();
        if r.read_until(b'\n', &mut first)? == 0 || !first.iter().all(u8::is_ascii_whitespace) {
            break;
        }
    }
    Ok(if first.starts_with(b"From ") {
        SourceKind::Mbox
    } else {
        SourceKind::Eml
    })
}

fn eml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("eml")) && p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// The `*.mbox` files below `dir` with their folder names (the path without `.mbox`,
/// `Err` with a lossy rendering when not UTF-8), ordered by path.
fn mbox_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, Result<String, String>)>> {
    fn walk(
        base: &Path,
        dir: &Path,
        out: &mut Vec<(PathBuf, Result<String, String>)>,
        depth: usize,
    ) -> std::io::Result<()> {
        if depth > 64 {
            return Ok(());
        }
        for entry in std::fs::read_dir(dir)?.filter_map(|e| e.ok()) {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                walk(base, &path, out, depth + 1)?;
            } else if path.extension().is_some_and(|e| e == "mbox") {
                let rel = path.strip_prefix(base).unwrap_or(&path).with_extension("");
                let name = rel
                    .to_str()
                    .map(|s| s.replace(std::path::MAIN_SEPARATOR, "/"))
                    .ok_or_else(|| rel.to_string_lossy().into_owned());
                out.push((path, name));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out, 0)?;
    out.sort();
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The folder for an mbox or `.eml` (default INBOX); for a Maildir, where its top level
    /// goes, its subfolders below it.
    pub folder: Option<String>,
    /// Messages larger than this are not imported (`[limits] max_message_size`).
    pub max_message_size: usize,
}

/// Failures kept word for word in the summary; beyond, they are only counted.
const MAX_FAILURE_LINES: usize = 1000;
/// Messages (and bytes) stored per store call.
const BATCH: usize = 200;
const BATCH_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    pub kind: Option<SourceKind>,
    pub imported: u64,
    /// Already in their folder (an earlier run).
    pub skipped: u64,
    pub failed: u64,
    /// `WHERE: WHY` of the first failures.
    pub failures: Vec<String>,
    pub folders_created: Vec<String>,
    pub elapsed: Duration,
}

impl ImportSummary {
    /// Messages looked at per second (imported or skipped).
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        (self.imported + self.skipped) as f64 / secs
    }

    fn fail(&mut self, origin: &str, why: impl std::fmt::Display, count: u64) {
        self.failed += count;
        if self.failures.len() < MAX_FAILURE_LINES {
            self.failures.push(format!("{origin}: {why}"));
        }
    }
}

/// One message of a source.
struct Msg {
    /// Folder names as the source has them (`""`: its top level).
    folders: Vec<String>,
    raw: Vec<u8>,
    keywords: Vec<String>,
    received_at: Option<i64>,
    origin: String,
}

enum Item {
    Msg(Msg),
    Failed {
        origin: String,
        why: String,
        count: u64,
    },
}

struct Importer<'a> {
    store: &'a dyn Store,
    account: AccountId,
    top: String,
    prefix: bool,
    mailboxes: Vec<Mailbox>,
    resolved: HashMap<String, Result<MailboxId, String>>,
    /// Per folder: blob hash → copies there before this run that no source message
    /// claimed yet.
    present: HashMap<MailboxId, HashMap<BlobHash, u32>>,
    batch: Vec<(NewEmail, String)>,
    batch_bytes: usize,
    summary: ImportSummary,
    started: Instant,
    /// Custom keywords in the case the source first wrote them (lowercase → as written),
    /// remembered for IMAP at the end ([`KeywordCase`]).
    cases: BTreeMap<String, String>,
}

impl<'a> Importer<'a> {
    /// An import of a `kind` source into `account`, with the account's folders as they are.
    async fn start(
        store: &'a dyn Store,
        account: AccountId,
        opts: &ImportOptions,
        kind: SourceKind,
    ) -> anyhow::Result<Importer<'a>> {
        let mailboxes = store.mailbox_list(account).await?;
        Ok(Importer {
            store,
            account,
            top: opts.folder.clone().unwrap_or_else(|| "INBOX".into()),
            prefix: opts.folder.is_some(),
            mailboxes,
            resolved: HashMap::new(),
            present: HashMap::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            summary: ImportSummary {
                kind: Some(kind),
                ..ImportSummary::default()
            },
            started: Instant::now(),
            cases: BTreeMap::new(),
        })
    }

    /// The store name of a source folder.
    fn target(&self, name: &str) -> String {
        if name.is_empty() {
            self.top.clone()
        } else if self.prefix {
            format!("{}/{name}", self.top)
        } else {
            name.to_string()
        }
    }

    async fn mailbox(&mut self, source_name: &str) -> Result<MailboxId, String> {
        let name = self.target(source_name);
        if let Some(r) = self.resolved.get(&name) {
            return r.clone();
        }
        let r = self.resolve(&name).await;
        if let Ok(id) = r {
            self.load_present(id).await.map_err(|e| e.to_string())?;
        }
        self.resolved.insert(name, r.clone());
        r
    }

    /// The mailbox of that name, created (with its parents) when missing.
    async fn resolve(&mut self, name: &str) -> Result<MailboxId, String> {
        ensure_mailbox(
            self.store,
            self.account,
            &mut self.mailboxes,
            name,
            &mut self.summary.folders_created,
        )
        .await
    }

    async fn load_present(&mut self, id: MailboxId) -> Result<(), StoreError> {
        if self.present.contains_key(&id) {
            return Ok(());
        }
        let mut counts: HashMap<BlobHash, u32> = HashMap::new();
        for m in self.store.mailbox_messages(self.account, id).await? {
            *counts.entry(m.blob).or_default() += 1;
        }
        self.present.insert(id, counts);
        Ok(())
    }

    async fn take(&mut self, item: Item, max_size: usize) -> anyhow::Result<()> {
        let msg = match item {
            Item::Failed { origin, why, count } => {
                self.summary.fail(&origin, why, count);
                return Ok(());
            }
            Item::Msg(msg) => msg,
        };
        if msg.raw.len() > max_size {
            self.summary.fail(
                &msg.origin,
                format!(
                    "{} bytes, over the size limit of {max_size} bytes",
                    msg.raw.len()
                ),
                1,
            );
            return Ok(());
        }
        let mut ids = Vec::new();
        for f in &msg.folders {
            match self.mailbox(f).await {
                Ok(id) if !ids.contains(&id) => ids.push(id),
                Ok(_) => {}
                Err(why) => {
                    self.summary.fail(&msg.origin, why, 1);
                    return Ok(());
                }
            }
        }
        let hash = BlobHash::of(&msg.raw);
        // An earlier run stored it in its (first) folder: claim that copy.
        if let Some(n) = self
            .present
            .get_mut(&ids[0])
            .and_then(|counts| counts.get_mut(&hash))
            .filter(|n| **n > 0)
        {
            *n -= 1;
            self.summary.skipped += 1;
            return Ok(());
        }
        for k in &msg.keywords {
            if keyword_case::is_custom(&k.to_ascii_lowercase()) {
                self.cases
                    .entry(k.to_ascii_lowercase())
                    .or_insert_with(|| k.clone());
            }
        }
        let received_at = msg.received_at.unwrap_or_else(bulwark_store::now_unix);
        self.batch_bytes += msg.raw.len();
        let new = bulwark_core::new_email(ids, Arc::new(msg.raw), msg.keywords, received_at);
        // Without a date of its own (an mbox `From ` line without one), the Date header's.
        let new = match (msg.received_at, new.summary.sent_at) {
            (None, Some(sent)) => NewEmail {
                received_at: sent,
                ..new
            },
            _ => new,
        };
        self.batch.push((new, msg.origin));
        if self.batch.len() >= BATCH || self.batch_bytes >= BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    /// Stores the batch in one call; when that fails, message by message, so one bad
    /// message fails alone. A store that is down stops the import (run it again later).
    async fn flush(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        if batch.is_empty() {
            return Ok(());
        }
        let news: Vec<NewEmail> = batch.iter().map(|(n, _)| n.clone()).collect();
        match self.store.email_append(self.account, news).await {
            Ok(_) => self.summary.imported += batch.len() as u64,
            Err(e @ StoreError::Unavailable(_)) => return Err(unavailable(e, &self.summary)),
            Err(_) => {
                for (new, origin) in batch {
                    match self.store.email_append(self.account, vec![new]).await {
                        Ok(_) => self.summary.imported += 1,
                        Err(e @ StoreError::Unavailable(_)) => {
                            return Err(unavailable(e, &self.summary));
                        }
                        Err(e) => self.summary.fail(&origin, e, 1),
                    }
                }
            }
        }
        self.summary.elapsed = self.started.elapsed();
        Ok(())
    }
}

/// The mailbox of that name in `mailboxes` (exactly, else case-insensitively when only one
/// matches so: `sent` finds `Sent`, `inbox` `INBOX`).
pub(crate) fn existing(mailboxes: &[Mailbox], name: &str) -> Option<MailboxId> {
    if let Some(m) = mailboxes.iter().find(|m| m.name == name) {
        return Some(m.id);
    }
    let mut ci = mailboxes
        .iter()
        .filter(|m| m.name.to_lowercase() == name.to_lowercase());
    match (ci.next(), ci.next()) {
        (Some(m), None) => Some(m.id),
        _ => None,
    }
}

/// The mailbox of that name, created (with its parents) when missing; `mailboxes` is the
/// account's list, kept current, and every created path is added to `created`.
pub(crate) async fn ensure_mailbox(
    store: &dyn Store,
    account: AccountId,
    mailboxes: &mut Vec<Mailbox>,
    name: &str,
    created: &mut Vec<String>,
) -> Result<MailboxId, String> {
    let name = bulwark_store::rules::canonical_mailbox_name(name)
        .map_err(|e| format!("bad folder name {name:?}: {e}"))?;
    if let Some(id) = existing(mailboxes, &name) {
        return Ok(id);
    }
    let parts: Vec<&str> = name.split('/').collect();
    let mut id = None;
    for i in 1..=parts.len() {
        let path = parts[..i].join("/");
        if let Some(found) = existing(mailboxes, &path) {
            id = Some(found);
            continue;
        }
        let mailbox = store
            .mailbox_create(account, &path, None)
            .await
            .map_err(|e| format!("cannot create folder {path}: {e}"))?;
        id = Some(mailbox.id);
        created.push(path);
        mailboxes.push(mailbox);
    }
    id.ok_or_else(|| format!("bad folder name {name:?}"))
}

fn unavailable(e: StoreError, s: &ImportSummary) -> anyhow::Error {
    anyhow!(
        "{e}; {} messages were imported before it stopped: run the same command again to go on",
        s.imported
    )
}

/// Imports the mail at `path` into the account. `progress` is called after every batch
/// stored. Errors only when nothing can go on (unreadable path, store down); failed
/// messages are counted in the summary.
pub async fn import(
    store: &dyn Store,
    account: AccountId,
    path: &Path,
    opts: &ImportOptions,
    progress: &mut (dyn FnMut(&ImportSummary) + Send),
) -> anyhow::Result<ImportSummary> {
    let kind = detect(path)?;
    let mut imp = Importer::start(store, account, opts, kind).await?;
    let max = opts.max_message_size;
    let mut last_progress = imp.summary.imported;
    let items: Box<dyn Iterator<Item = Item> + Send> = match kind {
        SourceKind::Mbox => Box::new(mbox_items(path, String::new(), max)?),
        SourceKind::MboxDir => {
            let mut all: Vec<Box<dyn Iterator<Item = Item> + Send>> = Vec::new();
            for (file, name) in mbox_files(path)? {
                match name {
                    Ok(name) => all.push(Box::new(mbox_items(&file, name, max)?)),
                    Err(lossy) => all.push(Box::new(std::iter::once(Item::Failed {
                        origin: file.display().to_string(),
                        why: format!("the folder name {lossy:?} is not UTF-8 (rename the file)"),
                        count: 1,
                    }))),
                }
            }
            Box::new(all.into_iter().flatten())
        }
        SourceKind::Maildir => Box::new(maildir_items(path, max)?),
        SourceKind::Eml => Box::new(std::iter::once(eml_item(path, max))),
        SourceKind::EmlDir => {
            Box::new(eml_files(path)?.into_iter().map(move |p| eml_item(&p, max)))
        }
        SourceKind::Archive => {
            if opts.folder.is_some() {
                bail!("--folder does not apply to an archive: it keeps its own folders");
            }
            let manifest = archive::read_manifest(path)?;
            restore_mailboxes(&mut imp, &manifest).await?;
            restore_collections(store, account, &manifest).await?;
            Box::new(archive_items(path.to_path_buf(), manifest))
        }
    };
    for item in items {
        imp.take(item, max).await?;
        if imp.summary.imported != last_progress {
            last_progress = imp.summary.imported;
            imp.summary.elapsed = imp.started.elapsed();
            progress(&imp.summary);
        }
    }
    imp.flush().await?;
    if !imp.cases.is_empty() {
        let written: Vec<&str> = imp.cases.values().map(String::as_str).collect();
        let mut case = KeywordCase::load(store, account).await?;
        case.remember(store, account, &written).await?;
    }
    imp.summary.elapsed = imp.started.elapsed();
    progress(&imp.summary);
    Ok(imp.summary)
}

fn mbox_items(
    path: &Path,
    folder: String,
    max: usize,
) -> anyhow::Result<impl Iterator<Item = Item> + Send + use<>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let shown = path.display().to_string();
    Ok(
        MboxReader::new(std::io::BufReader::with_capacity(1 << 20, file), max).map(move |item| {
            match item {
                MboxItem::Message {
                    index,
                    line,
                    raw,
                    keywords,
                    received_at,
                } => Item::Msg(Msg {
                    folders: vec![folder.clone()],
                    raw,
                    keywords,
                    received_at,
                    origin: format!("{shown}: message {index} (line {line})"),
                }),
                MboxItem::Failed { index, line, why } => Item::Failed {
                    origin: format!("{shown}: message {index} (line {line})"),
                    why,
                    count: 1,
                },
            }
        }),
    )
}

fn maildir_items(root: &Path, max: usize) -> anyhow::Result<impl Iterator<Item = Item> + Send> {
    let folders = maildir::folders(root)
        .with_context(|| format!("cannot read the Maildir {}", root.display()))?;
    let mut out: Vec<Box<dyn Iterator<Item = Item> + Send>> = Vec::new();
    for folder in folders {
        let files = match maildir::message_files(&folder.dir) {
            Ok(f) => f,
            Err(e) => {
                out.push(Box::new(std::iter::once(Item::Failed {
                    origin: folder.dir.display().to_string(),
                    why: format!("cannot list the folder: {e}"),
                    count: 1,
                })));
                continue;
            }
        };
        let name = match folder.name {
            Ok(n) => n,
            Err(lossy) => {
                let count = files.len() as u64;
                out.push(Box::new(std::iter::once(Item::Failed {
                    origin: folder.dir.display().to_string(),
                    why: format!(
                        "the folder name {lossy:?} is not UTF-8; its {count} messages were not imported (rename the directory)"
                    ),
                    count: count.max(1),
                })));
                continue;
            }
        };
        let keywords = maildir::read_keywords(&folder.dir);
        out.push(Box::new(files.into_iter().map(move |file| {
            let origin = file.display().to_string();
            let meta = match std::fs::metadata(&file) {
                Ok(m) => m,
                Err(e) => {
                    return Item::Failed {
                        origin,
                        why: format!("cannot read: {e}"),
                        count: 1,
                    };
                }
            };
            if meta.len() > max as u64 {
                return Item::Failed {
                    origin,
                    why: format!("{} bytes, over the size limit of {max} bytes", meta.len()),
                    count: 1,
                };
            }
            let raw = match std::fs::read(&file) {
                Ok(r) => r,
                Err(e) => {
                    return Item::Failed {
                        origin,
                        why: format!("cannot read: {e}"),
                        count: 1,
                    };
                }
            };
            if raw.is_empty() {
                return Item::Failed {
                    origin,
                    why: "empty file".into(),
                    count: 1,
                };
            }
            let file_name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Item::Msg(Msg {
                folders: vec![name.clone()],
                raw: crate::crlf(raw),
                keywords: maildir::name_keywords(&file_name, &keywords),
                received_at: maildir::internal_date(&file, Some(&meta)),
                origin,
            })
        })));
    }
    Ok(out.into_iter().flatten())
}

fn eml_item(path: &Path, max: usize) -> Item {
    let origin = path.display().to_string();
    let failed = |why: String| Item::Failed {
        origin: origin.clone(),
        why,
        count: 1,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return failed(format!("cannot read: {e}")),
    };
    if meta.len() > max as u64 {
        return failed(format!(
            "{} bytes, over the size limit of {max} bytes",
            meta.len()
        ));
    }
    match std::fs::read(path) {
        Ok(raw) if raw.is_empty() => failed("empty file".into()),
        Ok(raw) => Item::Msg(Msg {
            folders: vec![String::new()],
            raw: crate::crlf(raw),
            keywords: Vec::new(),
            received_at: maildir::internal_date(path, Some(&meta)),
            origin: origin.clone(),
        }),
        Err(e) => failed(format!("cannot read: {e}")),
    }
}

fn archive_items(dir: PathBuf, manifest: archive::Manifest) -> impl Iterator<Item = Item> + Send {
    manifest.messages.into_iter().map(move |m| {
        let origin = format!("{}/{}", dir.display(), m.file);
        let raw = match std::fs::read(dir.join(&m.file)) {
            Ok(r) => r,
            Err(e) => {
                return Item::Failed {
                    origin,
                    why: format!("cannot read: {e}"),
                    count: 1,
                };
            }
        };
        if BlobHash::of(&raw).0 != m.sha256 {
            return Item::Failed {
                origin,
                why: "the content does not match its sha256 in the manifest".into(),
                count: 1,
            };
        }
        if m.mailboxes.is_empty() {
            return Item::Failed {
                origin,
                why: "the manifest puts it in no folder".into(),
                count: 1,
            };
        }
        Item::Msg(Msg {
            folders: m.mailboxes,
            raw,
            keywords: m
                .keywords
                .iter()
                .filter_map(|k| flags::keyword(k))
                .collect(),
            received_at: Some(m.received_at),
            origin,
        })
    })
}

/// The archive's folders, with their roles (where the account has no mailbox with that
/// role yet), subscriptions and sort order.
async fn restore_mailboxes(
    imp: &mut Importer<'_>,
    manifest: &archive::Manifest,
) -> anyhow::Result<()> {
    for a in &manifest.mailboxes {
        let id = match imp.mailbox(&a.name).await {
            Ok(id) => id,
            Err(why) => {
                imp.summary.fail(&format!("folder {}", a.name), why, 0);
                continue;
            }
        };
        let Some(current) = imp.store.mailbox_get(imp.account, id).await? else {
            continue;
        };
        let role = a.role.as_deref().and_then(Role::from_jmap);
        if role.is_some() && current.role.is_none() && !imp.mailboxes.iter().any(|m| m.role == role)
        {
            imp.store.mailbox_set_role(imp.account, id, role).await?;
            if let Some(m) = imp.mailboxes.iter_mut().find(|m| m.id == id) {
                m.role = role;
            }
        }
        if current.subscribed != a.subscribed {
            imp.store
                .mailbox_set_subscribed(imp.account, id, a.subscribed)
                .await?;
        }
        if current.sort_order != a.sort_order {
            imp.store
                .mailbox_set_sort_order(imp.account, id, a.sort_order)
                .await?;
        }
    }
    Ok(())
}

/// The archive's collection items (identities, the vacation response), written as they
/// were stored; a second run writes the same values again.
async fn restore_collections(
    store: &dyn Store,
    account: AccountId,
    manifest: &archive::Manifest,
) -> anyhow::Result<()> {
    let mut writes = Vec::new();
    for (collection, items) in &manifest.collections {
        if !archive::COLLECTIONS.contains(&collection.as_str()) {
            continue;
        }
        for item in items {
            writes.push(ItemWrite::put(
                collection,
                &item.id,
                Expect::Any,
                item.value.clone(),
            ));
        }
    }
    for chunk in writes.chunks(MAX_WRITES) {
        store
            .collection_write(account, chunk.to_vec())
            .await
            .context("cannot restore the archive's identities and vacation response")?;
    }
    Ok(())
}
