//! Email reads: mailbox listings, email objects, expunge log, blobs.

use crate::mailboxes::require_mailbox;
use crate::pool::{Tx, get, get_modseq, get_u32, sql_modseq};
use bulwark_store::rules::keywords_from_text;
use bulwark_store::{
    AccountId, BlobHash, Email, EmailId, EmailSummary, MailboxDelta, MailboxId, MessageMeta,
    ModSeq, Result, SearchHeaders, StoreError, ThreadId, Uid,
};
use std::collections::HashMap;
use tokio_postgres::Row;

/// Ids per `= ANY($n)` query (keeps each array parameter small).
const ANY_CHUNK: usize = 1000;

/// A UID set spanning at most this many times its size is read with one range scan.
const DENSE_SPAN_FACTOR: i64 = 4;

/// The messages of one mailbox ordered by UID, in one query (no blobs read).
pub(crate) async fn mailbox_messages(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
) -> Result<Vec<MessageMeta>> {
    require_mailbox(tx, account, mailbox).await?;
    let rows = tx
        .query(
            "SELECT m.uid, m.email, e.thread, GREATEST(m.modseq, e.kw_modseq), e.keywords, e.size,
                    e.received_at, e.blob
             FROM memberships m JOIN emails e ON e.id = m.email
             WHERE m.mailbox = $1 ORDER BY m.uid",
            &[&mailbox.0],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(MessageMeta {
                uid: Uid(get_u32(r, 0)?),
                email: EmailId(get(r, 1)?),
                thread: ThreadId(get(r, 2)?),
                modseq: get_modseq(r, 3)?,
                keywords: keywords_from_text(get(r, 4)?),
                size: get_u32(r, 5)?,
                received_at: get(r, 6)?,
                blob: BlobHash(get(r, 7)?),
            })
        })
        .collect()
}

/// UIDs expunged after `since` (RFC 7162 §3.2.5.2 VANISHED (EARLIER)).
pub(crate) async fn expunged_since(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<Vec<Uid>> {
    require_mailbox(tx, account, mailbox).await?;
    let rows = tx
        .query(
            "SELECT uid FROM expunged WHERE mailbox = $1 AND modseq > $2 ORDER BY uid",
            &[&mailbox.0, &sql_modseq(since)],
        )
        .await?;
    rows.iter().map(|r| Ok(Uid(get_u32(r, 0)?))).collect()
}

fn email_from_row(r: &Row) -> Result<Email> {
    let mut email = Email {
        id: EmailId(get(r, 0)?),
        account: AccountId(get(r, 1)?),
        thread: ThreadId(get(r, 2)?),
        blob: BlobHash(get(r, 3)?),
        size: get_u32(r, 4)?,
        received_at: get(r, 5)?,
        keywords: keywords_from_text(get(r, 6)?),
        mailboxes: Vec::new(),
        modseq: get_modseq(r, 7)?,
        summary: EmailSummary::default(),
    };
    let json: &str = get(r, 8)?;
    email.summary = serde_json::from_str(json).map_err(|e| {
        StoreError::Internal(format!(
            "stored summary of email {} is unreadable: {e}",
            email.id
        ))
    })?;
    Ok(email)
}

/// The emails with these ids (unknown ids are skipped), in the order asked.
pub(crate) async fn email_get(
    tx: &mut Tx<'_>,
    account: AccountId,
    ids: &[EmailId],
) -> Result<Vec<Email>> {
    let mut found: HashMap<EmailId, Email> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ANY_CHUNK) {
        let chunk: Vec<i64> = chunk.iter().map(|id| id.0).collect();
        let rows = tx
            .query(
                "SELECT id, account, thread, blob, size, received_at, keywords, modseq, summary
                 FROM emails WHERE account = $1 AND id = ANY($2)",
                &[&account.0, &chunk],
            )
            .await?;
        for row in &rows {
            let email = email_from_row(row)?;
            found.insert(email.id, email);
        }
        let rows = tx
            .query(
                "SELECT email, mailbox, uid FROM memberships WHERE email = ANY($1)
                 ORDER BY mailbox",
                &[&chunk],
            )
            .await?;
        for row in &rows {
            let email = EmailId(get(row, 0)?);
            if let Some(email) = found.get_mut(&email) {
                email
                    .mailboxes
                    .push((MailboxId(get(row, 1)?), Uid(get_u32(row, 2)?)));
            }
        }
    }
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// Every email of the account, newest first (two queries).
pub(crate) async fn email_list(tx: &mut Tx<'_>, account: AccountId) -> Result<Vec<Email>> {
    let rows = tx
        .query(
            "SELECT id, account, thread, blob, size, received_at, keywords, modseq, summary
             FROM emails WHERE account = $1 ORDER BY received_at DESC, id DESC",
            &[&account.0],
        )
        .await?;
    let mut emails = Vec::with_capacity(rows.len());
    let mut index: HashMap<EmailId, usize> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let email = email_from_row(row)?;
        index.insert(email.id, emails.len());
        emails.push(email);
    }
    let rows = tx
        .query(
            "SELECT m.email, m.mailbox, m.uid FROM memberships m JOIN mailboxes b ON b.id = m.mailbox
             WHERE b.account = $1 ORDER BY m.mailbox",
            &[&account.0],
        )
        .await?;
    for row in &rows {
        let email = EmailId(get(row, 0)?);
        if let Some(&i) = index.get(&email)
            && let Some(email) = emails.get_mut(i)
        {
            email
                .mailboxes
                .push((MailboxId(get(row, 1)?), Uid(get_u32(row, 2)?)));
        }
    }
    Ok(emails)
}

