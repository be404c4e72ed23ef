//! Response encoding helpers: strings (quoted vs literal), flag lists, UID sets and mailbox
//! names (modified UTF-7 for IMAP4rev1 clients, RFC 3501 §5.1.3; UTF-8 after
//! `ENABLE UTF8=ACCEPT`/`IMAP4rev2`, RFC 9051 §5.1).

use bulwark_store::keyword_to_imap_flag;

/// Appends `s` as `quoted` when possible, else as a literal. `utf8`: 8-bit text may be
/// quoted (RFC 9051 §4.3 / RFC 6855).
pub fn write_string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    bulwark_core::imap_string::write_string_utf8(out, s, utf8);
}

/// A mailbox name for output: UTF-8 when enabled, else modified UTF-7.
pub fn write_mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        write_string(out, name.as_bytes(), true);
    } else {
        write_string(out, mutf7_encode(name).as_bytes(), false);
    }
}

/// `(\Seen \Flagged $custom)` from stored keywords.
pub fn flag_list(keywords: &[String]) -> String {
    let flags: Vec<String> = keywords.iter().map(|k| keyword_to_imap_flag(k)).collect();
    format!("({})", flags.join(" "))
}

/// Compresses sorted-or-not numbers into an IMAP sequence set (`1:3,7,9:10`).
pub fn compress_set(numbers: &[u32]) -> String {
    let mut v = numbers.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Same as [`compress_set`] but keeps the given order (COPYUID source/destination pairs
/// must correspond element by element, RFC 4315 §3).
pub fn ordered_set(numbers: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = numbers[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    parts.join(",")
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
    fn sets_are_compressed() {
        assert_eq!(compress_set(&[5, 1, 2, 3, 9, 10]), "1:3,5,9:10");
        assert_eq!(ordered_set(&[7, 8, 3]), "7:8,3");
    }

    #[test]
    fn strings_quote_or_literal() {
        let mut out = Vec::new();
        write_string(&mut out, b"a\"b", false);
        assert_eq!(out, b"\"a\\\"b\"");
        out.clear();
        write_string(&mut out, "é".as_bytes(), false);
        assert_eq!(out, "{2}\r\né".as_bytes());
        out.clear();
        write_string(&mut out, "é".as_bytes(), true);
        assert_eq!(out, "\"é\"".as_bytes());
    }
}
