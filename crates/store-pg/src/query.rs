//! [`Store::email_query_page`](bulwark_store::Store::email_query_page) on PostgreSQL: one
//! windowed SELECT of ids (and a COUNT when asked) instead of reading every email of the
//! account. Statements are static (the statement cache is keyed by them): keyword
//! conditions travel as arrays, so an empty list costs nothing.

use crate::pool::{Tx, get};
use bulwark_store::{AccountId, EmailId, EmailPage, EmailPageQuery, Result};

/// `$1` account, `$2` keywords every email has, `$3` keywords none has. Stored keywords are
/// sorted and separated by one space: a padded exact token match.
macro_rules! account_where {
    () => {
        "e.account = $1
         AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) k
                         WHERE strpos(' ' || e.keywords || ' ', ' ' || k || ' ') = 0)
         AND NOT EXISTS (SELECT 1 FROM unnest($3::text[]) k
                         WHERE strpos(' ' || e.keywords || ' ', ' ' || k || ' ') > 0)"
    };
}

/// `$4` mailbox; IN, not a join: an email counts once however it sits in the mailbox.
macro_rules! mailbox_where {
    () => {
        " AND e.id IN (SELECT email FROM memberships WHERE mailbox = $4)"
    };
}

// JMAP Email/query's order: received_at, then the higher id first in both directions.
const PAGE_DESC: &str = concat!(
    "SELECT e.id FROM emails e WHERE ",
    account_where!(),
    " ORDER BY e.received_at DESC, e.id DESC LIMIT $4 OFFSET $5"
);
const PAGE_ASC: &str = concat!(
    "SELECT e.id FROM emails e WHERE ",
    account_where!(),
    " ORDER BY e.received_at ASC, e.id DESC LIMIT $4 OFFSET $5"
);
const MAILBOX_PAGE_DESC: &str = concat!(
    "SELECT e.id FROM emails e WHERE ",
    account_where!(),
    mailbox_where!(),
    " ORDER BY e.received_at DESC, e.id DESC LIMIT $5 OFFSET $6"
);
const MAILBOX_PAGE_ASC: &str = concat!(
    "SELECT e.id FROM emails e WHERE ",
    account_where!(),
    mailbox_where!(),
    " ORDER BY e.received_at ASC, e.id DESC LIMIT $5 OFFSET $6"
);
const COUNT: &str = concat!("SELECT COUNT(*) FROM emails e WHERE ", account_where!());
const MAILBOX_COUNT: &str = concat!(
    "SELECT COUNT(*) FROM emails e WHERE ",
    account_where!(),
    mailbox_where!()
);

fn to_sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The page, read inside the caller's read transaction (one snapshot for ids and count).
pub(crate) async fn email_query_page(
    tx: &mut Tx<'_>,
    account: AccountId,
    q: &EmailPageQuery,
) -> Result<EmailPage> {
    q.validate()?;
    let limit = to_sql_int(q.limit);
    let offset = to_sql_int(q.position);
    let (has, not) = (&q.has_keywords, &q.not_keywords);
    let mut ids = Vec::new();
    if q.limit > 0 {
        let rows = match q.mailbox {
            None => {
                let sql = if q.ascending { PAGE_ASC } else { PAGE_DESC };
                tx.query(sql, &[&account.0, has, not, &limit, &offset])
                    .await?
            }
            Some(m) => {
                let sql = if q.ascending {
                    MAILBOX_PAGE_ASC
                } else {
                    MAILBOX_PAGE_DESC
                };
                tx.query(sql, &[&account.0, has, not, &m.0, &limit, &offset])
                    .await?
            }
        };
        for row in &rows {
            ids.push(EmailId(get(row, 0)?));
        }
    }
    let total = if q.needs_total(&ids) {
        let row = match q.mailbox {
            None => tx.one(COUNT, &[&account.0, has, not]).await?,
            Some(m) => tx.one(MAILBOX_COUNT, &[&account.0, has, not, &m.0]).await?,
        };
        Some(usize::try_from(get::<i64>(&row, 0)?).unwrap_or(0))
    } else {
        None
    };
    Ok(q.page(ids, total))
}
