//! A light MIME tree over exact byte offsets of the raw message (RFC 5322 header syntax,
//! RFC 2045/2046 multipart bodies). Every range indexes the original bytes, so FETCH
//! sections can return exactly what was stored. Broken MIME never fails: a multipart
//! without a usable boundary becomes a leaf, a missing close delimiter ends the last
//! part at the end of its parent, and depth and part count are capped.

use std::ops::Range;

/// Deepest nesting of multipart / message/rfc822 levels that is parsed; deeper content is
/// treated as an opaque leaf (guards stack and time on hostile input).
pub const MAX_MIME_DEPTH: usize = 64;

/// Most MIME parts built for one message; the rest of an over-full multipart is folded
/// into its last part (bounds memory: a 25 MB message of empty parts would be millions).
pub const MAX_MIME_PARTS: usize = 10_000;

/// Header blocks are parsed by `bulwark-core` (the envelope stored at delivery reads a
/// header the same way as FETCH does).
pub(crate) use bulwark_core::header::{Header, next_line, parse_header, strip_eol, trim, unfold};

/// A parsed `Content-Type` / `Content-Disposition` style value: `type[/subtype] *(; a=v)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MimeValue {
    pub value: Vec<u8>,
    pub subtype: Vec<u8>,
    pub params: Vec<(Vec<u8>, Vec<u8>)>,
}

impl MimeValue {
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }

    pub fn is(&self, value: &str, subtype: &str) -> bool {
        self.value.eq_ignore_ascii_case(value.as_bytes())
            && (subtype.is_empty() || self.subtype.eq_ignore_ascii_case(subtype.as_bytes()))
    }
}

/// RFC 2045 §5.1 `tspecials` plus whitespace end a token.
fn is_token_end(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'@' | b',' | b';' | b':' | b'\\' | b'"' | b'/'
    ) || matches!(b, b'[' | b']' | b'?' | b'=' | b' ' | b'\t')
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    /// Skip whitespace and (nested) comments.
    fn skip_cfws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.pos += 1,
                b'(' => {
                    let mut depth = 0usize;
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        match c {
                            b'\\' => self.pos += 1,
                            b'(' => depth += 1,
                            b')' => {
                                depth = depth.saturating_sub(1);
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => break,
            }
        }
        self.pos = self.pos.min(self.s.len());
    }

    fn token(&mut self) -> Vec<u8> {
        let start = self.pos;
        while self.peek().is_some_and(|b| !is_token_end(b)) {
            self.pos += 1;
        }
        self.s[start..self.pos].to_vec()
    }

    fn quoted(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(c) = self.peek() {
                        out.push(c);
                        self.pos += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        out
    }
}

/// Parse `value[/subtype] *(";" attribute "=" value)` (RFC 2045 §5.1, RFC 2183 §2).
/// RFC 2231 extended parameters are kept as written (`filename*`).
pub(crate) fn parse_mime_value(s: &[u8]) -> MimeValue {
    let mut c = Cursor { s, pos: 0 };
    c.skip_cfws();
    let value = c.token();
    c.skip_cfws();
    let mut subtype = Vec::new();
    if c.peek() == Some(b'/') {
        c.pos += 1;
        c.skip_cfws();
        subtype = c.token();
    }
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        // Skip to the next ';' (ignoring junk after a value).
        while let Some(b) = c.peek() {
            if b == b';' {
                break;
            }
            if b == b'"' {
                c.quoted();
            } else {
                c.pos += 1;
            }
        }
        if c.peek().is_none() {
            break;
        }
        c.pos += 1;
        c.skip_cfws();
        let name = c.token();
        c.skip_cfws();
        if name.is_empty() || c.peek() != Some(b'=') {
            continue;
        }
        c.pos += 1;
        c.skip_cfws();
        let val = if c.peek() == Some(b'"') {
            c.quoted()
        } else {
            let start = c.pos;
            while c
                .peek()
                .is_some_and(|b| !matches!(b, b';' | b' ' | b'\t' | b'('))
            {
                c.pos += 1;
            }
            s[start..c.pos].to_vec()
        };
        if !params.iter().any(|(k, _)| k.eq_ignore_ascii_case(&name)) {
            params.push((name, val));
        }
    }
    MimeValue {
        value,
        subtype,
        params,
    }
}

/// How a part's body is structured.
#[derive(Debug, Clone)]
pub(crate) enum PartKind {
    Leaf,
    /// multipart/*: the body parts (possibly none when no delimiter was found).
    Multipart(Vec<Part>),
    /// message/rfc822 (or message/global): the encapsulated message.
    Message(Box<Part>),
}

/// One MIME entity: its header, body and the parsed content type.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub header: Header,
    pub body: Range<usize>,
    /// Effective content type (RFC 2045 §5.2 defaults applied; lowercase compare).
    pub content_type: MimeValue,
    pub kind: PartKind,
}

