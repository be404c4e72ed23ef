//! Email writes: append/deliver, keywords, memberships, copy, expunge, destroy — UID and
//! MODSEQ allocation, threading, orphan handling and the change log entries of each, for
//! every backend. Each public function takes the account lock first, so reads inside see
//! the latest commit and nothing changes the account underneath.

use crate::changelog::{ChangeKind as Kind, ChangeOp as Op};
use crate::engine::{EmailRow, WriteTx};
use crate::rules;
use crate::{
    AccountId, Appended, EmailId, EmailSummary, KeywordResult, KeywordUpdate, MailboxId,
    MembershipUpdate, ModSeq, NewEmail, Result, StoreError, ThreadId, Uid,
};
use std::collections::BTreeSet;

/// New `(mailbox, uid)` pairs per email, as `email_set_mailboxes` returns them.
pub type NewMemberships = Vec<(EmailId, Vec<(MailboxId, Uid)>)>;

/// The thread a new email joins (RFC 8621 §3, RFC 5256 §2.2): the one of any email that
/// shares a Message-ID with it — its own, In-Reply-To or References, in either direction,
/// so a parent arriving after its reply joins the reply's thread and two replies to an
/// absent parent share one. When the ids tie several threads together, the later ones are
/// merged into the oldest: their emails move (each logged as updated, its threadId
/// changed) and the emptied threads are destroyed. The email's ids are then entered.
async fn join_thread<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    summary: &EmailSummary,
    modseq: ModSeq,
) -> Result<(ThreadId, Op, Vec<String>)> {
    let ids = rules::thread_ref_ids(summary);
    let mut threads = if ids.is_empty() {
        Vec::new()
    } else {
        tx.threads_of_refs(account, &ids).await?
    };
    threads.sort();
    threads.dedup();
    let Some((&into, others)) = threads.split_first() else {
        return Ok((tx.insert_thread(account).await?, Op::Created, ids));
    };
    for &from in others {
        for moved in tx.merge_thread(from, into, modseq).await? {
            tx.log(account, modseq, Kind::Email, moved.0, Op::Updated)
                .await?;
            // Fewer threads in the mailboxes it is in (totalThreads, unreadThreads).
            for (mailbox, _) in tx.memberships_of(moved).await? {
                tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::CountsUpdated)
                    .await?;
            }
        }
        tx.log(account, modseq, Kind::Thread, from.0, Op::Destroyed)
            .await?;
    }
    Ok((into, Op::Updated, ids))
}

/// Takes the mailbox's next UID (never reused: UIDNEXT only grows).
async fn alloc_uid<T: WriteTx>(tx: &mut T, account: AccountId, mailbox: MailboxId) -> Result<Uid> {
    match tx.take_uid(account, mailbox).await? {
        Some(uid) => Ok(uid),
        None => {
            tx.require_mailbox(account, mailbox).await?;
            Err(StoreError::Invalid(format!(
                "mailbox {mailbox} has used up its UIDs"
            )))
        }
    }
}

/// Puts an email into a mailbox under a fresh UID. Every way in (append, delivery, copy,
/// move, a JMAP mailbox change) comes here, so the save date (RFC 8514 §1: when the
/// message was placed in this mailbox) is now.
async fn add_membership<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    mailbox: MailboxId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<Uid> {
    let uid = alloc_uid(tx, account, mailbox).await?;
    tx.insert_membership(mailbox, uid, email, modseq, crate::now_unix())
        .await?;
    tx.touch_mailbox(account, mailbox, modseq).await?;
    tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::CountsUpdated)
        .await?;
    Ok(uid)
}

/// Removes one (mailbox, uid) and records the expunge for QRESYNC (RFC 7162 §3.2.10).
async fn remove_membership<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    mailbox: MailboxId,
    uid: Uid,
    modseq: ModSeq,
) -> Result<()> {
    tx.delete_membership(mailbox, uid, modseq).await?;
    tx.touch_mailbox(account, mailbox, modseq).await?;
    tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::CountsUpdated)
        .await
}

/// Deletes the email row and updates or destroys its thread.
async fn delete_email_row<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    let Some(thread) = tx.delete_email(email).await? else {
        return Ok(());
    };
    tx.log(account, modseq, Kind::Email, email.0, Op::Destroyed)
        .await?;
    if tx.thread_is_empty(thread).await? {
        tx.delete_thread(thread).await?;
        tx.log(account, modseq, Kind::Thread, thread.0, Op::Destroyed)
            .await
    } else {
        tx.log(account, modseq, Kind::Thread, thread.0, Op::Updated)
            .await
    }
}

