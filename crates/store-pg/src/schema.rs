//! Schema creation and online migration.
//!
//! `schema_version` holds one row: `version` (what the newest migrated binary wrote) and
//! `compatible_from` (the oldest code version that can still use this schema). A node
//! refuses to start only when its own version is below `compatible_from`, so during a
//! rolling upgrade old and new binaries run side by side as long as migrations are additive.
//! Migrations run under a transaction-scoped advisory lock: several nodes starting at once
//! migrate one after the other, and the later ones find nothing to do.

use crate::pool::{Pool, get};
use bulwark_store::{Result, StoreError};

/// The schema version this code writes.
pub(crate) const SCHEMA_VERSION: i64 = 11;
/// The oldest code schema version that can run against what this code writes.
const COMPATIBLE_FROM: i64 = 1;
/// Advisory lock key serialising migrations ("bulwark" + 1).
const MIGRATION_LOCK: i64 = 0x6275_6c77_6172_6b01;
/// Advisory lock key serialising directory changes (domains, addresses).
pub(crate) const DIRECTORY_LOCK: i64 = 0x6275_6c77_6172_6b02;
/// Advisory lock between blob writers (shared: every transaction that stores or references
/// a blob) and blob deleters (exclusive: the collector and `account_delete`'s sweep), so a
/// blob is never deleted while another transaction is about to reference it.
pub(crate) const BLOB_LOCK: i64 = 0x6275_6c77_6172_6b03;

