//! The per-connection IMAP state machine (RFC 9051 §3). It takes parsed commands and
//! writes response bytes into a buffer; it calls the async store but never touches a
//! socket, a timer or TLS — the shell (`server.rs`) does that.
//!
//! Error kinds (mox style): a syntax or state error is `BAD`, a refused operation is `NO`
//! with a response code, a store failure is `NO [UNAVAILABLE]`/`[SERVERBUG]` with words.

mod auth;
mod catenate;
mod fetch;
mod keywords;
#[cfg(test)]
mod letter_tests;
mod list;
mod mailboxes;
mod metadata;
mod notify;
mod quota;
#[cfg(test)]
mod quota_tests;
mod recent;
#[cfg(test)]
mod savedate_tests;
mod search;
mod select;
mod sort;
mod store;
mod subscriptions;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod tests_support;
mod thread;
mod urlauth;
mod view;

use crate::config::ImapConfig;
use crate::limits::MAX_BAD_COMMANDS;
use crate::parser::{
    AppendMessage, Command, CommandBody, ErrorKind, ParseError, SeqBound, SequenceSet,
};
use bulwark_auth::Authenticator;
use bulwark_store::{Account, MailboxId, ModSeq, StateChange, Store, StoreError, Uid};
pub(crate) use keywords::KeywordCase;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
pub(crate) use view::{Keywords, View, ViewMsg, ViewSummary};

/// A long response (FETCH over many messages) is handed to the connection in pieces of
/// at least this many bytes while the command runs (see [`Session::set_spill`]).
pub const SPILL_THRESHOLD: usize = 256 * 1024;
/// Room kept in a fresh output buffer beyond [`SPILL_THRESHOLD`]: the buffer is spilled
/// after the message that crosses the threshold, so small messages never make it grow.
const SPILL_SLACK: usize = 16 * 1024;

/// What the shell must do after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Continue,
    /// Write the output, then run the TLS handshake and call [`Session::tls_started`].
    StartTls,
    /// Write the output and close.
    Logout,
    /// `+ idling` was written: wait for `DONE` (call [`Session::idle_done`]) or store
    /// changes (call [`Session::idle_update`]).
    Idle,
    /// A SASL continuation was written: read one raw line and call
    /// [`Session::authenticate_continue`].
    AuthContinue,
}

/// The tagged result of a command handler.
pub(crate) type CmdResult = Result<Done, CmdError>;

/// Successful completion: `OK [code] text`.
pub(crate) struct Done {
    pub code: Option<String>,
    pub text: String,
}

impl Done {
    pub fn new(text: impl Into<String>) -> CmdResult {
        Ok(Done {
            code: None,
            text: text.into(),
        })
    }
    pub fn with_code(code: impl Into<String>, text: impl Into<String>) -> CmdResult {
        Ok(Done {
            code: Some(code.into()),
            text: text.into(),
        })
    }
}

#[derive(Debug)]
pub(crate) enum CmdError {
    Bad(String),
    No {
        code: Option<&'static str>,
        text: String,
    },
    Store(StoreError),
    /// `NO [code] text` with a code made at run time (`BADURL url`, RFC 4469 §6).
    NoCode {
        code: String,
        text: String,
    },
    /// Send `* BYE text` and close.
    Bye(String),
}

impl CmdError {
    pub fn no(code: &'static str, text: impl Into<String>) -> Self {
        CmdError::No {
            code: Some(code),
            text: text.into(),
        }
    }
    pub fn no_plain(text: impl Into<String>) -> Self {
        CmdError::No {
            code: None,
            text: text.into(),
        }
    }
}

impl From<StoreError> for CmdError {
    fn from(e: StoreError) -> Self {
        CmdError::Store(e)
    }
}

/// Extensions the client turned on (RFC 5161 ENABLE; CONDSTORE also implicitly,
/// RFC 7162 §3.1).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Enabled {
    pub condstore: bool,
    pub qresync: bool,
    pub utf8: bool,
    pub rev2: bool,
    /// RFC 9586 UIDONLY: no message numbers in commands or responses.
    pub uidonly: bool,
}

