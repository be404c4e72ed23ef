//! The user's signed-in sessions (devices), so they can be listed and revoked: web client
//! sign-ins (`bulwark-web`, `/api/account/login`) and clients that took tokens from
//! `POST /auth/token` both record one here. A token's validity never depends on this list
//! (tokens are verified by signature and the signer's revocation list); the list is for the
//! user's overview, and revoking an entry revokes its session id in the signer.
//!
//! Each session is its own item of the account's [`names::DEVICES`] collection (id = session
//! id), so concurrent sign-ins on any node each add theirs (no read-modify-write of a shared
//! list) and a refresh updates `last_seen` with compare-and-set, never undoing a revoke.
//! Older versions kept one JSON array in the account setting [`SESSIONS_SETTING_KEY`]; it is
//! moved into the collection the first time the account's list is read or written.

use bulwark_store::collections::{MAX_NAME_LEN, names};
use bulwark_store::{AccountId, CollectionItem, Expect, ItemWrite, ModSeq, Store, StoreError};
use serde::{Deserialize, Serialize};

/// Settings key of the session list of older versions (migrated, then deleted).
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

/// A stored session and the version it was read at.
struct Stored {
    version: ModSeq,
    record: SessionRecord,
}

fn parse(account: AccountId, item: CollectionItem) -> Option<Stored> {
    match serde_json::from_str(&item.value) {
        Ok(record) => Some(Stored {
            version: item.version,
            record,
        }),
        Err(e) => {
            tracing::warn!(account = account.0, id = %item.id, error = %e, "stored session does not parse");
            None
        }
    }
}

fn put(record: &SessionRecord, expect: Expect) -> bulwark_store::Result<ItemWrite> {
    let value = serde_json::to_string(record)
        .map_err(|e| StoreError::Invalid(format!("session record: {e}")))?;
    Ok(ItemWrite::put(names::DEVICES, &record.id, expect, value))
}

/// Could `id` be an item id? (Ids from a URL are checked before they reach the store.)
fn is_item_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_NAME_LEN && !id.chars().any(char::is_control)
}

