//! Email writes on PostgreSQL: the engine contract's email, membership and thread operations
//! in PostgreSQL's SQL ([`WriteTx`] for the pool's transaction). The rules — what a delivery,
//! keyword change, move, copy or expunge does with them — are in
//! [`bulwark_store::domain::emails`], shared with the embedded backend.

use crate::pool::{Kind, Op, Tx, get, get_modseq, get_u32, sql_modseq};
use bulwark_store::domain::emails as domain;
use bulwark_store::engine::{EmailRow, WriteTx};
use bulwark_store::{
    AccountId, Appended, BlobHash, EmailId, KeywordResult, KeywordUpdate, Mailbox, MailboxId,
    MembershipUpdate, ModSeq, NewEmail, NewQueued, QueueId, Result, Role, StoreError, ThreadId,
    Uid,
};

pub(crate) use bulwark_store::domain::emails::NewMemberships;

/// Largest UID (RFC 9051 §2.3.1.1: 32-bit unsigned).
const MAX_UID: i64 = u32::MAX as i64;

/// Stores a blob once (content-addressed); returns its hash. Buffered ([`crate::buffer`]).
pub(crate) async fn put_blob(tx: &mut Tx<'_>, data: &[u8]) -> Result<BlobHash> {
    let hash = BlobHash::of(data);
    tx.rows.blob(&hash.0, data);
    Ok(hash)
}

