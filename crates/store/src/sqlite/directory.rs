//! Domains, accounts, aliases and app passwords.

use super::db_err;
use super::mailboxes::insert_mailbox;
use super::writer::Tx;
use crate::rules::{self, normalize_address, normalize_domain};
use crate::{Account, AccountId, AppPassword, NewAccount, Result, Role, StoreError, now_unix};
use rusqlite::{Connection, OptionalExtension, Row, params};

fn require_domain(conn: &Connection, domain: &str) -> Result<()> {
    if domain_exists(conn, domain)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("domain {domain}")))
    }
}

// ---- domains -------------------------------------------------------------------------

pub(crate) fn domain_add(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let name = normalize_domain(name)?;
    if domain_exists(tx.conn, &name)? {
        return Err(StoreError::AlreadyExists(format!("domain {name}")));
    }
    tx.conn
        .execute("INSERT INTO domains (name) VALUES (?1)", [&name])
        .map_err(db_err)?;
    Ok(())
}

/// Deletes a domain; refused while accounts or aliases still use it.
pub(crate) fn domain_delete(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let name = normalize_domain(name)?;
    let suffix = rules::domain_suffix(&name);
    let users: i64 = tx
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM accounts WHERE substr(address, -length(?1)) = ?1)
                  + (SELECT count(*) FROM aliases WHERE substr(alias, -length(?1)) = ?1)",
            [&suffix],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if users > 0 {
        return Err(StoreError::Invalid(format!(
            "domain {name} still has {users} accounts or aliases; delete them first"
        )));
    }
    let n = tx
        .conn
        .execute("DELETE FROM domains WHERE name = ?1", [&name])
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("domain {name}")));
    }
    Ok(())
}

pub(crate) fn domain_list(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT name FROM domains ORDER BY name")
        .map_err(db_err)?;
    let rows = stmt.query_map([], |r| r.get(0)).map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

pub(crate) fn domain_exists(conn: &Connection, name: &str) -> Result<bool> {
    let Ok(name) = normalize_domain(name) else {
        return Ok(false);
    };
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM domains WHERE name = ?1")
        .map_err(db_err)?;
    stmt.exists([name]).map_err(db_err)
}

// ---- accounts ------------------------------------------------------------------------

const ACCOUNT_COLUMNS: &str = "id, address, display_name, password_hash, created_at, bytes";

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: AccountId(r.get(0)?),
        address: r.get(1)?,
        display_name: r.get(2)?,
        password_hash: r.get(3)?,
        created_at: r.get(4)?,
        used_bytes: r.get::<_, i64>(5)?.max(0) as u64,
    })
}

/// Creates the account and its six special-use mailboxes (all subscribed).
pub(crate) fn account_create(tx: &mut Tx<'_>, new: &NewAccount) -> Result<Account> {
    let (address, domain) = normalize_address(&new.address)?;
    require_domain(tx.conn, &domain)?;
    if resolve_address(tx.conn, &address)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("address {address}")));
    }
    let created_at = now_unix();
    tx.conn
        .execute(
            "INSERT INTO accounts (address, display_name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![address, new.display_name, new.password_hash, created_at],
        )
        .map_err(db_err)?;
    let id = AccountId(tx.conn.last_insert_rowid());
    for role in Role::ALL {
        insert_mailbox(tx, id, role.default_name(), Some(role), true)?;
    }
    Ok(Account {
        id,
        address,
        display_name: new.display_name.clone(),
        password_hash: new.password_hash.clone(),
        created_at,
        used_bytes: 0,
    })
}

pub(crate) fn account_get(conn: &Connection, id: AccountId) -> Result<Option<Account>> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    stmt.query_row([id.0], account_from_row)
        .optional()
        .map_err(db_err)
}

pub(crate) fn account_by_address(conn: &Connection, address: &str) -> Result<Option<Account>> {
    let Some(address) = rules::lookup_address(address) else {
        return Ok(None);
    };
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE address = ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    stmt.query_row([address], account_from_row)
        .optional()
        .map_err(db_err)
}

