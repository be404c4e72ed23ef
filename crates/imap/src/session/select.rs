//! SELECT/EXAMINE (RFC 9051 §6.3.2, RFC 7162 CONDSTORE/QRESYNC), CLOSE, UNSELECT,
//! EXPUNGE / UID EXPUNGE (RFC 4315), and keeping the session's view in step with the
//! store (RFC 9051 §5.2, §7.5.1).

use super::view::position_of;
use super::{Authed, CmdError, CmdResult, Done, Selected, Session, State, ViewMsg};
use crate::parser::{SelectParams, SequenceSet};
use crate::response::{compress_set, write_mailbox};
use bulwark_store::{MailboxDelta, ModSeq, StoreError, Uid};
use std::collections::{BTreeSet, HashSet};
use tokio::sync::broadcast::error::TryRecvError;

impl Session {
    /// Leaves the selected state (if any); returns the authenticated part and whether a
    /// mailbox was selected.
    fn deselect(&mut self) -> Option<(Authed, bool)> {
        match std::mem::replace(&mut self.state, State::Logout) {
            State::Authenticated(a) => Some((a, false)),
            State::Selected(a, _) => Some((a, true)),
            other => {
                self.state = other;
                None
            }
        }
    }

    pub(crate) async fn cmd_select(
        &mut self,
        name: &str,
        read_only: bool,
        params: SelectParams,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let name = self.decode_mailbox_name(name);
        if params.qresync.is_some() && !self.enabled.qresync {
            // RFC 7162 §3.2.5
            return Err(CmdError::Bad(
                "The QRESYNC parameter needs ENABLE QRESYNC first".into(),
            ));
        }
        if params.condstore {
            self.enabled.condstore = true;
        }
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        let Some((authed, was_selected)) = self.deselect() else {
            return Err(CmdError::Bad("not authenticated".into()));
        };
        let account = authed.account.id;
        self.state = State::Authenticated(authed);
        if was_selected {
            // RFC 9051 §7.1 / RFC 7162 §3.2.11: the previous mailbox is closed.
            out.extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        let mailbox = self
            .find_mailbox(&name)
            .await?
            .ok_or_else(|| CmdError::no("NONEXISTENT", format!("Mailbox {name} does not exist")))?;
        // The view holds at least every change up to `synced`; later ones may show up
        // again in the first resync (harmless: applying a change twice reports nothing new).
        let feed = self.feeds.get(mailbox.id);
        let (view, summary, synced) = feed
            .view(&*self.store, account, mailbox.id, mailbox.highest_modseq)
            .await?;
        let highest = summary.highest_modseq.max(mailbox.highest_modseq);
        let uid_next = view
            .last()
            .map_or(mailbox.uid_next.0, |m| mailbox.uid_next.0.max(m.uid.0 + 1));

        let announced: BTreeSet<String> = summary.custom_keywords.clone();
        if !announced.is_empty() {
            self.learn_keywords(&announced).await;
        }
        // RFC 3501 §2.3.2: messages no session was given as recent yet are recent here
        // (claimed unless EXAMINE); none for IMAP4rev2 (RFC 9051 §2.3.2).
        let mut recent = Vec::new();
        if !self.enabled.rev2
            && let Some(last) = view.last()
            && let Some(range) = super::recent::claim(
                &*self.store,
                &feed,
                account,
                mailbox.id,
                read_only,
                last.uid,
            )
            .await
        {
            recent.push(range);
        }
        let sel = Selected {
            id: mailbox.id,
            name: mailbox.name.clone(),
            read_only,
            view,
            synced,
            pending_expunge: Vec::new(),
            dirty: false,
            wanted: synced,
            feed,
            saved: Vec::new(),
            updates: None,
            announced,
            recent,
        };
        let view = &sel.view;
        out.extend_from_slice(format!("* {} EXISTS\r\n", view.len()).as_bytes());
        if !self.enabled.rev2 {
            // RFC 3501 §7.3.2
            out.extend_from_slice(format!("* {} RECENT\r\n", sel.recent_count()).as_bytes());
        }
        // RFC 3501 §7.2.6 / RFC 9051 §7.3.5: every keyword in use, announced.
        sel.write_flags(&self.keyword_case, out);
        // Not with UIDONLY: UNSEEN is a message number (RFC 9586 §3).
        if !self.enabled.rev2
            && !self.enabled.uidonly
            && let Some(i) = summary.first_unseen
        {
            out.extend_from_slice(
                format!("* OK [UNSEEN {}] First unseen message\r\n", i + 1).as_bytes(),
            );
        }
        out.extend_from_slice(
            format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", mailbox.uid_validity).as_bytes(),
        );
        out.extend_from_slice(
            format!("* OK [UIDNEXT {uid_next}] Predicted next UID\r\n").as_bytes(),
        );
        // RFC 7162 §3.1.2.1: always announced by a server with persistent modseqs.
        out.extend_from_slice(format!("* OK [HIGHESTMODSEQ {highest}] Highest\r\n").as_bytes());
        // RFC 8474 §4.2
        out.extend_from_slice(
            format!(
                "* OK [MAILBOXID ({})] Ok\r\n",
                crate::objectid::mailbox_id(mailbox.id)
            )
            .as_bytes(),
        );
        if self.enabled.rev2 {
            out.extend_from_slice(b"* LIST () \"/\" ");
            write_mailbox(out, &mailbox.name, self.utf8());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(q) = params.qresync
            && q.uid_validity == mailbox.uid_validity
        {
            // RFC 7162 §3.2.5.1: VANISHED (EARLIER) then FETCH for changes after modseq.
            match self
                .store
                .expunged_since(account, mailbox.id, ModSeq(q.modseq))
                .await
            {
                Ok(uids) => {
                    let largest = uid_next.saturating_sub(1);
                    let uids: Vec<u32> = uids
                        .into_iter()
                        .map(|u| u.0)
                        .filter(|&u| q.known_uids.as_ref().is_none_or(|k| k.contains(u, largest)))
                        .collect();
                    if !uids.is_empty() {
                        out.extend_from_slice(
                            format!("* VANISHED (EARLIER) {}\r\n", compress_set(&uids)).as_bytes(),
                        );
                    }
                }
                Err(e) => tracing::debug!(error = %e, "QRESYNC: no expunge history"),
            }
            for (i, m) in view
                .iter()
                .enumerate()
                .filter(|(_, m)| m.modseq.0 > q.modseq)
            {
                let uid = if self.enabled.uidonly {
                    String::new()
                } else {
                    format!("UID {} ", m.uid)
                };
                out.extend_from_slice(
                    format!(
                        "{}{uid}FLAGS {} MODSEQ ({}))\r\n",
                        super::fetch_head(self.enabled.uidonly, i, m.uid),
                        self.keyword_case
                            .flag_list(&m.keywords.list(), sel.is_recent(m.uid)),
                        m.modseq
                    )
                    .as_bytes(),
                );
            }
        }
        let Some((authed, _)) = self.deselect() else {
            return Err(CmdError::Bad("not authenticated".into()));
        };
        self.state = State::Selected(authed, sel);
        let code = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        Done::with_code(code, format!("{verb} completed"))
    }

    /// RFC 9051 §6.4.1: silently expunge `\Deleted` (unless read-only), then deselect.
    pub(crate) async fn cmd_close(&mut self) -> CmdResult {
        let account = self.account_id()?;
        let sel = self.selected()?;
        if !sel.read_only {
            let uids: Vec<Uid> = sel
                .view
                .iter()
                .filter(|m| m.is_deleted())
                .map(|m| m.uid)
                .collect();
            if !uids.is_empty() {
                self.store.mailbox_expunge(account, sel.id, &uids).await?;
            }
        }
        if let Some((authed, _)) = self.deselect() {
            self.state = State::Authenticated(authed);
        }
        Done::new("CLOSE completed")
    }

    /// RFC 3691 / RFC 9051 §6.4.2
    pub(crate) fn cmd_unselect(&mut self) -> CmdResult {
        if let Some((authed, _)) = self.deselect() {
            self.state = State::Authenticated(authed);
        }
        Done::new("UNSELECT completed")
    }

    /// EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1).
    pub(crate) async fn cmd_expunge(
        &mut self,
        uids: Option<SequenceSet>,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let account = self.account_id()?;
        let sel = self.selected()?;
        if sel.read_only {
            return Err(CmdError::no(
                "READ-ONLY",
                "The mailbox is read-only (EXAMINE)",
            ));
        }
        let candidates: Vec<usize> = match &uids {
            Some(set) => sel.resolve(set, true)?,
            None => (0..sel.view.len()).collect(),
        };
        let indices: Vec<usize> = candidates
            .into_iter()
            .filter(|&i| sel.view[i].is_deleted())
            .collect();
        let name = if uids.is_some() {
            "UID EXPUNGE"
        } else {
            "EXPUNGE"
        };
        if indices.is_empty() {
            return Done::new(format!("{name} completed"));
        }
        let to_remove: Vec<Uid> = indices.iter().map(|&i| sel.view[i].uid).collect();
        let modseq = self
            .store
            .mailbox_expunge(account, sel.id, &to_remove)
            .await?;
        self.report_expunged(&indices, out);
        if self.enabled.condstore {
            return Done::with_code(
                format!("HIGHESTMODSEQ {modseq}"),
                format!("{name} completed"),
            );
        }
        Done::new(format!("{name} completed"))
    }

    /// Removes `indices` (ascending) from the view and tells the client: `VANISHED` with
    /// QRESYNC (RFC 7162 §3.2.10), else one `EXPUNGE` each, numbers adjusted as we go.
    pub(crate) fn report_expunged(&mut self, indices: &[usize], out: &mut Vec<u8>) {
        // RFC 9586 §3.4: with UIDONLY, VANISHED replaces EXPUNGE too.
        let qresync = self.enabled.qresync || self.enabled.uidonly;
        let Ok(sel) = self.selected_mut() else { return };
        if indices.is_empty() {
            return;
        }
        if qresync {
            let uids: Vec<u32> = indices
                .iter()
                .filter_map(|&i| sel.view.get(i))
                .map(|m| m.uid.0)
                .collect();
            out.extend_from_slice(format!("* VANISHED {}\r\n", compress_set(&uids)).as_bytes());
        } else {
            for (k, &i) in indices.iter().enumerate() {
                out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1 - k).as_bytes());
            }
        }
        let gone: BTreeSet<usize> = indices.iter().copied().collect();
        let mut idx = 0;
        sel.view.retain(|_| {
            let keep = !gone.contains(&idx);
            idx += 1;
            keep
        });
    }

