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

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// UTF-8 → modified UTF-7 (RFC 3501 §5.1.3).
pub fn mutf7_encode(s: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for ch in s.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut pending, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Modified UTF-7 → UTF-8; `None` if `s` is not valid modified UTF-7 (then the caller
/// uses the name as given).
pub fn mutf7_decode(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find('-')?;
        let encoded = &after[..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let mut bits = 0u32;
            let mut nbits = 0;
            let mut units = Vec::new();
            let mut bytes = Vec::new();
            for c in encoded.bytes() {
                let v = B64.iter().position(|&b| b == c)? as u32;
                bits = (bits << 6) | v;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    bytes.push((bits >> nbits) as u8);
                    bits &= (1 << nbits) - 1;
                }
            }
            for pair in bytes.chunks(2) {
                if pair.len() == 2 {
                    units.push(u16::from_be_bytes([pair[0], pair[1]]));
                }
            }
            out.push_str(&String::from_utf16(&units).ok()?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutf7_round_trips_rfc_example() {
        // RFC 3501 §5.1.3 example: "~peter/mail/台北/日本語"
        let name = "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}";
        let enc = mutf7_encode(name);
        assert_eq!(enc, "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(mutf7_decode(&enc).as_deref(), Some(name));
        assert_eq!(mutf7_encode("A&B"), "A&-B");
        assert_eq!(mutf7_decode("A&-B").as_deref(), Some("A&B"));
        assert_eq!(mutf7_decode("bad&AB"), None);
    }

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
