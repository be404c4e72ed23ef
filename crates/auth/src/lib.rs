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

pub mod at_rest;
pub mod known_devices;
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
pub use password::{
    MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, check_password_strength, generate_app_password,
    hash_password, verify_password,
};
pub use throttle::{
    Admission, Attempt, KNOWN_DEVICE_TTL, MAX_SLOT_WAIT, Throttle, ThrottleConfig, Verdict,
};

use bulwark_store::{Account, AccountId, Store, StoreError, now_unix};
use memcache::{MemEntry, MemoryCache};
use offline::{OfflineCache, OfflineEntry};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Why a verification refused a password (before the throttle decides what to say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Wrong,
    AppPasswordRequired,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The account's own password was right, but the account has two-factor sign-in on and
    /// this protocol has no second factor: only an app password is accepted. Said only to
    /// someone who gave the right password (counted as a failed attempt all the same).
    #[error("this account has two-factor sign-in on: use an app password")]
    AppPasswordRequired,
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("authentication temporarily unavailable: {0}")]
    Unavailable(String),
}

/// Why [`Authenticator::sign_in`] (a sign-in that can ask for a second factor) refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignInError {
    #[error(transparent)]
    Login(#[from] LoginError),
    /// The password was right and the account has TOTP on: send the code too.
    #[error("a two-factor code is required")]
    SecondFactorRequired,
    #[error("the two-factor code is wrong or was already used")]
    InvalidSecondFactor,
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
    /// The id of the app password that matched (`None` for the account password, or an app
    /// password verified from an outage cache written before ids were recorded).
    pub app_password_id: Option<i64>,
    /// True when the account password matched and the account has TOTP enabled: the caller
    /// must check a TOTP or recovery code ([`totp::verify`]) before letting the user in.
    pub second_factor_required: bool,
    /// True when the auth store was unreachable and the password was verified against the
    /// local cache of recent verifications.
    pub from_offline_cache: bool,
}

/// A sign-in that may ask for a second factor (web sign-in, JMAP password grant).
#[derive(Debug, Clone, Copy)]
pub struct SignIn<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// TOTP or recovery code, when the user gave one.
    pub code: Option<&'a str>,
    pub remote: IpAddr,
    /// Whether an app password is acceptable here (not for the web sign-in).
    pub app_passwords: bool,
    /// The account this device proved it signed in to before (a device cookie or a valid
    /// token): exempt from the per-account lock-out if it is the account signing in.
    pub known_device: Option<AccountId>,
}

/// Which credentials one login may check.
#[derive(Debug, Clone, Copy)]
struct Policy {
    account_password: bool,
    app_passwords: bool,
    /// A protocol without a second factor: with TOTP on the account password is not
    /// acceptable and is not even checked (same work whether it is right or wrong, item 17).
    protocol: bool,
}

/// The one login path used by SMTP AUTH, IMAP LOGIN/AUTHENTICATE and HTTP.
pub struct Authenticator {
    store: Arc<dyn Store>,
    throttle: Throttle,
    memory: MemoryCache,
    offline: Option<Arc<OfflineCache>>,
    /// argon2 verifications run (a counter for tests and figures).
    password_checks: AtomicU64,
}

