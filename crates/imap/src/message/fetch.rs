//! BODY[section]<partial> content (RFC 9051 §6.4.5): exact original bytes.

use super::mime::{Header, Part, PartKind, parse_header, parse_message, resolve};
use super::section::{Section, SectionText};

/// The bytes of `BODY[section]`, or `None` when the addressed part does not exist (or
/// `HEADER`/`TEXT` is asked of a part that is not a message/rfc822).
///
/// * no part, no text: the whole message;
/// * `HEADER`: the header including the blank line that ends it;
/// * `HEADER.FIELDS (..)` / `.NOT`: the matching (or other) field lines as stored, then CRLF;
/// * `TEXT`: the body after the header;
/// * `MIME`: the header of the addressed part;
/// * `n.m`: numbering per [`super::mime::resolve`]; a non-multipart message only has part 1.
pub fn section(raw: &[u8], section: &Section) -> Option<Vec<u8>> {
    if section.part.is_empty() && section.text.is_none() {
        return Some(raw.to_vec());
    }
    if section.part.is_empty() {
        // Only the top-level header is needed: skip building the MIME tree (clients fetch
        // HEADER.FIELDS for every message in a mailbox).
        let header = parse_header(raw, 0..raw.len());
        return match section.text.as_ref()? {
            SectionText::Header => Some(raw[header.range.clone()].to_vec()),
            SectionText::Text => Some(raw[header.body_start..].to_vec()),
            SectionText::HeaderFields { not, fields } => {
                Some(header_fields(raw, &header, *not, fields))
            }
            // RFC 9051 §6.4.5: MIME needs a part number; without one there is no MIME header.
            SectionText::Mime => None,
        };
    }
    let root = parse_message(raw);
    let part = resolve(&root, &section.part)?;
    let Some(text) = &section.text else {
        return Some(raw[part.body.clone()].to_vec());
    };
    if *text == SectionText::Mime {
        return Some(raw[part.header.range.clone()].to_vec());
    }
    // With a part number, HEADER/TEXT/HEADER.FIELDS address the message inside a
    // message/rfc822 part.
    let message: &Part = match &part.kind {
        PartKind::Message(inner) => inner,
        _ => return None,
    };
    Some(match text {
        SectionText::Header => raw[message.header.range.clone()].to_vec(),
        SectionText::Text => raw[message.body.clone()].to_vec(),
        SectionText::HeaderFields { not, fields } => {
            header_fields(raw, &message.header, *not, fields)
        }
        SectionText::Mime => return None,
    })
}

