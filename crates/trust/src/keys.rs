//! DKIM keys per domain (RFC 6376, ed25519 per RFC 8463, RSA-2048), shared by every node:
//! one global setting `dkim:DOMAIN` holding a JSON [`KeySet`], sealed at rest with the
//! server's secret key when one is installed (`bulwark_auth::at_rest`), never a file in
//! `data_dir`.
//!
//! Rotation adds a key with a new selector and signs with it at once; the old key stays
//! published (and in `bulwark domain dns`) for [`ROTATION_GRACE_SECS`], so mail signed
//! with it just before the switch still verifies, then it is dropped at the next rotation.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bulwark_store::{Store, StoreError, now_unix};
use serde::{Deserialize, Serialize};

/// How long a rotated-out key stays published.
pub const ROTATION_GRACE_SECS: i64 = 7 * 24 * 3600;
/// RSA modulus size for new keys.
pub const RSA_BITS: usize = 2048;
/// Longest selector accepted (a DNS label).
const MAX_SELECTOR_LEN: usize = 63;

/// The signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    pub fn parse(text: &str) -> Result<Algorithm, KeyError> {
        match text.to_ascii_lowercase().as_str() {
            "ed25519" => Ok(Algorithm::Ed25519),
            "rsa" | "rsa-2048" | "rsa2048" => Ok(Algorithm::Rsa),
            other => Err(KeyError::Invalid(format!(
                "unknown algorithm {other:?}; use ed25519 or rsa"
            ))),
        }
    }
    /// `k=` of the DNS record (RFC 6376 §3.6.1, RFC 8463 §4.2).
    pub fn dns_k(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::Rsa => "rsa-2048",
        }
    }
}

/// One key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimKey {
    pub selector: String,
    pub algorithm: Algorithm,
    /// PKCS#8 PEM.
    pub private_key: String,
    /// The `p=` value: base64 of the raw ed25519 key, or of the RSA SubjectPublicKeyInfo.
    pub public_key: String,
    pub created: i64,
    /// When it stopped signing (rotated out); `None` for the active key.
    #[serde(default)]
    pub retired: Option<i64>,
}

impl DkimKey {
    /// The TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
    pub fn dns_txt(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm.dns_k(),
            self.public_key
        )
    }
    /// Still in DNS: active, or rotated out less than the grace period ago.
    pub fn published(&self, now: i64) -> bool {
        self.retired
            .is_none_or(|at| now.saturating_sub(at) < ROTATION_GRACE_SECS)
    }
}

/// Every key of one domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    pub keys: Vec<DkimKey>,
}

