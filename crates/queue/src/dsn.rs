//! Bounces of queue entries: the entry's failed recipients reported with the shared RFC 3464
//! builder of [`bulwark_core::dsn`].

use bulwark_core::dsn::{DsnReport, FailedRecipient};
use bulwark_store::{Queued, RcptStatus};

pub use bulwark_core::dsn::{EXPIRED_TEXT, MAX_RETURNED_HEADERS, status_code};

/// Builds the bounce for the entry's failed recipients. `now` is unix seconds.
pub fn build_dsn(hostname: &str, entry: &Queued, original: &[u8], now: i64) -> Vec<u8> {
    let id = entry.id.to_string();
    let report = DsnReport {
        id: &id,
        sender: &entry.sender,
        arrival: entry.created_at,
        failed: entry
            .recipients
            .iter()
            .filter(|r| r.status == RcptStatus::Failed)
            .map(|r| FailedRecipient {
                address: &r.address,
                error: r.last_error.as_deref().unwrap_or(""),
            })
            .collect(),
    };
    bulwark_core::dsn::build_dsn(hostname, &report, original, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::{BlobHash, QueueId, QueueRcpt};

    fn rcpt(address: &str, status: RcptStatus, error: Option<&str>) -> QueueRcpt {
        QueueRcpt {
            address: address.into(),
            status,
            last_error: error.map(String::from),
        }
    }

    #[test]
    fn an_entrys_bounce_reports_only_its_failed_recipients() {
        let e = Queued {
            id: QueueId(42),
            sender: "alice@example.test".into(),
            recipients: vec![
                rcpt(
                    "bob@remote.test",
                    RcptStatus::Failed,
                    Some("550 5.1.1 no such user (from mx[1.2.3.4:25], in reply to RCPT TO)"),
                ),
                rcpt("carol@remote.test", RcptStatus::Delivered, None),
                rcpt("erin@remote.test", RcptStatus::Pending, None),
                rcpt(
                    "dave@remote.test",
                    RcptStatus::Failed,
                    Some("delivery time expired; last error: 451 4.3.0 busy"),
                ),
            ],
            blob: BlobHash("x".into()),
            size: 10,
            created_at: 1_700_000_000,
            next_attempt: 0,
            attempts: 1,
            expires_at: 0,
            dsn_sent: false,
            lease_owner: None,
            lease_until: 0,
        };
        let original = b"From: alice@example.test\r\nSubject: hello\r\n\r\nsecret body\r\n";
        let dsn = String::from_utf8(build_dsn("mx.example.test", &e, original, 1_700_000_100))
            .unwrap_or_default();
        assert!(dsn.contains("To: <alice@example.test>\r\n"));
        assert!(dsn.contains("Message-ID: <dsn.42.1700000100@mx.example.test>\r\n"));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(dsn.contains(
            "Final-Recipient: rfc822; dave@remote.test\r\nAction: failed\r\nStatus: 4.4.7\r\n"
        ));
        assert!(dsn.contains("Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
        assert!(
            !dsn.contains("carol@remote.test") && !dsn.contains("erin@remote.test"),
            "delivered and pending recipients are not reported"
        );
    }
}
