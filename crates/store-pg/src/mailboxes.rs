//! Mailboxes: create, rename, delete, attributes, status.

use crate::pool::{Tx, get, get_modseq, get_u32, sql_modseq};
use bulwark_store::domain::mailboxes as domain;
use bulwark_store::{
    AccountId, EmailId, Mailbox, MailboxId, MailboxStatus, ModSeq, Result, Role, StoreError, Uid,
    now_unix,
};
use tokio_postgres::Row;

/// Largest UIDVALIDITY (a 32-bit unsigned number, RFC 9051 §2.3.1.1).
const MAX_UID_VALIDITY: i64 = u32::MAX as i64;

fn role_to_text(role: Option<Role>) -> Option<&'static str> {
    role.map(Role::as_jmap)
}

fn mailbox_from_row(r: &Row) -> Result<Mailbox> {
    let role: Option<String> = get(r, 3)?;
    Ok(Mailbox {
        id: MailboxId(get(r, 0)?),
        account: AccountId(get(r, 1)?),
        name: get(r, 2)?,
        role: role.as_deref().and_then(Role::from_jmap),
        uid_validity: get_u32(r, 4)?,
        uid_next: Uid(get_u32(r, 5)?),
        subscribed: get(r, 6)?,
        highest_modseq: get_modseq(r, 7)?,
        sort_order: get::<Option<i64>>(r, 8)?.and_then(|v| u32::try_from(v).ok()),
    })
}

/// Takes the next UIDVALIDITY: a database-wide counter seeded from the clock, so no two
/// mailboxes ever share one, even across delete and recreate (RFC 9051 §2.3.1.1). The
/// upsert locks the counter row, so concurrent nodes never hand out the same value.
pub(crate) async fn next_uid_validity(tx: &mut Tx<'_>) -> Result<u32> {
    let clock = now_unix().clamp(1, MAX_UID_VALIDITY);
    // The row stores the *next* value; after four billion mailboxes it wraps to 1 (never 0).
    let row = tx
        .one(
            "INSERT INTO meta (key, value) VALUES ('uid_validity_next', $1::bigint + 1)
             ON CONFLICT (key) DO UPDATE SET value =
                 CASE WHEN meta.value > $2 OR meta.value < 1 THEN 2 ELSE meta.value + 1 END
             RETURNING value - 1",
            &[&clock, &MAX_UID_VALIDITY],
        )
        .await?;
    get_u32(&row, 0)
}

/// Inserts a mailbox (used by `mailbox_create` and account creation): the shared rule.
pub(crate) async fn insert_mailbox(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    role: Option<Role>,
    subscribed: bool,
) -> Result<Mailbox> {
    domain::insert_mailbox(tx, account, name, role, subscribed).await
}

pub(crate) async fn role_taken(tx: &mut Tx<'_>, account: AccountId, role: Role) -> Result<bool> {
    Ok(tx
        .opt(
            "SELECT 1 FROM mailboxes WHERE account = $1 AND role = $2",
            &[&account.0, &role.as_jmap()],
        )
        .await?
        .is_some())
}

/// A new mailbox row.
pub(crate) async fn insert_mailbox_row(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    role: Option<Role>,
    uid_validity: u32,
    subscribed: bool,
    modseq: ModSeq,
) -> Result<MailboxId> {
    let row = tx
        .one(
            "INSERT INTO mailboxes (account, name, role, uid_validity, uid_next, subscribed, highest_modseq)
             VALUES ($1, $2, $3, $4, 1, $5, $6) RETURNING id",
            &[
                &account.0,
                &name,
                &role_to_text(role),
                &i64::from(uid_validity),
                &subscribed,
                &sql_modseq(modseq),
            ],
        )
        .await?;
    Ok(MailboxId(get(&row, 0)?))
}

pub(crate) async fn mailbox_id_by_name(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
) -> Result<Option<MailboxId>> {
    let row = tx
        .opt(
            "SELECT id FROM mailboxes WHERE account = $1 AND name = $2",
            &[&account.0, &name],
        )
        .await?;
    row.map(|r| get(&r, 0).map(MailboxId)).transpose()
}

