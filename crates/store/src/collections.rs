//! Account-scoped durable collections: every kind of user data that is not mail (JMAP
//! identities, the vacation response, EmailSubmission records, signed-in devices, second
//! factors; next calendars, address books, Sieve scripts, push subscriptions) is an item
//! `(account, collection, id) → value` with a version, written through the four generic
//! methods of [`crate::Store`] (`collection_get`, `collection_write`, `collection_changes`,
//! `collection_state`). Adding a collection adds no method to the store: it is a name.
//!
//! * **Versions** are modseqs of the account's one change log: a write takes the account's
//!   next modseq, stores it as the item's version and logs `(collection, id, op)` at it, so
//!   JMAP `/changes` and WebDAV sync can be answered for every collection, and push
//!   ([`crate::StateChange`]) fires as for mail.
//! * **Compare-and-set**: every write says what it expects ([`Expect`]); a mismatch fails the
//!   whole [`crate::Store::collection_write`] call with [`crate::StoreError::Conflict`] and
//!   writes nothing. Single-use secrets (TOTP steps, recovery codes) and read-modify-write
//!   of lists (devices) rely on it across nodes.
//! * **Blobs** an item references ([`ItemWrite::blobs`]) count as the account's: it may read
//!   them, and the collector keeps them while the item exists.

use crate::{BlobHash, ModSeq, Result, StoreError};
use std::collections::HashMap;

/// Longest collection name and item id (bytes).
pub const MAX_NAME_LEN: usize = 200;
/// Largest item value (bytes). Collections hold settings and small records; mail content
/// and attachments are blobs.
pub const MAX_VALUE_LEN: usize = 4 * 1024 * 1024;
/// Most writes in one [`crate::Store::collection_write`] call.
pub const MAX_WRITES: usize = 1024;

/// Well-known collection names (kept here so every crate spells them the same way).
pub mod names {
    /// JMAP Identity objects (RFC 8621 §6) that differ from the defaults.
    pub const IDENTITIES: &str = "identities";
    /// The JMAP VacationResponse singleton (RFC 8621 §8), id `singleton`.
    pub const VACATION: &str = "vacation";
    /// EmailSubmission records (RFC 8621 §7).
    pub const SUBMISSIONS: &str = "submissions";
    /// Mail submitted over SMTP with FUTURERELEASE (RFC 4865), held until its time: the
    /// same record shape as [`SUBMISSIONS`] without the JMAP fields (see `bulwark_core::held`).
    pub const SMTP_HOLDS: &str = "smtp-holds";
    /// Signed-in devices (web sessions and token clients).
    pub const DEVICES: &str = "devices";
    /// Account settings that need compare-and-set (second factor, recovery codes…).
    pub const SETTINGS: &str = "settings";
    /// IMAP `\Recent` (RFC 3501 §2.3.2): per mailbox (item id = mailbox id), the highest
    /// UID a session has already been given as recent; claimed by compare-and-set so one
    /// session gets each new message as recent, across nodes.
    pub const IMAP_RECENT: &str = "imap-recent";
    /// IMAP subscriptions of names that have no mailbox (RFC 3501 §6.3.6: DELETE does not
    /// unsubscribe); item id = the mailbox name.
    pub const IMAP_SUBSCRIPTIONS: &str = "imap-subscriptions";
    /// The case in which IMAP clients first wrote each custom keyword (item `case`: a
    /// JSON list); the store keeps keywords lowercase, as JMAP returns them.
    pub const IMAP_KEYWORDS: &str = "imap-keywords";
    /// IMAP METADATA (RFC 5464): the server's entries (item `server`) and each mailbox's
    /// (item [`imap_metadata_item`]), a JSON object of entry name → value. Keyed by mailbox
    /// id, so RENAME keeps them; deleting the mailbox deletes its item.
    pub const IMAP_METADATA: &str = "imap-metadata";

    /// IMAP URLAUTH (RFC 4467) mailbox access keys: item id = the mailbox id, value = the
    /// key in hex. Deleting the mailbox deletes its key.
    pub const IMAP_URLAUTH_KEYS: &str = "imap-urlauth-keys";

    /// The account's storage quota when it differs from the server's default
    /// (`bulwark account quota`): item `storage`, value `{"storage": bytes | null}` (null:
    /// unlimited). Written by administrators only; read by `bulwark_core::quota`.
    pub const QUOTA: &str = "quota";

    /// Sieve scripts (crates/sieve): items `script:{name}` (the source) and `active` (which
    /// script runs on delivery).
    pub const SIEVE: &str = "sieve";
    /// Sieve duplicate tracking (RFC 7352 `duplicate`, RFC 5230 vacation `:days`): item id =
    /// a hash of the tracked id, value = when it expires (unix seconds).
    pub const SIEVE_SEEN: &str = "sieve-seen";

    /// CalDAV calendars (crates/dav): item id = the calendar's path segment, value = its
    /// properties (display name, colour, description, components) as JSON.
    pub const CALENDARS: &str = "calendars";
    /// CardDAV address books (crates/dav), as [`CALENDARS`].
    pub const ADDRESSBOOKS: &str = "addressbooks";