impl WriteTx for Tx<'_> {
    async fn lock_account(&mut self, account: AccountId) -> Result<()> {
        Tx::lock_account(self, account).await
    }

    async fn require_account(&mut self, account: AccountId) -> Result<()> {
        crate::directory::require_account(self, account).await
    }

    async fn next_modseq(&mut self, account: AccountId) -> Result<ModSeq> {
        Tx::next_modseq(self, account).await
    }

    async fn account_modseq(&mut self, account: AccountId) -> Result<ModSeq> {
        crate::changes::account_modseq(self, account).await
    }

    async fn log(
        &mut self,
        account: AccountId,
        modseq: ModSeq,
        kind: Kind,
        object: i64,
        op: Op,
    ) -> Result<()> {
        Tx::log(self, account, modseq, kind, object, op).await
    }

    fn note_delivery(&mut self, account: AccountId) {
        Tx::note_delivery(self, account)
    }

    async fn require_mailbox(&mut self, account: AccountId, mailbox: MailboxId) -> Result<Mailbox> {
        crate::mailboxes::require_mailbox(self, account, mailbox).await
    }

    async fn next_uid_validity(&mut self) -> Result<u32> {
        crate::mailboxes::next_uid_validity(self).await
    }

    async fn mailbox_by_name(
        &mut self,
        account: AccountId,
        name: &str,
    ) -> Result<Option<MailboxId>> {
        crate::mailboxes::mailbox_id_by_name(self, account, name).await
    }

    async fn role_taken(&mut self, account: AccountId, role: Role) -> Result<bool> {
        crate::mailboxes::role_taken(self, account, role).await
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
        crate::mailboxes::insert_mailbox_row(
            self,
            account,
            name,
            role,
            uid_validity,
            subscribed,
            modseq,
        )
        .await
    }

    async fn mailbox_and_children(
        &mut self,
        account: AccountId,
        mailbox: MailboxId,
        children_prefix: &str,
    ) -> Result<Vec<(MailboxId, String)>> {
        crate::mailboxes::mailbox_and_children(self, account, mailbox, children_prefix).await
    }

    async fn set_mailbox_name(&mut self, mailbox: MailboxId, name: &str) -> Result<()> {
        crate::mailboxes::set_mailbox_name(self, mailbox, name).await
    }

    async fn set_mailbox_subscribed(&mut self, mailbox: MailboxId, subscribed: bool) -> Result<()> {
        crate::mailboxes::set_mailbox_subscribed(self, mailbox, subscribed).await
    }

    async fn set_mailbox_sort_order(
        &mut self,
        mailbox: MailboxId,
        sort_order: Option<u32>,
    ) -> Result<()> {
        crate::mailboxes::set_mailbox_sort_order(self, mailbox, sort_order).await
    }

    async fn set_mailbox_role(&mut self, mailbox: MailboxId, role: Option<Role>) -> Result<()> {
        crate::mailboxes::set_mailbox_role(self, mailbox, role).await
    }

    async fn mailbox_members(&mut self, mailbox: MailboxId) -> Result<Vec<(Uid, EmailId)>> {
        crate::mailboxes::mailbox_members(self, mailbox).await
    }

    async fn delete_mailbox(&mut self, mailbox: MailboxId) -> Result<()> {
        crate::mailboxes::delete_mailbox_row(self, mailbox).await
    }

    /// The first UPDATE locks the mailbox row until commit ([`Tx::next_uid`]).
    async fn take_uid(&mut self, account: AccountId, mailbox: MailboxId) -> Result<Option<Uid>> {
        let uid = self.next_uid(account, mailbox.0, MAX_UID).await?;
        uid.map(|uid| {
            u32::try_from(uid).map(Uid).map_err(|_| {
                StoreError::Internal(format!("mailbox {mailbox} has UID {uid} out of range"))
            })
        })
        .transpose()
    }

    async fn touch_mailbox(
        &mut self,
        account: AccountId,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<()> {
        Tx::touch_mailbox(self, account, mailbox, modseq).await
    }

    async fn insert_membership(
        &mut self,
        mailbox: MailboxId,
        uid: Uid,
        email: EmailId,
        modseq: ModSeq,
        saved_at: i64,
    ) -> Result<()> {
        self.rows.membership(
            mailbox.0,
            i64::from(uid.0),
            email.0,
            sql_modseq(modseq),
            saved_at,
        );
        Ok(())
    }

    async fn delete_membership(
        &mut self,
        mailbox: MailboxId,
        uid: Uid,
        modseq: ModSeq,
    ) -> Result<()> {
        let uid = i64::from(uid.0);
        self.exec(
            "DELETE FROM memberships WHERE mailbox = $1 AND uid = $2",
            &[&mailbox.0, &uid],
        )
        .await?;
        self.exec(
            "INSERT INTO expunged (mailbox, uid, modseq) VALUES ($1, $2, $3)
             ON CONFLICT (mailbox, uid) DO UPDATE SET modseq = excluded.modseq",
            &[&mailbox.0, &uid, &sql_modseq(modseq)],
        )
        .await?;
        Ok(())
    }

    async fn memberships_of(&mut self, email: EmailId) -> Result<Vec<(MailboxId, Uid)>> {
        let rows = self
            .query(
                "SELECT mailbox, uid FROM memberships WHERE email = $1 ORDER BY mailbox",
                &[&email.0],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((MailboxId(get(r, 0)?), Uid(get_u32(r, 1)?))))
            .collect()
    }

    async fn email_at(&mut self, mailbox: MailboxId, uid: Uid) -> Result<Option<EmailId>> {
        let row = self
            .opt(
                "SELECT email FROM memberships WHERE mailbox = $1 AND uid = $2",
                &[&mailbox.0, &i64::from(uid.0)],
            )
            .await?;
        row.map(|r| get(&r, 0).map(EmailId)).transpose()
    }

    async fn put_blob(&mut self, data: &[u8]) -> Result<BlobHash> {
        put_blob(self, data).await
    }

    async fn threads_of_refs(
        &mut self,
        account: AccountId,
        ids: &[String],
    ) -> Result<Vec<ThreadId>> {
        if let Some(known) = &self.thread_refs {
            let cached: Option<Vec<Option<i64>>> = ids
                .iter()
                .map(|id| known.get(&(account.0, id.clone())).copied())
                .collect();
            if let Some(cached) = cached {
                return Ok(cached.into_iter().flatten().map(ThreadId).collect());
            }
        }
        let rows = self
            .query(
                "SELECT DISTINCT thread FROM thread_refs WHERE account = $1 AND message_id = ANY($2)",
                &[&account.0, &ids],
            )
            .await?;
        rows.iter().map(|r| get(r, 0).map(ThreadId)).collect()
    }

    async fn add_thread_refs(
        &mut self,
        account: AccountId,
        ids: &[String],
        thread: ThreadId,
    ) -> Result<()> {
        if let Some(known) = &mut self.thread_refs {
            for id in ids {
                known.insert((account.0, id.clone()), Some(thread.0));
            }
        }
        self.rows.thread_refs(account.0, ids, thread.0);
        Ok(())
    }

    async fn merge_thread(
        &mut self,
        from: ThreadId,
        into: ThreadId,
        modseq: ModSeq,
    ) -> Result<Vec<EmailId>> {
        // The merge rewrites references this transaction may have read ahead.
        self.thread_refs = None;
        let rows = self
            .query(
                "UPDATE emails SET thread = $2, modseq = $3 WHERE thread = $1 RETURNING id",
                &[&from.0, &into.0, &sql_modseq(modseq)],
            )
            .await?;
        self.exec(
            "UPDATE thread_refs SET thread = $2 WHERE thread = $1",
            &[&from.0, &into.0],
        )
        .await?;
        self.exec("DELETE FROM threads WHERE id = $1", &[&from.0])
            .await?;
        rows.iter().map(|r| get(r, 0).map(EmailId)).collect()
    }

    /// Sent without waiting, like [`WriteTx::insert_email`].
    async fn insert_thread(&mut self, account: AccountId) -> Result<ThreadId> {
        let thread = self.take_id("threads_id_seq").await?;
        self.rows.thread(thread, account.0);
        Ok(ThreadId(thread))
    }

    async fn thread_is_empty(&mut self, thread: ThreadId) -> Result<bool> {
        Ok(self
            .opt(
                "SELECT 1 FROM emails WHERE thread = $1 LIMIT 1",
                &[&thread.0],
            )
            .await?
            .is_none())
    }

    async fn delete_thread(&mut self, thread: ThreadId) -> Result<()> {
        self.exec("DELETE FROM threads WHERE id = $1", &[&thread.0])
            .await?;
        self.exec("DELETE FROM thread_refs WHERE thread = $1", &[&thread.0])
            .await?;
        Ok(())
    }

    /// Buffered ([`crate::buffer`]); the id comes from the sequence ([`Tx::take_id`]).
    async fn insert_email(&mut self, row: &EmailRow<'_>) -> Result<EmailId> {
        let email = self.take_id("emails_id_seq").await?;
        self.rows.email(crate::buffer::EmailCols {
            id: email,
            account: row.account.0,
            thread: row.thread.0,
            blob: row.blob.0.clone(),
            size: i64::from(row.size),
            received_at: row.received_at,
            keywords: row.keywords.clone(),
            seen: row.seen,
            modseq: sql_modseq(row.modseq),
            message_id: row.message_id.clone(),
            summary: row.summary_json.clone(),
        });
        if let Some(envelope) = &row.summary.imap_envelope {
            self.rows.envelope(email, envelope.clone());
        }
        Ok(EmailId(email))
    }

    async fn copy_email(&mut self, source: EmailId, modseq: ModSeq) -> Result<(EmailId, ThreadId)> {
        let row = self
            .one(
                "INSERT INTO emails (account, thread, blob, size, received_at, keywords, seen, modseq,
                                     kw_modseq, message_id, summary)
                 SELECT account, thread, blob, size, received_at, keywords, seen, $2, $2,
                        message_id, summary
                 FROM emails WHERE id = $1 RETURNING id, thread",
                &[&source.0, &sql_modseq(modseq)],
            )
            .await?;
        let copy = EmailId(get(&row, 0)?);
        let thread = ThreadId(get(&row, 1)?);
        self.exec(
            "INSERT INTO envelopes (email, data) SELECT $2, data FROM envelopes WHERE email = $1",
            &[&source.0, &copy.0],
        )
        .await?;
        Ok((copy, thread))
    }

    async fn email_exists(&mut self, account: AccountId, email: EmailId) -> Result<bool> {
        Ok(self
            .opt(
                "SELECT 1 FROM emails WHERE id = $1 AND account = $2",
                &[&email.0, &account.0],
            )
            .await?
            .is_some())
    }

    async fn email_keywords(
        &mut self,
        account: AccountId,
        email: EmailId,
    ) -> Result<Option<(String, ModSeq)>> {
        let row = self
            .opt(
                "SELECT keywords, kw_modseq FROM emails WHERE id = $1 AND account = $2",
                &[&email.0, &account.0],
            )
            .await?;
        row.map(|r| Ok((get::<String>(&r, 0)?, get_modseq(&r, 1)?)))
            .transpose()
    }

    async fn set_email_keywords(
        &mut self,
        email: EmailId,
        keywords: &str,
        seen: bool,
        modseq: ModSeq,
    ) -> Result<()> {
        self.exec(
            "UPDATE emails SET keywords = $2, seen = $3, modseq = $4, kw_modseq = $4 WHERE id = $1",
            &[&email.0, &keywords, &seen, &sql_modseq(modseq)],
        )
        .await?;
        Ok(())
    }

    async fn set_email_modseq(&mut self, email: EmailId, modseq: ModSeq) -> Result<()> {
        self.exec(
            "UPDATE emails SET modseq = $2 WHERE id = $1",
            &[&email.0, &sql_modseq(modseq)],
        )
        .await?;
        Ok(())
    }

    async fn delete_email(&mut self, email: EmailId) -> Result<Option<ThreadId>> {
        let row = self
            .opt(
                "DELETE FROM emails WHERE id = $1 RETURNING thread",
                &[&email.0],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let thread = ThreadId(get(&row, 0)?);
        self.exec("DELETE FROM envelopes WHERE email = $1", &[&email.0])
            .await?;
        Ok(Some(thread))
    }

    async fn item_version(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
    ) -> Result<Option<ModSeq>> {
        crate::items::item_version(self, account, collection, id).await
    }

    async fn put_item(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
        version: ModSeq,
        value: &str,
    ) -> Result<()> {
        crate::items::put_item(self, account, collection, id, version, value).await
    }

    async fn delete_item(&mut self, account: AccountId, collection: &str, id: &str) -> Result<()> {
        crate::items::delete_item(self, account, collection, id).await
    }

    async fn set_item_blobs(
        &mut self,
        account: AccountId,
        collection: &str,
        id: &str,
        blobs: &[BlobHash],
    ) -> Result<()> {
        crate::items::set_item_blobs(self, account, collection, id, blobs).await
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
        crate::items::log_item(self, account, collection, modseq, id, op, existed).await
    }

    async fn enqueue(&mut self, message: &NewQueued) -> Result<QueueId> {
        crate::queue::queue_enqueue(self, message).await
    }
}