pub(crate) async fn blob_get(tx: &mut Tx<'_>, hash: &BlobHash) -> Result<Option<Vec<u8>>> {
    let row = tx
        .opt("SELECT data FROM blobs WHERE hash = $1", &[&hash.0])
        .await?;
    row.map(|r| get::<Vec<u8>>(&r, 0)).transpose()
}

fn meta_from_row(r: &Row) -> Result<MessageMeta> {
    Ok(MessageMeta {
        uid: Uid(get_u32(r, 0)?),
        email: EmailId(get(r, 1)?),
        thread: ThreadId(get(r, 2)?),
        modseq: get_modseq(r, 3)?,
        keywords: keywords_from_text(get(r, 4)?),
        size: get_u32(r, 5)?,
        received_at: get(r, 6)?,
        blob: BlobHash(get(r, 7)?),
    })
}

/// Messages of the mailbox with a modseq above `since`, UIDs expunged after it, and the
/// mailbox's HIGHESTMODSEQ (read first: per-account locks commit modseqs in order, so
/// everything at or below it is visible to the later statements).
pub(crate) async fn mailbox_delta(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    since: ModSeq,
) -> Result<MailboxDelta> {
    let highest_modseq = require_mailbox(tx, account, mailbox).await?.highest_modseq;
    if highest_modseq <= since {
        return Ok(MailboxDelta {
            highest_modseq,
            ..MailboxDelta::default()
        });
    }
    let rows = tx
        .query(
            "SELECT m.uid, m.email, e.thread, GREATEST(m.modseq, e.kw_modseq), e.keywords, e.size,
                    e.received_at, e.blob
             FROM memberships m JOIN emails e ON e.id = m.email
             WHERE m.mailbox = $1 AND m.modseq > $2
             UNION
             SELECT m.uid, m.email, e.thread, GREATEST(m.modseq, e.kw_modseq), e.keywords, e.size,
                    e.received_at, e.blob
             FROM emails e JOIN memberships m ON m.email = e.id AND m.mailbox = $1
             WHERE e.account = $3 AND e.kw_modseq > $2
             ORDER BY 1",
            &[&mailbox.0, &sql_modseq(since), &account.0],
        )
        .await?;
    let changed = rows.iter().map(meta_from_row).collect::<Result<_>>()?;
    let expunged = expunged_since(tx, account, mailbox, since).await?;
    Ok(MailboxDelta {
        highest_modseq,
        changed,
        expunged,
    })
}

