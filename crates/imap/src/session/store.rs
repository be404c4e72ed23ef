//! STORE (RFC 9051 §6.4.6, RFC 7162 §3.1.3 UNCHANGEDSINCE), COPY (RFC 9051 §6.4.7,
//! RFC 4315 COPYUID) and MOVE (RFC 6851).

use super::mailboxes::flags_to_keywords;
use super::{CmdError, CmdResult, Done, Keywords, Session, State};
use crate::parser::{AppendMessage, SeqBound, SequenceSet, StoreCommand, StoreOp};
use crate::response::{compress_set, ordered_set};
use bulwark_store::{EmailId, KeywordOp, KeywordUpdate, MembershipUpdate, ModSeq};
use std::collections::{HashMap, HashSet};

impl Session {
    pub(crate) async fn cmd_store(&mut self, s: StoreCommand, out: &mut Vec<u8>) -> CmdResult {
        let name = if s.uid { "UID STORE" } else { "STORE" };
        if s.unchanged_since.is_some() {
            self.enabled.condstore = true;
        }
        let condstore = self.enabled.condstore;
        let account = self.account_id()?;
        let sel = self.selected()?;
        if sel.read_only {
            return Err(CmdError::no(
                "READ-ONLY",
                "The mailbox is read-only (EXAMINE)",
            ));
        }
        let indices = sel.resolve(&s.set, s.uid)?;
        let keywords = flags_to_keywords(&s.flags);
        if s.op != StoreOp::Remove && !indices.is_empty() {
            // The case a client first writes a keyword in is the one IMAP shows.
            self.remember_keyword_case(&s.flags).await;
        }
        let sel = self.selected()?;
        let op = match s.op {
            StoreOp::Replace => KeywordOp::Replace,
            StoreOp::Add => KeywordOp::Add,
            StoreOp::Remove => KeywordOp::Remove,
        };
        let updates: Vec<KeywordUpdate> = indices
            .iter()
            .map(|&i| KeywordUpdate {
                email: sel.view[i].email,
                op,
                keywords: keywords.clone(),
                unchanged_since: s.unchanged_since.map(ModSeq),
            })
            .collect();
        let result = if updates.is_empty() {
            Default::default()
        } else {
            self.store.email_set_keywords(account, updates).await?
        };
        let updated: HashMap<EmailId, (ModSeq, Vec<String>)> = result
            .updated
            .into_iter()
            .map(|(e, m, k)| (e, (m, k)))
            .collect();
        let conflicts: HashSet<EmailId> = result.conflicts.into_iter().collect();
        let State::Selected(_, sel) = &mut self.state else {
            return Err(CmdError::Bad("no mailbox selected".into()));
        };
        let case = &self.keyword_case;
        let uidonly = self.enabled.uidonly;
        // RFC 3501 §7.2.6: keywords new to this session are announced first.
        sel.announce(updated.values().flat_map(|(_, k)| k), case, out);
        let mut modified = Vec::new();
        for &i in &indices {
            let recent = sel.view.get(i).is_some_and(|m| sel.is_recent(m.uid));
            let Some(m) = sel.view.get_mut(i) else {
                continue;
            };
            if conflicts.contains(&m.email) {
                modified.push(if s.uid { m.uid.0 } else { i as u32 + 1 });
                continue;
            }
            let changed = if let Some((modseq, kw)) = updated.get(&m.email) {
                m.modseq = *modseq;
                m.keywords = Keywords::from_stored(kw);
                true
            } else {
                false
            };
            // RFC 7162 §3.1.3: with CONDSTORE a changed message is reported with MODSEQ
            // even under .SILENT.
            if !s.silent || (condstore && changed) {
                let uid = if s.uid && !uidonly {
                    format!("UID {} ", m.uid)
                } else {
                    String::new()
                };
                let flags = if s.silent {
                    String::new()
                } else {
                    format!("FLAGS {}", case.flag_list(&m.keywords.list(), recent))
                };
                let modseq = if condstore {
                    format!("MODSEQ ({})", m.modseq)
                } else {
                    String::new()
                };
                let sep = if !flags.is_empty() && !modseq.is_empty() {
                    " "
                } else {
                    ""
                };
                out.extend_from_slice(
                    format!(
                        "{}{uid}{flags}{sep}{modseq})\r\n",
                        super::fetch_head(uidonly, i, m.uid)
                    )
                    .as_bytes(),
                );
            }
        }
        if !modified.is_empty() {
            return Done::with_code(
                format!("MODIFIED {}", compress_set(&modified)),
                format!("{name} completed"),
            );
        }
        Done::new(format!("{name} completed"))
    }

