//! [`OutageStore`]: a [`Store`] wrapper that can be switched "down", when every call fails
//! with [`StoreError::Unavailable`] — for tests of degraded modes in every crate (SMTP
//! spooling, IMAP `NO [UNAVAILABLE]`, JMAP 503) without stopping a real database.

use crate::*;
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::broadcast;

/// Wraps a store; while [`OutageStore::set_down`]`(true)`, every call is `Unavailable`.
pub struct OutageStore {
    inner: Arc<dyn Store>,
    down: AtomicBool,
    /// Calls refused while down.
    refused: AtomicU64,
}

impl OutageStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<OutageStore> {
        Arc::new(OutageStore {
            inner,
            down: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        })
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// How many calls were refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    fn check(&self) -> Result<()> {
        if self.is_down() {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable(
                "the store is switched off (test outage)".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for OutageStore {
    fn subscribe(&self, account: AccountId) -> broadcast::Receiver<StateChange> {
        self.inner.subscribe(account)
    }
    async fn domain_add(&self, name: &str) -> Result<()> {
        self.check()?;
        self.inner.domain_add(name).await
    }
    async fn domain_delete(&self, name: &str) -> Result<()> {
        self.check()?;
        self.inner.domain_delete(name).await
    }
    async fn domain_list(&self) -> Result<Vec<String>> {
        self.check()?;
        self.inner.domain_list().await
    }
    async fn domain_exists(&self, name: &str) -> Result<bool> {
        self.check()?;
        self.inner.domain_exists(name).await
    }
    async fn account_create(&self, new: NewAccount) -> Result<Account> {
        self.check()?;
        self.inner.account_create(new).await
    }
    async fn account_get(&self, id: AccountId) -> Result<Option<Account>> {
        self.check()?;
        self.inner.account_get(id).await
    }
    async fn account_by_address(&self, address: &str) -> Result<Option<Account>> {
        self.check()?;
        self.inner.account_by_address(address).await
    }
    async fn account_list(&self) -> Result<Vec<Account>> {
        self.check()?;
        self.inner.account_list().await
    }
    async fn account_set_password(&self, id: AccountId, password_hash: &str) -> Result<()> {
        self.check()?;
        self.inner.account_set_password(id, password_hash).await
    }
    async fn account_set_display_name(&self, id: AccountId, name: &str) -> Result<()> {
        self.check()?;
        self.inner.account_set_display_name(id, name).await
    }
    async fn account_delete(&self, id: AccountId) -> Result<()> {
        self.check()?;
        self.inner.account_delete(id).await
    }
    async fn alias_add(&self, alias: &str, account: AccountId) -> Result<()> {
        self.check()?;
        self.inner.alias_add(alias, account).await
    }
    async fn alias_delete(&self, alias: &str) -> Result<()> {
        self.check()?;
        self.inner.alias_delete(alias).await
    }
    async fn alias_list(&self) -> Result<Vec<(String, AccountId)>> {
        self.check()?;
        self.inner.alias_list().await
    }
    async fn resolve_address(&self, address: &str) -> Result<Option<AccountId>> {
        self.check()?;
        self.inner.resolve_address(address).await
    }
    async fn account_addresses(&self, id: AccountId) -> Result<Vec<String>> {
        self.check()?;
        self.inner.account_addresses(id).await
    }
    async fn app_password_add(
        &self,
        account: AccountId,
        name: &str,
        hash: &str,
    ) -> Result<AppPassword> {
        self.check()?;
        self.inner.app_password_add(account, name, hash).await
    }
    async fn app_password_list(&self, account: AccountId) -> Result<Vec<AppPassword>> {
        self.check()?;
        self.inner.app_password_list(account).await
    }
    async fn app_password_delete(&self, account: AccountId, id: i64) -> Result<()> {
        self.check()?;
        self.inner.app_password_delete(account, id).await
    }
    async fn setting_get(&self, account: AccountId, key: &str) -> Result<Option<String>> {
        self.check()?;
        self.inner.setting_get(account, key).await
    }
    async fn setting_set(&self, account: AccountId, key: &str, value: Option<&str>) -> Result<()> {
        self.check()?;
        self.inner.setting_set(account, key, value).await
    }
    async fn global_setting_get(&self, key: &str) -> Result<Option<String>> {
        self.check()?;
        self.inner.global_setting_get(key).await
    }
    async fn global_setting_set(&self, key: &str, value: Option<&str>) -> Result<()> {
        self.check()?;
        self.inner.global_setting_set(key, value).await
    }
    async fn global_setting_replace(
        &self,
        key: &str,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool> {
        self.check()?;
        self.inner
            .global_setting_replace(key, expected, value)
            .await
    }
    async fn mailbox_list(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.check()?;
        self.inner.mailbox_list(account).await
    }
    async fn mailbox_get(&self, account: AccountId, id: MailboxId) -> Result<Option<Mailbox>> {
        self.check()?;
        self.inner.mailbox_get(account, id).await
    }
    async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
        role: Option<Role>,
    ) -> Result<Mailbox> {
        self.check()?;
        self.inner.mailbox_create(account, name, role).await
    }
    async fn mailbox_rename(
        &self,
        account: AccountId,
        id: MailboxId,
        new_name: &str,
    ) -> Result<()> {
        self.check()?;
        self.inner.mailbox_rename(account, id, new_name).await
    }
    async fn mailbox_delete(&self, account: AccountId, id: MailboxId) -> Result<()> {
        self.check()?;
        self.inner.mailbox_delete(account, id).await
    }
    async fn mailbox_set_subscribed(
        &self,
        account: AccountId,
        id: MailboxId,
        subscribed: bool,
    ) -> Result<()> {
        self.check()?;
        self.inner
            .mailbox_set_subscribed(account, id, subscribed)
            .await
    }
    async fn mailbox_set_role(
        &self,
        account: AccountId,
        id: MailboxId,
        role: Option<Role>,
    ) -> Result<()> {
        self.check()?;
        self.inner.mailbox_set_role(account, id, role).await
    }
    async fn mailbox_status(&self, account: AccountId, id: MailboxId) -> Result<MailboxStatus> {
        self.check()?;
        self.inner.mailbox_status(account, id).await
    }
    async fn email_append(&self, account: AccountId, new: Vec<NewEmail>) -> Result<Vec<Appended>> {
        self.check()?;
        self.inner.email_append(account, new).await
    }
    async fn deliver(&self, deliveries: Vec<(AccountId, NewEmail)>) -> Result<Vec<Appended>> {
        self.check()?;
        self.inner.deliver(deliveries).await
    }
    async fn mailbox_messages(
        &self,
        account: AccountId,
        mailbox: MailboxId,
    ) -> Result<Vec<MessageMeta>> {
        self.check()?;
        self.inner.mailbox_messages(account, mailbox).await
    }
    async fn expunged_since(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<Vec<Uid>> {
        self.check()?;
        self.inner.expunged_since(account, mailbox, since).await
    }
    async fn email_get(&self, account: AccountId, ids: &[EmailId]) -> Result<Vec<Email>> {
        self.check()?;
        self.inner.email_get(account, ids).await
    }
    async fn mailbox_delta(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> Result<MailboxDelta> {
        self.check()?;
        self.inner.mailbox_delta(account, mailbox, since).await
    }
    async fn message_summaries(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, EmailSummary)>> {
        self.check()?;
        self.inner.message_summaries(account, mailbox, uids).await
    }
    async fn message_search_headers(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, SearchHeaders)>> {
        self.check()?;
        self.inner
            .message_search_headers(account, mailbox, uids)
            .await
    }
    async fn message_envelopes(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<(Uid, Option<Vec<u8>>)>> {
        self.check()?;
        self.inner.message_envelopes(account, mailbox, uids).await
    }
    async fn email_list(&self, account: AccountId) -> Result<Vec<Email>> {
        self.check()?;
        self.inner.email_list(account).await
    }
    async fn email_query_page(
        &self,
        account: AccountId,
        query: &EmailPageQuery,
    ) -> Result<EmailPage> {
        self.check()?;
        self.inner.email_query_page(account, query).await
    }
    async fn blob_get(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>> {
        self.check()?;
        self.inner.blob_get(hash).await
    }
    async fn blob_get_many(&self, hashes: &[BlobHash]) -> Result<Vec<Option<Vec<u8>>>> {
        self.check()?;
        self.inner.blob_get_many(hashes).await
    }
    async fn blob_put(&self, account: AccountId, data: &[u8]) -> Result<BlobHash> {
        self.check()?;
        self.inner.blob_put(account, data).await
    }
    async fn accept(&self, acceptance: Acceptance) -> Result<Accepted> {
        self.check()?;
        self.inner.accept(acceptance).await
    }
    async fn blob_get_owned(
        &self,
        account: AccountId,
        hashes: &[BlobHash],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        self.check()?;
        self.inner.blob_get_owned(account, hashes).await
    }
    async fn blob_collect(&self, upload_before: i64) -> Result<(u64, u64)> {
        self.check()?;
        self.inner.blob_collect(upload_before).await
    }
    async fn collection_get(
        &self,
        account: AccountId,
        collection: &str,
        ids: Option<&[String]>,
    ) -> Result<Vec<CollectionItem>> {
        self.check()?;
        self.inner.collection_get(account, collection, ids).await
    }
    async fn collection_write(&self, account: AccountId, writes: Vec<ItemWrite>) -> Result<ModSeq> {
        self.check()?;
        self.inner.collection_write(account, writes).await
    }
    async fn collection_changes(
        &self,
        account: AccountId,
        collection: &str,
        since: ModSeq,
        max: usize,
    ) -> Result<CollectionChanges> {
        self.check()?;
        self.inner
            .collection_changes(account, collection, since, max)
            .await
    }
    async fn collection_state(&self, account: AccountId, collection: &str) -> Result<ModSeq> {
        self.check()?;
        self.inner.collection_state(account, collection).await
    }
    async fn email_set_keywords(
        &self,
        account: AccountId,
        updates: Vec<KeywordUpdate>,
    ) -> Result<KeywordResult> {
        self.check()?;
        self.inner.email_set_keywords(account, updates).await
    }
    async fn email_set_mailboxes(
        &self,
        account: AccountId,
        updates: Vec<MembershipUpdate>,
    ) -> Result<Vec<(EmailId, Vec<(MailboxId, Uid)>)>> {
        self.check()?;
        self.inner.email_set_mailboxes(account, updates).await
    }
    async fn email_copy(
        &self,
        account: AccountId,
        ids: &[EmailId],
        dest: MailboxId,
    ) -> Result<Vec<(EmailId, EmailId, Uid)>> {
        self.check()?;
        self.inner.email_copy(account, ids, dest).await
    }
    async fn mailbox_expunge(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<ModSeq> {
        self.check()?;
        self.inner.mailbox_expunge(account, mailbox, uids).await
    }
    async fn email_destroy(&self, account: AccountId, ids: &[EmailId]) -> Result<()> {
        self.check()?;
        self.inner.email_destroy(account, ids).await
    }
    async fn account_modseq(&self, account: AccountId) -> Result<ModSeq> {
        self.check()?;
        self.inner.account_modseq(account).await
    }
    async fn changes_since(
        &self,
        account: AccountId,
        since: ModSeq,
        max: usize,
    ) -> Result<ChangeSet> {
        self.check()?;
        self.inner.changes_since(account, since, max).await
    }
    async fn queue_enqueue(&self, msg: NewQueued) -> Result<QueueId> {
        self.check()?;
        self.inner.queue_enqueue(msg).await
    }
    async fn queue_list(&self) -> Result<Vec<Queued>> {
        self.check()?;
        self.inner.queue_list().await
    }
    async fn queue_get(&self, id: QueueId) -> Result<Option<Queued>> {
        self.check()?;
        self.inner.queue_get(id).await
    }
    async fn queue_lease_due(
        &self,
        now: i64,
        node: &str,
        lease_secs: i64,
        max: usize,
    ) -> Result<Vec<Queued>> {
        self.check()?;
        self.inner.queue_lease_due(now, node, lease_secs, max).await
    }
    async fn queue_update(&self, entry: &Queued) -> Result<()> {
        self.check()?;
        self.inner.queue_update(entry).await
    }
    async fn queue_retry_now(&self, id: QueueId) -> Result<()> {
        self.check()?;
        self.inner.queue_retry_now(id).await
    }
    async fn queue_delete(&self, id: QueueId) -> Result<()> {
        self.check()?;
        self.inner.queue_delete(id).await
    }
}