    /// The collection of one calendar's objects: item id = resource name, value = JSON
    /// with the iCalendar text and its UID.
    pub fn calendar_items(calendar: &str) -> String {
        format!("calendar:{calendar}")
    }

    /// The collection of one address book's vCards, as [`calendar_items`].
    pub fn addressbook_items(book: &str) -> String {
        format!("addressbook:{book}")
    }

    /// The UID index of one calendar (RFC 4791 §5.3.2.1 no-uid-conflict): item id = a hash of
    /// the UID, value = JSON with the UID and the resource name holding it; written in the
    /// same `collection_write` as the resource.
    pub fn calendar_uids(calendar: &str) -> String {
        format!("calendar-uids:{calendar}")
    }

    /// The UID index of one address book, as [`calendar_uids`].
    pub fn addressbook_uids(book: &str) -> String {
        format!("addressbook-uids:{book}")
    }

    /// The [`IMAP_METADATA`] item of one mailbox.
    pub fn imap_metadata_item(mailbox: crate::MailboxId) -> String {
        format!("mailbox:{}", mailbox.0)
    }
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionItem {
    pub id: String,
    /// The modseq of the item's last write.
    pub version: ModSeq,
    /// Opaque to the store (JSON by convention).
    pub value: String,
}

/// What a write expects of the item's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Write whatever is there (last writer wins).
    Any,
    /// The item must not exist (create).
    Absent,
    /// The item must exist with exactly this version.
    Version(ModSeq),
}

/// One put (`value: Some`) or delete (`value: None`) of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    pub collection: String,
    pub id: String,
    pub expect: Expect,
    pub value: Option<String>,
    /// Blobs the item references (replaces the previous list); ignored for deletes.
    pub blobs: Vec<BlobHash>,
}

impl ItemWrite {
    pub fn put(collection: &str, id: &str, expect: Expect, value: String) -> ItemWrite {
        ItemWrite {
            collection: collection.to_string(),
            id: id.to_string(),
            expect,
            value: Some(value),
            blobs: Vec::new(),
        }
    }

    pub fn delete(collection: &str, id: &str, expect: Expect) -> ItemWrite {
        ItemWrite {
            collection: collection.to_string(),
            id: id.to_string(),
            expect,
            value: None,
            blobs: Vec::new(),
        }
    }

    /// Checks the limits every backend enforces before touching the database.
    pub fn validate(&self) -> Result<()> {
        for (what, name) in [("collection", &self.collection), ("item id", &self.id)] {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return Err(StoreError::Invalid(format!(
                    "{what} must be 1 to {MAX_NAME_LEN} bytes"
                )));
            }
            if name.chars().any(char::is_control) {
                return Err(StoreError::Invalid(format!(
                    "{what} contains a control character"
                )));
            }
        }
        if self.value.as_ref().is_some_and(|v| v.len() > MAX_VALUE_LEN) {
            return Err(StoreError::Invalid(format!(
                "item value is larger than {MAX_VALUE_LEN} bytes"
            )));
        }
        Ok(())
    }

    /// Does the current version (`None`: absent) satisfy the expectation? The error names
    /// the item, for [`StoreError::Conflict`].
    pub fn check(&self, current: Option<ModSeq>) -> Result<()> {
        let ok = match (self.expect, current) {
            (Expect::Any, _) => true,
            (Expect::Absent, None) => true,
            (Expect::Version(want), Some(have)) => want == have,
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let now = match current {
            Some(v) => format!("is at version {v}"),
            None => "does not exist".to_string(),
        };
        let wanted = match self.expect {
            Expect::Any => "anything".to_string(),
            Expect::Absent => "no item".to_string(),
            Expect::Version(v) => format!("version {v}"),
        };
        Err(StoreError::Conflict(format!(
            "{}/{} {now}, expected {wanted}",
            self.collection, self.id
        )))
    }
}

