//! [`Store::email_query_page`](crate::Store::email_query_page) on SQLite: one windowed
//! SELECT of ids (and a COUNT when asked) instead of reading every email of the account.
//! Without a mailbox the walk follows `emails(account, received_at)`. With one, the walk
//! does too (checking each email's membership) when the mailbox holds enough of the account
//! that the window is reached soon; otherwise the mailbox's memberships (a primary key
//! range) select the emails first and they are sorted.

use super::db_err;
use crate::{AccountId, EmailId, EmailPage, EmailPageQuery, MailboxId, Result};
use rusqlite::Connection;
use rusqlite::types::Value;

/// Mailboxes smaller than this are always read by listing their memberships (cheap whatever
/// the account's size; saves counting the account). One in this crate's tests, so the
/// conformance check's small mailboxes exercise both plans.
const SMALL_MAILBOX: usize = if cfg!(test) { 1 } else { 2_000 };

/// How the mailbox condition is evaluated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MailboxPlan {
    /// Walk the account's emails in order, probing each one's membership.
    Walk,
    /// List the mailbox's memberships first.
    List,
}

/// The WHERE clause over `emails e` and its parameters.
fn conditions(account: AccountId, q: &EmailPageQuery, plan: MailboxPlan) -> (String, Vec<Value>) {
    let mut sql = String::from("e.account = ?");
    let mut params = vec![Value::Integer(account.0)];
    if let Some(mailbox) = q.mailbox {
        // IN / EXISTS, not a join: an email counts once however it sits in the mailbox.
        sql.push_str(match plan {
            MailboxPlan::Walk => {
                " AND EXISTS (SELECT 1 FROM memberships m WHERE m.email = e.id AND m.mailbox = ?)"
            }
            MailboxPlan::List => " AND e.id IN (SELECT email FROM memberships WHERE mailbox = ?)",
        });
        params.push(Value::Integer(mailbox.0));
    }
    // Stored keywords are sorted and separated by one space; a padded exact token match.
    for (keywords, test) in [(&q.has_keywords, "> 0"), (&q.not_keywords, "= 0")] {
        for k in keywords {
            sql.push_str(" AND instr(' ' || e.keywords || ' ', ?) ");
            sql.push_str(test);
            params.push(Value::Text(format!(" {k} ")));
        }
    }
    (sql, params)
}

fn to_sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn count_of(conn: &Connection, sql: &str, params: &[Value]) -> Result<usize> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let n: i64 = stmt
        .query_row(rusqlite::params_from_iter(params), |r| r.get(0))
        .map_err(db_err)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Emails in the mailbox, 0 when it is not the account's. The store keeps one membership
/// per (mailbox, email) (as `mailbox_status`'s count relies on too).
fn mailbox_size(conn: &Connection, account: AccountId, mailbox: MailboxId) -> Result<usize> {
    count_of(
        conn,
        "SELECT COUNT(*) FROM memberships WHERE mailbox = ?1
         AND EXISTS (SELECT 1 FROM mailboxes WHERE id = ?1 AND account = ?2)",
        &[Value::Integer(mailbox.0), Value::Integer(account.0)],
    )
}

/// Walking the account in order probes about `window × account / mailbox` emails; listing
/// reads the whole mailbox. Walk when that is fewer.
fn mailbox_plan(
    conn: &Connection,
    account: AccountId,
    q: &EmailPageQuery,
    mailbox_size: usize,
) -> Result<MailboxPlan> {
    if mailbox_size < SMALL_MAILBOX {
        return Ok(MailboxPlan::List);
    }
    let account_size = count_of(
        conn,
        "SELECT COUNT(*) FROM emails WHERE account = ?1",
        &[Value::Integer(account.0)],
    )?;
    let window = q.position.saturating_add(q.limit) as u128;
    let probes = window * account_size as u128;
    let listed = mailbox_size as u128 * mailbox_size as u128;
    Ok(if probes <= listed {
        MailboxPlan::Walk
    } else {
        MailboxPlan::List
    })
}

fn count(conn: &Connection, where_sql: &str, params: &[Value]) -> Result<usize> {
    count_of(
        conn,
        &format!("SELECT COUNT(*) FROM emails e WHERE {where_sql}"),
        params,
    )
}

/// The page, read inside the caller's read transaction (one snapshot for ids and count).
pub(crate) fn email_query_page(
    conn: &Connection,
    account: AccountId,
    q: &EmailPageQuery,
) -> Result<EmailPage> {
    q.validate()?;
    let mailbox_size = match q.mailbox {
        Some(m) => Some(mailbox_size(conn, account, m)?),
        None => None,
    };
    let plan = match mailbox_size {
        Some(size) => mailbox_plan(conn, account, q, size)?,
        None => MailboxPlan::Walk,
    };
    let (where_sql, params) = conditions(account, q, plan);
    // JMAP Email/query's order: received_at, then the higher id first in both directions.
    let order = if q.ascending {
        "e.received_at ASC, e.id DESC"
    } else {
        "e.received_at DESC, e.id DESC"
    };
    let mut ids = Vec::new();
    if q.limit > 0 {
        let sql = format!(
            "SELECT e.id FROM emails e WHERE {where_sql} ORDER BY {order} LIMIT ? OFFSET ?"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
        let mut all = params.clone();
        all.push(Value::Integer(to_sql_int(q.limit)));
        all.push(Value::Integer(to_sql_int(q.position)));
        let rows = stmt
            .query_map(rusqlite::params_from_iter(&all), |r| r.get::<_, i64>(0))
            .map_err(db_err)?;
        for row in rows {
            ids.push(EmailId(row.map_err(db_err)?));
        }
    }
    let keywords = !q.has_keywords.is_empty() || !q.not_keywords.is_empty();
    let total = if q.needs_total(&ids) {
        Some(match mailbox_size {
            Some(size) if !keywords => size,
            _ => count(conn, &where_sql, &params)?,
        })
    } else {
        None
    };
    Ok(q.page(ids, total))
}
