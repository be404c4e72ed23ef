//! Schema creation and migration for the embedded backend.

use super::db_err;
use crate::Result;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this code writes. Bump it and add a step to [`MIGRATIONS`] to change it.
pub(crate) const SCHEMA_VERSION: i64 = 5;

/// Version 1: the initial schema.
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS domains (
    name TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    address       TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    -- the account's change counter (IMAP MODSEQ / JMAP state)
    modseq        INTEGER NOT NULL DEFAULT 0,
    -- changes at or below this modseq were trimmed from `changes`
    changes_floor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS aliases (
    alias   TEXT PRIMARY KEY,
    account INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS aliases_account ON aliases(account);
CREATE TABLE IF NOT EXISTS app_passwords (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS app_passwords_account ON app_passwords(account);
CREATE TABLE IF NOT EXISTS mailboxes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account        INTEGER NOT NULL,
    name           TEXT NOT NULL,
    role           TEXT,
    uid_validity   INTEGER NOT NULL,
    uid_next       INTEGER NOT NULL,
    subscribed     INTEGER NOT NULL,
    highest_modseq INTEGER NOT NULL,
    UNIQUE (account, name)
);
CREATE TABLE IF NOT EXISTS threads (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    account INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS emails (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account     INTEGER NOT NULL,
    thread      INTEGER NOT NULL,
    blob        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    -- lowercase keywords, sorted, separated by one space
    keywords    TEXT NOT NULL,
    seen        INTEGER NOT NULL,
    -- last change of any kind / last keyword change (or creation)
    modseq      INTEGER NOT NULL,
    kw_modseq   INTEGER NOT NULL,
    message_id  TEXT,
    summary     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS emails_account_received ON emails(account, received_at);
CREATE INDEX IF NOT EXISTS emails_message_id ON emails(account, message_id);
CREATE INDEX IF NOT EXISTS emails_thread ON emails(thread);
CREATE TABLE IF NOT EXISTS memberships (
    mailbox INTEGER NOT NULL,
    uid     INTEGER NOT NULL,
    email   INTEGER NOT NULL,
    -- when the email entered this mailbox
    modseq  INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_email ON memberships(email);
CREATE TABLE IF NOT EXISTS expunged (
    mailbox INTEGER NOT NULL,
    uid     INTEGER NOT NULL,
    modseq  INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox, modseq);
CREATE TABLE IF NOT EXISTS changes (
    account INTEGER NOT NULL,
    modseq  INTEGER NOT NULL,
    kind    INTEGER NOT NULL,
    object  INTEGER NOT NULL,
    op      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_account_modseq ON changes(account, modseq);
CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,
    blob         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    dsn_sent     INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_due ON queue(next_attempt);
"#;

/// Version 2: per-account settings (TOTP secrets, vacation response, identities, …).
const V2: &str = r#"
CREATE TABLE IF NOT EXISTS account_settings (
    account INTEGER NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (account, key)
);
"#;

/// Version 3: settings shared by every node (the token signing key set, …).
const V3: &str = r#"
CREATE TABLE IF NOT EXISTS global_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

/// Version 4: indexes that let a mailbox resync read only what changed (new memberships,
/// keyword changes) instead of scanning the whole mailbox.
const V4: &str = r#"
CREATE INDEX IF NOT EXISTS memberships_mailbox_modseq ON memberships(mailbox, modseq);
CREATE INDEX IF NOT EXISTS emails_account_kw_modseq ON emails(account, kw_modseq);
"#;

/// Version 5: the IMAP ENVELOPE rendered at delivery (NULL for emails stored before; FETCH
/// then renders it from the content).
const V5: &str = r#"
ALTER TABLE emails ADD COLUMN imap_envelope BLOB;
"#;

/// Migration steps; entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// Creates or upgrades the schema. Idempotent; runs in one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db_err)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")
        .map_err(db_err)?;
    let current: Option<i64> = tx
        .query_row("SELECT version FROM schema_version LIMIT 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err)?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(crate::StoreError::Invalid(format!(
            "database schema version {current} is newer than this program's ({SCHEMA_VERSION})"
        )));
    }
    for step in MIGRATIONS.iter().skip(current as usize) {
        tx.execute_batch(step).map_err(db_err)?;
    }
    tx.execute("DELETE FROM schema_version", [])
        .map_err(db_err)?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [SCHEMA_VERSION],
    )
    .map_err(db_err)?;
    tx.commit().map_err(db_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_4_database_gains_an_empty_envelope_column_and_keeps_its_emails() {
        let mut conn = Connection::open_in_memory().expect("open");
        for step in &MIGRATIONS[..4] {
            conn.execute_batch(step).expect("old schema");
        }
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (4);
             INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq,
                                 kw_modseq, message_id, summary)
             VALUES (1, 1, 'hash', 1, 0, '', 0, 1, 1, NULL, '{}');",
        )
        .expect("version 4 data");
        migrate(&mut conn).expect("migrate");
        migrate(&mut conn).expect("migrating again is a no-op");
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let (blob, envelope): (String, Option<Vec<u8>>) = conn
            .query_row("SELECT blob, imap_envelope FROM emails", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("old email");
        assert_eq!((blob.as_str(), envelope), ("hash", None));
    }
}
