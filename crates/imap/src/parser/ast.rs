//! The command AST produced by the parser (RFC 9051 §6, plus the extensions we announce).

use crate::message::Section;

/// One complete client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub body: CommandBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    // ---- any state (RFC 9051 §6.1)
    Capability,
    Noop,
    Logout,
    /// RFC 2971
    Id(Vec<(String, Option<String>)>),
    // ---- not authenticated (RFC 9051 §6.2)
    StartTls,
    Login {
        user: String,
        password: String,
    },
    /// `initial` is the SASL-IR initial response (RFC 4959) still base64-encoded;
    /// `Some("")` stands for `=` (an empty response).
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    // ---- authenticated (RFC 9051 §6.3)
    Enable(Vec<String>),
    Select {
        mailbox: String,
        read_only: bool,
        params: SelectParams,
    },
    Create {
        mailbox: String,
        /// RFC 6154 §3 `USE (...)`: the special-use attributes asked for, as written.
        special_use: Vec<String>,
    },
    Delete {
        mailbox: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Subscribe {
        mailbox: String,
    },
    Unsubscribe {
        mailbox: String,
    },
    List(ListCommand),
    Lsub {
        reference: String,
        pattern: String,
    },
    Namespace,
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: String,
        flags: Vec<String>,
        /// INTERNALDATE as unix seconds.
        date: Option<i64>,
        message: Vec<u8>,
        /// RFC 4469 CATENATE parts of the first message.
        catenate: Vec<CatPart>,
        /// The messages after the first (RFC 3502 MULTIAPPEND).
        more: Vec<AppendMessage>,
    },
    Idle,
    // ---- selected (RFC 9051 §6.4)
    Check,
    Close,
    Unselect,
    /// `uids` is `Some` for UID EXPUNGE (RFC 4315 §2.1).
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search(SearchCommand),
    Fetch(FetchCommand),
    Store(StoreCommand),
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: String,
    },
    /// RFC 6851
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: String,
    },
    Sort(SortCommand),
    Thread(ThreadCommand),
    /// RFC 5267 §4.3.5: the tags of the searches whose updates end.
    CancelUpdate(Vec<String>),
    /// RFC 8508 REPLACE / UID REPLACE: `target` is a sequence number or a UID.
    Replace {
        uid: bool,
        target: SeqBound,
        mailbox: String,
        message: AppendMessage,
    },
    /// RFC 9208 §4.1.1: `GETQUOTA quota-root`.
    GetQuota {
        root: String,
    },
    /// RFC 9208 §4.1.2: `GETQUOTAROOT mailbox`.
    GetQuotaRoot {
        mailbox: String,
    },
    /// RFC 9208 §4.1.3: `SETQUOTA quota-root (resource limit ...)` (refused: not
    /// advertised as QUOTASET; limits are set by the administrator).
    SetQuota {
        root: String,
    },
    /// RFC 5464 §4.2: `mailbox` empty for the server's entries.
    GetMetadata {
        mailbox: String,
        entries: Vec<String>,
        max_size: Option<u64>,
        depth: MetadataDepth,
    },
    /// RFC 4467 §6.1: `(url, mechanism)` pairs.
    GenUrlAuth(Vec<(String, String)>),
    /// RFC 4467 §6.2: no mailbox resets every key of the user.
    ResetKey {
        mailbox: Option<String>,
        mechanisms: Vec<String>,
    },
    /// RFC 4467 §6.3
    UrlFetch(Vec<String>),
    /// RFC 5465 §3: `NOTIFY NONE` (`None`) or `NOTIFY SET …`.
    Notify(Option<NotifySet>),
    /// RFC 5464 §4.3: a `None` value removes the entry.
    SetMetadata {
        mailbox: String,
        entries: Vec<(String, Option<Vec<u8>>)>,
    },
}

/// RFC 5465 §3.1 `NOTIFY SET [STATUS] event-groups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySet {
    /// `STATUS`: send the current STATUS of the mailboxes with message events at once.
    pub status: bool,
    pub groups: Vec<NotifyGroup>,
}

/// One `"(" filter-mailboxes SP events ")"`; no events is `NONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    pub events: Vec<NotifyEvent>,
}

/// RFC 5465 §6 mailbox filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyFilter {
    Selected,
    SelectedDelayed,
    Inboxes,
    Personal,
    Subscribed,
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

/// RFC 5465 §5 events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// With the FETCH items to send for each new message (SELECTED filters only).
    MessageNew(Vec<FetchAttr>),
    MessageExpunge,
    FlagChange,
    AnnotationChange,
    MailboxName,
    SubscriptionChange,
    MailboxMetadataChange,
    ServerMetadataChange,
    /// An event name this server does not know (`NO [BADEVENT]`).
    Other(String),
}

/// RFC 5464 §4.2.2 `DEPTH`: the entry only, its children too, or everything below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataDepth {
    #[default]
    Zero,
    One,
    Infinity,
}

