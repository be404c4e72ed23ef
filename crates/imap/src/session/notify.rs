//! NOTIFY (RFC 5465): which changes of which mailboxes a session is told about, and when.
//!
//! The selected mailbox (SELECTED, SELECTED-DELAYED) gets the usual EXISTS / EXPUNGE /
//! FETCH responses, but also between commands (the connection shell asks for them when a
//! change arrives, see [`Session::notify_between_commands`]); with SELECTED-DELAYED,
//! expunges still wait for a command that allows them (RFC 5465 §5.1). `MessageNew` with
//! FETCH items sends those for each new message.
//!
//! Other mailboxes are compared with what the session last reported (names, subscription,
//! counts): `MessageNew`/`MessageExpunge`/`FlagChange` as `* STATUS`, `MailboxName` as
//! `* LIST` (with `OLDNAME` after a rename, `\NonExistent` after a delete, RFC 5465 §5.4),
//! `SubscriptionChange` as `* LIST` with or without `\Subscribed` (§5.5). The changes are
//! read from the store when its change feed reports one, so they come from every node.

use super::{CmdError, CmdResult, Done, Session, State};
use crate::parser::{
    FetchAttr, FetchCommand, NotifyEvent, NotifyFilter, NotifyGroup, NotifySet, SeqBound,
    SequenceSet,
};
use crate::response::write_mailbox;
use bulwark_store::{Mailbox, MailboxId, Role};
use std::collections::HashMap;

/// What the session last reported of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reported {
    name: String,
    subscribed: bool,
    highest_modseq: u64,
    /// `(MESSAGES, UIDNEXT, UNSEEN)`, read only for mailboxes with message events.
    counts: Option<(u32, u32, u32)>,
}

/// A session's NOTIFY SET.
#[derive(Debug, Clone)]
pub(crate) struct NotifyState {
    groups: Vec<NotifyGroup>,
    reported: HashMap<MailboxId, Reported>,
    /// METADATA entries as last seen, when a group wants metadata events.
    metadata: Option<super::metadata::EntryDigests>,
}

/// The events NOTIFY reports here (`NO [BADEVENT]` names them, RFC 5465 §3.1).
const SUPPORTED: &str = "BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange \
     MailboxMetadataChange ServerMetadataChange)";

fn has(events: &[NotifyEvent], want: fn(&NotifyEvent) -> bool) -> bool {
    events.iter().any(want)
}

fn message_events(events: &[NotifyEvent]) -> bool {
    has(events, |e| {
        matches!(
            e,
            NotifyEvent::MessageNew(_) | NotifyEvent::MessageExpunge | NotifyEvent::FlagChange
        )
    })
}

fn is_selected_filter(f: &NotifyFilter) -> bool {
    matches!(f, NotifyFilter::Selected | NotifyFilter::SelectedDelayed)
}

/// Does a (non-SELECTED) filter take this mailbox (RFC 5465 §6)?
fn filter_matches(filter: &NotifyFilter, name: &str, role: Option<Role>, subscribed: bool) -> bool {
    match filter {
        NotifyFilter::Selected | NotifyFilter::SelectedDelayed => false,
        // Mail is delivered to INBOX (mail rules may file it elsewhere, but INBOX is the
        // mailbox delivery names).
        NotifyFilter::Inboxes => role == Some(Role::Inbox),
        NotifyFilter::Personal => true,
        NotifyFilter::Subscribed => subscribed,
        NotifyFilter::Subtree(roots) => roots.iter().any(|r| {
            name == r
                || name
                    .strip_prefix(r.as_str())
                    .is_some_and(|s| s.starts_with('/'))
        }),
        NotifyFilter::Mailboxes(names) => names.iter().any(|n| n == name),
    }
}

