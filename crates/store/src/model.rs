//! The data model shared by every backend and every protocol.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident($inner:ty)) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        pub struct $name(pub $inner);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// An account (one user with one or more addresses).
    AccountId(i64)
);
id_type!(MailboxId(i64));
id_type!(
    /// An email object (JMAP Email); may be in several mailboxes.
    EmailId(i64)
);
id_type!(ThreadId(i64));
id_type!(
    /// An IMAP UID within one mailbox; never reused for a given UIDVALIDITY.
    Uid(u32)
);
id_type!(
    /// A per-account change counter (IMAP MODSEQ, JMAP state).
    ModSeq(u64)
);
id_type!(QueueId(i64));

/// SHA-256 of blob content, lowercase hex. Blobs are content-addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobHash(pub String);

impl BlobHash {
    pub fn of(data: &[u8]) -> BlobHash {
        use sha2::Digest;
        BlobHash(hex::encode(sha2::Sha256::digest(data)))
    }
}
impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// Primary address, lowercase.
    pub address: String,
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: i64,
    /// Bytes of the account's mail when it was read: the sum of its emails' sizes, each
    /// copy counted (as IMAP QUOTA `STORAGE`, RFC 9208 §5.1, and JMAP Quota octets count).
    /// The database keeps it on every insert and delete of an email (a trigger), so every
    /// path that stores or removes mail counts; quotas read it.
    pub used_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub address: String,
    pub display_name: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: i64,
    pub account: AccountId,
    pub name: String,
    /// argon2id PHC string.
    pub hash: String,
    pub created_at: i64,
}

/// Special-use roles (RFC 6154 / RFC 8621 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    Inbox,
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Inbox,
        Role::Sent,
        Role::Drafts,
        Role::Trash,
        Role::Junk,
        Role::Archive,
    ];
    /// JMAP role name (RFC 8621 / IANA registry).
    pub fn as_jmap(self) -> &'static str {
        match self {
            Role::Inbox => "inbox",
            Role::Sent => "sent",
            Role::Drafts => "drafts",
            Role::Trash => "trash",
            Role::Junk => "junk",
            Role::Archive => "archive",
        }
    }
    pub fn from_jmap(s: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_jmap().eq_ignore_ascii_case(s))
    }
    /// IMAP special-use attribute (RFC 6154); INBOX has none.
    pub fn imap_attribute(self) -> Option<&'static str> {
        match self {
            Role::Inbox => None,
            Role::Sent => Some("\\Sent"),
            Role::Drafts => Some("\\Drafts"),
            Role::Trash => Some("\\Trash"),
            Role::Junk => Some("\\Junk"),
            Role::Archive => Some("\\Archive"),
        }
    }
    /// Name of the mailbox created for this role with every new account.
    pub fn default_name(self) -> &'static str {
        match self {
            Role::Inbox => "INBOX",
            Role::Sent => "Sent",
            Role::Drafts => "Drafts",
            Role::Trash => "Trash",
            Role::Junk => "Junk",
            Role::Archive => "Archive",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account: AccountId,
    /// Full path, `/`-separated; the inbox is always `INBOX`.
    pub name: String,
    pub role: Option<Role>,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub subscribed: bool,
    /// Highest modseq of any change to this mailbox or its messages (incl. expunges).
    pub highest_modseq: ModSeq,
    /// The user's position for it in folder lists (JMAP `sortOrder`, RFC 8621 §2); `None`:
    /// the default of its role.
    pub sort_order: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailboxStatus {
    pub messages: u32,
    pub unseen: u32,
    /// Messages with `$recent`-style semantics are not kept (IMAP4rev2 dropped \Recent); 0.
    pub recent: u32,
    pub uid_next: Uid,
    pub uid_validity: u32,
    pub highest_modseq: ModSeq,
    /// Sum of message sizes (RFC 8438 STATUS=SIZE).
    pub size: u64,
    /// Distinct threads (JMAP totalThreads) and threads with an unseen email.
    pub threads: u32,
    pub unseen_threads: u32,
}

/// Header facts extracted once at delivery, for threading, sorting and JMAP queries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSummary {
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub cc: String,
    /// Date header as unix seconds, if it parsed.
    pub sent_at: Option<i64>,
    pub has_attachment: bool,
    /// First ~256 chars of the text body, whitespace collapsed.
    pub preview: String,
    /// The IMAP ENVELOPE (RFC 9051 §7.5.2) exactly as FETCH sends it, rendered once at
    /// delivery. Not part of the JSON summary: backends keep it in its own column, written
    /// by `email_append`/`deliver` (copied by `email_copy`) and read back only by
    /// [`crate::Store::message_envelopes`]; `email_get`, `email_list` and
    /// `message_summaries` leave it `None`.
    #[serde(skip)]
    pub imap_envelope: Option<Vec<u8>>,
}

