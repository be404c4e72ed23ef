//! Trace fields added to accepted mail (RFC 5321 §4.4): `Return-Path:` at final delivery and
//! a `Received:` line for every hop. Pure functions; the caller passes the time.

use std::net::IpAddr;

/// What the `Received:` line says about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceInfo {
    /// Our hostname (`by`).
    pub hostname: String,
    /// The HELO/EHLO argument the client gave (`from`).
    pub helo: String,
    pub peer: IpAddr,
    /// The `with` protocol keyword (RFC 3848 / RFC 6531 §3.7.3), see [`with_keyword`].
    pub protocol: &'static str,
    /// The transaction id, also used in `250 Ok: queued as <id>`.
    pub id: String,
}

/// RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA) and RFC 6531 §3.7.3 (UTF8SMTP…).
pub fn with_keyword(ehlo: bool, tls: bool, authenticated: bool, smtputf8: bool) -> &'static str {
    match (ehlo, smtputf8, tls, authenticated) {
        (false, _, _, _) => "SMTP",
        (true, false, false, false) => "ESMTP",
        (true, false, true, false) => "ESMTPS",
        (true, false, false, true) => "ESMTPA",
        (true, false, true, true) => "ESMTPSA",
        (true, true, false, false) => "UTF8SMTP",
        (true, true, true, false) => "UTF8SMTPS",
        (true, true, false, true) => "UTF8SMTPA",
        (true, true, true, true) => "UTF8SMTPSA",
    }
}

/// `Received:` (RFC 5321 §4.4, RFC 5322 §3.6.7). `for` is given only with a single recipient,
/// so one recipient's copy does not disclose the others.
pub fn received_header(info: &TraceInfo, recipients: &[&str], now_unix: i64) -> String {
    let helo = sanitize(&info.helo);
    let mut h = format!(
        "Received: from {helo} ([{peer}])\r\n\tby {host} (Bulwark) with {with} id {id}",
        peer = info.peer,
        host = sanitize(&info.hostname),
        with = info.protocol,
        id = info.id,
    );
    if let [only] = recipients {
        h.push_str(&format!("\r\n\tfor <{}>", sanitize(only)));
    }
    h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(now_unix)));
    h
}

/// `Return-Path:` with the envelope sender (`<>` for the null sender), RFC 5321 §4.4.
pub fn return_path_header(sender: &str) -> String {
    format!("Return-Path: <{}>\r\n", sanitize(sender))
}

/// Client-supplied text placed in a header: no control characters, no line breaks.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() || c == ' ' { '?' } else { c })
        .collect()
}

/// RFC 5322 §3.3 date in UTC, e.g. `Mon, 02 Jan 2006 15:04:05 +0000`.
pub fn rfc5322_date(now_unix: i64) -> String {
    use time::format_description::well_known::Rfc2822;
    time::OffsetDateTime::from_unix_timestamp(now_unix)
        .ok()
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".to_string())
}

/// RFC 3339 §5.6 `date-time` in UTC without fractions, e.g. `2026-12-03T10:00:00Z`.
pub fn rfc3339_utc(unix: i64) -> String {
    use time::macros::format_description;
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> TraceInfo {
        TraceInfo {
            hostname: "mx.example.test".into(),
            helo: "client.test".into(),
            peer: "192.0.2.1".parse().unwrap(),
            protocol: with_keyword(true, true, false, false),
            id: "abc.1".into(),
        }
    }

    #[test]
    fn received_names_peer_protocol_id_single_recipient_and_date() {
        let h = received_header(&info(), &["alice@example.test"], 0);
        assert_eq!(
            h,
            "Received: from client.test ([192.0.2.1])\r\n\tby mx.example.test (Bulwark) with ESMTPS id abc.1\r\n\tfor <alice@example.test>;\r\n\tThu, 01 Jan 1970 00:00:00 +0000\r\n"
        );
        let h = received_header(&info(), &["a@x", "b@x"], 0);
        assert!(!h.contains("for <"));
    }

    #[test]
    fn helo_with_line_breaks_cannot_inject_headers() {
        let mut i = info();
        i.helo = "evil\r\nX-Injected: 1".into();
        let h = received_header(&i, &[], 0);
        assert!(!h.contains("\r\nX-Injected"));
    }

    #[test]
    fn with_keyword_follows_rfc_3848() {
        assert_eq!(with_keyword(false, false, false, false), "SMTP");
        assert_eq!(with_keyword(true, true, true, false), "ESMTPSA");
        assert_eq!(with_keyword(true, false, true, true), "UTF8SMTPA");
    }
}