async fn mark_email_updated<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    tx.set_email_modseq(email, modseq).await?;
    tx.log(account, modseq, Kind::Email, email.0, Op::Updated)
        .await
}

/// Removes the email from one mailbox; destroys it when it is in no mailbox any more.
pub async fn email_left_mailbox<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    mailbox: MailboxId,
    uid: Uid,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    remove_membership(tx, account, mailbox, uid, modseq).await?;
    if tx.memberships_of(email).await?.is_empty() {
        delete_email_row(tx, account, email, modseq).await
    } else {
        mark_email_updated(tx, account, email, modseq).await
    }
}

/// Removes the email from every mailbox and deletes it.
async fn destroy_email<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    for (mailbox, uid) in tx.memberships_of(email).await? {
        remove_membership(tx, account, mailbox, uid, modseq).await?;
    }
    delete_email_row(tx, account, email, modseq).await
}

async fn append_one<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    new: &NewEmail,
) -> Result<Appended> {
    let mailboxes = rules::append_mailboxes(&new.mailboxes)?;
    let size = rules::stored_size(&new.raw, "email")?;
    let keywords = rules::normalize_keywords(&new.keywords)?;
    let summary_json = serde_json::to_string(&new.summary)
        .map_err(|e| StoreError::Internal(format!("cannot encode email summary: {e}")))?;
    let modseq = tx.next_modseq(account).await?;
    let blob = tx.put_blob(&new.raw).await?;
    let (thread, thread_op, refs) = join_thread(tx, account, &new.summary, modseq).await?;
    let row = EmailRow {
        account,
        thread,
        blob: &blob,
        size,
        received_at: new.received_at,
        keywords: rules::keywords_to_text(&keywords),
        seen: rules::is_seen(&keywords),
        modseq,
        message_id: new
            .summary
            .message_id
            .as_deref()
            .and_then(rules::normalize_message_id),
        summary_json,
        summary: &new.summary,
    };
    let email = tx.insert_email(&row).await?;
    if !refs.is_empty() {
        tx.add_thread_refs(account, &refs, thread).await?;
    }
    let mut uids = Vec::with_capacity(mailboxes.len());
    for mailbox in mailboxes {
        let uid = add_membership(tx, account, mailbox, email, modseq).await?;
        uids.push((mailbox, uid));
    }
    tx.log(account, modseq, Kind::Email, email.0, Op::Created)
        .await?;
    tx.log(account, modseq, Kind::Thread, thread.0, thread_op)
        .await?;
    Ok(Appended {
        account,
        email,
        thread,
        blob,
        uids,
        modseq,
    })
}

/// Stores new emails of one account (IMAP APPEND, JMAP Email/import).
pub async fn email_append<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    new: &[NewEmail],
) -> Result<Vec<Appended>> {
    tx.lock_account(account).await?;
    tx.require_account(account).await?;
    let mut out = Vec::with_capacity(new.len());
    for email in new {
        out.push(append_one(tx, account, email).await?);
    }
    Ok(out)
}

/// Delivers to several accounts at once.
pub async fn deliver<T: WriteTx>(
    tx: &mut T,
    deliveries: &[(AccountId, NewEmail)],
) -> Result<Vec<Appended>> {
    // Lock every account in id order, so two multi-recipient deliveries cannot deadlock.
    let accounts: BTreeSet<AccountId> = deliveries.iter().map(|(a, _)| *a).collect();
    for account in accounts {
        tx.lock_account(account).await?;
    }
    let mut out = Vec::with_capacity(deliveries.len());
    for (account, email) in deliveries {
        out.push(append_one(tx, *account, email).await?);
        tx.note_delivery(*account);
    }
    Ok(out)
}

