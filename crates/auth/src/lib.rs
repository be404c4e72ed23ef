//! Credentials: argon2id password hashes, generated app passwords, and the login path with
//! throttling of failed attempts per remote IP and per account.
//!
//! Throttling design: an attacker must not be able to lock the real user out for long.
//! * per IP: after [`ThrottleConfig::ip_max_failures`] failures inside the window, that IP is
//!   refused (temporary) until the window passes;
//! * per account: after [`ThrottleConfig::account_delay_after`] failures each further attempt is
//!   delayed; after [`ThrottleConfig::account_max_failures`] the account refuses logins for
//!   [`ThrottleConfig::account_lockout`] only (short), then accepts again.

mod password;
mod throttle;
pub mod token;
pub mod totp;

pub use password::{generate_app_password, hash_password, verify_password};
pub use throttle::{Throttle, ThrottleConfig, Verdict};

use bulwark_store::{Account, Store};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error("authentication temporarily unavailable: {0}")]
    Unavailable(String),
}

/// The one login path used by SMTP AUTH, IMAP LOGIN/AUTHENTICATE and (later) HTTP.
pub struct Authenticator {
    store: Arc<dyn Store>,
    throttle: Throttle,
}

impl Authenticator {
    pub fn new(store: Arc<dyn Store>, config: ThrottleConfig) -> Self {
        Authenticator {
            store,
            throttle: Throttle::new(config),
        }
    }

    /// Verifies `username` (an address of the account: primary or alias) with its password or one
    /// of its app passwords. Failures are logged with the remote IP.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        remote: IpAddr,
    ) -> Result<Account, LoginError> {
        let username = username.trim().to_ascii_lowercase();
        match self.throttle.check(remote, &username) {
            Verdict::Allow => {}
            Verdict::Delay(d) => tokio::time::sleep(d).await,
            Verdict::Refuse(d) => {
                tracing::warn!(%remote, user = %username, "login refused: throttled");
                return Err(LoginError::Throttled {
                    retry_after_secs: d.as_secs().max(1),
                });
            }
        }
        match self.verify(&username, password).await {
            Ok(Some(account)) => {
                self.throttle.record_success(remote, &username);
                Ok(account)
            }
            Ok(None) => {
                self.throttle.record_failure(remote, &username);
                tracing::warn!(%remote, user = %username, "login failed: invalid credentials");
                Err(LoginError::InvalidCredentials)
            }
            Err(e) => {
                tracing::error!(%remote, user = %username, error = %e, "login failed: store error");
                Err(LoginError::Unavailable(e.to_string()))
            }
        }
    }

    async fn verify(
        &self,
        username: &str,
        password: &str,
    ) -> bulwark_store::Result<Option<Account>> {
        let account = match self.store.account_by_address(username).await? {
            Some(a) => Some(a),
            None => match self.store.resolve_address(username).await? {
                Some(id) => self.store.account_get(id).await?,
                None => None,
            },
        };
        let Some(account) = account else {
            // Spend the same time as a real verification so user enumeration by timing is harder.
            let _ = verify_blocking(dummy_hash().to_string(), password.to_string()).await;
            return Ok(None);
        };
        if verify_blocking(account.password_hash.clone(), password.to_string()).await {
            return Ok(Some(account));
        }
        for app in self.store.app_password_list(account.id).await? {
            if verify_blocking(app.hash.clone(), password.to_string()).await {
                return Ok(Some(account));
            }
        }
        Ok(None)
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }
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