    pub(crate) async fn cmd_copy(&mut self, uid: bool, set: &SequenceSet, name: &str) -> CmdResult {
        let verb = if uid { "UID COPY" } else { "COPY" };
        let account = self.account_id()?;
        let name = self.decode_mailbox_name(name);
        let Some(dest) = self.find_mailbox(&name).await? else {
            return Err(CmdError::no(
                "TRYCREATE",
                format!("Mailbox {name} does not exist"),
            ));
        };
        let sel = self.selected()?;
        let indices = sel.resolve(set, uid)?;
        if indices.is_empty() {
            return Done::new(format!("{verb} completed (no messages)"));
        }
        let emails: Vec<EmailId> = indices.iter().map(|&i| sel.view[i].email).collect();
        let src_uid: HashMap<EmailId, u32> = indices
            .iter()
            .map(|&i| (sel.view[i].email, sel.view[i].uid.0))
            .collect();
        let adding: u64 = indices.iter().map(|&i| u64::from(sel.view[i].size)).sum();
        self.check_quota(adding).await?;
        let copied = self.store.email_copy(account, &emails, dest.id).await?;
        let (src, dst): (Vec<u32>, Vec<u32>) = copied
            .iter()
            .filter_map(|(s, _, u)| src_uid.get(s).map(|su| (*su, u.0)))
            .unzip();
        if let State::Selected(_, s) = &mut self.state
            && s.id == dest.id
        {
            s.mark_dirty(None);
        }
        Done::with_code(
            format!(
                "COPYUID {} {} {}",
                dest.uid_validity,
                ordered_set(&src),
                ordered_set(&dst)
            ),
            format!("{verb} completed"),
        )
    }

    /// RFC 6851 §3.3: untagged `OK [COPYUID]`, then EXPUNGE/VANISHED, then tagged OK.
    pub(crate) async fn cmd_move(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        name: &str,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let verb = if uid { "UID MOVE" } else { "MOVE" };
        let account = self.account_id()?;
        let name = self.decode_mailbox_name(name);
        let Some(dest) = self.find_mailbox(&name).await? else {
            return Err(CmdError::no(
                "TRYCREATE",
                format!("Mailbox {name} does not exist"),
            ));
        };
        let sel = self.selected()?;
        if sel.read_only {
            return Err(CmdError::no(
                "READ-ONLY",
                "The mailbox is read-only (EXAMINE)",
            ));
        }
        if dest.id == sel.id {
            return Err(CmdError::no(
                "CANNOT",
                "Source and destination are the same mailbox",
            ));
        }
        let indices = sel.resolve(set, uid)?;
        if indices.is_empty() {
            return Done::new(format!("{verb} completed (no messages)"));
        }
        let source = sel.id;
        let updates: Vec<MembershipUpdate> = indices
            .iter()
            .map(|&i| MembershipUpdate {
                email: sel.view[i].email,
                add: vec![dest.id],
                remove: vec![source],
            })
            .collect();
        let src_uid: HashMap<EmailId, u32> = indices
            .iter()
            .map(|&i| (sel.view[i].email, sel.view[i].uid.0))
            .collect();
        let moved = self.store.email_set_mailboxes(account, updates).await?;
        let (src, dst): (Vec<u32>, Vec<u32>) = moved
            .iter()
            .filter_map(|(email, pairs)| {
                let new = pairs.iter().find(|(m, _)| *m == dest.id)?.1;
                Some((*src_uid.get(email)?, new.0))
            })
            .unzip();
        out.extend_from_slice(
            format!(
                "* OK [COPYUID {} {} {}] Moved\r\n",
                dest.uid_validity,
                ordered_set(&src),
                ordered_set(&dst)
            )
            .as_bytes(),
        );
        self.report_expunged(&indices, out);
        Done::new(format!("{verb} completed"))
    }

    /// RFC 8508 §3.3 REPLACE / UID REPLACE: the new message is appended first (APPEND's
    /// rules: TRYCREATE, one store call); only once it is stored is the old one expunged, so
    /// a failed append leaves the original in place. Untagged `OK [APPENDUID]`, then
    /// EXPUNGE/VANISHED, then the tagged OK (as MOVE, RFC 6851 §3.3).
    pub(crate) async fn cmd_replace(
        &mut self,
        uid: bool,
        target: SeqBound,
        name: &str,
        message: AppendMessage,
        out: &mut Vec<u8>,
    ) -> CmdResult {
        let verb = if uid { "UID REPLACE" } else { "REPLACE" };
        let account = self.account_id()?;
        let sel = self.selected()?;
        if sel.read_only {
            return Err(CmdError::no(
                "READ-ONLY",
                "The mailbox is read-only (EXAMINE)",
            ));
        }
        let source = sel.id;
        let Some(&index) = sel
            .resolve(&SequenceSet::Ranges(vec![(target, target)]), uid)?
            .first()
        else {
            // RFC 8508 §3.3: a UID that names no message is NO.
            return Err(CmdError::no(
                "NONEXISTENT",
                format!("{verb}: no such message"),
            ));
        };
        let old = sel.view[index].uid;
        let (mailbox, uids) = self.append_messages(name, vec![message]).await?;
        out.extend_from_slice(
            format!(
                "* OK [APPENDUID {} {}] Replacement Message ready\r\n",
                mailbox.uid_validity,
                compress_set(&uids)
            )
            .as_bytes(),
        );
        self.store.mailbox_expunge(account, source, &[old]).await?;
        let sel = self.selected()?;
        if let Some(i) = super::view::position_of(&sel.view, old) {
            self.report_expunged(&[i], out);
        }
        Done::new(format!("{verb} completed"))
    }
}
