//! Schema creation and migration for the embedded backend.

use super::db_err;
use crate::Result;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this code writes. Bump it and add a step to [`MIGRATIONS`] to change it.
pub(crate) const SCHEMA_VERSION: i64 = 11;

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

/// Version 6: the stored IMAP ENVELOPE moves to its own table keyed by email id, so the
/// `emails` rows that SELECT scans stay lean (the column doubled their size). Envelopes
/// stored by version 5 are kept; the column is dropped (SQLite rewrites the table).
/// SEARCH SUBJECT/FROM/TO/CC get their fields in a small table of their own (copied from
/// the summaries; an email without a row there is searched through its summary).
const V6: &str = r#"
CREATE TABLE IF NOT EXISTS envelopes (
    email INTEGER PRIMARY KEY,
    data  BLOB NOT NULL
);
INSERT OR IGNORE INTO envelopes (email, data)
    SELECT id, imap_envelope FROM emails WHERE imap_envelope IS NOT NULL;
ALTER TABLE emails DROP COLUMN imap_envelope;
CREATE TABLE IF NOT EXISTS search_headers (
    email   INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    from_   TEXT NOT NULL,
    to_     TEXT NOT NULL,
    cc      TEXT NOT NULL
);
INSERT OR IGNORE INTO search_headers (email, subject, from_, to_, cc)
    SELECT id, coalesce(json_extract(summary, '$.subject'), ''),
           coalesce(json_extract(summary, '$.from'), ''),
           coalesce(json_extract(summary, '$.to'), ''),
           coalesce(json_extract(summary, '$.cc'), '')
    FROM emails WHERE json_valid(summary);
"#;