/// The header fields IMAP SEARCH FROM/TO/CC/SUBJECT matches (RFC 9051 §6.4.4), decoded as
/// in [`EmailSummary`]; read without the rest of the summary
/// ([`crate::Store::message_search_headers`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchHeaders {
    pub subject: String,
    pub from: String,
    pub to: String,
    pub cc: String,
}

impl From<EmailSummary> for SearchHeaders {
    fn from(s: EmailSummary) -> SearchHeaders {
        SearchHeaders {
            subject: s.subject,
            from: s.from,
            to: s.to,
            cc: s.cc,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEmail {
    /// Mailboxes to place it in (at least one).
    pub mailboxes: Vec<MailboxId>,
    pub raw: std::sync::Arc<Vec<u8>>,
    pub keywords: Vec<String>,
    /// Unix seconds (IMAP INTERNALDATE, JMAP receivedAt).
    pub received_at: i64,
    pub summary: EmailSummary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub account: AccountId,
    pub email: EmailId,
    pub thread: ThreadId,
    pub blob: BlobHash,
    pub uids: Vec<(MailboxId, Uid)>,
    pub modseq: ModSeq,
}

/// One message in one mailbox, as IMAP sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: Uid,
    pub email: EmailId,
    pub thread: ThreadId,
    /// The greater of the email's last keyword change and when it entered this mailbox.
    pub modseq: ModSeq,
    pub keywords: Vec<String>,
    pub size: u32,
    pub received_at: i64,
    pub blob: BlobHash,
}

/// What changed in one mailbox after a modseq (IMAP incremental resync, RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailboxDelta {
    /// The mailbox's HIGHESTMODSEQ, read before the lists below (so a later delta from it
    /// misses nothing; it may repeat a change).
    pub highest_modseq: ModSeq,
    /// Messages whose modseq is greater than the one asked for (new or keywords changed),
    /// ordered by UID.
    pub changed: Vec<MessageMeta>,
    /// UIDs expunged after the modseq asked for, ascending.
    pub expunged: Vec<Uid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub id: EmailId,
    pub account: AccountId,
    pub thread: ThreadId,
    pub blob: BlobHash,
    pub size: u32,
    pub received_at: i64,
    pub keywords: Vec<String>,
    pub mailboxes: Vec<(MailboxId, Uid)>,
    pub modseq: ModSeq,
    pub summary: EmailSummary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeywordOp {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone)]
pub struct KeywordUpdate {
    pub email: EmailId,
    pub op: KeywordOp,
    pub keywords: Vec<String>,
    /// CONDSTORE UNCHANGEDSINCE (RFC 7162 §3.1.3).
    pub unchanged_since: Option<ModSeq>,
}

#[derive(Debug, Clone, Default)]
pub struct KeywordResult {
    /// Emails whose keywords now differ, with their new modseq and keywords.
    pub updated: Vec<(EmailId, ModSeq, Vec<String>)>,
    /// Emails not changed because of `unchanged_since`.
    pub conflicts: Vec<EmailId>,
    pub modseq: ModSeq,
}

#[derive(Debug, Clone)]
pub struct MembershipUpdate {
    pub email: EmailId,
    pub add: Vec<MailboxId>,
    pub remove: Vec<MailboxId>,
}

/// What changed in an account after a given modseq (JMAP `/changes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub new_modseq: ModSeq,
    pub has_more: bool,
    pub emails: ObjectChanges<EmailId>,
    pub mailboxes: ObjectChanges<MailboxId>,
    pub threads: ObjectChanges<ThreadId>,
    /// Some mailbox in `mailboxes.updated` changed more than its counts (name, role,
    /// subscription, sort order): JMAP Mailbox/changes `updatedProperties` is then null,
    /// else only the counts changed (RFC 8621 §2.2).
    pub mailbox_properties_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectChanges<T> {
    pub created: Vec<T>,
    pub updated: Vec<T>,
    pub destroyed: Vec<T>,
}
impl<T> Default for ObjectChanges<T> {
    fn default() -> Self {
        ObjectChanges {
            created: vec![],
            updated: vec![],
            destroyed: vec![],
        }
    }
}

/// Published after each commit that changed an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub account: AccountId,
    pub modseq: ModSeq,
    /// Mailboxes whose content or attributes changed.
    pub mailboxes: Vec<MailboxId>,
    /// Collections ([`crate::collections`]) written by the commit, each now at state
    /// `modseq`; `None` when not known (a node catching up after it lost its change feed):
    /// then any collection may have changed and readers ask for the states.
    pub collections: Option<Vec<String>>,
    /// Which mail data types the commit changed (JMAP per-type states); `None` when not
    /// known (a node catching up): then readers compare [`MailStates`].
    pub mail: Option<MailChanged>,
    /// Committed by this node (not heard from another node's change feed): work that
    /// must happen once per change, such as a JMAP push to a subscription URL, is done
    /// where this is true.
    pub local: bool,
}

