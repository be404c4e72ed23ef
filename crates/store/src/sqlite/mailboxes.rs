//! Mailboxes: create, rename, delete, attributes, status.

use super::db_err;
use super::writer::Tx;
use crate::domain::mailboxes as domain;
use crate::engine::run_ready;
use crate::{
    AccountId, EmailId, Mailbox, MailboxId, MailboxStatus, ModSeq, Result, Role, StoreError, Uid,
    now_unix,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) fn role_to_text(role: Option<Role>) -> Option<&'static str> {
    role.map(Role::as_jmap)
}

const MAILBOX_COLUMNS: &str =
    "id, account, name, role, uid_validity, uid_next, subscribed, highest_modseq, sort_order";

fn mailbox_from_row(r: &Row<'_>) -> rusqlite::Result<Mailbox> {
    let role: Option<String> = r.get(3)?;
    Ok(Mailbox {
        id: MailboxId(r.get(0)?),
        account: AccountId(r.get(1)?),
        name: r.get(2)?,
        role: role.as_deref().and_then(Role::from_jmap),
        uid_validity: r.get(4)?,
        uid_next: Uid(r.get(5)?),
        subscribed: r.get(6)?,
        highest_modseq: ModSeq(r.get::<_, i64>(7)? as u64),
        sort_order: r
            .get::<_, Option<i64>>(8)?
            .and_then(|v| u32::try_from(v).ok()),
    })
}

/// Takes the next UIDVALIDITY: a database-wide counter seeded from the clock, so no two
/// mailboxes ever share one, even across delete and recreate (RFC 9051 §2.3.1.1).
pub(crate) fn next_uid_validity(conn: &Connection) -> Result<u32> {
    let stored: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'uid_validity_next'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    let clock = now_unix().clamp(1, u32::MAX as i64);
    let mut value = stored.unwrap_or(clock).max(1);
    if value > u32::MAX as i64 {
        // Wrapped after four billion mailboxes: start over at 1 (never 0, which is invalid).
        value = 1;
    }
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('uid_validity_next', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [value + 1],
    )
    .map_err(db_err)?;
    Ok(value as u32)
}

/// Inserts a mailbox (used by `mailbox_create` and account creation): the shared rule.
pub(crate) fn insert_mailbox(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    role: Option<Role>,
    subscribed: bool,
) -> Result<Mailbox> {
    run_ready(domain::insert_mailbox(tx, account, name, role, subscribed))?
}

pub(crate) fn role_taken(conn: &Connection, account: AccountId, role: Role) -> Result<bool> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM mailboxes WHERE account = ?1 AND role = ?2")
        .map_err(db_err)?;
    stmt.exists(params![account.0, role.as_jmap()])
        .map_err(db_err)
}

/// A new mailbox row.
pub(crate) fn insert_mailbox_row(
    conn: &Connection,
    account: AccountId,
    name: &str,
    role: Option<Role>,
    uid_validity: u32,
    subscribed: bool,
    modseq: ModSeq,
) -> Result<MailboxId> {
    conn.prepare_cached(
        "INSERT INTO mailboxes (account, name, role, uid_validity, uid_next, subscribed, highest_modseq)
         VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)",
    )
    .map_err(db_err)?
    .execute(params![account.0, name, role_to_text(role), uid_validity, subscribed, modseq.0 as i64])
    .map_err(db_err)?;
    Ok(MailboxId(conn.last_insert_rowid()))
}

pub(crate) fn mailbox_id_by_name(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<Option<MailboxId>> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM mailboxes WHERE account = ?1 AND name = ?2")
        .map_err(db_err)?;
    stmt.query_row(params![account.0, name], |r| r.get(0))
        .optional()
        .map(|id| id.map(MailboxId))
        .map_err(db_err)
}

/// Loads a mailbox of the account or fails with `NotFound`.
pub(crate) fn require_mailbox(
    conn: &Connection,
    account: AccountId,
    id: MailboxId,
) -> Result<Mailbox> {
    mailbox_get(conn, account, id)?.ok_or_else(|| StoreError::NotFound(format!("mailbox {id}")))
}

pub(crate) fn mailbox_create(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    role: Option<Role>,
) -> Result<Mailbox> {
    run_ready(domain::mailbox_create(tx, account, name, role))?
}

