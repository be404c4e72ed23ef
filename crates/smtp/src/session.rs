//! The sans-I/O SMTP session: bytes in, replies and [`Event`]s out. No tokio, no clock, no
//! store: whatever needs the outside world is an [`Event`] the shell performs and answers
//! through one of the `*_result`/`*_resolved`/`tls_established` methods.
//!
//! Use (the same four verbs as rustls/quinn): [`Session::feed`] bytes, call
//! [`Session::poll_event`] until it returns `None` (answering each event), write
//! [`Session::take_output`], and read more only while [`Session::wants_read`].

use crate::limits::{MAX_AUTH_FAILURES, MAX_AUTH_LINE, MAX_BAD_COMMANDS, MAX_COMMAND_LINE};
use crate::reply::{self, Reply};
use crate::trace::{self, TraceInfo};
use crate::wire::{self, BdatChunk, Command, CommandError, DataBody, MailParams, Mechanism};
use base64::Engine;
use bulwark_net::{MemoryBudget, Reservation};
use bulwark_store::AccountId;
use std::net::IpAddr;
use std::sync::Arc;

/// Which port a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Inbound mail from the internet (port 25): no AUTH, local recipients only.
    Mx,
    /// Submission with STARTTLS then AUTH required (port 587, RFC 6409).
    Submission,
    /// Submission over implicit TLS (port 465, RFC 8314).
    Submissions,
}

impl ListenerKind {
    pub fn is_submission(self) -> bool {
        matches!(self, ListenerKind::Submission | ListenerKind::Submissions)
    }
}

/// What the session needs to know about its listener; built by the shell.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub hostname: String,
    pub kind: ListenerKind,
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// A TLS acceptor exists, so STARTTLS can be offered.
    pub tls_available: bool,
    /// AUTH may be used without TLS (loopback peer and the operator allowed it).
    pub plaintext_auth_allowed: bool,
    /// RFC 4865 FUTURERELEASE is offered (submission listeners of a node that times held
    /// mail): the unix time the session started, from which the latest release date
    /// advertised and accepted is counted. `None`: not offered.
    pub future_release: Option<i64>,
}

/// When a message asks to be released (RFC 4865 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// `HOLDFOR=`: this many seconds after it is accepted.
    For(u64),
    /// `HOLDUNTIL=`: at this unix time.
    Until(i64),
}

impl Hold {
    /// The release time for a message accepted at `now` (unix seconds).
    pub fn release_at(self, now: i64) -> i64 {
        match self {
            Hold::For(secs) => now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
            Hold::Until(at) => at,
        }
    }
}

/// Something the shell must do; the session waits until it is answered.
#[derive(Debug)]
pub enum Event {
    /// Flush output, run the TLS handshake, then call [`Session::tls_established`] (or close).
    StartTls,
    /// Check credentials; answer with [`Session::auth_result`].
    Authenticate { username: String, password: String },
    /// Resolve an envelope recipient; answer with [`Session::recipient_resolved`].
    /// `size`: the message size declared at MAIL (RFC 1870 `SIZE=`), 0 when none was;
    /// `sender` the transaction's reverse-path, `authenticated` whether the client signed in
    /// (greylisting, RFC 6647, applies only to unauthenticated clients).
    CheckRecipient {
        address: String,
        size: usize,
        sender: String,
        authenticated: bool,
    },
    /// Store the message durably; answer with [`Session::delivery_result`].
    Deliver(Box<Delivery>),
    /// Flush output and close the connection.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// `addresses`: every address of the account (for the envelope sender check).
    Success {
        account: AccountId,
        addresses: Vec<String>,
    },
    InvalidCredentials,
    /// The account's password was right but two-factor sign-in is on: only app passwords.
    AppPasswordRequired,
    Throttled,
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientVerdict {
    Local(AccountId),
    /// A local mailbox known under another address than the one given: bare `<postmaster>`
    /// is delivered as `postmaster@<primary domain>` (RFC 5321 §4.5.1).
    LocalAs {
        address: String,
        account: AccountId,
    },
    UnknownUser,
    /// Not one of our domains: relayed if authenticated, else refused.
    Remote,
    TemporaryFailure,
    /// A local mailbox already at its storage quota (`452 4.2.2`, so the sender tries this
    /// recipient again later while the others get the message now).
    MailboxFull,
    /// Greylisted (RFC 6647): a first attempt from this network and sender, `451 4.7.1`.
    Greylisted,
}

/// Why the shell could not take a [`Delivery`]: the client may retry (`451`), or must not
/// (`554`, e.g. every recipient refused by a filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryFailure {
    Temporary(String),
    Permanent(String),
}

