//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2, grammar `body` in §9).

use super::encode::{write_nstring, write_string};
use super::envelope::write_envelope;
use super::mime::{
    MimeValue, Part, PartKind, count_lines, parse_message, parse_mime_value, unfold,
};

/// A multipart with no body parts is not allowed by the grammar (`1*body`); like Dovecot
/// we describe one empty text/plain part instead.
const EMPTY_BODY: &[u8] = b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)";
const EMPTY_BODYSTRUCTURE: &[u8] =
    b"(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)";

/// BODY (`extensible == false`) or BODYSTRUCTURE (`extensible == true`) of `raw`.
pub fn body_structure(raw: &[u8], extensible: bool) -> Vec<u8> {
    let root = parse_message(raw);
    let mut out = Vec::with_capacity(256);
    write_body(&mut out, raw, &root, extensible);
    out
}

fn write_body(out: &mut Vec<u8>, raw: &[u8], part: &Part, ext: bool) {
    match &part.kind {
        PartKind::Multipart(children) => {
            out.push(b'(');
            if children.is_empty() {
                out.extend_from_slice(if ext { EMPTY_BODYSTRUCTURE } else { EMPTY_BODY });
            }
            for child in children {
                write_body(out, raw, child, ext);
            }
            out.push(b' ');
            write_string(out, &part.content_type.subtype);
            if ext {
                // body-ext-mpart: params, disposition, language, location.
                out.push(b' ');
                write_params(out, &part.content_type.params);
                write_common_ext(out, raw, part);
            }
            out.push(b')');
        }
        PartKind::Leaf | PartKind::Message(_) => write_single(out, raw, part, ext),
    }
}

/// body-type-1part: basic, text (+ lines) or message (+ envelope, body, lines).
fn write_single(out: &mut Vec<u8>, raw: &[u8], part: &Part, ext: bool) {
    let ct = &part.content_type;
    let body = &raw[part.body.clone()];
    out.push(b'(');
    write_string(out, &ct.value);
    out.push(b' ');
    write_string(out, &ct.subtype);
    out.push(b' ');
    if ct.params.is_empty() && ct.is("text", "") {
        out.extend_from_slice(b"(\"charset\" \"us-ascii\")");
    } else {
        write_params(out, &ct.params);
    }
    for name in ["content-id", "content-description"] {
        out.push(b' ');
        write_nstring(out, part.header.value(raw, name).as_deref());
    }
    out.push(b' ');
    match part.header.value(raw, "content-transfer-encoding") {
        Some(enc) if !enc.is_empty() => write_string(out, &enc),
        _ => out.extend_from_slice(b"\"7bit\""),
    }
    out.push(b' ');
    out.extend_from_slice(body.len().to_string().as_bytes());
    if let PartKind::Message(inner) = &part.kind {
        out.push(b' ');
        write_envelope(out, raw, &inner.header);
        out.push(b' ');
        write_body(out, raw, inner, ext);
        out.push(b' ');
        out.extend_from_slice(count_lines(body).to_string().as_bytes());
    } else if ct.is("text", "") {
        out.push(b' ');
        out.extend_from_slice(count_lines(body).to_string().as_bytes());
    }
    if ext {
        // body-ext-1part: md5 (never computed), disposition, language, location.
        out.extend_from_slice(b" NIL");
        write_common_ext(out, raw, part);
    }
    out.push(b')');
}

