//! Storage quotas: how much mail an account may keep, one rule for every path that stores
//! mail (the delivery pipeline, IMAP APPEND/COPY, JMAP Email/import, /set and /copy) and
//! the one source of the figures IMAP QUOTA (RFC 9208) and JMAP Quota (RFC 9425) report.
//!
//! * **Usage** is the account's `used_bytes`: the sum of its emails' sizes, each copy
//!   counted, kept by the store on every insert and delete (so no path can forget it).
//! * **Limit**: the account's own setting (collection [`QUOTA`], written by administrators
//!   with `bulwark account quota`) or else the server's `[quota] default_storage`.
//! * **Check**: a write is admitted when usage plus what it adds stays within the limit.
//!   The check is made before the write's transaction, so two deliveries racing at the
//!   edge may both pass and overrun the limit by at most one message each (Dovecot's quota
//!   plugin behaves the same way); a refused write stores nothing.

use bulwark_store::collections::names::QUOTA;
use bulwark_store::{AccountId, Expect, ItemWrite, Store, StoreError};
use serde::{Deserialize, Serialize};

/// The item of [`QUOTA`] that holds the storage setting.
const STORAGE_ITEM: &str = "storage";

/// The server-wide part of the rule (`[quota]` in the config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaPolicy {
    /// The limit of accounts without their own setting; `None`: unlimited.
    pub default_storage: Option<u64>,
}

/// An account's own storage setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The server's default applies.
    Default,
    Unlimited,
    Bytes(u64),
}

#[derive(Serialize, Deserialize)]
struct Stored {
    storage: Option<u64>,
}

/// What an account uses and may use, in octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    /// `None`: unlimited.
    pub limit: Option<u64>,
}

impl Usage {
    /// May `adding` more octets be stored?
    pub fn admits(&self, adding: u64) -> bool {
        self.limit
            .is_none_or(|limit| self.used.saturating_add(adding) <= limit)
    }

    /// RFC 9208 §5.1 `STORAGE` figures: units of 1024 octets, usage rounded up.
    pub fn storage_kib(&self) -> (u64, Option<u64>) {
        (self.used.div_ceil(1024), self.limit.map(|l| l / 1024))
    }
}

/// The account's own setting.
pub async fn setting(store: &dyn Store, account: AccountId) -> Result<Setting, StoreError> {
    let items = store
        .collection_get(account, QUOTA, Some(&[STORAGE_ITEM.to_string()]))
        .await?;
    let Some(item) = items.into_iter().next() else {
        return Ok(Setting::Default);
    };
    let stored: Stored = serde_json::from_str(&item.value)
        .map_err(|e| StoreError::Internal(format!("quota setting: {e}")))?;
    Ok(match stored.storage {
        None => Setting::Unlimited,
        Some(b) => Setting::Bytes(b),
    })
}

/// Sets (or, with [`Setting::Default`], removes) the account's own setting.
pub async fn set(store: &dyn Store, account: AccountId, to: Setting) -> Result<(), StoreError> {
    let write = match to {
        Setting::Default => {
            if setting(store, account).await? == Setting::Default {
                return Ok(());
            }
            ItemWrite::delete(QUOTA, STORAGE_ITEM, Expect::Any)
        }
        Setting::Unlimited | Setting::Bytes(_) => {
            let storage = match to {
                Setting::Bytes(b) => Some(b),
                _ => None,
            };
            let value = serde_json::to_string(&Stored { storage })
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            ItemWrite::put(QUOTA, STORAGE_ITEM, Expect::Any, value)
        }
    };
    store.collection_write(account, vec![write]).await?;
    Ok(())
}

/// The limit that applies to the account.
pub async fn limit(
    store: &dyn Store,
    account: AccountId,
    policy: QuotaPolicy,
) -> Result<Option<u64>, StoreError> {
    Ok(match setting(store, account).await? {
        Setting::Default => policy.default_storage,
        Setting::Unlimited => None,
        Setting::Bytes(b) => Some(b),
    })
}

/// The account's usage and limit ([`StoreError::NotFound`] for an unknown account).
pub async fn usage(
    store: &dyn Store,
    account: AccountId,
    policy: QuotaPolicy,
) -> Result<Usage, StoreError> {
    let limit = limit(store, account, policy).await?;
    let used = store
        .account_get(account)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))?
        .used_bytes;
    Ok(Usage { used, limit })
}

/// May the account store `adding` more octets? (`Ok(false)`: over quota.)
pub async fn admits(
    store: &dyn Store,
    account: AccountId,
    policy: QuotaPolicy,
    adding: u64,
) -> Result<bool, StoreError> {
    if adding == 0 {
        return Ok(true);
    }
    Ok(usage(store, account, policy).await?.admits(adding))
}

