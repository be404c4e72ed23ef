//! The sans-I/O ManageSieve session (RFC 5804 §1–§2): bytes in, responses and [`Event`]s
//! out. No tokio, no clock, no store: logging in and every script operation is an
//! [`Event`] the shell performs and answers through [`Session::auth_result`],
//! [`Session::script_result`] or [`Session::tls_established`].
//!
//! Use (like the POP3 session): [`Session::feed`] bytes, call [`Session::poll_event`] until
//! it returns `None` (answering each event), write [`Session::take_output`], read more.
//!
//! One command at a time: while an event is unanswered no further input is parsed.

use crate::command::{Arg, Parsed, Parser};
use crate::limits::{MAX_AUTH_FAILURES, MAX_BAD_COMMANDS, MAX_SASL_RESPONSE};
use base64::Engine;
use bulwark_sieve::ScriptError;
use bulwark_store::AccountId;
use std::collections::VecDeque;

/// What the session needs to know about its listener; built by the shell.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The `IMPLEMENTATION` capability.
    pub implementation: String,
    /// A TLS acceptor exists, so STARTTLS can be offered.
    pub tls_available: bool,
    /// AUTHENTICATE may be used without TLS (a loopback peer, and the operator allowed it).
    pub plaintext_auth_allowed: bool,
}

/// A script operation for the shell (through `bulwark_sieve::scripts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOp {
    /// RFC 5804 §2.5.
    HaveSpace { name: String, size: u64 },
    /// RFC 5804 §2.6.
    Put { name: String, source: String },
    /// RFC 5804 §2.7.
    List,
    /// RFC 5804 §2.8; `None` deactivates.
    SetActive(Option<String>),
    /// RFC 5804 §2.9.
    Get(String),
    /// RFC 5804 §2.10.
    Delete(String),
    /// RFC 5804 §2.11.
    Rename { old: String, new: String },
}

/// The answer to a [`ScriptOp`].
#[derive(Debug)]
pub enum ScriptResult {
    Done,
    /// LISTSCRIPTS: names and whether each is the active one.
    List(Vec<(String, bool)>),
    /// GETSCRIPT: the source (`None`: no such script).
    Script(Option<String>),
    Failed(ScriptError),
}

/// The result of checking credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Success { account: AccountId, owner: String },
    InvalidCredentials,
    AppPasswordRequired,
    Throttled { retry_after_secs: u64 },
    Unavailable,
}

/// Something the shell must do; the session waits until it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write the output, run the TLS handshake, then call [`Session::tls_established`] (or
    /// close the connection).
    StartTls,
    /// Check the credentials (SASL PLAIN); answer with [`Session::auth_result`].
    Authenticate { username: String, password: String },
    /// Run a script operation for `account`; answer with [`Session::script_result`].
    Script { account: AccountId, op: ScriptOp },
    /// Write the output and close the connection.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Waiting {
    None,
    Tls,
    Auth,
    Script(ScriptOp),
}

pub struct Session {
    cfg: SessionConfig,
    parser: Parser,
    tls_active: bool,
    /// The logged-in account and its name (`OWNER`).
    login: Option<(AccountId, String)>,
    /// AUTHENTICATE without an initial response: the next line is the SASL response.
    sasl_pending: bool,
    waiting: Waiting,
    events: VecDeque<Event>,
    out: Vec<u8>,
    bad_commands: u32,
    auth_failures: u32,
    closed: bool,
}

/// A string in the wire form (RFC 5804 §4): quoted when it can be, else a literal.
pub fn wire_string(s: &str) -> String {
    if s.len() > 1024 || s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        format!("{{{}}}\r\n{s}", s.len())
    } else {
        let mut q = String::with_capacity(s.len() + 2);
        q.push('"');
        for c in s.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    }
}

