//! The mail rules every backend applies, written once: address and domain normalisation,
//! mailbox names and the rename of a mailbox with its children, keyword normalisation,
//! which Message-IDs a thread lookup tries, and which memberships an update changes.
//!
//! Pure functions, no I/O: the SQLite and the PostgreSQL backend call them and keep only
//! their SQL. `bulwark_core::split_address` folds envelope addresses with the same rule, so
//! SMTP looks up exactly what account creation stored.

use crate::{
    AccountId, KeywordOp, Mailbox, MailboxId, ModSeq, QueueId, QueueRcpt, Queued, RcptStatus,
    Result, Role, StoreError, Uid,
};
use std::collections::BTreeSet;

// ---- addresses and domains -------------------------------------------------------------

/// Longest address (`local@domain`, no brackets): RFC 5321 §4.5.3.1.3 allows a path of 256
/// octets including `<` and `>`, which leaves 254 for the address itself.
pub const MAX_ADDRESS_LEN: usize = 254;
/// Longest domain name, without the trailing dot: 255 octets on the wire (RFC 5321
/// §4.5.3.1.2, RFC 1035 §2.3.4) are 253 characters of text.
pub const MAX_DOMAIN_LEN: usize = 253;

/// Lowercases and checks a domain name; a trailing dot is dropped.
///
/// RFC 4343: DNS names compare case-insensitively in ASCII only, so only ASCII is folded
/// (internationalised names are compared as their A-labels; we do no IDNA mapping).
pub fn normalize_domain(name: &str) -> Result<String> {
    let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty()
        || name.len() > MAX_DOMAIN_LEN
        || name.contains('@')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(StoreError::Invalid(format!("domain name {name:?}")));
    }
    Ok(name)
}

/// Folds the local part of an address.
///
/// One rule for the whole server: Unicode lowercasing, as SMTP delivery always did. RFC 5321
/// §2.4 lets the receiving host decide; folding only ASCII (as the store did) made an
/// account created as `JÜRGEN@x` unreachable by SMTP (which looked up `jürgen@x`) and let
/// `jÜrgen@x` and `jürgen@x` be two different accounts. For ASCII addresses both rules agree.
pub fn fold_local_part(local: &str) -> String {
    local.to_lowercase()
}

/// Checks and folds `local@domain`; returns `(address, domain)`.
///
/// Refused: no `@`, an empty local part or domain, whitespace or control characters
/// anywhere (RFC 5321 §4.1.2 advises against quoted local parts, and we never create one),
/// a domain [`normalize_domain`] refuses, or more than [`MAX_ADDRESS_LEN`] bytes once
/// folded. The local part is not limited to 64 octets on its own (§4.5.3.1.1): §4.5.3.1
/// asks not to impose limits where possible, and remote recipients must stay relayable.
pub fn normalize_address(address: &str) -> Result<(String, String)> {
    let trimmed = address.trim();
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::Invalid(format!("address {trimmed:?}")));
    }
    let Some((local, domain)) = trimmed.rsplit_once('@') else {
        return Err(no_local_or_domain(trimmed));
    };
    if local.is_empty() || domain.trim_end_matches('.').is_empty() {
        return Err(no_local_or_domain(trimmed));
    }
    let domain = normalize_domain(domain)?;
    let address = format!("{}@{domain}", fold_local_part(local));
    if address.len() > MAX_ADDRESS_LEN {
        return Err(StoreError::Invalid(format!(
            "address {address:?} is longer than {MAX_ADDRESS_LEN} bytes"
        )));
    }
    Ok((address, domain))
}

fn no_local_or_domain(address: &str) -> StoreError {
    StoreError::Invalid(format!("address {address:?} has no local part or domain"))
}

/// The form an address is stored and looked up in; `None` when it is not an address
/// (a lookup of it finds nothing).
pub fn lookup_address(address: &str) -> Option<String> {
    normalize_address(address).ok().map(|(address, _)| address)
}

/// The suffix every address of `domain` ends with (`@domain`), for "is the domain in use".
pub fn domain_suffix(domain: &str) -> String {
    format!("@{domain}")
}

// ---- mailbox names ----------------------------------------------------------------------