/// The delivery pipeline's recipient stage for quotas: a local copy that would take the
/// account over its limit is refused with RFC 3463 `4.2.2` "mailbox full", temporarily,
/// so the sender's queue keeps the message while the owner makes room (RFC 5321 §4.5.3.1.10
/// asks for `452` on "insufficient system storage"; a permanent `552` would bounce mail the
/// user wants). A store error admits the message: the write that follows fails the same way
/// and is answered as a store outage.
pub struct QuotaHook {
    store: std::sync::Arc<dyn Store>,
    policy: QuotaPolicy,
}

impl QuotaHook {
    pub fn new(store: std::sync::Arc<dyn Store>, policy: QuotaPolicy) -> QuotaHook {
        QuotaHook { store, policy }
    }
}

/// The reason a delivery over quota is refused with (SMTP sends it as the reply).
pub const MAILBOX_FULL: &str = "452 4.2.2 Mailbox full: the recipient is over their storage quota";

#[async_trait::async_trait]
impl crate::DeliveryHook for QuotaHook {
    async fn check(&self, account: AccountId, message: &crate::Message) -> Option<crate::Refusal> {
        let adding = message.local_raw.len() as u64;
        match admits(self.store.as_ref(), account, self.policy, adding).await {
            Ok(false) => Some(crate::Refusal::Temporary(MAILBOX_FULL.to_string())),
            Ok(true) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Outcome, Pipeline, Refusal};
    use bulwark_store::NewAccount;
    use bulwark_store::sqlite::SqliteStore;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_pipeline_defers_a_copy_past_the_limit_and_delivers_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        store.domain_add("example.test").await.expect("domain");
        let mut ids = Vec::new();
        for a in ["alice@example.test", "bob@example.test"] {
            let new = NewAccount {
                address: a.into(),
                display_name: a.into(),
                password_hash: "x".into(),
            };
            ids.push(store.account_create(new).await.expect("account").id);
        }
        let (alice, bob) = (ids[0], ids[1]);
        let policy = QuotaPolicy {
            default_storage: Some(1000),
        };
        let p = Pipeline::new(store.clone(), Arc::new(tokio::sync::Notify::new()), 3600);
        p.add_hook(Arc::new(QuotaHook::new(store.clone(), policy)));
        // Bob may keep more than the default.
        set(store.as_ref(), bob, Setting::Bytes(10_000))
            .await
            .expect("set");
        assert_eq!(
            setting(store.as_ref(), bob).await.expect("get"),
            Setting::Bytes(10_000)
        );
        let body = format!("Subject: hi\r\n\r\n{}\r\n", "x".repeat(600));
        let send = |n: usize| {
            let m = Message::new(
                "x@client.test",
                vec!["alice@example.test".into(), "bob@example.test".into()],
                Arc::new(body.clone().into_bytes()),
            );
            let p = p.clone();
            async move { (n, p.deliver(m).await.expect("deliver")) }
        };
        let (_, first) = send(1).await;
        assert!(
            first
                .outcomes
                .iter()
                .all(|(_, o)| matches!(o, Outcome::Delivered(_)))
        );
        let (_, second) = send(2).await;
        assert_eq!(
            second.outcomes[0].1,
            Outcome::Refused(Refusal::Temporary(MAILBOX_FULL.into())),
            "alice is full"
        );
        assert_eq!(second.outcomes[1].1, Outcome::Delivered(bob));
        let a = usage(store.as_ref(), alice, policy).await.expect("usage");
        assert_eq!((a.used, a.limit), (body.len() as u64, Some(1000)));
        // Back to the default: bob is over it now.
        set(store.as_ref(), bob, Setting::Default)
            .await
            .expect("set");
        assert!(
            !admits(store.as_ref(), bob, policy, 1)
                .await
                .expect("admits")
        );
        assert!(
            admits(store.as_ref(), bob, policy, 0)
                .await
                .expect("admits")
        );
    }

    #[test]
    fn storage_figures_round_usage_up_and_limits_down() {
        let u = Usage {
            used: 1025,
            limit: Some(10 * 1024 + 5),
        };
        assert_eq!(u.storage_kib(), (2, Some(10)));
        assert!(u.admits(10 * 1024 + 5 - 1025));
        assert!(!u.admits(10 * 1024 + 5 - 1024));
        let unlimited = Usage {
            used: u64::MAX,
            limit: None,
        };
        assert!(unlimited.admits(u64::MAX));
    }
}