/// An accepted message with its envelope.
#[derive(Debug)]
pub struct Delivery {
    /// Transaction id: in the `Received:` line and in `250 Ok: queued as <id>`.
    pub id: String,
    /// Envelope sender (empty for `<>`).
    pub sender: String,
    /// Local recipients as given, with their account.
    pub local: Vec<(String, AccountId)>,
    /// Remote recipients (only when authenticated).
    pub remote: Vec<String>,
    /// The message as received (unstuffed), without our trace fields.
    pub body: Vec<u8>,
    pub trace: TraceInfo,
    /// Received on the inbound MX port (port 25) from a client that did not authenticate.
    pub inbound_mx: bool,
    /// The SMTP AUTH identity (its first address), if the client authenticated.
    pub authenticated: Option<String>,
    /// The authenticated account (submission).
    pub account: Option<AccountId>,
    /// RFC 4865: hold the message until then instead of delivering it now.
    pub hold: Option<Hold>,
    /// The body's share of the server's memory budget, given back when the delivery is dropped.
    memory: Reservation,
}

impl Delivery {
    /// For local mailboxes: `Return-Path:` + `Received:` + body (RFC 5321 §4.4: the final
    /// delivery adds Return-Path).
    pub fn local_message(&self, now_unix: i64) -> Vec<u8> {
        let rcpts: Vec<&str> = self.local.iter().map(|(a, _)| a.as_str()).collect();
        let mut head = trace::return_path_header(&self.sender);
        head.push_str(&trace::received_header(&self.trace, &rcpts, now_unix));
        concat(head, &self.body)
    }

    /// For the outbound queue: `Received:` + body (no Return-Path: we are not the last hop).
    pub fn relay_message(&self, now_unix: i64) -> Vec<u8> {
        let rcpts: Vec<&str> = self.remote.iter().map(String::as_str).collect();
        concat(
            trace::received_header(&self.trace, &rcpts, now_unix),
            &self.body,
        )
    }

    /// Bytes of the server's body memory budget this delivery holds.
    pub fn reserved_memory(&self) -> usize {
        self.memory.held()
    }

    pub fn local_accounts(&self) -> Vec<AccountId> {
        self.local.iter().map(|(_, id)| *id).collect()
    }
}

