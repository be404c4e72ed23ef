//! Greylisting (RFC 6647), optional (`[spam] greylisting`): the first time a client network
//! sends from a sender to an account, RCPT is answered `451 4.7.1` (try again later); a retry
//! after [`GreylistPolicy::delay_secs`] passes, and that triplet then passes for
//! [`PASSED_LIFETIME_SECS`] after its last use. Real MTAs retry; much spamware does not.
//!
//! The triplet is the client's network (IPv4 /24, IPv6 /64: a sender's pool of outbound
//! servers, RFC 6647 §4.1), the envelope sender (lowercase) and the recipient's account. Its
//! record is an item of the recipient account's collection `greylist` (every node sees it).
//! Authenticated clients are never greylisted (the SMTP shell decides that).

use bulwark_store::{AccountId, Expect, ItemWrite, Store, StoreError};
use sha2::Digest as _;
use std::net::IpAddr;

pub const COLLECTION: &str = "greylist";
/// A triplet that passed keeps passing this long after it was last seen (RFC 6647 §4.3
/// suggests at least a month).
pub const PASSED_LIFETIME_SECS: i64 = 36 * 86_400;
/// A first attempt that is not retried within this long is forgotten.
pub const RETRY_WINDOW_SECS: i64 = 86_400;
/// One new record in this many makes the account's expired records be removed (so a
/// stream of one-off senders cannot grow the collection without end).
pub const SWEEP_EVERY: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreylistPolicy {
    pub enabled: bool,
    /// How long a first attempt waits before a retry passes.
    pub delay_secs: i64,
}

