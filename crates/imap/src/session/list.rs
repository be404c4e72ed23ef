//! LIST (RFC 9051 §6.3.9, RFC 5258 LIST-EXTENDED, RFC 6154 SPECIAL-USE, RFC 5819
//! LIST-STATUS) and LSUB (RFC 3501 §6.3.9).

use super::mailboxes::SEPARATOR;
use super::{CmdResult, Done, Session};
use crate::parser::ListCommand;
use crate::response::write_mailbox;
use bulwark_store::Mailbox;
use std::collections::{BTreeMap, BTreeSet};

/// Matches an IMAP LIST pattern: `*` matches anything, `%` anything but the separator
/// (RFC 9051 §6.3.9). Iterative with backtracking bounded by O(n·m).
pub(crate) fn pattern_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // dp[j] = pattern[..i] matches name[..j]
    let mut dp = vec![false; n.len() + 1];
    dp[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' | '%' => {
                let mut reach = false;
                for j in 0..=n.len() {
                    reach |= dp[j];
                    next[j] = reach;
                    // `%` cannot cross the hierarchy separator.
                    if pc == '%' && j < n.len() && n[j] == SEPARATOR {
                        reach = false;
                    }
                }
            }
            c => {
                for j in 0..n.len() {
                    if dp[j] && c == n[j] {
                        next[j + 1] = true;
                    }
                }
            }
        }
        dp = next;
    }
    dp[n.len()]
}

/// One LIST candidate: an existing mailbox or a missing parent of one.
struct Entry<'a> {
    mailbox: Option<&'a Mailbox>,
    has_children: bool,
}

