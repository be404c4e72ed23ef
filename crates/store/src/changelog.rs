//! Backend-independent part of the change log: the on-disk codes of its rows and the
//! collapsing of rows into a [`ChangeSet`] (RFC 8620 §5.2). Every backend reads its rows
//! `(modseq, kind, object, op)` in modseq/insertion order and feeds them to a
//! [`ChangeCollapser`], so `/changes` behaves identically on every backend.

use crate::{
    AccountId, ChangeSet, EmailId, MailChanged, MailStates, MailboxId, ModSeq, ObjectChanges,
    Result, StateChange, StoreError, ThreadId,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

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
    /// Only rows of this kind (a per-type `/changes`), when set.
    only: Option<ChangeKind>,
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
            only: None,
        }
    }

    /// Like [`ChangeCollapser::new`], reading only rows of `kind` (JMAP's per-type states:
    /// `Mailbox/changes` neither counts nor returns Email rows).
    pub fn of_kind(since: ModSeq, max: usize, kind: ChangeKind) -> Self {
        ChangeCollapser {
            only: Some(kind),
            ..ChangeCollapser::new(since, max)
        }
    }

    /// Feeds the next row (stored codes). Returns `false` once no further rows are wanted.
    pub fn push(&mut self, modseq: u64, kind: i64, object: i64, op: i64) -> Result<bool> {
        let (kind, op) = (ChangeKind::from_code(kind)?, ChangeOp::from_code(op)?);
        if self.only.is_some_and(|only| only != kind) {
            return Ok(true);
        }
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

    /// The result; `current` is the account's modseq, or the kind's state for a collapser
    /// of one kind (the new state when nothing is left).
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
    /// The mail kinds logged, and whether mail was delivered.
    pub mail: MailChanged,
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

    /// A change-log row of `kind` was written.
    pub fn note_kind(&mut self, account: AccountId, kind: ChangeKind) {
        let mail = &mut self.accounts.entry(account).or_default().mail;
        match kind {
            ChangeKind::Email => mail.email = true,
            ChangeKind::Mailbox => mail.mailbox = true,
            ChangeKind::Thread => mail.thread = true,
        }
    }

    /// New mail was delivered to the account (RFC 8621 §1.5 `EmailDelivery`).
    pub fn note_delivery(&mut self, account: AccountId) {
        self.accounts.entry(account).or_default().mail.delivery = true;
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
            entry.mail.email |= noted.mail.email;
            entry.mail.mailbox |= noted.mail.mailbox;
            entry.mail.thread |= noted.mail.thread;
            entry.mail.delivery |= noted.mail.delivery;
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
                mail: Some(noted.mail),
                local: true,
            })
    }
}

/// Every mail kind, in stored-code order.
pub const MAIL_KINDS: [ChangeKind; 3] =
    [ChangeKind::Email, ChangeKind::Mailbox, ChangeKind::Thread];

/// Accounts whose [`MailStates`] a store keeps in memory; past this the cache starts over.
const MAIL_STATE_CACHE_ACCOUNTS: usize = 50_000;

/// The [`MailStates`] a backend last computed per account, with the account modseq they
/// were computed at. The next read then only looks at change-log rows after that modseq
/// (one indexed range), not the whole log. Nothing is trusted that the log does not say:
/// a state is always recomputed from rows up to the account's current modseq.
#[derive(Debug, Default)]
pub struct MailStateCache {
    accounts: Mutex<HashMap<AccountId, (ModSeq, MailStates)>>,
}

/// How a backend brings an account's cached states up to `current`.
pub enum MailStateRead {
    /// Cached at `current`: nothing to read.
    Fresh(MailStates),
    /// Cached at `.0`: read the newest row of each kind in `(.0, current]`, raise `.1`.
    After(ModSeq, MailStates),
    /// Not cached: read the newest row of each kind up to `current`.
    Cold,
}

impl MailStateCache {
    /// What the backend must read to know the states at `current`.
    pub fn plan(&self, account: AccountId, current: ModSeq) -> MailStateRead {
        let cached = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&account)
            .copied();
        match cached {
            Some((at, states)) if at == current => MailStateRead::Fresh(states),
            Some((at, states)) if at < current => MailStateRead::After(at, states),
            _ => MailStateRead::Cold,
        }
    }

    /// Keeps the states computed at `current`.
    pub fn keep(&self, account: AccountId, current: ModSeq, states: MailStates) {
        let mut map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAIL_STATE_CACHE_ACCOUNTS && !map.contains_key(&account) {
            map.clear();
        }
        let entry = map.entry(account).or_insert((current, states));
        if entry.0 <= current {
            *entry = (current, states);
        }
    }
}