/// Does the command use message sequence numbers (RFC 9586 §3: refused with UIDONLY)? The
/// non-UID forms of FETCH, STORE, SEARCH, COPY, MOVE, SORT, THREAD and REPLACE, and a
/// sequence set as a search key.
fn uses_message_numbers(body: &CommandBody) -> bool {
    fn in_key(k: &crate::parser::SearchKey) -> bool {
        use crate::parser::SearchKey;
        match k {
            SearchKey::SequenceSet(SequenceSet::Ranges(_)) => true,
            SearchKey::Not(k) => in_key(k),
            SearchKey::Or(a, b) => in_key(a) || in_key(b),
            SearchKey::And(keys) => keys.iter().any(in_key),
            _ => false,
        }
    }
    match body {
        CommandBody::Fetch(f) => !f.uid,
        CommandBody::Store(s) => !s.uid,
        CommandBody::Copy { uid, .. }
        | CommandBody::Move { uid, .. }
        | CommandBody::Replace { uid, .. } => !uid,
        CommandBody::Search(s) => !s.uid || in_key(&s.key),
        CommandBody::Sort(s) => !s.uid || in_key(&s.key),
        CommandBody::Thread(t) => !t.uid || in_key(&t.key),
        _ => false,
    }
}

/// The start of a FETCH response: `* n FETCH (`, or with UIDONLY `* uid UIDFETCH (`
/// (RFC 9586 §3.3), whose UID is the number and is not repeated inside.
pub(crate) fn fetch_head(uidonly: bool, index: usize, uid: Uid) -> String {
    if uidonly {
        format!("* {uid} UIDFETCH (")
    } else {
        format!("* {} FETCH (", index + 1)
    }
}

/// An authenticated user.
pub(crate) struct Authed {
    pub account: Account,
    pub changes: broadcast::Receiver<StateChange>,
}

/// The selected mailbox and this session's view of it (RFC 9051 §2.3.1.2: sequence
/// numbers are this session's, they change only when we tell the client).
pub(crate) struct Selected {
    pub id: MailboxId,
    pub name: String,
    pub read_only: bool,
    /// Ordered by UID; index + 1 is the sequence number.
    pub view: View,
    /// The mailbox's HIGHESTMODSEQ when the view was last brought up to date: the next
    /// resync reads only what changed after it.
    pub synced: ModSeq,
    /// UIDs another session expunged that we may not report yet (RFC 9051 §7.5.1: not
    /// during FETCH/STORE/SEARCH); they stay in the view until reported.
    pub pending_expunge: Vec<Uid>,
    /// Another session changed the mailbox: refresh at the next opportunity.
    pub dirty: bool,
    /// The newest change we were told about (`u64::MAX`: unknown, read the store).
    pub wanted: ModSeq,
    /// The mailbox's changes, shared with the other sessions that have it selected.
    pub feed: Arc<crate::feed::Feed>,
    /// RFC 5182 SEARCHRES saved result (UIDs).
    pub saved: Vec<Uid>,
    /// RFC 5267 §4 searches kept up to date (`RETURN (UPDATE)`), at most
    /// [`search::MAX_SEARCH_UPDATES`]. Boxed: rare, and every selected session holds one.
    #[allow(clippy::box_collection)]
    pub updates: Option<Box<Vec<search::SearchUpdate>>>,
    /// Custom keywords (stored form) this session announced in `FLAGS` (RFC 3501 §7.2.6).
    pub announced: std::collections::BTreeSet<String>,
    /// UID ranges (inclusive) recent in this session (RFC 3501 §2.3.2; see `recent.rs`).
    pub recent: Vec<(u32, u32)>,
}