impl KeySet {
    /// The key that signs.
    pub fn active(&self) -> Option<&DkimKey> {
        self.keys.iter().rev().find(|k| k.retired.is_none())
    }
    /// Keys that belong in DNS now.
    pub fn published(&self, now: i64) -> impl Iterator<Item = &DkimKey> {
        self.keys.iter().filter(move |k| k.published(now))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("the DKIM keys of {0} cannot be read: {1}")]
    Unreadable(String, String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

fn setting_key(domain: &str) -> String {
    format!("dkim:{}", domain.trim_end_matches('.').to_ascii_lowercase())
}

/// The stored keys of `domain` (an empty set when there are none).
pub async fn load(store: &dyn Store, domain: &str) -> Result<KeySet, KeyError> {
    let key = setting_key(domain);
    let Some(stored) = store.global_setting_get(&key).await? else {
        return Ok(KeySet::default());
    };
    let json = bulwark_auth::at_rest::open(&stored, &key)
        .map_err(|e| KeyError::Unreadable(domain.to_string(), e.to_string()))?;
    serde_json::from_str(&json).map_err(|e| KeyError::Unreadable(domain.to_string(), e.to_string()))
}

/// Writes `set` only if the stored value is still `before` (another node's concurrent
/// rotation is not lost).
async fn save(
    store: &dyn Store,
    domain: &str,
    before: Option<&str>,
    set: &KeySet,
) -> Result<(), KeyError> {
    let key = setting_key(domain);
    let json = serde_json::to_string(set).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let sealed = bulwark_auth::at_rest::seal(&json, &key);
    if store.global_setting_replace(&key, before, &sealed).await? {
        Ok(())
    } else {
        Err(KeyError::Invalid(format!(
            "the DKIM keys of {domain} changed meanwhile; try again"
        )))
    }
}

/// A new key pair.
pub fn generate(algorithm: Algorithm, selector: &str, now: i64) -> Result<DkimKey, KeyError> {
    check_selector(selector)?;
    let (private_key, public_key) = match algorithm {
        Algorithm::Ed25519 => {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            use ring::signature::KeyPair;
            (
                pem("PRIVATE KEY", pkcs8.as_ref()),
                STANDARD.encode(pair.public_key().as_ref()),
            )
        }
        Algorithm::Rsa => {
            use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
            let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let pem = private
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            let spki = rsa::RsaPublicKey::from(&private)
                .to_public_key_der()
                .map_err(|e| KeyError::Generate(e.to_string()))?;
            (pem.to_string(), STANDARD.encode(spki.as_bytes()))
        }
    };
    Ok(DkimKey {
        selector: selector.to_string(),
        algorithm,
        private_key,
        public_key,
        created: now,
        retired: None,
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside a PEM block.
pub(crate) fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(body).ok()
}

/// A selector is one DNS label: letters, digits, hyphens.
pub fn check_selector(selector: &str) -> Result<(), KeyError> {
    let ok = !selector.is_empty()
        && selector.len() <= MAX_SELECTOR_LEN
        && selector
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !selector.starts_with('-')
        && !selector.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(KeyError::Invalid(format!(
            "bad selector {selector:?}: one DNS label of letters, digits and hyphens"
        )))
    }
}

/// `bYYYYMMDD`, with `-2`, `-3`, … when that is taken.
fn default_selector(set: &KeySet, now: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(now)
        .map(|t| format!("b{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day()))
        .unwrap_or_else(|_| format!("b{now}"));
    let taken = |s: &str| set.keys.iter().any(|k| k.selector == s);
    if !taken(&date) {
        return date;
    }
    (2..)
        .map(|n| format!("{date}-{n}"))
        .find(|s| !taken(s))
        .unwrap_or(date)
}

/// `bulwark domain dkim generate`: the domain's first key (refused when it has one: rotate).
pub async fn generate_for(
    store: &dyn Store,
    domain: &str,
    algorithm: Algorithm,
    selector: Option<&str>,
) -> Result<DkimKey, KeyError> {
    let before = store.global_setting_get(&setting_key(domain)).await?;
    let mut set = load(store, domain).await?;
    if set.active().is_some() {
        return Err(KeyError::Invalid(format!(
            "{domain} already has a DKIM key; use `bulwark domain dkim rotate {domain}` to replace it"
        )));
    }
    let now = now_unix();
    let selector = selector
        .map(str::to_string)
        .unwrap_or_else(|| default_selector(&set, now));
    if set.keys.iter().any(|k| k.selector == selector) {
        return Err(KeyError::Invalid(format!(
            "selector {selector} is already used for {domain}"
        )));
    }
    let key = tokio::task::spawn_blocking(move || generate(algorithm, &selector, now))
        .await
        .map_err(|e| KeyError::Generate(e.to_string()))??;
    set.keys.push(key.clone());
    save(store, domain, before.as_deref(), &set).await?;
    Ok(key)
}

/// `bulwark domain dkim rotate`: a new key (same algorithm as the active one unless given)
/// signs from now on; the old one stays published for the grace period; keys past it are
/// dropped. Returns the new key.
pub async fn rotate(
    store: &dyn Store,
    domain: &str,
    algorithm: Option<Algorithm>,
    selector: Option<&str>,
) -> Result<DkimKey, KeyError> {
    let before = store.global_setting_get(&setting_key(domain)).await?;
    let mut set = load(store, domain).await?;
    let Some(active) = set.active().cloned() else {
        return Err(KeyError::Invalid(format!(
            "{domain} has no DKIM key yet; create one with `bulwark domain dkim generate {domain}`"
        )));
    };
    let now = now_unix();
    let selector = selector
        .map(str::to_string)
        .unwrap_or_else(|| default_selector(&set, now));
    if set.keys.iter().any(|k| k.selector == selector) {
        return Err(KeyError::Invalid(format!(
            "selector {selector} is already used for {domain}"
        )));
    }
    let algorithm = algorithm.unwrap_or(active.algorithm);
    let key = tokio::task::spawn_blocking(move || generate(algorithm, &selector, now))
        .await
        .map_err(|e| KeyError::Generate(e.to_string()))??;
    for k in &mut set.keys {
        if k.retired.is_none() {
            k.retired = Some(now);
        }
    }
    set.keys.retain(|k| k.published(now));
    set.keys.push(key.clone());
    save(store, domain, before.as_deref(), &set).await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_dns_records_and_selectors_are_labels() {
        let k = generate(Algorithm::Ed25519, "s1", 0).expect("ed25519");
        assert!(k.dns_txt().starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(STANDARD.decode(&k.public_key).expect("b64").len(), 32);
        assert!(pem_der(&k.private_key).is_some());
        assert!(check_selector("bad selector").is_err());
        assert!(check_selector("-x").is_err());
        assert!(check_selector("b20261202-2").is_ok());
    }

    #[tokio::test]
    async fn generate_rotate_and_grace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = bulwark_store::sqlite::SqliteStore::open(dir.path()).expect("open");
        let first = generate_for(store.as_ref(), "example.test", Algorithm::Ed25519, None)
            .await
            .expect("generate");
        assert!(
            generate_for(store.as_ref(), "example.test", Algorithm::Rsa, None)
                .await
                .is_err(),
            "a second generate is refused"
        );
        let second = rotate(store.as_ref(), "example.test", Some(Algorithm::Rsa), None)
            .await
            .expect("rotate");
        assert_ne!(first.selector, second.selector);
        let set = load(store.as_ref(), "Example.Test.").await.expect("load");
        assert_eq!(set.active().map(|k| &k.selector), Some(&second.selector));
        let now = now_unix();
        assert_eq!(set.published(now).count(), 2, "the old key stays published");
        assert_eq!(
            set.published(now + ROTATION_GRACE_SECS + 1).count(),
            1,
            "then only the new one"
        );
        assert!(second.dns_txt().starts_with("v=DKIM1; k=rsa; p=MII"));
    }
}
