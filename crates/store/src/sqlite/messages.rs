//! Email reads: mailbox listings, email objects, expunge log, blobs.

use super::db_err;
use super::mailboxes::require_mailbox;
use crate::rules::keywords_from_text;
use crate::{
    AccountId, BlobHash, Email, EmailId, EmailSummary, MailboxDelta, MailboxId, MessageMeta,
    ModSeq, Result, SearchHeaders, StoreError, ThreadId, Uid,
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
    Ok(keywords_from_text(text))
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
    let rows = stmt.query_map([mailbox.0], meta_from_row).map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

/// A [`MessageMeta`] from `uid, email, thread, modseq, keywords, size, received_at, blob`.
fn meta_from_row(r: &Row<'_>) -> rusqlite::Result<MessageMeta> {
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
}

/// Deltas with fewer changes than this are always read through the indexes (counting
/// them costs two short index probes).
const DELTA_COUNT_CAP: i64 = 4096;

/// A delta covering at least one message in this many of the mailbox is read with one
/// scan of the mailbox instead of the two index walks.
const DELTA_SCAN_FRACTION: i64 = 4;

/// Would the changes after `since` (new memberships plus keyword changes in the account,
/// an over-estimate) cover a large part of the mailbox?
fn delta_is_large(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<bool> {
    let count = |sql: &str, a: i64, cap: i64| -> Result<i64> {
        conn.prepare_cached(sql)
            .map_err(db_err)?
            .query_row(params![a, since.0 as i64, cap], |r| r.get(0))
            .map_err(db_err)
    };
    let changes = |cap: i64| -> Result<i64> {
        Ok(count(
            "SELECT count(*) FROM (SELECT 1 FROM memberships WHERE mailbox = ?1 AND modseq > ?2 LIMIT ?3)",
            mailbox.0,
            cap,
        )? + count(
            "SELECT count(*) FROM (SELECT 1 FROM emails WHERE account = ?1 AND kw_modseq > ?2 LIMIT ?3)",
            account.0,
            cap,
        )?)
    };
    if changes(DELTA_COUNT_CAP)? < DELTA_COUNT_CAP {
        return Ok(false);
    }
    let size: i64 = conn
        .prepare_cached("SELECT count(*) FROM memberships WHERE mailbox = ?1")
        .map_err(db_err)?
        .query_row([mailbox.0], |r| r.get(0))
        .map_err(db_err)?;
    // LIMIT -1: no limit.
    let changes = changes(-1)?;
    Ok(changes * DELTA_SCAN_FRACTION >= size)
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
/// mailbox's HIGHESTMODSEQ, in one snapshot, read through the indexes; or `None` when the delta covers a large part of the mailbox:
/// then [`mailbox_delta_scan`] (on a bulk-scan connection) reads it.
pub(crate) fn mailbox_delta_unless_large(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<Option<MailboxDelta>> {
    let highest_modseq = require_mailbox(conn, account, mailbox)?.highest_modseq;
    if highest_modseq <= since {
        return Ok(Some(MailboxDelta {
            highest_modseq,
            ..MailboxDelta::default()
        }));
    }
    if delta_is_large(conn, account, mailbox, since)? {
        return Ok(None);
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
            .query_map(params![mailbox.0, since.0 as i64, account.0], meta_from_row)
            .map_err(db_err)?;
        for row in rows {
            changed.push(row.map_err(db_err)?);
        }
    }
    changed.sort_unstable_by_key(|m| m.uid);
    changed.dedup_by_key(|m| m.uid);
    let expunged = expunged_since(conn, account, mailbox, since)?;
    Ok(Some(MailboxDelta {
        highest_modseq,
        changed,
        expunged,
    }))
}

/// The mailbox delta by one scan of the mailbox in UID order: cheaper than two index walks
/// that each return most of it (a session that last saw the mailbox before a mass delivery).
pub(crate) fn mailbox_delta_scan(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<MailboxDelta> {
    let highest_modseq = require_mailbox(conn, account, mailbox)?.highest_modseq;
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.uid, m.email, e.thread, max(m.modseq, e.kw_modseq), e.keywords, e.size, e.received_at, e.blob
             FROM memberships m JOIN emails e ON e.id = m.email
             WHERE m.mailbox = ?1 AND max(m.modseq, e.kw_modseq) > ?2 ORDER BY m.uid",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![mailbox.0, since.0 as i64], meta_from_row)
        .map_err(db_err)?;
    let changed = rows.collect::<rusqlite::Result<_>>().map_err(db_err)?;
    let expunged = expunged_since(conn, account, mailbox, since)?;
    Ok(MailboxDelta {
        highest_modseq,
        changed,
        expunged,
    })
}

/// Runs `select` (`SELECT m.uid, … FROM memberships m …`, without WHERE) over the listed UIDs
/// of `mailbox` and calls `row` for each row of a listed UID, in UID order: a dense UID set
/// (FETCH 1:*) is one `uid BETWEEN` range scan, a sparse one `IN (…)` chunks.
fn scan_uids(
    conn: &Connection,
    mailbox: MailboxId,
    uids: &[Uid],
    select: &str,
    mut row: impl FnMut(Uid, &Row<'_>) -> Result<()>,
) -> Result<()> {
    let mut wanted = uids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let (Some(&lo), Some(&hi)) = (wanted.first(), wanted.last()) else {
        return Ok(());
    };
    let mut read = |stmt: &mut rusqlite::Statement<'_>, params: Vec<i64>| -> Result<()> {
        let mut rows = stmt.query(params_from_iter(params)).map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let uid = Uid(r.get(0).map_err(db_err)?);
            if wanted.binary_search(&uid).is_ok() {
                row(uid, r)?;
            }
        }
        Ok(())
    };
    if u64::from(hi.0 - lo.0) < DENSE_SPAN_FACTOR * wanted.len() as u64 {
        let mut stmt = conn
            .prepare_cached(&format!(
                "{select} WHERE m.mailbox = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
            ))
            .map_err(db_err)?;
        read(&mut stmt, vec![mailbox.0, i64::from(lo.0), i64::from(hi.0)])?;
    } else {
        for chunk in wanted.chunks(IN_CHUNK) {
            let sql = format!(
                "{select} WHERE m.mailbox = ?1 AND m.uid IN ({}) ORDER BY m.uid",
                placeholders(chunk.len())
            );
            // Not cached: IN lists vary in length and would evict the cached statements.
            let mut stmt = conn.prepare(&sql).map_err(db_err)?;
            let params = std::iter::once(mailbox.0).chain(chunk.iter().map(|u| i64::from(u.0)));
            read(&mut stmt, params.collect())?;
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
    scan_uids(
        conn,
        mailbox,
        uids,
        "SELECT m.uid, e.summary, e.id FROM memberships m JOIN emails e ON e.id = m.email",
        |uid, r| {
            let json =
                r.get_ref(1).map_err(db_err)?.as_str().map_err(|e| {
                    StoreError::Internal(format!("stored summary is not text: {e}"))
                })?;
            let summary: EmailSummary = serde_json::from_str(json).map_err(|e| {
                let id: i64 = r.get(2).unwrap_or_default();
                StoreError::Internal(format!("stored summary of email {id} is unreadable: {e}"))
            })?;
            out.push((uid, summary));
            Ok(())
        },
    )?;
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
    let mut out = Vec::with_capacity(uids.len());
    scan_uids(
        conn,
        mailbox,
        uids,
        "SELECT m.uid, v.data FROM memberships m LEFT JOIN envelopes v ON v.email = m.email",
        |uid, r| {
            out.push((uid, r.get::<_, Option<Vec<u8>>>(1).map_err(db_err)?));
            Ok(())
        },
    )?;
    Ok(out)
}

/// Save dates (RFC 8514) of the listed messages of one mailbox, ordered by UID; a
/// membership stored before they were kept (NULL) reads as the email's internal date.
pub(crate) fn message_save_dates(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, i64)>> {
    require_mailbox(conn, account, mailbox)?;
    let mut out = Vec::with_capacity(uids.len());
    scan_uids(
        conn,
        mailbox,
        uids,
        "SELECT m.uid, coalesce(m.saved_at, e.received_at) FROM memberships m
         JOIN emails e ON e.id = m.email",
        |uid, r| {
            out.push((uid, r.get::<_, i64>(1).map_err(db_err)?));
            Ok(())
        },
    )?;
    Ok(out)
}

/// Subject/from/to/cc of the listed messages of one mailbox, ordered by UID, from the small
/// `search_headers` table (one range scan for a dense UID set, `IN (…)` chunks for a sparse
/// one). An email without a row there (none is expected) is read from its summary.
pub(crate) fn message_search_headers(
    conn: &Connection,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, SearchHeaders)>> {
    require_mailbox(conn, account, mailbox)?;
    let mut out = Vec::with_capacity(uids.len());
    // (index in `out`, email) of rows without stored headers.
    let mut missing: Vec<(usize, EmailId)> = Vec::new();
    scan_uids(
        conn,
        mailbox,
        uids,
        "SELECT m.uid, m.email, h.subject, h.from_, h.to_, h.cc
         FROM memberships m LEFT JOIN search_headers h ON h.email = m.email",
        |uid, r| {
            let subject: Option<String> = r.get(2).map_err(db_err)?;
            let Some(subject) = subject else {
                missing.push((out.len(), EmailId(r.get(1).map_err(db_err)?)));
                out.push((uid, SearchHeaders::default()));
                return Ok(());
            };
            let text = |i: usize| -> Result<String> {
                Ok(r.get::<_, Option<String>>(i)
                    .map_err(db_err)?
                    .unwrap_or_default())
            };
            let headers = SearchHeaders {
                subject,
                from: text(3)?,
                to: text(4)?,
                cc: text(5)?,
            };
            out.push((uid, headers));
            Ok(())
        },
    )?;
    if !missing.is_empty() {
        let ids: Vec<EmailId> = missing.iter().map(|&(_, id)| id).collect();
        let mut found: HashMap<EmailId, EmailSummary> = email_get(conn, account, &ids)?
            .into_iter()
            .map(|e| (e.id, e.summary))
            .collect();
        for (i, id) in missing {
            if let (Some(slot), Some(summary)) = (out.get_mut(i), found.remove(&id)) {
                slot.1 = SearchHeaders::from(summary);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use crate::{Store, conformance};
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn search_headers_of_an_email_without_a_stored_row_come_from_its_summary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = SqliteStore::open(dir.path()).expect("open");
        let (account, inbox) = conformance::new_account(&store).await;
        let mut email = conformance::new_email(&[inbox.id], "Grüße aus Köln");
        email.summary.from = "Zoë <zoe@example.test>".into();
        store
            .email_append(account.id, vec![email])
            .await
            .expect("append");
        let stored = store
            .message_search_headers(account.id, inbox.id, &[Uid(1)])
            .await
            .expect("headers");
        // As an email stored before version 6 without a readable summary copy would be.
        let conn = Connection::open(dir.path().join(crate::sqlite::DB_FILE)).expect("open db");
        conn.execute("DELETE FROM search_headers", [])
            .expect("drop row");
        let fallback = store
            .message_search_headers(account.id, inbox.id, &[Uid(1)])
            .await
            .expect("headers");
        assert_eq!(stored, fallback);
        assert_eq!(fallback[0].1.subject, "Grüße aus Köln");
        assert_eq!(fallback[0].1.from, "Zoë <zoe@example.test>");
    }
}