impl Default for GreylistPolicy {
    fn default() -> Self {
        GreylistPolicy {
            enabled: false,
            delay_secs: 300,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Record {
    first: i64,
    /// When it passed (`None`: still waiting).
    passed: Option<i64>,
    last: i64,
}

impl Record {
    fn expired(&self, now: i64) -> bool {
        match self.passed {
            Some(_) => now - self.last > PASSED_LIFETIME_SECS,
            None => now - self.first > RETRY_WINDOW_SECS,
        }
    }
}

/// The network part of the triplet.
pub fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return network(IpAddr::V4(v4));
            }
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

fn item_id(ip: IpAddr, sender: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{}\n{}", network(ip), sender.to_lowercase()));
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Whether this attempt passes; records it either way. A store error is the caller's to
/// judge (the SMTP shell lets the mail in rather than defer on a store outage).
pub async fn admits(
    store: &dyn Store,
    account: AccountId,
    ip: IpAddr,
    sender: &str,
    policy: GreylistPolicy,
    now: i64,
) -> Result<bool, StoreError> {
    if !policy.enabled {
        return Ok(true);
    }
    let id = item_id(ip, sender);
    for _ in 0..3 {
        let item = store
            .collection_get(account, COLLECTION, Some(std::slice::from_ref(&id)))
            .await?
            .into_iter()
            .next();
        let (expect, record) = match &item {
            Some(i) => (
                Expect::Version(i.version),
                serde_json::from_str::<Record>(&i.value)
                    .ok()
                    .filter(|r| !r.expired(now)),
            ),
            None => (Expect::Absent, None),
        };
        let (pass, next) = match record {
            Some(r) if r.passed.is_some() => (true, Record { last: now, ..r }),
            Some(r) if now - r.first >= policy.delay_secs => (
                true,
                Record {
                    passed: Some(now),
                    last: now,
                    ..r
                },
            ),
            Some(r) => (false, Record { last: now, ..r }),
            None => (
                false,
                Record {
                    first: now,
                    passed: None,
                    last: now,
                },
            ),
        };
        // A passed triplet is rewritten at most hourly (it is read on every message).
        if let (true, Some(i)) = (pass, &item)
            && let Ok(old) = serde_json::from_str::<Record>(&i.value)
            && old.passed.is_some()
            && now - old.last < 3600
        {
            return Ok(true);
        }
        let value = serde_json::to_string(&next).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let created = item.is_none();
        match store
            .collection_write(
                account,
                vec![ItemWrite::put(COLLECTION, &id, expect, value)],
            )
            .await
        {
            Ok(_) => {
                if created && sweep_due(&id) {
                    sweep_collection(store, account, COLLECTION, |v| {
                        serde_json::from_str::<Record>(v).map_or(true, |r| r.expired(now))
                    })
                    .await;
                }
                return Ok(pass);
            }
            // Another node (or a parallel session) wrote it: read again.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Whether creating the record `id` (a hex hash) should sweep its collection: one in
/// [`SWEEP_EVERY`], spread by the hash.
pub fn sweep_due(id: &str) -> bool {
    id.get(..8)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .is_some_and(|n| n % SWEEP_EVERY == 0)
}

/// Deletes the items of an account collection whose value `expired` says so (best effort,
/// each with compare-and-set so an item rewritten meanwhile stays). Greylisting and the
/// spam stage's remembered senders keep their collections bounded with it.
pub async fn sweep_collection(
    store: &dyn Store,
    account: AccountId,
    collection: &str,
    expired: impl Fn(&str) -> bool,
) {
    let Ok(items) = store.collection_get(account, collection, None).await else {
        return;
    };
    let old: Vec<ItemWrite> = items
        .iter()
        .filter(|i| expired(&i.value))
        .map(|i| ItemWrite::delete(collection, &i.id, Expect::Version(i.version)))
        .collect();
    for part in old.chunks(bulwark_store::collections::MAX_WRITES) {
        let _ = store.collection_write(account, part.to_vec()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::NewAccount;
    use bulwark_store::sqlite::SqliteStore;

    #[test]
    fn networks() {
        assert_eq!(network("192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            network("2001:db8:1:2:3::9".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(network("::ffff:192.0.2.1".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            item_id("192.0.2.1".parse().unwrap(), "A@Example.org"),
            item_id("192.0.2.200".parse().unwrap(), "a@example.org")
        );
    }

    #[tokio::test]
    async fn first_attempt_waits_a_retry_after_the_delay_passes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.domain_add("example.test").await.unwrap();
        let account = store
            .account_create(NewAccount {
                address: "u@example.test".into(),
                display_name: String::new(),
                password_hash: "x".into(),
            })
            .await
            .unwrap()
            .id;
        let s = store.as_ref();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let policy = GreylistPolicy {
            enabled: true,
            delay_secs: 300,
        };
        let t = 1_000_000;
        assert!(!admits(s, account, ip, "a@x.org", policy, t).await.unwrap());
        assert!(
            !admits(s, account, ip, "a@x.org", policy, t + 299)
                .await
                .unwrap()
        );
        // Another server of the same /24 retries: the same triplet.
        let other: IpAddr = "192.0.2.11".parse().unwrap();
        assert!(
            admits(s, account, other, "a@x.org", policy, t + 300)
                .await
                .unwrap()
        );
        assert!(
            admits(s, account, ip, "a@x.org", policy, t + 5000)
                .await
                .unwrap()
        );
        // Another sender waits on its own.
        assert!(
            !admits(s, account, ip, "b@x.org", policy, t + 5000)
                .await
                .unwrap()
        );
        // A first attempt never retried is forgotten after the window.
        assert!(
            !admits(
                s,
                account,
                ip,
                "b@x.org",
                policy,
                t + 5000 + RETRY_WINDOW_SECS + 1
            )
            .await
            .unwrap()
        );
        // A passed triplet unused for longer than its lifetime waits again.
        let late = t + 5000 + PASSED_LIFETIME_SECS + 1;
        assert!(
            !admits(s, account, ip, "a@x.org", policy, late)
                .await
                .unwrap()
        );
        // Off: everything passes, nothing is written.
        let off = GreylistPolicy::default();
        assert!(admits(s, account, ip, "c@x.org", off, t).await.unwrap());
    }
}
