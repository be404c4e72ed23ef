//! The command parser (RFC 5804 §4): a command is an atom (the verb) followed by strings and
//! numbers, ended by CRLF. Strings are quoted (`"..."` with `\\` and `\"` escapes) or
//! literals. Bytes arrive in any pieces; the parser keeps at most [`MAX_LINE`] bytes of a
//! command plus one literal of at most [`MAX_LITERAL`] bytes. A larger literal is read and
//! thrown away (the command then carries [`Arg::Oversized`]), so a 1 MB PUTSCRIPT is refused
//! without being buffered.
//!
//! Literals: RFC 5804 §4 defines `literal-c2s = "{" number "+}" CRLF *OCTET` for the client
//! and `"{" number "}"` for the server; ManageSieve has no continuation request for literals
//! (unlike IMAP), so a `{n}` from a client is taken like `{n+}`: the server sends nothing and
//! reads `n` octets.

use crate::limits::{MAX_DISCARDED_LITERAL, MAX_LINE, MAX_LITERAL};

/// One argument of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// An atom (a verb, a number, `ACTIVE`…), as sent.
    Atom(String),
    /// A quoted string or a literal, unescaped.
    Str(Vec<u8>),
    /// A literal larger than [`MAX_LITERAL`]: its size; the octets were discarded.
    Oversized(u64),
}

impl Arg {
    /// The string value (a quoted string, a literal or an atom).
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(a) => Some(a.as_bytes()),
            Arg::Str(s) => Some(s),
            Arg::Oversized(_) => None,
        }
    }
}

/// What the parser found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete line: its arguments, the first normally the verb.
    Line(Vec<Arg>),
    /// A malformed line (already skipped up to its end): the reason.
    Error(String),
    /// Input the server cannot go on from (the connection should end with `BYE`).
    Fatal(String),
}

#[derive(Debug)]
enum Mode {
    Tokens,
    Literal {
        remaining: usize,
        data: Vec<u8>,
    },
    Skip {
        size: u64,
        remaining: u64,
    },
    /// A syntax error: skip to the end of the line, then report it.
    Junk(String),
    Dead,
}

/// The incremental parser.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    args: Vec<Arg>,
    line_bytes: usize,
    mode: Mode,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

fn is_atom_char(b: u8) -> bool {
    // RFC 5804 §4 atom: ATOM-CHAR = any CHAR except atom-specials ("(" / ")" / "{" / SP /
    // CTL / list-wildcards / quoted-specials).
    b.is_ascii_graphic() && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
}

impl Parser {
    pub fn new() -> Self {
        Parser {
            buf: Vec::new(),
            args: Vec::new(),
            line_bytes: 0,
            mode: Mode::Tokens,
        }
    }

