//! A node-local cache of one collection's items, for readers on hot paths: the vacation
//! responder looks at its account's settings after every delivery, which would otherwise be
//! a database read per message.
//!
//! Entries are dropped when a commit writes the collection — on this node (the change is
//! published before the writer answers, so a read that starts after a write returned never
//! sees the old value) or on another node (through the change feed, as fast as push). A lost
//! feed, a lagging receiver or a change that does not say which collections it wrote drop
//! everything they may concern.

use crate::{AccountId, CollectionItem, Result, StateChange, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// Items of one collection by account and id; `None` remembers that the item is absent.
pub struct ItemCache {
    store: Arc<dyn Store>,
    collection: &'static str,
    /// Most accounts kept; past it the cache starts afresh (a bound, not an LRU: hot paths
    /// refill it at the cost of one read per account).
    max_accounts: usize,
    inner: Mutex<Inner>,
}

type Items = HashMap<String, Option<CollectionItem>>;

struct Inner {
    changes: broadcast::Receiver<StateChange>,
    accounts: HashMap<AccountId, Items>,
    /// Bumped whenever entries are dropped: a read that began before is not kept (it may
    /// have read what the drop was about).
    epoch: u64,
}

impl ItemCache {
    pub fn new(store: Arc<dyn Store>, collection: &'static str, max_accounts: usize) -> Self {
        let changes = store.subscribe_all();
        ItemCache {
            store,
            collection,
            max_accounts: max_accounts.max(1),
            inner: Mutex::new(Inner {
                changes,
                accounts: HashMap::new(),
                epoch: 0,
            }),
        }
    }

    /// The item `id` of `account`, from the cache or the store.
    pub async fn get(&self, account: AccountId, id: &str) -> Result<Option<CollectionItem>> {
        let epoch = {
            let inner = self.synced();
            if let Some(hit) = inner.accounts.get(&account).and_then(|items| items.get(id)) {
                return Ok(hit.clone());
            }
            inner.epoch
        };
        let item = self
            .store
            .collection_get(account, self.collection, Some(&[id.to_string()]))
            .await?
            .into_iter()
            .find(|i| i.id == id);
        let mut inner = self.synced();
        if inner.epoch == epoch {
            if !inner.accounts.contains_key(&account) && inner.accounts.len() >= self.max_accounts {
                inner.accounts.clear();
            }
            inner
                .accounts
                .entry(account)
                .or_default()
                .insert(id.to_string(), item.clone());
        }
        Ok(item)
    }

    /// Whether an answer for `(account, id)` is cached (for tests and metrics).
    pub fn contains(&self, account: AccountId, id: &str) -> bool {
        self.synced()
            .accounts
            .get(&account)
            .is_some_and(|items| items.contains_key(id))
    }

    /// The cache, with every change published so far applied.
    fn synced(&self) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match inner.changes.try_recv() {
                Ok(change) => {
                    let ours = change
                        .collections
                        .as_ref()
                        .is_none_or(|names| names.iter().any(|n| n == self.collection));
                    if ours {
                        // Also with nothing cached for the account: a read of it may be
                        // under way.
                        inner.accounts.remove(&change.account);
                        inner.epoch += 1;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Lagged(_)) => {
                    inner.accounts.clear();
                    inner.epoch += 1;
                }
                Err(TryRecvError::Closed) => {
                    // The node may have missed changes: start afresh on a new feed.
                    inner.changes = self.store.subscribe_all();
                    inner.accounts.clear();
                    inner.epoch += 1;
                    break;
                }
            }
        }
        inner
    }
}
