//! Signed bearer tokens (access + refresh), verified locally without a store round-trip.
//!
//! Format (compact, URL-safe): `base64url(payload JSON) "." base64url(Ed25519 signature)`,
//! the signature covering the first segment's ASCII bytes. The payload names the key id
//! (`kid`) it was signed with, so keys can rotate: the current key signs, the current and up
//! to [`MAX_PREVIOUS_KEYS`] earlier keys verify.
//!
//! Keys live in `data_dir/token-keys.json` (mode 0600). Revoked session ids live in
//! `data_dir/revoked-sessions.json` with the time after which every token of that session
//! has expired anyway (then the entry is dropped). Both files are written atomically
//! (temp file + rename) so a crash never leaves a half-written key.
//!
//! Failure mode (ARCHITECTURE principle 4): verification needs only the in-memory keys and
//! revocation list, so signed-in users stay signed in while the account store is down.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bulwark_store::AccountId;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// File holding the signing key and the verification keys of rotated-out keys.
pub const KEY_FILE: &str = "token-keys.json";
/// File holding revoked session ids.
pub const REVOCATION_FILE: &str = "revoked-sessions.json";
/// Verification keys kept after rotation (tokens signed by older keys stop verifying).
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
}

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
}

impl Claims {
    pub fn account(&self) -> AccountId {
        AccountId(self.sub)
    }
}

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

struct Keys {
    kid: String,
    signing: SigningKey,
    previous: Vec<(String, VerifyingKey)>,
}

/// Issues and verifies tokens; holds the revocation list.
pub struct TokenSigner {
    dir: Option<PathBuf>,
    keys: RwLock<Keys>,
    /// session id → unix time after which the entry is useless (all its tokens expired).
    revoked: RwLock<HashMap<String, i64>>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn new_kid() -> String {
    let bytes: [u8; 6] = rand::random();
    B64.encode(bytes)
}

fn new_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
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
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(storage)?;
    file.write_all(data).map_err(storage)?;
    file.sync_all().map_err(storage)?;
    std::fs::rename(&tmp, path).map_err(storage)?;
    Ok(())
}

fn decode_secret(s: &StoredSecret) -> Result<SigningKey, TokenError> {
    let bytes = hex::decode_to_array(&s.secret)?;
    Ok(SigningKey::from_bytes(&bytes))
}

fn decode_public(p: &StoredPublic) -> Result<VerifyingKey, TokenError> {
    let bytes = hex::decode_to_array(&p.public)?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| storage(format!("bad public key {}: {e}", p.kid)))
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

