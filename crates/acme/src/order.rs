//! One ACME order (RFC 8555 §7.4): account, authorizations with the configured challenge,
//! finalize with our CSR, download the chain.

use crate::cert;
use crate::challenge::Challenges;
use crate::stored::{self, ACCOUNT_KEY, ALPN01_PREFIX, HTTP01_PREFIX, StoredAccount, StoredCert};
use crate::{AcmeError, AcmeSettings, ChallengeKind};
use bulwark_store::Store;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use std::time::Duration;

/// How long the CA may take to validate and to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(90));

fn builder(settings: &AcmeSettings) -> Result<instant_acme::AccountBuilder, AcmeError> {
    match &settings.ca_file {
        Some(path) => Ok(Account::builder_with_root(path)?),
        None => Ok(Account::builder()?),
    }
}

/// The stored account for this directory, or a new one (stored for every node).
async fn account(store: &dyn Store, settings: &AcmeSettings) -> Result<Account, AcmeError> {
    if let Some(json) = store.global_setting_get(ACCOUNT_KEY).await?
        && let Ok(stored) = serde_json::from_str::<StoredAccount>(&json)
        && stored.directory == settings.directory
        && let Ok(creds) = serde_json::from_value::<AccountCredentials>(stored.credentials)
    {
        return Ok(builder(settings)?.from_credentials(creds).await?);
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let (account, creds) = builder(settings)?
        .create(
            &NewAccount {
                contact: &contact,
                // RFC 8555 §7.3: the operator agrees by configuring the directory.
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await?;
    let stored = StoredAccount {
        directory: settings.directory.clone(),
        credentials: serde_json::to_value(&creds).map_err(|e| AcmeError::Other(e.to_string()))?,
    };
    let json = serde_json::to_string(&stored).map_err(|e| AcmeError::Other(e.to_string()))?;
    store.global_setting_set(ACCOUNT_KEY, Some(&json)).await?;
    tracing::info!(directory = %settings.directory, "ACME account created");
    Ok(account)
}

/// What an open order put up, taken down when it ends however it ends.
#[derive(Default)]
struct Published {
    tokens: Vec<String>,
    domains: Vec<String>,
}

/// Orders a certificate for `settings.domains`; the caller holds the lease.
pub async fn order(
    store: &dyn Store,
    settings: &AcmeSettings,
    challenges: &Challenges,
) -> Result<StoredCert, AcmeError> {
    let mut published = Published::default();
    let result = order_inner(store, settings, challenges, &mut published).await;
    for token in &published.tokens {
        challenges.remove_http(token);
        if let Err(e) = store
            .global_setting_set(&format!("{HTTP01_PREFIX}{token}"), None)
            .await
        {
            tracing::warn!(error = %e, "cannot remove an http-01 token from the store");
        }
    }
    for domain in &published.domains {
        challenges.remove_alpn(domain);
        if let Err(e) = store
            .global_setting_set(&format!("{ALPN01_PREFIX}{domain}"), None)
            .await
        {
            tracing::warn!(error = %e, "cannot remove a tls-alpn-01 digest from the store");
        }
    }
    result
}

async fn order_inner(
    store: &dyn Store,
    settings: &AcmeSettings,
    challenges: &Challenges,
    published: &mut Published,
) -> Result<StoredCert, AcmeError> {
    let account = account(store, settings).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let kind = match settings.challenge {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
    };
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authz = result?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Order(format!(
                    "authorization for {} is {other:?}",
                    authz.identifier()
                )));
            }
        }
        let domain = authz.identifier().to_string();
        let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
            AcmeError::Order(format!(
                "the CA offers no {} challenge for {domain}",
                settings.challenge.as_str()
            ))
        })?;
        let key_auth = challenge.key_authorization();
        match settings.challenge {
            ChallengeKind::Http01 => {
                let token = challenge.token.clone();
                challenges.put_http(&token, key_auth.as_str());
                published.tokens.push(token.clone());
                store
                    .global_setting_set(&format!("{HTTP01_PREFIX}{token}"), Some(key_auth.as_str()))
                    .await?;
            }
            ChallengeKind::TlsAlpn01 => {
                let digest = key_auth.digest();
                let cert = cert::alpn_challenge_cert(&domain, digest.as_ref())?;
                challenges.put_alpn(&domain, cert);
                let domain = domain.to_ascii_lowercase();
                published.domains.push(domain.clone());
                store
                    .global_setting_set(
                        &format!("{ALPN01_PREFIX}{domain}"),
                        Some(&hex::encode(digest.as_ref())),
                    )
                    .await?;
            }
        }
        challenge.set_ready().await?;
    }
    let status = order.poll_ready(&POLL).await?;
    if status != OrderStatus::Ready {
        // The order's authorizations say why (RFC 8555 §7.1.4 `error` of the challenge).
        let mut why = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            let domain = authz.identifier().to_string();
            if let Some(ch) = authz.challenge(kind.clone())
                && let Some(err) = &ch.error
            {
                why.push(format!(
                    "{domain}: {}",
                    err.detail.clone().unwrap_or_else(|| format!("{err:?}"))
                ));
            }
        }
        return Err(AcmeError::Order(format!(
            "the order is {status:?}: {}",
            if why.is_empty() {
                "no detail".to_string()
            } else {
                why.join("; ")
            }
        )));
    }
    let (csr, key_pem) = cert::csr(&settings.domains)?;
    order.finalize_csr(&csr).await?;
    let chain = order.poll_certificate(&POLL).await?;
    stored::StoredCert::new(
        settings.domains.clone(),
        chain,
        key_pem,
        settings.directory.clone(),
    )
}
