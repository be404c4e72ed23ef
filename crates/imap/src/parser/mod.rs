//! Our own sans-I/O IMAP command parser.
//!
//! Why not `imap-codec` (the field's crate)? We need exact control of three things it
//! decides for us: (1) limits — per-line, per-literal (a smaller cap outside APPEND),
//! per-command, literal count, SEARCH depth — checked *before* bytes are buffered;
//! (2) the words of every `BAD` and the choice of `NO [TOOBIG]` vs `BAD` vs `BYE` for an
//! oversize literal, which our tests pin down; (3) our extension set (LITERAL+, QRESYNC
//! SELECT parameters, LIST-EXTENDED/LIST-STATUS, ESEARCH/SEARCHRES `$`, CONDSTORE
//! modifiers, BINARY) with the AST shaped for our session rather than mapped from a
//! generic one. The grammar we accept is small enough (~1.5k lines) to own and fuzz.
//!
//! Use: [`Parser::feed`] bytes from the socket, then call [`Parser::next_event`] until it
//! returns [`Event::NeedMoreData`]. [`Event::NeedLiteral`] with `non_sync: false` means
//! "send `+ Ready` now" (RFC 9051 §7.5). For AUTHENTICATE continuations and IDLE's
//! `DONE`, the caller reads raw lines with [`Parser::next_line`].

pub mod ast;
mod commands;
mod fetch;
mod lexer;
mod search;
#[cfg(test)]
mod tests;

pub use ast::*;
pub(crate) use commands::normalize_inbox;
pub use fetch::parse_section;

use crate::limits::{
    MAX_COMMAND_OVERHEAD, MAX_LINE_LEN, MAX_LITERALS_PER_COMMAND, MAX_TAG_LEN,
    PRE_AUTH_MAX_COMMAND, PRE_AUTH_MAX_LITERAL,
};
use lexer::is_tag_char;

/// How the server must answer a command that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Tagged (or untagged without a tag) `BAD`.
    Bad,
    /// Tagged `NO` (used for `[TOOBIG]` on APPEND).
    No,
    /// The connection cannot continue (`* BYE`, then close).
    Fatal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The command's tag when it could be read.
    pub tag: Option<String>,
    pub kind: ErrorKind,
    /// Response code without brackets, e.g. `TOOBIG`.
    pub code: Option<&'static str>,
    pub text: String,
}

impl ParseError {
    pub(crate) fn syntax(text: &str) -> Self {
        ParseError {
            tag: None,
            kind: ErrorKind::Bad,
            code: None,
            text: text.to_string(),
        }
    }
    pub(crate) fn expected(what: &str) -> Self {
        Self::syntax(&format!("expected {what}"))
    }
    fn with_tag(mut self, tag: Option<String>) -> Self {
        self.tag = tag;
        self
    }
}

/// What the parser wants or produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    NeedMoreData,
    /// A literal announcement was accepted; for a synchronizing literal the caller must
    /// send a continuation request before the client sends the bytes.
    NeedLiteral {
        size: u64,
        non_sync: bool,
    },
    Command(Command),
    Error(ParseError),
}

/// A raw line for AUTHENTICATE continuations and IDLE `DONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    NeedMoreData,
    /// The line without its CRLF.
    Line(Vec<u8>),
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Line,
    Literal {
        remaining: usize,
    },
    /// Discarding the rest of an over-long line.
    SkipLine,
}

/// Buffer capacity the parser keeps between commands.
const KEPT_CAPACITY: usize = 1024;

/// Incremental framing plus parsing. Holds at most one command line (≤ [`MAX_LINE_LEN`])
/// of undecoded input plus the current command (≤ literal limit + overhead).
#[derive(Debug)]
pub struct Parser {
    input: Vec<u8>,
    start: usize,
    cmd: Vec<u8>,
    frame: Frame,
    literals: usize,
    max_literal: usize,
    /// Before authentication only small literals are accepted ([`PRE_AUTH_MAX_LITERAL`]).
    pre_auth: bool,
}

