//! Backend-independent part of the change log: the on-disk codes of its rows and the
//! collapsing of rows into a [`ChangeSet`] (RFC 8620 §5.2). Every backend reads its rows
//! `(modseq, kind, object, op)` in modseq/insertion order and feeds them to a
//! [`ChangeCollapser`], so `/changes` behaves identically on every backend.

use crate::{
    AccountId, ChangeSet, EmailId, MailboxId, ModSeq, ObjectChanges, Result, StateChange,
    StoreError, ThreadId,
};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Kinds of objects in the change log (the stored code is the discriminant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Email = 0,
    Mailbox = 1,
    Thread = 2,
}

/// What happened to an object in the change log (the stored code is the discriminant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Created = 0,
    Updated = 1,
    Destroyed = 2,
    /// A mailbox whose counts (emails, unread, threads) changed and nothing else
    /// (RFC 8621 §2.2 `updatedProperties`); collapses like [`ChangeOp::Updated`].
    CountsUpdated = 3,
}

impl ChangeKind {
    pub fn from_code(value: i64) -> Result<ChangeKind> {
        match value {
            0 => Ok(ChangeKind::Email),
            1 => Ok(ChangeKind::Mailbox),
            2 => Ok(ChangeKind::Thread),
            other => Err(StoreError::Internal(format!(
                "unknown change kind {other} in the change log"
            ))),
        }
    }
}

impl ChangeOp {
    pub fn from_code(value: i64) -> Result<ChangeOp> {
        match value {
            0 => Ok(ChangeOp::Created),
            1 => Ok(ChangeOp::Updated),
            2 => Ok(ChangeOp::Destroyed),
            3 => Ok(ChangeOp::CountsUpdated),
            other => Err(StoreError::Internal(format!(
                "unknown change op {other} in the change log"
            ))),
        }
    }
}

/// What happened to one object over the window, collapsed.
struct Collapsed {
    created_in_window: bool,
    last: ChangeOp,
    /// Some change in the window was more than a count change.
    properties: bool,
}

/// Collapses change-log rows after `since` into a [`ChangeSet`], whole modseqs at a time,
/// at most `max` objects unless a single modseq alone has more (then that modseq is
/// returned whole, so callers always progress).
pub struct ChangeCollapser {
    max: usize,
    /// Collapsed objects in order of first appearance, and where each one sits.
    collapsed: Vec<((ChangeKind, i64), Collapsed)>,
    index: HashMap<(ChangeKind, i64), usize>,
    /// Rows of the modseq being read; applied once the whole modseq is known to fit.
    group: Vec<(ChangeKind, i64, ChangeOp)>,
    group_modseq: Option<u64>,
    complete_to: u64,
    has_more: bool,
}

impl ChangeCollapser {
    pub fn new(since: ModSeq, max: usize) -> Self {
        ChangeCollapser {
            max,
            collapsed: Vec::new(),
            index: HashMap::new(),
            group: Vec::new(),
            group_modseq: None,
            complete_to: since.0,
            has_more: false,
        }
    }

    /// Feeds the next row (stored codes). Returns `false` once no further rows are wanted.
    pub fn push(&mut self, modseq: u64, kind: i64, object: i64, op: i64) -> Result<bool> {
        let (kind, op) = (ChangeKind::from_code(kind)?, ChangeOp::from_code(op)?);
        if self.group_modseq.is_some_and(|g| g != modseq) && !self.apply_group() {
            return Ok(false);
        }
        self.group_modseq = Some(modseq);
        self.group.push((kind, object, op));
        Ok(true)
    }

    /// Applies the buffered modseq if it fits; otherwise marks `has_more` and returns false.
    fn apply_group(&mut self) -> bool {
        let Some(g) = self.group_modseq else {
            return true;
        };
        let new_objects: HashSet<(ChangeKind, i64)> = self
            .group
            .iter()
            .map(|&(kind, object, _)| (kind, object))
            .filter(|key| !self.index.contains_key(key))
            .collect();
        if !self.collapsed.is_empty() && self.collapsed.len() + new_objects.len() > self.max {
            self.has_more = true;
            return false;
        }
        for (kind, object, op) in self.group.drain(..) {
            match self.index.get(&(kind, object)) {
                Some(&i) => {
                    if let Some((_, c)) = self.collapsed.get_mut(i) {
                        c.last = op;
                        c.properties |= op != ChangeOp::CountsUpdated;
                    }
                }
                None => {
                    self.index.insert((kind, object), self.collapsed.len());
                    let c = Collapsed {
                        created_in_window: op == ChangeOp::Created,
                        last: op,
                        properties: op != ChangeOp::CountsUpdated,
                    };
                    self.collapsed.push(((kind, object), c));
                }
            }
        }
        self.complete_to = g;
        self.group_modseq = None;
        true
    }