impl Authenticator {
    /// An authenticator with the in-memory verification cache only (no outage cache).
    pub fn new(store: Arc<dyn Store>, config: ThrottleConfig) -> Self {
        Authenticator {
            store,
            throttle: Throttle::new(config),
            memory: MemoryCache::new(MEMORY_CACHE_TTL),
            offline: None,
            password_checks: AtomicU64::new(0),
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

    /// How many argon2 password verifications this authenticator ran.
    pub fn password_checks(&self) -> u64 {
        self.password_checks.load(Ordering::Relaxed)
    }

    /// Verifies `username` (an address of the account: primary or alias) with its password or
    /// one of its app passwords, for protocols without a second factor (IMAP, SMTP AUTH,
    /// HTTP Basic). When the account has TOTP enabled only app passwords are accepted: the
    /// account password alone must never bypass the second factor (issue 5), and it is not
    /// even checked, so the time taken does not tell whether it was right.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        remote: IpAddr,
    ) -> Result<Account, LoginError> {
        let policy = Policy {
            account_password: true,
            app_passwords: true,
            protocol: true,
        };
        let (verified, attempt) = self
            .attempt_login(username, password, remote, policy, false)
            .await?;
        self.succeeded(attempt, &verified.account, username, remote)
            .await;
        Ok(verified.account)
    }

    /// Checks the password (account password or an app password), throttled, and says whether
    /// a second factor is still needed. A success is not recorded with the throttle when a
    /// second factor is still required. Prefer [`Authenticator::sign_in`], which checks the
    /// code inside the same throttled attempt.
    pub async fn authenticate_password(
        &self,
        username: &str,
        password: &str,
        remote: IpAddr,
    ) -> Result<Verified, LoginError> {
        let policy = Policy {
            account_password: true,
            app_passwords: true,
            protocol: false,
        };
        let (verified, attempt) = self
            .attempt_login(username, password, remote, policy, false)
            .await?;
        if !verified.second_factor_required {
            self.succeeded(attempt, &verified.account, username, remote)
                .await;
        }
        Ok(verified)
    }

    /// A whole sign-in in one throttled attempt: the password, then the TOTP or recovery code
    /// when the account password matched and 2FA is on. A right password without a code
    /// counts neither as a failure nor as a success ([`SignInError::SecondFactorRequired`]);
    /// a wrong code counts as a failure.
    pub async fn sign_in(&self, req: SignIn<'_>) -> Result<Verified, SignInError> {
        let known = match req.known_device {
            Some(id) => matches!(
                self.lookup(&normalise(req.username)).await,
                Ok(Some(a)) if a.id == id
            ),
            None => false,
        };
        let policy = Policy {
            account_password: true,
            app_passwords: req.app_passwords,
            protocol: false,
        };
        let (verified, attempt) = self
            .attempt_login(req.username, req.password, req.remote, policy, known)
            .await?;
        if verified.second_factor_required {
            let Some(code) = req.code.filter(|c| !c.trim().is_empty()) else {
                return Err(SignInError::SecondFactorRequired);
            };
            let now = u64::try_from(now_unix()).unwrap_or(0);
            match totp::verify(self.store.as_ref(), verified.account.id, code, now).await {
                Ok(true) => {}
                Ok(false) => {
                    attempt.failed();
                    tracing::warn!(remote = %req.remote, user = %normalise(req.username), "sign-in failed: wrong second factor");
                    return Err(SignInError::InvalidSecondFactor);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot check the second factor");
                    return Err(
                        LoginError::Unavailable("two-factor state unavailable".into()).into(),
                    );
                }
            }
        }
        self.succeeded(attempt, &verified.account, req.username, req.remote)
            .await;
        Ok(verified)
    }

    /// Re-checks the account password (and the current second factor when 2FA is on) of an
    /// already signed-in `account`, for changes that need it in the same request (password,
    /// 2FA, app passwords). Goes through the login throttle like every password check, the
    /// per-account lock-out included unless `known_device` (the caller proved the device
    /// signed in before, e.g. with its device cookie: a token alone is not enough).
    pub async fn reauthenticate(
        &self,
        account: &Account,
        password: &str,
        code: Option<&str>,
        remote: IpAddr,
        known_device: bool,
    ) -> Result<(), SignInError> {
        let verified = self
            .sign_in(SignIn {
                username: &account.address,
                password,
                code,
                remote,
                app_passwords: false,
                known_device: known_device.then_some(account.id),
            })
            .await?;
        if verified.account.id != account.id || verified.credential != Credential::AccountPassword {
            return Err(LoginError::InvalidCredentials.into());
        }
        Ok(())
    }

    async fn stored_known_device(&self, username: &str, remote: IpAddr) -> bool {
        match self.lookup(username).await {
            Ok(Some(account)) => {
                known_devices::is_known(self.store.as_ref(), account.id, remote, now_unix()).await
            }
            _ => false,
        }
    }

    /// Ends a successful attempt; the first success from an address this node did not know is
    /// recorded in the store as a known device of the account.
    async fn succeeded(
        &self,
        attempt: Attempt<'_>,
        account: &Account,
        username: &str,
        remote: IpAddr,
    ) {
        let username = normalise(username);
        let new_here = !self.throttle.knows(remote, &username);
        attempt.succeeded();
        if new_here
            && let Err(e) =
                known_devices::remember(self.store.as_ref(), account.id, remote, now_unix()).await
        {
            tracing::debug!(error = %e, "known device not recorded");
        }
    }

    /// Reserves a throttle slot, then verifies. On success the caller ends the attempt.
    async fn attempt_login(
        &self,
        username: &str,
        password: &str,
        remote: IpAddr,
        policy: Policy,
        known_device: bool,
    ) -> Result<(Verified, Attempt<'_>), LoginError> {
        let username = normalise(username);
        // Under attack, an address this node does not know may still be a known device of
        // the account (another node, or before a restart): ask the store.
        let known_device = known_device
            || (self.throttle.under_pressure(&username)
                && !self.throttle.knows(remote, &username)
                && self.stored_known_device(&username, remote).await);
        let attempt = match self.throttle.begin(remote, &username, known_device).await {
            Ok(a) => a,
            Err(d) => {
                tracing::warn!(%remote, user = %username, "login refused: throttled");
                return Err(LoginError::Throttled {
                    retry_after_secs: d.as_secs().max(1),
                });
            }
        };
        let (policy, restricted) = match attempt.admission() {
            Admission::Full => (policy, None),
            Admission::AppPasswordsOnly { retry_after } => (
                Policy {
                    account_password: false,
                    ..policy
                },
                Some(retry_after.as_secs().max(1)),
            ),
        };
        if let Some(retry_after_secs) = restricted
            && (!policy.app_passwords || !password::looks_like_app_password(password))
        {
            // Locked for unknown devices and only an app password would be accepted: anything
            // else is refused without being checked (and nothing is counted, so the owner
            // retrying the account password does not get their address blocked).
            tracing::warn!(%remote, user = %username, "login refused: account locked for unknown devices");
            return Err(LoginError::Throttled { retry_after_secs });
        }
        match self.verify_online(&username, password, policy).await {
            Ok(Ok(v)) => Ok((v, attempt)),
            Ok(Err(refused)) => {
                attempt.failed();
                tracing::warn!(%remote, user = %username, ?refused, "login failed");
                Err(match (restricted, refused) {
                    (Some(retry_after_secs), _) => LoginError::Throttled { retry_after_secs },
                    (None, Refused::AppPasswordRequired) => LoginError::AppPasswordRequired,
                    (None, Refused::Wrong) => LoginError::InvalidCredentials,
                })
            }
            Err(e) => match self.verify_offline(&username, password, policy).await {
                Some(v) => {
                    tracing::warn!(
                        %remote,
                        user = %username,
                        error = %e,
                        "auth store unreachable: verified against local cache"
                    );
                    Ok((v, attempt))
                }
                None => {
                    // Counted as a failure: the offline path must not become an unthrottled
                    // password oracle while the store is down.
                    attempt.failed();
                    tracing::error!(
                        %remote,
                        user = %username,
                        error = %e,
                        "login failed: auth store unreachable and no cached verification matches"
                    );
                    Err(LoginError::Unavailable(
                        "the account store cannot be reached".into(),
                    ))
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

    /// `Ok(Err(_))`: refused. `Err`: the store failed (then the offline path runs).
    async fn verify_online(
        &self,
        username: &str,
        password: &str,
        policy: Policy,
    ) -> bulwark_store::Result<std::result::Result<Verified, Refused>> {
        match self.verify_online_inner(username, password, policy).await {
            Err(StoreError::NotFound(_)) => Ok(Err(Refused::Wrong)),
            Ok(Some(v)) => Ok(Ok(v)),
            Ok(None) if policy.protocol && policy.account_password => {
                // Two-factor on and no app password matched: was it the account password?
                // Then the user is told to make an app password instead of only "invalid"
                // (issue 18). Checked only after everything else failed, and throttled.
                match self.lookup(username).await? {
                    Some(account)
                        if !password::looks_like_app_password(password)
                            && self.totp_enabled(account.id).await?
                            && self.verify(&account.password_hash, password).await =>
                    {
                        Ok(Err(Refused::AppPasswordRequired))
                    }
                    _ => Ok(Err(Refused::Wrong)),
                }
            }
            Ok(None) => Ok(Err(Refused::Wrong)),
            Err(e) => Err(e),
        }
    }

    async fn verify_online_inner(
        &self,
        username: &str,
        password: &str,
        policy: Policy,
    ) -> bulwark_store::Result<Option<Verified>> {
        let Some(account) = self.lookup(username).await? else {
            // Spend the same time as a real verification so user enumeration by timing is harder.
            let _ = self.verify(dummy_hash(), password).await;
            self.forget_offline(username, |_| false).await;
            return Ok(None);
        };
        let totp_enabled = self.totp_enabled(account.id).await?;
        let account_ok = policy.account_password && !(policy.protocol && totp_enabled);
        let acceptable = |c: Credential| match c {
            Credential::AccountPassword => account_ok,
            Credential::AppPassword => policy.app_passwords,
        };
        if let Some(hit) = self.memory.get(username, password) {
            // A hit for a credential this login may not use is ignored, and the full work
            // below runs, so a cached right password answers as slowly as a wrong one.
            if acceptable(hit.credential) {
                if let Some(v) = self
                    .revalidate(&account, hit, username, password, totp_enabled)
                    .await?
                {
                    return Ok(Some(v));
                }
                self.memory.remove(username, password);
            }
        }
        let mut matched = None;
        if account_ok && self.verify(&account.password_hash, password).await {
            matched = Some((
                Credential::AccountPassword,
                account.password_hash.clone(),
                None,
            ));
        }
        if matched.is_none() && policy.app_passwords {
            let apps = self.store.app_password_list(account.id).await?;
            if apps.is_empty() && !account_ok {
                // Same work as one real check (item 17: nothing to learn from the time taken).
                let _ = self.verify(dummy_hash(), password).await;
            }
            for app in &apps {
                if self.verify(&app.hash, password).await {
                    matched = Some((Credential::AppPassword, app.hash.clone(), Some(app.id)));
                    break;
                }
            }
            if matched.is_none() && account_ok {
                // Drop cached credentials that are no longer the account's.
                let current: Vec<String> = apps.iter().map(|a| a.hash.clone()).collect();
                let password_hash = account.password_hash.clone();
                self.forget_offline(username, move |e| {
                    e.account_id == account.id.0
                        && (e.matched_hash == password_hash || current.contains(&e.matched_hash))
                })
                .await;
            }
        }
        let Some((credential, matched_hash, app_password_id)) = matched else {
            return Ok(None);
        };
        self.memory.insert(
            username,
            password,
            MemEntry {
                account: account.clone(),
                matched_hash: matched_hash.clone(),
                credential,
                app_password_id,
                totp_enabled,
                at: Instant::now(),
            },
        );
        self.remember_offline(
            username,
            &account,
            matched_hash,
            credential,
            app_password_id,
            totp_enabled,
        )
        .await;
        Ok(Some(Verified {
            account,
            credential,
            app_password_id,
            second_factor_required: credential == Credential::AccountPassword && totp_enabled,
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
        totp_enabled: bool,
    ) -> bulwark_store::Result<Option<Verified>> {
        if hit.account.id != account.id {
            return Ok(None);
        }
        let (still_valid, app_password_id) = match hit.credential {
            Credential::AccountPassword => (account.password_hash == hit.matched_hash, None),
            Credential::AppPassword => {
                let apps = self.store.app_password_list(account.id).await?;
                match apps.iter().find(|a| a.hash == hit.matched_hash) {
                    Some(app) => (true, Some(app.id)),
                    None => (false, None),
                }
            }
        };
        if !still_valid {
            return Ok(None);
        }
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
            app_password_id,
            second_factor_required: hit.credential == Credential::AccountPassword && totp_enabled,
            from_offline_cache: false,
        }))
    }

    /// The store is down: a fresh memory-cache hit, or an argon2 match against the on-disk
    /// cache of recent verifications.
    async fn verify_offline(
        &self,
        username: &str,
        password: &str,
        policy: Policy,
    ) -> Option<Verified> {
        let acceptable = |c: Credential, totp_enabled: bool| match c {
            Credential::AccountPassword => {
                policy.account_password && !(policy.protocol && totp_enabled)
            }
            Credential::AppPassword => policy.app_passwords,
        };
        if let Some(hit) = self.memory.get(username, password)
            && acceptable(hit.credential, hit.totp_enabled)
        {
            return Some(Verified {
                account: hit.account,
                credential: hit.credential,
                app_password_id: hit.app_password_id,
                second_factor_required: hit.totp_enabled
                    && hit.credential == Credential::AccountPassword,
                from_offline_cache: true,
            });
        }
        let offline = self.offline.as_ref()?;
        for entry in offline.candidates(username, now_unix()) {
            if !acceptable(entry.credential, entry.totp_enabled) {
                continue;
            }
            if self.verify(&entry.matched_hash, password).await {
                return Some(Verified {
                    account: entry.account(),
                    credential: entry.credential,
                    app_password_id: entry.app_password_id,
                    second_factor_required: entry.totp_enabled
                        && entry.credential == Credential::AccountPassword,
                    from_offline_cache: true,
                });
            }
        }
        None
    }

    async fn verify(&self, hash: &str, password: &str) -> bool {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
        verify_blocking(hash.to_string(), password.to_string()).await
    }

    async fn remember_offline(
        &self,
        username: &str,
        account: &Account,
        matched_hash: String,
        credential: Credential,
        app_password_id: Option<i64>,
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
            app_password_id,
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

    /// Forgets the cached verifications of `account` (memory and outage cache) after its
    /// password changed or an app password was deleted, so an old secret cannot be accepted
    /// from a cache during a store outage.
    pub async fn forget_account(&self, account: AccountId) {
        self.memory.forget_account(account);
        if let Some(offline) = &self.offline
            && offline.forget_account(account.0)
        {
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

/// The user name and password of an HTTP Basic `credentials` (RFC 7617 §2: base64 of
/// `user-id ":" password`, UTF-8 by the `charset="UTF-8"` the realm announces); `None` when
/// they are no base64, no UTF-8 or have no colon. Shared by every HTTP shell (JMAP, DAV).
pub fn basic_credentials(credentials: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Who an HTTP request's `Authorization` field names (see [`authorize_http`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPrincipal {
    pub account: AccountId,
    /// The account's address; `None` when a valid token was shown but the store could not
    /// be read for the address (a store outage must not sign the user out: the shell
    /// decides what to show instead).
    pub username: Option<String>,
}

/// Why [`authorize_http`] refused; each HTTP shell maps it to its answer (JMAP problem
/// details, DAV `401`/`503`), always with a `WWW-Authenticate` challenge on `401`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpAuthError {
    #[error("authentication required")]
    Missing,
    #[error("malformed Basic credentials")]
    MalformedBasic,
    #[error("unsupported authorization scheme")]
    UnsupportedScheme,
    /// The Bearer token did not verify (expired, revoked, forged).
    #[error("{0}")]
    BadToken(String),
    #[error("the account no longer exists")]
    NoSuchAccount,
    #[error(transparent)]
    Login(#[from] LoginError),
}

/// RFC 7235 §4.2: an `Authorization` field value — `Basic` (RFC 7617, password or app
/// password, through the throttled [`Authenticator`]) or `Bearer` (RFC 6750, an access token
/// of `signer`) — to the account it names. The one reader of the JMAP and DAV shells.
pub async fn authorize_http(
    auth: &Authenticator,
    signer: &token::TokenSigner,
    store: &dyn Store,
    authorization: Option<&str>,
    remote: IpAddr,
) -> Result<HttpPrincipal, HttpAuthError> {
    let Some(value) = authorization else {
        return Err(HttpAuthError::Missing);
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("bearer") {
        let claims = signer
            .verify(credentials.trim(), token::TokenKind::Access, now_unix())
            .map_err(|e| HttpAuthError::BadToken(e.to_string()))?;
        return match store.account_get(claims.account()).await {
            Ok(Some(a)) => Ok(HttpPrincipal {
                account: a.id,
                username: Some(a.address),
            }),
            Ok(None) => Err(HttpAuthError::NoSuchAccount),
            Err(_) => Ok(HttpPrincipal {
                account: claims.account(),
                username: None,
            }),
        };
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) =
            basic_credentials(credentials).ok_or(HttpAuthError::MalformedBasic)?;
        let account = auth.authenticate(&user, &password, remote).await?;
        return Ok(HttpPrincipal {
            account: account.id,
            username: Some(account.address),
        });
    }
    Err(HttpAuthError::UnsupportedScheme)
}

#[cfg(test)]
mod basic_tests {
    #[test]
    fn basic_credentials_decode_or_refuse() {
        // "a@b.test:p:w" — the password may hold a colon, the user id may not.
        assert_eq!(
            super::basic_credentials(" YUBiLnRlc3Q6cDp3 "),
            Some(("a@b.test".into(), "p:w".into()))
        );
        assert_eq!(super::basic_credentials("bm9jb2xvbg=="), None); // "nocolon"
        assert_eq!(super::basic_credentials("!!"), None);
        assert_eq!(super::basic_credentials("/w=="), None); // not UTF-8
    }
}
