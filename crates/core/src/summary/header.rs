//! RFC 5322 §2.2 header blocks over exact byte offsets (shared by the IMAP renderer and the
//! envelope computed at delivery, so both read a header the same way). Accepts CRLF and
//! bare LF; never fails on broken input.

use std::ops::Range;

/// One header field: name and value ranges plus the whole raw line(s) incl. line ending.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: Range<usize>,
    /// From after the colon to the end of the last continuation line (without its line
    /// ending); may contain folding line breaks.
    pub value: Range<usize>,
    pub lines: Range<usize>,
}

/// A parsed header block.
#[derive(Debug, Clone)]
pub struct Header {
    pub fields: Vec<Field>,
    /// The header incl. the blank line that ends it (RFC 9051 §6.4.5 `HEADER`).
    pub range: Range<usize>,
    /// Where the body starts (end of `range`).
    pub body_start: usize,
}

impl Header {
    /// The first field named `name` (ASCII case-insensitive).
    pub fn field<'a>(&'a self, raw: &[u8], name: &str) -> Option<&'a Field> {
        self.fields
            .iter()
            .find(|f| raw[f.name.clone()].eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The unfolded, trimmed value of the first field named `name`.
    pub fn value(&self, raw: &[u8], name: &str) -> Option<Vec<u8>> {
        self.field(raw, name).map(|f| unfold(&raw[f.value.clone()]))
    }
}

/// RFC 5322 §2.2 field name: printable US-ASCII except ':'.
fn valid_field_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':')
}

/// Index just past the next '\n' at or after `pos` (or `end`).
pub fn next_line(raw: &[u8], pos: usize, end: usize) -> usize {
    match raw[pos..end].iter().position(|&b| b == b'\n') {
        Some(i) => pos + i + 1,
        None => end,
    }
}

/// Strip one trailing "\r\n" or "\n" from the range `start..end`.
pub fn strip_eol(raw: &[u8], start: usize, mut end: usize) -> usize {
    if end > start && raw[end - 1] == b'\n' {
        end -= 1;
        if end > start && raw[end - 1] == b'\r' {
            end -= 1;
        }
    }
    end
}

/// Parse the header block starting at `range.start` (RFC 5322 §2.2). Accepts CRLF and bare
/// LF; lines that are not fields (e.g. an mbox "From " line) are skipped but stay inside
/// the header range. With no blank line the whole range is header and the body is empty.
pub fn parse_header(raw: &[u8], range: Range<usize>) -> Header {
    let end = range.end.min(raw.len());
    let start = range.start.min(end);
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = start;
    // A field may be followed by continuations; a continuation after a skipped line is
    // dropped with it.
    let mut last_is_field = false;
    while pos < end {
        let next = next_line(raw, pos, end);
        let content_end = strip_eol(raw, pos, next);
        let line = &raw[pos..content_end];
        let first = line.first().copied();
        if first.is_none() {
            // The blank line (content_end == pos only when a line break was stripped).
            return Header {
                fields,
                range: start..next,
                body_start: next,
            };
        }
        if matches!(first, Some(b' ' | b'\t')) {
            if let (true, Some(last)) = (last_is_field, fields.last_mut()) {
                last.value.end = content_end;
                last.lines.end = next;
            }
        } else {
            last_is_field = false;
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                let mut name_end = pos + colon;
                while name_end > pos && matches!(raw[name_end - 1], b' ' | b'\t') {
                    name_end -= 1;
                }
                if valid_field_name(&raw[pos..name_end]) {
                    fields.push(Field {
                        name: pos..name_end,
                        value: pos + colon + 1..content_end,
                        lines: pos..next,
                    });
                    last_is_field = true;
                }
            }
        }
        pos = next;
    }
    Header {
        fields,
        range: start..end,
        body_start: end,
    }
}

/// Unfold a header value (RFC 5322 §2.2.3: drop the line breaks of folding) and trim
/// surrounding whitespace.
pub fn unfold(value: &[u8]) -> Vec<u8> {
    let v: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    trim(&v).to_vec()
}

/// A header value unfolded with its RFC 2047 encoded-words decoded (the text SEARCH and
/// Email/query match; mail-parser does the charset work).
pub fn decode_words(value: &[u8]) -> String {
    let mut v = unfold(value);
    if !v.windows(2).any(|w| w == b"=?") {
        return String::from_utf8_lossy(&v).into_owned();
    }
    v.push(b'\n');
    match mail_parser::parsers::MessageStream::new(&v).parse_unstructured() {
        mail_parser::HeaderValue::Text(t) => t.into_owned(),
        _ => String::new(),
    }
}

pub fn trim(v: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = v.iter().position(|b| !is_ws(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ws(b)).map_or(start, |i| i + 1);
    &v[start..end.max(start)]
}