/// Longest mailbox path we accept, in bytes.
pub const MAX_MAILBOX_NAME_LEN: usize = 1024;
/// Hierarchy separator of mailbox paths.
pub const MAILBOX_SEPARATOR: char = '/';
/// The name of the inbox (RFC 9051 §5.1: case-insensitive).
pub const INBOX: &str = "INBOX";

/// Checks a mailbox path and canonicalizes the INBOX prefix
/// (RFC 9051 §5.1: "INBOX" is case-insensitive).
pub fn canonical_mailbox_name(name: &str) -> Result<String> {
    let bad = name.is_empty()
        || name.len() > MAX_MAILBOX_NAME_LEN
        || name.chars().any(char::is_control)
        || name.split(MAILBOX_SEPARATOR).any(str::is_empty);
    if bad {
        return Err(StoreError::Invalid(format!("mailbox name {name:?}")));
    }
    Ok(match name.split_once(MAILBOX_SEPARATOR) {
        Some((first, rest)) if first.eq_ignore_ascii_case(INBOX) => {
            format!("{INBOX}{MAILBOX_SEPARATOR}{rest}")
        }
        None if name.eq_ignore_ascii_case(INBOX) => INBOX.to_string(),
        _ => name.to_string(),
    })
}

/// The prefix every descendant of the mailbox `name` starts with (`name/`).
pub fn children_prefix(name: &str) -> String {
    format!("{name}{MAILBOX_SEPARATOR}")
}

/// What renaming the mailbox `old` (with role `is_inbox` or not) to `new_name` means:
/// `Ok(None)` for a rename to its own name, `Ok(Some(canonical new name))` otherwise.
/// Refused: renaming INBOX, an invalid new name, moving a mailbox below itself, and
/// `INBOX` as the new name (it always exists).
pub fn check_rename(old: &str, is_inbox: bool, new_name: &str) -> Result<Option<String>> {
    let new_name = canonical_mailbox_name(new_name)?;
    if old == INBOX || is_inbox {
        return Err(StoreError::Invalid("INBOX cannot be renamed".into()));
    }
    if new_name == old {
        return Ok(None);
    }
    if new_name.starts_with(&children_prefix(old)) {
        return Err(StoreError::Invalid(format!(
            "cannot move {old} below itself"
        )));
    }
    if new_name == INBOX {
        return Err(StoreError::AlreadyExists(format!("mailbox {INBOX}")));
    }
    Ok(Some(new_name))
}

/// The rename mapping `old` → `new`, `old/…` → `new/…` for the mailbox and the mailboxes
/// a backend found below it (`(id, name)`; other names are left out). A child whose new
/// name would be too long refuses the whole rename.
pub fn renamed_mailboxes(
    old: &str,
    new: &str,
    found: impl IntoIterator<Item = (MailboxId, String)>,
) -> Result<Vec<(MailboxId, String)>> {
    let prefix = children_prefix(old);
    let mut out = Vec::new();
    for (id, name) in found {
        let renamed = if name == old {
            new.to_string()
        } else if let Some(tail) = name.strip_prefix(&prefix) {
            format!("{}{tail}", children_prefix(new))
        } else {
            continue;
        };
        if renamed.len() > MAX_MAILBOX_NAME_LEN {
            return Err(StoreError::Invalid(format!(
                "mailbox name {renamed:?} would be longer than {MAX_MAILBOX_NAME_LEN} bytes"
            )));
        }
        out.push((id, renamed));
    }
    Ok(out)
}

/// A mailbox as created: no UID used yet (UIDNEXT 1, RFC 9051 §2.3.1.1), HIGHESTMODSEQ
/// the modseq of its creation.
pub fn created_mailbox(
    id: MailboxId,
    account: AccountId,
    name: String,
    role: Option<Role>,
    uid_validity: u32,
    subscribed: bool,
    modseq: ModSeq,
) -> Mailbox {
    Mailbox {
        id,
        account,
        name,
        role,
        uid_validity,
        uid_next: Uid(1),
        subscribed,
        highest_modseq: modseq,
        sort_order: None,
    }
}

/// Whether a mailbox may be deleted (INBOX may not).
pub fn check_delete(name: &str, is_inbox: bool) -> Result<()> {
    if is_inbox || name == INBOX {
        return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
    }
    Ok(())
}

// ---- keywords ---------------------------------------------------------------------------

