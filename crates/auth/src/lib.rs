//! Credentials: argon2id password hashes, generated app passwords, and the login path with
//! throttling of failed attempts per remote IP and per account.
//!
//! Throttling design: an attacker must not be able to lock the real user out for long.
//! * per IP: after [`ThrottleConfig::ip_max_failures`] failures inside the window, that IP is
//!   refused (temporary) until the window passes;
//! * per account: after [`ThrottleConfig::account_delay_after`] failures each further attempt is
//!   delayed; after [`ThrottleConfig::account_max_failures`] the account refuses logins for
//!   [`ThrottleConfig::account_lockout`] only (short), then accepts again.
//!
//! Two-factor rule (issue 5): with TOTP on, [`Authenticator::authenticate`] (IMAP, SMTP AUTH,
//! HTTP Basic) accepts only app passwords; sign-ins that ask for a code use
//! [`Authenticator::authenticate_password`] and check the code when `second_factor_required`.
//!
//! Caches: a successful argon2 verification is remembered in memory for [`MEMORY_CACHE_TTL`]
//! (re-checked against the account row on every hit), and, with
//! [`Authenticator::with_offline_cache`], on disk (sealed) for logins while the auth store is
//! unreachable (issue 6).

mod memcache;
mod offline;
mod password;
#[cfg(test)]
mod tests;
mod throttle;
pub mod token;
pub mod totp;

pub use memcache::{MEMORY_CACHE_MAX_ENTRIES, MEMORY_CACHE_TTL};
pub use offline::{
    DEFAULT_OFFLINE_MAX_AGE, OFFLINE_CACHE_FILE, OFFLINE_KEY_FILE, OfflineCacheConfig,
    OfflineCacheError,
};
pub use password::{generate_app_password, hash_password, verify_password};
pub use throttle::{Throttle, ThrottleConfig, Verdict};

use bulwark_store::{Account, AccountId, Store, StoreError, now_unix};
use memcache::{MemEntry, MemoryCache};
use offline::{OfflineCache, OfflineEntry};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("authentication temporarily unavailable: {0}")]
    Unavailable(String),
}

/// Which secret a password matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// The account's own password (with TOTP on, it needs a second factor).
    AccountPassword,
    /// One of the account's generated app passwords (for IMAP/SMTP/JMAP clients; never
    /// needs a second factor).
    AppPassword,
}

/// A successful password check by [`Authenticator::authenticate_password`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub account: Account,
    pub credential: Credential,
    /// True when the account password matched and the account has TOTP enabled: the caller
    /// must check a TOTP or recovery code ([`totp::verify`]) before letting the user in.
    pub second_factor_required: bool,
    /// True when the auth store was unreachable and the password was verified against the
    /// local cache of recent verifications.
    pub from_offline_cache: bool,
}

/// The one login path used by SMTP AUTH, IMAP LOGIN/AUTHENTICATE and HTTP.
pub struct Authenticator {
    store: Arc<dyn Store>,
    throttle: Throttle,
    memory: MemoryCache,
    offline: Option<Arc<OfflineCache>>,
}

impl Authenticator {
    /// An authenticator with the in-memory verification cache only (no outage cache).
    pub fn new(store: Arc<dyn Store>, config: ThrottleConfig) -> Self {
        Authenticator {
            store,
            throttle: Throttle::new(config),
            memory: MemoryCache::new(MEMORY_CACHE_TTL),
            offline: None,
        }
    }

    /// Like [`Authenticator::new`], plus the encrypted on-disk cache of recent verifications
    /// in `data_dir` used when the auth store is unreachable (issue 6). A zero
    /// `offline.max_age` disables it.
    pub fn with_offline_cache(
        store: Arc<dyn Store>,
        config: ThrottleConfig,
        data_dir: &Path,
        offline: OfflineCacheConfig,
    ) -> Result<Self, OfflineCacheError> {
        let mut auth = Authenticator::new(store, config);
        if !offline.max_age.is_zero() {
            auth.offline = Some(Arc::new(OfflineCache::open(data_dir, &offline)?));
        }
        Ok(auth)
    }

