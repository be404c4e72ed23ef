//! How calendars and address books live in the account collections, and the small async
//! trait the protocol core reaches the store through.
//!
//! * `calendars` / `addressbooks`: one item per collection (item id = the path segment),
//!   value = [`CollectionMeta`] as JSON.
//! * `calendar:{id}` / `addressbook:{id}`: one item per resource (item id = the resource
//!   name), value = [`StoredObject`] as JSON.
//!
//! ETags are item versions, ctags and sync tokens collection states: all modseqs of the
//! account's one change log, so JMAP for Calendars/Contacts can share them.

use async_trait::async_trait;
use bulwark_store::collections::names;
use bulwark_store::{
    AccountId, CollectionChanges, CollectionItem, Expect, ItemWrite, ModSeq, Result, Store,
    StoreError,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The store calls of the DAV core.
#[async_trait]
pub trait DavStore: Send + Sync {
    async fn get(
        &self,
        account: AccountId,
        collection: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<CollectionItem>>;
    async fn write(&self, account: AccountId, writes: Vec<ItemWrite>) -> Result<ModSeq>;
    async fn changes(
        &self,
        account: AccountId,
        collection: &str,
        since: ModSeq,
        max: usize,
    ) -> Result<CollectionChanges>;
    async fn state(&self, account: AccountId, collection: &str) -> Result<ModSeq>;
}

/// [`DavStore`] over the server's [`Store`].
pub struct StoreBackend(pub Arc<dyn Store>);

/// [`DavStore`] over a borrowed [`Store`] (the CLI's).
pub struct StoreRef<'a>(pub &'a dyn Store);

#[async_trait]
impl DavStore for StoreRef<'_> {
    async fn get(
        &self,
        account: AccountId,
        collection: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<CollectionItem>> {
        self.0.collection_get(account, collection, ids).await
    }
    async fn write(&self, account: AccountId, writes: Vec<ItemWrite>) -> Result<ModSeq> {
        self.0.collection_write(account, writes).await
    }
    async fn changes(
        &self,
        account: AccountId,
        collection: &str,
        since: ModSeq,
        max: usize,
    ) -> Result<CollectionChanges> {
        self.0
            .collection_changes(account, collection, since, max)
            .await
    }
    async fn state(&self, account: AccountId, collection: &str) -> Result<ModSeq> {
        self.0.collection_state(account, collection).await
    }
}

#[async_trait]
impl DavStore for StoreBackend {
    async fn get(
        &self,
        account: AccountId,
        collection: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<CollectionItem>> {
        StoreRef(self.0.as_ref())
            .get(account, collection, ids)
            .await
    }
    async fn write(&self, account: AccountId, writes: Vec<ItemWrite>) -> Result<ModSeq> {
        StoreRef(self.0.as_ref()).write(account, writes).await
    }
    async fn changes(
        &self,
        account: AccountId,
        collection: &str,
        since: ModSeq,
        max: usize,
    ) -> Result<CollectionChanges> {
        StoreRef(self.0.as_ref())
            .changes(account, collection, since, max)
            .await
    }
    async fn state(&self, account: AccountId, collection: &str) -> Result<ModSeq> {
        StoreRef(self.0.as_ref()).state(account, collection).await
    }
}

/// Calendars or address books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Calendar,
    Addressbook,
}

impl Kind {
    /// The collection listing the calendars / address books.
    pub fn meta_collection(self) -> &'static str {
        match self {
            Kind::Calendar => names::CALENDARS,
            Kind::Addressbook => names::ADDRESSBOOKS,
        }
    }
    /// The collection holding one calendar's / address book's resources.
    pub fn items_collection(self, id: &str) -> String {
        match self {
            Kind::Calendar => names::calendar_items(id),
            Kind::Addressbook => names::addressbook_items(id),
        }
    }
    /// The UID index of one calendar / address book ([`crate::uids`]).
    pub fn uids_collection(self, id: &str) -> String {
        match self {
            Kind::Calendar => names::calendar_uids(id),
            Kind::Addressbook => names::addressbook_uids(id),
        }
    }
    /// The path segment below `/dav/`.
    pub fn home_segment(self) -> &'static str {
        match self {
            Kind::Calendar => "calendars",
            Kind::Addressbook => "addressbooks",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Calendar => "text/calendar; charset=utf-8",
            Kind::Addressbook => "text/vcard; charset=utf-8",
        }
    }
}

/// A calendar's or address book's own properties.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CollectionMeta {
    pub displayname: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Calendars: the component types it takes (RFC 4791 §5.2.3); empty = all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

/// One calendar object or vCard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredObject {
    /// The iCalendar or vCard text as the client sent it.
    pub data: String,
    pub uid: String,
    /// Calendars: VEVENT, VTODO…
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Calendars: the span of all instances (unix seconds, UTC; `end` None when the
    /// recurrence has no end) and whether it recurs ([`crate::range::Span`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recurring: bool,
    /// The span was computed with recurrence and time zones resolved (objects stored by the
    /// first part of issue 15 lack it and have theirs recomputed when queried).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub expanded: bool,
}

impl StoredObject {
    /// The span [`crate::range`] decides on.
    pub fn span(&self) -> Option<crate::range::Span> {
        if !self.expanded {
            return crate::range::parse(&self.data).and_then(|c| crate::range::span_of(&c));
        }
        self.start.map(|start| crate::range::Span {
            start,
            end: self.end,
            recurring: self.recurring,
        })
    }
}

/// The id of the calendar and the address book every account gets.
pub const DEFAULT_ID: &str = "default";

/// Gives a new account its default calendar and address book (`bulwark account add`); the
/// same items and ids the first DAV access of an older account creates.
pub async fn create_defaults(store: &dyn Store, account: AccountId) -> Result<()> {
    ensure_defaults(&StoreRef(store), account).await
}

/// Creates the default calendar and address book of an account that never had any (its
/// collection was never written). Compare-and-set (`Expect::Absent`), so two nodes racing
/// make one; a lost race is not an error.
pub async fn ensure_defaults(store: &dyn DavStore, account: AccountId) -> Result<()> {
    for (kind, name) in [
        (Kind::Calendar, "Calendar"),
        (Kind::Addressbook, "Contacts"),
    ] {
        if store.state(account, kind.meta_collection()).await? != ModSeq(0) {
            continue;
        }
        let meta = CollectionMeta {
            displayname: name.to_string(),
            components: match kind {
                Kind::Calendar => vec!["VEVENT".into(), "VTODO".into()],
                Kind::Addressbook => Vec::new(),
            },
            ..CollectionMeta::default()
        };
        let value =
            serde_json::to_string(&meta).map_err(|e| StoreError::Internal(e.to_string()))?;
        let write = ItemWrite::put(kind.meta_collection(), DEFAULT_ID, Expect::Absent, value);
        let index = crate::uids::marker(kind, DEFAULT_ID);
        match store.write(account, vec![write, index]).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