pub(crate) fn account_list(conn: &Connection) -> Result<Vec<Account>> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY address");
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt.query_map([], account_from_row).map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

/// Checks that the account exists.
pub(crate) fn require_account(conn: &Connection, id: AccountId) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM accounts WHERE id = ?1")
        .map_err(db_err)?;
    if stmt.exists([id.0]).map_err(db_err)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("account {id}")))
    }
}

pub(crate) fn account_set_column(
    tx: &mut Tx<'_>,
    id: AccountId,
    column: AccountColumn,
    value: &str,
) -> Result<()> {
    let sql = match column {
        AccountColumn::PasswordHash => "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
        AccountColumn::DisplayName => "UPDATE accounts SET display_name = ?2 WHERE id = ?1",
    };
    let n = tx.conn.execute(sql, params![id.0, value]).map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("account {id}")));
    }
    Ok(())
}

/// Account columns that can be set directly.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AccountColumn {
    PasswordHash,
    DisplayName,
}

/// Deletes the account and everything it owns.
pub(crate) fn account_delete(tx: &mut Tx<'_>, id: AccountId) -> Result<()> {
    require_account(tx.conn, id)?;
    super::items::account_blobs_mark(tx.conn, id)?;
    tx.conn
        .execute_batch(&format!(
            "DELETE FROM memberships WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = {a});
             DELETE FROM expunged WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = {a});
             DELETE FROM mailboxes WHERE account = {a};
             DELETE FROM envelopes WHERE email IN (SELECT id FROM emails WHERE account = {a});
             DELETE FROM search_headers WHERE email IN (SELECT id FROM emails WHERE account = {a});
             DELETE FROM emails WHERE account = {a};
             DELETE FROM threads WHERE account = {a};
             DELETE FROM thread_refs WHERE account = {a};
             DELETE FROM changes WHERE account = {a};
             DELETE FROM aliases WHERE account = {a};
             DELETE FROM app_passwords WHERE account = {a};
             DELETE FROM account_settings WHERE account = {a};
             DELETE FROM accounts WHERE id = {a};",
            a = id.0
        ))
        .map_err(db_err)?;
    super::items::account_blobs_sweep(tx.conn)
}

// ---- aliases -------------------------------------------------------------------------

pub(crate) fn alias_add(tx: &mut Tx<'_>, alias: &str, account: AccountId) -> Result<()> {
    let (alias, domain) = normalize_address(alias)?;
    require_domain(tx.conn, &domain)?;
    require_account(tx.conn, account)?;
    if resolve_address(tx.conn, &alias)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("address {alias}")));
    }
    tx.conn
        .execute(
            "INSERT INTO aliases (alias, account) VALUES (?1, ?2)",
            params![alias, account.0],
        )
        .map_err(db_err)?;
    Ok(())
}

pub(crate) fn alias_delete(tx: &mut Tx<'_>, alias: &str) -> Result<()> {
    let Some(alias) = rules::lookup_address(alias) else {
        return Err(StoreError::NotFound(format!("alias {}", alias.trim())));
    };
    let n = tx
        .conn
        .execute("DELETE FROM aliases WHERE alias = ?1", [&alias])
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("alias {alias}")));
    }
    Ok(())
}

pub(crate) fn alias_list(conn: &Connection) -> Result<Vec<(String, AccountId)>> {
    let mut stmt = conn
        .prepare_cached("SELECT alias, account FROM aliases ORDER BY alias")
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, AccountId(r.get(1)?))))
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

pub(crate) fn resolve_address(conn: &Connection, address: &str) -> Result<Option<AccountId>> {
    let Some(address) = rules::lookup_address(address) else {
        return Ok(None);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT id FROM accounts WHERE address = ?1
             UNION ALL SELECT account FROM aliases WHERE alias = ?1 LIMIT 1",
        )
        .map_err(db_err)?;
    stmt.query_row([address], |r| r.get(0))
        .optional()
        .map(|id| id.map(AccountId))
        .map_err(db_err)
}