/// Version 7: account-scoped collections (items with versions, their change log and the
/// blobs they reference), uploads with their owner, and the blob index that ownership checks
/// and the collector read.
const V7: &str = r#"
CREATE TABLE IF NOT EXISTS items (
    account    INTEGER NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    version    INTEGER NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (account, collection, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS item_changes (
    account    INTEGER NOT NULL,
    collection TEXT NOT NULL,
    modseq     INTEGER NOT NULL,
    id         TEXT NOT NULL,
    op         INTEGER NOT NULL,
    existed    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS item_changes_modseq ON item_changes(account, collection, modseq);
CREATE TABLE IF NOT EXISTS item_blobs (
    account    INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    PRIMARY KEY (account, hash, collection, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS item_blobs_hash ON item_blobs(hash);
CREATE TABLE IF NOT EXISTS uploads (
    account    INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account, hash)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_hash ON uploads(hash);
CREATE INDEX IF NOT EXISTS emails_blob ON emails(blob);
CREATE INDEX IF NOT EXISTS queue_blob ON queue(blob);
"#;

/// Version 8: per-account byte counts (`accounts.bytes`, the sum of the account's email
/// sizes), kept by triggers on every insert and delete of an email, so no write path can
/// forget it; existing accounts are counted once.
const V8: &str = r#"
ALTER TABLE accounts ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE accounts SET bytes = (SELECT coalesce(sum(size), 0) FROM emails WHERE emails.account = accounts.id);
CREATE TRIGGER IF NOT EXISTS emails_bytes_in AFTER INSERT ON emails BEGIN
    UPDATE accounts SET bytes = bytes + NEW.size WHERE id = NEW.account;
END;
CREATE TRIGGER IF NOT EXISTS emails_bytes_out AFTER DELETE ON emails BEGIN
    UPDATE accounts SET bytes = bytes - OLD.size WHERE id = OLD.account;
END;
"#;

/// Version 9: a mailbox's sort order as the user set it (JMAP `sortOrder`); NULL keeps the
/// role's default.
const V9: &str = "ALTER TABLE mailboxes ADD COLUMN sort_order INTEGER;";

/// Version 10: the account's Message-ID references (RFC 8621 §3 threads): every id an email
/// has in Message-ID, In-Reply-To or References, mapped to the thread of the emails that
/// name it, so threads join by any shared id whatever the arrival order. Existing emails
/// are entered once from their stored message id and summary.
const V10: &str = r#"
CREATE TABLE IF NOT EXISTS thread_refs (
    account    INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    thread     INTEGER NOT NULL,
    PRIMARY KEY (account, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS thread_refs_thread ON thread_refs(thread);
INSERT OR IGNORE INTO thread_refs (account, message_id, thread)
SELECT account, id, min(thread) FROM (
    SELECT account, message_id AS id, thread FROM emails WHERE message_id IS NOT NULL
    UNION ALL
    SELECT e.account, trim(trim(trim(j.value), '<>')), e.thread FROM emails e,
        json_each(CASE WHEN json_valid(e.summary) THEN e.summary ELSE '{}' END, '$.references') j
    UNION ALL
    SELECT e.account, trim(trim(trim(j.value), '<>')), e.thread FROM emails e,
        json_each(CASE WHEN json_valid(e.summary) THEN e.summary ELSE '{}' END, '$.in_reply_to') j
) WHERE id <> '' GROUP BY account, id;
"#;

/// Version 11: when each message was placed into its mailbox (RFC 8514 SAVEDATE), unix
/// seconds. Rows from before stay NULL and read as the email's internal date.
const V11: &str = "ALTER TABLE memberships ADD COLUMN saved_at INTEGER;";

/// Migration steps; entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11];

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

    /// A database at `version` (its steps applied) with one email, envelope `envelope`
    /// when the version has the column.
    fn old_database(version: usize, envelope: Option<&[u8]>) -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        for step in &MIGRATIONS[..version] {
            conn.execute_batch(step).expect("old schema");
        }
        conn.execute_batch(&format!(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES ({version});
             INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq,
                                 kw_modseq, message_id, summary)
             VALUES (1, 1, 'hash', 1, 0, '', 0, 1, 1, NULL,
                     '{{\"subject\":\"Old one\",\"from\":\"bob@example.test\"}}');"
        ))
        .expect("old data");
        if let Some(envelope) = envelope {
            conn.execute("UPDATE emails SET imap_envelope = ?1", [envelope])
                .expect("old envelope");
        }
        conn
    }

    fn email_columns(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("PRAGMA table_info(emails)")
            .expect("table info");
        stmt.query_map([], |r| r.get::<_, String>(1))
            .expect("columns")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("names")
    }

    fn envelopes(conn: &Connection) -> Vec<(i64, Vec<u8>)> {
        let mut stmt = conn
            .prepare("SELECT email, data FROM envelopes ORDER BY email")
            .expect("envelopes table");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("envelopes")
    }

    #[test]
    fn version_10_memberships_read_their_internal_date_as_save_date() {
        let mut conn = old_database(10, None);
        conn.execute_batch(
            "INSERT INTO accounts (id, address, display_name, password_hash, created_at)
             VALUES (1, 'a@x.test', '', 'h', 0);
             INSERT INTO mailboxes (id, account, name, uid_validity, uid_next, subscribed,
                                    highest_modseq)
             VALUES (7, 1, 'INBOX', 1, 2, 1, 1);
             UPDATE emails SET received_at = 1234;
             INSERT INTO memberships (mailbox, uid, email, modseq)
             SELECT 7, 1, id, 1 FROM emails;",
        )
        .expect("old membership");
        migrate(&mut conn).expect("migrate");
        // RFC 8514 §4.3 lets it be NIL; the internal date is the better guess.
        let got = crate::sqlite::messages::message_save_dates(
            &conn,
            crate::AccountId(1),
            crate::MailboxId(7),
            &[crate::Uid(1)],
        )
        .expect("save dates");
        assert_eq!(got, vec![(crate::Uid(1), 1234)]);
    }

    #[test]
    fn version_9_emails_enter_their_message_ids_and_references() {
        let mut conn = old_database(9, None);
        conn.execute_batch(
            r#"INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq,
                                  kw_modseq, message_id, summary)
               VALUES (1, 5, 'h2', 1, 0, '', 0, 2, 2, 'reply@x',
                       '{"references":["<root@x>"," <mid@x> "],"in_reply_to":["mid@x"]}'),
                      (1, 6, 'h3', 1, 0, '', 0, 3, 3, 'other@x', 'not json');"#,
        )
        .expect("old emails");
        migrate(&mut conn).expect("migrate");
        let mut stmt = conn
            .prepare("SELECT message_id, thread FROM thread_refs ORDER BY message_id")
            .expect("thread_refs");
        let refs: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<rusqlite::Result<_>>()
            .expect("refs");
        assert_eq!(
            refs,
            vec![
                ("mid@x".into(), 5),
                ("other@x".into(), 6),
                ("reply@x".into(), 5),
                ("root@x".into(), 5)
            ]
        );
    }

    #[test]
    fn version_7_accounts_are_counted_once_then_kept_by_the_triggers() {
        let mut conn = old_database(7, None);
        conn.execute_batch(
            "INSERT INTO accounts (id, address, display_name, password_hash, created_at)
             VALUES (1, 'a@x.test', '', 'h', 0), (2, 'b@x.test', '', 'h', 0);
             UPDATE emails SET size = 700;",
        )
        .expect("old accounts");
        migrate(&mut conn).expect("migrate");
        let bytes = |conn: &Connection, id: i64| -> i64 {
            conn.query_row("SELECT bytes FROM accounts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .expect("bytes")
        };
        assert_eq!((bytes(&conn, 1), bytes(&conn, 2)), (700, 0));
        conn.execute_batch(
            "INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq,
                                 kw_modseq, message_id, summary)
             VALUES (2, 2, 'h2', 50, 0, '', 0, 2, 2, NULL, '{}');
             DELETE FROM emails WHERE account = 1;",
        )
        .expect("writes");
        assert_eq!((bytes(&conn, 1), bytes(&conn, 2)), (0, 50));
    }

    #[test]
    fn version_4_database_keeps_its_emails_and_gains_an_empty_envelope_table() {
        let mut conn = old_database(4, None);
        migrate(&mut conn).expect("migrate");
        migrate(&mut conn).expect("migrating again is a no-op");
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, SCHEMA_VERSION);
        let blob: String = conn
            .query_row("SELECT blob FROM emails", [], |r| r.get(0))
            .expect("old email");
        assert_eq!(blob, "hash");
        assert!(envelopes(&conn).is_empty());
    }

    #[test]
    fn version_5_envelopes_move_to_their_own_table_and_the_column_is_dropped() {
        let mut conn = old_database(5, Some(b"(NIL \"stored\")"));
        assert!(email_columns(&conn).iter().any(|c| c == "imap_envelope"));
        migrate(&mut conn).expect("migrate");
        assert!(!email_columns(&conn).iter().any(|c| c == "imap_envelope"));
        let id: i64 = conn
            .query_row("SELECT id FROM emails", [], |r| r.get(0))
            .expect("email kept");
        assert_eq!(envelopes(&conn), vec![(id, b"(NIL \"stored\")".to_vec())]);
        // SEARCH's header fields are copied out of the summary.
        let headers: (i64, String, String, String, String) = conn
            .query_row(
                "SELECT email, subject, from_, to_, cc FROM search_headers",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .expect("search headers");
        assert_eq!(
            headers,
            (
                id,
                "Old one".into(),
                "bob@example.test".into(),
                String::new(),
                String::new()
            )
        );
    }
}
