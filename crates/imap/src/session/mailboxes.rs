//! CREATE, DELETE, RENAME, SUBSCRIBE/UNSUBSCRIBE, STATUS, APPEND (RFC 9051 §6.3).

use super::{CmdError, CmdResult, Done, Session, State};
use crate::parser::{AppendMessage, StatusItem};
use crate::response::write_mailbox;
use bulwark_store::{Mailbox, MembershipUpdate, Role, imap_flag_to_keyword, now_unix};
use std::sync::Arc;

/// The hierarchy separator (RFC 9051 §5.1.2).
pub(crate) const SEPARATOR: char = '/';

/// Stored keywords from client flags: `\Recent` cannot be set (RFC 9051 §2.3.2),
/// duplicates collapse.
pub(crate) fn flags_to_keywords(flags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in flags {
        if f.eq_ignore_ascii_case("\\Recent") {
            continue;
        }
        let k = imap_flag_to_keyword(f);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

impl Session {
    pub(crate) async fn find_mailbox(&self, name: &str) -> Result<Option<Mailbox>, CmdError> {
        let account = self.account_id()?;
        let list = self.store.mailbox_list(account).await?;
        Ok(list.into_iter().find(|m| m.name == name))
    }

    fn valid_new_name(name: &str) -> Result<String, CmdError> {
        let name = name.trim_end_matches(SEPARATOR);
        if name.is_empty() || name.split(SEPARATOR).any(|p| p.is_empty()) {
            return Err(CmdError::no(
                "CANNOT",
                "Invalid mailbox name (empty hierarchy level)",
            ));
        }
        if name.chars().any(|c| c.is_control() || c == '*' || c == '%') {
            return Err(CmdError::no(
                "CANNOT",
                "Mailbox names cannot contain control characters, * or %",
            ));
        }
        Ok(name.to_string())
    }

    /// Creates the missing superiors of `name` (RFC 9051 §6.3.4: the server SHOULD).
    async fn create_parents(&self, name: &str) -> Result<(), CmdError> {
        let account = self.account_id()?;
        let existing: Vec<String> = self
            .store
            .mailbox_list(account)
            .await?
            .into_iter()
            .map(|m| m.name)
            .collect();
        let mut path = String::new();
        let parts: Vec<&str> = name.split(SEPARATOR).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !path.is_empty() {
                path.push(SEPARATOR);
            }
            path.push_str(part);
            if !existing.contains(&path) {
                self.store.mailbox_create(account, &path, None).await?;
            }
        }
        Ok(())
    }

    /// RFC 9051 §6.3.4, with RFC 6154 §3 `USE (...)` and RFC 8474 §4.1 `MAILBOXID`.
    pub(crate) async fn cmd_create(&mut self, name: &str, special_use: &[String]) -> CmdResult {
        let name = Self::valid_new_name(&self.decode_mailbox_name(name))?;
        if name == "INBOX" || self.find_mailbox(&name).await?.is_some() {
            return Err(CmdError::no(
                "ALREADYEXISTS",
                format!("Mailbox {name} already exists"),
            ));
        }
        let account = self.account_id()?;
        let role = self.special_use_role(special_use).await?;
        self.create_parents(&name).await?;
        let created = self.store.mailbox_create(account, &name, role).await?;
        // A subscribed name gets its mailbox back: the subscription is the mailbox's again.
        if self.remove_orphan_subscription(&name).await? {
            self.store
                .mailbox_set_subscribed(account, created.id, true)
                .await?;
        }
        // RFC 8474 §4.1: the new mailbox's id in the tagged OK.
        Done::with_code(
            format!("MAILBOXID ({})", crate::objectid::mailbox_id(created.id)),
            "CREATE completed",
        )
    }

    /// The store role for `CREATE ... (USE (...))`. RFC 6154 §3: when the special use
    /// cannot be given, the mailbox is not created and the answer is `NO [USEATTR]`. The
    /// store keeps one role per mailbox and each role on one mailbox of the account, and
    /// has no `\All` or `\Flagged` (virtual) mailboxes.
    async fn special_use_role(&self, attrs: &[String]) -> Result<Option<Role>, CmdError> {
        let mut role = None;
        for attr in attrs {
            let r = Role::ALL
                .into_iter()
                .find(|r| {
                    r.imap_attribute()
                        .is_some_and(|a| a.eq_ignore_ascii_case(attr))
                })
                .ok_or_else(|| {
                    CmdError::no(
                        "USEATTR",
                        format!("The special use {attr} cannot be given to a new mailbox"),
                    )
                })?;
            if role.is_some_and(|have| have != r) {
                return Err(CmdError::no(
                    "USEATTR",
                    "A mailbox can have only one special use here",
                ));
            }
            role = Some(r);
        }
        if let Some(r) = role {
            let account = self.account_id()?;
            if let Some(other) = self
                .store
                .mailbox_list(account)
                .await?
                .into_iter()
                .find(|m| m.role == Some(r))
            {
                return Err(CmdError::No {
                    code: Some("USEATTR"),
                    text: format!(
                        "{} already has the special use {}",
                        other.name,
                        r.imap_attribute().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(role)
    }

    /// RFC 9051 §6.3.5
    pub(crate) async fn cmd_delete(&mut self, name: &str) -> CmdResult {
        let name = self.decode_mailbox_name(name);
        if name == "INBOX" {
            return Err(CmdError::no("CANNOT", "INBOX cannot be deleted"));
        }
        let mailbox = self
            .find_mailbox(&name)
            .await?
            .ok_or_else(|| CmdError::no("NONEXISTENT", format!("Mailbox {name} does not exist")))?;
        if let State::Selected(_, s) = &self.state
            && s.id == mailbox.id
        {
            return Err(CmdError::no(
                "INUSE",
                "The selected mailbox cannot be deleted (CLOSE it first)",
            ));
        }
        if mailbox.subscribed {
            // RFC 3501 §6.3.4 / §6.3.6: DELETE does not unsubscribe the name. Written first:
            // if the delete then fails, the name is subscribed either way.
            self.add_orphan_subscription(&name).await?;
        }
        self.store
            .mailbox_delete(self.account_id()?, mailbox.id)
            .await?;
        self.drop_recent_claim(self.account_id()?, mailbox.id).await;
        Done::new("DELETE completed")
    }

    /// RFC 9051 §6.3.6; renaming INBOX moves its messages to the new mailbox and leaves
    /// INBOX empty.
    pub(crate) async fn cmd_rename(&mut self, from: &str, to: &str) -> CmdResult {
        let account = self.account_id()?;
        let from = self.decode_mailbox_name(from);
        let to = Self::valid_new_name(&self.decode_mailbox_name(to))?;
        let source = self
            .find_mailbox(&from)
            .await?
            .ok_or_else(|| CmdError::no("NONEXISTENT", format!("Mailbox {from} does not exist")))?;
        if to == "INBOX" || self.find_mailbox(&to).await?.is_some() {
            return Err(CmdError::no(
                "ALREADYEXISTS",
                format!("Mailbox {to} already exists"),
            ));
        }
        if to.starts_with(&format!("{from}{SEPARATOR}")) {
            return Err(CmdError::no(
                "CANNOT",
                "A mailbox cannot be moved below itself",
            ));
        }
        self.create_parents(&to).await?;
        if from == "INBOX" {
            let dest = self.store.mailbox_create(account, &to, None).await?;
            let messages = self.store.mailbox_messages(account, source.id).await?;
            let updates: Vec<MembershipUpdate> = messages
                .iter()
                .map(|m| MembershipUpdate {
                    email: m.email,
                    add: vec![dest.id],
                    remove: vec![source.id],
                })
                .collect();
            if !updates.is_empty() {
                self.store.email_set_mailboxes(account, updates).await?;
            }
        } else {
            self.store.mailbox_rename(account, source.id, &to).await?;
            if let State::Selected(_, s) = &mut self.state
                && s.id == source.id
            {
                s.name = to;
            }
        }
        Done::new("RENAME completed")
    }

    /// RFC 9051 §6.3.7–§6.3.8
    pub(crate) async fn cmd_subscribe(&mut self, name: &str, subscribe: bool) -> CmdResult {
        let name = self.decode_mailbox_name(name);
        let verb = if subscribe {
            "SUBSCRIBE"
        } else {
            "UNSUBSCRIBE"
        };
        let name = crate::parser::normalize_inbox(name);
        match self.find_mailbox(&name).await? {
            Some(mailbox) => {
                self.store
                    .mailbox_set_subscribed(self.account_id()?, mailbox.id, subscribe)
                    .await?;
                if !subscribe {
                    self.remove_orphan_subscription(&name).await?;
                }
            }
            // RFC 3501 §6.3.6: subscriptions are names; a name without a mailbox may be
            // subscribed (the server MAY check, we do not) and unsubscribed.
            None if subscribe => {
                if Self::valid_new_name(&name).is_err() {
                    return Err(CmdError::no(
                        "CANNOT",
                        format!("Invalid mailbox name {name}"),
                    ));
                }
                let orphans = self.orphan_subscriptions().await?;
                if !orphans.contains(&name)
                    && orphans.len() >= super::subscriptions::MAX_ORPHAN_SUBSCRIPTIONS
                {
                    return Err(CmdError::no(
                        "LIMIT",
                        "Too many subscriptions to names without a mailbox",
                    ));
                }
                self.add_orphan_subscription(&name).await?;
            }
            None => {
                if !self.remove_orphan_subscription(&name).await? {
                    return Err(CmdError::no(
                        "NONEXISTENT",
                        format!("{name} is not subscribed"),
                    ));
                }
            }
        }
        Done::new(format!("{verb} completed"))
    }

    /// `* STATUS name (items)` for one mailbox (also used by LIST-STATUS, RFC 5819).
    pub(crate) async fn write_status(
        &self,
        mailbox: &Mailbox,
        items: &[StatusItem],
        out: &mut Vec<u8>,
    ) -> Result<(), CmdError> {
        let account = self.account_id()?;
        let st = self.store.mailbox_status(account, mailbox.id).await?;
        let mut parts = Vec::new();
        for item in items {
            parts.push(match item {
                StatusItem::Messages => format!("MESSAGES {}", st.messages),
                StatusItem::UidNext => format!("UIDNEXT {}", st.uid_next),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", st.uid_validity),
                StatusItem::Unseen => format!("UNSEEN {}", st.unseen),
                // RFC 3501 §6.3.10: messages no session was given as recent yet.
                StatusItem::Recent => format!(
                    "RECENT {}",
                    self.unclaimed_recent(account, mailbox.id, st.messages, st.uid_next)
                        .await?
                ),
                StatusItem::Size => format!("SIZE {}", st.size),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", st.highest_modseq),
                // RFC 8474 §4.3
                StatusItem::MailboxId => {
                    format!("MAILBOXID ({})", crate::objectid::mailbox_id(mailbox.id))
                }
                StatusItem::Deleted => {
                    let msgs = self.store.mailbox_messages(account, mailbox.id).await?;
                    let n = msgs
                        .iter()
                        .filter(|m| m.keywords.iter().any(|k| k == "$deleted"))
                        .count();
                    format!("DELETED {n}")
                }
                // RFC 9208 §4.2: what expunging the `\Deleted` messages would free.
                StatusItem::DeletedStorage => {
                    let msgs = self.store.mailbox_messages(account, mailbox.id).await?;
                    let n: u64 = msgs
                        .iter()
                        .filter(|m| m.keywords.iter().any(|k| k == "$deleted"))
                        .map(|m| u64::from(m.size))
                        .sum();
                    format!("DELETED-STORAGE {n}")
                }
            });
        }
        out.extend_from_slice(b"* STATUS ");
        write_mailbox(out, &mailbox.name, self.utf8());
        out.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Ok(())
    }

    /// RFC 9051 §6.3.11
    pub(crate) async fn cmd_status(
        &mut self,
        name: &str,
        items: &[StatusItem],
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let name = self.decode_mailbox_name(name);
        let mailbox = self
            .find_mailbox(&name)
            .await?
            .ok_or_else(|| CmdError::no("NONEXISTENT", format!("Mailbox {name} does not exist")))?;
        if items.contains(&StatusItem::HighestModSeq) {
            self.enabled.condstore = true;
        }
        self.write_status(&mailbox, items, out).await?;
        Done::new("STATUS completed")
    }

    /// RFC 9051 §6.3.12, RFC 4315 APPENDUID, RFC 3502 MULTIAPPEND: all messages in one
    /// store call, so either all are appended or none (RFC 3502 §6.3.11). `OK` only after the
    /// store committed.
    pub(crate) async fn cmd_append(
        &mut self,
        name: &str,
        messages: Vec<AppendMessage>,
    ) -> CmdResult {
        let (mailbox, uids) = self.append_messages(name, messages).await?;
        // RFC 4315 §3: `APPENDUID uidvalidity uid-set`, one UID per message in order.
        Done::with_code(
            format!(
                "APPENDUID {} {}",
                mailbox.uid_validity,
                crate::response::compress_set(&uids)
            ),
            "APPEND completed",
        )
    }

    /// Appends `messages` to the mailbox `name` in one store call (all or none); returns
    /// the mailbox and the new UIDs in order. APPEND and REPLACE (RFC 8508 §3.3).
    pub(crate) async fn append_messages(
        &mut self,
        name: &str,
        messages: Vec<AppendMessage>,
    ) -> Result<(Mailbox, Vec<u32>), CmdError> {
        let name = self.decode_mailbox_name(name);
        let account = self.account_id()?;
        let Some(mailbox) = self.find_mailbox(&name).await? else {
            return Err(CmdError::no(
                "TRYCREATE",
                format!("Mailbox {name} does not exist"),
            ));
        };
        // RFC 4469 §5: CATENATE builds the message first; a bad part fails the whole
        // APPEND (with MULTIAPPEND, all of its messages), before anything is stored.
        let mut messages = messages;
        for m in &mut messages {
            if !m.catenate.is_empty() {
                m.message = self.catenate(&m.catenate).await?;
            }
        }
        if messages.iter().any(|m| m.message.is_empty()) {
            return Err(CmdError::no(
                "CANNOT",
                "An empty message cannot be appended",
            ));
        }
        self.check_quota(messages.iter().map(|m| m.message.len() as u64).sum())
            .await?;
        let mut new = Vec::with_capacity(messages.len());
        for m in messages {
            self.remember_keyword_case(&m.flags).await;
            new.push(bulwark_core::new_email(
                vec![mailbox.id],
                Arc::new(m.message),
                flags_to_keywords(&m.flags),
                m.date.unwrap_or_else(now_unix),
            ));
        }
        let count = new.len();
        let appended = self.store.email_append(account, new).await?;
        let uids: Vec<u32> = appended
            .iter()
            .filter_map(|a| {
                a.uids
                    .iter()
                    .find(|(m, _)| *m == mailbox.id)
                    .map(|(_, u)| u.0)
            })
            .collect();
        if uids.len() != count {
            return Err(CmdError::no(
                "SERVERBUG",
                "The store did not report the new UIDs",
            ));
        }
        if let State::Selected(_, s) = &mut self.state
            && s.id == mailbox.id
        {
            s.mark_dirty(None);
        }
        Ok((mailbox, uids))
    }
}
