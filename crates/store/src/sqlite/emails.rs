//! Email writes on SQLite: the engine contract's email, membership and thread operations in
//! SQLite's SQL ([`WriteTx`] for the writer's transaction). The rules — what a delivery,
//! keyword change, move, copy or expunge does with them — are in [`crate::domain::emails`].

use super::db_err;
use super::writer::{Kind, Op, Tx};
use crate::domain::emails as domain;
use crate::engine::{EmailRow, WriteTx, run_ready};
use crate::{
    AccountId, Appended, BlobHash, EmailId, KeywordResult, KeywordUpdate, Mailbox, MailboxId,
    MembershipUpdate, ModSeq, NewEmail, NewQueued, QueueId, Result, Role, ThreadId, Uid,
};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) use crate::domain::emails::NewMemberships;

/// Stores a blob once (content-addressed); returns its hash.
pub(crate) fn put_blob(conn: &Connection, data: &[u8]) -> Result<BlobHash> {
    let hash = BlobHash::of(data);
    let mut stmt = conn
        .prepare_cached("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?1, ?2)")
        .map_err(db_err)?;
    stmt.execute(params![hash.0, data]).map_err(db_err)?;
    Ok(hash)
}

/// Runs one prepared (cached) statement.
fn exec(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<usize> {
    conn.prepare_cached(sql)
        .map_err(db_err)?
        .execute(p)
        .map_err(db_err)
}

impl WriteTx for Tx<'_> {
    async fn lock_account(&mut self, _account: AccountId) -> Result<()> {
        // One writer thread owns the database: nothing else writes meanwhile.
        Ok(())
    }

    async fn require_account(&mut self, account: AccountId) -> Result<()> {
        super::directory::require_account(self.conn, account)
    }

    async fn next_modseq(&mut self, account: AccountId) -> Result<ModSeq> {
        Tx::next_modseq(self, account)
    }

    async fn account_modseq(&mut self, account: AccountId) -> Result<ModSeq> {
        super::changes::account_modseq(self.conn, account)
    }

    async fn log(
        &mut self,
        account: AccountId,
        modseq: ModSeq,
        kind: Kind,
        object: i64,
        op: Op,
    ) -> Result<()> {
        Tx::log(self, account, modseq, kind, object, op)
    }

    fn note_delivery(&mut self, account: AccountId) {
        Tx::note_delivery(self, account)
    }

    async fn require_mailbox(&mut self, account: AccountId, mailbox: MailboxId) -> Result<Mailbox> {
        super::mailboxes::require_mailbox(self.conn, account, mailbox)
    }

    async fn next_uid_validity(&mut self) -> Result<u32> {
        super::mailboxes::next_uid_validity(self.conn)
    }

    async fn mailbox_by_name(
        &mut self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<MailboxId>> {
        super::mailboxes::mailbox_id_by_name(self.conn, account, name)
    }

    async fn role_taken(&mut self, account: AccountId, role: Role) -> Result<bool> {
        super::mailboxes::role_taken(self.conn, account, role)
    }

    async fn insert_mailbox(
        &mut self,
        account: AccountId,
        name: &str,
        role: Option<Role>,
        uid_validity: u32,
        subscribed: bool,
        modseq: ModSeq,
    ) -> Result<MailboxId> {
        super::mailboxes::insert_mailbox_row(
            self.conn,
            account,
            name,
            role,
            uid_validity,
            subscribed,
            modseq,
        )
    }

    async fn mailbox_and_children(
        &mut self,
        account: AccountId,
        mailbox: MailboxId,
        children_prefix: &str,
    ) -> Result<Vec<(MailboxId, String)>> {
        super::mailboxes::mailbox_and_children(self.conn, account, mailbox, children_prefix)
    }

    async fn set_mailbox_name(&mut self, mailbox: MailboxId, name: &str) -> Result<()> {
        super::mailboxes::set_mailbox_column(self.conn, mailbox, "name", &name)
    }

    async fn set_mailbox_subscribed(&mut self, mailbox: MailboxId, subscribed: bool) -> Result<()> {
        super::mailboxes::set_mailbox_column(self.conn, mailbox, "subscribed", &subscribed)
    }

    async fn set_mailbox_sort_order(
        &mut self,
        mailbox: MailboxId,
        sort_order: Option<u32>,
    ) -> Result<()> {
        let value = sort_order.map(i64::from);
        super::mailboxes::set_mailbox_column(self.conn, mailbox, "sort_order", &value)
    }

    async fn set_mailbox_role(&mut self, mailbox: MailboxId, role: Option<Role>) -> Result<()> {
        let text = super::mailboxes::role_to_text(role);
        super::mailboxes::set_mailbox_column(self.conn, mailbox, "role", &text)
    }

    async fn mailbox_members(&mut self, mailbox: MailboxId) -> Result<Vec<(Uid, EmailId)>> {
        super::mailboxes::mailbox_members(self.conn, mailbox)
    }

    async fn delete_mailbox(&mut self, mailbox: MailboxId) -> Result<()> {
        super::mailboxes::delete_mailbox_row(self.conn, mailbox)
    }

    async fn take_uid(&mut self, account: AccountId, mailbox: MailboxId) -> Result<Option<Uid>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE mailboxes SET uid_next = uid_next + 1
                 WHERE id = ?1 AND account = ?2 AND uid_next < 4294967295 RETURNING uid_next - 1",
            )
            .map_err(db_err)?;
        let uid: Option<u32> = stmt
            .query_row(params![mailbox.0, account.0], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        Ok(uid.map(Uid))
    }

    async fn touch_mailbox(
        &mut self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<()> {
        Tx::touch_mailbox(self, account, mailbox, modseq)
    }

    async fn insert_membership(
        &mut self,
        mailbox: MailboxId,
        uid: Uid,
        email: EmailId,
        modseq: ModSeq,
        saved_at: i64,
    ) -> Result<()> {
        exec(
            self.conn,
            "INSERT INTO memberships (mailbox, uid, email, modseq, saved_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![mailbox.0, uid.0, email.0, modseq.0 as i64, saved_at],
        )?;
        Ok(())
    }

    async fn delete_membership(
        &mut self,
        mailbox: MailboxId,
        uid: Uid,
        modseq: ModSeq,
    ) -> Result<()> {
        exec(
            self.conn,
            "DELETE FROM memberships WHERE mailbox = ?1 AND uid = ?2",
            params![mailbox.0, uid.0],
        )?;
        exec(
            self.conn,
            "INSERT OR REPLACE INTO expunged (mailbox, uid, modseq) VALUES (?1, ?2, ?3)",
            params![mailbox.0, uid.0, modseq.0 as i64],
        )?;
        Ok(())
    }

    async fn memberships_of(&mut self, email: EmailId) -> Result<Vec<(MailboxId, Uid)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT mailbox, uid FROM memberships WHERE email = ?1 ORDER BY mailbox",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([email.0], |r| Ok((MailboxId(r.get(0)?), Uid(r.get(1)?))))
            .map_err(db_err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db_err)
    }

    async fn email_at(&mut self, mailbox: MailboxId, uid: Uid) -> Result<Option<EmailId>> {
        let email: Option<i64> = self
            .conn
            .prepare_cached("SELECT email FROM memberships WHERE mailbox = ?1 AND uid = ?2")
            .map_err(db_err)?
            .query_row(params![mailbox.0, uid.0], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        Ok(email.map(EmailId))
    }

    async fn put_blob(&mut self, data: &[u8]) -> Result<BlobHash> {
        put_blob(self.conn, data)
    }

    async fn threads_of_refs(
        &mut self,
        account: AccountId,
        ids: &[String],
    ) -> Result<Vec<ThreadId>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT thread FROM thread_refs WHERE account = ?1 AND message_id = ?2")
            .map_err(db_err)?;
        let mut threads = Vec::new();
        for id in ids {
            let thread: Option<i64> = stmt
                .query_row(params![account.0, id], |r| r.get(0))
                .optional()
                .map_err(db_err)?;
            if let Some(t) = thread.map(ThreadId)
                && !threads.contains(&t)
            {
                threads.push(t);
            }
        }
        Ok(threads)
    }

    async fn add_thread_refs(
        &mut self,
        account: AccountId,
        ids: &[String],
        thread: ThreadId,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO thread_refs (account, message_id, thread) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account, message_id) DO UPDATE SET thread = excluded.thread",
            )
            .map_err(db_err)?;
        for id in ids {
            stmt.execute(params![account.0, id, thread.0])
                .map_err(db_err)?;
        }
        Ok(())
    }

    async fn merge_thread(
        &mut self,
        from: ThreadId,
        into: ThreadId,
        modseq: ModSeq,
    ) -> Result<Vec<EmailId>> {
        let moved = self
            .conn
            .prepare_cached(
                "UPDATE emails SET thread = ?2, modseq = ?3 WHERE thread = ?1 RETURNING id",
            )
            .map_err(db_err)?
            .query_map(params![from.0, into.0, modseq.0 as i64], |r| {
                r.get(0).map(EmailId)
            })
            .map_err(db_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        exec(
            self.conn,
            "UPDATE thread_refs SET thread = ?2 WHERE thread = ?1",
            params![from.0, into.0],
        )?;
        exec(self.conn, "DELETE FROM threads WHERE id = ?1", [from.0])?;
        Ok(moved)
    }

    async fn insert_thread(&mut self, account: AccountId) -> Result<ThreadId> {
        exec(
            self.conn,
            "INSERT INTO threads (account) VALUES (?1)",
            [account.0],
        )?;
        Ok(ThreadId(self.conn.last_insert_rowid()))
    }

    async fn thread_is_empty(&mut self, thread: ThreadId) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM emails WHERE thread = ?1 LIMIT 1")
            .map_err(db_err)?;
        Ok(!stmt.exists([thread.0]).map_err(db_err)?)
    }

    async fn delete_thread(&mut self, thread: ThreadId) -> Result<()> {
        exec(self.conn, "DELETE FROM threads WHERE id = ?1", [thread.0])?;
        exec(
            self.conn,
            "DELETE FROM thread_refs WHERE thread = ?1",
            [thread.0],
        )?;
        Ok(())
    }

    async fn insert_email(&mut self, row: &EmailRow<'_>) -> Result<EmailId> {
        exec(
            self.conn,
            "INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq, kw_modseq,
                                 message_id, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10)",
            params![
                row.account.0,
                row.thread.0,
                row.blob.0,
                row.size,
                row.received_at,
                row.keywords,
                row.seen,
                row.modseq.0 as i64,
                row.message_id,
                row.summary_json,
            ],
        )?;
        let email = EmailId(self.conn.last_insert_rowid());
        let s = row.summary;
        exec(
            self.conn,
            "INSERT INTO search_headers (email, subject, from_, to_, cc) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![email.0, s.subject, s.from, s.to, s.cc],
        )?;
        if let Some(envelope) = s.imap_envelope.as_deref() {
            exec(
                self.conn,
                "INSERT INTO envelopes (email, data) VALUES (?1, ?2)",
                params![email.0, envelope],
            )?;
        }
        Ok(email)
    }

    async fn copy_email(&mut self, source: EmailId, modseq: ModSeq) -> Result<(EmailId, ThreadId)> {
        let thread: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq, kw_modseq,
                                     message_id, summary)
                 SELECT account, thread, blob, size, received_at, keywords, seen, ?2, ?2, message_id, summary
                 FROM emails WHERE id = ?1 RETURNING thread",
            )
            .map_err(db_err)?
            .query_row(params![source.0, modseq.0 as i64], |r| r.get(0))
            .map_err(db_err)?;
        let copy = EmailId(self.conn.last_insert_rowid());
        for sql in [
            "INSERT INTO envelopes (email, data) SELECT ?2, data FROM envelopes WHERE email = ?1",
            "INSERT INTO search_headers (email, subject, from_, to_, cc)
             SELECT ?2, subject, from_, to_, cc FROM search_headers WHERE email = ?1",
        ] {
            exec(self.conn, sql, params![source.0, copy.0])?;
        }
        Ok((copy, ThreadId(thread)))
    }

    async fn email_exists(&mut self, account: AccountId, email: EmailId) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM emails WHERE id = ?1 AND account = ?2")
            .map_err(db_err)?;
        stmt.exists(params![email.0, account.0]).map_err(db_err)
    }

    async fn email_keywords(
        &mut self,
        account: AccountId,
        email: EmailId,
    ) -> Result<Option<(String, ModSeq)>> {
        let row: Option<(String, i64)> = self
            .conn
            .prepare_cached("SELECT keywords, kw_modseq FROM emails WHERE id = ?1 AND account = ?2")
            .map_err(db_err)?
            .query_row(params![email.0, account.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db_err)?;
        Ok(row.map(|(text, m)| (text, ModSeq(m as u64))))
    }

    async fn set_email_keywords(
        &mut self,
        email: EmailId,
        keywords: &str,
        seen: bool,
        modseq: ModSeq,
    ) -> Result<()> {
        exec(
            self.conn,
            "UPDATE emails SET keywords = ?2, seen = ?3, modseq = ?4, kw_modseq = ?4 WHERE id = ?1",
            params![email.0, keywords, seen, modseq.0 as i64],
        )?;
        Ok(())
    }

    async fn set_email_modseq(&mut self, email: EmailId, modseq: ModSeq) -> Result<()> {
        exec(
            self.conn,
            "UPDATE emails SET modseq = ?2 WHERE id = ?1",
            params![email.0, modseq.0 as i64],
        )?;
        Ok(())
    }

    async fn delete_email(&mut self, email: EmailId) -> Result<Option<ThreadId>> {
        let thread: Option<i64> = self
            .conn
            .prepare_cached("DELETE FROM emails WHERE id = ?1 RETURNING thread")
            .map_err(db_err)?
            .query_row([email.0], |r| r.get(0))
            .optional()
            .map_err(db_err)?;
        let Some(thread) = thread else {
            return Ok(None);
        };
        for sql in [
            "DELETE FROM envelopes WHERE email = ?1",
            "DELETE FROM search_headers WHERE email = ?1",
        ] {
            exec(self.conn, sql, [email.0])?;
        }
        Ok(Some(ThreadId(thread)))
    }

    async fn item_version(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
    ) -> Result<Option<ModSeq>> {
        super::items::item_version(self.conn, account, collection, id)
    }

    async fn put_item(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
        version: ModSeq,
        value: &str,
    ) -> Result<()> {
        super::items::put_item(self.conn, account, collection, id, version, value)
    }

    async fn delete_item(&mut self, account: AccountId, collection: &str, id: &str) -> Result<()> {
        super::items::delete_item(self.conn, account, collection, id)
    }

    async fn set_item_blobs(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
        blobs: &[BlobHash],
    ) -> Result<()> {
        super::items::set_item_blobs(self.conn, account, collection, id, blobs)
    }

    async fn log_item(
        &mut self,
        account: AccountId,
        collection: &str,
        modseq: ModSeq,
        id: &str,
        op: i64,
        existed: bool,
    ) -> Result<()> {
        super::items::log_item(self, account, collection, modseq, id, op, existed)
    }

    async fn enqueue(&mut self, message: &NewQueued) -> Result<QueueId> {
        super::queue::queue_enqueue(self, message)
    }
}

