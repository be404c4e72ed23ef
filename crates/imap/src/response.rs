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

/// Mailbox names in modified UTF-7 (RFC 3501 §5.1.3), shared with `bulwark import`/`export`
/// (Dovecot keeps Maildir folder names so).
pub use bulwark_core::imap_string::{mutf7_decode, mutf7_encode};

#[cfg(test)]
mod tests {
    use super::*;

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
