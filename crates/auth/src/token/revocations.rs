//! Revoked sessions shared by every node through the store (global setting
//! [`REVOCATION_SETTING`]): each node publishes the sessions it revoked and adopts the
//! others' on [`super::TokenSigner::refresh`], so signing out a device on one node takes
//! effect on all of them within one refresh interval (at once on the node that revoked).

use super::{MAX_REVOKED_SESSIONS, TokenError, storage};
use bulwark_store::Store;
use std::collections::HashMap;

/// Global setting holding `{session id: unix time its last token expires}` (JSON).
pub const REVOCATION_SETTING: &str = "revoked-sessions";
/// Compare-and-set attempts before giving up (the next refresh tries again).
const MAX_CAS_ATTEMPTS: usize = 8;

/// Drops entries whose tokens have all expired, then the earliest-expiring beyond the cap.
pub(crate) fn prune(map: &mut HashMap<String, i64>, now: i64) {
    map.retain(|_, until| *until > now);
    if map.len() > MAX_REVOKED_SESSIONS {
        let mut by_expiry: Vec<(String, i64)> = map.drain().collect();
        by_expiry.sort_by_key(|(_, until)| std::cmp::Reverse(*until));
        by_expiry.truncate(MAX_REVOKED_SESSIONS);
        map.extend(by_expiry);
    }
}

fn parse(json: Option<&str>) -> HashMap<String, i64> {
    match json.map(serde_json::from_str::<HashMap<String, i64>>) {
        Some(Ok(map)) => map,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "shared revocation list is unreadable; starting it anew");
            HashMap::new()
        }
        None => HashMap::new(),
    }
}

/// Adds `pending` to the shared list (when not empty) and returns the whole list.
pub(crate) async fn publish_and_fetch(
    store: &dyn Store,
    pending: &HashMap<String, i64>,
    now: i64,
) -> Result<HashMap<String, i64>, TokenError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let json = store
            .global_setting_get(REVOCATION_SETTING)
            .await
            .map_err(storage)?;
        let mut shared = parse(json.as_deref());
        if pending.is_empty() {
            return Ok(shared);
        }
        shared.extend(pending.iter().map(|(k, v)| (k.clone(), *v)));
        prune(&mut shared, now);
        let next = serde_json::to_string(&shared).map_err(storage)?;
        if store
            .global_setting_replace(REVOCATION_SETTING, json.as_deref(), &next)
            .await
            .map_err(storage)?
        {
            return Ok(shared);
        }
    }
    Err(storage(
        "shared revocation list changed concurrently too often; will retry",
    ))
}

/// Global setting holding [`CredentialRevocations`] (JSON): tokens cut off by a credential
/// change rather than by session id (issue 13, item 13).
pub const CREDENTIAL_REVOCATION_SETTING: &str = "revoked-credentials";
/// How often a node re-reads [`CREDENTIAL_REVOCATION_SETTING`] (a password changed with the
/// admin CLI takes effect on running nodes within this).
pub const CREDENTIAL_REFRESH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// "Tokens of account A issued before T are invalid (except session S)".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountEpoch {
    /// Unix milliseconds: tokens issued before or at this millisecond are invalid.
    pub not_before_ms: i64,
    /// The session that made the change keeps working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_sid: Option<String>,
    /// Unix seconds after which every token affected has expired anyway (then pruned).
    pub until: i64,
}

/// Account epochs and deleted app passwords, shared by every node like revoked sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CredentialRevocations {
    /// Account id (decimal) → its epoch.
    #[serde(default)]
    pub accounts: HashMap<String, AccountEpoch>,
    /// `"account:app password id"` → unix seconds after which the entry is pruned.
    #[serde(default)]
    pub app_passwords: HashMap<String, i64>,
}

pub(crate) fn app_key(account: i64, app: i64) -> String {
    format!("{account}:{app}")
}

impl CredentialRevocations {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.app_passwords.is_empty()
    }

    /// Adds `other` (the later epoch of an account wins; app entries keep the later expiry).
    pub fn merge(&mut self, other: &CredentialRevocations) {
        for (account, epoch) in &other.accounts {
            match self.accounts.get(account) {
                Some(mine) if mine.not_before_ms >= epoch.not_before_ms => {}
                _ => {
                    self.accounts.insert(account.clone(), epoch.clone());
                }
            }
        }
        for (key, until) in &other.app_passwords {
            let entry = self.app_passwords.entry(key.clone()).or_insert(*until);
            *entry = (*entry).max(*until);
        }
    }

    /// Drops entries whose tokens have all expired.
    pub fn prune(&mut self, now: i64) {
        self.accounts.retain(|_, e| e.until > now);
        self.app_passwords.retain(|_, until| *until > now);
    }

    /// Whether these revocations cut off a token with `claims`.
    pub fn revokes(&self, claims: &super::Claims) -> bool {
        if let Some(app) = claims.app
            && self.app_passwords.contains_key(&app_key(claims.sub, app))
        {
            return true;
        }
        match self.accounts.get(&claims.sub.to_string()) {
            Some(epoch) => {
                claims.issued_at_ms() <= epoch.not_before_ms
                    && epoch.keep_sid.as_deref() != Some(claims.sid.as_str())
            }
            None => false,
        }
    }

    fn parse(json: Option<&str>) -> CredentialRevocations {
        match json.map(serde_json::from_str::<CredentialRevocations>) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "shared credential revocations are unreadable; starting them anew");
                CredentialRevocations::default()
            }
            None => CredentialRevocations::default(),
        }
    }
}

/// Adds `pending` to the shared credential revocations (when not empty) and returns them
/// all. Used by the nodes and by admin commands (`bulwark account passwd`) alike.
pub async fn publish_credentials(
    store: &dyn Store,
    pending: &CredentialRevocations,
    now: i64,
) -> Result<CredentialRevocations, TokenError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let json = store
            .global_setting_get(CREDENTIAL_REVOCATION_SETTING)
            .await
            .map_err(storage)?;
        let mut shared = CredentialRevocations::parse(json.as_deref());
        if pending.is_empty() {
            return Ok(shared);
        }
        shared.merge(pending);
        shared.prune(now);
        let next = serde_json::to_string(&shared).map_err(storage)?;
        if store
            .global_setting_replace(CREDENTIAL_REVOCATION_SETTING, json.as_deref(), &next)
            .await
            .map_err(storage)?
        {
            return Ok(shared);
        }
    }
    Err(storage(
        "shared credential revocations changed concurrently too often; will retry",
    ))
}

/// The revocation that ends every token of `account` issued before `now_ms`, except those of
/// session `keep_sid`. `until`: when the longest-lived of those tokens expires anyway.
pub fn account_epoch(
    account: bulwark_store::AccountId,
    keep_sid: Option<&str>,
    now_ms: i64,
    until: i64,
) -> CredentialRevocations {
    let mut r = CredentialRevocations::default();
    r.accounts.insert(
        account.0.to_string(),
        AccountEpoch {
            not_before_ms: now_ms,
            keep_sid: keep_sid.map(str::to_string),
            until,
        },
    );
    r
}

/// The revocation that ends every token issued from app password `app` of `account`.
pub fn app_password_revocation(
    account: bulwark_store::AccountId,
    app: i64,
    until: i64,
) -> CredentialRevocations {
    let mut r = CredentialRevocations::default();
    r.app_passwords.insert(app_key(account.0, app), until);
    r
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
