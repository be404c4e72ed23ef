//! Local, encrypted-at-rest cache of recent successful password verifications, used only
//! when the auth store cannot be reached (issue 6, "Auth data unreachable").
//!
//! Each entry holds the account record, the argon2 hash the password matched (never the
//! password), which kind of credential it was and whether TOTP was on. During an outage the
//! password is verified with argon2 against the cached hash, and only if the entry is younger
//! than [`OfflineCacheConfig::max_age`].
//!
//! On disk: `data_dir/auth-cache.bin` = 12-byte nonce ‖ ChaCha20-Poly1305(JSON entries), sealed
//! under the 32-byte key in `data_dir/auth-cache.key` (mode 0600, created on first use). Both
//! are written atomically (temp file + rename). A file that does not decrypt or parse is
//! ignored (logged) and replaced on the next write: the cache is an optimisation for
//! outages, never a reason to refuse to start.

use crate::Credential;
use bulwark_store::{Account, AccountId};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Sealed cache file in the data dir.
pub const OFFLINE_CACHE_FILE: &str = "auth-cache.bin";
/// Its key file (32 random bytes, 0600).
pub const OFFLINE_KEY_FILE: &str = "auth-cache.key";
/// Default longest age of an entry that may still verify a login during an outage.
pub const DEFAULT_OFFLINE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A cached entry is rewritten to disk at most this often when nothing else changed (keeps
/// the write rate low when clients log in every few seconds).
pub const OFFLINE_REFRESH_SECS: i64 = 3600;
/// Cached credentials per username at most (password + a few app passwords).
pub const MAX_CREDENTIALS_PER_USER: usize = 8;
/// Entries in the whole cache at most (oldest dropped first).
pub const MAX_OFFLINE_ENTRIES: usize = 50_000;
/// Largest cache file read (bounds memory on a corrupt or hostile file).
const MAX_CACHE_FILE_BYTES: u64 = 64 * 1024 * 1024;
const KEY_LEN: usize = 32;

/// Settings of the on-disk outage cache.
#[derive(Debug, Clone)]
pub struct OfflineCacheConfig {
    /// Longest age of a verification that still counts during an outage (default 7 days).
    /// Zero disables the on-disk cache.
    pub max_age: Duration,
}

impl Default for OfflineCacheConfig {
    fn default() -> Self {
        OfflineCacheConfig {
            max_age: DEFAULT_OFFLINE_MAX_AGE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineCacheError {
    #[error("auth cache {path}: {error}")]
    Io { path: PathBuf, error: String },
    #[error("auth cache key {0} is malformed (expected {KEY_LEN} bytes)")]
    BadKey(PathBuf),
    #[error("auth cache cannot be sealed")]
    Seal,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct OfflineEntry {
    pub username: String,
    pub account_id: i64,
    pub address: String,
    pub display_name: String,
    pub password_hash: String,
    pub created_at: i64,
    /// The stored argon2 hash the password matched.
    pub matched_hash: String,
    pub credential: Credential,
    /// The app password's id (absent in entries written before it was recorded).
    #[serde(default)]
    pub app_password_id: Option<i64>,
    pub totp_enabled: bool,
    /// Unix seconds of the last successful online verification.
    pub verified_at: i64,
}

impl OfflineEntry {
    pub fn account(&self) -> Account {
        Account {
            id: AccountId(self.account_id),
            address: self.address.clone(),
            display_name: self.display_name.clone(),
            password_hash: self.password_hash.clone(),
            created_at: self.created_at,
            // Not kept offline: the sign-in cache answers who the user is, not their usage.
            used_bytes: 0,
        }
    }
}

pub(crate) struct OfflineCache {
    dir: PathBuf,
    key: LessSafeKey,
    max_age_secs: i64,
    /// username → its cached credentials.
    entries: Mutex<HashMap<String, Vec<OfflineEntry>>>,
    /// Serialises file writes so the last writer always writes the newest snapshot.
    write_lock: Mutex<()>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> OfflineCacheError {
    OfflineCacheError::Io {
        path: path.to_path_buf(),
        error: e.to_string(),
    }
}

/// Writes `data` to `path` atomically with owner-only permissions.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn load_or_create_key(dir: &Path) -> Result<LessSafeKey, OfflineCacheError> {
    let path = dir.join(OFFLINE_KEY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; KEY_LEN] = rand::random();
            write_private(&path, &key).map_err(|e| io_err(&path, e))?;
            key.to_vec()
        }
        Err(e) => return Err(io_err(&path, e)),
    };
    if bytes.len() != KEY_LEN {
        return Err(OfflineCacheError::BadKey(path));
    }
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
        .map_err(|_| OfflineCacheError::BadKey(path.clone()))?;
    Ok(LessSafeKey::new(unbound))
}

impl OfflineCache {
    /// Opens (creating the key if needed) the cache in `dir` and reads what it holds.
    pub fn open(
        dir: &Path,
        config: &OfflineCacheConfig,
    ) -> Result<OfflineCache, OfflineCacheError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let key = load_or_create_key(dir)?;
        let cache = OfflineCache {
            dir: dir.to_path_buf(),
            key,
            max_age_secs: i64::try_from(config.max_age.as_secs()).unwrap_or(i64::MAX),
            entries: Mutex::new(HashMap::new()),
            write_lock: Mutex::new(()),
        };
        let loaded = cache.read_file();
        let mut map: HashMap<String, Vec<OfflineEntry>> = HashMap::new();
        for e in loaded {
            map.entry(e.username.clone()).or_default().push(e);
        }
        *cache.entries.lock().unwrap_or_else(|e| e.into_inner()) = map;
        Ok(cache)
    }

    fn file_path(&self) -> PathBuf {
        self.dir.join(OFFLINE_CACHE_FILE)
    }

    fn read_file(&self) -> Vec<OfflineEntry> {
        let path = self.file_path();
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_CACHE_FILE_BYTES => {
                tracing::warn!(path = %path.display(), "auth cache file too large; ignored");
                return vec![];
            }
            Ok(_) => {}
            Err(_) => return vec![],
        }
        let Ok(mut bytes) = std::fs::read(&path) else {
            return vec![];
        };
        match self.open_sealed(&mut bytes) {
            Some(entries) => entries,
            None => {
                tracing::warn!(path = %path.display(), "auth cache does not decrypt or parse; ignored");
                vec![]
            }
        }
    }

    fn open_sealed(&self, bytes: &mut [u8]) -> Option<Vec<OfflineEntry>> {
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self.key.open_in_place(nonce, Aad::empty(), sealed).ok()?;
        serde_json::from_slice(plain).ok()
    }

    fn seal(&self, entries: &[OfflineEntry]) -> Result<Vec<u8>, OfflineCacheError> {
        let mut data = serde_json::to_vec(entries).map_err(|_| OfflineCacheError::Seal)?;
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        self.key
            .seal_in_place_append_tag(nonce, Aad::empty(), &mut data)
            .map_err(|_| OfflineCacheError::Seal)?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Fresh cached credentials of `username` (at `now`, unix seconds).
    pub fn candidates(&self, username: &str, now: i64) -> Vec<OfflineEntry> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(username)
            .map(|list| {
                list.iter()
                    .filter(|e| now.saturating_sub(e.verified_at) <= self.max_age_secs)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records a successful online verification. Returns true when the in-memory set
    /// changed enough that the file should be rewritten.
    pub fn record(&self, entry: OfflineEntry) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let list = entries.entry(entry.username.clone()).or_default();
        if let Some(existing) = list
            .iter_mut()
            .find(|e| e.matched_hash == entry.matched_hash)
        {
            let stale =
                entry.verified_at.saturating_sub(existing.verified_at) >= OFFLINE_REFRESH_SECS;
            let same = OfflineEntry {
                verified_at: existing.verified_at,
                ..entry.clone()
            } == *existing;
            if same && !stale {
                return false;
            }
            *existing = entry;
            return true;
        }
        list.push(entry);
        if list.len() > MAX_CREDENTIALS_PER_USER {
            list.sort_by_key(|e| std::cmp::Reverse(e.verified_at));
            list.truncate(MAX_CREDENTIALS_PER_USER);
        }
        true
    }

    /// Drops cached credentials of `username` for which `keep` is false. Returns true if any
    /// were dropped.
    pub fn retain(&self, username: &str, keep: impl Fn(&OfflineEntry) -> bool) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = entries.get_mut(username) else {
            return false;
        };
        let before = list.len();
        list.retain(|e| keep(e));
        let dropped = list.len() != before;
        if list.is_empty() {
            entries.remove(username);
        }
        dropped
    }

    /// Drops every cached credential of account `account_id` (under any username). Returns
    /// true if any were dropped.
    pub fn forget_account(&self, account_id: i64) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped = false;
        for list in entries.values_mut() {
            let before = list.len();
            list.retain(|e| e.account_id != account_id);
            dropped |= list.len() != before;
        }
        entries.retain(|_, list| !list.is_empty());
        dropped
    }

    /// Writes the current entries (pruned by age and count) to disk, sealed. Blocking.
    pub fn persist(&self, now: i64) -> Result<(), OfflineCacheError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot: Vec<OfflineEntry> = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let max_age = self.max_age_secs;
            for list in entries.values_mut() {
                list.retain(|e| now.saturating_sub(e.verified_at) <= max_age);
            }
            entries.retain(|_, list| !list.is_empty());
            let mut all: Vec<OfflineEntry> = entries.values().flatten().cloned().collect();
            if all.len() > MAX_OFFLINE_ENTRIES {
                all.sort_by_key(|e| std::cmp::Reverse(e.verified_at));
                all.truncate(MAX_OFFLINE_ENTRIES);
                entries.clear();
                for e in &all {
                    entries
                        .entry(e.username.clone())
                        .or_default()
                        .push(e.clone());
                }
            }
            all
        };
        let sealed = self.seal(&snapshot)?;
        let path = self.file_path();
        write_private(&path, &sealed).map_err(|e| io_err(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn entry(user: &str, hash: &str, at: i64) -> OfflineEntry {
        OfflineEntry {
            username: user.into(),
            account_id: 3,
            address: user.into(),
            display_name: "A".into(),
            password_hash: hash.into(),
            created_at: 1,
            matched_hash: hash.into(),
            credential: Credential::AccountPassword,
            app_password_id: None,
            totp_enabled: false,
            verified_at: at,
        }
    }

    #[test]
    fn entries_survive_reopen_and_file_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OfflineCacheConfig::default();
        let c = OfflineCache::open(dir.path(), &cfg).unwrap();
        assert!(c.record(entry("a@x.test", "$argon2id$secret-hash", NOW)));
        c.persist(NOW).unwrap();
        let raw = std::fs::read(dir.path().join(OFFLINE_CACHE_FILE)).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("a@x.test"));
        assert!(!String::from_utf8_lossy(&raw).contains("argon2id"));
        let again = OfflineCache::open(dir.path(), &cfg).unwrap();
        let got = again.candidates("a@x.test", NOW + 10);
        assert_eq!(got, vec![entry("a@x.test", "$argon2id$secret-hash", NOW)]);
        #[cfg(unix)]
        for f in [OFFLINE_KEY_FILE, OFFLINE_CACHE_FILE] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }

    #[test]
    fn entries_older_than_max_age_do_not_count() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OfflineCacheConfig {
            max_age: Duration::from_secs(100),
        };
        let c = OfflineCache::open(dir.path(), &cfg).unwrap();
        c.record(entry("a@x.test", "h", NOW));
        assert_eq!(c.candidates("a@x.test", NOW + 100).len(), 1);
        assert!(c.candidates("a@x.test", NOW + 101).is_empty());
    }

    #[test]
    fn tampered_or_foreign_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = OfflineCacheConfig::default();
        let c = OfflineCache::open(dir.path(), &cfg).unwrap();
        c.record(entry("a@x.test", "h", NOW));
        c.persist(NOW).unwrap();
        let path = dir.path().join(OFFLINE_CACHE_FILE);
        let mut raw = std::fs::read(&path).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        let again = OfflineCache::open(dir.path(), &cfg).unwrap();
        assert!(again.candidates("a@x.test", NOW).is_empty());
        std::fs::write(&path, b"short").unwrap();
        assert!(
            OfflineCache::open(dir.path(), &cfg)
                .unwrap()
                .candidates("a@x.test", NOW)
                .is_empty()
        );
    }

    #[test]
    fn unchanged_entry_is_rewritten_only_after_the_refresh_interval() {
        let dir = tempfile::tempdir().unwrap();
        let c = OfflineCache::open(dir.path(), &OfflineCacheConfig::default()).unwrap();
        assert!(c.record(entry("a@x.test", "h", NOW)));
        assert!(!c.record(entry("a@x.test", "h", NOW + 5)));
        assert!(c.record(entry("a@x.test", "h", NOW + OFFLINE_REFRESH_SECS)));
        for i in 0..MAX_CREDENTIALS_PER_USER + 3 {
            c.record(entry("a@x.test", &format!("app{i}"), NOW + i as i64));
        }
        assert_eq!(
            c.candidates("a@x.test", NOW + 100).len(),
            MAX_CREDENTIALS_PER_USER
        );
    }
}