impl Selected {
    /// Something changed the mailbox (at `modseq`, or unknown when `None`): resync at the
    /// next opportunity.
    pub fn mark_dirty(&mut self, modseq: Option<ModSeq>) {
        self.dirty = true;
        self.wanted = self.wanted.max(modseq.unwrap_or(ModSeq(u64::MAX)));
    }

    /// Indices into `view` addressed by `set` (sequence numbers or UIDs), ascending.
    /// Sequence numbers beyond the mailbox are a client error (RFC 9051 §9 `seq-number`).
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, CmdError> {
        if let SequenceSet::Saved = set {
            return Ok((0..self.view.len())
                .filter(|&i| self.saved.contains(&self.view[i].uid))
                .collect());
        }
        let SequenceSet::Ranges(ranges) = set else {
            return Ok(vec![]);
        };
        if uid {
            let largest = self.view.last().map_or(0, |m| m.uid.0);
            // RFC 9051 §6.4.8: "*" in a UID range means the largest UID in use; a range
            // like 5:* with 5 > largest still matches the last message.
            let mut hits: Vec<usize> = Vec::new();
            for &(a, b) in ranges {
                let a = bound(a, largest);
                let b = bound(b, largest);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                let start = self.view.partition_point(|m| m.uid.0 < lo);
                let end = self.view.partition_point(|m| m.uid.0 <= hi);
                hits.extend(start..end.max(start));
            }
            if ranges.len() > 1 {
                hits.sort_unstable();
                hits.dedup();
            }
            return Ok(hits);
        }
        let count = self.view.len() as u32;
        for &(a, b) in ranges {
            for v in [a, b] {
                if let SeqBound::Value(n) = v
                    && n > count
                {
                    return Err(CmdError::Bad(format!(
                        "Message sequence number {n} does not exist (the mailbox has {count} messages)"
                    )));
                }
            }
        }
        if count == 0 {
            return Ok(vec![]);
        }
        Ok((0..self.view.len())
            .filter(|&i| set.contains(i as u32 + 1, count))
            .collect())
    }
}

fn bound(b: SeqBound, largest: u32) -> u32 {
    match b {
        SeqBound::Value(v) => v,
        SeqBound::Star => largest,
    }
}

pub(crate) enum State {
    NotAuthenticated,
    Authenticated(Authed),
    Selected(Authed, Selected),
    Logout,
}

/// One IMAP connection's protocol state.
pub struct Session {
    pub(crate) cfg: Arc<ImapConfig>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) remote: IpAddr,
    pub(crate) tls_active: bool,
    pub(crate) tls_available: bool,
    pub(crate) state: State,
    pub(crate) enabled: Enabled,
    /// Mailbox changes shared by the sessions of one server (see [`crate::feed`]).
    pub(crate) feeds: Arc<crate::feed::Feeds>,
    bad_commands: u32,
    pub(crate) auth_failures: u32,
    /// Tag of a running IDLE or AUTHENTICATE.
    pub(crate) pending_tag: Option<String>,
    /// Where long responses go while they are built (see [`Session::set_spill`]).
    spill: Option<mpsc::Sender<Vec<u8>>>,
    /// How custom keywords are shown (the case IMAP clients first wrote them in).
    pub(crate) keyword_case: KeywordCase,
    /// RFC 5465 NOTIFY SET of this session (boxed: rare).
    pub(crate) notify: Option<Box<notify::NotifyState>>,
}

impl Session {
    pub fn new(
        cfg: Arc<ImapConfig>,
        store: Arc<dyn Store>,
        auth: Arc<Authenticator>,
        remote: IpAddr,
        tls_active: bool,
        tls_available: bool,
    ) -> Self {
        Session {
            cfg,
            store,
            auth,
            remote,
            tls_active,
            tls_available,
            state: State::NotAuthenticated,
            enabled: Enabled::default(),
            feeds: Arc::default(),
            bad_commands: 0,
            auth_failures: 0,
            pending_tag: None,
            spill: None,
            keyword_case: KeywordCase::default(),
            notify: None,
        }
    }

