//! Delivery status notifications (bounces): RFC 3464 `multipart/report` with
//! `report-type=delivery-status` (RFC 6522), sent from `MAILER-DAEMON` with a null sender.
//!
//! One builder for every path that reports a failure to a sender: the outbound queue
//! (recipients that failed at the remote end or expired) and SMTP (recipients refused by a
//! pipeline hook after the transaction was accepted, RFC 5321 §3.7, §4.2.5). The message
//! goes back through the [`Pipeline`](crate::Pipeline) with the null reverse-path.

use crate::{DeliveryError, Message, Outcome, Pipeline};
use std::sync::Arc;

/// Most bytes of the original header section returned in the bounce.
pub const MAX_RETURNED_HEADERS: usize = 64 * 1024;

/// The text stored as `last_error` when the lifetime ran out.
pub const EXPIRED_TEXT: &str = "delivery time expired";

/// One recipient the bounce reports as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedRecipient<'a> {
    pub address: &'a str,
    /// What went wrong: an SMTP reply (`550 5.1.1 …`), possibly after
    /// `"{EXPIRED_TEXT}; last error: "`, or free text.
    pub error: &'a str,
}

/// What a bounce reports about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnReport<'a> {
    /// The reported message's id here (queue id, SMTP transaction id): part of the bounce's
    /// `Message-ID` and MIME boundary.
    pub id: &'a str,
    /// The envelope sender the bounce goes to.
    pub sender: &'a str,
    /// Unix seconds the message arrived (`Arrival-Date`).
    pub arrival: i64,
    pub failed: Vec<FailedRecipient<'a>>,
}

/// Builds the bounce for the report's failed recipients; `original` is the message whose
/// header section is returned. `now` is unix seconds.
pub fn build_dsn(hostname: &str, report: &DsnReport<'_>, original: &[u8], now: i64) -> Vec<u8> {
    let failed = &report.failed;
    let id = token(report.id);
    let boundary = format!("=_bulwark_dsn_{id}_{now}");
    let date = rfc5322_date(now);
    let mut m = String::with_capacity(4096);
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
    ));
    m.push_str(&format!("To: <{}>\r\n", ascii_only(report.sender)));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!("Message-ID: <dsn.{id}.{now}@{hostname}>\r\n"));
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
    for rcpt in failed {
        let error = if rcpt.error.is_empty() {
            "unknown error"
        } else {
            rcpt.error
        };
        m.push_str(&format!("<{}>: {}\r\n", rcpt.address, one_line(error)));
    }
    m.push_str("\r\n");

    // Part 2: for machines (RFC 3464 §2.2, §2.3).
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: message/delivery-status\r\n\r\n");
    m.push_str(&format!("Reporting-MTA: dns; {hostname}\r\n"));
    m.push_str(&format!(
        "Arrival-Date: {}\r\n",
        rfc5322_date(report.arrival)
    ));
    for rcpt in failed {
        let error = rcpt.error;
        m.push_str("\r\n");
        m.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            ascii_only(rcpt.address)
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

/// Sends a bounce to `sender` through the pipeline (its hooks see it like any message),
/// from the null reverse-path (RFC 5321 §4.5.5): into the INBOX if the sender is ours, else
/// queued for `queue_lifetime_secs`. Returns what happened to it. The caller never bounces
/// a message whose sender is null (RFC 5321 §6.1: no bounce of a bounce).
pub async fn send_dsn(
    pipeline: &Arc<Pipeline>,
    sender: &str,
    dsn: Vec<u8>,
    queue_lifetime_secs: i64,
    now: i64,
) -> Result<Outcome, DeliveryError> {
    let mut message = Message::new("", vec![sender.to_string()], Arc::new(dsn));
    message.received_at = now;
    message.queue_lifetime_secs = Some(queue_lifetime_secs);
    let delivered = pipeline.deliver(message).await?;
    Ok(delivered
        .outcomes
        .into_iter()
        .next()
        .map(|(_, outcome)| outcome)
        .unwrap_or(Outcome::Refused(crate::Refusal::Permanent(
            "no recipient".into(),
        ))))
}

/// A pipeline refusal as the SMTP reply a client would get for it alone, for a bounce's
/// `Diagnostic-Code` (RFC 3464 §2.3.6) and status: `554 5.7.1` (RFC 5321 §4.2.5, RFC 3463
/// "delivery not authorized") when permanent, `451 4.3.0` when temporary.
pub fn refusal_diagnostic(why: &crate::Refusal) -> String {
    let reason: String = why
        .reason()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    match why {
        crate::Refusal::Permanent(_) => format!("554 5.7.1 Message refused: {reason}"),
        crate::Refusal::Temporary(_) => format!("451 4.3.0 {reason}"),
    }
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

/// The id as it may appear in a `Message-ID` and a MIME boundary.
fn token(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect()
}

/// The enhanced status code (RFC 3463) at the start of a reply text, e.g. `5.1.1`.
pub fn enhanced_status(text: &str) -> Option<&str> {
    let word = text.split_ascii_whitespace().next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && (1..=3).contains(&subject.len())
        && (1..=3).contains(&detail.len())
        && subject
            .bytes()
            .chain(detail.bytes())
            .all(|b| b.is_ascii_digit())
        && parts.next().is_none();
    ok.then_some(word)
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
pub fn rfc5322_date(unix: i64) -> String {
    let format = time::format_description::well_known::Rfc2822;
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "Thu, 1 Jan 1970 00:00:00 +0000".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_reports_each_failed_recipient_with_status_and_diagnostic() {
        let report = DsnReport {
            id: "42",
            sender: "alice@example.test",
            arrival: 1_700_000_000,
            failed: vec![
                FailedRecipient {
                    address: "bob@remote.test",
                    error: "550 5.1.1 no such user (from mx[1.2.3.4:25], in reply to RCPT TO)",
                },
                FailedRecipient {
                    address: "dave@remote.test",
                    error: "delivery time expired; last error: 451 4.3.0 busy",
                },
            ],
        };
        let original = b"From: alice@example.test\r\nSubject: hello\r\n\r\nsecret body\r\n";
        let dsn = String::from_utf8(build_dsn(
            "mx.example.test",
            &report,
            original,
            1_700_000_100,
        ))
        .unwrap_or_default();
        assert!(dsn.contains("From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"));
        assert!(dsn.contains("To: <alice@example.test>\r\n"));
        assert!(dsn.contains("Message-ID: <dsn.42.1700000100@mx.example.test>\r\n"));
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
    fn an_id_with_odd_characters_cannot_break_the_headers() {
        let report = DsnReport {
            id: "a b\r\nX: y\"",
            sender: "s@x.test",
            arrival: 0,
            failed: vec![],
        };
        let dsn =
            String::from_utf8(build_dsn("h.test", &report, b"A: 1\r\n\r\n", 5)).unwrap_or_default();
        assert!(dsn.contains("Message-ID: <dsn.abXy.5@h.test>\r\n"));
        assert!(!dsn.contains("\r\nX: y"));
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
    fn enhanced_status_is_found_only_when_well_formed() {
        assert_eq!(enhanced_status("5.1.1 no such user"), Some("5.1.1"));
        assert_eq!(enhanced_status("4.7.0 try later"), Some("4.7.0"));
        assert_eq!(enhanced_status("no such user"), None);
        assert_eq!(enhanced_status("5.1 x"), None);
        assert_eq!(enhanced_status("3.1.1 x"), None);
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