/// Version 1: the initial schema (the embedded backend's, in PostgreSQL types). Text that
/// is sorted in listings uses the "C" collation so order is bytewise, as in SQLite.
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS domains (
    name TEXT COLLATE "C" PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS accounts (
    id            BIGSERIAL PRIMARY KEY,
    address       TEXT COLLATE "C" NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    modseq        BIGINT NOT NULL DEFAULT 0,
    changes_floor BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS aliases (
    alias   TEXT COLLATE "C" PRIMARY KEY,
    account BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS aliases_account ON aliases(account);
CREATE TABLE IF NOT EXISTS app_passwords (
    id         BIGSERIAL PRIMARY KEY,
    account    BIGINT NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS app_passwords_account ON app_passwords(account);
CREATE TABLE IF NOT EXISTS mailboxes (
    id             BIGSERIAL PRIMARY KEY,
    account        BIGINT NOT NULL,
    name           TEXT COLLATE "C" NOT NULL,
    role           TEXT,
    uid_validity   BIGINT NOT NULL,
    uid_next       BIGINT NOT NULL,
    subscribed     BOOLEAN NOT NULL,
    highest_modseq BIGINT NOT NULL,
    UNIQUE (account, name)
);
CREATE TABLE IF NOT EXISTS threads (
    id      BIGSERIAL PRIMARY KEY,
    account BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS emails (
    id          BIGSERIAL PRIMARY KEY,
    account     BIGINT NOT NULL,
    thread      BIGINT NOT NULL,
    blob        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    keywords    TEXT NOT NULL,
    seen        BOOLEAN NOT NULL,
    modseq      BIGINT NOT NULL,
    kw_modseq   BIGINT NOT NULL,
    message_id  TEXT,
    summary     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS emails_account_received ON emails(account, received_at);
CREATE INDEX IF NOT EXISTS emails_message_id ON emails(account, message_id);
CREATE INDEX IF NOT EXISTS emails_thread ON emails(thread);
CREATE TABLE IF NOT EXISTS memberships (
    mailbox BIGINT NOT NULL,
    uid     BIGINT NOT NULL,
    email   BIGINT NOT NULL,
    modseq  BIGINT NOT NULL,
    PRIMARY KEY (mailbox, uid)
);
CREATE INDEX IF NOT EXISTS memberships_email ON memberships(email);
CREATE TABLE IF NOT EXISTS expunged (
    mailbox BIGINT NOT NULL,
    uid     BIGINT NOT NULL,
    modseq  BIGINT NOT NULL,
    PRIMARY KEY (mailbox, uid)
);
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(mailbox, modseq);
CREATE TABLE IF NOT EXISTS changes (
    seq     BIGSERIAL PRIMARY KEY,
    account BIGINT NOT NULL,
    modseq  BIGINT NOT NULL,
    kind    BIGINT NOT NULL,
    object  BIGINT NOT NULL,
    op      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_account_modseq ON changes(account, modseq);
CREATE TABLE IF NOT EXISTS blobs (
    hash TEXT PRIMARY KEY,
    data BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    id           BIGSERIAL PRIMARY KEY,
    sender       TEXT NOT NULL,
    recipients   TEXT NOT NULL,
    blob         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    next_attempt BIGINT NOT NULL,
    attempts     BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    dsn_sent     BOOLEAN NOT NULL,
    lease_owner  TEXT,
    lease_until  BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_due ON queue(next_attempt);
"#;

/// Version 2: per-account settings (TOTP secrets, vacation response, identities, …).
const V2: &str = r#"
CREATE TABLE IF NOT EXISTS account_settings (
    account BIGINT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (account, key)
);
"#;

/// Version 3: settings shared by every node (the token signing key set, …). Additive.
const V3: &str = r#"
CREATE TABLE IF NOT EXISTS global_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#;

/// Version 4: indexes that let a mailbox resync read only what changed (new memberships,
/// keyword changes) instead of scanning the whole mailbox. Additive.
const V4: &str = r#"
CREATE INDEX IF NOT EXISTS memberships_mailbox_modseq ON memberships(mailbox, modseq);
CREATE INDEX IF NOT EXISTS emails_account_kw_modseq ON emails(account, kw_modseq);
"#;

/// Version 5: the IMAP ENVELOPE rendered at delivery (NULL for emails stored before, or
/// written by older nodes; FETCH then renders it from the content). Additive.
const V5: &str = r#"
ALTER TABLE emails ADD COLUMN IF NOT EXISTS imap_envelope BYTEA;
"#;

/// Version 6: the stored IMAP ENVELOPE moves to its own table keyed by email id, so the
/// `emails` rows that SELECT and SEARCH scan stay lean. Envelopes stored by version 5 are
/// copied; the column stays (additive: version 5 code still writes it, and FETCH renders
/// from the content what the table lacks) but this code neither writes nor reads it.
const V6: &str = r#"
CREATE TABLE IF NOT EXISTS envelopes (
    email BIGINT PRIMARY KEY,
    data  BYTEA NOT NULL
);
INSERT INTO envelopes (email, data)
    SELECT id, imap_envelope FROM emails WHERE imap_envelope IS NOT NULL
    ON CONFLICT (email) DO NOTHING;
"#;

/// Version 7: account-scoped collections (items with versions, their change log and the
/// blobs they reference), uploads with their owner, and the blob indexes that ownership
/// checks and the collector read. Additive.
const V7: &str = r#"
CREATE TABLE IF NOT EXISTS items (
    account    BIGINT NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    version    BIGINT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (account, collection, id)
);
CREATE TABLE IF NOT EXISTS item_changes (
    seq        BIGSERIAL PRIMARY KEY,
    account    BIGINT NOT NULL,
    collection TEXT NOT NULL,
    modseq     BIGINT NOT NULL,
    id         TEXT NOT NULL,
    op         BIGINT NOT NULL,
    existed    BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS item_changes_modseq ON item_changes(account, collection, modseq);
CREATE TABLE IF NOT EXISTS item_blobs (
    account    BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    PRIMARY KEY (account, hash, collection, id)
);
CREATE INDEX IF NOT EXISTS item_blobs_hash ON item_blobs(hash);
CREATE TABLE IF NOT EXISTS uploads (
    account    BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account, hash)
);
CREATE INDEX IF NOT EXISTS uploads_hash ON uploads(hash);
CREATE INDEX IF NOT EXISTS emails_blob ON emails(blob);
CREATE INDEX IF NOT EXISTS queue_blob ON queue(blob);
"#;

/// Version 8: per-account byte counts (`accounts.bytes`, the sum of the account's email
/// sizes), kept by a trigger on every insert and delete of an email — also those of older
/// nodes during a rolling upgrade — and counted once for existing accounts. Additive.
const V8: &str = r#"
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS bytes BIGINT NOT NULL DEFAULT 0;
CREATE OR REPLACE FUNCTION bulwark_email_bytes() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE accounts SET bytes = bytes + NEW.size WHERE id = NEW.account;
    ELSE
        UPDATE accounts SET bytes = bytes - OLD.size WHERE id = OLD.account;
    END IF;
    RETURN NULL;
END
$fn$;
DROP TRIGGER IF EXISTS emails_bytes ON emails;
CREATE TRIGGER emails_bytes AFTER INSERT OR DELETE ON emails
    FOR EACH ROW EXECUTE FUNCTION bulwark_email_bytes();
UPDATE accounts SET bytes = (SELECT coalesce(sum(size), 0) FROM emails WHERE emails.account = accounts.id);
"#;

/// Version 9: a mailbox's sort order as the user set it (JMAP `sortOrder`); NULL keeps the
/// role's default. Additive.
const V9: &str = "ALTER TABLE mailboxes ADD COLUMN IF NOT EXISTS sort_order BIGINT;";

/// Version 10: the account's Message-ID references (RFC 8621 §3 threads): every id an email
/// has in Message-ID, In-Reply-To or References, mapped to the thread of the emails that
/// name it. Existing emails are entered once from their stored message id and summary.
/// Additive (old code does not read the table; emails it delivers just lack entries).
const V10: &str = r#"
CREATE TABLE IF NOT EXISTS thread_refs (
    account    BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    thread     BIGINT NOT NULL,
    PRIMARY KEY (account, message_id)
);
CREATE INDEX IF NOT EXISTS thread_refs_thread ON thread_refs(thread);
INSERT INTO thread_refs (account, message_id, thread)
SELECT account, id, min(thread) FROM (
    SELECT account, message_id AS id, thread FROM emails WHERE message_id IS NOT NULL
    UNION ALL
    SELECT e.account, btrim(btrim(btrim(r.value), '<>')), e.thread FROM emails e
        CROSS JOIN LATERAL jsonb_array_elements_text(CASE
            WHEN jsonb_typeof(e.summary::jsonb -> 'references') = 'array'
            THEN e.summary::jsonb -> 'references' ELSE '[]'::jsonb END) AS r(value)
    UNION ALL
    SELECT e.account, btrim(btrim(btrim(r.value), '<>')), e.thread FROM emails e
        CROSS JOIN LATERAL jsonb_array_elements_text(CASE
            WHEN jsonb_typeof(e.summary::jsonb -> 'in_reply_to') = 'array'
            THEN e.summary::jsonb -> 'in_reply_to' ELSE '[]'::jsonb END) AS r(value)
) AS refs WHERE id <> '' GROUP BY account, id
ON CONFLICT (account, message_id) DO NOTHING;
"#;

/// Migration steps; entry `i` brings the schema from version `i` to `i + 1`. Each must be
/// idempotent and, for online upgrades, additive (old code keeps working on the result).
/// Version 11: when each message was placed into its mailbox (RFC 8514 SAVEDATE), unix
/// seconds. Additive: rows from before, and rows older code writes during a rolling
/// upgrade, stay NULL and read as the email's internal date.
const V11: &str = "ALTER TABLE memberships ADD COLUMN IF NOT EXISTS saved_at BIGINT;";

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11];

/// Creates or upgrades the schema in one transaction under the migration lock.
pub(crate) async fn migrate(pool: &std::sync::Arc<Pool>) -> Result<()> {
    let mut pooled = pool.get().await?;
    let outcome = async {
        let mut tx = pooled.begin(false).await?;
        // Waiting for another node's migration and building indexes may take longer than
        // an ordinary statement is allowed to.
        tx.batch("SET LOCAL statement_timeout = 0").await?;
        tx.exec("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.exec(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version BIGINT NOT NULL, compatible_from BIGINT NOT NULL)",
            &[],
        )
        .await?;
        let row = tx
            .opt(
                "SELECT version, compatible_from FROM schema_version LIMIT 1",
                &[],
            )
            .await?;
        let (current, compatible_from): (i64, i64) = match &row {
            Some(row) => (get(row, 0)?, get(row, 1)?),
            None => (0, 0),
        };
        if compatible_from > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "database schema version {current} needs code of schema version \
                 {compatible_from} or newer; this program has {SCHEMA_VERSION}"
            )));
        }
        if current >= SCHEMA_VERSION {
            // Up to date, or newer but still compatible (a rolling upgrade in progress).
            tx.commit().await?;
            return Ok(());
        }
        let start = usize::try_from(current).unwrap_or(0);
        for step in MIGRATIONS.iter().skip(start) {
            tx.batch(step).await?;
        }
        tx.exec("DELETE FROM schema_version", &[]).await?;
        tx.exec(
            "INSERT INTO schema_version (version, compatible_from) VALUES ($1, $2)",
            &[&SCHEMA_VERSION, &COMPATIBLE_FROM],
        )
        .await?;
        tx.commit().await
    }
    .await;
    pooled.finish(&outcome);
    outcome
}