impl Parser {
    /// `max_literal` caps APPEND literals (the message size limit); other commands'
    /// literals are capped at [`MAX_LINE_LEN`].
    pub fn new(max_literal: usize) -> Self {
        Parser {
            input: Vec::new(),
            start: 0,
            cmd: Vec::new(),
            frame: Frame::Line,
            literals: 0,
            max_literal,
            pre_auth: false,
        }
    }

    /// Whether the session is not authenticated yet: then every literal is capped at
    /// [`PRE_AUTH_MAX_LITERAL`] and a whole command at [`PRE_AUTH_MAX_COMMAND`], so an
    /// anonymous client cannot make the server buffer a message (issue 13, item 5). The
    /// shell sets it before each command.
    pub fn set_pre_auth(&mut self, pre_auth: bool) {
        self.pre_auth = pre_auth;
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start >= self.input.len() / 2 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.extend_from_slice(data);
    }

    /// Throws away buffered input (after STARTTLS: bytes sent before the handshake must not
    /// be executed, RFC 9051 §6.2.1 / CVE-2011-0411 class).
    pub fn discard_buffered(&mut self) {
        self.input.clear();
        self.start = 0;
        self.reset_command();
    }

    /// Between commands: drops consumed input and returns buffer capacity a large command
    /// (an APPEND literal) left behind, so an idle connection holds little memory.
    pub fn release_memory(&mut self) {
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.shrink_to(KEPT_CAPACITY);
        if self.cmd.is_empty() {
            self.cmd.shrink_to(KEPT_CAPACITY);
        }
    }

    /// After [`Event::NeedLiteral`] for a synchronizing literal the shell will not take:
    /// drops the command (the client sends no literal without `+`) and returns its tag, for
    /// the tagged refusal.
    pub fn refuse_literal(&mut self) -> Option<String> {
        let tag = extract_tag(&self.cmd);
        self.reset_command();
        tag
    }

    /// Bytes buffered but not yet consumed.
    pub fn buffered(&self) -> usize {
        self.input.len() - self.start
    }

    fn reset_command(&mut self) {
        self.cmd.clear();
        self.frame = Frame::Line;
        self.literals = 0;
    }

    fn pending(&self) -> &[u8] {
        &self.input[self.start..]
    }

    /// Reads one raw line (outside command framing).
    pub fn next_line(&mut self) -> LineEvent {
        let pending = self.pending();
        match pending.iter().position(|&c| c == b'\n') {
            Some(i) => {
                let mut line = pending[..i].to_vec();
                self.start += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > MAX_LINE_LEN {
                    LineEvent::TooLong
                } else {
                    LineEvent::Line(line)
                }
            }
            None if pending.len() > MAX_LINE_LEN => {
                self.start = self.input.len();
                self.frame = Frame::SkipLine;
                LineEvent::TooLong
            }
            None => LineEvent::NeedMoreData,
        }
    }

    pub fn next_event(&mut self) -> Event {
        loop {
            match self.frame {
                Frame::SkipLine => {
                    let pending = self.pending();
                    match pending.iter().position(|&c| c == b'\n') {
                        Some(i) => {
                            self.start += i + 1;
                            self.reset_command();
                        }
                        None => {
                            self.start = self.input.len();
                            return Event::NeedMoreData;
                        }
                    }
                }
                Frame::Literal { remaining } => {
                    let take = remaining.min(self.input.len() - self.start);
                    if take > 0 {
                        // Allocated once, when its bytes arrive (the shell accounted for it
                        // at `NeedLiteral`); no doubling beyond the announced size.
                        self.cmd.reserve_exact(remaining);
                    }
                    self.cmd
                        .extend_from_slice(&self.input[self.start..self.start + take]);
                    self.start += take;
                    if take < remaining {
                        self.frame = Frame::Literal {
                            remaining: remaining - take,
                        };
                        return Event::NeedMoreData;
                    }
                    self.frame = Frame::Line;
                }
                Frame::Line => return self.next_in_line(),
            }
        }
    }

