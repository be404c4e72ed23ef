//! Delivery status notifications (bounces): RFC 3464 `multipart/report` with
//! `report-type=delivery-status` (RFC 6522), sent from `MAILER-DAEMON` with a null sender.

use crate::reply::enhanced_status;
use bulwark_store::{QueueRcpt, Queued, RcptStatus};

/// Most bytes of the original header section returned in the bounce.
pub const MAX_RETURNED_HEADERS: usize = 64 * 1024;

/// The text stored as `last_error` when the lifetime ran out.
pub const EXPIRED_TEXT: &str = "delivery time expired";

/// Builds the bounce for the entry's failed recipients. `now` is unix seconds.
pub fn build_dsn(hostname: &str, entry: &Queued, original: &[u8], now: i64) -> Vec<u8> {
    let failed: Vec<&QueueRcpt> = entry
        .recipients
        .iter()
        .filter(|r| r.status == RcptStatus::Failed)
        .collect();
    let boundary = format!("=_bulwark_dsn_{}_{now}", entry.id);
    let date = rfc5322_date(now);
    let mut m = String::with_capacity(4096);
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
    ));
    m.push_str(&format!("To: <{}>\r\n", ascii_only(&entry.sender)));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!(
        "Message-ID: <dsn.{}.{now}@{hostname}>\r\n",
        entry.id
    ));
    // RFC 3834 §5: mark it automatic so no one auto-replies to it.
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a MIME-encapsulated delivery status notification.\r\n\r\n");

    // Part 1: for people.
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    m.push_str(&format!(
        "This is the mail system at host {hostname}.\r\n\r\n"
    ));
    m.push_str("Your message could not be delivered to one or more recipients.\r\n");
    m.push_str("It is attached below (headers only). The errors were:\r\n\r\n");
    for rcpt in &failed {
        let error = rcpt.last_error.as_deref().unwrap_or("unknown error");
        m.push_str(&format!("<{}>: {}\r\n", rcpt.address, one_line(error)));
    }
    m.push_str("\r\n");

    // Part 2: for machines (RFC 3464 §2.2, §2.3).
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: message/delivery-status\r\n\r\n");
    m.push_str(&format!("Reporting-MTA: dns; {hostname}\r\n"));
    m.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(entry.created_at)
    ));
    for rcpt in &failed {
        let error = rcpt.last_error.as_deref().unwrap_or("");
        m.push_str("\r\n");
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            ascii_only(&rcpt.address)
        ));
        m.push_str("Action: failed\r\n");
        m.push_str(&format!("Status: {}\r\n", status_code(error)));
        if let Some(code) = smtp_reply_of(error) {
            m.push_str(&format!("Diagnostic-Code: smtp; {code}\r\n"));
        }
        m.push_str(&format!("Last-Attempt-Date: {date}\r\n"));
    }
    m.push_str("\r\n");

    // Part 3: the original header section (RFC 6522 §3: text/rfc822-headers).
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/rfc822-headers\r\n\r\n");
    let mut out = m.into_bytes();
    let headers = header_section(original);
    out.extend_from_slice(&normalize_crlf(
        &headers[..headers.len().min(MAX_RETURNED_HEADERS)],
    ));
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// RFC 3463 status for a failure text: the server's enhanced code if it gave one, else by
/// reply class; `4.4.7` (delivery time expired) for an expired lifetime.
pub fn status_code(error: &str) -> String {
    if error.starts_with(EXPIRED_TEXT) {
        return "4.4.7".into();
    }
    if let Some(reply) = smtp_reply_of(error) {
        if let Some(enhanced) = reply.get(4..).and_then(enhanced_status) {
            return enhanced.into();
        }
        if reply.starts_with('4') {
            return "4.0.0".into();
        }
    }
    "5.0.0".into()
}

/// The SMTP reply (`550 5.1.1 …`) inside an error text, if the error came from a server.
fn smtp_reply_of(error: &str) -> Option<String> {
    let start = error.find(|c: char| c.is_ascii_digit())?;
    let text = &error[start..];
    let code = text.get(..3)?;
    let valid = code.bytes().all(|b| b.is_ascii_digit())
        && matches!(code.as_bytes()[0], b'4' | b'5')
        && matches!(text.as_bytes().get(3), None | Some(b' '));
    // Only a reply at the very start or after "last error: " is a reply.
    let prefix = &error[..start];
    let at_start = prefix.is_empty() || prefix.ends_with("last error: ");
    (valid && at_start).then(|| ascii_only(&one_line(text)))
}

