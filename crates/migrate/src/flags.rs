//! Flags as the mail stores we read and write keep them: mbox `Status`/`X-Status`/
//! `X-Keywords` headers and Maildir `:2,` letters. Keywords are JMAP keywords (`$seen`,
//! `$answered`, `$flagged`, `$deleted`, `$draft`, custom). Read ones keep the case the file
//! wrote them in (the store keeps them lowercase and remembers that case for IMAP, see
//! `bulwark_core::keyword_case`); they are compared without regard to case.

/// Headers that are mbox bookkeeping, not part of the message (mutt, Dovecot, UW-IMAP).
const BOOKKEEPING: [&str; 6] = [
    "status",
    "x-status",
    "x-keywords",
    "x-uid",
    "x-imap",
    "x-imapbase",
];

/// A keyword the store accepts (an IMAP atom, RFC 9051 §9), in its case; `None` otherwise.
pub fn keyword(word: &str) -> Option<String> {
    let word = word.trim();
    bulwark_store::rules::normalize_keywords(&[word.to_string()])
        .ok()
        .map(|_| word.to_string())
}

fn push(out: &mut Vec<String>, k: &str) {
    if let Some(k) = keyword(k)
        && !out.iter().any(|o| o.eq_ignore_ascii_case(&k))
    {
        out.push(k);
    }
}

/// Removes the bookkeeping headers (with their continuation lines) from the header section
/// of `message` and returns it with the keywords they carried (sorted).
///
/// `Status`: `R` read → `$seen` (`O`, old, says nothing). `X-Status`: `A` → `$answered`,
/// `F` → `$flagged`, `T` → `$draft`, `D` → `$deleted`. `X-Keywords`: keywords separated by
/// spaces or commas.
pub fn take_status_headers(message: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut out = Vec::with_capacity(message.len());
    let mut keywords = Vec::new();
    let mut skipping = false;
    let mut rest = message;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        let content = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if content.is_empty() {
            out.extend_from_slice(line);
            out.extend_from_slice(rest);
            break;
        }
        if skipping && matches!(content[0], b' ' | b'\t') {
            continue;
        }
        skipping = false;
        let text = String::from_utf8_lossy(content);
        if let Some((name, value)) = text.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if BOOKKEEPING.contains(&name.as_str()) {
                skipping = true;
                let value = value.trim();
                match name.as_str() {
                    "status" if value.contains('R') => push(&mut keywords, "$seen"),
                    "x-status" => {
                        for (c, k) in [
                            ('A', "$answered"),
                            ('F', "$flagged"),
                            ('T', "$draft"),
                            ('D', "$deleted"),
                        ] {
                            if value.contains(c) {
                                push(&mut keywords, k);
                            }
                        }
                    }
                    "x-keywords" => {
                        for w in value.split([' ', ',', '\t']).filter(|w| !w.is_empty()) {
                            push(&mut keywords, w);
                        }
                    }
                    _ => {}
                }
                continue;
            }
        }
        out.extend_from_slice(line);
    }
    keywords.sort();
    (out, keywords)
}

/// The `Status`, `X-Status` and `X-Keywords` header lines (LF-terminated) for `keywords`.
pub fn status_headers(keywords: &[String]) -> String {
    let has = |k: &str| keywords.iter().any(|x| x == k);
    let mut out = String::from(if has("$seen") {
        "Status: RO\n"
    } else {
        "Status: O\n"
    });
    let x: String = [
        ("$answered", 'A'),
        ("$flagged", 'F'),
        ("$draft", 'T'),
        ("$deleted", 'D'),
    ]
    .iter()
    .filter(|(k, _)| has(k))
    .map(|(_, c)| *c)
    .collect();
    if !x.is_empty() {
        out.push_str(&format!("X-Status: {x}\n"));
    }
    let custom: Vec<&str> = keywords
        .iter()
        .filter(|k| !is_system(k))
        .map(String::as_str)
        .collect();
    if !custom.is_empty() {
        out.push_str(&format!("X-Keywords: {}\n", custom.join(" ")));
    }
    out
}

/// Maildir `:2,` flag letters (ASCII order, as the spec wants them) and their keywords.
pub const MAILDIR_FLAGS: [(char, &str); 6] = [
    ('D', "$draft"),
    ('F', "$flagged"),
    ('P', "$forwarded"),
    ('R', "$answered"),
    ('S', "$seen"),
    ('T', "$deleted"),
];

/// Keywords that travel as flags (`Status`/`X-Status` or Maildir letters), not as keywords.
pub fn is_system(keyword: &str) -> bool {
    matches!(
        keyword,
        "$seen" | "$answered" | "$flagged" | "$draft" | "$deleted"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_headers_are_taken_out_of_the_header_only() {
        let msg =
            b"Subject: a\r\nStatus: R\r\nX-Keywords: one,\r\n two\r\nTo: b\r\n\r\nStatus: body\r\n";
        let (raw, kw) = take_status_headers(msg);
        assert_eq!(raw, b"Subject: a\r\nTo: b\r\n\r\nStatus: body\r\n");
        assert_eq!(kw, ["$seen", "one"]);
        // Keywords that are no IMAP atom are dropped.
        let (_, kw) = take_status_headers(b"X-Keywords: ok (bad) b\"ad\r\n\r\n");
        assert_eq!(kw, ["ok"]);
        assert_eq!(
            status_headers(&["$flagged".into(), "$deleted".into(), "x".into()]),
            "Status: O\nX-Status: FD\nX-Keywords: x\n"
        );
    }
}