    fn next_in_line(&mut self) -> Event {
        let pending = self.pending();
        let Some(i) = pending.iter().position(|&c| c == b'\n') else {
            if pending.len() > MAX_LINE_LEN {
                let tag = extract_tag(if self.cmd.is_empty() {
                    pending
                } else {
                    &self.cmd
                });
                self.start = self.input.len();
                self.frame = Frame::SkipLine;
                return Event::Error(line_too_long(tag));
            }
            return Event::NeedMoreData;
        };
        let line_len = i + 1;
        if line_len > MAX_LINE_LEN {
            let tag = extract_tag(if self.cmd.is_empty() {
                pending
            } else {
                &self.cmd
            });
            self.start += line_len;
            self.reset_command();
            return Event::Error(line_too_long(tag));
        }
        let line_start = self.cmd.len();
        self.cmd
            .extend_from_slice(&self.input[self.start..self.start + line_len]);
        self.start += line_len;
        match literal_announcement(&self.cmd[line_start..]) {
            None => {
                let mut cmd = std::mem::take(&mut self.cmd);
                self.reset_command();
                // Strip exactly the final line terminator (a literal may end in CRLF).
                if cmd.last() == Some(&b'\n') {
                    cmd.pop();
                }
                if cmd.last() == Some(&b'\r') {
                    cmd.pop();
                }
                Event::from_parse(parse_command(&cmd))
            }
            Some((size, non_sync)) => self.accept_literal(size, non_sync),
        }
    }

    fn accept_literal(&mut self, size: u64, non_sync: bool) -> Event {
        let (tag, is_append) = command_head(&self.cmd);
        if self.pre_auth {
            return self.accept_pre_auth_literal(tag, size, non_sync);
        }
        let limit = if is_append {
            self.max_literal
        } else {
            MAX_LINE_LEN
        };
        self.literals += 1;
        let total = (self.cmd.len() as u64).saturating_add(size);
        let too_big =
            size > limit as u64 || total > (self.max_literal + MAX_COMMAND_OVERHEAD) as u64;
        let error = if self.literals > MAX_LITERALS_PER_COMMAND {
            Some(ParseError::syntax("too many literals in one command"))
        } else if too_big && non_sync {
            // RFC 7888 §4: the client sends the bytes anyway; we cannot resynchronise
            // without reading them, so we refuse and close.
            Some(ParseError {
                tag: None,
                kind: ErrorKind::Fatal,
                code: Some("TOOBIG"),
                text: format!("Literal of {size} octets exceeds the limit of {limit} octets"),
            })
        } else if too_big && is_append {
            // RFC 9051 §7.1: TOOBIG; the client never sends the literal (no `+`).
            Some(ParseError {
                tag: None,
                kind: ErrorKind::No,
                code: Some("TOOBIG"),
                text: format!("Message of {size} octets exceeds the limit of {limit} octets"),
            })
        } else if too_big {
            Some(ParseError {
                tag: None,
                kind: ErrorKind::Bad,
                code: Some("TOOBIG"),
                text: format!("Literal of {size} octets exceeds the limit of {limit} octets"),
            })
        } else {
            None
        };
        if let Some(e) = error {
            self.reset_command();
            return Event::Error(e.with_tag(tag));
        }
        // Checked above: size ≤ limit, which fits in usize.
        self.frame = Frame::Literal {
            remaining: size as usize,
        };
        Event::NeedLiteral { size, non_sync }
    }
}

impl Parser {
    /// Before authentication: small literals only. RFC 9051 §7.5 lets the server refuse a
    /// synchronizing literal instead of sending `+` (tagged BAD, the client sends nothing);
    /// a non-synchronizing one is on its way already (RFC 7888 §4), so the server answers BAD
    /// and closes the connection rather than read it.
    fn accept_pre_auth_literal(&mut self, tag: Option<String>, size: u64, non_sync: bool) -> Event {
        self.literals += 1;
        let total = (self.cmd.len() as u64).saturating_add(size);
        if size <= PRE_AUTH_MAX_LITERAL as u64
            && total <= PRE_AUTH_MAX_COMMAND as u64
            && self.literals <= MAX_LITERALS_PER_COMMAND
        {
            self.frame = Frame::Literal {
                remaining: size as usize,
            };
            return Event::NeedLiteral { size, non_sync };
        }
        self.reset_command();
        Event::Error(
            ParseError {
                tag: None,
                kind: if non_sync {
                    ErrorKind::Fatal
                } else {
                    ErrorKind::Bad
                },
                code: Some("TOOBIG"),
                text: format!(
                    "Literal of {size} octets is too large before authentication \
                     (limit {PRE_AUTH_MAX_LITERAL} octets); log in first"
                ),
            }
            .with_tag(tag),
        )
    }
}

