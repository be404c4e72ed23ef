//! Email writes: append/deliver, keywords, memberships, copy, expunge, destroy.

use super::db_err;
use super::mailboxes::require_mailbox;
use super::writer::{Kind, Op, Tx};
use crate::rules;
use crate::{
    AccountId, Appended, BlobHash, EmailId, EmailSummary, KeywordResult, KeywordUpdate, MailboxId,
    MembershipUpdate, ModSeq, NewEmail, Result, StoreError, ThreadId, Uid,
};
use rusqlite::{Connection, OptionalExtension, params};

/// New `(mailbox, uid)` pairs per email, as `email_set_mailboxes` returns them.
pub(crate) type NewMemberships = Vec<(EmailId, Vec<(MailboxId, Uid)>)>;

/// Stores a blob once (content-addressed); returns its hash.
pub(crate) fn put_blob(conn: &Connection, data: &[u8]) -> Result<BlobHash> {
    let hash = BlobHash::of(data);
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?1, ?2)")
        .map_err(db_err)?;
    stmt.execute(params![hash.0, data]).map_err(db_err)?;
    Ok(hash)
}

/// The thread of an earlier email this one replies to or references.
fn find_thread(
    conn: &Connection,
    account: AccountId,
    summary: &EmailSummary,
) -> Result<Option<ThreadId>> {
    let mut stmt = conn
        .prepare_cached("SELECT thread FROM emails WHERE account = ?1 AND message_id = ?2 LIMIT 1")
        .map_err(db_err)?;
    for id in rules::thread_lookup_ids(&summary.in_reply_to, &summary.references) {
        let thread: Option<i64> = stmt
            .query_row(params![account.0, id], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        if let Some(thread) = thread {
            return Ok(Some(ThreadId(thread)));
        }
    }
    Ok(None)
}

/// Takes the mailbox's next UID (never reused: UIDNEXT only grows).
fn alloc_uid(conn: &Connection, account: AccountId, mailbox: MailboxId) -> Result<Uid> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE mailboxes SET uid_next = uid_next + 1
             WHERE id = ?1 AND account = ?2 AND uid_next < 4294967295 RETURNING uid_next - 1",
        )
        .map_err(db_err)?;
    let uid: Option<u32> = stmt
        .query_row(params![mailbox.0, account.0], |r| r.get(0))
        .optional()
        .map_err(db_err)?;
    match uid {
        Some(uid) => Ok(Uid(uid)),
        None => {
            require_mailbox(conn, account, mailbox)?;
            Err(StoreError::Invalid(format!(
                "mailbox {mailbox} has used up its UIDs"
            )))
        }
    }
}

/// Puts an email into a mailbox under a fresh UID.
fn add_membership(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<Uid> {
    let uid = alloc_uid(tx.conn, account, mailbox)?;
    let mut stmt = tx
        .conn
        .prepare_cached(
            "INSERT INTO memberships (mailbox, uid, email, modseq) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(db_err)?;
    stmt.execute(params![mailbox.0, uid.0, email.0, modseq.0 as i64])
        .map_err(db_err)?;
    tx.touch_mailbox(account, mailbox, modseq)?;
    tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::Updated)?;
    Ok(uid)
}

/// Removes one (mailbox, uid) and records the expunge for QRESYNC (RFC 7162 §3.2.10).
fn remove_membership(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uid: Uid,
    modseq: ModSeq,
) -> Result<()> {
    let mut delete = tx
        .conn
        .prepare_cached("DELETE FROM memberships WHERE mailbox = ?1 AND uid = ?2")
        .map_err(db_err)?;
    delete.execute(params![mailbox.0, uid.0]).map_err(db_err)?;
    let mut log = tx
        .conn
        .prepare_cached(
            "INSERT OR REPLACE INTO expunged (mailbox, uid, modseq) VALUES (?1, ?2, ?3)",
        )
        .map_err(db_err)?;
    log.execute(params![mailbox.0, uid.0, modseq.0 as i64])
        .map_err(db_err)?;
    tx.touch_mailbox(account, mailbox, modseq)?;
    tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::Updated)
}

