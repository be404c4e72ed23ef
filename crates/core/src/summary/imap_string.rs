//! IMAP string encoding shared by FETCH rendering (RFC 9051 §4.3 strings, §9 grammar).

/// Strings longer than this are sent as literals even when they could be quoted, so a
/// single response line stays reasonably short.
pub const MAX_QUOTED_LEN: usize = 1024;

/// Encode `s` as an IMAP `string`: a `quoted` string when every byte is a 7-bit
/// `QUOTED-CHAR` (RFC 9051 §9), otherwise a synchronizing `{n}\r\n` literal.
pub fn quoted_or_literal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

/// Encode an IMAP `nstring`: `NIL` for `None`, otherwise [`quoted_or_literal`].
pub fn nstring(s: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    write_nstring(&mut out, s);
    out
}

/// True when `s` can be sent as an RFC 9051 `quoted` string: no CR, LF, NUL, and no 8-bit
/// bytes unless `utf8` (8-bit text is otherwise sent as a literal so IMAP4rev1 clients read
/// it too; RFC 9051 §4.3 / RFC 6855 allow it quoted after UTF8=ACCEPT).
fn quotable(s: &[u8], utf8: bool) -> bool {
    s.len() <= MAX_QUOTED_LEN
        && s.iter()
            .all(|&b| b != 0 && b != b'\r' && b != b'\n' && (utf8 || b < 0x80))
}

/// Append `s` as an IMAP `string` to `out` (8-bit text as a literal).
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    write_string_utf8(out, s, false);
}

/// Append `s` as an IMAP `string` to `out`; `utf8`: 8-bit text may be quoted.
pub fn write_string_utf8(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    if quotable(s, utf8) {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.push(b'{');
        out.extend_from_slice(s.len().to_string().as_bytes());
        out.extend_from_slice(b"}\r\n");
        // RFC 9051 §9: a `literal` is CHAR8, NUL excluded; like Dovecot, a NUL in a header
        // value goes out as 0x80 (same length).
        out.extend(s.iter().map(|&b| if b == 0 { 0x80 } else { b }));
    }
}

/// Append `s` as an IMAP `nstring` to `out`.
pub fn write_nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => write_string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_bit_text_is_quoted_only_when_utf8_is_enabled() {
        let mut plain = Vec::new();
        write_string_utf8(&mut plain, "caf\u{e9}".as_bytes(), false);
        assert_eq!(plain, b"{5}\r\ncaf\xc3\xa9");
        let mut utf8 = Vec::new();
        write_string_utf8(&mut utf8, "caf\u{e9}".as_bytes(), true);
        assert_eq!(utf8, "\"caf\u{e9}\"".as_bytes());
        let mut nul = Vec::new();
        write_string_utf8(&mut nul, b"a\0", true);
        // RFC 9051 §9: no NUL inside a literal; it goes out as 0x80.
        assert_eq!(nul, b"{2}\r\na\x80");
    }

    #[test]
    fn strings_are_quoted_or_literal_as_needed() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"hello", b"\"hello\""),
            (b"", b"\"\""),
            (b"say \"hi\" \\o/", b"\"say \\\"hi\\\" \\\\o/\""),
            (b"two\r\nlines", b"{10}\r\ntwo\r\nlines"),
            ("caf\u{e9}".as_bytes(), b"{5}\r\ncaf\xc3\xa9"),
            (b"nul\0", b"{4}\r\nnul\x80"),
        ];
        for (input, want) in cases {
            assert_eq!(
                quoted_or_literal(input),
                want.to_vec(),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn long_strings_become_literals() {
        let long = vec![b'a'; MAX_QUOTED_LEN + 1];
        let out = quoted_or_literal(&long);
        assert!(out.starts_with(format!("{{{}}}\r\n", MAX_QUOTED_LEN + 1).as_bytes()));
    }

    #[test]
    fn nstring_renders_nil_for_none() {
        assert_eq!(nstring(None), b"NIL");
        assert_eq!(nstring(Some(b"x")), b"\"x\"");
    }
}
