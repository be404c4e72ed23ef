//! Domains, accounts, aliases and app passwords (same rules as the embedded backend).

use crate::mailboxes::insert_mailbox;
use crate::pool::{Tx, get};
use bulwark_store::rules::{self, normalize_address, normalize_domain};
use bulwark_store::{
    Account, AccountId, AppPassword, NewAccount, Result, Role, StoreError, now_unix,
};
use tokio_postgres::Row;

async fn require_domain(tx: &mut Tx<'_>, domain: &str) -> Result<()> {
    if domain_exists(tx, domain).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("domain {domain}")))
    }
}

// ---- domains -------------------------------------------------------------------------

pub(crate) async fn domain_add(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let name = normalize_domain(name)?;
    tx.lock_directory().await?;
    if domain_exists(tx, &name).await? {
        return Err(StoreError::AlreadyExists(format!("domain {name}")));
    }
    tx.exec("INSERT INTO domains (name) VALUES ($1)", &[&name])
        .await?;
    Ok(())
}

/// Deletes a domain; refused while accounts or aliases still use it.
pub(crate) async fn domain_delete(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let name = normalize_domain(name)?;
    tx.lock_directory().await?;
    let suffix = rules::domain_suffix(&name);
    let row = tx
        .one(
            "SELECT (SELECT count(*) FROM accounts WHERE right(address, length($1)) = $1)
                  + (SELECT count(*) FROM aliases WHERE right(alias, length($1)) = $1)",
            &[&suffix],
        )
        .await?;
    let users: i64 = get(&row, 0)?;
    if users > 0 {
        return Err(StoreError::Invalid(format!(
            "domain {name} still has {users} accounts or aliases; delete them first"
        )));
    }
    let n = tx
        .exec("DELETE FROM domains WHERE name = $1", &[&name])
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("domain {name}")));
    }
    Ok(())
}

pub(crate) async fn domain_list(tx: &mut Tx<'_>) -> Result<Vec<String>> {
    let rows = tx
        .query("SELECT name FROM domains ORDER BY name", &[])
        .await?;
    rows.iter().map(|r| get(r, 0)).collect()
}

pub(crate) async fn domain_exists(tx: &mut Tx<'_>, name: &str) -> Result<bool> {
    let Ok(name) = normalize_domain(name) else {
        return Ok(false);
    };
    Ok(tx
        .opt("SELECT 1 FROM domains WHERE name = $1", &[&name])
        .await?
        .is_some())
}

// ---- accounts ------------------------------------------------------------------------

fn account_from_row(r: &Row) -> Result<Account> {
    Ok(Account {
        id: AccountId(get(r, 0)?),
        address: get(r, 1)?,
        display_name: get(r, 2)?,
        password_hash: get(r, 3)?,
        created_at: get(r, 4)?,
        used_bytes: u64::try_from(get::<i64>(r, 5)?).unwrap_or(0),
    })
}

/// Creates the account and its six special-use mailboxes (all subscribed).
pub(crate) async fn account_create(tx: &mut Tx<'_>, new: &NewAccount) -> Result<Account> {
    let (address, domain) = normalize_address(&new.address)?;
    tx.lock_directory().await?;
    require_domain(tx, &domain).await?;
    if resolve_address(tx, &address).await?.is_some() {
        return Err(StoreError::AlreadyExists(format!("address {address}")));
    }
    let created_at = now_unix();
    let row = tx
        .one(
            "INSERT INTO accounts (address, display_name, password_hash, created_at)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[&address, &new.display_name, &new.password_hash, &created_at],
        )
        .await?;
    let id = AccountId(get(&row, 0)?);
    for role in Role::ALL {
        insert_mailbox(tx, id, role.default_name(), Some(role), true).await?;
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

pub(crate) async fn account_get(tx: &mut Tx<'_>, id: AccountId) -> Result<Option<Account>> {
    let row = tx
        .opt(
            "SELECT id, address, display_name, password_hash, created_at, bytes FROM accounts WHERE id = $1",
            &[&id.0],
        )
        .await?;
    row.as_ref().map(account_from_row).transpose()
}

pub(crate) async fn account_by_address(tx: &mut Tx<'_>, address: &str) -> Result<Option<Account>> {
    let Some(address) = rules::lookup_address(address) else {
        return Ok(None);
    };
    let row = tx
        .opt(
            "SELECT id, address, display_name, password_hash, created_at, bytes FROM accounts
             WHERE address = $1",
            &[&address],
        )
        .await?;
    row.as_ref().map(account_from_row).transpose()
}

pub(crate) async fn account_list(tx: &mut Tx<'_>) -> Result<Vec<Account>> {
    let rows = tx
        .query(
            "SELECT id, address, display_name, password_hash, created_at, bytes FROM accounts
             ORDER BY address",
            &[],
        )
        .await?;
    rows.iter().map(account_from_row).collect()
}

/// Checks that the account exists.
pub(crate) async fn require_account(tx: &mut Tx<'_>, id: AccountId) -> Result<()> {
    if tx
        .opt("SELECT 1 FROM accounts WHERE id = $1", &[&id.0])
        .await?
        .is_some()
    {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!("account {id}")))
    }
}

