//! The UID index of a calendar or address book (RFC 4791 §5.3.2.1 / RFC 6352 §6.3.2.1
//! `no-uid-conflict`: one UID per collection), so a PUT looks its UID up instead of reading
//! the collection.
//!
//! Collection [`Kind::uids_collection`]: one item per UID (item id = SHA-256 of the UID in
//! hex, since a UID may be longer than an item id or hold any character), value =
//! [`UidEntry`]. Index items are written in the same `collection_write` as their resource,
//! with compare-and-set, so two nodes racing to store one UID under two names cannot both
//! win. The item [`INDEXED`] marks an index as complete; a collection made before the index
//! existed gets it built on its first PUT.

use crate::store::{DavStore, Kind, StoredObject};
use bulwark_store::collections::MAX_WRITES;
use bulwark_store::{AccountId, CollectionItem, Expect, ItemWrite, Result, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The marker item of a complete index (not a hex hash, so it cannot clash with one).
pub const INDEXED: &str = "indexed";

/// One UID's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UidEntry {
    pub uid: String,
    /// The resource name (last path segment) holding the UID.
    pub name: String,
}

/// The index item id of a UID.
pub fn key(uid: &str) -> String {
    hex::encode(Sha256::digest(uid.as_bytes()))
}

fn json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()))
}

/// The index write of `uid` → `name` (`current`: its index item now, if any).
pub fn put(
    kind: Kind,
    coll: &str,
    uid: &str,
    name: &str,
    current: Option<&CollectionItem>,
) -> Result<ItemWrite> {
    let entry = UidEntry {
        uid: uid.to_string(),
        name: name.to_string(),
    };
    let expect = current.map_or(Expect::Absent, |c| Expect::Version(c.version));
    Ok(ItemWrite::put(
        &kind.uids_collection(coll),
        &key(uid),
        expect,
        json(&entry)?,
    ))
}

/// The index write removing `item`.
pub fn delete(kind: Kind, coll: &str, item: &CollectionItem) -> ItemWrite {
    ItemWrite::delete(
        &kind.uids_collection(coll),
        &item.id,
        Expect::Version(item.version),
    )
}

/// The marker write of a new, empty collection's index.
pub fn marker(kind: Kind, coll: &str) -> ItemWrite {
    ItemWrite::put(
        &kind.uids_collection(coll),
        INDEXED,
        Expect::Any,
        "{}".to_string(),
    )
}

/// The index item of a UID and what it says, if any.
pub async fn lookup(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    coll: &str,
    uid: &str,
) -> Result<Option<(CollectionItem, UidEntry)>> {
    let items = store
        .get(account, &kind.uids_collection(coll), Some(&[key(uid)]))
        .await?;
    Ok(items.into_iter().next().map(|i| {
        let entry = serde_json::from_str(&i.value).unwrap_or_default();
        (i, entry)
    }))
}

/// Builds the index of a collection stored before it existed (once: afterwards the marker
/// says it is complete).
pub async fn ensure_index(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    coll: &str,
) -> Result<()> {
    let index = kind.uids_collection(coll);
    if !store
        .get(account, &index, Some(&[INDEXED.to_string()]))
        .await?
        .is_empty()
    {
        return Ok(());
    }
    let mut writes = Vec::new();
    for item in store
        .get(account, &kind.items_collection(coll), None)
        .await?
    {
        let obj: StoredObject = serde_json::from_str(&item.value).unwrap_or_default();
        if obj.uid.is_empty() {
            continue;
        }
        let entry = UidEntry {
            uid: obj.uid.clone(),
            name: item.id.clone(),
        };
        writes.push(ItemWrite::put(
            &index,
            &key(&obj.uid),
            Expect::Any,
            json(&entry)?,
        ));
    }
    writes.push(marker(kind, coll));
    for chunk in writes.chunks(MAX_WRITES) {
        store.write(account, chunk.to_vec()).await?;
    }
    Ok(())
}

/// How many UIDs the (complete) index holds: the collection's resource count.
pub async fn count(
    store: &dyn DavStore,
    account: AccountId,
    kind: Kind,
    coll: &str,
) -> Result<usize> {
    let items = store
        .get(account, &kind.uids_collection(coll), None)
        .await?;
    Ok(items.iter().filter(|i| i.id != INDEXED).count())
}
