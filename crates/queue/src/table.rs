//! `bulwark queue list`: a plain-text table of the queue.

use bulwark_store::{Queued, RcptStatus};

/// Longest error text shown per recipient.
const MAX_ERROR_WIDTH: usize = 120;

/// One line per entry (id, sender, attempts, next attempt, expiry), then one indented line
/// per recipient with its status and last error. Times are UTC.
pub fn format_queue_table(entries: &[Queued]) -> String {
    if entries.is_empty() {
        return "queue is empty\n".into();
    }
    let sender_width = entries
        .iter()
        .map(|e| sender_of(e).len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = format!(
        "{:<8} {:<sender_width$} {:>8}  {:<20} {:<20} {}\n",
        "ID", "SENDER", "ATTEMPTS", "NEXT ATTEMPT (UTC)", "EXPIRES (UTC)", "LEASE"
    );
    for e in entries {
        let lease = match &e.lease_owner {
            Some(owner) if e.lease_until > 0 => format!("{owner} until {}", utc(e.lease_until)),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<8} {:<sender_width$} {:>8}  {:<20} {:<20} {}\n",
            e.id.to_string(),
            sender_of(e),
            e.attempts,
            utc(e.next_attempt),
            utc(e.expires_at),
            lease
        ));
        for r in &e.recipients {
            let status = match r.status {
                RcptStatus::Pending => "pending",
                RcptStatus::Delivered => "delivered",
                RcptStatus::Failed => "failed",
            };
            let error: String = r
                .last_error
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(MAX_ERROR_WIDTH)
                .collect();
            let mut line = format!("    {status:<9} {}", r.address);
            if !error.is_empty() {
                line.push_str("  ");
                line.push_str(&error);
            }
            line.push('\n');
            out.push_str(&line);
        }
    }
    out
}

fn sender_of(e: &Queued) -> &str {
    if e.sender.is_empty() { "<>" } else { &e.sender }
}

/// `2025-07-01 10:52:37`.
fn utc(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::{BlobHash, QueueId, QueueRcpt};

    #[test]
    fn table_lists_entries_with_recipient_status_and_error() {
        let entry = Queued {
            id: QueueId(7),
            sender: String::new(),
            recipients: vec![
                QueueRcpt {
                    address: "bob@remote.test".into(),
                    status: RcptStatus::Pending,
                    last_error: Some("450 4.2.1 busy".into()),
                },
                QueueRcpt {
                    address: "eve@remote.test".into(),
                    status: RcptStatus::Delivered,
                    last_error: None,
                },
            ],
            blob: BlobHash("h".into()),
            size: 10,
            created_at: 0,
            next_attempt: 1_751_367_157,
            attempts: 2,
            expires_at: 1_751_367_157 + 86_400,
            dsn_sent: false,
            lease_owner: None,
            lease_until: 0,
        };
        let table = format_queue_table(&[entry]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("ID"));
        assert!(lines[1].starts_with("7 "));
        assert!(lines[1].contains("<>"));
        assert!(lines[1].contains("2025-07-01 10:52:37"));
        assert!(lines[1].contains("2025-07-02 10:52:37"));
        assert_eq!(lines[2].trim(), "pending   bob@remote.test  450 4.2.1 busy");
        assert_eq!(lines[3].trim(), "delivered eve@remote.test");
        assert_eq!(format_queue_table(&[]), "queue is empty\n");
    }
}