    /// Reports other sessions' changes to the selected mailbox (RFC 9051 §5.2): new
    /// messages (`EXISTS`), flag changes (`FETCH`), and — when allowed — expunges. Reads
    /// only what changed since the view was last brought up to date.
    pub(crate) async fn sync(
        &mut self,
        out: &mut Vec<u8>,
        allow_expunge: bool,
    ) -> Result<(), StoreError> {
        let (account, id, since, wanted, feed) = match &mut self.state {
            State::Selected(a, s) => {
                loop {
                    match a.changes.try_recv() {
                        Ok(c) if c.mailboxes.contains(&s.id) => s.mark_dirty(Some(c.modseq)),
                        Ok(_) => {}
                        Err(TryRecvError::Lagged(_)) => s.mark_dirty(None),
                        Err(_) => break,
                    }
                }
                if !s.dirty && (s.pending_expunge.is_empty() || !allow_expunge) {
                    return Ok(());
                }
                if !s.dirty {
                    // Only expunges held back earlier are left to report.
                    let pending = std::mem::take(&mut s.pending_expunge);
                    self.report_pending_expunges(pending, out);
                    return Ok(());
                }
                (a.account.id, s.id, s.synced, s.wanted, s.feed.clone())
            }
            State::Authenticated(a) => {
                while !matches!(
                    a.changes.try_recv(),
                    Err(TryRecvError::Empty | TryRecvError::Closed)
                ) {}
                return Ok(());
            }
            _ => return Ok(()),
        };
        let delta = feed.delta(&*self.store, account, id, since, wanted).await?;
        let used = super::keywords::customs(delta.changed.iter().flat_map(|m| &m.keywords));
        if !used.is_empty() {
            self.learn_keywords(&used).await;
        }
        if let Some(last) = self.apply_delta(delta, allow_expunge, out) {
            // New messages: claim them as recent (RFC 3501 §2.3.2), then EXISTS and, for
            // IMAP4rev1 sessions, RECENT (RFC 3501 §7.3.1, §7.3.2).
            self.claim_recent(last).await;
            let rev2 = self.enabled.rev2;
            let State::Selected(_, sel) = &self.state else {
                return Ok(());
            };
            out.extend_from_slice(format!("* {} EXISTS\r\n", sel.view.len()).as_bytes());
            if !rev2 {
                out.extend_from_slice(format!("* {} RECENT\r\n", sel.recent_count()).as_bytes());
            }
        }
        Ok(())
    }

