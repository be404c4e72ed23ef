//! The challenge responder: http-01 key authorizations (RFC 8555 §8.3) and tls-alpn-01
//! certificates (RFC 8737 §3) while an order is open.

use crate::stored::HTTP01_PREFIX;
use bulwark_store::Store;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The ALPN protocol of tls-alpn-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// Longest http-01 token looked up (RFC 8555 §8.3: base64url, at least 128 bits; ours are
/// far shorter than this).
pub const MAX_TOKEN_LEN: usize = 256;

/// What this node answers during an order. The http-01 tokens are also in the store, so a
/// load balancer may send the CA's request to any node.
#[derive(Debug, Default)]
pub struct Challenges {
    http: RwLock<HashMap<String, String>>,
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

/// RFC 8555 §8.3: the token is base64url (no padding) — anything else is no token of ours
/// and is not looked up.
pub fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Challenges {
    pub fn new() -> Arc<Challenges> {
        Arc::new(Challenges::default())
    }

    pub fn put_http(&self, token: &str, key_authorization: &str) {
        write(&self.http).insert(token.to_string(), key_authorization.to_string());
    }

    pub fn remove_http(&self, token: &str) {
        write(&self.http).remove(token);
    }

    pub fn put_alpn(&self, domain: &str, cert: Arc<CertifiedKey>) {
        write(&self.alpn).insert(domain.to_ascii_lowercase(), cert);
    }

    pub fn remove_alpn(&self, domain: &str) {
        write(&self.alpn).remove(&domain.to_ascii_lowercase());
    }

    /// The body of `GET /.well-known/acme-challenge/{token}`: the key authorization
    /// (RFC 8555 §8.3), from this node or from the store (another node ordering).
    pub async fn http_response(&self, store: &dyn Store, token: &str) -> Option<String> {
        if !valid_token(token) {
            return None;
        }
        if let Some(k) = read(&self.http).get(token).cloned() {
            return Some(k);
        }
        match store
            .global_setting_get(&format!("{HTTP01_PREFIX}{token}"))
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the http-01 token from the store");
                None
            }
        }
    }
}

/// For handshakes that offer ALPN `acme-tls/1` only: the challenge certificate for the SNI
/// name (RFC 8737 §3); no certificate (the handshake fails) for any other name.
impl ResolvesServerCert for Challenges {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        read(&self.alpn).get(&name).cloned()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// The TLS configuration for `acme-tls/1` handshakes: only that protocol, and the
/// challenge certificates (RFC 8737 §4: the server MUST negotiate `acme-tls/1`).
pub fn alpn_server_config(challenges: Arc<Challenges>) -> Arc<rustls::ServerConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(challenges);
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::sqlite::SqliteStore;

    #[tokio::test]
    async fn http_responder_answers_local_and_stored_tokens_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = SqliteStore::open(dir.path()).unwrap();
        let c = Challenges::new();
        c.put_http("tok-1_A", "tok-1_A.thumb");
        assert_eq!(
            c.http_response(store.as_ref(), "tok-1_A").await.as_deref(),
            Some("tok-1_A.thumb")
        );
        // Another node's order: the token is in the store only.
        store
            .global_setting_set("acme.http01:other", Some("other.thumb"))
            .await
            .unwrap();
        assert_eq!(
            c.http_response(store.as_ref(), "other").await.as_deref(),
            Some("other.thumb")
        );
        assert_eq!(c.http_response(store.as_ref(), "missing").await, None);
        // Not base64url: never looked up (no probing of other settings keys).
        for bad in ["", "../x", "a:b", "a.b", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(c.http_response(store.as_ref(), bad).await, None, "{bad}");
        }
        c.remove_http("tok-1_A");
        assert_eq!(c.http_response(store.as_ref(), "tok-1_A").await, None);
    }
}