impl Session {
    /// A new session; the greeting (the capability list, RFC 5804 §1.7) is in the output.
    pub fn new(cfg: SessionConfig, tls_active: bool) -> Self {
        let mut s = Session {
            cfg,
            parser: Parser::new(),
            tls_active,
            login: None,
            sasl_pending: false,
            waiting: Waiting::None,
            events: VecDeque::new(),
            out: Vec::new(),
            bad_commands: 0,
            auth_failures: 0,
            closed: false,
        };
        s.capabilities();
        s.ok(None, "Bulwark ManageSieve ready");
        s
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if !self.closed {
            self.parser.feed(bytes);
        }
    }

    /// The next event for the shell; `None` when the session needs more input (or waits).
    pub fn poll_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if self.closed || self.waiting != Waiting::None {
                return None;
            }
            let parsed = self.parser.next_parsed()?;
            self.handle(parsed);
        }
    }

    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    pub fn is_authenticated(&self) -> bool {
        self.login.is_some()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// RFC 5804 §2.2: after the handshake the server sends the capabilities again.
    pub fn tls_established(&mut self) {
        // Bytes sent in the clear after STARTTLS are not taken as commands of the TLS
        // session (the STARTTLS command injection of CVE-2011-0411).
        self.parser = Parser::new();
        self.tls_active = true;
        self.waiting = Waiting::None;
        self.capabilities();
        self.ok(None, "TLS active");
    }

    pub fn timed_out(&mut self) {
        self.bye(None, "Idle timeout");
    }

    /// The node drains: end the session between commands.
    pub fn shutdown(&mut self) {
        self.bye(Some("TRYLATER"), "Server shutting down");
    }

    pub fn auth_result(&mut self, outcome: AuthOutcome) {
        self.waiting = Waiting::None;
        match outcome {
            AuthOutcome::Success { account, owner } => {
                self.login = Some((account, owner));
                self.ok(None, "Logged in");
            }
            AuthOutcome::Throttled { retry_after_secs } => self.no(
                Some("TRYLATER"),
                &format!("Too many failed logins, try again in {retry_after_secs} s"),
            ),
            AuthOutcome::Unavailable => {
                self.no(Some("TRYLATER"), "Authentication temporarily unavailable")
            }
            AuthOutcome::InvalidCredentials | AuthOutcome::AppPasswordRequired => {
                if outcome == AuthOutcome::AppPasswordRequired {
                    // RFC 5804 §1.3 AUTH-TOO-WEAK: site policy forbids this way of logging
                    // in for this identity (a password alone, two-factor sign-in is on).
                    self.no(
                        Some("AUTH-TOO-WEAK"),
                        "This account has two-factor sign-in on: use an app password",
                    );
                } else {
                    self.no(None, "Authentication failed");
                }
                self.auth_failures += 1;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    self.bye(None, "Too many failed logins");
                }
            }
        }
    }

    pub fn script_result(&mut self, result: ScriptResult) {
        let op = std::mem::replace(&mut self.waiting, Waiting::None);
        let Waiting::Script(op) = op else {
            return;
        };
        match result {
            ScriptResult::Failed(e) => self.script_error(e),
            ScriptResult::List(scripts) => {
                for (name, active) in scripts {
                    let line = if active {
                        format!("{} ACTIVE\r\n", wire_string(&name))
                    } else {
                        format!("{}\r\n", wire_string(&name))
                    };
                    self.out.extend_from_slice(line.as_bytes());
                }
                self.ok(None, "Listscripts completed");
            }
            ScriptResult::Script(Some(source)) => {
                // RFC 5804 §2.9: the script as a string (a literal), then OK.
                self.out
                    .extend_from_slice(format!("{{{}}}\r\n", source.len()).as_bytes());
                self.out.extend_from_slice(source.as_bytes());
                self.out.extend_from_slice(b"\r\n");
                self.ok(None, "Getscript completed");
            }
            ScriptResult::Script(None) => self.no(Some("NONEXISTENT"), "There is no such script"),
            ScriptResult::Done => {
                let text = match op {
                    ScriptOp::HaveSpace { .. } => "Putscript would succeed",
                    ScriptOp::Put { .. } => "Putscript completed",
                    ScriptOp::SetActive(_) => "Setactive completed",
                    ScriptOp::Delete(_) => "Deletescript completed",
                    ScriptOp::Rename { .. } => "Renamescript completed",
                    ScriptOp::List | ScriptOp::Get(_) => "Completed",
                };
                self.ok(None, text);
            }
        }
    }

    fn script_error(&mut self, e: ScriptError) {
        let text = e.to_string();
        match e {
            ScriptError::NotFound(_) => self.no(Some("NONEXISTENT"), &text),
            ScriptError::AlreadyExists(_) => self.no(Some("ALREADYEXISTS"), &text),
            ScriptError::Active(_) => self.no(Some("ACTIVE"), &text),
            ScriptError::TooManyScripts => self.no(Some("QUOTA/MAXSCRIPTS"), &text),
            ScriptError::TooLarge => self.no(Some("QUOTA/MAXSIZE"), &text),
            ScriptError::BadName(_) | ScriptError::Invalid(_) => self.no(None, &text),
            ScriptError::Store(_) => self.no(Some("TRYLATER"), "Temporary failure, try again"),
        }
    }

    // --- responses (RFC 5804 §1.3, §4 response-oknobye) ---

    fn respond(&mut self, word: &str, code: Option<&str>, text: &str) {
        let mut line = word.to_string();
        if let Some(code) = code {
            line.push_str(" (");
            line.push_str(code);
            line.push(')');
        }
        if !text.is_empty() {
            line.push(' ');
            line.push_str(&wire_string(text));
        }
        line.push_str("\r\n");
        self.out.extend_from_slice(line.as_bytes());
    }

    fn ok(&mut self, code: Option<&str>, text: &str) {
        self.respond("OK", code, text);
    }

    fn no(&mut self, code: Option<&str>, text: &str) {
        self.respond("NO", code, text);
    }

    fn bye(&mut self, code: Option<&str>, text: &str) {
        if self.closed {
            return;
        }
        self.respond("BYE", code, text);
        self.close();
    }

    fn close(&mut self) {
        self.closed = true;
        self.events.push_back(Event::Close);
    }

    /// A refused or malformed command; too many end the connection.
    fn bad(&mut self, text: &str) {
        self.no(None, text);
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.bye(None, "Too many errors");
        }
    }

    /// RFC 5804 §1.7: the capability response.
    fn capabilities(&mut self) {
        let mut lines = vec![
            ("IMPLEMENTATION", Some(self.cfg.implementation.clone())),
            ("SIEVE", Some(bulwark_sieve::EXTENSIONS.join(" "))),
        ];
        // RFC 5804 §2.1: SASL mechanisms only where they may be used (PLAIN needs TLS).
        if self.login.is_none() && (self.tls_active || self.cfg.plaintext_auth_allowed) {
            lines.push(("SASL", Some("PLAIN".into())));
        } else {
            lines.push(("SASL", Some(String::new())));
        }
        if self.cfg.tls_available && !self.tls_active && self.login.is_none() {
            lines.push(("STARTTLS", None));
        }
        lines.push((
            "MAXREDIRECTS",
            Some(bulwark_sieve::limits::MAX_REDIRECTS.to_string()),
        ));
        if let Some((_, owner)) = &self.login {
            lines.push(("OWNER", Some(owner.clone())));
        }
        lines.push(("UNAUTHENTICATE", None));
        lines.push(("VERSION", Some("1.0".into())));
        for (name, value) in lines {
            let line = match value {
                Some(v) => format!("\"{name}\" {}\r\n", wire_string(&v)),
                None => format!("\"{name}\"\r\n"),
            };
            self.out.extend_from_slice(line.as_bytes());
        }
    }

    fn handle(&mut self, parsed: Parsed) {
        match parsed {
            Parsed::Fatal(why) => self.bye(None, &why),
            Parsed::Error(why) => {
                if self.sasl_pending {
                    self.sasl_pending = false;
                    self.no(None, "Authentication cancelled: bad SASL response");
                }
                self.bad(&why)
            }
            Parsed::Line(args) if self.sasl_pending => {
                self.sasl_pending = false;
                match args.as_slice() {
                    [Arg::Str(s)] => {
                        let s = s.clone();
                        self.sasl_response(&s)
                    }
                    _ => self.bad("Expected a SASL response string"),
                }
            }
            Parsed::Line(args) => self.command(args),
        }
    }

    fn command(&mut self, args: Vec<Arg>) {
        let mut it = args.into_iter();
        let Some(Arg::Atom(verb)) = it.next() else {
            return self.bad("Expected a command name");
        };
        let verb = verb.to_ascii_uppercase();
        let args: Vec<Arg> = it.collect();
        match (verb.as_str(), args.as_slice()) {
            ("CAPABILITY", []) => {
                self.capabilities();
                self.ok(None, "Capability completed");
            }
            ("LOGOUT", []) => {
                // RFC 5804 §2.3: OK, then the server closes the connection.
                self.ok(None, "Logout completed");
                self.close();
            }
            // RFC 5804 §2.13: the optional tag is echoed in a TAG response code.
            ("NOOP", []) => self.ok(None, "NOOP completed"),
            ("NOOP", [tag]) => match tag.bytes().map(|b| String::from_utf8_lossy(b).into_owned()) {
                Some(tag) => {
                    let code = format!("TAG {}", wire_string(&tag));
                    self.ok(Some(&code), "Done");
                }
                None => self.bad("Invalid tag"),
            },
            ("STARTTLS", []) => {
                if self.tls_active {
                    self.bad("TLS is active already")
                } else if !self.cfg.tls_available {
                    self.bad("TLS is not available")
                } else if self.login.is_some() {
                    self.bad("STARTTLS is not allowed after login")
                } else {
                    self.ok(None, "Begin TLS negotiation now");
                    self.waiting = Waiting::Tls;
                    self.events.push_back(Event::StartTls);
                }
            }
            ("AUTHENTICATE", [mech, rest @ ..]) if rest.len() <= 1 => {
                let mech = mech
                    .bytes()
                    .map(|b| String::from_utf8_lossy(b).to_ascii_uppercase());
                if self.login.is_some() {
                    self.bad("Already authenticated")
                } else if !self.tls_active && !self.cfg.plaintext_auth_allowed {
                    // RFC 5804 §2.1 / RFC 4616 §6: PLAIN only over TLS.
                    self.no(Some("ENCRYPT-NEEDED"), "Use STARTTLS first");
                } else if mech.as_deref() != Some("PLAIN") {
                    self.bad("Unsupported SASL mechanism");
                } else if let [initial] = rest {
                    match initial.bytes() {
                        Some(b) => {
                            let b = b.to_vec();
                            self.sasl_response(&b)
                        }
                        None => self.bad("SASL response too long"),
                    }
                } else {
                    // RFC 5804 §2.1: an empty challenge, the client answers with a string.
                    self.out.extend_from_slice(b"\"\"\r\n");
                    self.sasl_pending = true;
                }
            }
            ("UNAUTHENTICATE", []) => {
                // RFC 5804 §2.14.1
                if self.login.take().is_some() {
                    self.ok(None, "Unauthenticate completed");
                } else {
                    self.bad("Not authenticated");
                }
            }
            (
                "HAVESPACE" | "PUTSCRIPT" | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT"
                | "DELETESCRIPT" | "RENAMESCRIPT" | "CHECKSCRIPT",
                _,
            ) if self.login.is_none() => self.bad("Authenticate first"),
            ("CHECKSCRIPT", [script]) => match script {
                Arg::Oversized(_) => self.script_error(ScriptError::TooLarge),
                Arg::Str(s) => match bulwark_sieve::scripts::check(s) {
                    Ok(_) => self.ok(None, "Script is valid"),
                    Err(e) => self.script_error(e),
                },
                Arg::Atom(_) => self.bad("Expected a string"),
            },
            ("PUTSCRIPT", [name, script]) => {
                let Some(name) = self.name(name) else { return };
                match script {
                    Arg::Oversized(_) => self.script_error(ScriptError::TooLarge),
                    Arg::Str(s) => match String::from_utf8(s.clone()) {
                        Ok(source) => self.op(ScriptOp::Put { name, source }),
                        Err(_) => self.no(None, "The script is not UTF-8"),
                    },
                    Arg::Atom(_) => self.bad("Expected a string"),
                }
            }
            ("HAVESPACE", [name, Arg::Atom(size)]) => {
                let Some(name) = self.name(name) else { return };
                match size.parse::<u64>() {
                    Ok(size) => self.op(ScriptOp::HaveSpace { name, size }),
                    Err(_) => self.bad("Expected a number"),
                }
            }
            ("LISTSCRIPTS", []) => self.op(ScriptOp::List),
            ("SETACTIVE", [name]) => {
                if let Some(name) = self.name(name) {
                    // RFC 5804 §2.8: the empty name deactivates.
                    let name = (!name.is_empty()).then_some(name);
                    self.op(ScriptOp::SetActive(name));
                }
            }
            ("GETSCRIPT", [name]) => {
                if let Some(name) = self.name(name) {
                    self.op(ScriptOp::Get(name));
                }
            }
            ("DELETESCRIPT", [name]) => {
                if let Some(name) = self.name(name) {
                    self.op(ScriptOp::Delete(name));
                }
            }
            ("RENAMESCRIPT", [old, new]) => {
                let Some(old) = self.name(old) else { return };
                let Some(new) = self.name(new) else { return };
                self.op(ScriptOp::Rename { old, new });
            }
            (
                "CAPABILITY" | "LOGOUT" | "NOOP" | "STARTTLS" | "AUTHENTICATE" | "UNAUTHENTICATE"
                | "HAVESPACE" | "PUTSCRIPT" | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT"
                | "DELETESCRIPT" | "RENAMESCRIPT" | "CHECKSCRIPT",
                _,
            ) => self.bad(&format!("Wrong arguments for {verb}")),
            _ => self.bad("Unknown command"),
        }
    }

    /// A script name argument (RFC 5804 §1.6: a string of UTF-8).
    fn name(&mut self, arg: &Arg) -> Option<String> {
        match arg {
            Arg::Str(s) => match String::from_utf8(s.clone()) {
                Ok(name) => Some(name),
                Err(_) => {
                    self.bad("A script name must be UTF-8");
                    None
                }
            },
            _ => {
                self.bad("Expected a script name string");
                None
            }
        }
    }

    fn op(&mut self, op: ScriptOp) {
        let Some((account, _)) = &self.login else {
            return self.bad("Authenticate first");
        };
        self.events.push_back(Event::Script {
            account: *account,
            op: op.clone(),
        });
        self.waiting = Waiting::Script(op);
    }

    /// RFC 4616: base64 of `authzid NUL authcid NUL passwd`.
    fn sasl_response(&mut self, b64: &[u8]) {
        if b64 == b"*" {
            // RFC 5804 §2.1: the client cancels.
            return self.no(None, "Authentication cancelled");
        }
        if b64.len() > MAX_SASL_RESPONSE {
            return self.bad("SASL response too long");
        }
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return self.bad("Invalid base64 in the SASL response");
        };
        let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
        let [authzid, authcid, password] = parts.as_slice() else {
            return self.bad("Invalid SASL PLAIN response");
        };
        let (Ok(authzid), Ok(username), Ok(password)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(password),
        ) else {
            return self.bad("Invalid SASL PLAIN response");
        };
        if !authzid.is_empty() && authzid != username {
            return self.no(None, "Acting as another user is not supported");
        }
        self.waiting = Waiting::Auth;
        self.events.push_back(Event::Authenticate {
            username: username.to_string(),
            password: password.to_string(),
        });
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
