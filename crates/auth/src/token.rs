//! Signed bearer tokens (access + refresh), verified locally without a store round-trip.
//!
//! Format (compact, URL-safe): `base64url(payload JSON) "." base64url(Ed25519 signature)`,
//! the signature covering the first segment's ASCII bytes. The payload names the key id
//! (`kid`) it was signed with, so keys can rotate with overlap.
//!
//! Two ways to hold keys:
//! * shared ([`TokenSigner::load_shared`], multi-node): the key set lives in the store as a
//!   global setting, so a token issued by one node verifies on every node; a local copy in
//!   `data_dir/token-keyset.json` lets a node start and verify while the store is down;
//!   [`TokenSigner::refresh`] re-reads it (every [`KEY_REFRESH_INTERVAL`]) and
//!   [`rotate_shared_keys`] rotates with overlap (see [`keyset`]).
//! * local ([`TokenSigner::load_or_create`]): one key per data dir in `token-keys.json`; a
//!   shared signer imports that key on first start so tokens issued before keep verifying.
//!
//! Revoked session ids live in `data_dir/revoked-sessions.json` with the time after which
//! every token of that session has expired anyway (then the entry is dropped). Files are
//! written atomically (temp file + rename) so a crash never leaves a half-written key.
//!
//! Failure mode (ARCHITECTURE principle 4): verification needs only the in-memory keys and
//! revocation list, so signed-in users stay signed in while the account store is down.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bulwark_store::{AccountId, Store, now_unix};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub mod keyset;
pub mod revocations;
#[cfg(test)]
mod shared_tests;
pub use keyset::{
    KEY_ACTIVATION_DELAY_SECS, KEY_OVERLAP_SECS, KEY_REFRESH_INTERVAL, KEYSET_CACHE_FILE,
    KEYSET_SETTING,
};
use keyset::{KeySet, LiveKey, StoredKey, signing_index};
pub use revocations::{
    CREDENTIAL_REFRESH_INTERVAL, CredentialRevocations, account_epoch, app_password_revocation,
    now_ms, publish_credentials,
};

/// File holding a local-only signer's key and the verification keys of rotated-out keys.
pub const KEY_FILE: &str = "token-keys.json";
/// File holding revoked session ids.
pub const REVOCATION_FILE: &str = "revoked-sessions.json";
/// File holding the credential revocations (account epochs, deleted app passwords).
pub const CREDENTIAL_REVOCATION_FILE: &str = "revoked-credentials.json";
/// Verification keys a local-only signer keeps after [`TokenSigner::rotate_local`].
pub const MAX_PREVIOUS_KEYS: usize = 2;
/// Longest token we try to parse (a real one is ~250 bytes).
pub const MAX_TOKEN_LEN: usize = 2048;
/// Revoked sessions kept at most (oldest dropped first); bounds the file and memory.
pub const MAX_REVOKED_SESSIONS: usize = 100_000;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token was signed by an unknown key")]
    UnknownKey,
    #[error("token has expired")]
    Expired,
    #[error("token is a {found:?} token where a {expected:?} token is needed")]
    WrongKind {
        expected: TokenKind,
        found: TokenKind,
    },
    #[error("the session of this token was revoked")]
    Revoked,
    #[error("token key storage: {0}")]
    Storage(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
    /// A browser's device cookie: proves the device signed in to the account before (it
    /// grants nothing; it only exempts the device from the per-account lock-out).
    Device,
}

/// What a token may do (issue 13, item 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything, account management (`/api/account/*`) included: sign-ins with the account
    /// password (and the second factor).
    Account,
    /// The mail protocols only (JMAP mail, push): sessions opened with an app password.
    /// Tokens from before scopes existed count as this.
    #[default]
    Mail,
}

/// Who a new token is for: account, session, scope and the app password it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub account: AccountId,
    pub sid: String,
    pub scope: Scope,
    pub app: Option<i64>,
}

impl Grant {
    /// The same grant again (for a refresh).
    pub fn of(claims: &Claims) -> Grant {
        Grant {
            account: claims.account(),
            sid: claims.sid.clone(),
            scope: claims.scope,
            app: claims.app,
        }
    }
}