/// Longest keyword we store (RFC 8621 §4.1.1 allows 1–255 characters).
pub const MAX_KEYWORD_LEN: usize = 255;
/// The keyword whose absence makes an email unseen.
pub const SEEN: &str = "$seen";

/// RFC 8621 §4.1.1 / RFC 9051 §9: a keyword is an IMAP atom, visible ASCII without
/// `( ) { ] % * " \`; a leading `\` is the IMAP system-flag form (`\Foo` → `\foo`).
fn is_keyword(keyword: &str) -> bool {
    let body = keyword.strip_prefix('\\').unwrap_or(keyword);
    !body.is_empty()
        && keyword.len() <= MAX_KEYWORD_LEN
        && body
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !b"(){]%*\"\\".contains(&b))
}

/// Lowercases, checks, deduplicates and sorts keywords.
///
/// Keywords are ASCII (see above) and case-insensitive, so folding is ASCII lowercasing,
/// the same as JMAP's and IMAP's; anything else is refused rather than folded by a rule
/// no protocol defines.
pub fn normalize_keywords(keywords: &[String]) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for keyword in keywords {
        if !is_keyword(keyword) {
            return Err(StoreError::Invalid(format!("keyword {keyword:?}")));
        }
        out.insert(keyword.to_ascii_lowercase());
    }
    Ok(out.into_iter().collect())
}

/// Stored form: normalized keywords, space-separated.
pub fn keywords_to_text(keywords: &[String]) -> String {
    keywords.join(" ")
}