/// `HEADER.FIELDS` / `HEADER.FIELDS.NOT`: every matching field with its continuation lines,
/// in message order, then the blank line (RFC 9051 §6.4.5).
fn header_fields(raw: &[u8], header: &Header, not: bool, names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in &header.fields {
        let name = &raw[field.name.clone()];
        let listed = names
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n.as_bytes()));
        if listed != not {
            let lines = &raw[field.lines.clone()];
            out.extend_from_slice(lines);
            if !lines.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Apply a `<origin.length>` partial (RFC 9051 §6.4.5): bytes from `origin`, at most `len`
/// of them; an origin past the end gives the empty string.
pub fn partial(data: &[u8], origin: u32, len: Option<u32>) -> &[u8] {
    let start = usize::try_from(origin)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let end = match len {
        Some(n) => start
            .saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
            .min(data.len()),
        None => data.len(),
    };
    &data[start..end]
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::*;

    fn sec(part: &[u32], text: Option<SectionText>) -> Section {
        Section {
            part: part.to_vec(),
            text,
        }
    }

    fn fields(not: bool, names: &[&str]) -> Option<SectionText> {
        Some(SectionText::HeaderFields {
            not,
            fields: names.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn get(raw: &str, s: Section) -> Option<String> {
        section(raw.as_bytes(), &s).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    #[test]
    fn sections_of_a_plain_message() {
        let header = PLAIN
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .to_string()
            + "\r\n\r\n";
        let cases: Vec<(Section, Option<String>)> = vec![
            (sec(&[], None), Some(PLAIN.to_string())),
            (sec(&[], Some(SectionText::Header)), Some(header.clone())),
            (
                sec(&[], Some(SectionText::Text)),
                Some("Hello Bob,\r\nThis is a test.\r\n".into()),
            ),
            (
                sec(&[1], None),
                Some("Hello Bob,\r\nThis is a test.\r\n".into()),
            ),
            (sec(&[1], Some(SectionText::Mime)), Some(header)),
            (sec(&[2], None), None),
            (sec(&[0], None), None),
            (sec(&[1, 1], None), None),
            (sec(&[1], Some(SectionText::Text)), None),
            (sec(&[], Some(SectionText::Mime)), None),
            (
                sec(&[], fields(false, &["subject", "TO", "x-missing"])),
                Some("To: bob@example.test\r\nSubject: Hello\r\n\r\n".into()),
            ),
            (
                sec(&[], fields(true, &["from", "date", "message-id"])),
                Some("To: bob@example.test\r\nSubject: Hello\r\n\r\n".into()),
            ),
            (sec(&[], fields(false, &["x-missing"])), Some("\r\n".into())),
        ];
        for (s, want) in cases {
            assert_eq!(get(PLAIN, s.clone()), want, "section {s:?}");
        }
    }

    #[test]
    fn sections_of_a_mixed_message() {
        let inner = "Subject: inner\r\nFrom: in@x.test\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nInner body.";
        let cases: Vec<(Section, Option<&str>)> = vec![
            (sec(&[1], None), Some("Plain part.")),
            (
                sec(&[1], Some(SectionText::Mime)),
                Some("Content-Language: en\r\n\r\n"),
            ),
            (sec(&[2], None), Some("AAECA/8=")),
            (sec(&[3], None), Some(inner)),
            (
                sec(&[3], Some(SectionText::Mime)),
                Some(
                    "Content-Type: message/rfc822\r\nContent-Disposition: inline\r\nContent-Language: en, de\r\n\r\n",
                ),
            ),
            (
                sec(&[3], Some(SectionText::Header)),
                Some(
                    "Subject: inner\r\nFrom: in@x.test\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n",
                ),
            ),
            (sec(&[3], Some(SectionText::Text)), Some("Inner body.")),
            (
                sec(&[3], fields(false, &["from"])),
                Some("From: in@x.test\r\n\r\n"),
            ),
            (sec(&[3, 1], None), Some("Inner body.")),
            (sec(&[3, 2], None), None),
            (sec(&[4], None), None),
            (sec(&[2], Some(SectionText::Header)), None),
        ];
        for (s, want) in cases {
            assert_eq!(get(MIXED, s.clone()).as_deref(), want, "section {s:?}");
        }
    }

    #[test]
    fn nested_message_numbering_enters_the_encapsulated_multipart() {
        let cases: Vec<(Section, Option<&str>)> = vec![
            (sec(&[1], None), Some("first")),
            (sec(&[2, 1], None), Some("inner one")),
            (sec(&[2, 2], None), Some("<b>inner two</b>")),
            (
                sec(&[2, 2], Some(SectionText::Mime)),
                Some("Content-Type: text/html\r\n\r\n"),
            ),
            (
                sec(&[2], Some(SectionText::Header)),
                Some("Subject: inner\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n"),
            ),
            (sec(&[2, 3], None), None),
        ];
        for (s, want) in cases {
            assert_eq!(
                get(NESTED_MULTIPART, s.clone()).as_deref(),
                want,
                "section {s:?}"
            );
        }
    }

    #[test]
    fn header_fields_keep_folding_and_bare_lf_as_stored() {
        let raw = "Subject: a\n long one\nTo: x@y\n\nbody\n";
        assert_eq!(
            get(raw, sec(&[], fields(false, &["subject"]))).as_deref(),
            Some("Subject: a\n long one\n\r\n")
        );
        assert_eq!(
            get(raw, sec(&[], Some(SectionText::Header))).as_deref(),
            Some("Subject: a\n long one\nTo: x@y\n\n")
        );
        // A header that ends without a line break still yields whole lines.
        assert_eq!(
            get("X: 1", sec(&[], fields(false, &["x"]))).as_deref(),
            Some("X: 1\r\n\r\n")
        );
    }

    #[test]
    fn partial_bounds() {
        let data = b"0123456789";
        let cases: &[(u32, Option<u32>, &[u8])] = &[
            (0, None, b"0123456789"),
            (0, Some(3), b"012"),
            (8, Some(5), b"89"),
            (10, Some(1), b""),
            (11, None, b""),
            (u32::MAX, Some(u32::MAX), b""),
            (2, Some(0), b""),
            (3, Some(u32::MAX), b"3456789"),
        ];
        for (origin, len, want) in cases {
            assert_eq!(partial(data, *origin, *len), *want, "<{origin}.{len:?}>");
        }
    }
}