// ---- the Store's email writes: the shared rules on this backend's transaction ----------

pub(crate) fn email_append(
    tx: &mut Tx<'_>,
    account: AccountId,
    new: &[NewEmail],
) -> Result<Vec<Appended>> {
    run_ready(domain::email_append(tx, account, new))?
}

pub(crate) fn deliver(
    tx: &mut Tx<'_>,
    deliveries: &[(AccountId, NewEmail)],
) -> Result<Vec<Appended>> {
    run_ready(domain::deliver(tx, deliveries))?
}

pub(crate) fn set_keywords(
    tx: &mut Tx<'_>,
    account: AccountId,
    updates: &[KeywordUpdate],
) -> Result<KeywordResult> {
    run_ready(domain::set_keywords(tx, account, updates))?
}

pub(crate) fn set_mailboxes(
    tx: &mut Tx<'_>,
    account: AccountId,
    updates: &[MembershipUpdate],
) -> Result<NewMemberships> {
    run_ready(domain::set_mailboxes(tx, account, updates))?
}

pub(crate) fn email_copy(
    tx: &mut Tx<'_>,
    account: AccountId,
    ids: &[EmailId],
    dest: MailboxId,
) -> Result<Vec<(EmailId, EmailId, Uid)>> {
    run_ready(domain::email_copy(tx, account, ids, dest))?
}

pub(crate) fn mailbox_expunge(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<ModSeq> {
    run_ready(domain::mailbox_expunge(tx, account, mailbox, uids))?
}

pub(crate) fn email_destroy(tx: &mut Tx<'_>, account: AccountId, ids: &[EmailId]) -> Result<()> {
    run_ready(domain::email_destroy(tx, account, ids))?
}
