//! OBJECTID (RFC 8474) identifiers: the JMAP ids (crates/jmap/src/ids.rs), so that IMAP's
//! MAILBOXID/EMAILID/THREADID and JMAP's Mailbox/Email/Thread ids name the same objects.
//! Both are a type letter and the store's number (RFC 8474 §7 `objectid`:
//! 1–255 of `ALPHA / DIGIT / "_" / "-"`).

use bulwark_store::{EmailId, MailboxId, ThreadId};

pub(crate) fn mailbox_id(id: MailboxId) -> String {
    format!("M{}", id.0)
}

pub(crate) fn email_id(id: EmailId) -> String {
    format!("E{}", id.0)
}

pub(crate) fn thread_id(id: ThreadId) -> String {
    format!("T{}", id.0)
}

fn parse_prefixed(id: &str, prefix: char) -> Option<i64> {
    let rest = id.strip_prefix(prefix)?;
    if rest.is_empty() || rest.len() > 18 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// The email an EMAILID names; `None` for an id this server never gave out.
pub(crate) fn parse_email(id: &str) -> Option<EmailId> {
    parse_prefixed(id, 'E').map(EmailId)
}

/// The thread a THREADID names; `None` for an id this server never gave out.
pub(crate) fn parse_thread(id: &str) -> Option<ThreadId> {
    parse_prefixed(id, 'T').map(ThreadId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_jmap_ids_and_round_trip() {
        assert_eq!(mailbox_id(MailboxId(7)), "M7");
        assert_eq!(email_id(EmailId(42)), "E42");
        assert_eq!(thread_id(ThreadId(3)), "T3");
        assert_eq!(parse_email("E42"), Some(EmailId(42)));
        assert_eq!(parse_thread("T3"), Some(ThreadId(3)));
        for bad in ["", "E", "T3", "E-1", "e42", "E12345678901234567890"] {
            assert_eq!(parse_email(bad), None, "{bad}");
        }
    }
}