    /// Reports expunges that were held back, for UIDs still in the view.
    fn report_pending_expunges(&mut self, mut uids: Vec<Uid>, out: &mut Vec<u8>) {
        let Ok(sel) = self.selected_mut() else { return };
        uids.sort_unstable();
        uids.dedup();
        let gone: Vec<usize> = uids
            .iter()
            .filter_map(|&u| position_of(&sel.view, u))
            .collect();
        self.report_expunged(&gone, out);
    }

    /// Applies a [`MailboxDelta`]: expunges first (or held back), then flag changes of
    /// known messages, then new messages (RFC 9051 §7.4.1, §7.5.1). Returns the last UID
    /// when messages were added: the caller sends `EXISTS` after claiming `\Recent`.
    fn apply_delta(
        &mut self,
        delta: MailboxDelta,
        allow_expunge: bool,
        out: &mut Vec<u8>,
    ) -> Option<Uid> {
        let condstore = self.enabled.condstore;
        let Ok(sel) = self.selected_mut() else {
            return None;
        };
        sel.pending_expunge.extend(
            delta
                .expunged
                .iter()
                .copied()
                .filter(|&u| position_of(&sel.view, u).is_some()),
        );
        if allow_expunge && !sel.pending_expunge.is_empty() {
            let pending = std::mem::take(&mut sel.pending_expunge);
            self.report_pending_expunges(pending, out);
        }
        let State::Selected(_, sel) = &mut self.state else {
            return None;
        };
        let case = &self.keyword_case;
        let uidonly = self.enabled.uidonly;
        // RFC 3501 §7.2.6 / RFC 9051 §7.3.5: new keywords are announced before any FETCH
        // (this one or a later one) uses them.
        sel.announce(delta.changed.iter().flat_map(|m| &m.keywords), case, out);
        let expunged: HashSet<Uid> = sel.pending_expunge.iter().copied().collect();
        let last = sel.view.last().map_or(0, |m| m.uid.0);
        let before = sel.view.len();
        for meta in &delta.changed {
            if meta.uid.0 > last {
                if !expunged.contains(&meta.uid) {
                    sel.view.push(ViewMsg::from_meta(meta));
                }
                continue;
            }
            let Some(i) = position_of(&sel.view, meta.uid) else {
                continue;
            };
            let fresh = ViewMsg::from_meta(meta);
            let recent = sel.is_recent(meta.uid);
            let m = &mut sel.view[i];
            if fresh.keywords != m.keywords || (condstore && fresh.modseq != m.modseq) {
                let modseq = if condstore {
                    format!(" MODSEQ ({})", fresh.modseq)
                } else {
                    String::new()
                };
                let uid = if uidonly {
                    String::new()
                } else {
                    format!("UID {} ", fresh.uid)
                };
                out.extend_from_slice(
                    format!(
                        "{}{uid}FLAGS {}{modseq})\r\n",
                        super::fetch_head(uidonly, i, fresh.uid),
                        case.flag_list(&meta.keywords, recent)
                    )
                    .as_bytes(),
                );
            }
            *m = fresh;
        }
        sel.synced = sel.synced.max(delta.highest_modseq);
        sel.wanted = sel.synced;
        sel.dirty = false;
        (sel.view.len() != before)
            .then(|| sel.view.last().map(|m| m.uid))
            .flatten()
    }
}