#[cfg(test)]
impl Part {
    pub fn is_multipart(&self) -> bool {
        matches!(self.kind, PartKind::Multipart(_))
    }
}

fn default_content_type(in_digest: bool) -> MimeValue {
    // RFC 2046 §5.1.5: parts of multipart/digest default to message/rfc822.
    if in_digest {
        MimeValue {
            value: b"message".to_vec(),
            subtype: b"rfc822".to_vec(),
            params: Vec::new(),
        }
    } else {
        MimeValue {
            value: b"text".to_vec(),
            subtype: b"plain".to_vec(),
            params: vec![(b"charset".to_vec(), b"us-ascii".to_vec())],
        }
    }
}

fn opaque_content_type() -> MimeValue {
    MimeValue {
        value: b"application".to_vec(),
        subtype: b"octet-stream".to_vec(),
        params: Vec::new(),
    }
}

struct Builder<'a> {
    raw: &'a [u8],
    parts: usize,
}

/// Parse the whole message into a MIME tree. The root part's header is the message header.
pub(crate) fn parse_message(raw: &[u8]) -> Part {
    Builder { raw, parts: 1 }.part(0..raw.len(), 0, false)
}

impl Builder<'_> {
    fn part(&mut self, range: Range<usize>, depth: usize, in_digest: bool) -> Part {
        let raw = self.raw;
        let header = parse_header(raw, range.clone());
        let body = header.body_start..range.end;
        let mut content_type = match header.field(raw, "content-type") {
            Some(f) => {
                let ct = parse_mime_value(&unfold(&raw[f.value.clone()]));
                if ct.value.is_empty() || ct.subtype.is_empty() {
                    default_content_type(false)
                } else {
                    ct
                }
            }
            None => default_content_type(in_digest),
        };
        let mut kind = PartKind::Leaf;
        if content_type.is("multipart", "") {
            let boundary = content_type
                .param("boundary")
                .map(<[u8]>::to_vec)
                .unwrap_or_default();
            if boundary.is_empty() || depth >= MAX_MIME_DEPTH {
                content_type = opaque_content_type();
            } else {
                let digest = content_type.is("multipart", "digest");
                let ranges = self.split_multipart(body.clone(), &boundary);
                let children = ranges
                    .into_iter()
                    .map(|r| self.part(r, depth + 1, digest))
                    .collect();
                kind = PartKind::Multipart(children);
            }
        } else if content_type.is("message", "rfc822") || content_type.is("message", "global") {
            if depth >= MAX_MIME_DEPTH {
                content_type = opaque_content_type();
            } else {
                self.parts += 1;
                kind = PartKind::Message(Box::new(self.part(body.clone(), depth + 1, false)));
            }
        }
        Part {
            header,
            body,
            content_type,
            kind,
        }
    }

    /// Body-part ranges of a multipart body (RFC 2046 §5.1.1): the line break before a
    /// delimiter belongs to the delimiter; preamble and epilogue are dropped.
    fn split_multipart(&mut self, body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
        let raw = self.raw;
        let mut out = Vec::new();
        let mut current: Option<usize> = None;
        let mut line = body.start;
        while line < body.end {
            let next = next_line(raw, line, body.end);
            let text = &raw[line..strip_eol(raw, line, next)];
            if let Some(rest) = text
                .strip_prefix(b"--")
                .and_then(|t| t.strip_prefix(boundary))
            {
                let (close, pad) = match rest.strip_prefix(b"--") {
                    Some(p) => (true, p),
                    None => (false, rest),
                };
                if pad.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
                    let budget_left = self.parts < MAX_MIME_PARTS;
                    if close || budget_left || current.is_none() {
                        if let Some(start) = current.take() {
                            out.push(start..strip_eol(raw, start, line).max(start));
                            self.parts += 1;
                        }
                        if close {
                            return out;
                        }
                        current = Some(next);
                    }
                }
            }
            line = next;
        }
        if let Some(start) = current {
            out.push(start..body.end);
            self.parts += 1;
        }
        out
    }
}

/// Find the part addressed by an IMAP part number (RFC 9051 §6.4.5): in a multipart, n is
/// the n-th body part; a non-multipart entity only has part 1 (itself); after the first
/// level, a message/rfc822 part is entered first, so its numbers address the
/// encapsulated message's parts, and a leaf has no sub-parts.
pub(crate) fn resolve<'a>(root: &'a Part, path: &[u32]) -> Option<&'a Part> {
    let mut cur = root;
    for (i, &n) in path.iter().enumerate() {
        if i > 0 {
            match &cur.kind {
                PartKind::Message(inner) => cur = inner,
                PartKind::Multipart(_) => {}
                // A leaf has no sub-parts.
                PartKind::Leaf => return None,
            }
        }
        let idx = usize::try_from(n).ok()?.checked_sub(1)?;
        match &cur.kind {
            PartKind::Multipart(children) => cur = children.get(idx)?,
            _ if idx == 0 => {}
            _ => return None,
        }
    }
    Some(cur)
}