/// How long credential revocations are kept: longer than any token lives.
pub const CREDENTIAL_REVOCATION_KEEP_SECS: i64 = 366 * 24 * 3600;

/// What a token says, once its signature verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub typ: TokenKind,
    /// The account (`AccountId.0`).
    pub sub: i64,
    /// Session id shared by the access and refresh tokens of one sign-in.
    pub sid: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds (the token is invalid at and after this second).
    pub exp: i64,
    /// Id of the key that signed it.
    pub kid: String,
    /// What the token may do (absent in older tokens: [`Scope::Mail`]).
    #[serde(default)]
    pub scope: Scope,
    /// The app password the session was opened with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<i64>,
    /// Issued at, unix milliseconds (absent in older tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
}

impl Claims {
    pub fn account(&self) -> AccountId {
        AccountId(self.sub)
    }

    /// Issued at in unix milliseconds (older tokens: the start of their `iat` second).
    pub fn issued_at_ms(&self) -> i64 {
        self.iat_ms.unwrap_or(self.iat.saturating_mul(1000))
    }
}

/// The legacy per-data-dir key file (`token-keys.json`).
#[derive(Serialize, Deserialize)]
struct KeyFile {
    current: StoredSecret,
    #[serde(default)]
    previous: Vec<StoredPublic>,
}
#[derive(Serialize, Deserialize, Clone)]
struct StoredSecret {
    kid: String,
    secret: String,
}
#[derive(Serialize, Deserialize, Clone)]
struct StoredPublic {
    kid: String,
    public: String,
}

impl KeyFile {
    /// As a key set: every key active since forever, the current one last (so it signs).
    fn to_key_set(&self) -> Result<KeySet, TokenError> {
        let signing = SigningKey::from_bytes(&hex::decode_to_array(&self.current.secret)?);
        let mut keys: Vec<StoredKey> = self
            .previous
            .iter()
            .rev()
            .map(|p| StoredKey {
                kid: p.kid.clone(),
                secret: None,
                public: p.public.clone(),
                created_at: 0,
                activate_at: 0,
                retire_at: None,
            })
            .collect();
        keys.push(StoredKey {
            kid: self.current.kid.clone(),
            secret: Some(self.current.secret.clone()),
            public: hex::encode(signing.verifying_key().as_bytes()),
            created_at: 0,
            activate_at: 0,
            retire_at: None,
        });
        Ok(KeySet { keys })
    }
}

/// Where the keys come from and go to.
#[derive(Debug, Clone)]
enum Backing {
    /// Never written (tests).
    Memory,
    /// Local-only: `data_dir/token-keys.json`.
    LocalFile(PathBuf),
    /// Shared through the store; local copy in `data_dir/token-keyset.json`.
    Shared(PathBuf),
}

struct Keys {
    set: KeySet,
    live: Vec<LiveKey>,
    /// Signs when no key is active by the clock (a key set always holds one with a secret).
    fallback: (String, SigningKey),
}

impl Keys {
    fn new(set: KeySet) -> Result<Keys, TokenError> {
        let live = set.decode()?;
        let fallback = live
            .iter()
            .find_map(|k| k.signing.clone().map(|s| (k.kid.clone(), s)))
            .ok_or_else(|| storage("token key set has no signing key"))?;
        Ok(Keys {
            set,
            live,
            fallback,
        })
    }

    /// A fresh random key, active since forever.
    fn generated() -> Keys {
        let (stored, signing) = keyset::generate_key(0, 0);
        let live = vec![LiveKey {
            kid: stored.kid.clone(),
            signing: Some(signing.clone()),
            verifying: signing.verifying_key(),
            activate_at: 0,
            retire_at: None,
        }];
        Keys {
            fallback: (stored.kid.clone(), signing),
            set: KeySet { keys: vec![stored] },
            live,
        }
    }

