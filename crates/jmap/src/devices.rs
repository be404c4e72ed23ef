//! The user's signed-in sessions (devices), kept in the account settings so they can be listed
//! and revoked: web client sign-ins (`bulwark-web`, `/api/account/login`) and clients that
//! took tokens from `POST /auth/token` both record one here. A token's validity never depends
//! on this list (tokens are verified by signature and the signer's revocation list); the list
//! is for the user's overview, and revoking an entry revokes its session id in the signer.

use bulwark_store::{AccountId, Store};
use serde::{Deserialize, Serialize};

/// Settings key of the session list.
pub const SESSIONS_SETTING_KEY: &str = "web_sessions";
/// Sessions remembered per account; the oldest is revoked and forgotten beyond this.
pub const MAX_SESSIONS: usize = 50;
/// Longest user agent string we keep.
const MAX_USER_AGENT: usize = 200;
/// `last_seen` is written at most this often per session (refreshes are frequent).
pub const LAST_SEEN_GRANULARITY_SECS: i64 = 300;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    pub id: String,
    pub created_at: i64,
    pub last_seen: i64,
    /// When the refresh token of the session expires.
    pub expires_at: i64,
    pub user_agent: String,
    pub ip: String,
    /// How the session was opened: [`VIA_WEB`] or [`VIA_TOKEN_ENDPOINT`].
    #[serde(default = "via_web")]
    pub via: String,
}

/// A web client sign-in (`/api/account/login`).
pub const VIA_WEB: &str = "web";
/// A password grant at `POST /auth/token` (a JMAP client).
pub const VIA_TOKEN_ENDPOINT: &str = "token";

fn via_web() -> String {
    VIA_WEB.to_string()
}

pub async fn list(
    store: &dyn Store,
    account: AccountId,
) -> bulwark_store::Result<Vec<SessionRecord>> {
    Ok(store
        .setting_get(account, SESSIONS_SETTING_KEY)
        .await?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

async fn save(
    store: &dyn Store,
    account: AccountId,
    list: &[SessionRecord],
) -> bulwark_store::Result<()> {
    let json = serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
    store
        .setting_set(account, SESSIONS_SETTING_KEY, Some(&json))
        .await
}

/// Records a new session; returns the sessions pushed out by [`MAX_SESSIONS`] (to revoke).
/// Expired sessions are dropped.
pub async fn add(
    store: &dyn Store,
    account: AccountId,
    mut record: SessionRecord,
    now: i64,
) -> bulwark_store::Result<Vec<SessionRecord>> {
    record.user_agent = record.user_agent.chars().take(MAX_USER_AGENT).collect();
    let mut all = list(store, account).await?;
    all.retain(|s| s.expires_at > now);
    all.push(record);
    let mut evicted = Vec::new();
    while all.len() > MAX_SESSIONS {
        evicted.push(all.remove(0));
    }
    save(store, account, &all).await?;
    Ok(evicted)
}

/// Notes activity on a session (at most every [`LAST_SEEN_GRANULARITY_SECS`]) and extends its
/// expiry after a refresh.
pub async fn touch(
    store: &dyn Store,
    account: AccountId,
    id: &str,
    expires_at: i64,
    now: i64,
) -> bulwark_store::Result<()> {
    let mut all = list(store, account).await?;
    let Some(s) = all.iter_mut().find(|s| s.id == id) else {
        return Ok(());
    };
    if now - s.last_seen < LAST_SEEN_GRANULARITY_SECS {
        return Ok(());
    }
    s.last_seen = now;
    s.expires_at = expires_at;
    save(store, account, &all).await
}

/// Forgets a session; returns it if it was listed.
pub async fn remove(
    store: &dyn Store,
    account: AccountId,
    id: &str,
) -> bulwark_store::Result<Option<SessionRecord>> {
    let mut all = list(store, account).await?;
    let Some(pos) = all.iter().position(|s| s.id == id) else {
        return Ok(None);
    };
    let removed = all.remove(pos);
    save(store, account, &all).await?;
    Ok(Some(removed))
}