impl CommandBody {
    /// The command's name as the client would write it (for logs and texts).
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Capability => "CAPABILITY",
            CommandBody::Noop => "NOOP",
            CommandBody::Logout => "LOGOUT",
            CommandBody::Id(_) => "ID",
            CommandBody::StartTls => "STARTTLS",
            CommandBody::Login { .. } => "LOGIN",
            CommandBody::Authenticate { .. } => "AUTHENTICATE",
            CommandBody::Enable(_) => "ENABLE",
            CommandBody::Select {
                read_only: false, ..
            } => "SELECT",
            CommandBody::Select {
                read_only: true, ..
            } => "EXAMINE",
            CommandBody::Create { .. } => "CREATE",
            CommandBody::Delete { .. } => "DELETE",
            CommandBody::Rename { .. } => "RENAME",
            CommandBody::Subscribe { .. } => "SUBSCRIBE",
            CommandBody::Unsubscribe { .. } => "UNSUBSCRIBE",
            CommandBody::List(_) => "LIST",
            CommandBody::Lsub { .. } => "LSUB",
            CommandBody::Namespace => "NAMESPACE",
            CommandBody::Status { .. } => "STATUS",
            CommandBody::Append { .. } => "APPEND",
            CommandBody::Idle => "IDLE",
            CommandBody::Check => "CHECK",
            CommandBody::Close => "CLOSE",
            CommandBody::Unselect => "UNSELECT",
            CommandBody::Expunge { .. } => "EXPUNGE",
            CommandBody::Search(_) => "SEARCH",
            CommandBody::Fetch(_) => "FETCH",
            CommandBody::Store(_) => "STORE",
            CommandBody::Copy { .. } => "COPY",
            CommandBody::Move { .. } => "MOVE",
            CommandBody::Sort(_) => "SORT",
            CommandBody::Thread(_) => "THREAD",
            CommandBody::CancelUpdate(_) => "CANCELUPDATE",
            CommandBody::Replace { uid: false, .. } => "REPLACE",
            CommandBody::Replace { uid: true, .. } => "UID REPLACE",
            CommandBody::GetQuota { .. } => "GETQUOTA",
            CommandBody::GetQuotaRoot { .. } => "GETQUOTAROOT",
            CommandBody::SetQuota { .. } => "SETQUOTA",
            CommandBody::GetMetadata { .. } => "GETMETADATA",
            CommandBody::SetMetadata { .. } => "SETMETADATA",
            CommandBody::GenUrlAuth(_) => "GENURLAUTH",
            CommandBody::ResetKey { .. } => "RESETKEY",
            CommandBody::UrlFetch(_) => "URLFETCH",
            CommandBody::Notify(_) => "NOTIFY",
        }
    }
}

/// One message of a MULTIAPPEND (RFC 3502 §6.3.11 `append-message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<String>,
    /// INTERNALDATE as unix seconds.
    pub date: Option<i64>,
    pub message: Vec<u8>,
    /// RFC 4469 CATENATE: the parts the message is made of (then `message` is empty).
    pub catenate: Vec<CatPart>,
}

/// RFC 4469 §5 `cat-part = text-literal / url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatPart {
    /// `"TEXT" SP literal`
    Text(Vec<u8>),
    /// `"URL" SP astring`: an IMAP URL (RFC 5092) of a message or part of one.
    Url(String),
}

/// One end of a sequence range: a number or `*` (the largest in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqBound {
    Value(u32),
    Star,
}

/// `sequence-set` (RFC 9051 §9), or `$` — the saved search result (RFC 5182).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    Ranges(Vec<(SeqBound, SeqBound)>),
    Saved,
}

impl SequenceSet {
    /// Does the set contain `n`, with `*` standing for `largest`?
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        match self {
            SequenceSet::Saved => false,
            SequenceSet::Ranges(ranges) => ranges.iter().any(|&(a, b)| {
                let a = bound_value(a, largest);
                let b = bound_value(b, largest);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                n >= lo && n <= hi
            }),
        }
    }
}

fn bound_value(b: SeqBound, largest: u32) -> u32 {
    match b {
        SeqBound::Value(v) => v,
        SeqBound::Star => largest,
    }
}