impl Event {
    fn from_parse(r: Result<Command, ParseError>) -> Event {
        match r {
            Ok(c) => Event::Command(c),
            Err(e) => Event::Error(e),
        }
    }
}

fn line_too_long(tag: Option<String>) -> ParseError {
    ParseError {
        tag,
        kind: ErrorKind::Bad,
        code: None,
        text: format!("Command line too long (limit {MAX_LINE_LEN} octets)"),
    }
}

/// `{N}` / `{N+}` / `~{N}` at the end of a line (before CRLF).
fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let mut line = line.strip_suffix(b"\n")?;
    if let Some(l) = line.strip_suffix(b"\r") {
        line = l;
    }
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&c| c == b'{')?;
    let mut digits = &inner[open + 1..];
    let non_sync = digits.last() == Some(&b'+');
    if non_sync {
        digits = &digits[..digits.len() - 1];
    }
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((size, non_sync))
}

/// The tag of a (possibly partial) command, if it is a valid tag.
fn extract_tag(cmd: &[u8]) -> Option<String> {
    let end = cmd
        .iter()
        .position(|&c| c == b' ' || c == b'\r' || c == b'\n')
        .unwrap_or(cmd.len());
    let tag = &cmd[..end];
    if tag.is_empty() || tag.len() > MAX_TAG_LEN || !tag.iter().all(|&c| is_tag_char(c)) {
        return None;
    }
    String::from_utf8(tag.to_vec()).ok()
}

/// `(tag, carries a message)` of a partial command: APPEND, and REPLACE / UID REPLACE
/// (RFC 8508 §3: its literal is a message, with the same size limit).
fn command_head(cmd: &[u8]) -> (Option<String>, bool) {
    let tag = extract_tag(cmd);
    let mut words = cmd.split(|&c| c == b' ');
    words.next();
    let first = words.next();
    let is_append = first.is_some_and(|w| {
        w.eq_ignore_ascii_case(b"APPEND")
            || w.eq_ignore_ascii_case(b"REPLACE")
            || (w.eq_ignore_ascii_case(b"UID")
                && words
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"REPLACE")))
    });
    (tag, is_append)
}

/// Parses one complete command (lines and literals, without the final CRLF).
pub fn parse_command(cmd: &[u8]) -> Result<Command, ParseError> {
    let tag_end = cmd.iter().position(|&b| b == b' ').unwrap_or(cmd.len());
    let tag = &cmd[..tag_end];
    if tag.is_empty() {
        return Err(ParseError::syntax("Missing command tag"));
    }
    if tag.len() > MAX_TAG_LEN {
        return Err(ParseError::syntax(&format!(
            "Tag too long (limit {MAX_TAG_LEN} octets)"
        )));
    }
    if !tag.iter().all(|&b| is_tag_char(b)) {
        return Err(ParseError::syntax("Invalid characters in command tag"));
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let mut c = lexer::Cursor::new(&cmd[tag_end..]);
    if c.eof() || c.sp().is_err() || c.eof() {
        return Err(ParseError::syntax("Missing command name").with_tag(Some(tag)));
    }
    let name = match c.keyword("command name") {
        Ok(n) => n,
        Err(_) => return Err(ParseError::syntax("Invalid command name").with_tag(Some(tag))),
    };
    let display_name = if name == "UID" {
        let rest = &cmd[tag_end..];
        let word = rest.split(|&b| b == b' ').nth(2).unwrap_or_default();
        format!("UID {}", String::from_utf8_lossy(word).to_ascii_uppercase())
    } else {
        name.clone()
    };
    commands::parse_body(&name, &mut c)
        .map(|body| Command {
            tag: tag.clone(),
            body,
        })
        .map_err(|e| {
            let text = if e.text.starts_with("Unknown command")
                || e.text.starts_with("Unknown UID command")
            {
                e.text
            } else {
                format!("Syntax error in {display_name}: {}", e.text)
            };
            ParseError {
                tag: Some(tag),
                text,
                ..e
            }
        })
}
