//! Email reads: mailbox listings, email objects, expunge log, blobs.

use super::db_err;
use super::emails::parse_keywords;
use super::mailboxes::require_mailbox;
use crate::{
    AccountId, BlobHash, Email, EmailId, EmailSummary, MailboxDelta, MailboxId, MessageMeta,
    ModSeq, Result, StoreError, ThreadId, Uid,
};
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use std::collections::HashMap;

/// Ids per `IN (…)` query (well below SQLite's parameter limit).
const IN_CHUNK: usize = 500;

/// A UID set spanning at most this many times its size is read with one range scan.
const DENSE_SPAN_FACTOR: u64 = 4;

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

/// Messages of the mailbox with a modseq above `since`, UIDs expunged after it, and the
/// mailbox's HIGHESTMODSEQ, in one snapshot.
pub(crate) fn mailbox_delta(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<MailboxDelta> {
    let highest_modseq = require_mailbox(conn, account, mailbox)?.highest_modseq;
    if highest_modseq <= since {
        return Ok(MailboxDelta {
            highest_modseq,
            ..MailboxDelta::default()
        });
    }
    // Two indexed lookups instead of a scan of the whole mailbox: messages that entered it
    // after `since` (memberships_mailbox_modseq), and messages of the account whose
    // keywords changed after `since` (emails_account_kw_modseq) that are in it.
    let mut changed: Vec<MessageMeta> = Vec::new();
    for sql in [
        "SELECT m.uid, m.email, e.thread, max(m.modseq, e.kw_modseq), e.keywords, e.size, e.received_at, e.blob
         FROM memberships m JOIN emails e ON e.id = m.email
         WHERE m.mailbox = ?1 AND m.modseq > ?2 AND e.account = ?3",
        "SELECT m.uid, m.email, e.thread, max(m.modseq, e.kw_modseq), e.keywords, e.size, e.received_at, e.blob
         FROM emails e JOIN memberships m ON m.email = e.id AND m.mailbox = ?1
         WHERE e.account = ?3 AND e.kw_modseq > ?2",
    ] {
        let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
        let rows = stmt
            .query_map(params![mailbox.0, since.0 as i64, account.0], |r| {
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
        for row in rows {
            changed.push(row.map_err(db_err)?);
        }
    }
    changed.sort_unstable_by_key(|m| m.uid);
    changed.dedup_by_key(|m| m.uid);
    let expunged = expunged_since(conn, account, mailbox, since)?;
    Ok(MailboxDelta {
        highest_modseq,
        changed,
        expunged,
    })
}

/// Runs `per_chunk(sql_condition, params)` over `uids` (sorted, deduplicated) in chunks:
/// a dense chunk becomes one `uid BETWEEN` range scan, a sparse one an `IN (…)` list.
fn for_uid_chunks(
    uids: &[Uid],
    mut per_chunk: impl FnMut(&str, Vec<i64>, &[Uid]) -> Result<()>,
) -> Result<()> {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for chunk in sorted.chunks(IN_CHUNK) {
        let (Some(lo), Some(hi)) = (chunk.first(), chunk.last()) else {
            continue;
        };
        let span = u64::from(hi.0 - lo.0) + 1;
        if span <= 4 * chunk.len() as u64 {
            per_chunk(
                "m.uid BETWEEN ?2 AND ?3",
                vec![i64::from(lo.0), i64::from(hi.0)],
                chunk,
            )?;
        } else {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("?{}", i + 2)).collect();
            per_chunk(
                &format!("m.uid IN ({})", list.join(",")),
                chunk.iter().map(|u| i64::from(u.0)).collect(),
                chunk,
            )?;
        }
    }
    Ok(())
}

/// Several blobs, in the order asked (`None` for unknown hashes), on one connection.
pub(crate) fn blob_get_many(
    conn: &Connection,
    hashes: &[BlobHash],
) -> Result<Vec<Option<Vec<u8>>>> {
    hashes.iter().map(|h| blob_get(conn, h)).collect()
}

/// Stored summaries of the listed messages of one mailbox, ordered by UID.
pub(crate) fn message_summaries(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, EmailSummary)>> {
    require_mailbox(conn, account, mailbox)?;
    let mut out = Vec::with_capacity(uids.len());
    for_uid_chunks(uids, |cond, args, chunk| {
        let sql = format!(
            "SELECT m.uid, e.summary, e.id FROM memberships m JOIN emails e ON e.id = m.email
             WHERE m.mailbox = ?1 AND {cond} ORDER BY m.uid"
        );
        // Not cached: IN lists vary in length and would evict the cached statements.
        let mut stmt = conn.prepare(&sql).map_err(db_err)?;
        let params = std::iter::once(mailbox.0).chain(args);
        let mut rows = stmt.query(params_from_iter(params)).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let uid = Uid(r.get(0).map_err(db_err)?);
            if chunk.binary_search(&uid).is_err() {
                continue;
            }
            let json =
                r.get_ref(1).map_err(db_err)?.as_str().map_err(|e| {
                    StoreError::Internal(format!("stored summary is not text: {e}"))
                })?;
            let summary: EmailSummary = serde_json::from_str(json).map_err(|e| {
                let id: i64 = r.get(2).unwrap_or_default();
                StoreError::Internal(format!("stored summary of email {id} is unreadable: {e}"))
            })?;
            out.push((uid, summary));
        }
        Ok(())
    })?;
    Ok(out)
}

/// Stored IMAP envelopes of the listed messages of one mailbox, ordered by UID (`None`
/// where none was stored). A dense UID set (FETCH 1:*) is read with one range scan of the
/// mailbox, a sparse one in `IN (…)` chunks.
pub(crate) fn message_envelopes(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, Option<Vec<u8>>)>> {
    require_mailbox(conn, account, mailbox)?;
    let mut wanted = uids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let (Some(&lo), Some(&hi)) = (wanted.first(), wanted.last()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(wanted.len());
    let mut read = |stmt: &mut rusqlite::Statement<'_>, params: Vec<i64>| -> Result<()> {
        let mut rows = stmt.query(params_from_iter(params)).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let uid = Uid(r.get(0).map_err(db_err)?);
            if wanted.binary_search(&uid).is_ok() {
                out.push((uid, r.get::<_, Option<Vec<u8>>>(1).map_err(db_err)?));
            }
        }
        Ok(())
    };
    if u64::from(hi.0 - lo.0) < DENSE_SPAN_FACTOR * wanted.len() as u64 {
        let mut stmt = conn
            .prepare_cached(
                "SELECT m.uid, e.imap_envelope FROM memberships m JOIN emails e ON e.id = m.email
                 WHERE m.mailbox = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
            )
            .map_err(db_err)?;
        read(&mut stmt, vec![mailbox.0, i64::from(lo.0), i64::from(hi.0)])?;
    } else {
        for chunk in wanted.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT m.uid, e.imap_envelope FROM memberships m JOIN emails e ON e.id = m.email
                 WHERE m.mailbox = ?1 AND m.uid IN ({}) ORDER BY m.uid",
                placeholders(chunk.len())
            );
            // Not cached: IN lists vary in length and would evict the cached statements.
            let mut stmt = conn.prepare(&sql).map_err(db_err)?;
            let params = std::iter::once(mailbox.0).chain(chunk.iter().map(|u| i64::from(u.0)));
            read(&mut stmt, params.collect())?;
        }
    }
    Ok(out)
}