    /// Adds received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.mode, Mode::Dead) {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Bytes received but not parsed yet (a pipelining client).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn junk(&mut self, why: &str) {
        self.mode = Mode::Junk(why.to_string());
    }

    fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
        self.line_bytes = self.line_bytes.saturating_add(n);
    }

    /// The next complete line, error or fatal error; `None` until more bytes arrive.
    pub fn next_parsed(&mut self) -> Option<Parsed> {
        loop {
            if self.line_bytes > MAX_LINE && matches!(self.mode, Mode::Tokens) {
                self.junk("command line too long");
            }
            match &mut self.mode {
                Mode::Dead => return None,
                Mode::Literal { remaining, data } => {
                    let n = (*remaining).min(self.buf.len());
                    data.extend_from_slice(self.buf.get(..n).unwrap_or_default());
                    self.buf.drain(..n);
                    *remaining -= n;
                    if *remaining > 0 {
                        return None;
                    }
                    let data = std::mem::take(data);
                    self.args.push(Arg::Str(data));
                    self.mode = Mode::Tokens;
                }
                Mode::Skip { size, remaining } => {
                    let n = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(self.buf.len());
                    self.buf.drain(..n);
                    *remaining -= n as u64;
                    if *remaining > 0 {
                        return None;
                    }
                    let size = *size;
                    self.args.push(Arg::Oversized(size));
                    self.mode = Mode::Tokens;
                }
                Mode::Junk(why) => {
                    let why = why.clone();
                    match self.buf.iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            self.buf.drain(..=i);
                            self.reset_line();
                            return Some(Parsed::Error(why));
                        }
                        None => {
                            self.buf.clear();
                            return None;
                        }
                    }
                }
                Mode::Tokens => {
                    if let Some(done) = self.token()? {
                        return Some(done);
                    }
                }
            }
        }
    }

    fn reset_line(&mut self) {
        self.args.clear();
        self.line_bytes = 0;
        self.mode = Mode::Tokens;
    }

    /// Parses one token. `None`: need more bytes; `Some(None)`: a token was taken;
    /// `Some(Some(p))`: a line ended.
    fn token(&mut self) -> Option<Option<Parsed>> {
        let first = *self.buf.first()?;
        match first {
            b' ' => {
                self.consume(1);
                Some(None)
            }
            b'\n' => {
                self.consume(1);
                Some(self.end_line())
            }
            b'\r' => {
                let second = *self.buf.get(1)?;
                if second == b'\n' {
                    self.consume(2);
                    Some(self.end_line())
                } else {
                    self.junk("CR without LF");
                    Some(None)
                }
            }
            b'"' => self.quoted(),
            b'{' => self.literal(),
            b if is_atom_char(b) => {
                let end = self.buf.iter().position(|&b| !is_atom_char(b));
                let Some(end) = end else {
                    if self.line_bytes + self.buf.len() > MAX_LINE {
                        self.junk("command line too long");
                        return Some(None);
                    }
                    return None;
                };
                let atom =
                    String::from_utf8_lossy(self.buf.get(..end).unwrap_or_default()).into_owned();
                self.consume(end);
                match self.buf.first() {
                    Some(b' ' | b'\r' | b'\n') => {
                        self.args.push(Arg::Atom(atom));
                    }
                    _ => self.junk("invalid character in an atom"),
                }
                Some(None)
            }
            _ => {
                self.junk("syntax error");
                Some(None)
            }
        }
    }

    fn end_line(&mut self) -> Option<Parsed> {
        let args = std::mem::take(&mut self.args);
        self.reset_line();
        if args.is_empty() {
            // An empty line: nothing to answer.
            return None;
        }
        Some(Parsed::Line(args))
    }

    /// RFC 5804 §4 quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR is any UTF-8 except
    /// CR, LF, NUL (and `"`/`\` escaped).
    fn quoted(&mut self) -> Option<Option<Parsed>> {
        let mut out = Vec::new();
        let mut i = 1;
        loop {
            let Some(&b) = self.buf.get(i) else {
                if self.line_bytes + self.buf.len() > MAX_LINE {
                    self.junk("command line too long");
                    return Some(None);
                }
                return None;
            };
            match b {
                b'"' => break,
                b'\\' => {
                    let next = *self.buf.get(i + 1)?;
                    if next != b'"' && next != b'\\' {
                        self.junk("invalid escape in a quoted string");
                        return Some(None);
                    }
                    out.push(next);
                    i += 2;
                }
                b'\r' | b'\n' | 0 => {
                    self.junk("unterminated quoted string");
                    return Some(None);
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.consume(i + 1);
        self.args.push(Arg::Str(out));
        Some(None)
    }

    /// `{n+}` CRLF or `{n}` CRLF, then n octets.
    fn literal(&mut self) -> Option<Option<Parsed>> {
        // "{" up to 20 digits "+}" CRLF
        const MAX_HEADER: usize = 1 + 20 + 2 + 2;
        let Some(close) = self.buf.iter().position(|&b| b == b'}') else {
            if self.buf.len() > MAX_HEADER {
                self.junk("invalid literal");
                return Some(None);
            }
            return None;
        };
        if close > MAX_HEADER {
            self.junk("invalid literal");
            return Some(None);
        }
        let inner = self.buf.get(1..close).unwrap_or_default();
        let digits = inner.strip_suffix(b"+").unwrap_or(inner);
        let size = if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(digits)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        } else {
            None
        };
        let Some(size) = size else {
            self.junk("invalid literal");
            return Some(None);
        };
        let after = self.buf.get(close + 1..)?;
        let eol = if after.starts_with(b"\r\n") {
            2
        } else if after.starts_with(b"\n") {
            1
        } else if after.is_empty() || after == b"\r" {
            return None;
        } else {
            self.junk("a literal must be followed by CRLF");
            return Some(None);
        };
        self.consume(close + 1 + eol);
        if size > MAX_DISCARDED_LITERAL {
            self.mode = Mode::Dead;
            self.buf.clear();
            return Some(Some(Parsed::Fatal(format!(
                "literal of {size} octets is too large"
            ))));
        }
        self.mode = match usize::try_from(size) {
            Ok(n) if n <= MAX_LITERAL => Mode::Literal {
                remaining: n,
                data: Vec::with_capacity(n.min(64 * 1024)),
            },
            _ => Mode::Skip {
                size,
                remaining: size,
            },
        };
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Vec<Parsed> {
        let mut p = Parser::new();
        p.feed(input);
        std::iter::from_fn(|| p.next_parsed()).collect()
    }

    fn parse_bytewise(input: &[u8]) -> Vec<Parsed> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for b in input {
            p.feed(std::slice::from_ref(b));
            while let Some(x) = p.next_parsed() {
                out.push(x);
            }
        }
        out
    }

    fn atom(s: &str) -> Arg {
        Arg::Atom(s.into())
    }
    fn st(s: &str) -> Arg {
        Arg::Str(s.as_bytes().to_vec())
    }

    #[test]
    fn atoms_quoted_and_literals() {
        let input = b"PUTSCRIPT \"my \\\"x\\\\\" {5+}\r\nhello\r\nHAVESPACE \"a\" 100\r\nGETSCRIPT {1}\r\nz\r\n";
        let want = vec![
            Parsed::Line(vec![atom("PUTSCRIPT"), st("my \"x\\"), st("hello")]),
            Parsed::Line(vec![atom("HAVESPACE"), st("a"), atom("100")]),
            Parsed::Line(vec![atom("GETSCRIPT"), st("z")]),
        ];
        assert_eq!(parse_all(input), want);
        assert_eq!(parse_bytewise(input), want);
    }

    #[test]
    fn literal_may_hold_crlf_and_quotes() {
        let got = parse_all(b"CHECKSCRIPT {7+}\r\na\r\n\"b\"\\\r\n");
        assert_eq!(
            got,
            vec![Parsed::Line(vec![
                atom("CHECKSCRIPT"),
                Arg::Str(b"a\r\n\"b\"\\".to_vec())
            ])]
        );
    }

    #[test]
    fn oversized_literal_is_discarded_not_buffered() {
        let size = MAX_LITERAL + 10;
        let mut p = Parser::new();
        p.feed(format!("PUTSCRIPT \"big\" {{{size}+}}\r\n").as_bytes());
        assert_eq!(p.next_parsed(), None);
        let chunk = vec![b'x'; 4096];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            p.feed(&chunk[..n]);
            left -= n;
            assert_eq!(p.next_parsed(), None);
            assert!(p.buffered() == 0);
        }
        p.feed(b"\r\n");
        assert_eq!(
            p.next_parsed(),
            Some(Parsed::Line(vec![
                atom("PUTSCRIPT"),
                st("big"),
                Arg::Oversized(size as u64)
            ]))
        );
    }

    #[test]
    fn absurd_literal_is_fatal() {
        let got = parse_all(b"PUTSCRIPT \"a\" {99999999999999999+}\r\n");
        assert!(matches!(got.as_slice(), [Parsed::Fatal(_)]));
        let got = parse_all(b"PUTSCRIPT \"a\" {999999999999999999999999+}\r\nNOOP\r\n");
        assert!(matches!(got.first(), Some(Parsed::Error(_))));
    }

    #[test]
    fn hostile_lines_become_errors_and_parsing_goes_on() {
        for bad in [
            &b"NOOP \"unterminated\r\n"[..],
            b"NOOP \"bad \\n escape\"\r\n",
            b"NOOP {abc+}\r\n",
            b"NOOP {+}\r\n",
            b"NOOP {5+}x\r\n",
            b"NO(OP\r\n",
            b"\x00\x01\r\n",
            b"NOOP\rX\r\n",
        ] {
            let mut input = bad.to_vec();
            input.extend_from_slice(b"NOOP\r\n");
            let got = parse_all(&input);
            assert!(
                matches!(got.as_slice(), [Parsed::Error(_), Parsed::Line(l)] if l == &vec![atom("NOOP")]),
                "{:?}: {got:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn overlong_lines_are_bounded() {
        let mut p = Parser::new();
        p.feed(b"NOOP \"");
        for _ in 0..100 {
            p.feed(&[b'a'; 1024]);
            assert_eq!(p.next_parsed(), None);
            assert!(p.buffered() <= MAX_LINE + 1024);
        }
        p.feed(b"\"\r\nLOGOUT\r\n");
        assert!(matches!(p.next_parsed(), Some(Parsed::Error(_))));
        assert_eq!(p.next_parsed(), Some(Parsed::Line(vec![atom("LOGOUT")])));

        let mut p = Parser::new();
        for _ in 0..100 {
            p.feed(&[b'A'; 1024]);
            assert_eq!(p.next_parsed(), None);
            assert!(p.buffered() <= MAX_LINE + 1024);
        }
        let mut p = Parser::new();
        for _ in 0..100 {
            p.feed(b"\"a\" ");
        }
        for _ in 0..30 {
            p.feed(&[b' '; 1024]);
        }
        assert_eq!(p.next_parsed(), None);
    }

    #[test]
    fn empty_lines_are_ignored() {
        assert_eq!(
            parse_all(b"\r\n\r\n  \r\nNOOP\n"),
            vec![Parsed::Line(vec![atom("NOOP")])]
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u32 = 12345;
        for _ in 0..200 {
            let mut input = Vec::new();
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let pick = b"{}+\"\\ \r\nA0123456789x\x00\xff";
                input.push(pick[(x as usize) % pick.len()]);
            }
            let _ = parse_all(&input);
            let _ = parse_bytewise(&input);
        }
    }
}