impl Session {
    pub(crate) async fn cmd_list(&mut self, cmd: ListCommand, out: &mut Vec<u8>) -> CmdResult {
        let utf8 = self.utf8();
        // RFC 9051 §6.3.9: an empty pattern asks for the separator and root.
        if cmd.patterns.len() == 1 && cmd.patterns[0].is_empty() {
            out.extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            return Done::new("LIST completed");
        }
        let account = self.account_id()?;
        let mailboxes = self.store.mailbox_list(account).await?;
        let reference = self.decode_mailbox_name(&cmd.reference);
        let patterns: Vec<String> = cmd
            .patterns
            .iter()
            .map(|p| {
                let p = self.decode_mailbox_name(p);
                let full = if reference.is_empty() || p.starts_with(SEPARATOR) {
                    p
                } else if reference.ends_with(SEPARATOR) {
                    format!("{reference}{p}")
                } else {
                    format!("{reference}{SEPARATOR}{p}")
                };
                crate::parser::normalize_inbox(full)
            })
            .collect();

        let mut entries: BTreeMap<String, Entry<'_>> = BTreeMap::new();
        for m in &mailboxes {
            entries
                .entry(m.name.clone())
                .or_insert(Entry {
                    mailbox: None,
                    has_children: false,
                })
                .mailbox = Some(m);
            // Superiors: existing or not, they have children.
            let mut path = m.name.as_str();
            while let Some((parent, _)) = path.rsplit_once(SEPARATOR) {
                entries
                    .entry(parent.to_string())
                    .or_insert(Entry {
                        mailbox: None,
                        has_children: false,
                    })
                    .has_children = true;
                path = parent;
            }
        }
        // Subscriptions are names (RFC 3501 §6.3.6): with orphans when asked about them.
        let subscribed: BTreeSet<String> = if cmd.select_subscribed || cmd.return_subscribed {
            self.subscribed_names(&mailboxes).await?
        } else {
            BTreeSet::new()
        };
        // RFC 5258 §3.5: with SUBSCRIBED RECURSIVEMATCH, names with a subscribed descendant
        // are returned with CHILDINFO ("SUBSCRIBED") even when not subscribed themselves.
        let recursive_subscribed = cmd.select_subscribed && cmd.select_recursive_match;
        let mut child_subscribed: BTreeSet<String> = BTreeSet::new();
        if recursive_subscribed {
            for name in &subscribed {
                let mut path = name.as_str();
                while let Some((parent, _)) = path.rsplit_once(SEPARATOR) {
                    child_subscribed.insert(parent.to_string());
                    path = parent;
                }
            }
        }
        if cmd.select_subscribed {
            // RFC 5258 §3.1: subscribed names without a mailbox are listed \NonExistent.
            for name in subscribed.iter().chain(child_subscribed.iter()) {
                entries.entry(name.clone()).or_insert(Entry {
                    mailbox: None,
                    has_children: false,
                });
            }
        }
        let matches = |name: &str| patterns.iter().any(|p| pattern_matches(p, name));
        let names: Vec<String> = entries.keys().cloned().collect();
        let mut listed = 0usize;
        for name in &names {
            let Some(entry) = entries.get(name) else {
                continue;
            };
            if !matches(name) {
                continue;
            }
            let is_subscribed = subscribed.contains(name);
            let childinfo = recursive_subscribed && child_subscribed.contains(name);
            if cmd.select_subscribed && !is_subscribed && !childinfo {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            match entry.mailbox {
                None if cmd.select_subscribed => {
                    if is_subscribed {
                        attrs.push("\\Subscribed");
                    }
                    attrs.push("\\NonExistent");
                }
                None => {
                    // A missing superior is listed only when none of its inferiors is
                    // (the `%` case, RFC 9051 §6.3.9); RFC 5258 §3: \NonExistent.
                    let prefix = format!("{name}{SEPARATOR}");
                    if names.iter().any(|n| n.starts_with(&prefix) && matches(n)) {
                        continue;
                    }
                    if cmd.select_special_use {
                        continue;
                    }
                    attrs.push("\\NonExistent");
                    attrs.push("\\Noselect");
                }
                Some(m) => {
                    let special = m.role.and_then(|r| r.imap_attribute());
                    if cmd.select_special_use && special.is_none() {
                        continue;
                    }
                    if (cmd.return_subscribed || cmd.select_subscribed) && is_subscribed {
                        attrs.push("\\Subscribed");
                    }
                    if let Some(s) = special {
                        attrs.push(s);
                    }
                }
            }
            if entry.mailbox.is_some() || entry.has_children {
                attrs.push(if entry.has_children {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            out.extend_from_slice(format!("* LIST ({}) \"/\" ", attrs.join(" ")).as_bytes());
            write_mailbox(out, name, utf8);
            if childinfo {
                // RFC 5258 §3.5 / §9 `childinfo-extended-item`.
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            listed += 1;
            if let (Some(items), Some(m)) = (&cmd.return_status, entry.mailbox)
                && let Err(e) = self.write_status(m, items, out).await
            {
                // RFC 5819 §2: a STATUS failure does not fail the LIST.
                tracing::debug!(?e, "LIST-STATUS skipped a mailbox");
            }
        }
        tracing::trace!(listed, "LIST");
        Done::new("LIST completed")
    }

    /// RFC 3501 §6.3.9 (deprecated in IMAP4rev2 but still used by clients).
    pub(crate) async fn cmd_lsub(
        &mut self,
        reference: &str,
        pattern: &str,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let utf8 = self.utf8();
        let account = self.account_id()?;
        let mailboxes = self.store.mailbox_list(account).await?;
        let reference = self.decode_mailbox_name(reference);
        let pattern = self.decode_mailbox_name(pattern);
        let full = crate::parser::normalize_inbox(format!("{reference}{pattern}"));
        let existing: BTreeSet<&str> = mailboxes.iter().map(|m| m.name.as_str()).collect();
        let subscribed = self.subscribed_names(&mailboxes).await?;
        // Subscribed names and their superiors (RFC 3501 §6.3.9: with "%", a superior of
        // a subscribed name that is not subscribed itself is returned \Noselect).
        let mut candidates: BTreeSet<String> = subscribed.clone();
        for name in &subscribed {
            let mut path = name.as_str();
            while let Some((parent, _)) = path.rsplit_once(SEPARATOR) {
                candidates.insert(parent.to_string());
                path = parent;
            }
        }
        for name in candidates.iter().filter(|n| pattern_matches(&full, n)) {
            let attrs = if subscribed.contains(name) {
                // A subscribed name without a mailbox cannot be selected.
                if existing.contains(name.as_str()) {
                    ""
                } else {
                    "\\Noselect"
                }
            } else {
                // Only when no subscribed inferior is listed itself (the `*` case lists
                // the inferiors instead).
                let prefix = format!("{name}{SEPARATOR}");
                if subscribed
                    .iter()
                    .any(|s| s.starts_with(&prefix) && pattern_matches(&full, s))
                {
                    continue;
                }
                "\\Noselect"
            };
            out.extend_from_slice(format!("* LSUB ({attrs}) \"/\" ").as_bytes());
            write_mailbox(out, name, utf8);
            out.extend_from_slice(b"\r\n");
        }
        Done::new("LSUB completed")
    }
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn list_wildcards_follow_rfc_semantics() {
        assert!(pattern_matches("*", "a/b/c"));
        assert!(pattern_matches("%", "INBOX"));
        assert!(!pattern_matches("%", "a/b"));
        assert!(pattern_matches("a/%", "a/b"));
        assert!(!pattern_matches("a/%", "a/b/c"));
        assert!(pattern_matches("a/*", "a/b/c"));
        assert!(pattern_matches("IN%", "INBOX"));
        assert!(!pattern_matches("IN%", "Sent"));
        assert!(pattern_matches("%/%", "a/b"));
        assert!(pattern_matches("*c", "a/b/c"));
        assert!(!pattern_matches("", "a"));
        assert!(pattern_matches("a%b%c", "axbyc"));
    }
}
