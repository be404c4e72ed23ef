//! `Authentication-Results` (RFC 8601) on mail from the inbound MX. Until SPF and DMARC
//! exist, mail that arrives on port 25 without authentication but claims one of our own
//! domains (envelope sender or header From) is marked, so clients can warn about it:
//!
//! `Authentication-Results: <hostname>; auth=none; x-bulwark=local-domain-unauthenticated`
//!
//! RFC 8601 §5: a field that claims to come from our own authserv-id but arrived from outside
//! is forged; every such field is removed from inbound mail before delivery.

/// Our mark (RFC 8601 §2.2 syntax: authserv-id, then `method=result` pairs). `auth=none`:
/// no SMTP AUTH (§2.7.4); `x-bulwark=…`: our own, experimental method (§2.7.6).
pub fn local_domain_unauthenticated(hostname: &str) -> String {
    format!(
        "Authentication-Results: {hostname}; auth=none; x-bulwark=local-domain-unauthenticated\r\n"
    )
}

/// The header section of `message` (through the blank line, or all of it without one).
fn header_len(message: &[u8]) -> usize {
    if message.starts_with(b"\r\n") {
        return 0;
    }
    message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2)
}

/// Whether a header field (name, colon, value with folding) is an `Authentication-Results`
/// field whose authserv-id is `hostname`.
fn is_own_field(field: &[u8], hostname: &str) -> bool {
    const NAME: &[u8] = b"authentication-results:";
    if field.len() < NAME.len() || !field[..NAME.len()].eq_ignore_ascii_case(NAME) {
        return false;
    }
    let value = String::from_utf8_lossy(&field[NAME.len()..]);
    let id = strip_comments(&value);
    let id = id.split(';').next().unwrap_or_default().trim();
    // authserv-id may carry a version after it (`host 1`).
    let id = id.split_whitespace().next().unwrap_or_default();
    id.trim_matches('"').eq_ignore_ascii_case(hostname)
}

/// Removes `(comments)` (RFC 5322 CFWS), which may precede the authserv-id.
fn strip_comments(value: &str) -> String {
    let mut depth = 0usize;
    value
        .chars()
        .filter(|&c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' if depth > 0 => {
                depth -= 1;
                false
            }
            _ => depth == 0,
        })
        .collect()
}

/// `message` without its `Authentication-Results` fields for `hostname`; `None` when it has
/// none (no copy made).
pub fn strip_own(message: &[u8], hostname: &str) -> Option<Vec<u8>> {
    let head_len = header_len(message);
    let (head, body) = message.split_at(head_len);
    // Header fields: a line, plus the folded lines (starting with WSP) after it.
    let mut fields: Vec<&[u8]> = Vec::new();
    let (mut start, mut pos) = (0, 0);
    for line in head.split_inclusive(|&b| b == b'\n') {
        let folded = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !folded && pos > start {
            fields.push(&head[start..pos]);
            start = pos;
        }
        pos += line.len();
    }
    if start < head.len() {
        fields.push(&head[start..]);
    }
    if !fields.iter().any(|f| is_own_field(f, hostname)) {
        return None;
    }
    let mut out = Vec::with_capacity(message.len());
    for f in fields.iter().filter(|f| !is_own_field(f, hostname)) {
        out.extend_from_slice(f);
    }
    out.extend_from_slice(body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "mx.example.test";

    #[test]
    fn forged_results_for_our_hostname_are_removed_others_kept() {
        let m = b"Authentication-Results: mx.example.test; dkim=pass\r\n\
Authentication-Results: (spoof) MX.Example.Test 1;\r\n\tspf=pass smtp.mailfrom=a@b\r\n\
Authentication-Results: other.test; spf=fail\r\n\
Subject: x\r\n\r\nAuthentication-Results: mx.example.test; in the body\r\n";
        let out = strip_own(m, HOST).expect("changed");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Authentication-Results: other.test; spf=fail\r\nSubject: x\r\n\r\n\
Authentication-Results: mx.example.test; in the body\r\n"
        );
        assert_eq!(strip_own(b"Subject: x\r\n\r\nbody", HOST), None);
        assert_eq!(
            strip_own(
                b"Authentication-Results: mx.example.testing; x\r\n\r\n",
                HOST
            ),
            None,
            "another authserv-id"
        );
    }

    #[test]
    fn the_mark_is_one_rfc_8601_field() {
        let h = local_domain_unauthenticated(HOST);
        assert_eq!(
            h,
            "Authentication-Results: mx.example.test; auth=none; \
x-bulwark=local-domain-unauthenticated\r\n"
        );
        assert!(is_own_field(h.as_bytes(), HOST));
    }
}