fn concat(head: String, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(head.len() + body.len());
    v.extend_from_slice(head.as_bytes());
    v.extend_from_slice(body);
    v
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hello {
    None,
    Helo(String),
    Ehlo(String),
}

#[derive(Debug)]
struct Identity {
    account: AccountId,
    addresses: Vec<String>,
}

/// MAIL accepted → RCPTs collected → DATA or BDAT chunks.
#[derive(Debug)]
struct Transaction {
    sender: String,
    smtputf8: bool,
    local: Vec<(String, AccountId)>,
    remote: Vec<String>,
    /// RFC 1870 `SIZE=` of MAIL (0: not declared).
    declared_size: usize,
    /// RFC 4865 `HOLDFOR`/`HOLDUNTIL` of MAIL.
    hold: Option<Hold>,
    /// Chunks received so far with BDAT (RFC 3030); `None` until the first BDAT.
    bdat: Option<BdatBody>,
}

#[derive(Debug)]
struct BdatBody {
    body: Vec<u8>,
    /// Set when a chunk was refused: every later chunk of the transaction gets this reply.
    failed: Option<Reply>,
    memory: Reservation,
}

impl Transaction {
    fn recipient_count(&self) -> usize {
        self.local.len() + self.remote.len()
    }

    /// A local recipient, once per address.
    fn add_local(&mut self, address: String, account: AccountId) {
        if !self
            .local
            .iter()
            .any(|(a, _)| a.eq_ignore_ascii_case(&address))
        {
            self.local.push((address, account));
        }
    }
}

/// What the session is reading right now.
enum Phase {
    Command,
    Data(DataBody),
    Bdat {
        chunk: BdatChunk,
        size: usize,
        last: bool,
        outcome: ChunkOutcome,
    },
    AuthResponse(AuthStep),
}

enum ChunkOutcome {
    Append,
    /// Throw the chunk away, then send this reply; `end` ends the transaction.
    Reject {
        reply: Reply,
        end: bool,
    },
}

enum AuthStep {
    PlainResponse,
    LoginUsername,
    LoginPassword { username: String },
}

/// Which answer the session is waiting for.
#[derive(Debug)]
enum Awaiting {
    Tls,
    Auth,
    Recipient { address: String },
    Delivery { id: String },
}

enum Line {
    Complete(Vec<u8>),
    TooLong,
    Incomplete,
}

/// One SMTP connection's protocol state.
pub struct Session {
    cfg: SessionConfig,
    peer: IpAddr,
    session_id: String,
    tls: bool,
    hello: Hello,
    auth: Option<Identity>,
    txn: Option<Transaction>,
    phase: Phase,
    input: Vec<u8>,
    start: usize,
    discarding_line: bool,
    out: Vec<u8>,
    ready: Option<Event>,
    awaiting: Option<Awaiting>,
    errors: u32,
    auth_failures: u32,
    commands: u32,
    transactions: u32,
    closed: bool,
    close_reported: bool,
    /// Memory all sessions of the server may hold for bodies being received.
    body_budget: Arc<MemoryBudget>,
}

impl Session {
    /// A new session; the 220 greeting is already in the output. `tls` is true for implicit
    /// TLS (port 465). `session_id` prefixes transaction ids, so it should be unique.
    pub fn new(cfg: SessionConfig, peer: IpAddr, tls: bool, session_id: String) -> Session {
        let mut s = Session {
            peer,
            session_id,
            tls,
            hello: Hello::None,
            auth: None,
            txn: None,
            phase: Phase::Command,
            input: Vec::new(),
            start: 0,
            discarding_line: false,
            out: Vec::new(),
            ready: None,
            awaiting: None,
            errors: 0,
            auth_failures: 0,
            commands: 0,
            transactions: 0,
            closed: false,
            close_reported: false,
            body_budget: MemoryBudget::unlimited(),
            cfg,
        };
        let greeting = reply::greeting(&s.cfg.hostname);
        s.send(greeting);
        s
    }

    /// Message bodies are held within `budget`, shared with the server's other sessions
    /// (without it there is no limit beyond the message size).
    pub fn with_body_budget(mut self, budget: Arc<MemoryBudget>) -> Session {
        self.body_budget = budget;
        self
    }

    // ---- the four verbs -----------------------------------------------------------------

    /// Bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        // RFC 3207 §4.2: nothing sent before the TLS handshake may be used after it.
        if self.closed || matches!(self.awaiting, Some(Awaiting::Tls)) {
            return;
        }
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Advances with the buffered input. Returns the next event for the shell, or `None` when
    /// more input (or the answer to an outstanding event) is needed.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.ready.take() {
                return Some(event);
            }
            if self.closed {
                if self.close_reported {
                    return None;
                }
                self.close_reported = true;
                return Some(Event::Close);
            }
            if self.awaiting.is_some() || !self.step() {
                return None;
            }
        }
    }

    /// Replies to write to the client.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether the shell should read from the client now.
    pub fn wants_read(&self) -> bool {
        !self.closed && self.awaiting.is_none() && self.ready.is_none()
    }

    // ---- getters ---------------------------------------------------------------------------

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn is_authenticated(&self) -> bool {
        self.auth.is_some()
    }

    /// A mail transaction is open (after MAIL, until its end), or an answer is awaited: a
    /// draining server lets it finish before saying 421.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some() || self.awaiting.is_some() || self.ready.is_some()
    }

    /// Commands processed since the last call that count against the shell's rate limit: every
    /// command except the ones that move mail (see [`Command::moves_mail`]).
    pub fn take_command_count(&mut self) -> u32 {
        std::mem::take(&mut self.commands)
    }

    // ---- answers from the shell ---------------------------------------------------------

    /// The TLS handshake after STARTTLS succeeded: RFC 3207 §4.2, forget everything learned
    /// from the client before it (greeting, transaction, buffered input).
    pub fn tls_established(&mut self) {
        if !matches!(self.awaiting, Some(Awaiting::Tls)) {
            return;
        }
        self.awaiting = None;
        self.tls = true;
        self.hello = Hello::None;
        self.auth = None;
        self.txn = None;
        self.phase = Phase::Command;
        self.input.clear();
        self.start = 0;
        self.discarding_line = false;
    }

    /// The shell's idle timer fired (RFC 5321 §4.5.3.2.7).
    pub fn timed_out(&mut self) {
        if !self.closed {
            self.send(reply::IDLE_TIMEOUT);
        }
    }

    /// The server is shutting down.
    pub fn shutdown(&mut self) {
        if !self.closed {
            self.send(reply::SHUTTING_DOWN);
        }
    }

    // ---- internals -----------------------------------------------------------------------

    fn send(&mut self, r: Reply) {
        if self.closed {
            return;
        }
        r.write_to(&mut self.out);
        if r.closes_connection() {
            self.close();
            return;
        }
        if r.is_permanent_failure() {
            self.errors += 1;
            if self.errors >= MAX_BAD_COMMANDS {
                reply::TOO_MANY_ERRORS.write_to(&mut self.out);
                self.close();
            }
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.phase = Phase::Command;
        self.awaiting = None;
        self.input.clear();
        self.start = 0;
    }

    fn available(&self) -> &[u8] {
        self.input.get(self.start..).unwrap_or_default()
    }

    /// Processes one unit of input; false when nothing could be done.
    fn step(&mut self) -> bool {
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::Command => match self.next_line(MAX_COMMAND_LINE) {
                Line::Incomplete => false,
                Line::TooLong => {
                    self.commands += 1;
                    self.send(reply::LINE_TOO_LONG);
                    true
                }
                Line::Complete(line) => {
                    match wire::parse_command(&line) {
                        Ok(cmd) => {
                            if !cmd.moves_mail() {
                                self.commands += 1;
                            }
                            self.command(cmd)
                        }
                        Err(e) => {
                            self.commands += 1;
                            self.send(command_error_reply(e))
                        }
                    }
                    true
                }
            },
            Phase::AuthResponse(step) => match self.next_line(MAX_AUTH_LINE) {
                Line::Incomplete => {
                    self.phase = Phase::AuthResponse(step);
                    false
                }
                Line::TooLong => {
                    self.send(reply::LINE_TOO_LONG);
                    true
                }
                Line::Complete(line) => {
                    self.auth_response(step, &line);
                    true
                }
            },
            Phase::Data(mut body) => {
                let (used, done) = body.ingest(self.available());
                self.start += used;
                if done {
                    self.data_finished(body.finish());
                } else {
                    self.phase = Phase::Data(body);
                }
                used > 0 || done
            }
            Phase::Bdat {
                mut chunk,
                size,
                last,
                outcome,
            } => {
                let mut scratch = Vec::new();
                let body = match (&outcome, self.txn.as_mut().and_then(|t| t.bdat.as_mut())) {
                    (ChunkOutcome::Append, Some(b)) => &mut b.body,
                    _ => &mut scratch,
                };
                let input = self.input.get(self.start..).unwrap_or_default();
                let (used, done) = chunk.ingest(input, body);
                self.start += used;
                if done {
                    self.bdat_finished(size, last, outcome);
                } else {
                    self.phase = Phase::Bdat {
                        chunk,
                        size,
                        last,
                        outcome,
                    };
                }
                used > 0 || done
            }
        }
    }

    /// Cuts the next line (through LF) off the input, enforcing `max`.
    fn next_line(&mut self, max: usize) -> Line {
        let avail = self.available();
        match avail.iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let line = avail[..=pos].to_vec();
                self.start += pos + 1;
                if std::mem::take(&mut self.discarding_line) || line.len() > max {
                    Line::TooLong
                } else {
                    Line::Complete(line)
                }
            }
            None => {
                if avail.len() > max {
                    // Drop what we have and the rest of the line as it arrives; answer once
                    // the line ends (RFC 5321 §4.5.3.1.4 allows 500 for too-long lines).
                    self.discarding_line = true;
                    self.start = self.input.len();
                }
                Line::Incomplete
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Ehlo(host) => self.ehlo(host),
            Command::Helo(host) => {
                // RFC 5321 §4.1.4: HELO/EHLO reset any transaction.
                self.txn = None;
                self.hello = Hello::Helo(host);
                let r = reply::helo(&self.cfg.hostname);
                self.send(r);
            }
            Command::Mail(params) => self.mail(params),
            Command::Rcpt(params) => self.rcpt(params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response),
            Command::StartTls => self.starttls(),
            Command::Rset => {
                // RFC 5321 §4.1.1.5.
                self.txn = None;
                self.send(reply::RESET_OK);
            }
            Command::Noop => self.send(reply::OK),
            Command::Quit => {
                let r = reply::bye(&self.cfg.hostname);
                self.send(r);
            }
            Command::Vrfy => self.send(reply::CANNOT_VRFY),
            Command::Help => self.send(reply::HELP),
            Command::NotImplemented => self.send(reply::NOT_IMPLEMENTED),
        }
    }

    fn auth_offered(&self) -> bool {
        self.cfg.kind.is_submission()
            && self.auth.is_none()
            && (self.tls || self.cfg.plaintext_auth_allowed)
    }

    /// RFC 5321 §4.1.1.1 with the extensions we implement.
    fn ehlo(&mut self, host: String) {
        self.txn = None;
        let mut ext = vec![
            "PIPELINING".to_string(),                      // RFC 2920
            format!("SIZE {}", self.cfg.max_message_size), // RFC 1870
            "8BITMIME".to_string(),                        // RFC 6152
            "SMTPUTF8".to_string(),                        // RFC 6531
            "ENHANCEDSTATUSCODES".to_string(),             // RFC 2034
            "CHUNKING".to_string(),                        // RFC 3030
        ];
        if self.cfg.tls_available && !self.tls {
            ext.push("STARTTLS".to_string()); // RFC 3207
        }
        if self.auth_offered() {
            ext.push("AUTH PLAIN LOGIN".to_string()); // RFC 4954
        }
        if let Some(since) = self.cfg.future_release {
            // RFC 4865 §3: `FUTURERELEASE max-future-release-interval max-future-release-date-time`.
            ext.push(format!(
                "FUTURERELEASE {} {}",
                crate::limits::MAX_FUTURE_RELEASE_SECS,
                trace::rfc3339_utc(since + crate::limits::MAX_FUTURE_RELEASE_SECS)
            ));
        }
        ext.push("HELP".to_string());
        reply::write_ehlo(
            &mut self.out,
            &self.cfg.hostname,
            &sanitize_text(&host),
            &ext,
        );
        self.hello = Hello::Ehlo(host);
    }

    fn starttls(&mut self) {
        if self.tls {
            return self.send(reply::TLS_ALREADY_ACTIVE);
        }
        if !self.cfg.tls_available {
            return self.send(reply::STARTTLS_UNAVAILABLE);
        }
        self.send(reply::READY_TO_START_TLS);
        // RFC 3207 §4.2 (CVE-2011-0411): pipelined plaintext after STARTTLS is discarded.
        self.input.clear();
        self.start = 0;
        self.awaiting = Some(Awaiting::Tls);
        self.ready = Some(Event::StartTls);
    }
}

/// Client text echoed in a reply: printable, bounded.
fn sanitize_text(s: &str) -> String {
    s.chars()
        .take(255)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn command_error_reply(e: CommandError) -> Reply {
    match e {
        CommandError::Unknown => reply::COMMAND_UNRECOGNIZED,
        CommandError::Malformed => reply::COMMAND_MALFORMED,
        CommandError::Syntax(usage) => reply::syntax(usage),
        CommandError::BadSender => reply::BAD_SENDER_SYNTAX,
        CommandError::BadRecipient => reply::BAD_RECIPIENT_SYNTAX,
        CommandError::InvalidParameter(name) => reply::invalid_parameter(name),
        CommandError::UnsupportedParameter(name) => {
            let name: String = sanitize_text(&name).chars().take(64).collect();
            reply::unsupported_parameter(&name)
        }
    }
}

mod auth;
mod mail;
#[cfg(test)]
mod tests;
