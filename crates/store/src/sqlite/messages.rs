//! Email reads: mailbox listings, email objects, expunge log, blobs.

use super::db_err;
use super::emails::parse_keywords;
use super::mailboxes::require_mailbox;
use crate::{
    AccountId, BlobHash, Email, EmailId, EmailSummary, MailboxId, MessageMeta, ModSeq, Result,
    StoreError, ThreadId, Uid,
};
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use std::collections::HashMap;

/// Ids per `IN (…)` query (well below SQLite's parameter limit).
const IN_CHUNK: usize = 500;

/// Reads the space-separated keyword column without an intermediate `String`.
fn keywords_at(r: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text = r.get_ref(idx)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(parse_keywords(text))
}

/// The messages of one mailbox ordered by UID, in one query (no blobs read).
pub(crate) fn mailbox_messages(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
) -> Result<Vec<MessageMeta>> {
    require_mailbox(conn, account, mailbox)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.uid, m.email, e.thread, max(m.modseq, e.kw_modseq), e.keywords, e.size, e.received_at, e.blob
             FROM memberships m JOIN emails e ON e.id = m.email
             WHERE m.mailbox = ?1 ORDER BY m.uid",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([mailbox.0], |r| {
            Ok(MessageMeta {
                uid: Uid(r.get(0)?),
                email: EmailId(r.get(1)?),
                thread: ThreadId(r.get(2)?),
                modseq: ModSeq(r.get::<_, i64>(3)? as u64),
                keywords: keywords_at(r, 4)?,
                size: r.get(5)?,
                received_at: r.get(6)?,
                blob: BlobHash(r.get(7)?),
            })
        })
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

/// UIDs expunged after `since` (RFC 7162 §3.2.5.2 VANISHED (EARLIER)).
pub(crate) fn expunged_since(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<Vec<Uid>> {
    require_mailbox(conn, account, mailbox)?;
    let mut stmt = conn
        .prepare_cached("SELECT uid FROM expunged WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([mailbox.0, since.0 as i64], |r| Ok(Uid(r.get(0)?)))
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

const EMAIL_COLUMNS: &str =
    "id, account, thread, blob, size, received_at, keywords, modseq, summary";

fn email_from_row(r: &Row<'_>) -> rusqlite::Result<(Email, String)> {
    Ok((
        Email {
            id: EmailId(r.get(0)?),
            account: AccountId(r.get(1)?),
            thread: ThreadId(r.get(2)?),
            blob: BlobHash(r.get(3)?),
            size: r.get(4)?,
            received_at: r.get(5)?,
            keywords: keywords_at(r, 6)?,
            mailboxes: Vec::new(),
            modseq: ModSeq(r.get::<_, i64>(7)? as u64),
            summary: EmailSummary::default(),
        },
        r.get(8)?,
    ))
}

fn decode_summary(email: &mut Email, json: &str) -> Result<()> {
    email.summary = serde_json::from_str(json).map_err(|e| {
        StoreError::Internal(format!(
            "stored summary of email {} is unreadable: {e}",
            email.id
        ))
    })?;
    Ok(())
}

fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s
}

/// The emails with these ids (unknown ids are skipped), in the order asked.
pub(crate) fn email_get(
    conn: &Connection,
    account: AccountId,
    ids: &[EmailId],
) -> Result<Vec<Email>> {
    let mut found: HashMap<EmailId, Email> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT {EMAIL_COLUMNS} FROM emails WHERE account = {} AND id IN ({})",
            account.0,
            placeholders(chunk.len())
        );
        let mut stmt = conn.prepare(&sql).map_err(db_err)?;
        let rows = stmt
            .query_map(
                params_from_iter(chunk.iter().map(|id| id.0)),
                email_from_row,
            )
            .map_err(db_err)?;
        for row in rows {
            let (mut email, summary) = row.map_err(db_err)?;
            decode_summary(&mut email, &summary)?;
            found.insert(email.id, email);
        }
        let sql = format!(
            "SELECT email, mailbox, uid FROM memberships WHERE email IN ({}) ORDER BY mailbox",
            placeholders(chunk.len())
        );
        let mut stmt = conn.prepare(&sql).map_err(db_err)?;
        let rows = stmt
            .query_map(params_from_iter(chunk.iter().map(|id| id.0)), |r| {
                Ok((EmailId(r.get(0)?), MailboxId(r.get(1)?), Uid(r.get(2)?)))
            })
            .map_err(db_err)?;
        for row in rows {
            let (email, mailbox, uid) = row.map_err(db_err)?;
            if let Some(email) = found.get_mut(&email) {
                email.mailboxes.push((mailbox, uid));
            }
        }
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Every email of the account, newest first (two queries).
pub(crate) fn email_list(conn: &Connection, account: AccountId) -> Result<Vec<Email>> {
    let sql = format!(
        "SELECT {EMAIL_COLUMNS} FROM emails WHERE account = ?1 ORDER BY received_at DESC, id DESC"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut emails = Vec::new();
    let mut index: HashMap<EmailId, usize> = HashMap::new();
    for row in stmt
        .query_map([account.0], email_from_row)
        .map_err(db_err)?
    {
        let (mut email, summary) = row.map_err(db_err)?;
        decode_summary(&mut email, &summary)?;
        index.insert(email.id, emails.len());
        emails.push(email);
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.email, m.mailbox, m.uid FROM memberships m JOIN mailboxes b ON b.id = m.mailbox
             WHERE b.account = ?1 ORDER BY m.mailbox",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([account.0], |r| {
            Ok((EmailId(r.get(0)?), MailboxId(r.get(1)?), Uid(r.get(2)?)))
        })
        .map_err(db_err)?;
    for row in rows {
        let (email, mailbox, uid) = row.map_err(db_err)?;
        if let Some(&i) = index.get(&email)
            && let Some(email) = emails.get_mut(i)
        {
            email.mailboxes.push((mailbox, uid));
        }
    }
    Ok(emails)
}

pub(crate) fn blob_get(conn: &Connection, hash: &BlobHash) -> Result<Option<Vec<u8>>> {
    let mut stmt = conn
        .prepare_cached("SELECT data FROM blobs WHERE hash = ?1")
        .map_err(db_err)?;
    stmt.query_row([&hash.0], |r| r.get(0))
        .optional()
        .map_err(db_err)
}