/// RFC 5465 §3.1 / §5: checks a NOTIFY SET before it replaces the current one.
fn check_set(set: &NotifySet) -> Result<(), CmdError> {
    for g in &set.groups {
        if g.events
            .iter()
            .any(|e| matches!(e, NotifyEvent::Other(_) | NotifyEvent::AnnotationChange))
        {
            return Err(CmdError::no(SUPPORTED, "NOTIFY: an event is not supported"));
        }
        let new = has(&g.events, |e| matches!(e, NotifyEvent::MessageNew(_)));
        let expunge = has(&g.events, |e| matches!(e, NotifyEvent::MessageExpunge));
        let flags = has(&g.events, |e| matches!(e, NotifyEvent::FlagChange));
        // RFC 5465 §5: MessageNew and MessageExpunge go together; FlagChange needs both.
        if new != expunge || (flags && !new) {
            return Err(CmdError::Bad(
                "NOTIFY: MessageNew and MessageExpunge go together, and FlagChange needs both"
                    .into(),
            ));
        }
        // RFC 5465 §5.2: FETCH items only for the selected mailbox.
        let fetch_items = has(
            &g.events,
            |e| matches!(e, NotifyEvent::MessageNew(a) if !a.is_empty()),
        );
        if fetch_items && !is_selected_filter(&g.filter) {
            return Err(CmdError::Bad(
                "NOTIFY: MessageNew FETCH items are only for SELECTED".into(),
            ));
        }
        if is_selected_filter(&g.filter)
            && has(&g.events, |e| {
                matches!(
                    e,
                    NotifyEvent::MailboxName | NotifyEvent::SubscriptionChange
                )
            })
        {
            return Err(CmdError::Bad(
                "NOTIFY: MailboxName and SubscriptionChange do not apply to SELECTED".into(),
            ));
        }
    }
    Ok(())
}

impl NotifyState {
    /// Does any group ask for METADATA changes (RFC 5465 §5.7–§5.8)?
    fn wants_metadata(&self) -> bool {
        self.groups.iter().any(|g| {
            has(&g.events, |e| {
                matches!(
                    e,
                    NotifyEvent::MailboxMetadataChange | NotifyEvent::ServerMetadataChange
                )
            })
        })
    }

    /// The SELECTED or SELECTED-DELAYED group, if any.
    fn selected_group(&self) -> Option<&NotifyGroup> {
        self.groups.iter().find(|g| is_selected_filter(&g.filter))
    }

    /// The events of the first non-SELECTED group whose filter takes the mailbox.
    fn events_for(&self, name: &str, role: Option<Role>, subscribed: bool) -> &[NotifyEvent] {
        self.groups
            .iter()
            .find(|g| filter_matches(&g.filter, name, role, subscribed))
            .map_or(&[], |g| g.events.as_slice())
    }
}

impl Session {
    /// RFC 5465 §3: NOTIFY SET replaces what the session was told about; NOTIFY NONE stops
    /// it. With STATUS, the mailboxes with message events get a `* STATUS` at once.
    pub(crate) async fn cmd_notify(
        &mut self,
        set: Option<NotifySet>,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let Some(set) = set else {
            self.notify = None;
            return Done::new("NOTIFY completed: no notifications");
        };
        check_set(&set)?;
        let mut state = NotifyState {
            groups: set.groups,
            reported: HashMap::new(),
            metadata: None,
        };
        if state.wants_metadata() {
            state.metadata = Some(self.metadata_digests().await?);
        }
        let mailboxes = self.store.mailbox_list(self.account_id()?).await?;
        let selected = self.selected().ok().map(|s| s.id);
        for m in &mailboxes {
            let events = state.events_for(&m.name, m.role, m.subscribed);
            let counts = if message_events(events) && Some(m.id) != selected {
                let st = self.store.mailbox_status(m.account, m.id).await?;
                Some((st.messages, st.uid_next.0, st.unseen))
            } else {
                None
            };
            if set.status
                && Some(m.id) != selected
                && let Some(c) = counts
            {
                self.write_notify_status(m, c, out);
            }
            state.reported.insert(
                m.id,
                Reported {
                    name: m.name.clone(),
                    subscribed: m.subscribed,
                    highest_modseq: m.highest_modseq.0,
                    counts,
                },
            );
        }
        self.notify = Some(Box::new(state));
        Done::new("NOTIFY completed")
    }

