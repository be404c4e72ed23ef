//! SMTP reply parsing (RFC 5321 §4.2): `ddd-text` continuation lines, then `ddd text`.
//! Sans-I/O: the client feeds lines, this module says when a reply is complete.

use std::fmt;

/// Longest reply line we accept (RFC 5321 §4.5.3.1.5 says 512; servers send longer).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply (EHLO lists a dozen extensions).
pub const MAX_REPLY_LINES: usize = 128;

/// One complete server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The text of each line without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// First digit: 2 positive, 3 intermediate, 4 transient, 5 permanent.
    pub fn class(&self) -> u16 {
        self.code / 100
    }
    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }
    pub fn is_transient(&self) -> bool {
        self.class() == 4
    }
    pub fn is_permanent(&self) -> bool {
        self.class() == 5
    }
    /// All lines joined with a space: `550 5.1.1 no such user`.
    pub fn one_line(&self) -> String {
        let text = self.lines.join(" ");
        let text = text.trim();
        if text.is_empty() {
            self.code.to_string()
        } else {
            format!("{} {}", self.code, text)
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.one_line())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    #[error("reply line longer than {MAX_REPLY_LINE} bytes")]
    LineTooLong,
    #[error("reply with more than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    #[error("continuation line with code {got} inside a reply with code {expected}")]
    CodeChanged { expected: u16, got: u16 },
}

/// Accumulates the lines of one reply.
#[derive(Debug, Default)]
pub struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Feeds one line (with or without its CRLF). Returns the reply when this line was its last.
    pub fn feed(&mut self, raw: &[u8]) -> Result<Option<Reply>, ReplyError> {
        if raw.len() > MAX_REPLY_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches(['\r', '\n']);
        let bytes = line.as_bytes();
        if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
            return Err(ReplyError::Malformed(line.chars().take(80).collect()));
        }
        let code: u16 = line[..3]
            .parse()
            .map_err(|_| ReplyError::Malformed(line.into()))?;
        if !(200..600).contains(&code) && !(100..200).contains(&code) {
            return Err(ReplyError::Malformed(line.chars().take(80).collect()));
        }
        if let Some(expected) = self.code
            && expected != code
        {
            return Err(ReplyError::CodeChanged {
                expected,
                got: code,
            });
        }
        self.code = Some(code);
        let (last, text) = match bytes.get(3) {
            None => (true, ""),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(ReplyError::Malformed(line.chars().take(80).collect())),
        };
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        self.lines.push(text.to_string());
        if last {
            let lines = std::mem::take(&mut self.lines);
            self.code = None;
            return Ok(Some(Reply { code, lines }));
        }
        Ok(None)
    }
}

/// What the server said it supports in its EHLO reply (RFC 5321 §4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pub starttls: bool,
    /// RFC 1870: `Some(0)` means advertised without a fixed limit.
    pub size: Option<u64>,
    /// RFC 6152.
    pub eight_bit_mime: bool,
    /// RFC 6531.
    pub smtputf8: bool,
}

impl Extensions {
    /// Reads the keyword lines after the greeting line of an EHLO reply.
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "STARTTLS" => ext.starttls = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                _ => {}
            }
        }
        ext
    }
}

/// The enhanced status code (RFC 3463) at the start of a reply text (one rule for the
/// client and the bounce builder).
pub use bulwark_core::dsn::enhanced_status;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_reply_is_collected_until_the_space_line() {
        let mut p = ReplyParser::default();
        assert_eq!(p.feed(b"250-mx.example.test\r\n"), Ok(None));
        assert_eq!(p.feed(b"250-SIZE 1000\r\n"), Ok(None));
        let reply = p.feed(b"250 STARTTLS\r\n").ok().flatten();
        let reply = reply.as_ref();
        assert_eq!(reply.map(|r| r.code), Some(250));
        assert_eq!(reply.map(|r| r.lines.len()), Some(3));
        let ext = reply.map(Extensions::from_ehlo).unwrap_or_default();
        assert!(ext.starttls);
        assert_eq!(ext.size, Some(1000));
        assert!(!ext.eight_bit_mime);
    }

    #[test]
    fn bare_code_and_garbage_lines() {
        let mut p = ReplyParser::default();
        assert_eq!(p.feed(b"354\r\n").ok().flatten().map(|r| r.code), Some(354));
        assert!(matches!(
            p.feed(b"hello\r\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(p.feed(b"250x\r\n"), Err(ReplyError::Malformed(_))));
        let mut p = ReplyParser::default();
        assert_eq!(p.feed(b"250-a"), Ok(None));
        assert_eq!(
            p.feed(b"550 b"),
            Err(ReplyError::CodeChanged {
                expected: 250,
                got: 550
            })
        );
        assert_eq!(
            p.feed(&vec![b'2'; MAX_REPLY_LINE + 1]),
            Err(ReplyError::LineTooLong)
        );
    }
}