// ---- the Store's email writes: the shared rules on this backend's transaction ----------

pub(crate) async fn email_append(
    tx: &mut Tx<'_>,
    account: AccountId,
    new: &[NewEmail],
) -> Result<Vec<Appended>> {
    domain::email_append(tx, account, new).await
}

pub(crate) async fn set_keywords(
    tx: &mut Tx<'_>,
    account: AccountId,
    updates: &[KeywordUpdate],
) -> Result<KeywordResult> {
    domain::set_keywords(tx, account, updates).await
}

pub(crate) async fn set_mailboxes(
    tx: &mut Tx<'_>,
    account: AccountId,
    updates: &[MembershipUpdate],
) -> Result<NewMemberships> {
    domain::set_mailboxes(tx, account, updates).await
}

pub(crate) async fn email_copy(
    tx: &mut Tx<'_>,
    account: AccountId,
    ids: &[EmailId],
    dest: MailboxId,
) -> Result<Vec<(EmailId, EmailId, Uid)>> {
    domain::email_copy(tx, account, ids, dest).await
}

pub(crate) async fn mailbox_expunge(
    tx: &mut Tx<'_>,
    account: AccountId,
    mailbox: MailboxId,
    uids: &[Uid],
) -> Result<ModSeq> {
    domain::mailbox_expunge(tx, account, mailbox, uids).await
}

pub(crate) async fn email_destroy(
    tx: &mut Tx<'_>,
    account: AccountId,
    ids: &[EmailId],
) -> Result<()> {
    domain::email_destroy(tx, account, ids).await
}