/// Account columns that can be set directly.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AccountColumn {
    PasswordHash,
    DisplayName,
}

pub(crate) async fn account_set_column(
    tx: &mut Tx<'_>,
    id: AccountId,
    column: AccountColumn,
    value: &str,
) -> Result<()> {
    let sql = match column {
        AccountColumn::PasswordHash => "UPDATE accounts SET password_hash = $2 WHERE id = $1",
        AccountColumn::DisplayName => "UPDATE accounts SET display_name = $2 WHERE id = $1",
    };
    let n = tx.exec(sql, &[&id.0, &value]).await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("account {id}")));
    }
    Ok(())
}

/// Deletes the account and everything it owns.
pub(crate) async fn account_delete(tx: &mut Tx<'_>, id: AccountId) -> Result<()> {
    tx.lock_directory().await?;
    tx.lock_account(id).await?;
    require_account(tx, id).await?;
    let blobs = crate::items::account_blobs_mark(tx, id).await?;
    const STEPS: [&str; 12] = [
        "DELETE FROM memberships WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = $1)",
        "DELETE FROM expunged WHERE mailbox IN (SELECT id FROM mailboxes WHERE account = $1)",
        "DELETE FROM mailboxes WHERE account = $1",
        "DELETE FROM envelopes WHERE email IN (SELECT id FROM emails WHERE account = $1)",
        "DELETE FROM emails WHERE account = $1",
        "DELETE FROM threads WHERE account = $1",
        "DELETE FROM thread_refs WHERE account = $1",
        "DELETE FROM changes WHERE account = $1",
        "DELETE FROM aliases WHERE account = $1",
        "DELETE FROM app_passwords WHERE account = $1",
        "DELETE FROM account_settings WHERE account = $1",
        "DELETE FROM accounts WHERE id = $1",
    ];
    for step in STEPS {
        tx.exec(step, &[&id.0]).await?;
    }
    crate::items::account_blobs_sweep(tx, &blobs).await
}

// ---- aliases -------------------------------------------------------------------------

pub(crate) async fn alias_add(tx: &mut Tx<'_>, alias: &str, account: AccountId) -> Result<()> {
    let (alias, domain) = normalize_address(alias)?;
    tx.lock_directory().await?;
    require_domain(tx, &domain).await?;
    require_account(tx, account).await?;
    if resolve_address(tx, &alias).await?.is_some() {
        return Err(StoreError::AlreadyExists(format!("address {alias}")));
    }
    tx.exec(
        "INSERT INTO aliases (alias, account) VALUES ($1, $2)",
        &[&alias, &account.0],
    )
    .await?;
    Ok(())
}

pub(crate) async fn alias_delete(tx: &mut Tx<'_>, alias: &str) -> Result<()> {
    let Some(alias) = rules::lookup_address(alias) else {
        return Err(StoreError::NotFound(format!("alias {}", alias.trim())));
    };
    tx.lock_directory().await?;
    let n = tx
        .exec("DELETE FROM aliases WHERE alias = $1", &[&alias])
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("alias {alias}")));
    }
    Ok(())
}

pub(crate) async fn alias_list(tx: &mut Tx<'_>) -> Result<Vec<(String, AccountId)>> {
    let rows = tx
        .query("SELECT alias, account FROM aliases ORDER BY alias", &[])
        .await?;
    rows.iter()
        .map(|r| Ok((get(r, 0)?, AccountId(get(r, 1)?))))
        .collect()
}

pub(crate) async fn resolve_address(tx: &mut Tx<'_>, address: &str) -> Result<Option<AccountId>> {
    let Some(address) = rules::lookup_address(address) else {
        return Ok(None);
    };
    let row = tx
        .opt(
            "SELECT id FROM accounts WHERE address = $1
             UNION ALL SELECT account FROM aliases WHERE alias = $1 LIMIT 1",
            &[&address],
        )
        .await?;
    row.map(|r| get(&r, 0).map(AccountId)).transpose()
}