fn uid_params(uids: &[Uid]) -> Vec<i64> {
    let mut v: Vec<i64> = uids.iter().map(|u| i64::from(u.0)).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Several blobs, in the order asked (`None` for unknown hashes), one query per chunk.
pub(crate) async fn blob_get_many(
    tx: &mut Tx<'_>,
    hashes: &[BlobHash],
) -> Result<Vec<Option<Vec<u8>>>> {
    let mut found: HashMap<String, Vec<u8>> = HashMap::with_capacity(hashes.len());
    for chunk in hashes.chunks(ANY_CHUNK) {
        let keys: Vec<&str> = chunk.iter().map(|h| h.0.as_str()).collect();
        let rows = tx
            .query(
                "SELECT hash, data FROM blobs WHERE hash = ANY($1)",
                &[&keys],
            )
            .await?;
        for r in &rows {
            found.insert(get::<String>(r, 0)?, get::<Vec<u8>>(r, 1)?);
        }
    }
    Ok(hashes.iter().map(|h| found.get(&h.0).cloned()).collect())
}

/// Stored summaries of the listed messages of one mailbox, ordered by UID.
pub(crate) async fn message_summaries(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, EmailSummary)>> {
    require_mailbox(tx, account, mailbox).await?;
    let mut out = Vec::with_capacity(uids.len());
    for chunk in uid_params(uids).chunks(ANY_CHUNK) {
        let chunk = chunk.to_vec();
        let rows = tx
            .query(
                "SELECT m.uid, e.summary, e.id FROM memberships m JOIN emails e ON e.id = m.email
                 WHERE m.mailbox = $1 AND m.uid = ANY($2) ORDER BY m.uid",
                &[&mailbox.0, &chunk],
            )
            .await?;
        for r in &rows {
            let json: &str = get(r, 1)?;
            let summary: EmailSummary = serde_json::from_str(json).map_err(|e| {
                let id: i64 = get(r, 2).unwrap_or_default();
                StoreError::Internal(format!("stored summary of email {id} is unreadable: {e}"))
            })?;
            out.push((Uid(get_u32(r, 0)?), summary));
        }
    }
    Ok(out)
}

/// Rows (the UID first) of the listed messages of one mailbox, ordered by UID. A dense UID
/// set (FETCH 1:*) is read with one range scan of the mailbox (`dense`: `$1` the mailbox,
/// `$2`..`$3` the UID range), a sparse one by `= ANY` lists (`sparse`: `$1` the mailbox, `$2`
/// the UIDs); rows of UIDs not asked for are left out.
async fn rows_of_uids(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
    dense: &'static str,
    sparse: &'static str,
) -> Result<Vec<Row>> {
    require_mailbox(tx, account, mailbox).await?;
    let wanted = uid_params(uids);
    let (Some(&lo), Some(&hi)) = (wanted.first(), wanted.last()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(wanted.len());
    let mut keep = |rows: Vec<Row>| -> Result<()> {
        for r in rows {
            if wanted.binary_search(&get::<i64>(&r, 0)?).is_ok() {
                out.push(r);
            }
        }
        Ok(())
    };
    if hi - lo < DENSE_SPAN_FACTOR * wanted.len() as i64 {
        keep(tx.query(dense, &[&mailbox.0, &lo, &hi]).await?)?;
    } else {
        for chunk in wanted.chunks(ANY_CHUNK) {
            let chunk = chunk.to_vec();
            keep(tx.query(sparse, &[&mailbox.0, &chunk]).await?)?;
        }
    }
    Ok(out)
}

/// Stored IMAP envelopes of the listed messages of one mailbox, ordered by UID (`None`
/// where none was stored).
pub(crate) async fn message_envelopes(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, Option<Vec<u8>>)>> {
    let rows = rows_of_uids(
        tx,
        account,
        mailbox,
        uids,
        "SELECT m.uid, v.data FROM memberships m LEFT JOIN envelopes v ON v.email = m.email
         WHERE m.mailbox = $1 AND m.uid BETWEEN $2 AND $3 ORDER BY m.uid",
        "SELECT m.uid, v.data FROM memberships m LEFT JOIN envelopes v ON v.email = m.email
         WHERE m.mailbox = $1 AND m.uid = ANY($2) ORDER BY m.uid",
    )
    .await?;
    rows.iter()
        .map(|r| Ok((Uid(get_u32(r, 0)?), get::<Option<Vec<u8>>>(r, 1)?)))
        .collect()
}

/// Save dates (RFC 8514) of the listed messages of one mailbox, ordered by UID; a
/// membership stored before they were kept (NULL) reads as the email's internal date.
pub(crate) async fn message_save_dates(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, i64)>> {
    let rows = rows_of_uids(
        tx,
        account,
        mailbox,
        uids,
        "SELECT m.uid, coalesce(m.saved_at, e.received_at) FROM memberships m
         JOIN emails e ON e.id = m.email
         WHERE m.mailbox = $1 AND m.uid BETWEEN $2 AND $3 ORDER BY m.uid",
        "SELECT m.uid, coalesce(m.saved_at, e.received_at) FROM memberships m
         JOIN emails e ON e.id = m.email
         WHERE m.mailbox = $1 AND m.uid = ANY($2) ORDER BY m.uid",
    )
    .await?;
    rows.iter()
        .map(|r| Ok((Uid(get_u32(r, 0)?), get::<i64>(r, 1)?)))
        .collect()
}

/// Subject/from/to/cc of the listed messages of one mailbox, ordered by UID: PostgreSQL
/// takes them out of the stored summary, so only these fields travel.
pub(crate) async fn message_search_headers(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<Vec<(Uid, SearchHeaders)>> {
    require_mailbox(tx, account, mailbox).await?;
    let mut out = Vec::with_capacity(uids.len());
    for chunk in uid_params(uids).chunks(ANY_CHUNK) {
        let chunk = chunk.to_vec();
        let rows = tx
            .query(
                "SELECT m.uid, coalesce(s.j->>'subject', ''), coalesce(s.j->>'from', ''),
                        coalesce(s.j->>'to', ''), coalesce(s.j->>'cc', '')
                 FROM memberships m JOIN emails e ON e.id = m.email,
                      LATERAL (SELECT e.summary::jsonb AS j) s
                 WHERE m.mailbox = $1 AND m.uid = ANY($2) ORDER BY m.uid",
                &[&mailbox.0, &chunk],
            )
            .await?;
        for r in &rows {
            out.push((
                Uid(get_u32(r, 0)?),
                SearchHeaders {
                    subject: get(r, 1)?,
                    from: get(r, 2)?,
                    to: get(r, 3)?,
                    cc: get(r, 4)?,
                },
            ));
        }
    }
    Ok(out)
}
