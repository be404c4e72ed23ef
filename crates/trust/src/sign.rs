//! Outbound DKIM signing (RFC 6376 §5) with the domain's active key, through mail-auth's
//! signer: relaxed/relaxed canonicalization, SHA-256, the usual originator and content
//! fields signed (From twice, so a second From cannot be added without breaking it).

use crate::keys::{self, Algorithm, DkimKey, KeyError};
use bulwark_store::Store;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a domain's key set is cached (a rotation on another node is seen within this).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// Fields signed when present (RFC 6376 §5.4.1's recommendations).
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Unsubscribe",
];

/// A domain's active key (or none) and when it was read.
type Cached = (Instant, Option<Arc<DkimKey>>);

/// Signs with the keys in the store; caches each domain's active key briefly.
pub struct Signer {
    store: Arc<dyn Store>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Signer {
    pub fn new(store: Arc<dyn Store>) -> Signer {
        Signer {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn active_key(&self, domain: &str) -> Result<Option<Arc<DkimKey>>, KeyError> {
        let domain = domain.to_ascii_lowercase();
        if let Some((at, key)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&domain)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(key.clone());
        }
        let key = keys::load(self.store.as_ref(), &domain)
            .await?
            .active()
            .cloned()
            .map(Arc::new);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(domain, (Instant::now(), key.clone()));
        Ok(key)
    }

    /// The domain's active key, if it has one (a key that cannot be read is logged).
    pub async fn key_for(&self, domain: &str) -> Option<Arc<DkimKey>> {
        match self.active_key(domain).await {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "cannot load the DKIM key");
                None
            }
        }
    }

    /// The `DKIM-Signature` field (with CRLF) for `raw` signed as `domain`, or `None` when
    /// the domain has no key. A key that cannot be read or used is logged and `None`: the
    /// mail goes out unsigned rather than not at all.
    pub async fn sign(&self, raw: &[u8], domain: &str) -> Option<String> {
        let key = match self.active_key(domain).await {
            Ok(Some(key)) => key,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "cannot load the DKIM key; sending unsigned");
                return None;
            }
        };
        match sign_with(&key, raw, domain) {
            Ok(header) => Some(header),
            Err(e) => {
                tracing::warn!(%domain, selector = %key.selector, error = %e, "DKIM signing failed; sending unsigned");
                None
            }
        }
    }
}

/// A stored key read for signing (both algorithms sign with SHA-256).
enum SigningKey {
    Ed25519(Ed25519Key),
    Rsa(RsaKey<Sha256>),
}

impl SigningKey {
    fn read(key: &DkimKey) -> Result<SigningKey, String> {
        let der = keys::pem_der(&key.private_key).ok_or("the private key is not PEM")?;
        Ok(match key.algorithm {
            Algorithm::Ed25519 => {
                SigningKey::Ed25519(Ed25519Key::from_pkcs8_der(&der).map_err(|e| e.to_string())?)
            }
            Algorithm::Rsa => {
                let der = rustls_pki_types::PrivateKeyDer::Pkcs8(der.into());
                SigningKey::Rsa(RsaKey::<Sha256>::from_key_der(der).map_err(|e| e.to_string())?)
            }
        })
    }
}

fn dkim_signature<T: mail_auth::common::crypto::SigningKey<Hasher = Sha256>>(
    pk: T,
    key: &DkimKey,
    raw: &[u8],
    domain: &str,
) -> Result<String, String> {
    DkimSigner::from_key(pk)
        .domain(domain)
        .selector(&key.selector)
        .headers(SIGNED_FIELDS.iter().copied())
        .sign(raw)
        .map(|s| s.to_header())
        .map_err(|e| e.to_string())
}

fn arc_set<T: mail_auth::common::crypto::SigningKey<Hasher = Sha256>>(
    pk: T,
    key: &DkimKey,
    domain: &str,
    message: &mail_auth::AuthenticatedMessage<'_>,
    results: &mail_auth::AuthenticationResults<'_>,
    arc: &mail_auth::ArcOutput<'_>,
) -> Result<String, String> {
    mail_auth::arc::ArcSealer::from_key(pk)
        .domain(domain)
        .selector(&key.selector)
        .headers(SIGNED_FIELDS.iter().copied())
        .seal(message, results, arc)
        .map(|set| set.to_header())
        .map_err(|e| e.to_string())
}

/// Signs `raw` with `key` for `domain`.
pub fn sign_with(key: &DkimKey, raw: &[u8], domain: &str) -> Result<String, String> {
    match SigningKey::read(key)? {
        SigningKey::Ed25519(pk) => dkim_signature(pk, key, raw, domain),
        SigningKey::Rsa(pk) => dkim_signature(pk, key, raw, domain),
    }
}

/// The ARC set (RFC 8617) sealing `message` as `domain` with `key`, over the `results` of
/// our checks and the chain `arc` found: `ARC-Seal`, `ARC-Message-Signature` (the fields of
/// [`SIGNED_FIELDS`]) and `ARC-Authentication-Results`, CRLF-terminated.
pub fn seal_with(
    key: &DkimKey,
    domain: &str,
    message: &mail_auth::AuthenticatedMessage<'_>,
    results: &mail_auth::AuthenticationResults<'_>,
    arc: &mail_auth::ArcOutput<'_>,
) -> Result<String, String> {
    match SigningKey::read(key)? {
        SigningKey::Ed25519(pk) => arc_set(pk, key, domain, message, results, arc),
        SigningKey::Rsa(pk) => arc_set(pk, key, domain, message, results, arc),
    }
}
