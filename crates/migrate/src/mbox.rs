//! mbox (mboxo and mboxrd) reading and writing.
//!
//! Reading: a line starting with `From ` begins a message; `>From `, `>>From `… lose one `>`
//! (mboxrd, which also undoes mboxo's escaping of `From `); the blank line before the next
//! `From ` line is the separator, not the message's. The `From ` line's date is the internal
//! date. `Status:` / `X-Status:` / `X-Keywords:` (and the `X-UID`/`X-IMAP` bookkeeping of
//! mutt, Dovecot and UW-IMAP) are the mail store's flags, not the message's: they become
//! keywords and are left out of the stored message. Lines are stored with CRLF, as
//! RFC 5322 §2.1 and IMAP (RFC 9051 §2.3.1) want messages.
//!
//! Writing (mboxrd): `From MAILER-DAEMON <date>`, the headers with `Status`, `X-Status` and
//! `X-Keywords` added, every `>*From ` line given one more `>`, lines with LF, a blank line
//! after each message.

use crate::flags;
use std::io::{BufRead, Write};

/// One message read from an mbox, or why it could not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MboxItem {
    Message {
        /// 1-based position in the file and its `From ` line number, for messages.
        index: usize,
        line: usize,
        raw: Vec<u8>,
        keywords: Vec<String>,
        received_at: Option<i64>,
    },
    Failed {
        index: usize,
        line: usize,
        why: String,
    },
}

/// Reads an mbox one message at a time; a message over `max_size` bytes is skipped (read to
/// its end, not kept) and reported as failed.
pub struct MboxReader<R> {
    input: R,
    max_size: usize,
    line_no: usize,
    index: usize,
    /// The `From ` line that starts the next message (already read), and its number.
    pending_from: Option<(Vec<u8>, usize)>,
    started: bool,
    done: bool,
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(input: R, max_size: usize) -> Self {
        MboxReader {
            input,
            max_size,
            line_no: 0,
            index: 0,
            pending_from: None,
            started: false,
            done: false,
        }
    }

    fn read_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        buf.clear();
        let n = self.input.read_until(b'\n', buf)?;
        if n > 0 {
            self.line_no += 1;
        }
        Ok(n)
    }
}

fn is_from_line(line: &[u8]) -> bool {
    line.starts_with(b"From ")
}

