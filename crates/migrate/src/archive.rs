//! Bulwark's own archive: a directory with `manifest.json` and the raw messages under
//! `messages/`, named by their SHA-256 (each content once, however many folders hold it).
//! The manifest keeps what the store keeps: folders with roles, subscriptions and sort
//! order; per message its folders, keywords and internal date; and the account's
//! collections of user data (identities, the vacation response) as stored.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// `format` of a Bulwark archive manifest.
pub const FORMAT: &str = "bulwark-archive";
pub const VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
/// Collections of user data an archive carries.
pub const COLLECTIONS: [&str; 2] = [
    bulwark_store::collections::names::IDENTITIES,
    bulwark_store::collections::names::VACATION,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// The account it was exported from.
    pub account: String,
    /// Unix seconds.
    pub exported_at: i64,
    pub mailboxes: Vec<ArchivedMailbox>,
    pub messages: Vec<ArchivedMessage>,
    /// Collection name → its items, values exactly as stored.
    pub collections: BTreeMap<String, Vec<ArchivedItem>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedMailbox {
    /// `/`-separated path.
    pub name: String,
    /// JMAP role (`inbox`, `sent`, …).
    pub role: Option<String>,
    pub subscribed: bool,
    pub sort_order: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedMessage {
    /// Path below the archive directory (`messages/SHA256.eml`).
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// The folders it is in (names from `mailboxes`).
    pub mailboxes: Vec<String>,
    pub keywords: Vec<String>,
    /// Unix seconds.
    pub received_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivedItem {
    pub id: String,
    pub value: String,
}

/// Is `dir` a Bulwark archive?
pub fn is_archive(dir: &Path) -> bool {
    read_manifest(dir).is_ok()
}

/// Reads and checks the manifest of the archive at `dir`.
pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read(dir.join(MANIFEST))?;
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a Bulwark archive manifest: {e}", MANIFEST))?;
    if m.format != FORMAT {
        anyhow::bail!("{MANIFEST}: format is {:?}, not {FORMAT:?}", m.format);
    }
    if m.version > VERSION {
        anyhow::bail!(
            "{MANIFEST}: archive version {} is newer than this Bulwark reads ({VERSION})",
            m.version
        );
    }
    for msg in &m.messages {
        // The manifest names files inside the archive only.
        let p = Path::new(&msg.file);
        if p.is_absolute()
            || p.components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            anyhow::bail!(
                "{MANIFEST}: message file {:?} is outside the archive",
                msg.file
            );
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_archive(dir.path()));
        let mut m = Manifest {
            format: FORMAT.into(),
            version: VERSION,
            account: "a@b".into(),
            exported_at: 1,
            mailboxes: vec![],
            messages: vec![ArchivedMessage {
                file: "messages/x.eml".into(),
                sha256: "x".into(),
                size: 1,
                mailboxes: vec!["INBOX".into()],
                keywords: vec![],
                received_at: 1,
            }],
            collections: BTreeMap::new(),
        };
        std::fs::write(dir.path().join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(read_manifest(dir.path()).unwrap(), m);
        m.messages[0].file = "../../etc/passwd".into();
        std::fs::write(dir.path().join(MANIFEST), serde_json::to_vec(&m).unwrap()).unwrap();
        assert!(read_manifest(dir.path()).is_err());
    }
}