    /// The key id and key that sign at `now`.
    fn signing_at(&self, now: i64) -> (&str, &SigningKey) {
        signing_index(&self.live, now)
            .and_then(|i| self.live.get(i))
            .and_then(|k| k.signing.as_ref().map(|s| (k.kid.as_str(), s)))
            .unwrap_or((self.fallback.0.as_str(), &self.fallback.1))
    }
}

/// Issues and verifies tokens; holds the revocation list.
pub struct TokenSigner {
    dir: Option<PathBuf>,
    backing: Backing,
    keys: RwLock<Keys>,
    /// session id → unix time after which the entry is useless (all its tokens expired).
    revoked: RwLock<HashMap<String, i64>>,
    /// Shared signers: revocations not yet published to the store.
    pending_revocations: std::sync::Mutex<HashMap<String, i64>>,
    /// Wakes the refresh task to publish a revocation at once.
    wake: tokio::sync::Notify,
    /// Account epochs and deleted app passwords in force here.
    credentials: RwLock<CredentialRevocations>,
    /// Shared signers: credential revocations not yet published to the store.
    pending_credentials: std::sync::Mutex<CredentialRevocations>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("backing", &self.backing)
            .finish_non_exhaustive()
    }
}

fn new_kid() -> String {
    let bytes: [u8; 6] = rand::random();
    B64.encode(bytes)
}

/// A random session id (128 bits, base64url).
pub fn new_session_id() -> String {
    let bytes: [u8; 16] = rand::random();
    B64.encode(bytes)
}

fn storage(e: impl std::fmt::Display) -> TokenError {
    TokenError::Storage(e.to_string())
}

/// Writes `data` to `path` atomically with owner-only permissions.
fn write_private(path: &Path, data: &[u8]) -> Result<(), TokenError> {
    crate::offline::write_private(path, data)
        .map_err(|e| storage(format!("{}: {e}", path.display())))
}

/// Tiny hex helpers (the auth crate has no `hex` dependency).
mod hex {
    use super::TokenError;
    pub fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    pub fn decode_to_array(s: &str) -> Result<[u8; 32], TokenError> {
        let bad = || TokenError::Storage("key file holds a malformed key".into());
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let text = std::str::from_utf8(chunk).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

/// Reads `path`; `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, TokenError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage(format!("{}: {e}", path.display()))),
    }
}

fn read_legacy_key_file(data_dir: &Path) -> Result<Option<KeySet>, TokenError> {
    let path = data_dir.join(KEY_FILE);
    match read_optional(&path)? {
        Some(bytes) => {
            let file: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| storage(format!("{}: {e}", path.display())))?;
            Ok(Some(file.to_key_set()?))
        }
        None => Ok(None),
    }
}

fn read_credential_revocations(data_dir: &Path) -> Result<CredentialRevocations, TokenError> {
    match read_optional(&data_dir.join(CREDENTIAL_REVOCATION_FILE))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| storage(format!("{CREDENTIAL_REVOCATION_FILE}: {e}"))),
        None => Ok(CredentialRevocations::default()),
    }
}

fn read_revocations(data_dir: &Path) -> Result<HashMap<String, i64>, TokenError> {
    match read_optional(&data_dir.join(REVOCATION_FILE))? {
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| storage(format!("{REVOCATION_FILE}: {e}")))
        }
        None => Ok(HashMap::new()),
    }
}

/// Rotates the shared key set in the store (for `bulwark auth rotate-key`): a new key signs
/// from `now + activation_delay_secs` on; the keys before it keep verifying until
/// `overlap_secs` after that. Running nodes pick it up at their next refresh. Returns the
/// new key id. Use [`KEY_ACTIVATION_DELAY_SECS`] and [`KEY_OVERLAP_SECS`] unless testing.
pub async fn rotate_shared_keys(
    store: &dyn Store,
    now: i64,
    activation_delay_secs: i64,
    overlap_secs: i64,
) -> Result<String, TokenError> {
    let set = keyset::update_shared(store, now, |current| {
        current.rotated(now, activation_delay_secs, overlap_secs)
    })
    .await?;
    set.keys
        .last()
        .map(|k| k.kid.clone())
        .ok_or_else(|| storage("rotated key set is empty"))
}