/// `>From `, `>>From `, …: an escaped line (mboxrd).
fn is_escaped_from(line: &[u8]) -> bool {
    let gt = line.iter().take_while(|&&b| b == b'>').count();
    gt > 0 && line[gt..].starts_with(b"From ")
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = MboxItem;

    fn next(&mut self) -> Option<MboxItem> {
        if self.done {
            return None;
        }
        let mut line = Vec::new();
        if !self.started {
            self.started = true;
            // Blank lines before the first `From ` line are tolerated.
            loop {
                match self.read_line(&mut line) {
                    Ok(0) => {
                        self.done = true;
                        return None;
                    }
                    Ok(_) if strip_eol(&line).is_empty() => continue,
                    Ok(_) if is_from_line(&line) => {
                        self.pending_from = Some((line.clone(), self.line_no));
                        break;
                    }
                    Ok(_) => {
                        self.done = true;
                        return Some(MboxItem::Failed {
                            index: 1,
                            line: self.line_no,
                            why: "not an mbox: the file does not start with a \"From \" line"
                                .into(),
                        });
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(MboxItem::Failed {
                            index: 1,
                            line: self.line_no + 1,
                            why: format!("read error: {e}"),
                        });
                    }
                }
            }
        }
        let (from_line, from_no) = self.pending_from.take()?;
        self.index += 1;
        let index = self.index;
        let from_rest = String::from_utf8_lossy(strip_eol(&from_line[5..])).into_owned();
        // Lines of the message with their line ends removed; a trailing blank line is the
        // separator.
        let mut body: Vec<u8> = Vec::new();
        let mut size = 0usize;
        let mut too_big = false;
        let mut blank_pending = false;
        let mut truncated = false;
        let mut error = None;
        loop {
            match self.read_line(&mut line) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(_) => {
                    if is_from_line(&line) {
                        self.pending_from = Some((line.clone(), self.line_no));
                        break;
                    }
                    if !line.ends_with(b"\n") {
                        truncated = true;
                    }
                    if blank_pending {
                        size += 2;
                        if !too_big {
                            body.extend_from_slice(b"\r\n");
                        }
                        blank_pending = false;
                    }
                    let mut content = strip_eol(&line);
                    if content.is_empty() && !truncated {
                        blank_pending = true;
                        continue;
                    }
                    if is_escaped_from(content) {
                        content = &content[1..];
                    }
                    size += content.len() + 2;
                    if size > self.max_size {
                        too_big = true;
                        body = Vec::new();
                    }
                    if !too_big {
                        body.extend_from_slice(content);
                        body.extend_from_slice(b"\r\n");
                    }
                }
                Err(e) => {
                    self.done = true;
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = error {
            return Some(MboxItem::Failed {
                index,
                line: from_no,
                why: format!("read error at line {}: {e}", self.line_no + 1),
            });
        }
        if truncated {
            return Some(MboxItem::Failed {
                index,
                line: from_no,
                why: "truncated: the file ends in the middle of this message (no final line end)"
                    .into(),
            });
        }
        if too_big {
            return Some(MboxItem::Failed {
                index,
                line: from_no,
                why: format!(
                    "{size} bytes, over the size limit of {} bytes",
                    self.max_size
                ),
            });
        }
        if body.is_empty() {
            return Some(MboxItem::Failed {
                index,
                line: from_no,
                why: "empty message".into(),
            });
        }
        let (raw, keywords) = flags::take_status_headers(&body);
        if raw.iter().all(u8::is_ascii_whitespace) {
            // Only bookkeeping headers (`Status:`, `X-UID:` …): nothing of a message is left.
            return Some(MboxItem::Failed {
                index,
                line: from_no,
                why: "empty message (only Status/X-Keywords bookkeeping headers)".into(),
            });
        }
        Some(MboxItem::Message {
            index,
            line: from_no,
            raw,
            keywords,
            received_at: crate::date::parse_from_line_date(&from_rest),
        })
    }
}

/// Appends one message to an mbox being written (mboxrd escaping, LF line ends, the flags
/// as `Status`/`X-Status`/`X-Keywords` headers, a blank line after it).
pub fn write_message(
    out: &mut impl Write,
    raw: &[u8],
    keywords: &[String],
    received_at: i64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "From MAILER-DAEMON {}",
        crate::date::asctime(received_at)
    )?;
    let status_headers = flags::status_headers(keywords);
    let mut in_header = true;
    let mut lines = raw.split_inclusive(|&b| b == b'\n').peekable();
    if lines.peek().is_none() {
        out.write_all(status_headers.as_bytes())?;
    }
    while let Some(line) = lines.next() {
        let content = strip_eol(line);
        if in_header && content.is_empty() {
            out.write_all(status_headers.as_bytes())?;
            in_header = false;
        }
        if is_from_line(content) || is_escaped_from(content) {
            out.write_all(b">")?;
        }
        out.write_all(content)?;
        out.write_all(b"\n")?;
        if in_header && lines.peek().is_none() {
            // Headers only, no body: the flags go after them.
            out.write_all(status_headers.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(data: &[u8]) -> Vec<MboxItem> {
        MboxReader::new(data, 1 << 20).collect()
    }

    fn message(item: &MboxItem) -> (&[u8], &[String], Option<i64>) {
        match item {
            MboxItem::Message {
                raw,
                keywords,
                received_at,
                ..
            } => (raw, keywords, *received_at),
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn reads_messages_unescapes_and_takes_flags() {
        let data = b"From a@b Thu Dec  3 08:11:52 2026\n\
Subject: one\n\
Status: RO\n\
X-Status: AF\n\
X-Keywords: Work, $Later\n\
\n\
>From here\n\
>>From there\n\
\n\
From b@c Thu Jan  1 00:00:00 1970\n\
Subject: two\n\
\n\
body\n\
\n";
        let items = read(data);
        assert_eq!(items.len(), 2);
        let (raw, kw, date) = message(&items[0]);
        assert_eq!(raw, b"Subject: one\r\n\r\nFrom here\r\n>From there\r\n");
        assert_eq!(kw, ["$Later", "$answered", "$flagged", "$seen", "Work"]);
        assert_eq!(date, Some(1_796_285_512));
        let (raw, kw, date) = message(&items[1]);
        assert_eq!(raw, b"Subject: two\r\n\r\nbody\r\n");
        assert!(kw.is_empty());
        assert_eq!(date, Some(0));
    }

    #[test]
    fn truncated_last_message_fails_and_the_rest_is_read() {
        let data = b"From a Thu Dec  3 08:11:52 2026\nSubject: ok\n\nfine\n\nFrom b Thu Dec  3 08:11:52 2026\nSubject: cut\n\nhal";
        let items = read(data);
        assert_eq!(items.len(), 2);
        message(&items[0]);
        match &items[1] {
            MboxItem::Failed { index, line, why } => {
                assert_eq!((*index, *line), (2, 6));
                assert!(why.contains("truncated"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_entry_of_only_status_headers_is_not_imported_as_an_empty_message() {
        let data = b"From a Thu Dec  3 08:11:52 2026\nStatus: RO\nX-Status: F\n\nFrom b Thu Dec  3 08:11:52 2026\nSubject: real\n\nbody\n";
        let items = read(data);
        assert_eq!(items.len(), 2);
        assert!(
            matches!(&items[0], MboxItem::Failed { index: 1, why, .. } if why.contains("empty message")),
            "{:?}",
            items[0]
        );
        assert!(message(&items[1]).0.starts_with(b"Subject: real"));
    }

    #[test]
    fn not_an_mbox_and_oversized_messages_are_reported() {
        let items = read(b"Subject: hi\n\nbody\n");
        assert!(
            matches!(&items[..], [MboxItem::Failed { why, .. }] if why.contains("not an mbox"))
        );
        let big = format!(
            "From a Thu Dec  3 08:11:52 2026\nSubject: big\n\n{}\n\nFrom b Thu Dec  3 08:11:52 2026\nSubject: small\n\nx\n",
            "y".repeat(200)
        );
        let items: Vec<_> = MboxReader::new(big.as_bytes(), 100).collect();
        assert!(matches!(&items[0], MboxItem::Failed { why, .. } if why.contains("size limit")));
        message(&items[1]);
    }

    #[test]
    fn writer_escapes_and_reader_reads_back_exactly() {
        let raw = b"Subject: x\r\nStatus-Like: no\r\n\r\nFrom the start\r\n>From quoted\r\n\r\n\r\nend\r\n";
        let keywords = vec!["$seen".to_string(), "$draft".into(), "project".into()];
        let mut out = Vec::new();
        write_message(&mut out, raw, &keywords, 1_700_000_000).unwrap();
        write_message(&mut out, b"Subject: only headers\r\n", &[], 5).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("\n>From the start\n>>From quoted\n"),
            "{text}"
        );
        assert!(
            text.contains("Status: RO\nX-Status: T\nX-Keywords: project\n\n"),
            "{text}"
        );
        let items = read(&out);
        assert_eq!(items.len(), 2);
        let (back, kw, date) = message(&items[0]);
        assert_eq!(back, raw);
        assert_eq!(kw, ["$draft", "$seen", "project"]);
        assert_eq!(date, Some(1_700_000_000));
        let (back, kw, date) = message(&items[1]);
        assert_eq!(back, b"Subject: only headers\r\n");
        assert!(kw.is_empty());
        assert_eq!(date, Some(5));
    }
}