    /// Streams long responses: while [`handle`](Self::handle) runs a FETCH over many
    /// messages, the bytes written so far are sent to `sink` in pieces of about
    /// [`SPILL_THRESHOLD`] instead of all staying in `out`. The shell must receive from
    /// the sink while `handle` runs and write the pieces, in order, before what `handle`
    /// leaves in `out`. A bounded sink is the back-pressure: when it is full the session
    /// waits, so a client that stops reading stops the command, not the server's memory.
    /// Without a sink everything stays in `out` (as the session tests expect).
    pub fn set_spill(&mut self, sink: mpsc::Sender<Vec<u8>>) {
        self.spill = Some(sink);
    }

    /// Hands `out` to the spill sink once it holds [`SPILL_THRESHOLD`] bytes or more
    /// (waiting while the sink is full); a no-op without a sink. Call it only between
    /// complete responses of a command that may run long.
    pub(crate) async fn spill(&self, out: &mut Vec<u8>) {
        if out.len() < SPILL_THRESHOLD {
            return;
        }
        let Some(sink) = &self.spill else {
            return;
        };
        let piece = std::mem::replace(out, Vec::with_capacity(SPILL_THRESHOLD + SPILL_SLACK));
        if let Err(mpsc::error::SendError(piece)) = sink.send(piece).await {
            // The connection is gone: keep the bytes where the caller expects them.
            *out = piece;
        }
    }

    /// Shares mailbox changes with the other sessions of one server (a session on its own
    /// reads everything itself).
    pub(crate) fn with_feeds(mut self, feeds: Arc<crate::feed::Feeds>) -> Self {
        self.feeds = feeds;
        self
    }