/// Loads a mailbox of the account or fails with `NotFound`.
pub(crate) async fn require_mailbox(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
) -> Result<Mailbox> {
    mailbox_get(tx, account, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {id}")))
}

pub(crate) async fn mailbox_create(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    role: Option<Role>,
) -> Result<Mailbox> {
    domain::mailbox_create(tx, account, name, role).await
}

pub(crate) async fn mailbox_list(tx: &mut Tx<'_>, account: AccountId) -> Result<Vec<Mailbox>> {
    let rows = tx
        .query(
            "SELECT id, account, name, role, uid_validity, uid_next, subscribed, highest_modseq,
                    sort_order
             FROM mailboxes WHERE account = $1 ORDER BY name",
            &[&account.0],
        )
        .await?;
    rows.iter().map(mailbox_from_row).collect()
}

pub(crate) async fn mailbox_get(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
) -> Result<Option<Mailbox>> {
    let row = tx
        .opt(
            "SELECT id, account, name, role, uid_validity, uid_next, subscribed, highest_modseq,
                    sort_order
             FROM mailboxes WHERE id = $1 AND account = $2",
            &[&id.0, &account.0],
        )
        .await?;
    row.as_ref().map(mailbox_from_row).transpose()
}

pub(crate) async fn mailbox_rename(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    new_name: &str,
) -> Result<()> {
    domain::mailbox_rename(tx, account, id, new_name).await
}

pub(crate) async fn mailbox_delete(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
) -> Result<()> {
    domain::mailbox_delete(tx, account, id).await
}

pub(crate) async fn mailbox_set_subscribed(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    subscribed: bool,
) -> Result<()> {
    domain::mailbox_set_subscribed(tx, account, id, subscribed).await
}

pub(crate) async fn mailbox_set_role(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    role: Option<Role>,
) -> Result<()> {
    domain::mailbox_set_role(tx, account, id, role).await
}

/// The mailbox and those whose name starts with `prefix`.
pub(crate) async fn mailbox_and_children(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    prefix: &str,
) -> Result<Vec<(MailboxId, String)>> {
    let rows = tx
        .query(
            "SELECT id, name FROM mailboxes WHERE account = $1
             AND (id = $2 OR starts_with(name, $3))",
            &[&account.0, &id.0, &prefix],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((MailboxId(get(row, 0)?), get::<String>(row, 1)?)))
        .collect()
}

pub(crate) async fn set_mailbox_name(tx: &mut Tx<'_>, id: MailboxId, name: &str) -> Result<()> {
    tx.exec(
        "UPDATE mailboxes SET name = $2 WHERE id = $1",
        &[&id.0, &name],
    )
    .await?;
    Ok(())
}

pub(crate) async fn set_mailbox_subscribed(
    tx: &mut Tx<'_>,
    id: MailboxId,
    subscribed: bool,
) -> Result<()> {
    tx.exec(
        "UPDATE mailboxes SET subscribed = $2 WHERE id = $1",
        &[&id.0, &subscribed],
    )
    .await?;
    Ok(())
}

pub(crate) async fn set_mailbox_sort_order(
    tx: &mut Tx<'_>,
    id: MailboxId,
    sort_order: Option<u32>,
) -> Result<()> {
    tx.exec(
        "UPDATE mailboxes SET sort_order = $2 WHERE id = $1",
        &[&id.0, &sort_order.map(i64::from)],
    )
    .await?;
    Ok(())
}

pub(crate) async fn mailbox_set_sort_order(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
    sort_order: Option<u32>,
) -> Result<()> {
    domain::mailbox_set_sort_order(tx, account, id, sort_order).await
}

pub(crate) async fn set_mailbox_role(
    tx: &mut Tx<'_>,
    id: MailboxId,
    role: Option<Role>,
) -> Result<()> {
    tx.exec(
        "UPDATE mailboxes SET role = $2 WHERE id = $1",
        &[&id.0, &role_to_text(role)],
    )
    .await?;
    Ok(())
}

pub(crate) async fn mailbox_members(tx: &mut Tx<'_>, id: MailboxId) -> Result<Vec<(Uid, EmailId)>> {
    let rows = tx
        .query(
            "SELECT uid, email FROM memberships WHERE mailbox = $1 ORDER BY uid",
            &[&id.0],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((Uid(get_u32(row, 0)?), EmailId(get(row, 1)?))))
        .collect()
}

pub(crate) async fn delete_mailbox_row(tx: &mut Tx<'_>, id: MailboxId) -> Result<()> {
    tx.exec("DELETE FROM expunged WHERE mailbox = $1", &[&id.0])
        .await?;
    tx.exec("DELETE FROM mailboxes WHERE id = $1", &[&id.0])
        .await?;
    Ok(())
}

/// Counts in one indexed query; never reads blobs.
pub(crate) async fn mailbox_status(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: MailboxId,
) -> Result<MailboxStatus> {
    let mailbox = require_mailbox(tx, account, id).await?;
    let row = tx
        .one(
            "SELECT count(*),
                    count(*) FILTER (WHERE NOT e.seen),
                    coalesce(sum(e.size), 0)::bigint,
                    count(DISTINCT e.thread),
                    count(DISTINCT e.thread) FILTER (WHERE NOT e.seen)
             FROM memberships m JOIN emails e ON e.id = m.email WHERE m.mailbox = $1",
            &[&id.0],
        )
        .await?;
    let count = |idx: usize| -> Result<u32> {
        Ok(u32::try_from(get::<i64>(&row, idx)?).unwrap_or(u32::MAX))
    };
    Ok(MailboxStatus {
        messages: count(0)?,
        unseen: count(1)?,
        recent: 0,
        uid_next: mailbox.uid_next,
        uid_validity: mailbox.uid_validity,
        highest_modseq: mailbox.highest_modseq,
        size: u64::try_from(get::<i64>(&row, 2)?).unwrap_or(0),
        threads: count(3)?,
        unseen_threads: count(4)?,
    })
}
