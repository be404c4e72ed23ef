//! In-memory cache of recent successful password verifications, so a client that logs in
//! (or sends HTTP Basic) again and again costs one argon2 run per [`MEMORY_CACHE_TTL`], not
//! one per request.
//!
//! Key: HMAC-SHA256 under a random per-process key of `username NUL password`, so the
//! cache never holds a password or anything an attacker could brute-force offline without
//! the process key. Value: which stored hash matched. A hit still re-reads the account from
//! the store and checks that the matched hash is still the account's password or one of its
//! app passwords, so a changed password, a deleted account or a revoked app password
//! invalidates the entry at once.

use crate::Credential;
use bulwark_store::Account;
use ring::hmac;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a successful verification is remembered.
pub const MEMORY_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Entries kept at most; when full, expired entries go first, then the oldest.
pub const MEMORY_CACHE_MAX_ENTRIES: usize = 10_000;

type CacheKey = [u8; 32];

#[derive(Debug, Clone)]
pub(crate) struct MemEntry {
    pub account: Account,
    /// The stored argon2 hash the password matched.
    pub matched_hash: String,
    pub credential: Credential,
    /// The app password's id when `credential` is an app password.
    pub app_password_id: Option<i64>,
    /// Whether TOTP was enabled when this was verified (used only while the store is down).
    pub totp_enabled: bool,
    pub at: Instant,
}

pub(crate) struct MemoryCache {
    key: hmac::Key,
    ttl: Duration,
    entries: Mutex<HashMap<CacheKey, MemEntry>>,
}

impl MemoryCache {
    pub fn new(ttl: Duration) -> MemoryCache {
        let secret: [u8; 32] = rand::random();
        MemoryCache {
            key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cache_key(&self, username: &str, password: &str) -> CacheKey {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(username.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// The fresh entry for these credentials, if any.
    pub fn get(&self, username: &str, password: &str) -> Option<MemEntry> {
        let key = self.cache_key(username, password);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key) {
            Some(e) if e.at.elapsed() < self.ttl => Some(e.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, username: &str, password: &str, entry: MemEntry) {
        let key = self.cache_key(username, password);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MEMORY_CACHE_MAX_ENTRIES && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, e| e.at.elapsed() < ttl);
            if entries.len() >= MEMORY_CACHE_MAX_ENTRIES
                && let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, entry);
    }

    pub fn remove(&self, username: &str, password: &str) {
        let key = self.cache_key(username, password);
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }

    /// Drops every entry of `account`.
    pub fn forget_account(&self, account: bulwark_store::AccountId) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.account.id != account);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::AccountId;

    fn entry(at: Instant) -> MemEntry {
        MemEntry {
            account: Account {
                id: AccountId(1),
                address: "a@x.test".into(),
                display_name: String::new(),
                password_hash: "h".into(),
                created_at: 0,
                used_bytes: 0,
            },
            matched_hash: "h".into(),
            credential: Credential::AccountPassword,
            app_password_id: None,
            totp_enabled: false,
            at,
        }
    }

    #[test]
    fn entry_is_found_only_with_the_same_username_and_password() {
        let c = MemoryCache::new(MEMORY_CACHE_TTL);
        c.insert("a@x.test", "pw", entry(Instant::now()));
        assert!(c.get("a@x.test", "pw").is_some());
        assert!(c.get("a@x.test", "pw2").is_none());
        assert!(c.get("b@x.test", "pw").is_none());
        // "a" + NUL + "bpw" must not collide with "ab" + NUL + "pw".
        assert!(c.get("a@x.tes", "tpw").is_none());
    }

    #[test]
    fn entry_expires_after_the_ttl() {
        let c = MemoryCache::new(Duration::from_millis(50));
        let Some(old) = Instant::now().checked_sub(Duration::from_millis(100)) else {
            return;
        };
        c.insert("a@x.test", "pw", entry(old));
        assert!(c.get("a@x.test", "pw").is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn cache_size_is_bounded() {
        let c = MemoryCache::new(MEMORY_CACHE_TTL);
        for i in 0..MEMORY_CACHE_MAX_ENTRIES + 10 {
            c.insert(&format!("u{i}"), "pw", entry(Instant::now()));
        }
        assert_eq!(c.len(), MEMORY_CACHE_MAX_ENTRIES);
        assert!(
            c.get(&format!("u{}", MEMORY_CACHE_MAX_ENTRIES + 9), "pw")
                .is_some()
        );
    }
}