/// Which mail data types a commit changed: its change-log entries of each kind, and whether
/// new mail was delivered (RFC 8621 §1.5 `EmailDelivery`: delivery, not the user's own
/// append, import, move or flag change).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailChanged {
    pub email: bool,
    pub mailbox: bool,
    pub thread: bool,
    pub delivery: bool,
}

/// The state of each mail data type (RFC 8620 §1.2 per-type states, RFC 8621 §2–§4): the
/// modseq of the type's newest change-log entry, never below the log's trimmed floor. An
/// Email change that leaves the mailbox counts alone moves the Email state only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailStates {
    pub email: ModSeq,
    pub mailbox: ModSeq,
    pub thread: ModSeq,
}

impl MailStates {
    /// The state of one kind.
    pub fn of(&self, kind: crate::changelog::ChangeKind) -> ModSeq {
        use crate::changelog::ChangeKind;
        match kind {
            ChangeKind::Email => self.email,
            ChangeKind::Mailbox => self.mailbox,
            ChangeKind::Thread => self.thread,
        }
    }

    /// Raises one kind's state to `modseq` (states never go back).
    pub fn raise(&mut self, kind: crate::changelog::ChangeKind, modseq: ModSeq) {
        use crate::changelog::ChangeKind;
        let slot = match kind {
            ChangeKind::Email => &mut self.email,
            ChangeKind::Mailbox => &mut self.mailbox,
            ChangeKind::Thread => &mut self.thread,
        };
        *slot = (*slot).max(modseq);
    }

    /// Every state raised to at least `floor` (rows at or below it were trimmed, so a state
    /// older than the floor could not be answered by `/changes`).
    pub fn at_least(self, floor: ModSeq) -> MailStates {
        MailStates {
            email: self.email.max(floor),
            mailbox: self.mailbox.max(floor),
            thread: self.thread.max(floor),
        }
    }
}

// ---- outbound queue ---------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptStatus {
    Pending,
    Delivered,
    /// Permanently failed (5xx or lifetime expired); a DSN was or will be sent.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRcpt {
    pub address: String,
    pub status: RcptStatus,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewQueued {
    /// Envelope sender; empty for bounces (null reverse-path).
    pub sender: String,
    pub recipients: Vec<String>,
    pub raw: std::sync::Arc<Vec<u8>>,
    /// Unix seconds after which undelivered recipients bounce.
    pub expires_at: i64,
}

/// Everything one accepted message becomes, committed by [`crate::Store::accept`] in one
/// transaction — all or nothing: the local copies, the queue entry for remote recipients and
/// the records written with them (e.g. the EmailSubmission). So a client that retries after
/// an error never finds half of its message already delivered.
#[derive(Debug, Clone, Default)]
pub struct Acceptance {
    pub local: Vec<(AccountId, NewEmail)>,
    pub queue: Option<NewQueued>,
    /// Collection writes (compare-and-set as in [`crate::Store::collection_write`]); an
    /// `Expect::Absent` record keyed by the message makes a retried acceptance a
    /// [`crate::StoreError::Conflict`] instead of a second copy.
    pub items: Vec<(AccountId, crate::ItemWrite)>,
}

/// What [`crate::Store::accept`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    pub appended: Vec<Appended>,
    pub queued: Option<QueueId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: QueueId,
    pub sender: String,
    pub recipients: Vec<QueueRcpt>,
    pub blob: BlobHash,
    pub size: u32,
    pub created_at: i64,
    pub next_attempt: i64,
    pub attempts: u32,
    pub expires_at: i64,
    /// Whether the DSN for failed recipients has been sent (so it is sent once).
    pub dsn_sent: bool,
    pub lease_owner: Option<String>,
    pub lease_until: i64,
}

// ---- keyword mapping ------------------------------------------------------------------

/// IMAP flag → stored keyword (`\Seen` → `$seen`, custom keywords lowercased).
pub fn imap_flag_to_keyword(flag: &str) -> String {
    match flag.to_ascii_lowercase().as_str() {
        "\\seen" => "$seen".into(),
        "\\flagged" => "$flagged".into(),
        "\\answered" => "$answered".into(),
        "\\draft" => "$draft".into(),
        "\\deleted" => "$deleted".into(),
        other => other.to_string(),
    }
}

/// Stored keyword → IMAP flag (`$seen` → `\Seen`).
pub fn keyword_to_imap_flag(keyword: &str) -> String {
    match keyword {
        "$seen" => "\\Seen".into(),
        "$flagged" => "\\Flagged".into(),
        "$answered" => "\\Answered".into(),
        "$draft" => "\\Draft".into(),
        "$deleted" => "\\Deleted".into(),
        other => other.to_string(),
    }
}

/// Current time as unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
