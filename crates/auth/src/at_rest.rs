//! Secrets encrypted at rest (issue 13, item 2): token signing keys and TOTP secrets are
//! sealed with ChaCha20-Poly1305 (RFC 8439, via `ring`, as the outage cache does) under a key
//! kept outside the database:
//!
//! * the environment variable [`SECRET_KEY_ENV`] (32 bytes, base64), which takes precedence
//!   (give every node of a shared store the same value), or
//! * the file `data_dir/`[`SECRET_KEY_FILE`] (mode 0600, base64), created on first start of a
//!   node with the embedded store.
//!
//! A sealed value is `bwenc1:` + base64url(12-byte nonce ‖ ciphertext ‖ tag); the associated
//! data names what the value is (e.g. `totp:42`), so a sealed value cannot be moved to another
//! account or setting. Values without the prefix are clear text from before encryption: they
//! are read as they are and rewritten sealed (migration). Without a key installed (a shared
//! store and no key given) values are written in clear, as before.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Environment variable holding the key (base64 of 32 bytes); wins over the file.
pub const SECRET_KEY_ENV: &str = "BULWARK_SECRET_KEY";
/// Key file in the data dir (base64 of 32 bytes, mode 0600).
pub const SECRET_KEY_FILE: &str = "secret.key";
/// Prefix of a sealed value.
pub const SEALED_PREFIX: &str = "bwenc1:";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AtRestError {
    #[error("{0} must be the base64 of {KEY_LEN} bytes")]
    BadKey(String),
    #[error("secret key file {path}: {error}")]
    Io { path: String, error: String },
    #[error(
        "this value is encrypted, but no secret key is configured (set {SECRET_KEY_ENV} or copy {SECRET_KEY_FILE} from the node that wrote it)"
    )]
    NoKey,
    #[error(
        "this value does not decrypt with the configured secret key (another node's key? a tampered value?)"
    )]
    Undecryptable,
}

/// Where the key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File,
    /// Created now in the data dir.
    Generated,
    /// No key: secrets are kept in clear.
    None,
}

static KEY: RwLock<Option<Arc<LessSafeKey>>> = RwLock::new(None);

fn parse_key(text: &str, what: &str) -> Result<[u8; KEY_LEN], AtRestError> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| <[u8; KEY_LEN]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| AtRestError::BadKey(what.to_string()))
}

/// Installs `key` for this process (replacing any earlier one).
pub fn install(key: [u8; KEY_LEN]) {
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key);
    let key = unbound.ok().map(|k| Arc::new(LessSafeKey::new(k)));
    *KEY.write().unwrap_or_else(|e| e.into_inner()) = key;
}

/// Whether a key is installed (then new values are sealed).
pub fn enabled() -> bool {
    current().is_some()
}

fn current() -> Option<Arc<LessSafeKey>> {
    KEY.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Finds the key ([`SECRET_KEY_ENV`], else `data_dir/secret.key`, else — when `create` —
/// a new random key written to that file) and installs it.
pub fn load(data_dir: &Path, create: bool) -> Result<KeySource, AtRestError> {
    if let Ok(value) = std::env::var(SECRET_KEY_ENV)
        && !value.trim().is_empty()
    {
        install(parse_key(&value, SECRET_KEY_ENV)?);
        return Ok(KeySource::Environment);
    }
    let path = data_dir.join(SECRET_KEY_FILE);
    let io = |e: std::io::Error| AtRestError::Io {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            install(parse_key(&text, &path.display().to_string())?);
            Ok(KeySource::File)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Ok(KeySource::None);
            }
            let key: [u8; KEY_LEN] = rand::random();
            std::fs::create_dir_all(data_dir).map_err(io)?;
            crate::offline::write_private(&path, format!("{}\n", STANDARD.encode(key)).as_bytes())
                .map_err(io)?;
            install(key);
            Ok(KeySource::Generated)
        }
        Err(e) => Err(io(e)),
    }
}