impl TokenSigner {
    /// Local-only signer: loads the keys from `data_dir/token-keys.json`, creating a fresh key
    /// (0600) if absent, and the revocation list. Tokens verify only where this file is.
    pub fn load_or_create(data_dir: &Path) -> Result<TokenSigner, TokenError> {
        std::fs::create_dir_all(data_dir).map_err(storage)?;
        let set = match read_legacy_key_file(data_dir)? {
            Some(set) => set,
            None => {
                let mut set = KeySet::fresh(0);
                for k in &mut set.keys {
                    k.activate_at = 0;
                }
                write_private(&data_dir.join(KEY_FILE), &key_file_bytes(&set)?)?;
                set
            }
        };
        Ok(TokenSigner {
            dir: Some(data_dir.to_path_buf()),
            backing: Backing::LocalFile(data_dir.join(KEY_FILE)),
            keys: RwLock::new(Keys::new(set)?),
            revoked: RwLock::new(read_revocations(data_dir)?),
            pending_revocations: Default::default(),
            wake: tokio::sync::Notify::new(),
            credentials: RwLock::new(read_credential_revocations(data_dir)?),
            pending_credentials: Default::default(),
        })
    }

    /// Shared signer for every node of one store: loads the key set from the store (creating
    /// it if the store has none: this node's old `token-keys.json` key if there is one, so
    /// tokens issued before keep verifying, else a fresh key), keeps a local copy in
    /// `data_dir`, and starts from that copy when the store is unreachable.
    pub async fn load_shared(
        store: &dyn Store,
        data_dir: &Path,
    ) -> Result<TokenSigner, TokenError> {
        std::fs::create_dir_all(data_dir).map_err(storage)?;
        let now = now_unix();
        let cache_path = data_dir.join(KEYSET_CACHE_FILE);
        let cached = match read_optional(&cache_path)? {
            Some(bytes) => match std::str::from_utf8(&bytes)
                .map_err(storage)
                .and_then(|text| KeySet::parse_stored(text, keyset::KEYSET_CACHE_CONTEXT))
            {
                Ok(set) => Some(set),
                Err(e) => {
                    tracing::warn!(path = %cache_path.display(), error = %e, "ignoring unreadable token key cache");
                    None
                }
            },
            None => None,
        };
        // Import the per-data-dir key only once (before this node ever used the shared set).
        let legacy = if cached.is_none() {
            read_legacy_key_file(data_dir)?
        } else {
            None
        };
        let fetched = keyset::fetch_or_publish(store, || match &legacy {
            Some(set) => set.clone(),
            None => KeySet::fresh(now),
        })
        .await;
        let set = match fetched {
            Ok(mut set) => {
                if let Some(old) = &legacy
                    && old
                        .keys
                        .iter()
                        .any(|k| !set.keys.iter().any(|s| s.kid == k.kid))
                {
                    // Another node created the shared set first: publish this node's old key
                    // as verification-only so the tokens it issued keep working.
                    set = keyset::update_shared(store, now, |current| {
                        let mut next = current.clone();
                        next.import_verification_keys(old, now);
                        next
                    })
                    .await?;
                }
                set
            }
            Err(e) => match cached.or(legacy) {
                Some(set) => {
                    tracing::warn!(error = %e, "token keys: store unreachable, starting from the local copy");
                    set
                }
                None => return Err(e),
            },
        };
        write_private(
            &cache_path,
            set.to_stored(keyset::KEYSET_CACHE_CONTEXT)?.as_bytes(),
        )?;
        let revoked = read_revocations(data_dir)?;
        let local_credentials = read_credential_revocations(data_dir)?;
        let mut credentials = local_credentials.clone();
        match publish_credentials(store, &local_credentials, now).await {
            Ok(shared) => credentials.merge(&shared),
            Err(e) => {
                tracing::warn!(error = %e, "credential revocations: store unreachable, starting from the local copy");
            }
        }
        Ok(TokenSigner {
            dir: Some(data_dir.to_path_buf()),
            backing: Backing::Shared(cache_path),
            keys: RwLock::new(Keys::new(set)?),
            revoked: RwLock::new(revoked.clone()),
            // Published on the first refresh (a revocation made just before a crash or
            // during a store outage is not lost; re-publishing is idempotent).
            pending_revocations: std::sync::Mutex::new(revoked),
            wake: tokio::sync::Notify::new(),
            credentials: RwLock::new(credentials),
            pending_credentials: std::sync::Mutex::new(local_credentials),
        })
    }