impl TokenSigner {
    /// Loads the keys from `data_dir/token-keys.json`, creating a fresh key (0600) if absent,
    /// and the revocation list.
    pub fn load_or_create(data_dir: &Path) -> Result<TokenSigner, TokenError> {
        std::fs::create_dir_all(data_dir).map_err(storage)?;
        let path = data_dir.join(KEY_FILE);
        let keys = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: KeyFile = serde_json::from_slice(&bytes)
                    .map_err(|e| storage(format!("{}: {e}", path.display())))?;
                let previous = file
                    .previous
                    .iter()
                    .map(|p| Ok((p.kid.clone(), decode_public(p)?)))
                    .collect::<Result<Vec<_>, TokenError>>()?;
                Keys {
                    kid: file.current.kid.clone(),
                    signing: decode_secret(&file.current)?,
                    previous,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = Keys {
                    kid: new_kid(),
                    signing: new_signing_key(),
                    previous: vec![],
                };
                write_private(&path, &key_file_bytes(&keys)?)?;
                keys
            }
            Err(e) => return Err(storage(format!("{}: {e}", path.display()))),
        };
        let revoked = match std::fs::read(data_dir.join(REVOCATION_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| storage(format!("{REVOCATION_FILE}: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(storage(e)),
        };
        Ok(TokenSigner {
            dir: Some(data_dir.to_path_buf()),
            keys: RwLock::new(keys),
            revoked: RwLock::new(revoked),
        })
    }

    /// A signer with a random key that is never written anywhere (tests).
    pub fn ephemeral() -> TokenSigner {
        TokenSigner {
            dir: None,
            keys: RwLock::new(Keys {
                kid: new_kid(),
                signing: new_signing_key(),
                previous: vec![],
            }),
            revoked: RwLock::new(HashMap::new()),
        }
    }

    /// Id of the key that signs new tokens.
    pub fn current_key_id(&self) -> String {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .kid
            .clone()
    }

    /// Makes a new signing key current; the old one keeps verifying (up to
    /// [`MAX_PREVIOUS_KEYS`] old keys are kept).
    pub fn rotate(&self) -> Result<(), TokenError> {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        let old = (keys.kid.clone(), keys.signing.verifying_key());
        keys.previous.insert(0, old);
        keys.previous.truncate(MAX_PREVIOUS_KEYS);
        keys.kid = new_kid();
        keys.signing = new_signing_key();
        if let Some(dir) = &self.dir {
            write_private(&dir.join(KEY_FILE), &key_file_bytes(&keys)?)?;
        }
        Ok(())
    }

    /// Signs a token of `kind` for `account` in session `sid`, valid for `ttl_secs` from `now`.
    pub fn issue(
        &self,
        kind: TokenKind,
        account: AccountId,
        sid: &str,
        ttl_secs: i64,
        now: i64,
    ) -> String {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let claims = Claims {
            typ: kind,
            sub: account.0,
            sid: sid.to_string(),
            iat: now,
            exp: now.saturating_add(ttl_secs),
            kid: keys.kid.clone(),
        };
        // Serializing a struct of strings and integers cannot fail.
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature = keys.signing.sign(payload.as_bytes());
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
        let key = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if claims.kid == keys.kid {
                keys.signing.verifying_key()
            } else {
                keys.previous
                    .iter()
                    .find(|(k, _)| *k == claims.kid)
                    .map(|(_, v)| *v)
                    .ok_or(TokenError::UnknownKey)?
            }
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
        if let Some(dir) = &self.dir {
            write_private(&dir.join(REVOCATION_FILE), &snapshot)?;
        }
        Ok(())
    }
}

fn key_file_bytes(keys: &Keys) -> Result<Vec<u8>, TokenError> {
    let file = KeyFile {
        current: StoredSecret {
            kid: keys.kid.clone(),
            secret: hex::encode(&keys.signing.to_bytes()),
        },
        previous: keys
            .previous
            .iter()
            .map(|(kid, v)| StoredPublic {
                kid: kid.clone(),
                public: hex::encode(v.as_bytes()),
            })
            .collect(),
    };
    serde_json::to_vec_pretty(&file).map_err(storage)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn issued_access_token_verifies_with_its_claims() {
        let s = TokenSigner::ephemeral();
        let t = s.issue(TokenKind::Access, AccountId(7), "sess1", 60, NOW);
        let c = s.verify(&t, TokenKind::Access, NOW + 1).unwrap();
        assert_eq!(
            (c.sub, c.sid.as_str(), c.exp, c.kid),
            (7, "sess1", NOW + 60, s.current_key_id())
        );
    }

    #[test]
    fn expired_token_is_refused_at_the_expiry_second() {
        let s = TokenSigner::ephemeral();
        let t = s.issue(TokenKind::Access, AccountId(1), "s", 60, NOW);
        assert!(s.verify(&t, TokenKind::Access, NOW + 59).is_ok());
        assert_eq!(
            s.verify(&t, TokenKind::Access, NOW + 60),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_payload_or_signature_fails() {
        let s = TokenSigner::ephemeral();
        let t = s.issue(TokenKind::Access, AccountId(1), "s", 60, NOW);
        let (p, sig) = t.split_once('.').unwrap();
        let mut claims: Claims = serde_json::from_slice(&B64.decode(p).unwrap()).unwrap();
        claims.sub = 2;
        let forged = format!("{}.{sig}", B64.encode(serde_json::to_vec(&claims).unwrap()));
        assert_eq!(
            s.verify(&forged, TokenKind::Access, NOW),
            Err(TokenError::BadSignature)
        );
        let other = TokenSigner::ephemeral();
        assert_eq!(
            other.verify(&t, TokenKind::Access, NOW),
            Err(TokenError::UnknownKey)
        );
        for junk in ["", ".", "abc", "a.b", "!!!.???", &"x".repeat(5000)] {
            assert_eq!(
                s.verify(junk, TokenKind::Access, NOW),
                Err(TokenError::Malformed),
                "{junk}"
            );
        }
    }

    #[test]
    fn refresh_token_is_not_an_access_token() {
        let s = TokenSigner::ephemeral();
        let t = s.issue(TokenKind::Refresh, AccountId(1), "s", 600, NOW);
        assert!(matches!(
            s.verify(&t, TokenKind::Access, NOW),
            Err(TokenError::WrongKind { .. })
        ));
        assert!(s.verify(&t, TokenKind::Refresh, NOW).is_ok());
    }

    #[test]
    fn revoked_session_refuses_all_its_tokens_across_reload() {
        let dir = tempfile::tempdir().unwrap();
        let s = TokenSigner::load_or_create(dir.path()).unwrap();
        let a = s.issue(TokenKind::Access, AccountId(1), "s1", 60, NOW);
        let r = s.issue(TokenKind::Refresh, AccountId(1), "s1", 600, NOW);
        let other = s.issue(TokenKind::Access, AccountId(1), "s2", 60, NOW);
        s.revoke_session("s1", NOW + 600, NOW).unwrap();
        assert_eq!(
            s.verify(&a, TokenKind::Access, NOW),
            Err(TokenError::Revoked)
        );
        assert_eq!(
            s.verify(&r, TokenKind::Refresh, NOW),
            Err(TokenError::Revoked)
        );
        assert!(s.verify(&other, TokenKind::Access, NOW).is_ok());
        let reloaded = TokenSigner::load_or_create(dir.path()).unwrap();
        assert_eq!(
            reloaded.verify(&a, TokenKind::Access, NOW),
            Err(TokenError::Revoked)
        );
        assert!(reloaded.verify(&other, TokenKind::Access, NOW).is_ok());
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_and_persists_keys_privately() {
        let dir = tempfile::tempdir().unwrap();
        let s = TokenSigner::load_or_create(dir.path()).unwrap();
        let old = s.issue(TokenKind::Access, AccountId(1), "s", 600, NOW);
        s.rotate().unwrap();
        let new = s.issue(TokenKind::Access, AccountId(1), "s", 600, NOW);
        let reloaded = TokenSigner::load_or_create(dir.path()).unwrap();
        assert!(reloaded.verify(&old, TokenKind::Access, NOW).is_ok());
        assert!(reloaded.verify(&new, TokenKind::Access, NOW).is_ok());
        for _ in 0..MAX_PREVIOUS_KEYS {
            s.rotate().unwrap();
        }
        assert_eq!(
            s.verify(&old, TokenKind::Access, NOW),
            Err(TokenError::UnknownKey)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
