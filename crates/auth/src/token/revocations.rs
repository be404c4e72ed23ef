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