    /// The result; `current` is the account's modseq (the new state when nothing is left).
    pub fn finish(mut self, current: ModSeq) -> ChangeSet {
        if !self.has_more {
            self.apply_group();
        }
        let mut set = ChangeSet {
            new_modseq: if self.has_more {
                ModSeq(self.complete_to)
            } else {
                current
            },
            has_more: self.has_more,
            ..ChangeSet::default()
        };
        for ((kind, object), c) in &self.collapsed {
            match kind {
                ChangeKind::Email => push_change(&mut set.emails, EmailId(*object), c),
                ChangeKind::Mailbox => {
                    if !c.created_in_window && c.last != ChangeOp::Destroyed && c.properties {
                        set.mailbox_properties_changed = true;
                    }
                    push_change(&mut set.mailboxes, MailboxId(*object), c);
                }
                ChangeKind::Thread => push_change(&mut set.threads, ThreadId(*object), c),
            }
        }
        set
    }
}

/// RFC 8620 §5.2: created-then-destroyed is omitted, created-then-updated is created.
fn push_change<T>(changes: &mut ObjectChanges<T>, id: T, c: &Collapsed) {
    match (c.created_in_window, c.last) {
        (true, ChangeOp::Destroyed) => {}
        (true, _) => changes.created.push(id),
        (false, ChangeOp::Destroyed) => changes.destroyed.push(id),
        (false, _) => changes.updated.push(id),
    }
}

/// Whether `/changes` can be answered from `since` (RFC 8620 §5.2): `max` must be positive,
/// and `since` lie within `[floor, current]` (older rows were trimmed, newer ones do not
/// exist yet); else `cannotCalculateChanges`.
pub fn check_changes_window(
    since: ModSeq,
    current: ModSeq,
    floor: ModSeq,
    max: usize,
) -> Result<()> {
    if max == 0 {
        return Err(StoreError::Invalid("max changes must be positive".into()));
    }
    if since < floor || since > current {
        return Err(StoreError::CannotCalculateChanges(since.0));
    }
    Ok(())
}

/// What a transaction changed, per account: its highest modseq, the mailboxes and the
/// collections it touched. Every backend's transaction keeps one and publishes it as
/// [`StateChange`]s after commit.
#[derive(Debug, Default, Clone)]
pub struct CommitNotes {
    accounts: HashMap<AccountId, Noted>,
}

/// What one account's part of a commit changed.
#[derive(Debug, Default, Clone)]
pub struct Noted {
    pub modseq: ModSeq,
    pub mailboxes: BTreeSet<MailboxId>,
    pub collections: BTreeSet<String>,
}

impl CommitNotes {
    /// The account reached `modseq` (the highest noted wins).
    pub fn note_modseq(&mut self, account: AccountId, modseq: ModSeq) {
        let entry = self.accounts.entry(account).or_default();
        entry.modseq = entry.modseq.max(modseq);
    }

    /// The mailbox's content or attributes changed.
    pub fn note_mailbox(&mut self, account: AccountId, mailbox: MailboxId) {
        self.accounts
            .entry(account)
            .or_default()
            .mailboxes
            .insert(mailbox);
    }

    /// An item of the collection was written.
    pub fn note_collection(&mut self, account: AccountId, collection: &str) {
        let entry = self.accounts.entry(account).or_default();
        if !entry.collections.contains(collection) {
            entry.collections.insert(collection.to_string());
        }
    }

    /// Adds what another transaction (committed together with this one) noted.
    pub fn merge(&mut self, other: CommitNotes) {
        for (account, noted) in other.accounts {
            let entry = self.accounts.entry(account).or_default();
            entry.modseq = entry.modseq.max(noted.modseq);
            entry.mailboxes.extend(noted.mailboxes);
            entry.collections.extend(noted.collections);
        }
    }

    /// Each changed account with what it noted.
    pub fn iter(&self) -> impl Iterator<Item = (AccountId, &Noted)> {
        self.accounts
            .iter()
            .map(|(account, noted)| (*account, noted))
    }

    /// The changes to publish, one per account.
    pub fn into_state_changes(self) -> impl Iterator<Item = StateChange> {
        self.accounts
            .into_iter()
            .map(|(account, noted)| StateChange {
                account,
                modseq: noted.modseq,
                mailboxes: noted.mailboxes.into_iter().collect(),
                collections: Some(noted.collections.into_iter().collect()),
            })
    }
}
