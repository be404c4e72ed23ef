//! Sans-I/O framing of an IMAP server's byte stream into whole responses (RFC 9051 §2.2.2,
//! §4.3): a response is lines ended by CRLF, where a line ending in a literal announcement
//! `{N}` (or `{N+}`, or `~{N}` for BINARY) is followed by N bytes of the literal and then
//! more of the same response. Each whole response is then read by `imap-proto`.
//!
//! The limits are checked before anything is buffered: a source server that announces a
//! literal larger than the largest message we take (a "2 GB literal") or sends an endless
//! line is refused with a clear error instead of filling memory.

use std::fmt;

/// Longest line (outside literals) we buffer: FETCH FLAGS lines with many keywords and
/// LIST lines are far shorter.
pub const MAX_LINE: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    LineTooLong { limit: usize },
    LiteralTooLarge { size: u64, limit: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::LineTooLong { limit } => write!(
                f,
                "the source server sent a line longer than {limit} bytes without a line end"
            ),
            FrameError::LiteralTooLarge { size, limit } => write!(
                f,
                "the source server announced a literal of {size} bytes, over the limit of {limit} bytes \
                 (the largest message taken, [limits] max_message_size)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Collects bytes and hands out whole responses.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where the current line of the current response starts.
    line_start: usize,
    /// Bytes of the current response already known to belong to it (lines and literals).
    scanned: usize,
    max_literal: usize,
}

impl Framer {
    pub fn new(max_literal: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            line_start: 0,
            scanned: 0,
            max_literal,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole response (with its final CRLF), if the buffer holds one.
    pub fn next_response(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if self.scanned > self.buf.len() {
                // Inside a literal that has not fully arrived.
                return Ok(None);
            }
            let from = self.scanned.max(self.line_start);
            let Some(lf) = memchr(b'\n', &self.buf[from..]).map(|i| from + i) else {
                if self.buf.len() - self.line_start > MAX_LINE {
                    return Err(FrameError::LineTooLong { limit: MAX_LINE });
                }
                self.scanned = self.buf.len();
                return Ok(None);
            };
            if lf - self.line_start > MAX_LINE {
                return Err(FrameError::LineTooLong { limit: MAX_LINE });
            }
            let line = &self.buf[self.line_start..lf];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            match literal_size(line) {
                Some(size) => {
                    if size > self.max_literal as u64 {
                        return Err(FrameError::LiteralTooLarge {
                            size,
                            limit: self.max_literal,
                        });
                    }
                    // `size` fits in usize: it is at most max_literal.
                    let end = lf + 1 + size as usize;
                    self.line_start = end;
                    self.scanned = end;
                }
                None => {
                    let end = lf + 1;
                    let response: Vec<u8> = self.buf.drain(..end).collect();
                    self.line_start = 0;
                    self.scanned = 0;
                    return Ok(Some(response));
                }
            }
        }
    }

    /// Bytes held that are not yet a whole response.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// `N` of a line ending in `{N}`, `{N+}` (RFC 7888) or `~{N}` (RFC 3516).
fn literal_size(line: &[u8]) -> Option<u64> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(f: &mut Framer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = f.next_response().unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn lines_and_literals_make_whole_responses_whatever_the_chunks() {
        let stream: &[u8] =
            b"* OK ready\r\n* 1 FETCH (UID 7 BODY[] {5}\r\na\r\nb\n FLAGS (\\Seen))\r\nA1 OK done\r\n";
        for chunk in 1..stream.len() {
            let mut f = Framer::new(100);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                f.push(piece);
                got.extend(all(&mut f));
            }
            assert_eq!(
                got,
                vec![
                    b"* OK ready\r\n".to_vec(),
                    b"* 1 FETCH (UID 7 BODY[] {5}\r\na\r\nb\n FLAGS (\\Seen))\r\n".to_vec(),
                    b"A1 OK done\r\n".to_vec(),
                ],
                "chunk size {chunk}"
            );
            assert_eq!(f.pending(), 0);
        }
    }

    #[test]
    fn a_huge_literal_is_refused_before_it_is_read() {
        let mut f = Framer::new(1000);
        f.push(b"* 1 FETCH (BODY[] {2147483648}\r\n");
        assert_eq!(
            f.next_response(),
            Err(FrameError::LiteralTooLarge {
                size: 2_147_483_648,
                limit: 1000
            })
        );
        let mut f = Framer::new(1000);
        f.push(b"* 1 FETCH (BODY[] {99999999999999999999999}\r\n");
        // Not a number we read: taken as an ordinary line (imap-proto then refuses it).
        assert!(f.next_response().unwrap().is_some());
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut f = Framer::new(1000);
        let junk = vec![b'x'; MAX_LINE / 2];
        f.push(&junk);
        assert_eq!(f.next_response(), Ok(None));
        f.push(&junk);
        f.push(b"xx");
        assert_eq!(
            f.next_response(),
            Err(FrameError::LineTooLong { limit: MAX_LINE })
        );
    }

    #[test]
    fn literal_markers() {
        assert_eq!(literal_size(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_size(b"A LOGIN {3+}"), Some(3));
        assert_eq!(literal_size(b"* 1 FETCH (BINARY[] ~{4}"), Some(4));
        assert_eq!(literal_size(b"* OK {}"), None);
        assert_eq!(literal_size(b"* OK {a}"), None);
        assert_eq!(literal_size(b"* OK done"), None);
    }
}