/// The header section of a message (up to the first empty line).
fn header_section(raw: &[u8]) -> &[u8] {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 2);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 1);
    match (crlf, lf) {
        (Some(a), Some(b)) => &raw[..a.min(b)],
        (Some(a), None) | (None, Some(a)) => &raw[..a],
        (None, None) => raw,
    }
}

fn normalize_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// DSN fields are US-ASCII (RFC 3464 §2.1.1); anything else becomes `?`.
fn ascii_only(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// `Tue, 1 Jul 2025 10:52:37 +0000` (RFC 5322 §3.3).
pub(crate) fn rfc5322_date(unix: i64) -> String {
    let format = time::format_description::well_known::Rfc2822;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "Thu, 1 Jan 1970 00:00:00 +0000".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::{BlobHash, QueueId};

    fn entry(recipients: Vec<QueueRcpt>) -> Queued {
        Queued {
            id: QueueId(42),
            sender: "alice@example.test".into(),
            recipients,
            blob: BlobHash("x".into()),
            size: 10,
            created_at: 1_700_000_000,
            next_attempt: 0,
            attempts: 1,
            expires_at: 0,
            dsn_sent: false,
            lease_owner: None,
            lease_until: 0,
        }
    }

    fn rcpt(address: &str, status: RcptStatus, error: Option<&str>) -> QueueRcpt {
        QueueRcpt {
            address: address.into(),
            status,
            last_error: error.map(String::from),
        }
    }

    #[test]
    fn dsn_reports_each_failed_recipient_with_status_and_diagnostic() {
        let e = entry(vec![
            rcpt(
                "bob@remote.test",
                RcptStatus::Failed,
                Some("550 5.1.1 no such user (from mx[1.2.3.4:25], in reply to RCPT TO)"),
            ),
            rcpt("carol@remote.test", RcptStatus::Delivered, None),
            rcpt(
                "dave@remote.test",
                RcptStatus::Failed,
                Some("delivery time expired; last error: 451 4.3.0 busy"),
            ),
        ]);
        let original = b"From: alice@example.test\r\nSubject: hello\r\n\r\nsecret body\r\n";
        let dsn = String::from_utf8(build_dsn("mx.example.test", &e, original, 1_700_000_100))
            .unwrap_or_default();
        assert!(dsn.contains("From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"));
        assert!(dsn.contains("To: <alice@example.test>\r\n"));
        assert!(dsn.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(dsn.contains("Reporting-MTA: dns; mx.example.test\r\n"));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(dsn.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; dave@remote.test\r\nAction: failed\r\nStatus: 4.4.7\r\n"
        ));
        assert!(dsn.contains("Diagnostic-Code: smtp; 451 4.3.0 busy"));
        assert!(
            !dsn.contains("carol@remote.test"),
            "delivered recipients are not reported"
        );
        assert!(dsn.contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.test\r\nSubject: hello\r\n"));
        assert!(
            !dsn.contains("secret body"),
            "only the headers are returned"
        );
        assert!(dsn.trim_end().ends_with("--"));
        let parsed = mail_parser::MessageParser::default().parse(dsn.as_bytes());
        assert_eq!(
            parsed.as_ref().and_then(|m| m.subject()),
            Some("Undelivered Mail Returned to Sender")
        );
        assert_eq!(parsed.map(|m| m.parts.len()), Some(4));
    }

    #[test]
    fn status_code_falls_back_by_class() {
        assert_eq!(status_code("550 no such user"), "5.0.0");
        assert_eq!(status_code("556 5.1.10 null MX"), "5.1.10");
        assert_eq!(status_code("cannot connect"), "5.0.0");
        assert_eq!(
            status_code("delivery time expired; last error: cannot connect"),
            "4.4.7"
        );
    }

    #[test]
    fn headers_of_lf_only_messages_are_returned_with_crlf() {
        assert_eq!(header_section(b"A: 1\nB: 2\n\nbody"), b"A: 1\nB: 2\n");
        assert_eq!(
            normalize_crlf(b"A: 1\nB: 2\r\n"),
            b"A: 1\r\nB: 2\r\n".to_vec()
        );
    }
}
