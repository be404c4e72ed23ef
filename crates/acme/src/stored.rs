//! What the ACME client keeps in the store (global settings, shared by every node): the
//! account, the issued certificate per domain set, the ordering lease and the http-01 tokens.

use crate::AcmeError;
use bulwark_store::Store;
use serde::{Deserialize, Serialize};

/// The ACME account (instant-acme's credentials, with the directory it belongs to).
pub const ACCOUNT_KEY: &str = "acme.account";
/// Who may order now: `{"holder": NODE, "expires": UNIX}`.
pub const LEASE_KEY: &str = "acme.lease";
/// Prefix of the http-01 key authorizations, by token.
pub const HTTP01_PREFIX: &str = "acme.http01:";
/// Prefix of the tls-alpn-01 key authorization digests (hex SHA-256), by domain.
pub const ALPN01_PREFIX: &str = "acme.alpn01:";

/// The settings key of the certificate for `domains` (order and case do not matter).
pub fn cert_key(domains: &[String]) -> String {
    use sha2::Digest;
    let mut names: Vec<String> = domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    let digest = sha2::Sha256::digest(names.join(",").as_bytes());
    format!("acme.cert:{}", &hex::encode(digest)[..16])
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StoredAccount {
    pub directory: String,
    /// instant-acme's `AccountCredentials` as JSON (holds the account's private key).
    pub credentials: serde_json::Value,
}

/// An issued certificate with its private key (PEM), as every node serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCert {
    pub domains: Vec<String>,
    /// The chain, leaf first.
    pub cert_pem: String,
    pub key_pem: String,
    /// Unix seconds.
    pub not_after: i64,
    pub not_before: i64,
    pub issuer: String,
    /// The ACME directory that issued it.
    pub directory: String,
}

impl StoredCert {
    /// Reads the dates and issuer out of the leaf certificate of `cert_pem`.
    pub fn new(
        domains: Vec<String>,
        cert_pem: String,
        key_pem: String,
        directory: String,
    ) -> Result<StoredCert, AcmeError> {
        let info = crate::cert::leaf_info(&cert_pem)?;
        Ok(StoredCert {
            domains,
            cert_pem,
            key_pem,
            not_after: info.not_after,
            not_before: info.not_before,
            issuer: info.issuer,
            directory,
        })
    }

    /// Whether it should be renewed at `now`: less than `renew_before` seconds left.
    pub fn due(&self, now: i64, renew_before: i64) -> bool {
        self.not_after.saturating_sub(now) < renew_before
    }
}

pub async fn load_cert(
    store: &dyn Store,
    domains: &[String],
) -> Result<Option<StoredCert>, AcmeError> {
    match store.global_setting_get(&cert_key(domains)).await? {
        None => Ok(None),
        Some(json) => match serde_json::from_str(&json) {
            Ok(c) => Ok(Some(c)),
            Err(e) => {
                tracing::warn!(error = %e, "the stored ACME certificate is unreadable; ordering a new one");
                Ok(None)
            }
        },
    }
}

pub async fn save_cert(store: &dyn Store, cert: &StoredCert) -> Result<(), AcmeError> {
    let json = serde_json::to_string(cert).map_err(|e| AcmeError::Other(e.to_string()))?;
    store
        .global_setting_set(&cert_key(&cert.domains), Some(&json))
        .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lease {
    holder: String,
    expires: i64,
}

/// Takes (or extends) the ordering lease for `node` until `now + ttl`, with compare-and-set
/// on the stored value so two nodes never both win. `false`: another node holds it.
pub async fn acquire_lease(
    store: &dyn Store,
    node: &str,
    now: i64,
    ttl: i64,
) -> Result<bool, AcmeError> {
    let current = store.global_setting_get(LEASE_KEY).await?;
    if let Some(json) = &current
        && let Ok(lease) = serde_json::from_str::<Lease>(json)
        && lease.holder != node
        && lease.expires > now
    {
        return Ok(false);
    }
    let next = Lease {
        holder: node.to_string(),
        expires: now.saturating_add(ttl),
    };
    let next = serde_json::to_string(&next).map_err(|e| AcmeError::Other(e.to_string()))?;
    Ok(store
        .global_setting_replace(LEASE_KEY, current.as_deref(), &next)
        .await?)
}

/// Gives the lease up if `node` still holds it (an expired stamp: free for anyone).
pub async fn release_lease(store: &dyn Store, node: &str) -> Result<(), AcmeError> {
    let Some(current) = store.global_setting_get(LEASE_KEY).await? else {
        return Ok(());
    };
    let Ok(lease) = serde_json::from_str::<Lease>(&current) else {
        return Ok(());
    };
    if lease.holder == node {
        let free = serde_json::to_string(&Lease {
            holder: String::new(),
            expires: 0,
        })
        .map_err(|e| AcmeError::Other(e.to_string()))?;
        store
            .global_setting_replace(LEASE_KEY, Some(&current), &free)
            .await?;
    }
    Ok(())
}

/// Who holds the lease now (for status), if anyone.
pub async fn lease_holder(store: &dyn Store, now: i64) -> Result<Option<String>, AcmeError> {
    let Some(json) = store.global_setting_get(LEASE_KEY).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str::<Lease>(&json)
        .ok()
        .filter(|l| l.expires > now && !l.holder.is_empty())
        .map(|l| l.holder))
}