    fn write_notify_status(
        &self,
        m: &Mailbox,
        (messages, uid_next, unseen): (u32, u32, u32),
        out: &mut Vec<u8>,
    ) {
        out.extend_from_slice(b"* STATUS ");
        write_mailbox(out, &m.name, self.utf8());
        // RFC 5465 §5.2: with CONDSTORE on, HIGHESTMODSEQ too.
        let modseq = if self.enabled.condstore {
            format!(" HIGHESTMODSEQ {}", m.highest_modseq)
        } else {
            String::new()
        };
        out.extend_from_slice(
            format!(" (MESSAGES {messages} UIDNEXT {uid_next} UNSEEN {unseen}{modseq})\r\n")
                .as_bytes(),
        );
    }

    fn write_notify_list(&self, attrs: &str, name: &str, old: Option<&str>, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("* LIST ({attrs}) \"/\" ").as_bytes());
        write_mailbox(out, name, self.utf8());
        if let Some(old) = old {
            // RFC 5465 §5.4 with RFC 5258 §3.? `OLDNAME` extended data item.
            out.extend_from_slice(b" (\"OLDNAME\" (");
            write_mailbox(out, old, self.utf8());
            out.extend_from_slice(b"))");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Before a refresh of the selected mailbox: the SELECTED group and the last UID, when
    /// NOTIFY is on (for `MessageNew` FETCH items after it).
    pub(crate) fn notify_selected_before(
        &self,
    ) -> Option<(NotifyGroup, Option<bulwark_store::Uid>)> {
        let group = self.notify.as_ref()?.selected_group()?.clone();
        let last = self.selected().ok()?.view.last().map(|m| m.uid);
        Some((group, last))
    }

    /// After a refresh (end of a command, IDLE): NOTIFY's FETCH items for new messages of
    /// the selected mailbox and the other mailboxes' changes.
    pub(crate) async fn notify_after_sync(
        &mut self,
        before: Option<(NotifyGroup, Option<bulwark_store::Uid>)>,
        out: &mut Vec<u8>,
    ) {
        if self.notify.is_none() {
            return;
        }
        if let Some((group, last)) = before {
            self.notify_new_messages(&group, last, out).await;
        }
        self.notify_other_mailboxes(out).await;
    }

    /// Is NOTIFY on (the shell then waits for changes between commands too)?
    pub fn notify_active(&self) -> bool {
        self.notify.is_some()
    }

    /// Between commands, after [`Session::wait_for_any_change`]: the selected mailbox's
    /// changes (expunges only with SELECTED, not SELECTED-DELAYED) and the other
    /// mailboxes'.
    pub async fn notify_between_commands(&mut self, out: &mut Vec<u8>) {
        let Some(state) = &self.notify else {
            return;
        };
        if let Some(group) = state.selected_group().cloned()
            && !group.events.is_empty()
        {
            let allow_expunge = group.filter == NotifyFilter::Selected;
            let before = self
                .selected()
                .ok()
                .and_then(|s| s.view.last().map(|m| m.uid));
            if let Err(e) = self.sync(out, allow_expunge).await {
                tracing::warn!(error = %e, "IMAP NOTIFY: could not refresh the selected mailbox");
            }
            self.notify_new_messages(&group, before, out).await;
            self.context_updates(out).await;
        }
        self.notify_other_mailboxes(out).await;
    }

    /// RFC 5465 §5.2: `MessageNew (fetch-att…)`: those items for each message after `before`.
    pub(crate) async fn notify_new_messages(
        &mut self,
        group: &NotifyGroup,
        before: Option<bulwark_store::Uid>,
        out: &mut Vec<u8>,
    ) {
        let Some(attrs) = group.events.iter().find_map(|e| match e {
            NotifyEvent::MessageNew(a) if !a.is_empty() => Some(a.clone()),
            _ => None,
        }) else {
            return;
        };
        let Ok(sel) = self.selected() else {
            return;
        };
        let from = before.map_or(1, |u| u.0.saturating_add(1));
        if sel.view.last().is_none_or(|m| m.uid.0 < from) {
            return;
        }
        let f = FetchCommand {
            uid: true,
            set: SequenceSet::Ranges(vec![(SeqBound::Value(from), SeqBound::Star)]),
            attrs: attrs
                .into_iter()
                .map(|a| match a {
                    // RFC 5465 §5.2: never sets \Seen.
                    FetchAttr::BodySection {
                        section, partial, ..
                    } => FetchAttr::BodySection {
                        section,
                        partial,
                        peek: true,
                    },
                    FetchAttr::Binary { part, partial, .. } => FetchAttr::Binary {
                        part,
                        partial,
                        peek: true,
                    },
                    other => other,
                })
                .collect(),
            changed_since: None,
            vanished: false,
        };
        if let Err(e) = self.cmd_fetch(f, out).await {
            tracing::debug!(?e, "IMAP NOTIFY: MessageNew FETCH failed");
        }
    }

    /// The other mailboxes' changes since they were last reported.
    pub(crate) async fn notify_other_mailboxes(&mut self, out: &mut Vec<u8>) {
        let Some(mut state) = self.notify.take() else {
            return;
        };
        if let Err(e) = self.notify_diff(&mut state, out).await {
            tracing::warn!(error = ?e, "IMAP NOTIFY: could not read the mailboxes");
        }
        self.notify = Some(state);
    }

    async fn notify_diff(
        &mut self,
        state: &mut NotifyState,
        out: &mut Vec<u8>,
    ) -> Result<(), CmdError> {
        let account = self.account_id()?;
        let mailboxes = self.store.mailbox_list(account).await?;
        let selected = self.selected().ok().map(|s| s.id);
        let mut now: HashMap<MailboxId, Reported> = HashMap::with_capacity(mailboxes.len());
        for m in &mailboxes {
            let events = state.events_for(&m.name, m.role, m.subscribed).to_vec();
            let old = state.reported.get(&m.id);
            let wants = |want: fn(&NotifyEvent) -> bool| has(&events, want);
            // RFC 5465 §5.4 MailboxName: created or renamed.
            if wants(|e| matches!(e, NotifyEvent::MailboxName)) {
                match old {
                    None => self.write_notify_list("", &m.name, None, out),
                    Some(o) if o.name != m.name => {
                        self.write_notify_list("", &m.name, Some(&o.name), out)
                    }
                    _ => {}
                }
            }
            // RFC 5465 §5.5 SubscriptionChange.
            if wants(|e| matches!(e, NotifyEvent::SubscriptionChange))
                && old.is_some_and(|o| o.subscribed != m.subscribed)
            {
                let attrs = if m.subscribed { "\\Subscribed" } else { "" };
                self.write_notify_list(attrs, &m.name, None, out);
            }
            // RFC 5465 §5.2/§5.3: message events of a mailbox that is not selected, as
            // STATUS; read only when its HIGHESTMODSEQ moved.
            let mut counts = old.and_then(|o| o.counts);
            if message_events(&events) && Some(m.id) != selected {
                let moved = old
                    .is_none_or(|o| o.highest_modseq != m.highest_modseq.0 || o.counts.is_none());
                if moved {
                    let st = self.store.mailbox_status(account, m.id).await?;
                    let fresh = (st.messages, st.uid_next.0, st.unseen);
                    let flags = wants(|e| matches!(e, NotifyEvent::FlagChange));
                    // RFC 5465 §5.3 FlagChange: UNSEEN, and with CONDSTORE any flag
                    // change (HIGHESTMODSEQ moved).
                    let condstore = self.enabled.condstore;
                    let changed = match counts {
                        Some((msgs, next, unseen)) => {
                            msgs != fresh.0
                                || next != fresh.1
                                || (flags && (unseen != fresh.2 || condstore))
                        }
                        None => old.is_some(),
                    };
                    if changed {
                        self.write_notify_status(m, fresh, out);
                    }
                    counts = Some(fresh);
                }
            } else {
                counts = None;
            }
            now.insert(
                m.id,
                Reported {
                    name: m.name.clone(),
                    subscribed: m.subscribed,
                    highest_modseq: m.highest_modseq.0,
                    counts,
                },
            );
        }
        // RFC 5465 §5.4: a deleted mailbox is listed \NonExistent.
        for (id, old) in &state.reported {
            if now.contains_key(id) {
                continue;
            }
            let events = state.events_for(&old.name, None, old.subscribed);
            if has(events, |e| matches!(e, NotifyEvent::MailboxName)) {
                self.write_notify_list("\\NonExistent", &old.name, None, out);
            }
        }
        state.reported = now;
        if let Some(before) = state.metadata.take() {
            let after = self.metadata_digests().await?;
            self.notify_metadata(state, &mailboxes, &before, &after, out);
            state.metadata = Some(after);
        }
        Ok(())
    }

    /// RFC 5465 §5.7 MailboxMetadataChange, §5.8 ServerMetadataChange: `* METADATA mailbox
    /// entry…` (RFC 5464 §4.4.2, the names only) for entries set, changed or removed.
    fn notify_metadata(
        &self,
        state: &NotifyState,
        mailboxes: &[Mailbox],
        before: &super::metadata::EntryDigests,
        after: &super::metadata::EntryDigests,
        out: &mut Vec<u8>,
    ) {
        let empty = std::collections::BTreeMap::new();
        let server_wanted = state.groups.iter().any(|g| {
            has(&g.events, |e| {
                matches!(e, NotifyEvent::ServerMetadataChange)
            })
        });
        let selected = self.selected().ok();
        let items: std::collections::BTreeSet<&String> =
            before.keys().chain(after.keys()).collect();
        for item in items {
            let old = before.get(item).unwrap_or(&empty);
            let new = after.get(item).unwrap_or(&empty);
            let changed: Vec<&String> = old
                .keys()
                .chain(new.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter(|k| old.get(*k) != new.get(*k))
                .collect();
            if changed.is_empty() {
                continue;
            }
            let name = if super::metadata::is_server_item(item) {
                if !server_wanted {
                    continue;
                }
                String::new()
            } else {
                let Some(m) = mailboxes.iter().find(|m| {
                    bulwark_store::collections::names::imap_metadata_item(m.id) == **item
                }) else {
                    continue;
                };
                // The selected mailbox follows the SELECTED group, the others their filter.
                let events = match (selected, state.selected_group()) {
                    (Some(s), Some(g)) if s.id == m.id => g.events.as_slice(),
                    _ => state.events_for(&m.name, m.role, m.subscribed),
                };
                if !has(events, |e| matches!(e, NotifyEvent::MailboxMetadataChange)) {
                    continue;
                }
                m.name.clone()
            };
            out.extend_from_slice(b"* METADATA ");
            write_mailbox(out, &name, self.utf8());
            for entry in changed {
                out.push(b' ');
                crate::response::write_string(out, entry.as_bytes(), self.utf8());
            }
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Between commands with NOTIFY on: waits until the store reports any change of the
    /// account (the selected mailbox is marked for a refresh when it is one of them).
    pub async fn wait_for_any_change(&mut self) {
        let Some((selected_id, rx)) = self.change_feed() else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(change) => {
                if let Some(id) = selected_id
                    && change.mailboxes.contains(&id)
                    && let State::Selected(_, s) = &mut self.state
                {
                    s.mark_dirty(Some(change.modseq));
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                if let State::Selected(_, s) = &mut self.state {
                    s.mark_dirty(None);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{T, logged_in};

    #[tokio::test]
    async fn notify_reports_other_mailboxes_as_status_and_list() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        t.ok("c CREATE Work").await;
        t.ok("s SELECT INBOX").await;
        // RFC 5465 §3.1 with STATUS: the current STATUS of the mailboxes with message events.
        let out = t
            .ok("n NOTIFY SET STATUS (SELECTED (MessageNew (UID) MessageExpunge)) (PERSONAL (MessageNew MessageExpunge MailboxName SubscriptionChange))")
            .await;
        assert!(
            out.contains("* STATUS \"Work\" (MESSAGES 0 UIDNEXT 1 UNSEEN 0)\r\n"),
            "{out}"
        );
        assert!(!out.contains("* STATUS \"INBOX\""), "{out}");
        // Another session's append to Work: STATUS (§5.2), here after this session's next
        // command; the shell also sends it between commands.
        let mut other = T::new_like(&t);
        other.share_feeds_with(&t);
        other
            .ok(&format!(
                "l LOGIN {} \"{}\"",
                super::super::tests_support::USER,
                super::super::tests_support::PASSWORD
            ))
            .await;
        other.append("Work", "", "Subject: x\r\n\r\nbody\r\n").await;
        let out = t.ok("a NOOP").await;
        assert!(
            out.contains("* STATUS \"Work\" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n"),
            "{out}"
        );
        // New mail in the selected mailbox: EXISTS and the MessageNew FETCH items.
        other
            .append("INBOX", "", "Subject: y\r\n\r\nbody\r\n")
            .await;
        let out = t.between_commands().await;
        assert!(out.contains("* 1 EXISTS\r\n"), "{out}");
        assert!(out.contains("* 1 FETCH (UID 1)\r\n"), "{out}");
        // §5.4 MailboxName: create, rename (OLDNAME), delete (\NonExistent).
        other.ok("c2 CREATE Fresh").await;
        other.ok("r RENAME Work Job").await;
        let out = t.ok("b NOOP").await;
        assert!(out.contains("* LIST () \"/\" \"Fresh\"\r\n"), "{out}");
        assert!(
            out.contains("* LIST () \"/\" \"Job\" (\"OLDNAME\" (\"Work\"))\r\n"),
            "{out}"
        );
        other.ok("d DELETE Fresh").await;
        let out = t.ok("b2 NOOP").await;
        assert!(
            out.contains("* LIST (\\NonExistent) \"/\" \"Fresh\"\r\n"),
            "{out}"
        );
        // §5.5 SubscriptionChange.
        other.ok("u SUBSCRIBE Job").await;
        let out = t.ok("b3 NOOP").await;
        assert!(
            out.contains("* LIST (\\Subscribed) \"/\" \"Job\"\r\n"),
            "{out}"
        );
        // While IDLE, another mailbox's change wakes the session too (older changes drained
        // first).
        let short = std::time::Duration::from_millis(50);
        while tokio::time::timeout(short, t.wait_for_change())
            .await
            .is_ok()
        {}
        other.append("Job", "", "Subject: w\r\n\r\nbody\r\n").await;
        let woke =
            tokio::time::timeout(std::time::Duration::from_secs(5), t.wait_for_change()).await;
        assert!(woke.is_ok(), "IDLE did not wake for another mailbox");
        let out = t.idle_update().await;
        assert!(
            out.contains("* STATUS \"Job\" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)"),
            "{out}"
        );
        // NOTIFY NONE stops it.
        t.ok("n2 NOTIFY NONE").await;
        other.append("Job", "", "Subject: z\r\n\r\nbody\r\n").await;
        let out = t.ok("b4 NOOP").await;
        assert!(!out.contains("* STATUS"), "{out}");
    }

    #[tokio::test]
    async fn flag_changes_elsewhere_come_as_status_with_highestmodseq() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        t.ok("c CREATE Work").await;
        t.append("Work", "", "Subject: x\r\n\r\nbody\r\n").await;
        t.ok("e ENABLE CONDSTORE").await;
        t.ok("n NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange))")
            .await;
        let mut other = T::new_like(&t);
        other.share_feeds_with(&t);
        other
            .ok(&format!(
                "l LOGIN {} \"{}\"",
                super::super::tests_support::USER,
                super::super::tests_support::PASSWORD
            ))
            .await;
        other.ok("s SELECT Work").await;
        other.ok("f STORE 1 +FLAGS (\\Seen)").await;
        // RFC 5465 §5.3: UNSEEN went down; with CONDSTORE the STATUS carries HIGHESTMODSEQ.
        let out = t.ok("a NOOP").await;
        assert!(
            out.contains("* STATUS \"Work\" (MESSAGES 1 UIDNEXT 2 UNSEEN 0 HIGHESTMODSEQ "),
            "{out}"
        );
        other.ok("f2 STORE 1 +FLAGS (\\Flagged)").await;
        let out = t.ok("b NOOP").await;
        assert!(
            out.contains("* STATUS \"Work\" (MESSAGES 1 UIDNEXT 2 UNSEEN 0 HIGHESTMODSEQ "),
            "{out}"
        );
    }

    #[tokio::test]
    async fn metadata_changes_come_as_unsolicited_metadata() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        t.ok("c CREATE Work").await;
        t.ok("n NOTIFY SET (MAILBOXES Work (MailboxMetadataChange)) (PERSONAL (ServerMetadataChange))")
            .await;
        let mut other = T::new_like(&t);
        other.share_feeds_with(&t);
        other
            .ok(&format!(
                "l LOGIN {} \"{}\"",
                super::super::tests_support::USER,
                super::super::tests_support::PASSWORD
            ))
            .await;
        // RFC 5465 §5.7 / §5.8 with RFC 5464 §4.4.2: the names of the changed entries.
        other
            .ok("m SETMETADATA Work (/private/comment \"a\" /shared/x \"b\")")
            .await;
        other
            .ok("m2 SETMETADATA \"\" (/shared/admin \"mailto:a@x\")")
            .await;
        other
            .ok("m3 SETMETADATA INBOX (/private/comment \"c\")")
            .await;
        let out = t.ok("a NOOP").await;
        assert!(
            out.contains("* METADATA \"Work\" \"/private/comment\" \"/shared/x\"\r\n"),
            "{out}"
        );
        assert!(
            out.contains("* METADATA \"\" \"/shared/admin\"\r\n"),
            "{out}"
        );
        assert!(!out.contains("* METADATA \"INBOX\""), "{out}");
        // A removal is a change too; nothing changed, nothing sent.
        other.ok("m4 SETMETADATA Work (/shared/x NIL)").await;
        let out = t.ok("b NOOP").await;
        assert!(
            out.contains("* METADATA \"Work\" \"/shared/x\"\r\n"),
            "{out}"
        );
        let out = t.ok("c2 NOOP").await;
        assert!(!out.contains("* METADATA"), "{out}");
    }

    #[tokio::test]
    async fn notify_set_is_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut t, _, _) = logged_in(dir.path()).await;
        // RFC 5465 §3.1: unknown or unsupported events are NO [BADEVENT].
        let out = t.run("a NOTIFY SET (PERSONAL (AnnotationChange))").await;
        assert!(out.contains("a NO [BADEVENT ("), "{out}");
        let out = t.run("b NOTIFY SET (PERSONAL (Frobnicate))").await;
        assert!(out.contains("b NO [BADEVENT ("), "{out}");
        // §5: MessageNew without MessageExpunge, FlagChange alone, FETCH items off SELECTED.
        for bad in [
            "c NOTIFY SET (PERSONAL (MessageNew))",
            "c NOTIFY SET (PERSONAL (FlagChange))",
            "c NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))",
            "c NOTIFY SET (SELECTED (MailboxName))",
        ] {
            let out = t.run(bad).await;
            assert!(out.contains("c BAD"), "{bad} → {out}");
        }
        t.ok("d NOTIFY SET (INBOXES (MessageNew MessageExpunge FlagChange)) (SUBTREE (Work Home) NONE)")
            .await;
        assert!(t.ok("k CAPABILITY").await.contains(" NOTIFY"));
    }
}
