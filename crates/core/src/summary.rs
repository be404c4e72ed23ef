//! Header facts extracted once per message (mail-parser does the MIME work), and the IMAP
//! ENVELOPE rendered once at delivery so FETCH ENVELOPE need not read the message.

pub mod envelope;
pub mod header;
pub mod imap_string;

use bulwark_store::EmailSummary;
use mail_parser::{Address, HeaderValue, MessageParser};

/// Longest preview kept (JMAP `preview` is at most 256 characters, RFC 8621 §4.1.4).
pub const PREVIEW_CHARS: usize = 256;

/// Never fails: broken MIME yields an empty or partial summary.
pub fn summarize(raw: &[u8]) -> EmailSummary {
    // The same renderer as FETCH uses on the content, so the stored bytes are what a
    // FETCH of the content would send.
    let imap_envelope = Some(envelope::envelope(raw));
    let Some(msg) = MessageParser::default().parse(raw) else {
        return EmailSummary {
            imap_envelope,
            ..EmailSummary::default()
        };
    };
    let ids = |v: &HeaderValue| -> Vec<String> {
        match v {
            HeaderValue::Text(t) => vec![t.to_string()],
            HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
            _ => vec![],
        }
    };
    let preview: String = msg
        .body_text(0)
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
        .chars()
        .take(PREVIEW_CHARS)
        .collect();
    EmailSummary {
        message_id: msg.message_id().map(|s| s.to_string()),
        in_reply_to: ids(msg.in_reply_to()),
        references: ids(msg.references()),
        subject: msg.subject().unwrap_or_default().to_string(),
        from: address_text(msg.from()),
        to: address_text(msg.to()),
        cc: address_text(msg.cc()),
        sent_at: msg.date().map(|d| d.to_timestamp()),
        has_attachment: msg.attachment_count() > 0,
        preview,
        imap_envelope,
    }
}

/// The decoded address header as text for SEARCH FROM/TO/CC. Groups keep their name
/// (`team: a@b, c@d;`): RFC 3501 §6.4.4 matches the ENVELOPE field, which carries the
/// group name (RFC 3501 §7.4.2 group syntax), so `SEARCH TO team` finds the message.
fn address_text(addr: Option<&Address>) -> String {
    let Some(addr) = addr else {
        return String::new();
    };
    let one = |a: &mail_parser::Addr<'_>| match (&a.name, &a.address) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (None, Some(e)) => e.to_string(),
        (Some(n), None) => n.to_string(),
        (None, None) => String::new(),
    };
    match addr {
        Address::List(list) => list.iter().map(one).collect::<Vec<_>>().join(", "),
        Address::Group(groups) => groups
            .iter()
            .map(|g| {
                let members = g.addresses.iter().map(one).collect::<Vec<_>>().join(", ");
                match &g.name {
                    Some(name) => format!("{name}: {members};"),
                    None => members,
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_threading_headers_and_preview() {
        let raw = b"From: Bob <bob@x.test>\r\nTo: alice@example.test\r\nSubject: Hi there\r\n\
Message-ID: <m2@x.test>\r\nIn-Reply-To: <m1@x.test>\r\nReferences: <m0@x.test> <m1@x.test>\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nHello   Alice,\r\n how are you?\r\n";
        let s = summarize(raw);
        assert_eq!(s.message_id.as_deref(), Some("m2@x.test"));
        assert_eq!(s.in_reply_to, vec!["m1@x.test"]);
        assert_eq!(s.references, vec!["m0@x.test", "m1@x.test"]);
        assert_eq!(s.subject, "Hi there");
        assert_eq!(s.from, "Bob <bob@x.test>");
        assert_eq!(s.preview, "Hello Alice, how are you?");
        assert!(s.sent_at.is_some());
    }

    #[test]
    fn group_names_stay_in_address_text() {
        // RFC 3501 §6.4.4 SEARCH TO matches the envelope, which names the group.
        let s = summarize(b"To: Team: a@x.test, Bob <b@x.test>;\r\nCc: c@x.test\r\n\r\nhi\r\n");
        assert_eq!(s.to, "Team: a@x.test, Bob <b@x.test>;");
        assert_eq!(s.cc, "c@x.test");
    }

    #[test]
    fn broken_mime_does_not_panic() {
        let s = summarize(b"\xff\xfe garbage without headers");
        assert!(s.message_id.is_none());
        let s = summarize(b"Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nbroken");
        assert!(s.subject.is_empty());
    }
}
