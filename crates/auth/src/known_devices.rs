//! Known devices kept in the store (issue 13, item 11): the addresses an account signed in
//! from successfully in the last [`crate::KNOWN_DEVICE_TTL`], so the exemption from the
//! per-account lock-out survives a restart and holds on every node (the throttle's own memory
//! is per node). Read only while the account is under attack; written on the first success
//! from an address this node did not know (at most once a day per address).

use bulwark_store::{AccountId, Store};
use std::collections::HashMap;
use std::net::IpAddr;

/// Account setting holding `{ip: unix seconds of the last success}` (JSON).
pub const KNOWN_DEVICES_SETTING: &str = "known_devices";
/// Addresses remembered per account (the least recently seen are forgotten first).
pub const MAX_KNOWN_DEVICES: usize = 16;
/// A stored entry is refreshed at most this often.
const REFRESH_SECS: i64 = 24 * 3600;

fn ttl_secs() -> i64 {
    i64::try_from(crate::KNOWN_DEVICE_TTL.as_secs()).unwrap_or(i64::MAX)
}

async fn load(
    store: &dyn Store,
    account: AccountId,
) -> bulwark_store::Result<HashMap<String, i64>> {
    Ok(store
        .setting_get(account, KNOWN_DEVICES_SETTING)
        .await?
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

/// Whether `ip` signed in to `account` within the known-device lifetime.
pub async fn is_known(store: &dyn Store, account: AccountId, ip: IpAddr, now: i64) -> bool {
    match load(store, account).await {
        Ok(map) => map
            .get(&ip.to_string())
            .is_some_and(|t| now.saturating_sub(*t) < ttl_secs()),
        Err(_) => false,
    }
}

/// Records a successful sign-in of `account` from `ip`.
pub async fn remember(
    store: &dyn Store,
    account: AccountId,
    ip: IpAddr,
    now: i64,
) -> bulwark_store::Result<()> {
    let mut map = load(store, account).await?;
    let key = ip.to_string();
    if map
        .get(&key)
        .is_some_and(|t| now.saturating_sub(*t) < REFRESH_SECS)
    {
        return Ok(());
    }
    map.retain(|_, t| now.saturating_sub(*t) < ttl_secs());
    map.insert(key, now);
    while map.len() > MAX_KNOWN_DEVICES {
        let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) else {
            break;
        };
        map.remove(&oldest);
    }
    let json = serde_json::to_string(&map).unwrap_or_else(|_| "{}".into());
    store
        .setting_set(account, KNOWN_DEVICES_SETTING, Some(&json))
        .await
}
