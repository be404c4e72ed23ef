//! The sans-I/O POP3 session (RFC 1939 §3–§6): bytes in, replies and [`Event`]s out. No
//! tokio, no clock, no store: whatever needs the outside world is an [`Event`] the shell
//! performs and answers through [`Session::auth_result`], [`Session::retrieved`],
//! [`Session::update_result`] or [`Session::tls_established`].
//!
//! Use (like the SMTP session): [`Session::feed`] bytes, call [`Session::poll_event`] until it
//! returns `None` (answering each event), write [`Session::take_output`] until it is empty,
//! then read more.
//!
//! # Semantics
//! * The maildrop is the account's INBOX, read once at login ([`Maildrop`]): message numbers
//!   are 1..n in UID order and never change during the session; mail that arrives later is
//!   seen by the next session. UIDL is `UIDVALIDITY.UID`, which never changes for a message
//!   and is never reused for another (RFC 1939 §7: unique and persistent across sessions).
//! * DELE only marks; RSET unmarks. At QUIT (the UPDATE state, RFC 1939 §6) the marked
//!   messages are expunged from INBOX in one store call, and only after it returned does the
//!   client get `+OK`. A connection that ends any other way changes nothing.
//! * Retrieved messages (RETR, not TOP) get `$seen` at QUIT too, as Dovecot does by default:
//!   an IMAP client of the same account then shows them read.
//! * Concurrent sessions of one account are allowed, each with its own snapshot (RFC 1939 §8
//!   asks for an exclusive lock because an mbox file would be rewritten under the other
//!   session; RFC 2449 §8.1.2 `[IN-USE]` is the answer for when a server takes one). Here the
//!   store is transactional and messages are addressed by UID, so two sessions cannot corrupt
//!   anything: a message the other session expunged is answered `-ERR` when retrieved, and
//!   deleting it again at QUIT is a no-op. Dovecot's default (`pop3_lock_session = no`) is
//!   the same; a phone and a desktop that both poll never lock each other out.

use crate::command::{self, Command};
use crate::limits::{
    MAX_AUTH_FAILURES, MAX_AUTH_LINE, MAX_BAD_COMMANDS, MAX_COMMAND_LINE, OUTPUT_CHUNK,
};
use crate::stuff::{DotStuffer, wire_size};
use base64::Engine;
use bulwark_store::{AccountId, BlobHash, EmailId, MailboxId, Uid};
use std::collections::VecDeque;

/// What the session needs to know about its listener; built by the shell.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Name in the greeting.
    pub hostname: String,
    /// A TLS acceptor exists, so STLS can be offered.
    pub tls_available: bool,
    /// USER/PASS and AUTH may be used without TLS (a loopback peer, and the operator allowed
    /// it with `[auth] allow_plaintext_on_loopback`).
    pub plaintext_auth_allowed: bool,
}

/// One message of the maildrop as read at login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildropMessage {
    pub uid: Uid,
    pub email: EmailId,
    pub blob: BlobHash,
    /// The stored size in octets. Stored mail ends its lines in CRLF (SMTP refuses bare
    /// line endings), so this is the size as transmitted (RFC 1939 §5 LIST, §11); for the
    /// rare message stored with bare LF (IMAP APPEND) RETR says the exact size.
    pub size: u64,
}

/// The snapshot of INBOX a session works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maildrop {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub uid_validity: u32,
    /// Ordered by UID: index + 1 is the message number.
    pub messages: Vec<MaildropMessage>,
}

/// Something the shell must do; the session waits until it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write the output, run the TLS handshake, then call [`Session::tls_established`] (or
    /// close the connection).
    StartTls,
    /// Check the credentials and read the maildrop; answer with [`Session::auth_result`].
    Authenticate { username: String, password: String },
    /// Read this stored message; answer with [`Session::retrieved`].
    Retrieve { blob: BlobHash },
    /// The UPDATE state: apply, then answer with [`Session::update_result`].
    Update(Update),
    /// Write the output and close the connection.
    Close,
}