    /// Verifies `username` (an address of the account: primary or alias) with its password or
    /// one of its app passwords, for protocols without a second factor (IMAP, SMTP AUTH,
    /// HTTP Basic). When the account has TOTP enabled only app passwords are accepted: the
    /// account password alone must never bypass the second factor (issue 5).
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        remote: IpAddr,
    ) -> Result<Account, LoginError> {
        let verified = self
            .authenticate_password(username, password, remote)
            .await?;
        if verified.second_factor_required {
            let user = normalise(username);
            self.throttle.record_failure(remote, &user);
            tracing::warn!(
                %remote,
                user = %user,
                "login refused: two-factor authentication is on, so this protocol accepts only app passwords"
            );
            return Err(LoginError::InvalidCredentials);
        }
        Ok(verified.account)
    }

    /// Checks the password (account password or an app password), throttled, and says whether
    /// a second factor is still needed. For sign-ins that ask for a TOTP code next (web
    /// sign-in, JMAP password grant). A success is not recorded with the throttle when a
    /// second factor is still required: the caller does that after the code checked out.
    pub async fn authenticate_password(
        &self,
        username: &str,
        password: &str,
        remote: IpAddr,
    ) -> Result<Verified, LoginError> {
        let username = normalise(username);
        match self.throttle.check(remote, &username) {
            Verdict::Allow => {}
            Verdict::Delay(d) => tokio::time::sleep(d).await,
            Verdict::Refuse(d) => {
                tracing::warn!(%remote, user = %username, "login refused: throttled");
                return Err(LoginError::Throttled {
                    retry_after_secs: d.as_secs().max(1),
                });
            }
        }
        match self.verify_online(&username, password).await {
            Ok(Some(v)) => {
                if !v.second_factor_required {
                    self.throttle.record_success(remote, &username);
                }
                Ok(v)
            }
            Ok(None) => {
                self.throttle.record_failure(remote, &username);
                tracing::warn!(%remote, user = %username, "login failed: invalid credentials");
                Err(LoginError::InvalidCredentials)
            }
            Err(e) => match self.verify_offline(&username, password).await {
                Some(v) => {
                    tracing::warn!(
                        %remote,
                        user = %username,
                        error = %e,
                        "auth store unreachable: verified against local cache"
                    );
                    Ok(v)
                }
                None => {
                    // Counted as a failure: the offline path must not become an unthrottled
                    // password oracle while the store is down.
                    self.throttle.record_failure(remote, &username);
                    tracing::error!(
                        %remote,
                        user = %username,
                        error = %e,
                        "login failed: auth store unreachable and no cached verification matches"
                    );
                    Err(LoginError::Unavailable(e.to_string()))
                }
            },
        }
    }

    async fn lookup(&self, username: &str) -> bulwark_store::Result<Option<Account>> {
        if let Some(a) = self.store.account_by_address(username).await? {
            return Ok(Some(a));
        }
        match self.store.resolve_address(username).await? {
            Some(id) => self.store.account_get(id).await,
            None => Ok(None),
        }
    }

    /// TOTP on? A corrupt TOTP state counts as on (fail closed for the account password).
    async fn totp_enabled(&self, account: AccountId) -> bulwark_store::Result<bool> {
        match totp::load(self.store.as_ref(), account).await {
            Ok(state) => Ok(state.is_some_and(|s| s.enabled)),
            Err(totp::TotpError::Store(e)) => Err(e),
            Err(e) => {
                tracing::error!(account = account.0, error = %e, "unreadable TOTP state; treating two-factor as on");
                Ok(true)
            }
        }
    }

    /// `Ok(None)`: wrong credentials. `Err`: the store failed (then the offline path runs).
    async fn verify_online(
        &self,
        username: &str,
        password: &str,
    ) -> bulwark_store::Result<Option<Verified>> {
        match self.verify_online_inner(username, password).await {
            Err(StoreError::NotFound(_)) => Ok(None),
            other => other,
        }
    }

    async fn verify_online_inner(
        &self,
        username: &str,
        password: &str,
    ) -> bulwark_store::Result<Option<Verified>> {
        let Some(account) = self.lookup(username).await? else {
            // Spend the same time as a real verification so user enumeration by timing is harder.
            let _ = verify_blocking(dummy_hash().to_string(), password.to_string()).await;
            self.forget_offline(username, |_| false).await;
            return Ok(None);
        };
        if let Some(hit) = self.memory.get(username, password) {
            if let Some(v) = self.revalidate(&account, hit, username, password).await? {
                return Ok(Some(v));
            }
            self.memory.remove(username, password);
        }
        let (credential, matched_hash) =
            if verify_blocking(account.password_hash.clone(), password.to_string()).await {
                (Credential::AccountPassword, account.password_hash.clone())
            } else {
                let apps = self.store.app_password_list(account.id).await?;
                let mut matched = None;
                for app in &apps {
                    if verify_blocking(app.hash.clone(), password.to_string()).await {
                        matched = Some(app.hash.clone());
                        break;
                    }
                }
                let Some(hash) = matched else {
                    // Drop cached credentials that are no longer the account's.
                    let current: Vec<String> = apps.iter().map(|a| a.hash.clone()).collect();
                    let password_hash = account.password_hash.clone();
                    self.forget_offline(username, move |e| {
                        e.account_id == account.id.0
                            && (e.matched_hash == password_hash
                                || current.contains(&e.matched_hash))
                    })
                    .await;
                    return Ok(None);
                };
                (Credential::AppPassword, hash)
            };
        let totp_enabled = match credential {
            Credential::AccountPassword => self.totp_enabled(account.id).await?,
            Credential::AppPassword => false,
        };
        self.memory.insert(
            username,
            password,
            MemEntry {
                account: account.clone(),
                matched_hash: matched_hash.clone(),
                credential,
                totp_enabled,
                at: Instant::now(),
            },
        );
        self.remember_offline(username, &account, matched_hash, credential, totp_enabled)
            .await;
        Ok(Some(Verified {
            account,
            credential,
            second_factor_required: totp_enabled,
            from_offline_cache: false,
        }))
    }

    /// A memory-cache hit is good only if the matched hash is still the account's password or
    /// one of its app passwords (a change or revocation invalidates it at once).
    async fn revalidate(
        &self,
        account: &Account,
        hit: MemEntry,
        username: &str,
        password: &str,
    ) -> bulwark_store::Result<Option<Verified>> {
        if hit.account.id != account.id {
            return Ok(None);
        }
        let still_valid = match hit.credential {
            Credential::AccountPassword => account.password_hash == hit.matched_hash,
            Credential::AppPassword => self
                .store
                .app_password_list(account.id)
                .await?
                .iter()
                .any(|a| a.hash == hit.matched_hash),
        };
        if !still_valid {
            return Ok(None);
        }
        let totp_enabled = match hit.credential {
            Credential::AccountPassword => self.totp_enabled(account.id).await?,
            Credential::AppPassword => false,
        };
        if totp_enabled != hit.totp_enabled || hit.account != *account {
            self.memory.insert(
                username,
                password,
                MemEntry {
                    account: account.clone(),
                    totp_enabled,
                    ..hit.clone()
                },
            );
        }
        Ok(Some(Verified {
            account: account.clone(),
            credential: hit.credential,
            second_factor_required: totp_enabled,
            from_offline_cache: false,
        }))
    }

    /// The store is down: a fresh memory-cache hit, or an argon2 match against the on-disk
    /// cache of recent verifications.
    async fn verify_offline(&self, username: &str, password: &str) -> Option<Verified> {
        if let Some(hit) = self.memory.get(username, password) {
            return Some(Verified {
                account: hit.account,
                credential: hit.credential,
                second_factor_required: hit.totp_enabled
                    && hit.credential == Credential::AccountPassword,
                from_offline_cache: true,
            });
        }
        let offline = self.offline.as_ref()?;
        for entry in offline.candidates(username, now_unix()) {
            if verify_blocking(entry.matched_hash.clone(), password.to_string()).await {
                return Some(Verified {
                    account: entry.account(),
                    credential: entry.credential,
                    second_factor_required: entry.totp_enabled
                        && entry.credential == Credential::AccountPassword,
                    from_offline_cache: true,
                });
            }
        }
        None
    }

    async fn remember_offline(
        &self,
        username: &str,
        account: &Account,
        matched_hash: String,
        credential: Credential,
        totp_enabled: bool,
    ) {
        let Some(offline) = &self.offline else {
            return;
        };
        let entry = OfflineEntry {
            username: username.to_string(),
            account_id: account.id.0,
            address: account.address.clone(),
            display_name: account.display_name.clone(),
            password_hash: account.password_hash.clone(),
            created_at: account.created_at,
            matched_hash,
            credential,
            totp_enabled,
            verified_at: now_unix(),
        };
        let account_id = account.id.0;
        let password_hash = account.password_hash.clone();
        // A changed account password makes older cached account-password entries useless.
        offline.retain(username, |e| {
            e.account_id == account_id
                && (e.credential == Credential::AppPassword || e.matched_hash == password_hash)
        });
        if offline.record(entry) {
            persist(offline).await;
        }
    }

    async fn forget_offline(&self, username: &str, keep: impl Fn(&OfflineEntry) -> bool) {
        let Some(offline) = &self.offline else {
            return;
        };
        if offline.retain(username, keep) {
            persist(offline).await;
        }
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }
}

async fn persist(offline: &Arc<OfflineCache>) {
    let cache = offline.clone();
    let now = now_unix();
    match tokio::task::spawn_blocking(move || cache.persist(now)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the auth outage cache"),
        Err(e) => tracing::warn!(error = %e, "auth outage cache writer failed"),
    }
}

fn normalise(username: &str) -> String {
    username.trim().to_ascii_lowercase()
}

/// A valid argon2id hash of a random string, verified against for unknown users.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&generate_app_password()).unwrap_or_default())
}

async fn verify_blocking(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&hash, &password))
        .await
        .unwrap_or(false)
}

/// Lets the caller wait out a throttling delay without an `Authenticator` (e.g. in tests).
pub fn delay_for(v: &Verdict) -> Option<Duration> {
    match v {
        Verdict::Delay(d) => Some(*d),
        _ => None,
    }
}