pub(crate) fn account_addresses(conn: &Connection, id: AccountId) -> Result<Vec<String>> {
    let Some(account) = account_get(conn, id)? else {
        return Err(StoreError::NotFound(format!("account {id}")));
    };
    let mut stmt = conn
        .prepare_cached("SELECT alias FROM aliases WHERE account = ?1 ORDER BY alias")
        .map_err(db_err)?;
    let aliases = stmt
        .query_map([id.0], |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    let mut out = vec![account.address];
    for alias in aliases {
        out.push(alias.map_err(db_err)?);
    }
    Ok(out)
}

// ---- app passwords -------------------------------------------------------------------

pub(crate) fn app_password_add(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    hash: &str,
) -> Result<AppPassword> {
    require_account(tx.conn, account)?;
    let created_at = now_unix();
    tx.conn
        .execute(
            "INSERT INTO app_passwords (account, name, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![account.0, name, hash, created_at],
        )
        .map_err(db_err)?;
    Ok(AppPassword {
        id: tx.conn.last_insert_rowid(),
        account,
        name: name.to_string(),
        hash: hash.to_string(),
        created_at,
    })
}

pub(crate) fn app_password_list(conn: &Connection, account: AccountId) -> Result<Vec<AppPassword>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, name, hash, created_at FROM app_passwords WHERE account = ?1 ORDER BY id",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([account.0], |r| {
            Ok(AppPassword {
                id: r.get(0)?,
                account,
                name: r.get(1)?,
                hash: r.get(2)?,
                created_at: r.get(3)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(db_err)
}

pub(crate) fn app_password_delete(tx: &mut Tx<'_>, account: AccountId, id: i64) -> Result<()> {
    let n = tx
        .conn
        .execute(
            "DELETE FROM app_passwords WHERE id = ?1 AND account = ?2",
            params![id, account.0],
        )
        .map_err(db_err)?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("app password {id}")));
    }
    Ok(())
}

pub(crate) fn setting_get(c: &Connection, account: AccountId, key: &str) -> Result<Option<String>> {
    c.query_row(
        "SELECT value FROM account_settings WHERE account = ?1 AND key = ?2",
        params![account.0, key],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)
}

pub(crate) fn setting_set(
    tx: &mut Tx<'_>,
    account: AccountId,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    require_account(tx.conn, account)?;
    match value {
        Some(v) => tx.conn.execute(
            "INSERT INTO account_settings (account, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
            params![account.0, key, v],
        ),
        None => tx.conn.execute(
            "DELETE FROM account_settings WHERE account = ?1 AND key = ?2",
            params![account.0, key],
        ),
    }
    .map(|_| ())
    .map_err(db_err)
}

// ---- global settings (shared by every node) ------------------------------------------

pub(crate) fn global_setting_get(c: &Connection, key: &str) -> Result<Option<String>> {
    c.query_row(
        "SELECT value FROM global_settings WHERE key = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)
}

pub(crate) fn global_setting_set(tx: &mut Tx<'_>, key: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) => tx.conn.execute(
            "INSERT INTO global_settings (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, v],
        ),
        None => tx
            .conn
            .execute("DELETE FROM global_settings WHERE key = ?1", params![key]),
    }
    .map(|_| ())
    .map_err(db_err)
}

/// Compare-and-set; `expected == None` inserts only if the key is absent.
pub(crate) fn global_setting_replace(
    tx: &mut Tx<'_>,
    key: &str,
    expected: Option<&str>,
    value: &str,
) -> Result<bool> {
    let changed = match expected {
        None => tx.conn.execute(
            "INSERT INTO global_settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            params![key, value],
        ),
        Some(old) => tx.conn.execute(
            "UPDATE global_settings SET value = ?2 WHERE key = ?1 AND value = ?3",
            params![key, value, old],
        ),
    }
    .map_err(db_err)?;
    Ok(changed == 1)
}