/// Whether `stored` is a sealed value.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

/// Seals `plain` for `context` with the installed key; clear text when there is none.
pub fn seal(plain: &str, context: &str) -> String {
    let Some(key) = current() else {
        return plain.to_string();
    };
    let mut data = plain.as_bytes().to_vec();
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    if key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(context.as_bytes()),
            &mut data,
        )
        .is_err()
    {
        // ChaCha20-Poly1305 sealing fails only for inputs beyond 2^38 bytes.
        return plain.to_string();
    }
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&data);
    format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
}

/// Opens a value read back: sealed values are decrypted, clear text is returned as it is.
pub fn open(stored: &str, context: &str) -> Result<String, AtRestError> {
    let Some(body) = stored.strip_prefix(SEALED_PREFIX) else {
        return Ok(stored.to_string());
    };
    let key = current().ok_or(AtRestError::NoKey)?;
    let mut bytes = URL_SAFE_NO_PAD
        .decode(body.trim())
        .map_err(|_| AtRestError::Undecryptable)?;
    if bytes.len() < NONCE_LEN {
        return Err(AtRestError::Undecryptable);
    }
    let (nonce, sealed) = bytes.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| AtRestError::Undecryptable)?;
    let plain = key
        .open_in_place(nonce, Aad::from(context.as_bytes()), sealed)
        .map_err(|_| AtRestError::Undecryptable)?;
    String::from_utf8(plain.to_vec()).map_err(|_| AtRestError::Undecryptable)
}

/// Whether a value read back should be rewritten sealed (clear text while a key is installed).
pub fn needs_migration(stored: &str) -> bool {
    enabled() && !is_sealed(stored)
}

/// A fixed key for tests (every test installs the same, so parallel tests agree).
#[cfg(test)]
pub(crate) fn install_test_key() {
    install([7u8; KEY_LEN]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_context_and_clear_text_passes_through() {
        install_test_key();
        let sealed = seal("{\"secret\":\"JBSWY3DP\"}", "totp:1");
        assert!(is_sealed(&sealed) && !sealed.contains("JBSWY3DP"));
        assert_eq!(
            open(&sealed, "totp:1").unwrap(),
            "{\"secret\":\"JBSWY3DP\"}"
        );
        assert_eq!(open(&sealed, "totp:2"), Err(AtRestError::Undecryptable));
        assert_eq!(open("{\"a\":1}", "totp:1").unwrap(), "{\"a\":1}");
        assert!(needs_migration("{\"a\":1}") && !needs_migration(&sealed));
        let mut tampered = sealed.clone();
        tampered.push('A');
        assert!(open(&tampered, "totp:1").is_err());
    }

    #[test]
    #[allow(unsafe_code)] // std::env::set_var: see the SAFETY comments inside
    fn key_comes_from_the_environment_first_then_the_file_which_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: tests run one per process under nextest; nothing else reads this variable.
        unsafe { std::env::remove_var(SECRET_KEY_ENV) };
        assert_eq!(load(dir.path(), false).unwrap(), KeySource::None);
        assert_eq!(load(dir.path(), true).unwrap(), KeySource::Generated);
        let file = dir.path().join(SECRET_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let sealed = seal("x", "c");
        assert_eq!(load(dir.path(), true).unwrap(), KeySource::File);
        assert_eq!(open(&sealed, "c").unwrap(), "x");
        // SAFETY: as above.
        unsafe { std::env::set_var(SECRET_KEY_ENV, STANDARD.encode([9u8; KEY_LEN])) };
        assert_eq!(load(dir.path(), true).unwrap(), KeySource::Environment);
        assert_eq!(open(&sealed, "c"), Err(AtRestError::Undecryptable));
        unsafe { std::env::set_var(SECRET_KEY_ENV, "short") };
        assert!(matches!(
            load(dir.path(), true),
            Err(AtRestError::BadKey(_))
        ));
        unsafe { std::env::remove_var(SECRET_KEY_ENV) };
    }
}