/// Lines in a body for BODYSTRUCTURE: line breaks plus a final unterminated line.
pub(crate) fn count_lines(body: &[u8]) -> usize {
    let breaks = body.iter().filter(|&&b| b == b'\n').count();
    breaks + usize::from(body.last().is_some_and(|&b| b != b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies<'a>(raw: &'a [u8], part: &Part) -> Vec<&'a [u8]> {
        match &part.kind {
            PartKind::Multipart(c) => c.iter().map(|p| &raw[p.body.clone()]).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn header_handles_folding_crlf_and_bare_lf() {
        for raw in [
            &b"Subject: a\r\n b\r\nX-Y:z\r\n\r\nbody"[..],
            &b"Subject: a\n b\nX-Y:z\n\nbody"[..],
        ] {
            let h = parse_header(raw, 0..raw.len());
            assert_eq!(h.fields.len(), 2);
            assert_eq!(h.value(raw, "subject").as_deref(), Some(&b"a b"[..]));
            assert_eq!(h.value(raw, "x-y").as_deref(), Some(&b"z"[..]));
            assert_eq!(&raw[h.body_start..], b"body");
        }
    }

    #[test]
    fn header_without_blank_line_takes_everything() {
        let raw = b"Subject: only";
        let h = parse_header(raw, 0..raw.len());
        assert_eq!(h.body_start, raw.len());
        assert_eq!(h.value(raw, "subject").as_deref(), Some(&b"only"[..]));
    }

    #[test]
    fn header_skips_lines_that_are_not_fields() {
        let raw = b"From someone Mon Jan 1 00:00:00 2024\r\nTo: a@b\r\n\r\n";
        let h = parse_header(raw, 0..raw.len());
        assert_eq!(h.fields.len(), 1);
        assert_eq!(h.value(raw, "to").as_deref(), Some(&b"a@b"[..]));
    }

    #[test]
    fn mime_values_parse_params_quotes_and_comments() {
        let v = parse_mime_value(b"Text/Plain (c) ; charset=\"utf-8\"; format=flowed;x");
        assert_eq!(v.value, b"Text");
        assert_eq!(v.subtype, b"Plain");
        assert!(v.is("text", "plain"));
        assert_eq!(v.param("CHARSET"), Some(&b"utf-8"[..]));
        assert_eq!(v.param("format"), Some(&b"flowed"[..]));
        let d = parse_mime_value(b"attachment; filename=\"a \\\"b\\\".txt\"");
        assert_eq!(d.value, b"attachment");
        assert_eq!(d.param("filename"), Some(&b"a \"b\".txt"[..]));
    }

    #[test]
    fn multipart_split_strips_delimiter_line_breaks() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n\r\none\r\n--b \r\nX: y\r\n\r\ntwo\r\n--b--\r\nepilogue";
        let root = parse_message(raw);
        assert_eq!(bodies(raw, &root), vec![&b"one"[..], b"two"]);
    }

    #[test]
    fn multipart_without_close_delimiter_runs_to_end() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--bb\n--b\n\ntwo\n";
        let root = parse_message(raw);
        assert_eq!(bodies(raw, &root), vec![&b"one\n--bb"[..], b"two\n"]);
    }

    #[test]
    fn multipart_without_boundary_is_an_opaque_leaf() {
        let raw = b"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n";
        let root = parse_message(raw);
        assert!(!root.is_multipart());
        assert!(root.content_type.is("application", "octet-stream"));
    }

    #[test]
    fn deep_nesting_stops_at_the_depth_limit() {
        let mut raw = Vec::new();
        for _ in 0..(MAX_MIME_DEPTH * 3) {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"Subject: deep\r\n\r\nbody\r\n");
        let root = parse_message(&raw);
        let mut depth = 0;
        let mut cur = &root;
        while let PartKind::Message(inner) = &cur.kind {
            cur = inner;
            depth += 1;
        }
        assert_eq!(depth, MAX_MIME_DEPTH);
    }

    #[test]
    fn part_count_is_capped() {
        let mut raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
        for _ in 0..(MAX_MIME_PARTS + 100) {
            raw.extend_from_slice(b"--b\r\n\r\nx\r\n");
        }
        let root = parse_message(&raw);
        match &root.kind {
            PartKind::Multipart(c) => assert!(c.len() <= MAX_MIME_PARTS),
            other => panic!("expected multipart, got {other:?}"),
        }
    }

    #[test]
    fn line_count_includes_unterminated_last_line() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\r\n"), 1);
        assert_eq!(count_lines(b"a\r\nb"), 2);
    }
}
