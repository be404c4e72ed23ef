//! Who may send as whom: the one rule for every way a signed-in user sends mail (SMTP
//! submission, JMAP `EmailSubmission`). A user may send as each of the account's addresses
//! (primary address and aliases) and as their `+tag` sub-addresses; the envelope sender and
//! every header sender (each address in `From`, and `Sender`) must be one of them
//! (RFC 6409 §8, RFC 8621 §7.5 `forbiddenFrom`).

use mail_parser::{HeaderName, HeaderValue, MessageParser};

/// Why the header senders of a message are refused; the text names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForbiddenSender {
    /// RFC 5322 §3.6: a message must have a From field with at least one address.
    #[error("the message has no From header address")]
    NoFrom,
    #[error("the {field} header address <{address}> is not one of your addresses")]
    NotYours {
        /// `From` or `Sender`.
        field: &'static str,
        address: String,
    },
}

/// May a user whose account has `own` addresses send as `address`? Exact (case-insensitive)
/// match, or `base+tag@domain` where `base@domain` is one of them.
pub fn may_send_as(address: &str, own: &[String]) -> bool {
    let address = address.trim().to_lowercase();
    let is_own = |a: &str| own.iter().any(|o| o.eq_ignore_ascii_case(a));
    if is_own(&address) {
        return true;
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    match local.split_once('+') {
        Some((base, _tag)) if !base.is_empty() => is_own(&format!("{base}@{domain}")),
        _ => false,
    }
}

/// The addresses of the message's `From` fields and of its `Sender` fields, lowercased,
/// in header order. A field without a readable address contributes an empty string.
pub fn header_senders(raw: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut from = Vec::new();
    let mut sender = Vec::new();
    let Some(msg) = MessageParser::default().parse_headers(raw) else {
        return (from, sender);
    };
    for h in msg.headers() {
        let list = match h.name {
            HeaderName::From => &mut from,
            HeaderName::Sender => &mut sender,
            _ => continue,
        };
        let before = list.len();
        if let HeaderValue::Address(a) = &h.value {
            list.extend(
                a.iter()
                    .map(|x| x.address.as_deref().unwrap_or_default().to_lowercase()),
            );
        }
        if list.len() == before {
            list.push(String::new());
        }
    }
    (from, sender)
}

/// Checks the header senders of `raw` against the account's addresses: at least one From
/// address, and every From and Sender address one the user may send as.
pub fn check_header_senders(raw: &[u8], own: &[String]) -> Result<(), ForbiddenSender> {
    let (from, sender) = header_senders(raw);
    if from.is_empty() || from.iter().any(String::is_empty) {
        return Err(ForbiddenSender::NoFrom);
    }
    let fields = from.iter().map(|a| ("From", a));
    let fields = fields.chain(sender.iter().map(|a| ("Sender", a)));
    for (field, address) in fields {
        if !may_send_as(address, own) {
            return Err(ForbiddenSender::NotYours {
                field,
                address: address.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Vec<String> {
        vec!["alice@example.test".into(), "sales@example.test".into()]
    }

    #[test]
    fn own_addresses_aliases_and_their_plus_forms_may_be_used() {
        for a in [
            "alice@example.test",
            "ALICE@Example.Test",
            "sales@example.test",
            "alice+lists@example.test",
            "sales+x@example.test",
        ] {
            assert!(may_send_as(a, &alice()), "{a}");
        }
        for a in [
            "bob@example.test",
            "+alice@example.test",
            "alice@other.test",
            "alice",
            "",
        ] {
            assert!(!may_send_as(a, &alice()), "{a}");
        }
    }

    #[test]
    fn every_from_and_sender_address_must_be_the_users() {
        let ok = b"From: Alice <alice@example.test>\r\nSubject: x\r\n\r\nbody";
        assert_eq!(check_header_senders(ok, &alice()), Ok(()));
        let two = b"From: alice@example.test, Sales <sales+q@example.test>\r\n\r\n";
        assert_eq!(check_header_senders(two, &alice()), Ok(()));
        let spoof = b"From: Alice <alice@example.test>\r\n\r\nbody";
        let bob = vec!["bob@example.test".to_string()];
        assert_eq!(
            check_header_senders(spoof, &bob),
            Err(ForbiddenSender::NotYours {
                field: "From",
                address: "alice@example.test".into()
            })
        );
        let mixed = b"From: alice@example.test, bob@example.test\r\n\r\n";
        assert!(check_header_senders(mixed, &alice()).is_err());
        let second_from = b"From: alice@example.test\r\nFrom: bob@example.test\r\n\r\n";
        assert!(check_header_senders(second_from, &alice()).is_err());
        let sender = b"From: alice@example.test\r\nSender: bob@example.test\r\n\r\n";
        assert_eq!(
            check_header_senders(sender, &alice()),
            Err(ForbiddenSender::NotYours {
                field: "Sender",
                address: "bob@example.test".into()
            })
        );
    }

    #[test]
    fn a_message_without_a_from_address_is_refused() {
        for raw in [
            &b"Subject: no from\r\n\r\nbody"[..],
            b"From: Alice\r\n\r\n",
            b"From: undisclosed:;\r\n\r\n",
            b"",
        ] {
            assert_eq!(
                check_header_senders(raw, &alice()),
                Err(ForbiddenSender::NoFrom),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