/// ` disposition language location` shared by single and multipart extension data.
fn write_common_ext(out: &mut Vec<u8>, raw: &[u8], part: &Part) {
    out.push(b' ');
    match part
        .header
        .value(raw, "content-disposition")
        .map(|v| parse_mime_value(&v))
    {
        Some(MimeValue { value, params, .. }) if !value.is_empty() => {
            out.push(b'(');
            write_string(out, &value);
            out.push(b' ');
            write_params(out, &params);
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    write_language(out, part.header.value(raw, "content-language").as_deref());
    out.push(b' ');
    let location = part.header.field(raw, "content-location").map(|f| {
        // RFC 2557 §4.4.2: a folded URL is unfolded without the folding whitespace.
        unfold(&raw[f.value.clone()])
            .into_iter()
            .filter(|b| !matches!(b, b' ' | b'\t'))
            .collect::<Vec<u8>>()
    });
    write_nstring(out, location.as_deref());
}

/// `body-fld-lang`: one tag as a string, several as a list (RFC 3282 comma list).
fn write_language(out: &mut Vec<u8>, value: Option<&[u8]>) {
    let tags: Vec<Vec<u8>> = value
        .map(|v| {
            v.split(|&b| b == b',')
                .map(|t| {
                    let t = strip_comments(t);
                    super::mime::trim(&t).to_vec()
                })
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match tags.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => write_string(out, one),
        many => {
            out.push(b'(');
            for (i, t) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write_string(out, t);
            }
            out.push(b')');
        }
    }
}

fn strip_comments(s: &[u8]) -> Vec<u8> {
    let mut depth = 0usize;
    let mut out = Vec::with_capacity(s.len());
    for &b in s {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(b),
            _ => {}
        }
    }
    out
}

/// `body-fld-param`: `("name" "value" ...)` or NIL.
fn write_params(out: &mut Vec<u8>, params: &[(Vec<u8>, Vec<u8>)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        write_string(out, k);
        out.push(b' ');
        write_string(out, v);
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::*;

    fn bs(raw: &str, ext: bool) -> String {
        String::from_utf8(body_structure(raw.as_bytes(), ext)).unwrap_or_default()
    }

    #[test]
    fn plain_text_message() {
        assert_eq!(
            bs(PLAIN, true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 29 2 NIL NIL NIL NIL)"
        );
        assert_eq!(
            bs(PLAIN, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 29 2)"
        );
    }

    #[test]
    fn multipart_alternative() {
        assert_eq!(
            bs(ALTERNATIVE, true),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 15 1 NIL NIL NIL NIL)\
             (\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 20 1 NIL NIL NIL NIL) \
             \"alternative\" (\"boundary\" \"alt\") NIL NIL NIL)"
        );
        assert_eq!(
            bs(ALTERNATIVE, false),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 15 1)\
             (\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 20 1) \"alternative\")"
        );
    }

    #[test]
    fn mixed_with_attachment_and_nested_message() {
        let env = "(\"Mon, 7 Feb 1994 21:52:25 -0800\" \"inner\" ((NIL NIL \"in\" \"x.test\")) \
                   ((NIL NIL \"in\" \"x.test\")) ((NIL NIL \"in\" \"x.test\")) NIL NIL NIL NIL NIL)";
        let want = |message_size: usize| {
            format!(
                "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL \"en\" NIL)\
                 (\"application\" \"octet-stream\" (\"name\" \"a.bin\") \"<id1@x>\" \"Some bytes\" \"base64\" 8 \
                 NIL (\"attachment\" (\"filename\" \"a.bin\")) NIL \"http://x.test/a.bin\")\
                 (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" {message_size} {env} \
                 (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL) 5 \
                 NIL (\"inline\" NIL) (\"en\" \"de\") NIL) \
                 \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)"
            )
        };
        assert_eq!(bs(MIXED, true), want(84));
        // The same message with bare LF line ends: same structure, sizes as stored (the
        // encapsulated message loses four CRs).
        assert_eq!(bs(&MIXED.replace("\r\n", "\n"), true), want(80));
    }

    #[test]
    fn nested_message_with_multipart_body() {
        assert_eq!(
            bs(NESTED_MULTIPART, false),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 142 \
             (NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL NIL) \
             ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 9 1)\
             (\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 16 1) \"alternative\") 11) \
             \"mixed\")"
        );
    }

    #[test]
    fn multipart_without_parts_describes_an_empty_text_part() {
        let raw = "Content-Type: multipart/mixed; boundary=zz\r\n\r\nno delimiter here\r\n";
        assert_eq!(
            bs(raw, false),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")"
        );
    }

    #[test]
    fn digest_parts_default_to_message_rfc822() {
        let raw = "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: s\r\n\r\nb\r\n--d--\r\n";
        assert_eq!(
            bs(raw, false),
            "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 15 (NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL) \
             (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 1) 3) \"digest\")"
        );
    }

    #[test]
    fn bare_lf_input_is_measured_as_stored() {
        let raw = "Content-Type: text/plain; charset=utf-8\n\nline one\nline two\n";
        assert_eq!(
            bs(raw, false),
            "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 18 2)"
        );
    }
}
