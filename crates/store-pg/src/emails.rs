//! Email writes: append/deliver, keywords, memberships, copy, expunge, destroy.
//! Every function here runs after [`Tx::lock_account`], so reads see the latest commit of
//! any node and nothing changes the account underneath.

use crate::mailboxes::require_mailbox;
use crate::pool::{Kind, Op, Tx, get, get_modseq, get_u32, sql_modseq};
use bulwark_store::rules;
use bulwark_store::{
    AccountId, Appended, BlobHash, EmailId, EmailSummary, KeywordResult, KeywordUpdate, MailboxId,
    MembershipUpdate, ModSeq, NewEmail, Result, StoreError, ThreadId, Uid,
};
use std::collections::BTreeSet;

/// New `(mailbox, uid)` pairs per email, as `email_set_mailboxes` returns them.
pub(crate) type NewMemberships = Vec<(EmailId, Vec<(MailboxId, Uid)>)>;

/// Largest UID (RFC 9051 §2.3.1.1: 32-bit unsigned).
const MAX_UID: i64 = u32::MAX as i64;

/// Stores a blob once (content-addressed); returns its hash.
pub(crate) async fn put_blob(tx: &mut Tx<'_>, data: &[u8]) -> Result<BlobHash> {
    let hash = BlobHash::of(data);
    tx.exec(
        "WITH l AS (SELECT pg_advisory_xact_lock_shared($3::bigint))
         INSERT INTO blobs (hash, data) SELECT $1::text, $2::bytea FROM l ON CONFLICT (hash) DO NOTHING",
        &[&hash.0, &data, &crate::schema::BLOB_LOCK],
    )
    .await?;
    Ok(hash)
}

/// The thread of an earlier email this one replies to or references.
async fn find_thread(
    tx: &mut Tx<'_>,
    account: AccountId,
    summary: &EmailSummary,
) -> Result<Option<ThreadId>> {
    for id in rules::thread_lookup_ids(&summary.in_reply_to, &summary.references) {
        let row = tx
            .opt(
                "SELECT thread FROM emails WHERE account = $1 AND message_id = $2 LIMIT 1",
                &[&account.0, &id],
            )
            .await?;
        if let Some(row) = row {
            return Ok(Some(ThreadId(get(&row, 0)?)));
        }
    }
    Ok(None)
}

/// Takes the mailbox's next UID (never reused: UIDNEXT only grows). The UPDATE locks the
/// mailbox row until commit.
async fn alloc_uid(tx: &mut Tx<'_>, account: AccountId, mailbox: MailboxId) -> Result<Uid> {
    let row = tx
        .opt(
            "UPDATE mailboxes SET uid_next = uid_next + 1
             WHERE id = $1 AND account = $2 AND uid_next < $3 RETURNING uid_next - 1",
            &[&mailbox.0, &account.0, &MAX_UID],
        )
        .await?;
    match row {
        Some(row) => Ok(Uid(get_u32(&row, 0)?)),
        None => {
            require_mailbox(tx, account, mailbox).await?;
            Err(StoreError::Invalid(format!(
                "mailbox {mailbox} has used up its UIDs"
            )))
        }
    }
}

/// Puts an email into a mailbox under a fresh UID.
async fn add_membership(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<Uid> {
    let uid = alloc_uid(tx, account, mailbox).await?;
    tx.exec(
        "INSERT INTO memberships (mailbox, uid, email, modseq) VALUES ($1, $2, $3, $4)",
        &[&mailbox.0, &i64::from(uid.0), &email.0, &sql_modseq(modseq)],
    )
    .await?;
    tx.touch_mailbox(account, mailbox, modseq).await?;
    tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::Updated)
        .await?;
    Ok(uid)
}

/// Removes one (mailbox, uid) and records the expunge for QRESYNC (RFC 7162 §3.2.10).
async fn remove_membership(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uid: Uid,
    modseq: ModSeq,
) -> Result<()> {
    let uid = i64::from(uid.0);
    tx.exec(
        "DELETE FROM memberships WHERE mailbox = $1 AND uid = $2",
        &[&mailbox.0, &uid],
    )
    .await?;
    tx.exec(
        "INSERT INTO expunged (mailbox, uid, modseq) VALUES ($1, $2, $3)
         ON CONFLICT (mailbox, uid) DO UPDATE SET modseq = excluded.modseq",
        &[&mailbox.0, &uid, &sql_modseq(modseq)],
    )
    .await?;
    tx.touch_mailbox(account, mailbox, modseq).await?;
    tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::Updated)
        .await
}

async fn memberships_of(tx: &mut Tx<'_>, email: EmailId) -> Result<Vec<(MailboxId, Uid)>> {
    let rows = tx
        .query(
            "SELECT mailbox, uid FROM memberships WHERE email = $1 ORDER BY mailbox",
            &[&email.0],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((MailboxId(get(r, 0)?), Uid(get_u32(r, 1)?))))
        .collect()
}