    /// Re-reads the shared key set from the store (call every [`KEY_REFRESH_INTERVAL`]),
    /// publishes this node's revocations and adopts the other nodes'. Returns whether the
    /// key set changed. On error the keys in memory stay as they are.
    pub async fn refresh(&self, store: &dyn Store) -> Result<bool, TokenError> {
        let Backing::Shared(cache_path) = &self.backing else {
            return Ok(false);
        };
        let mine = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .set
            .clone();
        let set = keyset::fetch_or_publish(store, || mine.clone()).await?;
        let changed = set != mine;
        if changed {
            let keys = Keys::new(set)?;
            write_private(
                cache_path,
                keys.set.to_stored(keyset::KEYSET_CACHE_CONTEXT)?.as_bytes(),
            )?;
            *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
            tracing::info!("token signing keys refreshed from the store");
        }
        self.sync_revocations(store).await?;
        self.sync_credentials(store).await?;
        Ok(changed)
    }

    /// Publishes this node's credential revocations and adopts the other nodes' (and the
    /// admin commands'). Cheap: runs every [`CREDENTIAL_REFRESH_INTERVAL`].
    pub async fn sync_credentials(&self, store: &dyn Store) -> Result<(), TokenError> {
        if !matches!(self.backing, Backing::Shared(_)) {
            return Ok(());
        }
        let now = now_unix();
        let pending = self
            .pending_credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let shared = publish_credentials(store, &pending, now).await?;
        if !pending.is_empty() {
            let mut p = self
                .pending_credentials
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *p == pending {
                *p = CredentialRevocations::default();
            }
        }
        let snapshot = {
            let mut mine = self.credentials.write().unwrap_or_else(|e| e.into_inner());
            let before = mine.clone();
            mine.merge(&shared);
            mine.prune(now);
            if *mine == before {
                return Ok(());
            }
            serde_json::to_vec(&*mine).map_err(storage)?
        };
        if let Some(dir) = &self.dir {
            write_private(&dir.join(CREDENTIAL_REVOCATION_FILE), &snapshot)?;
        }
        Ok(())
    }

    /// Cuts off tokens by credential (an account epoch after a password change, a deleted
    /// app password): at once on this node, on the others once published (at the next
    /// [`CREDENTIAL_REFRESH_INTERVAL`]; the refresh task is woken to publish at once).
    pub fn revoke_credentials(&self, change: &CredentialRevocations) -> Result<(), TokenError> {
        let snapshot = {
            let mut mine = self.credentials.write().unwrap_or_else(|e| e.into_inner());
            mine.merge(change);
            mine.prune(now_unix());
            serde_json::to_vec(&*mine).map_err(storage)?
        };
        if let Backing::Shared(_) = self.backing {
            self.pending_credentials
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .merge(change);
            self.wake.notify_one();
        }
        if let Some(dir) = &self.dir {
            write_private(&dir.join(CREDENTIAL_REVOCATION_FILE), &snapshot)?;
        }
        Ok(())
    }