    /// `* OK [CAPABILITY ...] greeting` (RFC 9051 §7.1.1).
    pub fn greeting(&self, out: &mut Vec<u8>) {
        let caps = self.capabilities();
        out.extend_from_slice(
            format!(
                "* OK [CAPABILITY {caps}] {} Bulwark IMAP ready\r\n",
                self.cfg.hostname
            )
            .as_bytes(),
        );
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated(_) | State::Selected(..))
    }

    pub fn tls_started(&mut self) {
        self.tls_active = true;
    }

    /// Answers a command that failed to parse. Returns `Logout` when the connection
    /// must close (fatal error or too many bad commands).
    pub fn parse_error(&mut self, e: ParseError, out: &mut Vec<u8>) -> Next {
        let tag = e.tag.as_deref().unwrap_or("*");
        let code = e.code.map(|c| format!("[{c}] ")).unwrap_or_default();
        match e.kind {
            ErrorKind::Fatal => {
                // The command is answered (RFC 7888 §4: BAD for a literal we will not read),
                // then the connection is closed.
                if let Some(tag) = &e.tag {
                    out.extend_from_slice(format!("{tag} BAD {code}{}\r\n", e.text).as_bytes());
                }
                out.extend_from_slice(format!("* BYE {code}{}\r\n", e.text).as_bytes());
                return Next::Logout;
            }
            ErrorKind::No => {
                out.extend_from_slice(format!("{tag} NO {code}{}\r\n", e.text).as_bytes())
            }
            ErrorKind::Bad => {
                out.extend_from_slice(format!("{tag} BAD {code}{}\r\n", e.text).as_bytes())
            }
        }
        self.count_bad(out)
    }

    fn count_bad(&mut self, out: &mut Vec<u8>) -> Next {
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            out.extend_from_slice(b"* BYE Too many invalid commands\r\n");
            self.state = State::Logout;
            return Next::Logout;
        }
        Next::Continue
    }

    /// Runs one command; writes untagged and tagged responses into `out`.
    pub async fn handle(&mut self, cmd: Command, out: &mut Vec<u8>) -> Next {
        let Command { tag, body } = cmd;
        if let Err(text) = self.check_state(&body) {
            out.extend_from_slice(format!("{tag} BAD {text}\r\n").as_bytes());
            return self.count_bad(out);
        }
        let name = body.name();
        let condstore_before = self.enabled.condstore;
        let is_select = matches!(body, CommandBody::Select { .. });
        // RFC 9051 §7.5.1: no EXPUNGE while responding to FETCH, STORE or SEARCH (UID
        // variants may).
        let allow_expunge = !matches!(
            &body,
            CommandBody::Fetch(f) if !f.uid
        ) && !matches!(&body, CommandBody::Store(s) if !s.uid)
            && !matches!(&body, CommandBody::Search(s) if !s.uid);
        let result = match body {
            CommandBody::Capability => self.cmd_capability(out),
            CommandBody::Noop | CommandBody::Check => Done::new(format!("{name} completed")),
            CommandBody::Logout => {
                out.extend_from_slice(b"* BYE Logging out\r\n");
                out.extend_from_slice(format!("{tag} OK LOGOUT completed\r\n").as_bytes());
                self.state = State::Logout;
                return Next::Logout;
            }
            CommandBody::Id(_) => self.cmd_id(out),
            CommandBody::StartTls => {
                if self.tls_active {
                    Err(CmdError::Bad("TLS is already active".into()))
                } else if !self.tls_available {
                    Err(CmdError::no_plain(
                        "STARTTLS is not available on this listener",
                    ))
                } else {
                    out.extend_from_slice(
                        format!("{tag} OK Begin TLS negotiation now\r\n").as_bytes(),
                    );
                    return Next::StartTls;
                }
            }
            CommandBody::Login { user, password } => self.cmd_login(&user, &password).await,
            CommandBody::Authenticate { mechanism, initial } => {
                match self.cmd_authenticate(&tag, &mechanism, initial, out).await {
                    Ok(Some(next)) => return next,
                    Ok(None) => return Next::AuthContinue,
                    Err(e) => Err(e),
                }
            }
            CommandBody::Enable(caps) => self.cmd_enable(&caps, out),
            CommandBody::Namespace => {
                // RFC 2342: one personal namespace, no others.
                out.extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                Done::new("NAMESPACE completed")
            }
            CommandBody::Select {
                mailbox,
                read_only,
                params,
            } => self.cmd_select(&mailbox, read_only, params, out).await,
            CommandBody::Create {
                mailbox,
                special_use,
            } => self.cmd_create(&mailbox, &special_use).await,
            CommandBody::Delete { mailbox } => self.cmd_delete(&mailbox).await,
            CommandBody::Rename { from, to } => self.cmd_rename(&from, &to).await,
            CommandBody::Subscribe { mailbox } => self.cmd_subscribe(&mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.cmd_subscribe(&mailbox, false).await,
            CommandBody::List(l) => self.cmd_list(l, out).await,
            CommandBody::Lsub { reference, pattern } => {
                self.cmd_lsub(&reference, &pattern, out).await
            }
            CommandBody::Status { mailbox, items } => self.cmd_status(&mailbox, &items, out).await,
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
                catenate,
                more,
            } => {
                let mut messages = vec![AppendMessage {
                    flags,
                    date,
                    message,
                    catenate,
                }];
                messages.extend(more);
                self.cmd_append(&mailbox, messages).await
            }
            CommandBody::Idle => {
                out.extend_from_slice(b"+ idling\r\n");
                self.pending_tag = Some(tag);
                // Report what is already pending before waiting.
                let _ = self.sync(out, true).await;
                return Next::Idle;
            }
            CommandBody::Close => self.cmd_close().await,
            CommandBody::Unselect => self.cmd_unselect(),
            CommandBody::Expunge { uids } => self.cmd_expunge(uids, out).await,
            CommandBody::Search(s) => self.cmd_search(&tag, s, out).await,
            CommandBody::Fetch(f) => self.cmd_fetch(f, out).await,
            CommandBody::Store(s) => self.cmd_store(s, out).await,
            CommandBody::Copy { uid, set, mailbox } => self.cmd_copy(uid, &set, &mailbox).await,
            CommandBody::Move { uid, set, mailbox } => {
                self.cmd_move(uid, &set, &mailbox, out).await
            }
            CommandBody::Replace {
                uid,
                target,
                mailbox,
                message,
            } => self.cmd_replace(uid, target, &mailbox, message, out).await,
            CommandBody::Sort(s) => self.cmd_sort(&tag, s, out).await,
            CommandBody::Thread(t) => self.cmd_thread(t, out).await,
            CommandBody::CancelUpdate(tags) => self.cmd_cancel_update(&tags),
            CommandBody::GetQuota { root } => self.cmd_get_quota(&root, out).await,
            CommandBody::GetQuotaRoot { mailbox } => self.cmd_get_quota_root(&mailbox, out).await,
            CommandBody::SetQuota { root } => self.cmd_set_quota(&root),
            CommandBody::GetMetadata {
                mailbox,
                entries,
                max_size,
                depth,
            } => {
                self.cmd_get_metadata(&mailbox, &entries, max_size, depth, out)
                    .await
            }
            CommandBody::SetMetadata { mailbox, entries } => {
                self.cmd_set_metadata(&mailbox, entries).await
            }
            CommandBody::GenUrlAuth(pairs) => self.cmd_gen_url_auth(&pairs, out).await,
            CommandBody::ResetKey {
                mailbox,
                mechanisms,
            } => self.cmd_reset_key(mailbox.as_deref(), &mechanisms).await,
            CommandBody::UrlFetch(urls) => self.cmd_url_fetch(&urls, out).await,
            CommandBody::Notify(set) => self.cmd_notify(set, out).await,
        };
        if !condstore_before && self.enabled.condstore && !is_select {
            self.announce_highest_modseq(out);
        }
        // Report other sessions' changes before the tagged response (RFC 9051 §5.2).
        let notify_before = self.notify_selected_before();
        if let Err(e) = self.sync(out, allow_expunge).await {
            tracing::warn!(error = %e, "IMAP: could not refresh the selected mailbox");
        }
        self.context_updates(out).await;
        self.notify_after_sync(notify_before, out).await;
        self.finish(&tag, name, result, out)
    }

    /// Writes the tagged response.
    pub(crate) fn finish(
        &mut self,
        tag: &str,
        name: &str,
        result: CmdResult,
        out: &mut Vec<u8>,
    ) -> Next {
        match result {
            Ok(Done { code, text }) => {
                let code = code.map(|c| format!("[{c}] ")).unwrap_or_default();
                out.extend_from_slice(format!("{tag} OK {code}{text}\r\n").as_bytes());
                Next::Continue
            }
            Err(CmdError::Bad(text)) => {
                out.extend_from_slice(format!("{tag} BAD {text}\r\n").as_bytes());
                self.count_bad(out)
            }
            Err(CmdError::No { code, text }) => {
                let code = code.map(|c| format!("[{c}] ")).unwrap_or_default();
                out.extend_from_slice(format!("{tag} NO {code}{text}\r\n").as_bytes());
                Next::Continue
            }
            Err(CmdError::NoCode { code, text }) => {
                out.extend_from_slice(format!("{tag} NO [{code}] {text}\r\n").as_bytes());
                Next::Continue
            }
            Err(CmdError::Store(e)) => {
                let (code, text) = store_error_reply(name, &e);
                out.extend_from_slice(format!("{tag} NO [{code}] {text}\r\n").as_bytes());
                Next::Continue
            }
            Err(CmdError::Bye(text)) => {
                out.extend_from_slice(format!("* BYE {text}\r\n").as_bytes());
                self.state = State::Logout;
                Next::Logout
            }
        }
    }

    /// RFC 9051 §3: which commands are valid in which state. Wrong state → `BAD`. With
    /// UIDONLY, commands that use message numbers are `BAD [UIDREQUIRED]` (RFC 9586 §3).
    fn check_state(&self, body: &CommandBody) -> Result<(), String> {
        self.check_command_state(body)?;
        if self.enabled.uidonly && uses_message_numbers(body) {
            return Err(format!(
                "[UIDREQUIRED] {} uses message numbers; with UIDONLY use UIDs",
                body.name()
            ));
        }
        Ok(())
    }

    fn check_command_state(&self, body: &CommandBody) -> Result<(), String> {
        use CommandBody::*;
        let name = body.name();
        match body {
            Capability | Noop | Logout | Id(_) => Ok(()),
            StartTls | Login { .. } | Authenticate { .. } => {
                if self.is_authenticated() {
                    Err(format!("{name} is not allowed: already authenticated"))
                } else {
                    Ok(())
                }
            }
            Check
            | Close
            | Unselect
            | Expunge { .. }
            | Search(_)
            | Fetch(_)
            | Store(_)
            | Copy { .. }
            | Move { .. }
            | Sort(_)
            | Thread(_)
            | CancelUpdate(_)
            | Replace { .. } => match self.state {
                State::Selected(..) => Ok(()),
                State::Authenticated(_) => Err(format!(
                    "{name} needs a selected mailbox (use SELECT first)"
                )),
                _ => Err(format!("{name} needs authentication (use LOGIN first)")),
            },
            _ => {
                if self.is_authenticated() {
                    Ok(())
                } else {
                    Err(format!("{name} needs authentication (use LOGIN first)"))
                }
            }
        }
    }

    pub(crate) fn authed(&self) -> Result<&Authed, CmdError> {
        match &self.state {
            State::Authenticated(a) | State::Selected(a, _) => Ok(a),
            _ => Err(CmdError::Bad("not authenticated".into())),
        }
    }

    pub(crate) fn selected(&self) -> Result<&Selected, CmdError> {
        match &self.state {
            State::Selected(_, s) => Ok(s),
            _ => Err(CmdError::Bad("no mailbox selected".into())),
        }
    }

    pub(crate) fn selected_mut(&mut self) -> Result<&mut Selected, CmdError> {
        match &mut self.state {
            State::Selected(_, s) => Ok(s),
            _ => Err(CmdError::Bad("no mailbox selected".into())),
        }
    }

    pub(crate) fn account_id(&self) -> Result<bulwark_store::AccountId, CmdError> {
        Ok(self.authed()?.account.id)
    }

    /// Mailbox names are UTF-8 after `ENABLE UTF8=ACCEPT`/`IMAP4rev2`, else modified UTF-7.
    pub(crate) fn utf8(&self) -> bool {
        self.enabled.utf8 || self.enabled.rev2
    }

    /// A mailbox name from the client, in our (UTF-8) form.
    pub(crate) fn decode_mailbox_name(&self, name: &str) -> String {
        if self.utf8() || !name.contains('&') {
            return name.to_string();
        }
        crate::response::mutf7_decode(name).unwrap_or_else(|| name.to_string())
    }

    /// The selected mailbox (if any) and the account's change feed, once logged in.
    fn change_feed(
        &mut self,
    ) -> Option<(Option<MailboxId>, &mut broadcast::Receiver<StateChange>)> {
        match &mut self.state {
            State::Authenticated(a) => Some((None, &mut a.changes)),
            State::Selected(a, s) => Some((Some(s.id), &mut a.changes)),
            _ => None,
        }
    }

    /// While IDLE: wait until a change that concerns this session arrives (with NOTIFY
    /// on, RFC 5465: a change of any of the account's mailboxes).
    pub async fn wait_for_change(&mut self) {
        if self.notify.is_some() {
            return self.wait_for_any_change().await;
        }
        let Some((selected_id, rx)) = self.change_feed() else {
            return std::future::pending().await;
        };
        loop {
            match rx.recv().await {
                Ok(change) => {
                    if let Some(id) = selected_id
                        && change.mailboxes.contains(&id)
                    {
                        if let State::Selected(_, s) = &mut self.state {
                            s.mark_dirty(Some(change.modseq));
                        }
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let State::Selected(_, s) = &mut self.state {
                        s.mark_dirty(None);
                    }
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
            }
        }
    }

    /// While IDLE: report what changed (RFC 2177: untagged responses at once).
    pub async fn idle_update(&mut self, out: &mut Vec<u8>) {
        let notify_before = self.notify_selected_before();
        if let Err(e) = self.sync(out, true).await {
            tracing::warn!(error = %e, "IMAP: could not refresh during IDLE");
        }
        self.context_updates(out).await;
        self.notify_after_sync(notify_before, out).await;
    }

    /// The client ended IDLE with `line` (should be `DONE`, RFC 2177 §3).
    pub async fn idle_done(&mut self, line: &[u8], out: &mut Vec<u8>) -> Next {
        let tag = self.pending_tag.take().unwrap_or_else(|| "*".into());
        if line.eq_ignore_ascii_case(b"DONE") {
            let _ = self.sync(out, true).await;
            out.extend_from_slice(format!("{tag} OK IDLE terminated\r\n").as_bytes());
            Next::Continue
        } else {
            out.extend_from_slice(format!("{tag} BAD Expected DONE to end IDLE\r\n").as_bytes());
            self.count_bad(out)
        }
    }

    /// RFC 7162 §3.1: the first CONDSTORE-enabling command (FETCH … MODSEQ, SEARCH MODSEQ,
    /// STORE UNCHANGEDSINCE, ENABLE CONDSTORE, …) issued while a mailbox is selected gets
    /// `* OK [HIGHESTMODSEQ n]` (SELECT/EXAMINE report it themselves).
    fn announce_highest_modseq(&self, out: &mut Vec<u8>) {
        let State::Selected(_, sel) = &self.state else {
            return;
        };
        let highest = sel
            .view
            .iter()
            .map(|m| m.modseq)
            .max()
            .unwrap_or_default()
            .max(sel.synced);
        out.extend_from_slice(format!("* OK [HIGHESTMODSEQ {highest}] Highest\r\n").as_bytes());
    }

    /// The highest modseq of the selected mailbox's view (for `SEARCH ... (MODSEQ n)`).
    pub(crate) fn view_modseq(view: &[ViewMsg], indices: &[usize]) -> ModSeq {
        indices
            .iter()
            .filter_map(|&i| view.get(i))
            .map(|m| m.modseq)
            .max()
            .unwrap_or_default()
    }
}

/// A store failure as `NO [code] text`.
fn store_error_reply(command: &str, e: &StoreError) -> (&'static str, String) {
    match e {
        StoreError::NotFound(what) => {
            ("NONEXISTENT", format!("{command} failed: {what} not found"))
        }
        StoreError::AlreadyExists(what) => (
            "ALREADYEXISTS",
            format!("{command} failed: {what} already exists"),
        ),
        StoreError::Invalid(why) => ("CANNOT", format!("{command} failed: {why}")),
        // RFC 5530 INUSE: someone else changed it first; the client may try again.
        StoreError::Conflict(_) => (
            "INUSE",
            format!("{command} failed: changed at the same time by another session; try again"),
        ),
        StoreError::Unavailable(why) => {
            tracing::debug!(command, error = %why, "IMAP: store unavailable");
            (
                "UNAVAILABLE",
                format!("{command} failed: the mail store is unavailable; try again later"),
            )
        }
        StoreError::CannotCalculateChanges(_) => ("SERVERBUG", format!("{command} failed: {e}")),
        StoreError::Internal(why) => {
            tracing::error!(command, error = %why, "IMAP: internal store error");
            (
                "SERVERBUG",
                format!("{command} failed: internal error in the mail store"),
            )
        }
    }
}