async fn email_exists(tx: &mut Tx<'_>, account: AccountId, email: EmailId) -> Result<bool> {
    Ok(tx
        .opt(
            "SELECT 1 FROM emails WHERE id = $1 AND account = $2",
            &[&email.0, &account.0],
        )
        .await?
        .is_some())
}

/// Deletes the email row and updates or destroys its thread.
async fn delete_email_row(
    tx: &mut Tx<'_>,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    let row = tx
        .opt(
            "DELETE FROM emails WHERE id = $1 RETURNING thread",
            &[&email.0],
        )
        .await?;
    let Some(row) = row else { return Ok(()) };
    let thread: i64 = get(&row, 0)?;
    tx.exec("DELETE FROM envelopes WHERE email = $1", &[&email.0])
        .await?;
    tx.log(account, modseq, Kind::Email, email.0, Op::Destroyed)
        .await?;
    let others = tx
        .opt("SELECT 1 FROM emails WHERE thread = $1 LIMIT 1", &[&thread])
        .await?;
    if others.is_some() {
        tx.log(account, modseq, Kind::Thread, thread, Op::Updated)
            .await
    } else {
        tx.exec("DELETE FROM threads WHERE id = $1", &[&thread])
            .await?;
        tx.log(account, modseq, Kind::Thread, thread, Op::Destroyed)
            .await
    }
}

async fn mark_email_updated(
    tx: &mut Tx<'_>,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    tx.exec(
        "UPDATE emails SET modseq = $2 WHERE id = $1",
        &[&email.0, &sql_modseq(modseq)],
    )
    .await?;
    tx.log(account, modseq, Kind::Email, email.0, Op::Updated)
        .await
}

/// Removes the email from one mailbox; destroys it when it is in no mailbox any more.
pub(crate) async fn email_left_mailbox(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uid: Uid,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    remove_membership(tx, account, mailbox, uid, modseq).await?;
    if memberships_of(tx, email).await?.is_empty() {
        delete_email_row(tx, account, email, modseq).await
    } else {
        mark_email_updated(tx, account, email, modseq).await
    }
}

/// Removes the email from every mailbox and deletes it.
async fn destroy_email(
    tx: &mut Tx<'_>,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    for (mailbox, uid) in memberships_of(tx, email).await? {
        remove_membership(tx, account, mailbox, uid, modseq).await?;
    }
    delete_email_row(tx, account, email, modseq).await
}

async fn append_one(tx: &mut Tx<'_>, account: AccountId, new: &NewEmail) -> Result<Appended> {
    let mailboxes = rules::append_mailboxes(&new.mailboxes)?;
    let size = rules::stored_size(&new.raw, "email")?;
    let keywords = rules::normalize_keywords(&new.keywords)?;
    let summary = serde_json::to_string(&new.summary)
        .map_err(|e| StoreError::Internal(format!("cannot encode email summary: {e}")))?;
    let modseq = tx.next_modseq(account).await?;
    let blob = put_blob(tx, &new.raw).await?;
    let (thread, thread_op) = match find_thread(tx, account, &new.summary).await? {
        Some(thread) => (thread, Op::Updated),
        None => {
            let row = tx
                .one(
                    "INSERT INTO threads (account) VALUES ($1) RETURNING id",
                    &[&account.0],
                )
                .await?;
            (ThreadId(get(&row, 0)?), Op::Created)
        }
    };
    let seen = rules::is_seen(&keywords);
    let message_id = new
        .summary
        .message_id
        .as_deref()
        .and_then(rules::normalize_message_id);
    let row = tx
        .one(
            "INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq,
                                 kw_modseq, message_id, summary)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10) RETURNING id",
            &[
                &account.0,
                &thread.0,
                &blob.0,
                &i64::from(size),
                &new.received_at,
                &rules::keywords_to_text(&keywords),
                &seen,
                &sql_modseq(modseq),
                &message_id,
                &summary,
            ],
        )
        .await?;
    let email = EmailId(get(&row, 0)?);
    if let Some(envelope) = &new.summary.imap_envelope {
        tx.exec(
            "INSERT INTO envelopes (email, data) VALUES ($1, $2)",
            &[&email.0, envelope],
        )
        .await?;
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

pub(crate) async fn email_append(
    tx: &mut Tx<'_>,
    account: AccountId,
    new: &[NewEmail],
) -> Result<Vec<Appended>> {
    tx.lock_account(account).await?;
    crate::directory::require_account(tx, account).await?;
    let mut out = Vec::with_capacity(new.len());
    for email in new {
        out.push(append_one(tx, account, email).await?);
    }
    Ok(out)
}

pub(crate) async fn deliver(
    tx: &mut Tx<'_>,
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
    }
    Ok(out)
}