/// Applies keyword changes; RFC 7162 §3.1.3: an email whose flags changed after
/// `unchanged_since` is left alone and reported as a conflict. Unknown emails are skipped.
pub async fn set_keywords<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    updates: &[KeywordUpdate],
) -> Result<KeywordResult> {
    tx.lock_account(account).await?;
    tx.require_account(account).await?;
    let mut result = KeywordResult::default();
    for update in updates {
        let given = rules::normalize_keywords(&update.keywords)?;
        let Some((text, kw_modseq)) = tx.email_keywords(account, update.email).await? else {
            continue;
        };
        if let Some(since) = update.unchanged_since
            && kw_modseq > since
        {
            result.conflicts.push(update.email);
            continue;
        }
        let old = rules::keywords_from_text(&text);
        let new = rules::apply_keyword_op(update.op, &old, given);
        if new == old {
            continue;
        }
        let modseq = tx.next_modseq(account).await?;
        let was_seen = rules::is_seen(&old);
        let seen = rules::is_seen(&new);
        tx.set_email_keywords(update.email, &rules::keywords_to_text(&new), seen, modseq)
            .await?;
        tx.log(account, modseq, Kind::Email, update.email.0, Op::Updated)
            .await?;
        for (mailbox, _) in tx.memberships_of(update.email).await? {
            tx.touch_mailbox(account, mailbox, modseq).await?;
            if was_seen != seen {
                // Unread counts changed (JMAP Mailbox/changes).
                tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::CountsUpdated)
                    .await?;
            }
        }
        result.updated.push((update.email, modseq, new));
    }
    result.modseq = tx.account_modseq(account).await?;
    Ok(result)
}

/// Adds/removes memberships; unknown emails are skipped; target mailboxes must exist.
pub async fn set_mailboxes<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    updates: &[MembershipUpdate],
) -> Result<NewMemberships> {
    tx.lock_account(account).await?;
    tx.require_account(account).await?;
    let mut out = Vec::with_capacity(updates.len());
    for update in updates {
        if !tx.email_exists(account, update.email).await? {
            continue;
        }
        for &mailbox in &update.add {
            tx.require_mailbox(account, mailbox).await?;
        }
        let current = tx.memberships_of(update.email).await?;
        let (to_add, to_remove) = rules::membership_changes(&current, &update.add, &update.remove);
        if to_add.is_empty() && to_remove.is_empty() {
            out.push((update.email, Vec::new()));
            continue;
        }
        let modseq = tx.next_modseq(account).await?;
        let mut added = Vec::with_capacity(to_add.len());
        for mailbox in to_add {
            let uid = add_membership(tx, account, mailbox, update.email, modseq).await?;
            added.push((mailbox, uid));
        }
        for &(mailbox, uid) in &to_remove {
            remove_membership(tx, account, mailbox, uid, modseq).await?;
        }
        if current.len() + added.len() == to_remove.len() {
            delete_email_row(tx, account, update.email, modseq).await?;
        } else {
            mark_email_updated(tx, account, update.email, modseq).await?;
        }
        out.push((update.email, added));
    }
    Ok(out)
}

/// IMAP COPY: new email rows sharing blob, thread and keywords. Unknown emails are skipped.
pub async fn email_copy<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    ids: &[EmailId],
    dest: MailboxId,
) -> Result<Vec<(EmailId, EmailId, Uid)>> {
    tx.lock_account(account).await?;
    tx.require_mailbox(account, dest).await?;
    let mut out = Vec::with_capacity(ids.len());
    for &source in ids {
        if !tx.email_exists(account, source).await? {
            continue;
        }
        let modseq = tx.next_modseq(account).await?;
        let (copy, thread) = tx.copy_email(source, modseq).await?;
        let uid = add_membership(tx, account, dest, copy, modseq).await?;
        tx.log(account, modseq, Kind::Email, copy.0, Op::Created)
            .await?;
        tx.log(account, modseq, Kind::Thread, thread.0, Op::Updated)
            .await?;
        out.push((source, copy, uid));
    }
    Ok(out)
}

/// Removes UIDs from a mailbox; returns the mailbox's HIGHESTMODSEQ afterwards.
pub async fn mailbox_expunge<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<ModSeq> {
    tx.lock_account(account).await?;
    tx.require_mailbox(account, mailbox).await?;
    for &uid in uids {
        let Some(email) = tx.email_at(mailbox, uid).await? else {
            continue;
        };
        let modseq = tx.next_modseq(account).await?;
        email_left_mailbox(tx, account, mailbox, uid, email, modseq).await?;
    }
    Ok(tx.require_mailbox(account, mailbox).await?.highest_modseq)
}

/// Destroys emails (all their memberships); unknown ids are skipped.
pub async fn email_destroy<T: WriteTx>(
    tx: &mut T,
    account: AccountId,
    ids: &[EmailId],
) -> Result<()> {
    tx.lock_account(account).await?;
    for &email in ids {
        if !tx.email_exists(account, email).await? {
            continue;
        }
        let modseq = tx.next_modseq(account).await?;
        destroy_email(tx, account, email, modseq).await?;
    }
    Ok(())
}