fn memberships_of(conn: &Connection, email: EmailId) -> Result<Vec<(MailboxId, Uid)>> {
    let mut stmt = conn
        .prepare_cached("SELECT mailbox, uid FROM memberships WHERE email = ?1 ORDER BY mailbox")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([email.0], |r| Ok((MailboxId(r.get(0)?), Uid(r.get(1)?))))
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

fn email_exists(conn: &Connection, account: AccountId, email: EmailId) -> Result<bool> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM emails WHERE id = ?1 AND account = ?2")
        .map_err(db_err)?;
    stmt.exists(params![email.0, account.0]).map_err(db_err)
}

/// Deletes the email row and updates or destroys its thread.
fn delete_email_row(
    tx: &mut Tx<'_>,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    let thread: Option<i64> = tx
        .conn
        .query_row(
            "DELETE FROM emails WHERE id = ?1 RETURNING thread",
            [email.0],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    let Some(thread) = thread else { return Ok(()) };
    for sql in [
        "DELETE FROM envelopes WHERE email = ?1",
        "DELETE FROM search_headers WHERE email = ?1",
    ] {
        tx.conn
            .prepare_cached(sql)
            .map_err(db_err)?
            .execute([email.0])
            .map_err(db_err)?;
    }
    tx.log(account, modseq, Kind::Email, email.0, Op::Destroyed)?;
    let mut stmt = tx
        .conn
        .prepare_cached("SELECT 1 FROM emails WHERE thread = ?1 LIMIT 1")
        .map_err(db_err)?;
    if stmt.exists([thread]).map_err(db_err)? {
        tx.log(account, modseq, Kind::Thread, thread, Op::Updated)
    } else {
        tx.conn
            .execute("DELETE FROM threads WHERE id = ?1", [thread])
            .map_err(db_err)?;
        tx.log(account, modseq, Kind::Thread, thread, Op::Destroyed)
    }
}

fn mark_email_updated(
    tx: &mut Tx<'_>,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    tx.conn
        .execute(
            "UPDATE emails SET modseq = ?2 WHERE id = ?1",
            params![email.0, modseq.0 as i64],
        )
        .map_err(db_err)?;
    tx.log(account, modseq, Kind::Email, email.0, Op::Updated)
}

/// Removes the email from one mailbox; destroys it when it is in no mailbox any more.
pub(crate) fn email_left_mailbox(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uid: Uid,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    remove_membership(tx, account, mailbox, uid, modseq)?;
    if memberships_of(tx.conn, email)?.is_empty() {
        delete_email_row(tx, account, email, modseq)
    } else {
        mark_email_updated(tx, account, email, modseq)
    }
}

/// Removes the email from every mailbox and deletes it.
pub(crate) fn destroy_email(
    tx: &mut Tx<'_>,
    account: AccountId,
    email: EmailId,
    modseq: ModSeq,
) -> Result<()> {
    for (mailbox, uid) in memberships_of(tx.conn, email)? {
        remove_membership(tx, account, mailbox, uid, modseq)?;
    }
    delete_email_row(tx, account, email, modseq)
}

fn append_one(tx: &mut Tx<'_>, account: AccountId, new: &NewEmail) -> Result<Appended> {
    let mailboxes = rules::append_mailboxes(&new.mailboxes)?;
    let size = rules::stored_size(&new.raw, "email")?;
    let keywords = rules::normalize_keywords(&new.keywords)?;
    let summary = serde_json::to_string(&new.summary)
        .map_err(|e| StoreError::Internal(format!("cannot encode email summary: {e}")))?;
    let modseq = tx.next_modseq(account)?;
    let blob = put_blob(tx.conn, &new.raw)?;
    let (thread, thread_op) = match find_thread(tx.conn, account, &new.summary)? {
        Some(thread) => (thread, Op::Updated),
        None => {
            tx.conn
                .execute("INSERT INTO threads (account) VALUES (?1)", [account.0])
                .map_err(db_err)?;
            (ThreadId(tx.conn.last_insert_rowid()), Op::Created)
        }
    };
    let seen = rules::is_seen(&keywords);
    let message_id = new
        .summary
        .message_id
        .as_deref()
        .and_then(rules::normalize_message_id);
    let mut stmt = tx
        .conn
        .prepare_cached(
            "INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq, kw_modseq,
                                 message_id, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
        )
        .map_err(db_err)?;
    stmt.execute(params![
        account.0,
        thread.0,
        blob.0,
        size,
        new.received_at,
        rules::keywords_to_text(&keywords),
        seen,
        modseq.0 as i64,
        message_id,
        summary,
    ])
    .map_err(db_err)?;
    let email = EmailId(tx.conn.last_insert_rowid());
    let s = &new.summary;
    tx.conn
        .prepare_cached(
            "INSERT INTO search_headers (email, subject, from_, to_, cc) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(db_err)?
        .execute(params![email.0, s.subject, s.from, s.to, s.cc])
        .map_err(db_err)?;
    if let Some(envelope) = new.summary.imap_envelope.as_deref() {
        tx.conn
            .prepare_cached("INSERT INTO envelopes (email, data) VALUES (?1, ?2)")
            .map_err(db_err)?
            .execute(params![email.0, envelope])
            .map_err(db_err)?;
    }
    let mut uids = Vec::with_capacity(mailboxes.len());
    for mailbox in mailboxes {
        let uid = add_membership(tx, account, mailbox, email, modseq)?;
        uids.push((mailbox, uid));
    }
    tx.log(account, modseq, Kind::Email, email.0, Op::Created)?;
    tx.log(account, modseq, Kind::Thread, thread.0, thread_op)?;
    Ok(Appended {
        account,
        email,
        thread,
        blob,
        uids,
        modseq,
    })
}

pub(crate) fn email_append(
    tx: &mut Tx<'_>,
    account: AccountId,
    new: &[NewEmail],
) -> Result<Vec<Appended>> {
    super::directory::require_account(tx.conn, account)?;
    new.iter()
        .map(|email| append_one(tx, account, email))
        .collect()
}

pub(crate) fn deliver(
    tx: &mut Tx<'_>,
    deliveries: &[(AccountId, NewEmail)],
) -> Result<Vec<Appended>> {
    deliveries
        .iter()
        .map(|(account, email)| append_one(tx, *account, email))
        .collect()
}

/// Applies keyword changes; RFC 7162 §3.1.3: an email whose flags changed after
/// `unchanged_since` is left alone and reported as a conflict. Unknown emails are skipped.
pub(crate) fn set_keywords(
    tx: &mut Tx<'_>,
    account: AccountId,
    updates: &[KeywordUpdate],
) -> Result<KeywordResult> {
    super::directory::require_account(tx.conn, account)?;
    let mut result = KeywordResult::default();
    for update in updates {
        let given = rules::normalize_keywords(&update.keywords)?;
        let row: Option<(String, i64)> = tx
            .conn
            .prepare_cached("SELECT keywords, kw_modseq FROM emails WHERE id = ?1 AND account = ?2")
            .map_err(db_err)?
            .query_row(params![update.email.0, account.0], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db_err)?;
        let Some((text, kw_modseq)) = row else {
            continue;
        };
        if let Some(since) = update.unchanged_since
            && kw_modseq as u64 > since.0
        {
            result.conflicts.push(update.email);
            continue;
        }
        let old = rules::keywords_from_text(&text);
        let new = rules::apply_keyword_op(update.op, &old, given);
        if new == old {
            continue;
        }
        let modseq = tx.next_modseq(account)?;
        let was_seen = rules::is_seen(&old);
        let seen = rules::is_seen(&new);
        tx.conn
            .prepare_cached("UPDATE emails SET keywords = ?2, seen = ?3, modseq = ?4, kw_modseq = ?4 WHERE id = ?1")
            .map_err(db_err)?
            .execute(params![update.email.0, rules::keywords_to_text(&new), seen, modseq.0 as i64])
            .map_err(db_err)?;
        tx.log(account, modseq, Kind::Email, update.email.0, Op::Updated)?;
        for (mailbox, _) in memberships_of(tx.conn, update.email)? {
            tx.touch_mailbox(account, mailbox, modseq)?;
            if was_seen != seen {
                // Unread counts changed (JMAP Mailbox/changes).
                tx.log(account, modseq, Kind::Mailbox, mailbox.0, Op::Updated)?;
            }
        }
        result.updated.push((update.email, modseq, new));
    }
    result.modseq = super::changes::account_modseq(tx.conn, account)?;
    Ok(result)
}

/// Adds/removes memberships; unknown emails are skipped; target mailboxes must exist.
pub(crate) fn set_mailboxes(
    tx: &mut Tx<'_>,
    account: AccountId,
    updates: &[MembershipUpdate],
) -> Result<NewMemberships> {
    super::directory::require_account(tx.conn, account)?;
    let mut out = Vec::with_capacity(updates.len());
    for update in updates {
        if !email_exists(tx.conn, account, update.email)? {
            continue;
        }
        for &mailbox in &update.add {
            require_mailbox(tx.conn, account, mailbox)?;
        }
        let current = memberships_of(tx.conn, update.email)?;
        let (to_add, to_remove) = rules::membership_changes(&current, &update.add, &update.remove);
        if to_add.is_empty() && to_remove.is_empty() {
            out.push((update.email, Vec::new()));
            continue;
        }
        let modseq = tx.next_modseq(account)?;
        let mut added = Vec::with_capacity(to_add.len());
        for mailbox in to_add {
            let uid = add_membership(tx, account, mailbox, update.email, modseq)?;
            added.push((mailbox, uid));
        }
        for &(mailbox, uid) in &to_remove {
            remove_membership(tx, account, mailbox, uid, modseq)?;
        }
        if current.len() + added.len() == to_remove.len() {
            delete_email_row(tx, account, update.email, modseq)?;
        } else {
            mark_email_updated(tx, account, update.email, modseq)?;
        }
        out.push((update.email, added));
    }
    Ok(out)
}

/// IMAP COPY: new email rows sharing blob, thread and keywords. Unknown emails are skipped.
pub(crate) fn email_copy(
    tx: &mut Tx<'_>,
    account: AccountId,
    ids: &[EmailId],
    dest: MailboxId,
) -> Result<Vec<(EmailId, EmailId, Uid)>> {
    require_mailbox(tx.conn, account, dest)?;
    let mut out = Vec::with_capacity(ids.len());
    for &source in ids {
        if !email_exists(tx.conn, account, source)? {
            continue;
        }
        let modseq = tx.next_modseq(account)?;
        let thread: i64 = tx
            .conn
            .prepare_cached(
                "INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq, kw_modseq,
                                     message_id, summary)
                 SELECT account, thread, blob, size, received_at, keywords, seen, ?2, ?2, message_id, summary
                 FROM emails WHERE id = ?1 RETURNING thread",
            )
            .map_err(db_err)?
            .query_row(params![source.0, modseq.0 as i64], |r| r.get(0))
            .map_err(db_err)?;
        let copy = EmailId(tx.conn.last_insert_rowid());
        for sql in [
            "INSERT INTO envelopes (email, data) SELECT ?2, data FROM envelopes WHERE email = ?1",
            "INSERT INTO search_headers (email, subject, from_, to_, cc)
             SELECT ?2, subject, from_, to_, cc FROM search_headers WHERE email = ?1",
        ] {
            tx.conn
                .prepare_cached(sql)
                .map_err(db_err)?
                .execute(params![source.0, copy.0])
                .map_err(db_err)?;
        }
        let uid = add_membership(tx, account, dest, copy, modseq)?;
        tx.log(account, modseq, Kind::Email, copy.0, Op::Created)?;
        tx.log(account, modseq, Kind::Thread, thread, Op::Updated)?;
        out.push((source, copy, uid));
    }
    Ok(out)
}

/// Removes UIDs from a mailbox; returns the mailbox's HIGHESTMODSEQ afterwards.
pub(crate) fn mailbox_expunge(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<ModSeq> {
    require_mailbox(tx.conn, account, mailbox)?;
    for &uid in uids {
        let email: Option<i64> = tx
            .conn
            .prepare_cached("SELECT email FROM memberships WHERE mailbox = ?1 AND uid = ?2")
            .map_err(db_err)?
            .query_row(params![mailbox.0, uid.0], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        let Some(email) = email else { continue };
        let modseq = tx.next_modseq(account)?;
        email_left_mailbox(tx, account, mailbox, uid, EmailId(email), modseq)?;
    }
    Ok(require_mailbox(tx.conn, account, mailbox)?.highest_modseq)
}

/// Destroys emails (all their memberships); unknown ids are skipped.
pub(crate) fn email_destroy(tx: &mut Tx<'_>, account: AccountId, ids: &[EmailId]) -> Result<()> {
    for &email in ids {
        if !email_exists(tx.conn, account, email)? {
            continue;
        }
        let modseq = tx.next_modseq(account)?;
        destroy_email(tx, account, email, modseq)?;
    }
    Ok(())
}