    async fn sync_revocations(&self, store: &dyn Store) -> Result<(), TokenError> {
        let now = now_unix();
        let pending = self
            .pending_revocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let shared = revocations::publish_and_fetch(store, &pending, now).await?;
        self.pending_revocations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|sid, _| !pending.contains_key(sid));
        let snapshot = {
            let mut revoked = self.revoked.write().unwrap_or_else(|e| e.into_inner());
            let before = revoked.len();
            let new = shared
                .keys()
                .filter(|sid| !revoked.contains_key(*sid))
                .count();
            revoked.extend(shared);
            revocations::prune(&mut revoked, now);
            if new == 0 && revoked.len() == before {
                return Ok(());
            }
            serde_json::to_vec(&*revoked).map_err(storage)?
        };
        if let Some(dir) = &self.dir {
            write_private(&dir.join(REVOCATION_FILE), &snapshot)?;
        }
        Ok(())
    }

    /// Runs [`TokenSigner::refresh`] every [`KEY_REFRESH_INTERVAL`] until the task is aborted.
    pub fn spawn_refresh(self: &Arc<Self>, store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
        let signer = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(KEY_REFRESH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut credentials = tokio::time::interval(CREDENTIAL_REFRESH_INTERVAL);
            credentials.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            credentials.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = signer.wake.notified() => {}
                    _ = credentials.tick() => {
                        if let Err(e) = signer.sync_credentials(store.as_ref()).await {
                            tracing::debug!(error = %e, "cannot sync credential revocations");
                        }
                        continue;
                    }
                }
                if let Err(e) = signer.refresh(store.as_ref()).await {
                    tracing::warn!(error = %e, "cannot refresh token signing keys; keeping the current ones");
                }
            }
        })
    }

    /// Rotates the shared key set (see [`rotate_shared_keys`]) and loads the result here.
    pub async fn rotate(
        &self,
        store: &dyn Store,
        now: i64,
        activation_delay_secs: i64,
        overlap_secs: i64,
    ) -> Result<String, TokenError> {
        let kid = rotate_shared_keys(store, now, activation_delay_secs, overlap_secs).await?;
        self.refresh(store).await?;
        Ok(kid)
    }

    /// A signer with a random key that is never written anywhere (tests).
    pub fn ephemeral() -> TokenSigner {
        TokenSigner {
            dir: None,
            backing: Backing::Memory,
            keys: RwLock::new(Keys::generated()),
            revoked: RwLock::new(HashMap::new()),
            pending_revocations: Default::default(),
            wake: tokio::sync::Notify::new(),
            credentials: Default::default(),
            pending_credentials: Default::default(),
        }
    }

    /// Id of the key that signs new tokens now.
    pub fn current_key_id(&self) -> String {
        self.key_id_at(now_unix())
    }

    /// Id of the key that signs tokens issued at `now`.
    pub fn key_id_at(&self, now: i64) -> String {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.signing_at(now).0.to_string()
    }

    /// Every key id this signer verifies.
    pub fn key_ids(&self) -> Vec<String> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.live.iter().map(|k| k.kid.clone()).collect()
    }

    /// Local-only signers: makes a new signing key current; the old one keeps verifying (up
    /// to [`MAX_PREVIOUS_KEYS`] old keys are kept). Shared signers use [`TokenSigner::rotate`].
    pub fn rotate_local(&self) -> Result<(), TokenError> {
        if let Backing::Shared(_) = self.backing {
            return Err(storage("a shared signer rotates through the store"));
        }
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let mut set = keys.set.clone();
        for k in &mut set.keys {
            k.secret = None;
        }
        set.keys.push(keyset::generate_key(0, 0).0);
        let excess = set.keys.len().saturating_sub(MAX_PREVIOUS_KEYS + 1);
        set.keys.drain(..excess);
        let next = Keys::new(set)?;
        if let Backing::LocalFile(path) = &self.backing {
            write_private(path, &key_file_bytes(&next.set)?)?;
        }
        *keys = next;
        Ok(())
    }

    /// Signs a [`Scope::Mail`] token of `kind` for `account` in session `sid`, valid for
    /// `ttl_secs` from `now`. See [`TokenSigner::issue_grant`] for other scopes.
    pub fn issue(
        &self,
        kind: TokenKind,
        account: AccountId,
        sid: &str,
        ttl_secs: i64,
        now: i64,
    ) -> String {
        let grant = Grant {
            account,
            sid: sid.to_string(),
            scope: Scope::Mail,
            app: None,
        };
        self.issue_grant(kind, &grant, ttl_secs, now)
    }

    /// Signs a token of `kind` for `grant`, valid for `ttl_secs` from `now`.
    pub fn issue_grant(&self, kind: TokenKind, grant: &Grant, ttl_secs: i64, now: i64) -> String {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let (kid, signing) = keys.signing_at(now);
        // Milliseconds from the clock when `now` is the present (give or take the second that
        // may have ticked since), so a token issued just after a password change in the same
        // second is not taken for an older one.
        let clock_ms = now_ms();
        let iat_ms = if (clock_ms.div_euclid(1000) - now).abs() <= 1 {
            clock_ms
        } else {
            now.saturating_mul(1000)
        };
        let claims = Claims {
            typ: kind,
            sub: grant.account.0,
            sid: grant.sid.clone(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            kid: kid.to_string(),
            scope: grant.scope,
            app: grant.app,
            iat_ms: Some(iat_ms),
        };
        // Serializing a struct of strings and integers cannot fail.
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature = signing.sign(payload.as_bytes());
        format!("{payload}.{}", B64.encode(signature.to_bytes()))
    }

    /// Verifies signature, kind, expiry and revocation; returns the claims.
    pub fn verify(&self, token: &str, kind: TokenKind, now: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload_bytes = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let sig_bytes: [u8; 64] = B64
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?
            .try_into()
            .map_err(|_| TokenError::Malformed)?;
        // The kid is read before the signature is checked only to pick the key.
        let claims: Claims =
            serde_json::from_slice(&payload_bytes).map_err(|_| TokenError::Malformed)?;
        let key: VerifyingKey = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            keys.live
                .iter()
                .find(|k| k.kid == claims.kid && k.retire_at.is_none_or(|t| now < t))
                .map(|k| k.verifying)
                .ok_or(TokenError::UnknownKey)?
        };
        key.verify(payload.as_bytes(), &Signature::from_bytes(&sig_bytes))
            .map_err(|_| TokenError::BadSignature)?;
        if claims.typ != kind {
            return Err(TokenError::WrongKind {
                expected: kind,
                found: claims.typ,
            });
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if self.is_revoked(&claims.sid) {
            return Err(TokenError::Revoked);
        }
        if self
            .credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .revokes(&claims)
        {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    pub fn is_revoked(&self, sid: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(sid)
    }

    /// Revokes every token of session `sid`. `until` is when its last token expires
    /// anyway (after that the entry is pruned). Durable on return when file-backed.
    pub fn revoke_session(&self, sid: &str, until: i64, now: i64) -> Result<(), TokenError> {
        let snapshot = {
            let mut revoked = self.revoked.write().unwrap_or_else(|e| e.into_inner());
            revoked.retain(|_, exp| *exp > now);
            if revoked.len() >= MAX_REVOKED_SESSIONS
                && let Some(oldest) = revoked
                    .iter()
                    .min_by_key(|(_, exp)| **exp)
                    .map(|(k, _)| k.clone())
            {
                revoked.remove(&oldest);
            }
            revoked.insert(sid.to_string(), until);
            serde_json::to_vec(&*revoked).map_err(storage)?
        };
        if let Backing::Shared(_) = self.backing {
            self.pending_revocations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(sid.to_string(), until);
            self.wake.notify_one();
        }
        if let Some(dir) = &self.dir {
            write_private(&dir.join(REVOCATION_FILE), &snapshot)?;
        }
        Ok(())
    }
}

/// The legacy file format: the newest key with a secret is `current`, the others (newest
/// first) are `previous`.
fn key_file_bytes(set: &KeySet) -> Result<Vec<u8>, TokenError> {
    let current = set
        .keys
        .iter()
        .rev()
        .find_map(|k| {
            k.secret.as_ref().map(|secret| StoredSecret {
                kid: k.kid.clone(),
                secret: secret.clone(),
            })
        })
        .ok_or_else(|| storage("no signing key to write"))?;
    let file = KeyFile {
        previous: set
            .keys
            .iter()
            .rev()
            .filter(|k| k.kid != current.kid)
            .map(|k| StoredPublic {
                kid: k.kid.clone(),
                public: k.public.clone(),
            })
            .collect(),
        current,
    };
    serde_json::to_vec_pretty(&file).map_err(storage)
}

#[cfg(test)]
mod tests;
