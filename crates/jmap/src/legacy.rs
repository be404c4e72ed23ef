//! One-time migration of the JSON files older versions kept in each node's `data_dir`
//! (`jmap-identities.json`, `jmap-vacation.json`) into account-scoped collections of the
//! store, so every node sharing the database sees the same data.
//!
//! [`migrate_file`] reads a file (if present), turns it into item writes, writes each with
//! [`Expect::Absent`] (an item that exists was migrated before, possibly by another node, or
//! was written since: the store's copy wins), then removes the file. Writes to accounts that
//! no longer exist are skipped. If the store fails, the file is kept and the next start tries
//! again; a file that does not parse is kept too (and the error says why).

use bulwark_store::{AccountId, Expect, ItemWrite, Store, StoreError};
use serde::de::DeserializeOwned;
use std::path::Path;

/// What [`migrate_file`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// Items written.
    pub written: usize,
    /// Items already in the store (migrated before).
    pub present: usize,
    /// Items of accounts that no longer exist, or that the store refuses as invalid.
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file} is not valid JSON of the expected shape: {source}")]
    Parse {
        file: String,
        source: serde_json::Error,
    },
    #[error("cannot migrate {file} into the store: {source}")]
    Store { file: String, source: StoreError },
    #[error("migrated {file} but cannot remove it: {source}")]
    Remove {
        file: String,
        source: std::io::Error,
    },
}

/// Migrates `dir/file_name` once: parses it as `T`, writes the items `to_items` makes of it
/// (each with [`Expect::Absent`], whatever the write says), then deletes the file. `Ok(None)`:
/// there was no file.
pub async fn migrate_file<T: DeserializeOwned>(
    store: &dyn Store,
    dir: &Path,
    file_name: &str,
    to_items: impl FnOnce(T) -> Vec<(AccountId, ItemWrite)>,
) -> Result<Option<Migrated>, MigrateError> {
    let path = dir.join(file_name);
    let file = path.display().to_string();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(MigrateError::Read { file, source }),
    };
    let parsed: T = serde_json::from_slice(&bytes).map_err(|source| MigrateError::Parse {
        file: file.clone(),
        source,
    })?;
    let mut done = Migrated::default();
    for (account, mut write) in to_items(parsed) {
        write.expect = Expect::Absent;
        match store.collection_write(account, vec![write]).await {
            Ok(_) => done.written += 1,
            Err(StoreError::Conflict(_)) => done.present += 1,
            Err(StoreError::NotFound(_)) => done.skipped += 1,
            Err(e @ StoreError::Invalid(_)) => {
                tracing::warn!(file = %file, account = account.0, error = %e, "legacy item skipped");
                done.skipped += 1;
            }
            Err(source) => return Err(MigrateError::Store { file, source }),
        }
    }
    if let Err(source) = std::fs::remove_file(&path)
        && source.kind() != std::io::ErrorKind::NotFound
    {
        return Err(MigrateError::Remove { file, source });
    }
    tracing::info!(
        file = %file,
        written = done.written,
        already_present = done.present,
        skipped = done.skipped,
        "migrated a legacy JMAP state file into the store and removed it"
    );
    Ok(Some(done))
}