/// Checks a whole write batch.
pub fn validate_writes(writes: &[ItemWrite]) -> Result<()> {
    if writes.is_empty() {
        return Err(StoreError::Invalid("no writes".into()));
    }
    if writes.len() > MAX_WRITES {
        return Err(StoreError::Invalid(format!(
            "more than {MAX_WRITES} writes in one call"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for w in writes {
        w.validate()?;
        if !seen.insert((&w.collection, &w.id)) {
            return Err(StoreError::Invalid(format!(
                "{}/{} is written twice in one call",
                w.collection, w.id
            )));
        }
    }
    Ok(())
}

/// Groups `(account, write)` pairs by account, in account order, keeping each account's
/// writes in the order given.
pub fn by_account(
    items: Vec<(crate::AccountId, ItemWrite)>,
) -> Vec<(crate::AccountId, Vec<ItemWrite>)> {
    let mut grouped: std::collections::BTreeMap<crate::AccountId, Vec<ItemWrite>> =
        std::collections::BTreeMap::new();
    for (account, write) in items {
        grouped.entry(account).or_default().push(write);
    }
    grouped.into_iter().collect()
}

/// What changed in one collection after a modseq (JMAP `/changes`, WebDAV sync).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionChanges {
    /// The state the answer brings the caller to (pass it as `since` next time).
    pub new_state: ModSeq,
    pub has_more: bool,
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub destroyed: Vec<String>,
}

/// Stored codes of [`CollectionChanges`] log rows.
pub const OP_PUT: i64 = 0;
pub const OP_DELETE: i64 = 1;

/// Collapses log rows `(modseq, id, op, existed_before)` read in modseq order after `since`
/// into a [`CollectionChanges`], whole modseqs at a time, at most `max` ids unless one
/// modseq alone has more. `existed_before` says whether the write found the item (so a put
/// is an update, not a create). `current` is the collection's state; used when the rows
/// run out.
pub fn collapse(
    since: ModSeq,
    max: usize,
    rows: impl IntoIterator<Item = (ModSeq, String, i64, bool)>,
    current: ModSeq,
) -> CollectionChanges {
    struct State {
        created_in_window: bool,
        deleted: bool,
    }
    let mut order: Vec<String> = Vec::new();
    let mut state: HashMap<String, State> = HashMap::new();
    let mut new_state = since;
    let mut has_more = false;
    let mut rows = rows.into_iter().peekable();
    while let Some((modseq, ..)) = rows.peek() {
        let modseq = *modseq;
        let mut group = Vec::new();
        while let Some(row) = rows.next_if(|r| r.0 == modseq) {
            group.push(row);
        }
        let fresh = group
            .iter()
            .filter(|(_, id, ..)| !state.contains_key(id))
            .count();
        if !order.is_empty() && order.len() + fresh > max {
            has_more = true;
            break;
        }
        for (_, id, op, existed) in group {
            let deleted = op == OP_DELETE;
            match state.get_mut(&id) {
                Some(s) => s.deleted = deleted,
                None => {
                    order.push(id.clone());
                    state.insert(
                        id,
                        State {
                            created_in_window: !existed,
                            deleted,
                        },
                    );
                }
            }
        }
        new_state = modseq;
    }
    if !has_more {
        new_state = new_state.max(current);
    }
    let mut out = CollectionChanges {
        new_state,
        has_more,
        ..Default::default()
    };
    for id in order {
        let s = &state[&id];
        match (s.created_in_window, s.deleted) {
            (true, true) => {}
            (true, false) => out.created.push(id),
            (false, true) => out.destroyed.push(id),
            (false, false) => out.updated.push(id),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(m: u64, id: &str, op: i64, existed: bool) -> (ModSeq, String, i64, bool) {
        (ModSeq(m), id.to_string(), op, existed)
    }

    #[test]
    fn collapses_create_update_delete() {
        let c = collapse(
            ModSeq(0),
            10,
            vec![
                row(1, "a", OP_PUT, false),
                row(2, "a", OP_PUT, true),
                row(3, "b", OP_PUT, false),
                row(4, "b", OP_DELETE, true),
                row(5, "c", OP_PUT, true),
                row(6, "d", OP_DELETE, true),
            ],
            ModSeq(9),
        );
        assert_eq!(c.created, vec!["a"]);
        assert_eq!(c.updated, vec!["c"]);
        assert_eq!(c.destroyed, vec!["d"]);
        assert_eq!(c.new_state, ModSeq(9));
        assert!(!c.has_more);
    }

    #[test]
    fn stops_at_whole_modseqs() {
        let c = collapse(
            ModSeq(0),
            2,
            vec![
                row(1, "a", OP_PUT, false),
                row(2, "b", OP_PUT, false),
                row(2, "c", OP_PUT, false),
                row(3, "d", OP_PUT, false),
            ],
            ModSeq(3),
        );
        assert_eq!(c.created, vec!["a"]);
        assert!(c.has_more);
        assert_eq!(c.new_state, ModSeq(1));
        // One modseq larger than max is still returned whole.
        let c = collapse(
            ModSeq(1),
            1,
            vec![row(2, "b", OP_PUT, false), row(2, "c", OP_PUT, false)],
            ModSeq(2),
        );
        assert_eq!(c.created, vec!["b", "c"]);
        assert!(!c.has_more);
    }

    #[test]
    fn expectations() {
        let w = ItemWrite::put("c", "i", Expect::Absent, "v".into());
        assert!(w.check(None).is_ok());
        assert!(matches!(
            w.check(Some(ModSeq(3))),
            Err(StoreError::Conflict(_))
        ));
        let w = ItemWrite::put("c", "i", Expect::Version(ModSeq(3)), "v".into());
        assert!(w.check(Some(ModSeq(3))).is_ok());
        assert!(w.check(Some(ModSeq(4))).is_err());
        assert!(w.check(None).is_err());
        assert!(validate_writes(&[w.clone(), w]).is_err());
        assert!(
            ItemWrite::put("", "i", Expect::Any, "v".into())
                .validate()
                .is_err()
        );
    }
}