/// Keywords from their stored form.
pub fn keywords_from_text(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the keywords mark an email seen.
pub fn is_seen(keywords: &[String]) -> bool {
    keywords.iter().any(|k| k == SEEN)
}

/// The keywords after `op` with the normalized `given` keywords, sorted.
pub fn apply_keyword_op(op: KeywordOp, old: &[String], given: Vec<String>) -> Vec<String> {
    match op {
        KeywordOp::Replace => given,
        KeywordOp::Add => {
            let set: BTreeSet<String> = old.iter().cloned().chain(given).collect();
            set.into_iter().collect()
        }
        KeywordOp::Remove => old.iter().filter(|k| !given.contains(k)).cloned().collect(),
    }
}

// ---- threads ----------------------------------------------------------------------------

/// How many Message-IDs of `In-Reply-To`/`References` are looked up to find a thread.
pub const MAX_THREAD_LOOKUPS: usize = 64;

/// Strips the angle brackets and surrounding space of a Message-ID.
pub fn normalize_message_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// The Message-IDs a thread lookup tries, in order: the direct parent (`In-Reply-To`)
/// first, then `References` from the newest back; each once, empty ones skipped, at most
/// [`MAX_THREAD_LOOKUPS`]. The first one an earlier email of the account has gives the thread.
pub fn thread_lookup_ids(in_reply_to: &[String], references: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in in_reply_to.iter().chain(references.iter().rev()) {
        if out.len() == MAX_THREAD_LOOKUPS {
            break;
        }
        if let Some(id) = normalize_message_id(id)
            && !out.contains(&id)
        {
            out.push(id);
        }
    }
    out
}

/// Every Message-ID that ties an email to its thread (RFC 8621 §3): [`thread_lookup_ids`]
/// and then its own Message-ID, each once.
pub fn thread_ref_ids(summary: &crate::EmailSummary) -> Vec<String> {
    let mut ids = thread_lookup_ids(&summary.in_reply_to, &summary.references);
    if let Some(own) = summary.message_id.as_deref().and_then(normalize_message_id)
        && !ids.contains(&own)
    {
        ids.push(own);
    }
    ids
}

// ---- memberships ------------------------------------------------------------------------

/// What a membership update changes for one email in `current` mailboxes: the mailboxes to
/// add (not yet in, each once, in the order given) and the memberships to remove (asked to
/// be removed and not also asked to be added).
pub fn membership_changes(
    current: &[(MailboxId, Uid)],
    add: &[MailboxId],
    remove: &[MailboxId],
) -> (Vec<MailboxId>, Vec<(MailboxId, Uid)>) {
    let mut to_add: Vec<MailboxId> = Vec::new();
    for &mailbox in add {
        if !current.iter().any(|&(m, _)| m == mailbox) && !to_add.contains(&mailbox) {
            to_add.push(mailbox);
        }
    }
    let to_remove = current
        .iter()
        .copied()
        .filter(|(m, _)| remove.contains(m) && !add.contains(m))
        .collect();
    (to_add, to_remove)
}

/// The mailboxes an email is appended to: each once, in the order given; at least one.
pub fn append_mailboxes(mailboxes: &[MailboxId]) -> Result<Vec<MailboxId>> {
    if mailboxes.is_empty() {
        return Err(StoreError::Invalid(
            "an email needs at least one mailbox".into(),
        ));
    }
    let mut out: Vec<MailboxId> = Vec::with_capacity(mailboxes.len());
    for &mailbox in mailboxes {
        if !out.contains(&mailbox) {
            out.push(mailbox);
        }
    }
    Ok(out)
}

// ---- stored messages --------------------------------------------------------------------

/// The stored size of a message (`what`: "email", "message"); sizes are 32-bit.
pub fn stored_size(raw: &[u8], what: &str) -> Result<u32> {
    u32::try_from(raw.len()).map_err(|_| StoreError::Invalid(format!("{what} larger than 4 GiB")))
}

/// The recipients of a newly queued message, all pending; at least one.
pub fn queued_recipients(addresses: &[String]) -> Result<Vec<QueueRcpt>> {
    if addresses.is_empty() {
        return Err(StoreError::Invalid(
            "a queued message needs at least one recipient".into(),
        ));
    }
    Ok(addresses
        .iter()
        .map(|address| QueueRcpt {
            address: address.clone(),
            status: RcptStatus::Pending,
            last_error: None,
        })
        .collect())
}
/// Whether a queue entry is finished and can be deleted: every recipient is final
/// (delivered or failed) and any failure has been reported by a DSN.
pub fn queue_entry_done(entry: &Queued) -> bool {
    let all_final = entry
        .recipients
        .iter()
        .all(|r| r.status != RcptStatus::Pending);
    let any_failed = entry
        .recipients
        .iter()
        .any(|r| r.status == RcptStatus::Failed);
    all_final && (!any_failed || entry.dsn_sent)
}

/// Stored form of a queue entry's recipients (JSON).
pub fn recipients_to_json(recipients: &[QueueRcpt]) -> Result<String> {
    serde_json::to_string(recipients)
        .map_err(|e| StoreError::Internal(format!("cannot encode recipients: {e}")))
}

/// The recipients of queue entry `id` from their stored form.
pub fn recipients_from_json(id: QueueId, json: &str) -> Result<Vec<QueueRcpt>> {
    serde_json::from_str(json).map_err(|e| {
        StoreError::Internal(format!(
            "recipients of queue entry {id} are unreadable: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// An address of exactly `len` bytes: `local@` and a domain of 63-byte labels.
    fn address_of_len(len: usize) -> String {
        let local = "a".repeat(64);
        let mut domain = String::new();
        while local.len() + 1 + domain.len() < len {
            if !domain.is_empty() && domain.len() % 64 == 63 {
                domain.push('.');
            } else {
                domain.push('b');
            }
        }
        format!("{local}@{domain}")
    }

    #[test]
    fn addresses_fold_the_local_part_in_unicode_and_the_domain_in_ascii() {
        assert_eq!(
            normalize_address("  Alice@Example.TEST. ").ok(),
            Some(("alice@example.test".into(), "example.test".into()))
        );
        assert_eq!(
            lookup_address("JÜRGEN@x.test"),
            Some("jürgen@x.test".into())
        );
        assert_eq!(
            lookup_address("jÜrgen@x.test"),
            lookup_address("jürgen@x.test")
        );
        // RFC 4343: only ASCII is folded in domain names.
        assert_eq!(
            normalize_domain("BÜCHER.test").ok(),
            Some("bÜcher.test".into())
        );
    }

    #[test]
    fn address_of_exactly_the_limit_is_accepted_and_one_more_is_refused() {
        let max = address_of_len(MAX_ADDRESS_LEN);
        assert_eq!(max.len(), 254);
        assert!(normalize_address(&max).is_ok());
        let over = address_of_len(MAX_ADDRESS_LEN + 1);
        assert!(normalize_address(&over).is_err());
        assert_eq!(lookup_address(&over), None);
    }

    #[test]
    fn the_limit_counts_the_folded_form() {
        // 'İ' is two bytes, lowercased three ("i̇"): the stored form must fit.
        let local = "İ".repeat(10);
        let domain = "d".repeat(MAX_ADDRESS_LEN - 1 - 20);
        assert_eq!(local.len() + 1 + domain.len(), MAX_ADDRESS_LEN);
        assert!(normalize_address(&format!("{local}@{domain}")).is_err());
    }

    #[test]
    fn garbage_is_not_an_address() {
        for bad in [
            "",
            "no-at-sign",
            "@example.test",
            "a@",
            "a@.",
            "a b@example.test",
            "a@exa mple.test",
            "a\u{7}@example.test",
            "a@b@",
        ] {
            assert!(normalize_address(bad).is_err(), "{bad:?}");
        }
        // The last `@` separates: the local part may contain one (quoted on the wire).
        assert_eq!(
            normalize_address("a@b@example.test").ok().map(|a| a.1),
            Some("example.test".into())
        );
    }

    #[test]
    fn domains_of_253_are_accepted_and_254_refused() {
        let d = |n: usize| "a".repeat(n);
        assert!(normalize_domain(&d(MAX_DOMAIN_LEN)).is_ok());
        assert!(normalize_domain(&format!("{}.", d(MAX_DOMAIN_LEN))).is_ok());
        assert!(normalize_domain(&d(MAX_DOMAIN_LEN + 1)).is_err());
        for bad in ["", ".", "a@b", "a b", "a\tb"] {
            assert!(normalize_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mailbox_names_are_checked_and_inbox_is_canonical() {
        assert_eq!(canonical_mailbox_name("inbox").ok(), Some("INBOX".into()));
        assert_eq!(
            canonical_mailbox_name("InBox/Sub").ok(),
            Some("INBOX/Sub".into())
        );
        assert_eq!(
            canonical_mailbox_name("Inboxes/x").ok(),
            Some("Inboxes/x".into())
        );
        let max = "x".repeat(MAX_MAILBOX_NAME_LEN);
        assert!(canonical_mailbox_name(&max).is_ok());
        for bad in ["", "/a", "a/", "a//b", "a\nb", &format!("{max}x")] {
            assert!(canonical_mailbox_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rename_is_refused_for_inbox_below_itself_and_onto_inbox() {
        assert!(check_rename("INBOX", true, "Old").is_err());
        assert!(check_rename("Work", false, "Work/Sub").is_err());
        assert!(matches!(
            check_rename("Work", false, "inbox"),
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(check_rename("Work", false, "Work").ok(), Some(None));
        // A sibling that merely starts with the same letters is not "below itself".
        assert_eq!(
            check_rename("Work", false, "Workshop").ok(),
            Some(Some("Workshop".into()))
        );
        assert!(check_delete("INBOX", false).is_err());
        assert!(check_delete("Junk", false).is_ok());
    }

    #[test]
    fn rename_maps_the_mailbox_and_its_children_only() {
        let found = vec![
            (MailboxId(1), "Work".to_string()),
            (MailboxId(2), "Work/A".to_string()),
            (MailboxId(3), "Work/A/B".to_string()),
            (MailboxId(4), "Workshop".to_string()),
        ];
        assert_eq!(
            renamed_mailboxes("Work", "Archive/Work", found).ok(),
            Some(vec![
                (MailboxId(1), "Archive/Work".to_string()),
                (MailboxId(2), "Archive/Work/A".to_string()),
                (MailboxId(3), "Archive/Work/A/B".to_string()),
            ])
        );
    }

    #[test]
    fn rename_that_makes_a_child_too_long_is_refused() {
        let child = format!("W/{}", "c".repeat(MAX_MAILBOX_NAME_LEN - 2));
        let found = vec![(MailboxId(1), "W".to_string()), (MailboxId(2), child)];
        assert!(renamed_mailboxes("W", "WW", found).is_err());
    }

    #[test]
    fn keywords_fold_ascii_case_deduplicate_and_sort() {
        assert_eq!(
            normalize_keywords(&s(&["$Seen", "$FLAGGED", "$seen", "\\Foo"])).ok(),
            Some(s(&["$flagged", "$seen", "\\foo"]))
        );
        let max = "k".repeat(MAX_KEYWORD_LEN);
        assert!(normalize_keywords(std::slice::from_ref(&max)).is_ok());
        for bad in [
            "",
            "\\",
            "a b",
            "ä",
            "a(b",
            "a]b",
            "a\\b",
            "a%",
            "a*",
            "\"a\"",
            &format!("{max}k"),
        ] {
            assert!(normalize_keywords(&s(&[bad])).is_err(), "{bad:?}");
        }
        let text = keywords_to_text(&s(&["$flagged", "$seen"]));
        assert_eq!(keywords_from_text(&text), s(&["$flagged", "$seen"]));
        assert!(keywords_from_text("").is_empty());
        assert!(is_seen(&s(&["$seen"])) && !is_seen(&s(&["$flagged"])));
    }

    #[test]
    fn keyword_ops_add_remove_and_replace() {
        let old = s(&["$seen", "b"]);
        assert_eq!(
            apply_keyword_op(KeywordOp::Add, &old, s(&["a"])),
            s(&["$seen", "a", "b"])
        );
        assert_eq!(
            apply_keyword_op(KeywordOp::Remove, &old, s(&["$seen"])),
            s(&["b"])
        );
        assert_eq!(
            apply_keyword_op(KeywordOp::Replace, &old, s(&["c"])),
            s(&["c"])
        );
    }

    #[test]
    fn thread_lookup_tries_the_parent_then_references_newest_first() {
        let ids = thread_lookup_ids(
            &s(&["<parent@x>"]),
            &s(&["<root@x>", " <>", "<mid@x>", "<parent@x>"]),
        );
        assert_eq!(ids, s(&["parent@x", "mid@x", "root@x"]));
        let many: Vec<String> = (0..200).map(|n| format!("<{n}@x>")).collect();
        let ids = thread_lookup_ids(&[], &many);
        assert_eq!(ids.len(), MAX_THREAD_LOOKUPS);
        assert_eq!(ids[0], "199@x");
        // Empty ones do not use up lookups.
        let mut blanks = vec!["<>".to_string(); 100];
        blanks.push("<real@x>".into());
        assert_eq!(thread_lookup_ids(&blanks, &[]), s(&["real@x"]));
        assert_eq!(normalize_message_id("  <a@b> "), Some("a@b".into()));
        assert_eq!(normalize_message_id("<>"), None);
    }

    #[test]
    fn membership_changes_skip_present_and_conflicting_mailboxes() {
        let (a, b, c) = (MailboxId(1), MailboxId(2), MailboxId(3));
        let current = [(a, Uid(5)), (b, Uid(6))];
        let (add, remove) = membership_changes(&current, &[a, c, c], &[a, b]);
        assert_eq!(add, vec![c]);
        assert_eq!(remove, vec![(b, Uid(6))]);
        assert!(append_mailboxes(&[]).is_err());
        assert_eq!(append_mailboxes(&[b, a, b]).ok(), Some(vec![b, a]));
        assert!(queued_recipients(&[]).is_err());
        let rcpts = queued_recipients(&["a@x".to_string()])
            .ok()
            .unwrap_or_default();
        assert_eq!(rcpts.len(), 1);
        assert_eq!(rcpts[0].status, RcptStatus::Pending);
        assert_eq!(stored_size(b"abc", "email").ok(), Some(3));
        let json = recipients_to_json(&rcpts).unwrap_or_default();
        let back = recipients_from_json(QueueId(1), &json)
            .ok()
            .unwrap_or_default();
        assert_eq!(back.len(), 1);
        assert!(recipients_from_json(QueueId(1), "[").is_err());
    }

    #[test]
    fn a_queue_entry_is_done_once_all_are_final_and_failures_reported() {
        let rcpt = |status| QueueRcpt {
            address: "a@x".into(),
            status,
            last_error: None,
        };
        let mut entry = Queued {
            id: QueueId(1),
            sender: String::new(),
            recipients: vec![rcpt(RcptStatus::Delivered), rcpt(RcptStatus::Pending)],
            blob: crate::BlobHash(String::new()),
            size: 0,
            created_at: 0,
            next_attempt: 0,
            attempts: 0,
            expires_at: 0,
            dsn_sent: false,
            lease_owner: None,
            lease_until: 0,
        };
        assert!(!queue_entry_done(&entry));
        entry.recipients[1].status = RcptStatus::Failed;
        assert!(!queue_entry_done(&entry), "the failure is not reported yet");
        entry.dsn_sent = true;
        assert!(queue_entry_done(&entry));
    }
}