pub(crate) async fn account_addresses(tx: &mut Tx<'_>, id: AccountId) -> Result<Vec<String>> {
    let Some(account) = account_get(tx, id).await? else {
        return Err(StoreError::NotFound(format!("account {id}")));
    };
    let rows = tx
        .query(
            "SELECT alias FROM aliases WHERE account = $1 ORDER BY alias",
            &[&id.0],
        )
        .await?;
    let mut out = vec![account.address];
    for row in &rows {
        out.push(get(row, 0)?);
    }
    Ok(out)
}

// ---- app passwords -------------------------------------------------------------------

pub(crate) async fn app_password_add(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    hash: &str,
) -> Result<AppPassword> {
    tx.lock_account(account).await?;
    require_account(tx, account).await?;
    let created_at = now_unix();
    let row = tx
        .one(
            "INSERT INTO app_passwords (account, name, hash, created_at) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[&account.0, &name, &hash, &created_at],
        )
        .await?;
    Ok(AppPassword {
        id: get(&row, 0)?,
        account,
        name: name.to_string(),
        hash: hash.to_string(),
        created_at,
    })
}

pub(crate) async fn app_password_list(
    tx: &mut Tx<'_>,
    account: AccountId,
) -> Result<Vec<AppPassword>> {
    let rows = tx
        .query(
            "SELECT id, name, hash, created_at FROM app_passwords WHERE account = $1 ORDER BY id",
            &[&account.0],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AppPassword {
                id: get(r, 0)?,
                account,
                name: get(r, 1)?,
                hash: get(r, 2)?,
                created_at: get(r, 3)?,
            })
        })
        .collect()
}

pub(crate) async fn app_password_delete(
    tx: &mut Tx<'_>,
    account: AccountId,
    id: i64,
) -> Result<()> {
    let n = tx
        .exec(
            "DELETE FROM app_passwords WHERE id = $1 AND account = $2",
            &[&id, &account.0],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("app password {id}")));
    }
    Ok(())
}

// ---- settings --------------------------------------------------------------------------

pub(crate) async fn setting_get(
    tx: &mut Tx<'_>,
    account: AccountId,
    key: &str,
) -> Result<Option<String>> {
    let row = tx
        .opt(
            "SELECT value FROM account_settings WHERE account = $1 AND key = $2",
            &[&account.0, &key],
        )
        .await?;
    row.map(|r| get(&r, 0)).transpose()
}

/// Sets (`Some`) or deletes (`None`) one setting of an existing account.
pub(crate) async fn setting_set(
    tx: &mut Tx<'_>,
    account: AccountId,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    tx.lock_account(account).await?;
    require_account(tx, account).await?;
    match value {
        Some(value) => {
            tx.exec(
                "INSERT INTO account_settings (account, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
                &[&account.0, &key, &value],
            )
            .await?
        }
        None => {
            tx.exec(
                "DELETE FROM account_settings WHERE account = $1 AND key = $2",
                &[&account.0, &key],
            )
            .await?
        }
    };
    Ok(())
}

// ---- global settings (shared by every node) ------------------------------------------

pub(crate) async fn global_setting_get(tx: &mut Tx<'_>, key: &str) -> Result<Option<String>> {
    let row = tx
        .opt("SELECT value FROM global_settings WHERE key = $1", &[&key])
        .await?;
    row.map(|r| get(&r, 0)).transpose()
}

pub(crate) async fn global_setting_set(
    tx: &mut Tx<'_>,
    key: &str,
    value: Option<&str>,
) -> Result<()> {
    match value {
        Some(value) => {
            tx.exec(
                "INSERT INTO global_settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await?
        }
        None => {
            tx.exec("DELETE FROM global_settings WHERE key = $1", &[&key])
                .await?
        }
    };
    Ok(())
}

/// Compare-and-set; `expected == None` inserts only if the key is absent. Atomic between
/// nodes: the INSERT conflicts on the primary key, the UPDATE re-checks the row it locks.
pub(crate) async fn global_setting_replace(
    tx: &mut Tx<'_>,
    key: &str,
    expected: Option<&str>,
    value: &str,
) -> Result<bool> {
    let changed = match expected {
        None => {
            tx.exec(
                "INSERT INTO global_settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )
            .await?
        }
        Some(old) => {
            tx.exec(
                "UPDATE global_settings SET value = $2 WHERE key = $1 AND value = $3",
                &[&key, &value, &old],
            )
            .await?
        }
    };
    Ok(changed == 1)
}
