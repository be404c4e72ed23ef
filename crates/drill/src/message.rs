//! Test messages: each carries a Message-ID unique to the drill run, so verification can tell
//! exactly which acknowledged messages arrived, and how many times.

/// Domain of the drill's accounts and Message-IDs.
pub const DOMAIN: &str = "drill.test";
/// Body bytes per message (besides headers): small, so load measures behaviour, not bandwidth.
const BODY_LINES: usize = 20;

/// `<drill-RUN-KIND-N@drill.test>`: run id, client kind and a sequence number.
pub fn message_id(run: &str, kind: &str, n: u64) -> String {
    format!("<drill-{run}-{kind}-{n}@{DOMAIN}>")
}

/// An RFC 5322 message with CRLF line ends, not dot-stuffed (no body line starts with ".").
pub fn build(message_id: &str, to: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Drill <load@client.test>\r\nTo: <{to}>\r\nSubject: drill {message_id}\r\n\
         Date: Mon, 23 Nov 2026 12:00:00 +0000\r\nMessage-ID: {message_id}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    );
    for i in 0..BODY_LINES {
        m.push_str(&format!(
            "line {i} of a drill message, to be found exactly once.\r\n"
        ));
    }
    m.into_bytes()
}

/// The Message-ID in a header block (`Message-ID: <…>`, any case, possibly folded), if any.
pub fn parse_message_id(headers: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(headers);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.trim().to_string();
        if value.is_empty() {
            // RFC 5322 §2.2.3: folded onto the next line.
            value = lines.next().unwrap_or("").trim().to_string();
        }
        return (!value.is_empty()).then_some(value);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_message_carries_its_message_id_and_no_dot_lines() {
        let id = message_id("r1", "smtp", 7);
        assert_eq!(id, "<drill-r1-smtp-7@drill.test>");
        let m = build(&id, "load@drill.test");
        assert_eq!(parse_message_id(&m), Some(id));
        assert!(!String::from_utf8_lossy(&m).contains("\r\n."));
    }

    #[test]
    fn message_id_is_found_in_any_case_and_folded() {
        assert_eq!(
            parse_message_id(b"Subject: x\r\nmessage-id: <a@b>\r\n\r\n"),
            Some("<a@b>".to_string())
        );
        assert_eq!(
            parse_message_id(b"Message-ID:\r\n <c@d>\r\n"),
            Some("<c@d>".to_string())
        );
        assert_eq!(parse_message_id(b"Subject: none\r\n\r\n"), None);
    }
}