/// What QUIT applies to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub account: AccountId,
    pub mailbox: MailboxId,
    /// Messages marked with DELE: expunged from the mailbox.
    pub expunge: Vec<Uid>,
    /// Messages retrieved with RETR and not deleted: get `$seen`.
    pub seen: Vec<EmailId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Success(Maildrop),
    InvalidCredentials,
    /// The account's own password was right but two-factor sign-in is on: only an app
    /// password opens a protocol without a second factor.
    AppPasswordRequired,
    Throttled {
        retry_after_secs: u64,
    },
    /// The login could not be checked (store or throttle state unavailable).
    Unavailable,
    /// The login was right but INBOX could not be read.
    MaildropUnavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrieveFailure {
    /// The message is no longer stored (another session expunged it).
    Gone,
    /// The store did not answer.
    Unavailable,
}

/// What an event the session is waiting on was for.
#[derive(Debug)]
enum Pending {
    StartTls,
    Auth,
    Retrieve { number: u32, top: Option<u32> },
    Update { deleted: usize },
}

#[derive(Debug)]
struct Transaction {
    drop: Maildrop,
    deleted: Vec<bool>,
    retrieved: Vec<bool>,
}

impl Transaction {
    fn new(drop: Maildrop) -> Self {
        let n = drop.messages.len();
        Transaction {
            drop,
            deleted: vec![false; n],
            retrieved: vec![false; n],
        }
    }

    /// Messages and octets not marked as deleted (RFC 1939 §5 STAT).
    fn totals(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, m), (_, msg)| (n + 1, m + msg.size))
    }

    /// `(number, message)` of the messages not marked as deleted.
    fn live(&self) -> impl Iterator<Item = (usize, &MaildropMessage)> {
        self.drop
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
            .map(|(i, m)| (i + 1, m))
    }

    /// The index of message `number`, or the `-ERR` text.
    fn index(&self, number: u32) -> Result<usize, String> {
        let count = self.drop.messages.len();
        let i = (number as usize).wrapping_sub(1);
        if number == 0 || i >= count {
            return Err(format!(
                "No such message {number} (the maildrop has {count} messages)"
            ));
        }
        if self.deleted[i] {
            return Err(format!("Message {number} is deleted"));
        }
        Ok(i)
    }

    fn uidl(&self, msg: &MaildropMessage) -> String {
        format!("{}.{}", self.drop.uid_validity, msg.uid.0)
    }
}

#[derive(Debug)]
enum State {
    /// RFC 1939 §4; `user` is the name given with USER.
    Authorization {
        user: Option<String>,
    },
    Transaction(Box<Transaction>),
    Closed,
}

/// One line taken from the input.
enum Line {
    Text(Vec<u8>),
    TooLong,
}

/// The per-connection state machine.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    tls_active: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<Event>,
    pending: Option<Pending>,
    /// The RETR/TOP body being written.
    stream: Option<DotStuffer>,
    state: State,
    bad_commands: u32,
    auth_failures: u32,
    /// Skipping the rest of an overlong line (already answered).
    discarding: bool,
    /// `+ ` was sent: the next line is the SASL response.
    sasl: bool,
    /// Commands taken since the last [`Session::take_command_count`].
    commands: u32,
}

impl Session {
    /// A new session; writes the greeting. `tls_active`: implicit TLS (port 995).
    pub fn new(cfg: SessionConfig, tls_active: bool) -> Self {
        let mut s = Session {
            output: format!("+OK {} POP3 server ready\r\n", cfg.hostname).into_bytes(),
            cfg,
            tls_active,
            input: Vec::new(),
            events: VecDeque::new(),
            pending: None,
            stream: None,
            state: State::Authorization { user: None },
            bad_commands: 0,
            auth_failures: 0,
            discarding: false,
            sasl: false,
            commands: 0,
        };
        s.output.shrink_to_fit();
        s
    }