pub(crate) fn mailbox_list(conn: &Connection, account: AccountId) -> Result<Vec<Mailbox>> {
    let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account = ?1 ORDER BY name");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map([account.0], mailbox_from_row)
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

pub(crate) fn mailbox_get(
    conn: &Connection,
    account: AccountId,
    id: MailboxId,
) -> Result<Option<Mailbox>> {
    let sql = format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?1 AND account = ?2");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    stmt.query_row(params![id.0, account.0], mailbox_from_row)
        .optional()
        .map_err(db_err)
}

pub(crate) fn mailbox_rename(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    new_name: &str,
) -> Result<()> {
    run_ready(domain::mailbox_rename(tx, account, id, new_name))?
}

pub(crate) fn mailbox_delete(tx: &mut Tx<'_>, account: AccountId, id: MailboxId) -> Result<()> {
    run_ready(domain::mailbox_delete(tx, account, id))?
}

pub(crate) fn mailbox_set_subscribed(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    subscribed: bool,
) -> Result<()> {
    run_ready(domain::mailbox_set_subscribed(tx, account, id, subscribed))?
}

pub(crate) fn mailbox_set_sort_order(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    sort_order: Option<u32>,
) -> Result<()> {
    run_ready(domain::mailbox_set_sort_order(tx, account, id, sort_order))?
}

pub(crate) fn mailbox_set_role(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    role: Option<Role>,
) -> Result<()> {
    run_ready(domain::mailbox_set_role(tx, account, id, role))?
}

/// The mailbox and those whose name starts with `prefix`.
pub(crate) fn mailbox_and_children(
    conn: &Connection,
    account: AccountId,
    id: MailboxId,
    prefix: &str,
) -> Result<Vec<(MailboxId, String)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, name FROM mailboxes WHERE account = ?1
             AND (id = ?2 OR substr(name, 1, length(?3)) = ?3)",
        )
        .map_err(db_err)?;
    stmt.query_map(params![account.0, id.0, prefix], |r| {
        Ok((MailboxId(r.get(0)?), r.get::<_, String>(1)?))
    })
    .map_err(db_err)?
    .collect::<rusqlite::Result<_>>()
    .map_err(db_err)
}

/// Sets one column of a mailbox row (`column` is one of the callers' constants).
pub(crate) fn set_mailbox_column(
    conn: &Connection,
    id: MailboxId,
    column: &'static str,
    value: &dyn rusqlite::ToSql,
) -> Result<()> {
    conn.prepare_cached(&format!("UPDATE mailboxes SET {column} = ?2 WHERE id = ?1"))
        .map_err(db_err)?
        .execute(params![id.0, value])
        .map_err(db_err)?;
    Ok(())
}

pub(crate) fn mailbox_members(conn: &Connection, id: MailboxId) -> Result<Vec<(Uid, EmailId)>> {
    let mut stmt = conn
        .prepare_cached("SELECT uid, email FROM memberships WHERE mailbox = ?1 ORDER BY uid")
        .map_err(db_err)?;
    stmt.query_map([id.0], |r| Ok((Uid(r.get(0)?), EmailId(r.get(1)?))))
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)
}

pub(crate) fn delete_mailbox_row(conn: &Connection, id: MailboxId) -> Result<()> {
    for sql in [
        "DELETE FROM expunged WHERE mailbox = ?1",
        "DELETE FROM mailboxes WHERE id = ?1",
    ] {
        conn.prepare_cached(sql)
            .map_err(db_err)?
            .execute([id.0])
            .map_err(db_err)?;
    }
    Ok(())
}

/// Counts in one indexed query; never reads blobs.
pub(crate) fn mailbox_status(
    conn: &Connection,
    account: AccountId,
    id: MailboxId,
) -> Result<MailboxStatus> {
    let mailbox = require_mailbox(conn, account, id)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(e.seen = 0), 0), coalesce(sum(e.size), 0),
                    count(DISTINCT e.thread), count(DISTINCT CASE WHEN e.seen = 0 THEN e.thread END)
             FROM memberships m JOIN emails e ON e.id = m.email WHERE m.mailbox = ?1",
        )
        .map_err(db_err)?;
    stmt.query_row([id.0], |r| {
        Ok(MailboxStatus {
            messages: r.get::<_, i64>(0)? as u32,
            unseen: r.get::<_, i64>(1)? as u32,
            recent: 0,
            uid_next: mailbox.uid_next,
            uid_validity: mailbox.uid_validity,
            highest_modseq: mailbox.highest_modseq,
            size: r.get::<_, i64>(2)? as u64,
            threads: r.get::<_, i64>(3)? as u32,
            unseen_threads: r.get::<_, i64>(4)? as u32,
        })
    })
    .map_err(db_err)
}
