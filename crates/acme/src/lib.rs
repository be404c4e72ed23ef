//! ACME certificates (RFC 8555) for the hostname and the mail domains: one job, obtaining and
//! renewing them. Built on `instant-acme`; keys and CSRs from `rcgen`.
//!
//! Everything is shared by the nodes through the store's global settings: the account
//! (`acme.account`), the certificate with its key (`acme.cert:{hash of the domains}`), the
//! http-01 key authorizations while an order is open (`acme.http01:{token}`), and a lease
//! (`acme.lease`, compare-and-set with holder and expiry) so only one node orders at a time.
//! Every node polls the store and serves the newest certificate.

pub mod cert;
pub mod challenge;
mod order;
pub mod stored;

pub use challenge::{ACME_TLS_ALPN, AlpnResponder, Challenges};
pub use stored::StoredCert;

use bulwark_store::Store;
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("store: {0}")]
    Store(#[from] bulwark_store::StoreError),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("order failed: {0}")]
    Order(String),
    #[error("{0}")]
    Other(String),
}

/// Which challenge proves control of the names (RFC 8555 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// RFC 8555 §8.3: `GET http://NAME/.well-known/acme-challenge/TOKEN` on port 80.
    Http01,
    /// RFC 8737: a TLS handshake on port 443 with ALPN `acme-tls/1`.
    TlsAlpn01,
}

impl ChallengeKind {
    pub fn parse(text: &str) -> Option<ChallengeKind> {
        match text {
            "http-01" => Some(ChallengeKind::Http01),
            "tls-alpn-01" => Some(ChallengeKind::TlsAlpn01),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// `[acme]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    pub directory: String,
    /// `mailto:` URLs.
    pub contact: Vec<String>,
    pub domains: Vec<String>,
    pub challenge: ChallengeKind,
    pub renew_before: Duration,
    /// PEM roots to trust for the ACME server's own HTTPS; `None`: the system's.
    pub ca_file: Option<PathBuf>,
}

/// How often a node looks at the store for a new or due certificate.
pub const DEFAULT_POLL: Duration = Duration::from_secs(300);
/// How long an ordering node holds the lease (an order times out well before).
pub const LEASE_TTL: Duration = Duration::from_secs(600);
/// Retry after a failed order: first wait, doubled up to the cap.
pub const RETRY_FIRST: Duration = Duration::from_secs(10);
pub const RETRY_MAX: Duration = Duration::from_secs(6 * 3600);
/// While another node orders, look again this soon.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(5);

/// Installs a certificate for new handshakes.
pub type Install = Arc<dyn Fn(Arc<CertifiedKey>) + Send + Sync>;

/// The renewal task of one node.
pub struct Acme {
    pub settings: AcmeSettings,
    pub store: Arc<dyn Store>,
    pub challenges: Arc<Challenges>,
    pub node_id: String,
    pub install: Install,
    /// How often to look at the store; [`DEFAULT_POLL`] unless a test sets it.
    pub poll: Duration,
}

/// What one look at the store found.
#[derive(Debug, PartialEq, Eq)]
enum Tick {
    /// A valid certificate is served; look again after the poll interval.
    Fresh,
    /// Another node holds the lease.
    OtherOrders,
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Acme {
    /// Runs until aborted: at start and every poll interval, serve the stored certificate
    /// and order a new one when it is missing or due (under the lease).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self) {
        let mut served: Option<StoredCert> = None;
        let mut retry = RETRY_FIRST;
        loop {
            let wait = match self.tick(&mut served).await {
                Ok(Tick::Fresh) => {
                    retry = RETRY_FIRST;
                    self.poll
                }
                Ok(Tick::OtherOrders) => WAIT_FOR_OTHER.min(self.poll),
                Err(e) => {
                    // The old certificate (if any) keeps being served.
                    tracing::warn!(
                        error = %e,
                        domains = ?self.settings.domains,
                        retry_in_secs = retry.as_secs(),
                        "ACME: cannot get a certificate; retrying"
                    );
                    let wait = retry;
                    retry = (retry * 2).min(RETRY_MAX);
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn serve(&self, cert: &StoredCert, served: &mut Option<StoredCert>) -> Result<(), AcmeError> {
        if served.as_ref() == Some(cert) {
            return Ok(());
        }
        let key = cert::certified_key(&cert.cert_pem, &cert.key_pem)?;
        (self.install)(key);
        tracing::info!(
            domains = ?cert.domains,
            issuer = %cert.issuer,
            not_after = cert.not_after,
            "ACME certificate in use"
        );
        *served = Some(cert.clone());
        Ok(())
    }

    async fn tick(&self, served: &mut Option<StoredCert>) -> Result<Tick, AcmeError> {
        let store = self.store.as_ref();
        let renew_before = i64::try_from(self.settings.renew_before.as_secs()).unwrap_or(i64::MAX);
        let stored = stored::load_cert(store, &self.settings.domains).await?;
        if let Some(cert) = &stored {
            if let Err(e) = self.serve(cert, served) {
                tracing::warn!(error = %e, "the stored ACME certificate cannot be used");
            } else if !cert.due(now_unix(), renew_before) {
                return Ok(Tick::Fresh);
            }
        }
        let lease_ttl = i64::try_from(LEASE_TTL.as_secs()).unwrap_or(i64::MAX);
        if !stored::acquire_lease(store, &self.node_id, now_unix(), lease_ttl).await? {
            return Ok(Tick::OtherOrders);
        }
        // Under the lease: another node may have finished just before we took it.
        let again = stored::load_cert(store, &self.settings.domains).await?;
        let result = match again {
            Some(cert) if !cert.due(now_unix(), renew_before) && Some(&cert) != stored.as_ref() => {
                Ok(cert)
            }
            _ => {
                tracing::info!(
                    domains = ?self.settings.domains,
                    challenge = self.settings.challenge.as_str(),
                    "ACME: ordering a certificate"
                );
                self.order_and_save().await
            }
        };
        if let Err(e) = stored::release_lease(store, &self.node_id).await {
            tracing::warn!(error = %e, "cannot release the ACME lease (it expires by itself)");
        }
        let cert = result?;
        self.serve(&cert, served)?;
        if cert.due(now_unix(), renew_before) {
            tracing::warn!(
                renew_before_secs = renew_before,
                lifetime_secs = cert.not_after - cert.not_before,
                "acme.renew_before is longer than the certificate's lifetime: it is renewed at every check"
            );
        }
        Ok(Tick::Fresh)
    }

    async fn order_and_save(&self) -> Result<StoredCert, AcmeError> {
        let cert = order::order(self.store.as_ref(), &self.settings, &self.challenges).await?;
        stored::save_cert(self.store.as_ref(), &cert).await?;
        Ok(cert)
    }
}

/// What `bulwark acme status` shows.
pub async fn status(
    store: &dyn Store,
    domains: &[String],
) -> Result<(Option<StoredCert>, Option<String>), AcmeError> {
    let cert = stored::load_cert(store, domains).await?;
    let holder = stored::lease_holder(store, now_unix()).await?;
    Ok((cert, holder))
}

#[cfg(test)]
mod tests;
