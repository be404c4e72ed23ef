//! JMAP ids (RFC 8620 §1.2: 1–255 chars of `[A-Za-z0-9_-]`) for store ids: a type letter
//! and the number, so an id of the wrong type is recognisably invalid.

use bulwark_store::{AccountId, EmailId, MailboxId, ModSeq, ThreadId};

fn parse_prefixed(id: &str, prefix: char) -> Option<i64> {
    let rest = id.strip_prefix(prefix)?;
    if rest.is_empty() || rest.len() > 18 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

pub fn account_id(id: AccountId) -> String {
    format!("A{}", id.0)
}
pub fn parse_account(id: &str) -> Option<AccountId> {
    parse_prefixed(id, 'A').map(AccountId)
}
pub fn mailbox_id(id: MailboxId) -> String {
    format!("M{}", id.0)
}
pub fn parse_mailbox(id: &str) -> Option<MailboxId> {
    parse_prefixed(id, 'M').map(MailboxId)
}
pub fn email_id(id: EmailId) -> String {
    format!("E{}", id.0)
}
pub fn parse_email(id: &str) -> Option<EmailId> {
    parse_prefixed(id, 'E').map(EmailId)
}
pub fn thread_id(id: ThreadId) -> String {
    format!("T{}", id.0)
}
pub fn parse_thread(id: &str) -> Option<ThreadId> {
    parse_prefixed(id, 'T').map(ThreadId)
}
/// State strings are the account modseq (the change log shared with IMAP).
pub fn state(m: ModSeq) -> String {
    m.0.to_string()
}
pub fn parse_state(s: &str) -> Option<ModSeq> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().map(ModSeq)
}

/// RFC 8620 §1.2: is this a syntactically valid Id?
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_other_types() {
        assert_eq!(parse_mailbox(&mailbox_id(MailboxId(5))), Some(MailboxId(5)));
        assert_eq!(parse_email("M5"), None);
        assert_eq!(parse_email("E"), None);
        assert_eq!(parse_email("E-1"), None);
        assert_eq!(parse_email("E99999999999999999999999"), None);
        assert_eq!(parse_state("12"), Some(ModSeq(12)));
        assert_eq!(parse_state("x"), None);
        assert!(is_valid_id("Ab_-9") && !is_valid_id("a b") && !is_valid_id(""));
    }
}