/// Applies keyword changes; RFC 7162 §3.1.3: an email whose flags changed after
/// `unchanged_since` is left alone and reported as a conflict. Unknown emails are skipped.
pub(crate) async fn set_keywords(
    tx: &mut Tx<'_>,
    account: AccountId,
    updates: &[KeywordUpdate],
) -> Result<KeywordResult> {
    tx.lock_account(account).await?;
    crate::directory::require_account(tx, account).await?;
    let mut result = KeywordResult::default();
    for update in updates {
        let given = rules::normalize_keywords(&update.keywords)?;
        let row = tx
            .opt(
                "SELECT keywords, kw_modseq FROM emails WHERE id = $1 AND account = $2",
                &[&update.email.0, &account.0],
            )
            .await?;
        let Some(row) = row else {
            continue;
        };
        let text: String = get(&row, 0)?;
        let kw_modseq = get_modseq(&row, 1)?;
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
        tx.exec(
            "UPDATE emails SET keywords = $2, seen = $3, modseq = $4, kw_modseq = $4 WHERE id = $1",
            &[
                &update.email.0,
                &rules::keywords_to_text(&new),
                &seen,
                &sql_modseq(modseq),
            ],
        )
        .await?;
        tx.log(account, modseq, Kind::Email, update.email.0, Op::Updated)
            .await?;
        for (mailbox, _) in memberships_of(tx, update.email).await? {
            tx.touch_mailbox(account, mailbox, modseq).await?;
            if was_seen != seen {
                // Unread counts changed (JMAP Mailbox/changes).
                tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::Updated)
                    .await?;
            }
        }
        result.updated.push((update.email, modseq, new));
    }
    result.modseq = crate::changes::account_modseq(tx, account).await?;
    Ok(result)
}

/// Adds/removes memberships; unknown emails are skipped; target mailboxes must exist.
pub(crate) async fn set_mailboxes(
    tx: &mut Tx<'_>,
    account: AccountId,
    updates: &[MembershipUpdate],
) -> Result<NewMemberships> {
    tx.lock_account(account).await?;
    crate::directory::require_account(tx, account).await?;
    let mut out = Vec::with_capacity(updates.len());
    for update in updates {
        if !email_exists(tx, account, update.email).await? {
            continue;
        }
        for &mailbox in &update.add {
            require_mailbox(tx, account, mailbox).await?;
        }
        let current = memberships_of(tx, update.email).await?;
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
pub(crate) async fn email_copy(
    tx: &mut Tx<'_>,
    account: AccountId,
    ids: &[EmailId],
    dest: MailboxId,
) -> Result<Vec<(EmailId, EmailId, Uid)>> {
    tx.lock_account(account).await?;
    require_mailbox(tx, account, dest).await?;
    let mut out = Vec::with_capacity(ids.len());
    for &source in ids {
        if !email_exists(tx, account, source).await? {
            continue;
        }
        let modseq = tx.next_modseq(account).await?;
        let row = tx
            .one(
                "INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq,
                                     kw_modseq, message_id, summary)
                 SELECT account, thread, blob, size, received_at, keywords, seen, $2, $2,
                        message_id, summary
                 FROM emails WHERE id = $1 RETURNING id, thread",
                &[&source.0, &sql_modseq(modseq)],
            )
            .await?;
        let copy = EmailId(get(&row, 0)?);
        let thread: i64 = get(&row, 1)?;
        tx.exec(
            "INSERT INTO envelopes (email, data) SELECT $2, data FROM envelopes WHERE email = $1",
            &[&source.0, &copy.0],
        )
        .await?;
        let uid = add_membership(tx, account, dest, copy, modseq).await?;
        tx.log(account, modseq, Kind::Email, copy.0, Op::Created)
            .await?;
        tx.log(account, modseq, Kind::Thread, thread, Op::Updated)
            .await?;
        out.push((source, copy, uid));
    }
    Ok(out)
}

/// Removes UIDs from a mailbox; returns the mailbox's HIGHESTMODSEQ afterwards.
pub(crate) async fn mailbox_expunge(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<ModSeq> {
    tx.lock_account(account).await?;
    require_mailbox(tx, account, mailbox).await?;
    for &uid in uids {
        let row = tx
            .opt(
                "SELECT email FROM memberships WHERE mailbox = $1 AND uid = $2",
                &[&mailbox.0, &i64::from(uid.0)],
            )
            .await?;
        let Some(row) = row else { continue };
        let email = EmailId(get(&row, 0)?);
        let modseq = tx.next_modseq(account).await?;
        email_left_mailbox(tx, account, mailbox, uid, email, modseq).await?;
    }
    Ok(require_mailbox(tx, account, mailbox).await?.highest_modseq)
}

/// Destroys emails (all their memberships); unknown ids are skipped.
pub(crate) async fn email_destroy(
    tx: &mut Tx<'_>,
    account: AccountId,
    ids: &[EmailId],
) -> Result<()> {
    tx.lock_account(account).await?;
    for &email in ids {
        if !email_exists(tx, account, email).await? {
            continue;
        }
        let modseq = tx.next_modseq(account).await?;
        destroy_email(tx, account, email, modseq).await?;
    }
    Ok(())
}