/// SELECT/EXAMINE parameters (RFC 7162 §3.1.8, §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<QresyncParams>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
    /// Optional `(known-sequence-set known-uid-set)`.
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// LIST with RFC 5258 selection and return options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListCommand {
    pub reference: String,
    pub patterns: Vec<String>,
    pub select_subscribed: bool,
    pub select_special_use: bool,
    pub select_recursive_match: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    /// RFC 5819 LIST-STATUS
    pub return_status: Option<Vec<StatusItem>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    /// RFC 9208 §4.2: octets of the messages with `\Deleted`.
    DeletedStorage,
    Size,
    HighestModSeq,
    Recent,
    /// RFC 8474 §4.3
    MailboxId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchCommand {
    pub uid: bool,
    pub set: SequenceSet,
    pub attrs: Vec<FetchAttr>,
    /// RFC 7162 §3.1.4 CHANGEDSINCE
    pub changed_since: Option<u64>,
    /// RFC 7162 §3.2.6 VANISHED (UID FETCH only)
    pub vanished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Envelope,
    Flags,
    InternalDate,
    Rfc822Size,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// `BODY` without a section: the non-extensible BODYSTRUCTURE.
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    BodySection {
        section: Section,
        partial: Option<(u32, u32)>,
        peek: bool,
    },
    /// RFC 3516 / RFC 9051 `BINARY[part]<partial>`
    Binary {
        part: Vec<u32>,
        partial: Option<(u32, u32)>,
        peek: bool,
    },
    BinarySize {
        part: Vec<u32>,
    },
    /// RFC 8474 §5.1
    EmailId,
    /// RFC 8474 §5.2
    ThreadId,
    /// RFC 8970 §3: `PREVIEW` or `PREVIEW (LAZY)`.
    Preview {
        lazy: bool,
    },
    /// RFC 8514 §4.3: when the message was saved into this mailbox.
    SaveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Replace,
    Add,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCommand {
    pub uid: bool,
    pub set: SequenceSet,
    pub op: StoreOp,
    pub silent: bool,
    pub flags: Vec<String>,
    /// RFC 7162 §3.1.3 UNCHANGEDSINCE
    pub unchanged_since: Option<u64>,
}

/// A calendar date (SEARCH dates have no time and no zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// Unix seconds of 00:00:00 UTC on this date.
    pub fn to_unix(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
    }
}

/// Days since 1970-01-01 ([`bulwark_core::civil`]).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    bulwark_core::civil::days_from_civil(i64::from(y), i64::from(m), i64::from(d))
}

/// SEARCH keys (RFC 9051 §6.4.4, RFC 7162 §3.1.5 MODSEQ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Bcc(String),
    Before(Date),
    Body(String),
    Cc(String),
    Deleted,
    Draft,
    Flagged,
    From(String),
    Header(String, String),
    Keyword(String),
    Larger(u64),
    New,
    Not(Box<SearchKey>),
    Old,
    On(Date),
    Or(Box<SearchKey>, Box<SearchKey>),
    Recent,
    Seen,
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    /// RFC 8514 §4.2: the save date (disregarding time and timezone) is before/on/since.
    SavedBefore(Date),
    SavedOn(Date),
    SavedSince(Date),
    /// RFC 8514 §4.2: every message, when the mailbox keeps save dates (all do here).
    SaveDateSupported,
    Since(Date),
    Smaller(u64),
    Subject(String),
    Text(String),
    To(String),
    Uid(SequenceSet),
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unkeyword(String),
    Unseen,
    SequenceSet(SequenceSet),
    /// A parenthesised list, or the implicit AND of top-level keys.
    And(Vec<SearchKey>),
    ModSeq(u64),
    /// RFC 8474 §6: the message whose EMAILID is this.
    EmailId(String),
    /// RFC 8474 §6: the messages whose THREADID is this.
    ThreadId(String),
}

/// ESEARCH return options (RFC 4731, RFC 5182 SAVE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
    /// RFC 5267 §4.3: keep the result up to date with `ADDTO` / `REMOVEFROM`.
    Update,
    /// RFC 5267 §4.2: a hint that the result will be paged; no response of its own.
    Context,
    /// RFC 9394 §3 `PARTIAL lo:hi` (positions 1-based, `lo <= hi`); `from_end` for
    /// `-lo:-hi`, counted from the last result.
    Partial {
        from_end: bool,
        lo: u32,
        hi: u32,
    },
}

impl SearchReturn {
    pub fn is_partial(&self) -> bool {
        matches!(self, SearchReturn::Partial { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCommand {
    pub uid: bool,
    /// `None`: plain SEARCH (untagged `SEARCH` response); `Some(vec![])`: `RETURN ()`.
    pub ret: Option<Vec<SearchReturn>>,
    pub charset: Option<String>,
    pub key: SearchKey,
}

/// RFC 5256 sort criteria.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    /// RFC 5957 SORT=DISPLAY: the first From address's display name, else its address.
    DisplayFrom,
    /// RFC 5957: the same for the first To address.
    DisplayTo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortCommand {
    pub uid: bool,
    /// RFC 5267 §3 ESORT `RETURN (...)`; `None`: plain SORT (untagged `SORT` response).
    pub ret: Option<Vec<SearchReturn>>,
    /// `(reverse, key)` pairs in order.
    pub criteria: Vec<(bool, SortKey)>,
    pub charset: String,
    pub key: SearchKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCommand {
    pub uid: bool,
    /// Only `REFERENCES` and `ORDEREDSUBJECT` are known.
    pub algorithm: String,
    pub charset: String,
    pub key: SearchKey,
}
