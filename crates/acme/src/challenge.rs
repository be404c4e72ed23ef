//! The challenge responder: http-01 key authorizations (RFC 8555 §8.3) and tls-alpn-01
//! certificates (RFC 8737 §3) while an order is open.

use crate::stored::{ALPN01_PREFIX, HTTP01_PREFIX};
use bulwark_store::Store;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
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

/// One certificate for the one handshake it was chosen for.
#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl ResolvesServerCert for Single {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The tls-alpn-01 side of the TLS listeners (RFC 8737 §3): for a handshake offering
/// `acme-tls/1` with the SNI name of one of our `[acme] domains`, the challenge certificate
/// of the order open for it — this node's, or another node's from the store (its key
/// authorization digest is there), so the CA may reach any node.
pub struct AlpnResponder {
    pub challenges: Arc<Challenges>,
    pub store: Arc<dyn Store>,
    /// Lowercase; other names are not looked up at all.
    pub domains: Vec<String>,
}

impl AlpnResponder {
    async fn cert_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if !self.domains.iter().any(|d| d == name) {
            return None;
        }
        if let Some(cert) = read(&self.challenges.alpn).get(name).cloned() {
            return Some(cert);
        }
        let digest = match self
            .store
            .global_setting_get(&format!("{ALPN01_PREFIX}{name}"))
            .await
        {
            Ok(found) => hex::decode(found?).ok()?,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the tls-alpn-01 digest from the store");
                return None;
            }
        };
        match crate::cert::alpn_challenge_cert(name, &digest) {
            Ok(cert) => Some(cert),
            Err(e) => {
                tracing::warn!(error = %e, "cannot make the tls-alpn-01 certificate");
                None
            }
        }
    }
}

impl bulwark_net::AcmeAlpn for AlpnResponder {
    fn config_for(
        &self,
        server_name: Option<String>,
    ) -> Pin<Box<dyn Future<Output = Option<Arc<rustls::ServerConfig>>> + Send + '_>> {
        Box::pin(async move {
            let cert = self.cert_for(&server_name?.to_ascii_lowercase()).await?;
            Some(alpn_server_config(cert))
        })
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// The TLS configuration of one `acme-tls/1` handshake: only that protocol (RFC 8737 §4:
/// the server MUST negotiate `acme-tls/1`) and the challenge certificate.
fn alpn_server_config(cert: Arc<CertifiedKey>) -> Arc<rustls::ServerConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Single(cert)));
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

    #[tokio::test]
    async fn alpn_responder_answers_our_open_orders_only_local_or_stored() {
        use bulwark_net::AcmeAlpn;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = SqliteStore::open(dir.path()).unwrap();
        let r = AlpnResponder {
            challenges: Challenges::new(),
            store: store.clone(),
            domains: vec!["mail.example.test".into(), "other.example.test".into()],
        };
        // No order open: nothing.
        assert!(
            r.config_for(Some("mail.example.test".into()))
                .await
                .is_none()
        );
        assert!(r.config_for(None).await.is_none());
        // This node's order.
        let cert = crate::cert::alpn_challenge_cert("mail.example.test", &[1; 32]).unwrap();
        r.challenges.put_alpn("mail.example.test", cert);
        let config = r
            .config_for(Some("MAIL.example.test".into()))
            .await
            .unwrap();
        assert_eq!(config.alpn_protocols, vec![ACME_TLS_ALPN.to_vec()]);
        // Another node's order: the digest is in the store.
        store
            .global_setting_set(
                &format!("{ALPN01_PREFIX}other.example.test"),
                Some(&hex::encode([2u8; 32])),
            )
            .await
            .unwrap();
        assert!(
            r.config_for(Some("other.example.test".into()))
                .await
                .is_some()
        );
        // A name that is not ours is never looked up, even if the store had it.
        store
            .global_setting_set(
                &format!("{ALPN01_PREFIX}evil.test"),
                Some(&hex::encode([3u8; 32])),
            )
            .await
            .unwrap();
        assert!(r.config_for(Some("evil.test".into())).await.is_none());
        // Garbage in the store: no certificate, no panic.
        store
            .global_setting_set(&format!("{ALPN01_PREFIX}other.example.test"), Some("zz"))
            .await
            .unwrap();
        assert!(
            r.config_for(Some("other.example.test".into()))
                .await
                .is_none()
        );
    }
}
