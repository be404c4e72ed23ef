//! `bulwark export`: writes an account's mail (and, for the archive, its user data) to a
//! directory.

use crate::archive::{self, ArchivedItem, ArchivedMailbox, ArchivedMessage, Manifest};
use crate::maildir;
use crate::mbox;
use anyhow::{Context, bail};
use bulwark_core::keyword_case::KeywordCase;
use bulwark_store::{AccountId, EmailId, MessageMeta, Store};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Blobs read per store call.
const CHUNK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Maildir++: the root is INBOX, `.Sub.Folder` the others; flags in the file names,
    /// custom keywords in `dovecot-keywords`.
    Maildir,
    /// One mboxrd file per folder (`INBOX.mbox`, `Sub/Folder.mbox`), flags as `Status`,
    /// `X-Status` and `X-Keywords`.
    Mbox,
    /// Bulwark's archive: everything `import` needs to restore the account's mail exactly.
    Archive,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "maildir" => Ok(ExportFormat::Maildir),
            "mbox" => Ok(ExportFormat::Mbox),
            "archive" => Ok(ExportFormat::Archive),
            other => Err(format!(
                "unknown format {other:?}: maildir, mbox or archive"
            )),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExportSummary {
    pub folders: u64,
    /// Messages written (an email in two folders counts twice, except in the archive).
    pub messages: u64,
    /// Custom keywords Maildir could not keep (more than 26 in a folder).
    pub dropped_keywords: u64,
    pub elapsed: Duration,
}

/// The file of a folder in an mbox export: `Work/Clients` → `Work/Clients.mbox`. A `.` or
/// `..` level is written `%2E`/`%2E%2E`, so no folder name leads outside the directory.
pub fn mbox_file_name(name: &str) -> String {
    let parts: Vec<String> = name
        .split('/')
        .map(|p| match p {
            "" | "." | ".." => p.replace('.', "%2E"),
            other => other.to_string(),
        })
        .collect();
    format!("{}.mbox", parts.join("/"))
}

/// Exports the account into `dir` (which must be missing or empty).
pub async fn export(
    store: &dyn Store,
    account: AccountId,
    address: &str,
    dir: &Path,
    format: ExportFormat,
    progress: &mut (dyn FnMut(&ExportSummary) + Send),
) -> anyhow::Result<ExportSummary> {
    let started = Instant::now();
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty; export into a new or empty directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut summary = ExportSummary::default();
    let mut mailboxes = store.mailbox_list(account).await?;
    // INBOX first, then by name, so parents come before their children.
    mailboxes.sort_by(|a, b| (a.name != "INBOX", &a.name).cmp(&(b.name != "INBOX", &b.name)));
    let mut manifest = Manifest {
        format: archive::FORMAT.into(),
        version: archive::VERSION,
        account: address.to_string(),
        exported_at: bulwark_store::now_unix(),
        mailboxes: Vec::new(),
        messages: Vec::new(),
        collections: BTreeMap::new(),
    };
    let mut archived: HashMap<EmailId, usize> = HashMap::new();
    // Custom keywords go out in the case they were first written in (IMAP, an import).
    let case = KeywordCase::load(store, account).await?;
    let shown = |keywords: &[String]| case.shown_keywords(keywords);
    if format == ExportFormat::Archive {
        std::fs::create_dir_all(dir.join("messages"))?;
    }
    for mb in &mailboxes {
        summary.folders += 1;
        let metas = store.mailbox_messages(account, mb.id).await?;
        let mut maildir_writer = match format {
            ExportFormat::Maildir => Some(maildir::FolderWriter::create(
                &maildir::folder_dir(dir, &mb.name),
                mb.name == "INBOX",
            )?),
            _ => None,
        };
        let mut mbox_out = match format {
            ExportFormat::Mbox => {
                let path = dir.join(mbox_file_name(&mb.name));
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                Some(std::io::BufWriter::new(
                    std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                ))
            }
            _ => None,
        };
        manifest.mailboxes.push(ArchivedMailbox {
            name: mb.name.clone(),
            role: mb.role.map(|r| r.as_jmap().to_string()),
            subscribed: mb.subscribed,
            sort_order: mb.sort_order,
        });
        for chunk in metas.chunks(CHUNK) {
            // The archive stores each email once: only the first folder reads its content.
            let wanted: Vec<&MessageMeta> = chunk
                .iter()
                .filter(|m| {
                    if format != ExportFormat::Archive {
                        return true;
                    }
                    match archived.get(&m.email) {
                        Some(&i) => {
                            manifest.messages[i].mailboxes.push(mb.name.clone());
                            false
                        }
                        None => true,
                    }
                })
                .collect();
            let hashes: Vec<_> = wanted.iter().map(|m| m.blob.clone()).collect();
            let blobs = store.blob_get_many(&hashes).await?;
            for (meta, blob) in wanted.into_iter().zip(blobs) {
                let Some(raw) = blob else {
                    bail!(
                        "the content of message UID {} in {} is missing from the store",
                        meta.uid,
                        mb.name
                    );
                };
                summary.messages += 1;
                let keywords = shown(&meta.keywords);
                match format {
                    ExportFormat::Maildir => {
                        if let Some(w) = maildir_writer.as_mut() {
                            w.add(
                                &format!("B{}U{}", meta.email, meta.uid),
                                &raw,
                                &keywords,
                                meta.received_at,
                            )?;
                        }
                    }
                    ExportFormat::Mbox => {
                        if let Some(out) = mbox_out.as_mut() {
                            mbox::write_message(out, &raw, &keywords, meta.received_at)?;
                        }
                    }
                    ExportFormat::Archive => {
                        let file = format!("messages/{}.eml", meta.blob.0);
                        let path = dir.join(&file);
                        if !path.exists() {
                            std::fs::write(&path, &raw)?;
                        }
                        archived.insert(meta.email, manifest.messages.len());
                        manifest.messages.push(ArchivedMessage {
                            file,
                            sha256: meta.blob.0.clone(),
                            size: raw.len() as u64,
                            mailboxes: vec![mb.name.clone()],
                            keywords,
                            received_at: meta.received_at,
                        });
                    }
                }
            }
            summary.elapsed = started.elapsed();
            progress(&summary);
        }
        if let Some(w) = maildir_writer {
            summary.dropped_keywords += w.finish()? as u64;
        }
        if let Some(mut out) = mbox_out {
            out.flush()?;
        }
    }
    if format == ExportFormat::Archive {
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
        // Written last: a directory without it (an export that stopped) is no archive.
        let json = serde_json::to_vec_pretty(&manifest)?;
        std::fs::write(dir.join(archive::MANIFEST), json)?;
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mbox_file_names_stay_inside_the_directory() {
        assert_eq!(super::mbox_file_name("Work/Clients"), "Work/Clients.mbox");
        assert_eq!(super::mbox_file_name("../../etc"), "%2E%2E/%2E%2E/etc.mbox");
        assert_eq!(super::mbox_file_name("a/./b"), "a/%2E/b.mbox");
    }
}