    /// Bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Closed) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The next thing the shell must do, after running every complete command that was
    /// buffered (pipelining, RFC 2449 §6.6) until one needs the outside world.
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if self.pending.is_some()
                || self.stream.is_some()
                || self.output.len() >= OUTPUT_CHUNK
                || matches!(self.state, State::Closed)
            {
                return None;
            }
            let line = self.next_line()?;
            self.commands = self.commands.saturating_add(1);
            match line {
                Line::TooLong if self.sasl => {
                    self.sasl = false;
                    self.bad("AUTH response too long");
                }
                Line::TooLong => self.bad(&format!(
                    "Command line too long (at most {MAX_COMMAND_LINE} octets, RFC 2449 §4)"
                )),
                Line::Text(l) if self.sasl => {
                    self.sasl = false;
                    self.sasl_response(&l);
                }
                Line::Text(l) => self.command(&l),
            }
        }
    }

    /// Bytes to write: replies, then the next piece of a RETR/TOP body. Call until empty.
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.output);
        if out.len() < OUTPUT_CHUNK
            && let Some(stream) = &mut self.stream
            && stream.fill(&mut out, OUTPUT_CHUNK)
        {
            self.stream = None;
        }
        out
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    /// Waiting on an event or writing a message: a draining server lets it finish.
    pub fn is_busy(&self) -> bool {
        self.pending.is_some() || self.stream.is_some()
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Commands taken since the last call (for the shell's rate limit).
    pub fn take_command_count(&mut self) -> u32 {
        std::mem::take(&mut self.commands)
    }

    /// The TLS handshake after STLS succeeded: everything sent before it is forgotten
    /// (RFC 2595 §4 — commands pipelined after STLS came in plaintext).
    pub fn tls_established(&mut self) {
        if matches!(self.pending, Some(Pending::StartTls)) {
            self.pending = None;
        }
        self.tls_active = true;
        self.input.clear();
        self.discarding = false;
        self.state = State::Authorization { user: None };
    }

    /// The autologout timer expired (RFC 1939 §3): nothing is deleted.
    pub fn timed_out(&mut self) {
        self.reply_err("Autologout; idle for too long");
        self.close();
    }

    /// The server is draining: the session ends without the UPDATE state.
    pub fn shutdown(&mut self) {
        self.reply_err("[SYS/TEMP] Server shutting down; try again in a moment");
        self.close();
    }

    /// The answer to [`Event::Authenticate`].
    pub fn auth_result(&mut self, outcome: AuthOutcome) {
        if !matches!(self.pending, Some(Pending::Auth)) {
            return;
        }
        self.pending = None;
        match outcome {
            AuthOutcome::Success(drop) => {
                let t = Transaction::new(drop);
                let (n, octets) = t.totals();
                self.state = State::Transaction(Box::new(t));
                self.reply_ok(&format!(
                    "Logged in; maildrop has {n} messages ({octets} octets)"
                ));
            }
            AuthOutcome::InvalidCredentials | AuthOutcome::AppPasswordRequired => {
                self.auth_failures += 1;
                let text = if outcome == AuthOutcome::AppPasswordRequired {
                    "[AUTH] Application password required: this account has two-factor \
                     sign-in; create an app password in the web client (Settings, App \
                     passwords) and use it here instead of your password"
                } else {
                    "[AUTH] Invalid user name or password"
                };
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.reply_err(&format!("{text}; too many failed logins, closing"));
                    self.close();
                } else {
                    self.reply_err(text);
                }
            }
            AuthOutcome::Throttled { retry_after_secs } => self.reply_err(&format!(
                "[SYS/TEMP] Too many failed logins; try again in {retry_after_secs} seconds"
            )),
            AuthOutcome::Unavailable => self
                .reply_err("[SYS/TEMP] Authentication is temporarily unavailable; try again later"),
            AuthOutcome::MaildropUnavailable => {
                self.reply_err("[SYS/TEMP] Cannot open the maildrop right now; try again later")
            }
        }
    }

    /// The answer to [`Event::Retrieve`]: the stored message, or why not.
    pub fn retrieved(&mut self, result: Result<Vec<u8>, RetrieveFailure>) {
        let Some(Pending::Retrieve { number, top }) = self.pending else {
            return;
        };
        self.pending = None;
        match result {
            Ok(data) => match top {
                None => {
                    if let State::Transaction(t) = &mut self.state
                        && let Some(r) = t.retrieved.get_mut((number as usize).wrapping_sub(1))
                    {
                        *r = true;
                    }
                    self.reply_ok(&format!("{} octets", wire_size(&data)));
                    self.stream = Some(DotStuffer::new(data));
                }
                Some(lines) => {
                    self.reply_ok("Top of message follows");
                    self.stream = Some(DotStuffer::top(data, lines));
                }
            },
            Err(RetrieveFailure::Gone) => {
                self.reply_err(&format!("Message {number} was removed by another session"))
            }
            Err(RetrieveFailure::Unavailable) => self.reply_err(&format!(
                "[SYS/TEMP] Cannot read message {number} right now; try again later"
            )),
        }
    }

    /// The answer to [`Event::Update`]: whether the store applied it. Closes either way.
    pub fn update_result(&mut self, applied: bool) {
        let Some(Pending::Update { deleted }) = self.pending else {
            return;
        };
        self.pending = None;
        if applied {
            self.reply_ok(&format!(
                "{} POP3 server signing off ({deleted} messages deleted)",
                self.cfg.hostname
            ));
        } else {
            self.reply_err(
                "[SYS/TEMP] Some deleted messages were not removed; they are still there, \
                 try again later",
            );
        }
        self.close();
    }

    // ---- internals -------------------------------------------------------------------

    fn next_line(&mut self) -> Option<Line> {
        let max = if self.sasl {
            MAX_AUTH_LINE
        } else {
            MAX_COMMAND_LINE
        };
        loop {
            match self.input.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut line: Vec<u8> = self.input.drain(..=i).collect();
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    if line.len() > max {
                        return Some(Line::TooLong);
                    }
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Some(Line::Text(line));
                }
                None if self.discarding => {
                    self.input.clear();
                    return None;
                }
                None if self.input.len() >= max => {
                    self.input.clear();
                    self.discarding = true;
                    return Some(Line::TooLong);
                }
                None => return None,
            }
        }
    }

    fn auth_allowed(&self) -> bool {
        self.tls_active || self.cfg.plaintext_auth_allowed
    }

    fn command(&mut self, line: &[u8]) {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(e) => return self.bad(&e.message()),
        };
        if let Command::Capa = cmd {
            return self.capa();
        }
        match &self.state {
            State::Authorization { .. } => self.authorization(cmd),
            State::Transaction(_) => self.transaction(cmd),
            State::Closed => {}
        }
    }

    /// RFC 2449 §5: what this server does, in this state.
    fn capa(&mut self) {
        let mut caps = vec![
            "TOP",
            "UIDL",
            "RESP-CODES",
            "AUTH-RESP-CODE",
            "PIPELINING",
            "EXPIRE NEVER",
            "IMPLEMENTATION Bulwark",
        ];
        if matches!(self.state, State::Authorization { .. }) {
            if self.auth_allowed() {
                caps.extend(["USER", "SASL PLAIN"]);
            }
            if self.cfg.tls_available && !self.tls_active {
                caps.push("STLS");
            }
        }
        let mut text = String::from("+OK Capability list follows\r\n");
        for c in caps {
            text.push_str(c);
            text.push_str("\r\n");
        }
        text.push_str(".\r\n");
        self.output.extend_from_slice(text.as_bytes());
    }

    fn authorization(&mut self, cmd: Command) {
        match cmd {
            Command::Stls => {
                if self.tls_active {
                    self.reply_err("TLS is already active");
                } else if !self.cfg.tls_available {
                    self.reply_err("TLS is not available on this server");
                } else {
                    self.reply_ok("Begin TLS negotiation");
                    self.pending = Some(Pending::StartTls);
                    self.events.push_back(Event::StartTls);
                }
            }
            Command::User(name) => {
                if !self.plaintext_allowed_or_say_so() {
                    return;
                }
                self.state = State::Authorization { user: Some(name) };
                self.reply_ok("Send the password with PASS");
            }
            Command::Pass(password) => {
                if !self.plaintext_allowed_or_say_so() {
                    return;
                }
                let State::Authorization { user } = &mut self.state else {
                    return;
                };
                match user.take() {
                    Some(username) => self.authenticate(username, password),
                    None => self.reply_err("Send USER first"),
                }
            }
            Command::Auth {
                mechanism: None, ..
            } => self
                .output
                .extend_from_slice(b"+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n"),
            Command::Auth {
                mechanism: Some(mechanism),
                initial,
            } => {
                if mechanism != "PLAIN" {
                    return self.reply_err(&format!(
                        "Unsupported authentication mechanism {} (supported: PLAIN)",
                        mechanism.chars().take(20).collect::<String>()
                    ));
                }
                if !self.plaintext_allowed_or_say_so() {
                    return;
                }
                match initial {
                    Some(ir) => self.plain(ir.as_bytes()),
                    None => {
                        // RFC 5034 §4: an empty server challenge.
                        self.output.extend_from_slice(b"+ \r\n");
                        self.sasl = true;
                    }
                }
            }
            Command::Quit => {
                self.reply_ok(&format!("{} POP3 server signing off", self.cfg.hostname));
                self.close();
            }
            _ => self.bad("Log in first (USER and PASS, or AUTH PLAIN)"),
        }
    }

    /// USER/PASS/AUTH before TLS: refused unless allowed (RFC 2595 §2.1: plaintext passwords
    /// only under TLS).
    fn plaintext_allowed_or_say_so(&mut self) -> bool {
        if self.auth_allowed() {
            return true;
        }
        self.reply_err("Logging in without TLS is not allowed; use STLS first");
        false
    }

    fn authenticate(&mut self, username: String, password: String) {
        self.pending = Some(Pending::Auth);
        self.events
            .push_back(Event::Authenticate { username, password });
    }

    fn sasl_response(&mut self, line: &[u8]) {
        if line == b"*" {
            // RFC 5034 §4: the client cancels the exchange.
            return self.reply_err("AUTH cancelled");
        }
        self.plain(line);
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`, base64-encoded; `=` is empty.
    fn plain(&mut self, b64: &[u8]) {
        let decoded = if b64.is_empty() || b64 == b"=" {
            Vec::new()
        } else {
            match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(d) => d,
                Err(_) => return self.bad("Invalid base64 in the AUTH response"),
            }
        };
        let mut parts = decoded.split(|&b| b == 0);
        let (Some(authz), Some(authc), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self
                .bad("Malformed PLAIN response (expected authzid NUL authcid NUL password)");
        };
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(authc) {
            return self.reply_err("[AUTH] Acting as another user is not allowed");
        }
        let username = String::from_utf8_lossy(authc).into_owned();
        let password = String::from_utf8_lossy(pass).into_owned();
        self.authenticate(username, password);
    }

    fn transaction(&mut self, cmd: Command) {
        let State::Transaction(t) = &mut self.state else {
            return;
        };
        match cmd {
            Command::Stat => {
                let (n, octets) = t.totals();
                self.reply_ok(&format!("{n} {octets}"));
            }
            Command::List(None) => {
                let (n, octets) = t.totals();
                let mut text = format!("+OK {n} messages ({octets} octets)\r\n");
                for (number, msg) in t.live() {
                    text.push_str(&format!("{number} {}\r\n", msg.size));
                }
                text.push_str(".\r\n");
                self.output.extend_from_slice(text.as_bytes());
            }
            Command::List(Some(number)) => match t.index(number) {
                Ok(i) => {
                    let size = t.drop.messages[i].size;
                    self.reply_ok(&format!("{number} {size}"));
                }
                Err(e) => self.reply_err(&e),
            },
            Command::Uidl(None) => {
                let mut text = String::from("+OK Unique-id listing follows\r\n");
                for (number, msg) in t.live() {
                    text.push_str(&format!("{number} {}\r\n", t.uidl(msg)));
                }
                text.push_str(".\r\n");
                self.output.extend_from_slice(text.as_bytes());
            }
            Command::Uidl(Some(number)) => match t.index(number) {
                Ok(i) => {
                    let id = t.uidl(&t.drop.messages[i]);
                    self.reply_ok(&format!("{number} {id}"));
                }
                Err(e) => self.reply_err(&e),
            },
            Command::Retr(number) => self.retrieve(number, None),
            Command::Top(number, lines) => self.retrieve(number, Some(lines)),
            Command::Dele(number) => match t.index(number) {
                Ok(i) => {
                    t.deleted[i] = true;
                    self.reply_ok(&format!("Message {number} deleted"));
                }
                Err(e) => self.reply_err(&e),
            },
            Command::Noop => self.reply_ok(""),
            Command::Rset => {
                t.deleted.iter_mut().for_each(|d| *d = false);
                let (n, octets) = t.totals();
                self.reply_ok(&format!("Maildrop has {n} messages ({octets} octets)"));
            }
            Command::Quit => self.quit(),
            Command::Stls | Command::User(_) | Command::Pass(_) | Command::Auth { .. } => {
                self.bad("Already logged in")
            }
            Command::Capa => self.capa(),
        }
    }

    fn retrieve(&mut self, number: u32, top: Option<u32>) {
        let State::Transaction(t) = &self.state else {
            return;
        };
        match t.index(number) {
            Ok(i) => {
                let blob = t.drop.messages[i].blob.clone();
                self.pending = Some(Pending::Retrieve { number, top });
                self.events.push_back(Event::Retrieve { blob });
            }
            Err(e) => self.reply_err(&e),
        }
    }

    /// RFC 1939 §6: the UPDATE state.
    fn quit(&mut self) {
        let State::Transaction(t) = &self.state else {
            return;
        };
        let mut update = Update {
            account: t.drop.account,
            mailbox: t.drop.mailbox,
            expunge: Vec::new(),
            seen: Vec::new(),
        };
        for (i, msg) in t.drop.messages.iter().enumerate() {
            if t.deleted[i] {
                update.expunge.push(msg.uid);
            } else if t.retrieved[i] {
                update.seen.push(msg.email);
            }
        }
        if update.expunge.is_empty() && update.seen.is_empty() {
            self.reply_ok(&format!(
                "{} POP3 server signing off (maildrop unchanged)",
                self.cfg.hostname
            ));
            return self.close();
        }
        self.pending = Some(Pending::Update {
            deleted: update.expunge.len(),
        });
        self.events.push_back(Event::Update(update));
    }

    /// A client error: counted, and the connection closed after too many.
    fn bad(&mut self, text: &str) {
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.reply_err(&format!("{text}; too many bad commands, closing"));
            self.close();
        } else {
            self.reply_err(text);
        }
    }

    fn reply_ok(&mut self, text: &str) {
        self.output.extend_from_slice(b"+OK");
        if !text.is_empty() {
            self.output.push(b' ');
            self.output.extend_from_slice(text.as_bytes());
        }
        self.output.extend_from_slice(b"\r\n");
    }

    fn reply_err(&mut self, text: &str) {
        self.output.extend_from_slice(b"-ERR ");
        self.output.extend_from_slice(text.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.input.clear();
        self.input.shrink_to_fit();
        self.stream = None;
        self.pending = None;
        self.events.push_back(Event::Close);
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