/// Moves the session list of older versions (setting [`SESSIONS_SETTING_KEY`]) into the
/// collection, once: each entry is written if no item has its id, then the setting goes.
async fn migrate_setting(store: &dyn Store, account: AccountId) -> bulwark_store::Result<()> {
    let Some(json) = store.setting_get(account, SESSIONS_SETTING_KEY).await? else {
        return Ok(());
    };
    let old: Vec<SessionRecord> = serde_json::from_str(&json).unwrap_or_else(|e| {
        tracing::warn!(account = account.0, error = %e, "legacy session list does not parse; dropped");
        Vec::new()
    });
    let mut moved = 0usize;
    for record in old.iter().filter(|r| is_item_id(&r.id)) {
        match store
            .collection_write(account, vec![put(record, Expect::Absent)?])
            .await
        {
            Ok(_) => moved += 1,
            // Migrated already (by another node or request).
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    store
        .setting_set(account, SESSIONS_SETTING_KEY, None)
        .await?;
    tracing::info!(
        account = account.0,
        sessions = moved,
        "moved the legacy session list into the devices collection"
    );
    Ok(())
}

/// The stored sessions, oldest first (call [`migrate_setting`] first).
async fn stored(store: &dyn Store, account: AccountId) -> bulwark_store::Result<Vec<Stored>> {
    let mut all: Vec<Stored> = store
        .collection_get(account, names::DEVICES, None)
        .await?
        .into_iter()
        .filter_map(|i| parse(account, i))
        .collect();
    all.sort_by(|a, b| {
        (a.record.created_at, &a.record.id).cmp(&(b.record.created_at, &b.record.id))
    });
    Ok(all)
}

async fn get_one(
    store: &dyn Store,
    account: AccountId,
    id: &str,
) -> bulwark_store::Result<Option<Stored>> {
    if !is_item_id(id) {
        return Ok(None);
    }
    Ok(store
        .collection_get(account, names::DEVICES, Some(&[id.to_string()]))
        .await?
        .into_iter()
        .next()
        .and_then(|i| parse(account, i)))
}

/// Deletes each of `items` unless it changed since it was read; returns those deleted.
async fn delete_unchanged(
    store: &dyn Store,
    account: AccountId,
    items: Vec<Stored>,
) -> bulwark_store::Result<Vec<SessionRecord>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let batch = items
        .iter()
        .map(|s| ItemWrite::delete(names::DEVICES, &s.record.id, Expect::Version(s.version)))
        .collect();
    match store.collection_write(account, batch).await {
        Ok(_) => return Ok(items.into_iter().map(|s| s.record).collect()),
        Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e),
    }
    // Someone else changed one of them: one at a time, skipping the changed ones.
    let mut deleted = Vec::new();
    for s in items {
        let w = ItemWrite::delete(names::DEVICES, &s.record.id, Expect::Version(s.version));
        match store.collection_write(account, vec![w]).await {
            Ok(_) => deleted.push(s.record),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The account's sessions, oldest first.
pub async fn list(
    store: &dyn Store,
    account: AccountId,
) -> bulwark_store::Result<Vec<SessionRecord>> {
    migrate_setting(store, account).await?;
    Ok(stored(store, account)
        .await?
        .into_iter()
        .map(|s| s.record)
        .collect())
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
    if !is_item_id(&record.id) {
        return Err(StoreError::Invalid(
            "session id is not a valid item id".into(),
        ));
    }
    migrate_setting(store, account).await?;
    // Session ids are fresh: the item must not exist.
    store
        .collection_write(account, vec![put(&record, Expect::Absent)?])
        .await?;
    let all = stored(store, account).await?;
    let (expired, live): (Vec<Stored>, Vec<Stored>) = all
        .into_iter()
        .filter(|s| s.record.id != record.id)
        .partition(|s| s.record.expires_at <= now);
    delete_unchanged(store, account, expired).await?;
    // The new session counts too; the oldest others go beyond the limit.
    let excess = (live.len() + 1).saturating_sub(MAX_SESSIONS);
    let oldest: Vec<Stored> = live.into_iter().take(excess).collect();
    delete_unchanged(store, account, oldest).await
}

/// Notes activity on a session (at most every [`LAST_SEEN_GRANULARITY_SECS`]) and extends its
/// expiry after a refresh. Written with compare-and-set: a session revoked meanwhile stays
/// revoked (after a conflict the session is read once more).
pub async fn touch(
    store: &dyn Store,
    account: AccountId,
    id: &str,
    expires_at: i64,
    now: i64,
) -> bulwark_store::Result<()> {
    for _attempt in 0..2 {
        let Some(mut s) = get_one(store, account, id).await? else {
            return Ok(());
        };
        if now - s.record.last_seen < LAST_SEEN_GRANULARITY_SECS {
            return Ok(());
        }
        s.record.last_seen = now;
        s.record.expires_at = expires_at;
        match store
            .collection_write(account, vec![put(&s.record, Expect::Version(s.version))?])
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    // Changed twice while we tried: the other writer's last_seen is as good as ours.
    Ok(())
}

/// Forgets a session; returns it if it was listed.
pub async fn remove(
    store: &dyn Store,
    account: AccountId,
    id: &str,
) -> bulwark_store::Result<Option<SessionRecord>> {
    if !is_item_id(id) {
        return Ok(None);
    }
    migrate_setting(store, account).await?;
    for _attempt in 0..2 {
        let Some(s) = get_one(store, account, id).await? else {
            return Ok(None);
        };
        let w = ItemWrite::delete(names::DEVICES, id, Expect::Version(s.version));
        match store.collection_write(account, vec![w]).await {
            Ok(_) => return Ok(Some(s.record)),
            // Touched meanwhile: read it again and delete that version.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(format!(
        "session {id} changes too often to be removed"
    )))
}
