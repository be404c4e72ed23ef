//! The one delivery pipeline: every path that puts mail somewhere — SMTP (inbound and
//! submission), JMAP EmailSubmission, vacation replies — hands its message here.
//!
//! resolve → hooks ([`DeliveryHook::check`]: filters, spam scoring, quota; none refuse
//! today) → one [`Store::accept`] (local copies, the queue entry for remote recipients and the
//! caller's records, all or nothing) → after the commit, [`DeliveryHook::delivered`] (the
//! vacation responder) → a typed [`Outcome`] per recipient.
//!
//! Idempotence: a caller that may retry (JMAP submission) passes a record written with
//! `Expect::Absent` keyed by the message; a retry then finds it and stores nothing twice
//! ([`DeliveryError::AlreadyAccepted`]).

use crate::{Recipient, inbox_email, inbox_of, resolve_recipient, summarize};
use bulwark_store::{
    Acceptance, AccountId, Appended, ItemWrite, NewQueued, QueueId, Store, StoreError, now_unix,
};
use std::sync::{Arc, RwLock};
use tokio::sync::Notify;

/// Why a recipient was refused, and whether trying again later may help. Each protocol
/// maps it to its wire form in one place (SMTP `4xx`/`5xx`, JMAP SetError, DSN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Try again later (`4xx`): the store is unavailable, a lease was lost, …
    Temporary(String),
    /// Do not try again (`5xx`): no such user, over quota, refused by a filter or as spam.
    Permanent(String),
}

impl Refusal {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Refusal::Permanent(_))
    }
    pub fn reason(&self) -> &str {
        match self {
            Refusal::Temporary(r) | Refusal::Permanent(r) => r,
        }
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored in this account's INBOX.
    Delivered(AccountId),
    /// In the durable outbound queue (a remote recipient).
    Queued,
    Refused(Refusal),
}

/// A typed extension point of the pipeline. Both methods have do-nothing defaults.
#[async_trait::async_trait]
pub trait DeliveryHook: Send + Sync + 'static {
    /// Before anything is stored, per local recipient: `Some` refuses the recipient.
    async fn check(&self, _account: AccountId, _message: &Message) -> Option<Refusal> {
        None
    }
    /// After the commit, per local copy (errors are the hook's to log; the message is
    /// delivered whatever happens here).
    async fn delivered(&self, _pipeline: &Arc<Pipeline>, _appended: &Appended, _message: &Message) {
    }
}

/// One message to deliver.
#[derive(Debug, Clone)]
pub struct Message {
    /// Envelope sender (empty: the null reverse-path).
    pub sender: String,
    /// Envelope recipients as given; resolved by [`Pipeline::deliver`] unless
    /// [`Message::resolved`] is set.
    pub recipients: Vec<String>,
    /// Recipients the caller already resolved (SMTP does so at RCPT time): `(address, what
    /// it is)`. When non-empty, `recipients` is ignored.
    pub resolved: Vec<(String, Recipient)>,
    /// The bytes stored for local recipients.
    pub local_raw: Arc<Vec<u8>>,
    /// The bytes relayed to remote recipients (e.g. with other trace fields); `None`: the
    /// same as `local_raw`.
    pub remote_raw: Option<Arc<Vec<u8>>>,
    pub received_at: i64,
    /// How long the queue entry for remote recipients is retried (from `received_at`);
    /// `None`: the pipeline's lifetime. Bounces have their own.
    pub queue_lifetime_secs: Option<i64>,
    /// Records committed together with the message (see the module docs).
    pub records: Vec<(AccountId, ItemWrite)>,
}

impl Message {
    pub fn new(sender: &str, recipients: Vec<String>, raw: Arc<Vec<u8>>) -> Message {
        Message {
            sender: sender.to_string(),
            recipients,
            resolved: Vec::new(),
            local_raw: raw,
            remote_raw: None,
            received_at: now_unix(),
            queue_lifetime_secs: None,
            records: Vec::new(),
        }
    }
}

/// Why nothing was stored.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    /// The records say this message was accepted before (a retry): nothing was stored now.
    #[error("this message was accepted before")]
    AlreadyAccepted,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What [`Pipeline::deliver`] did: one outcome per recipient, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivered {
    pub outcomes: Vec<(String, Outcome)>,
    pub appended: Vec<Appended>,
    /// The queue entry made for the remote recipients, if any.
    pub queued: Option<QueueId>,
}

impl Delivered {
    /// Recipients that were refused.
    pub fn refused(&self) -> impl Iterator<Item = (&str, &Refusal)> {
        self.outcomes.iter().filter_map(|(r, o)| match o {
            Outcome::Refused(why) => Some((r.as_str(), why)),
            _ => None,
        })
    }
}

/// The pipeline of one node, shared by every protocol.
pub struct Pipeline {
    store: Arc<dyn Store>,
    queue_wakeup: Arc<Notify>,
    queue_lifetime_secs: i64,
    hooks: RwLock<Vec<Arc<dyn DeliveryHook>>>,
}

impl Pipeline {
    pub fn new(
        store: Arc<dyn Store>,
        queue_wakeup: Arc<Notify>,
        queue_lifetime_secs: i64,
    ) -> Arc<Pipeline> {
        Arc::new(Pipeline {
            store,
            queue_wakeup,
            queue_lifetime_secs,
            hooks: RwLock::new(Vec::new()),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Notified whenever a delivery queued something (the queue worker waits on it).
    pub fn queue_wakeup(&self) -> &Arc<Notify> {
        &self.queue_wakeup
    }

    /// Adds a hook (run in the order added).
    pub fn add_hook(&self, hook: Arc<dyn DeliveryHook>) {
        self.hooks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    fn hooks(&self) -> Vec<Arc<dyn DeliveryHook>> {
        self.hooks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Delivers `message`: durable on `Ok` (local copies, queue entry and records
    /// committed together). Unknown users of our domains are refused permanently; the
    /// others per the hooks. `Err` means nothing was stored.
    pub async fn deliver(self: &Arc<Self>, message: Message) -> Result<Delivered, DeliveryError> {
        let resolved = if message.resolved.is_empty() {
            let mut out = Vec::with_capacity(message.recipients.len());
            for r in &message.recipients {
                out.push((r.clone(), resolve_recipient(self.store.as_ref(), r).await?));
            }
            out
        } else {
            message.resolved.clone()
        };
        let hooks = self.hooks();
        let mut outcomes: Vec<(String, Outcome)> = Vec::with_capacity(resolved.len());
        let mut local: Vec<AccountId> = Vec::new();
        let mut remote: Vec<String> = Vec::new();
        for (address, recipient) in resolved {
            let outcome = match recipient {
                Recipient::Remote => {
                    remote.push(address.clone());
                    Outcome::Queued
                }
                Recipient::UnknownUser => Outcome::Refused(Refusal::Permanent(format!(
                    "no mailbox here by the name {address}"
                ))),
                Recipient::Local(account) => {
                    let mut refusal = None;
                    for hook in &hooks {
                        if let Some(r) = hook.check(account, &message).await {
                            refusal = Some(r);
                            break;
                        }
                    }
                    match refusal {
                        Some(r) => Outcome::Refused(r),
                        None => {
                            if !local.contains(&account) {
                                local.push(account);
                            }
                            Outcome::Delivered(account)
                        }
                    }
                }
            };
            outcomes.push((address, outcome));
        }
        local.sort();
        let mut acceptance = Acceptance {
            items: message.records.clone(),
            ..Acceptance::default()
        };
        if !local.is_empty() {
            let summary = summarize(&message.local_raw);
            for account in &local {
                let inbox = inbox_of(self.store.as_ref(), *account).await?;
                acceptance.local.push((
                    *account,
                    inbox_email(inbox, &message.local_raw, &summary, message.received_at),
                ));
            }
        }
        if !remote.is_empty() {
            acceptance.queue = Some(NewQueued {
                sender: message.sender.clone(),
                recipients: remote,
                raw: message
                    .remote_raw
                    .clone()
                    .unwrap_or_else(|| message.local_raw.clone()),
                expires_at: message.received_at.saturating_add(
                    message
                        .queue_lifetime_secs
                        .unwrap_or(self.queue_lifetime_secs),
                ),
            });
        }
        let nothing = acceptance.local.is_empty()
            && acceptance.queue.is_none()
            && acceptance.items.is_empty();
        let accepted = if nothing {
            Default::default()
        } else {
            match self.store.accept(acceptance).await {
                Ok(a) => a,
                Err(StoreError::Conflict(_)) if !message.records.is_empty() => {
                    return Err(DeliveryError::AlreadyAccepted);
                }
                Err(e) => return Err(e.into()),
            }
        };
        if accepted.queued.is_some() {
            self.queue_wakeup.notify_one();
        }
        if !hooks.is_empty() && !accepted.appended.is_empty() {
            // After the commit and off the caller's path (SMTP answers 250 meanwhile).
            let pipeline = self.clone();
            let appended = accepted.appended.clone();
            tokio::spawn(async move {
                for a in &appended {
                    for hook in &hooks {
                        hook.delivered(&pipeline, a, &message).await;
                    }
                }
            });
        }
        Ok(Delivered {
            outcomes,
            appended: accepted.appended,
            queued: accepted.queued,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::sqlite::SqliteStore;
    use bulwark_store::{Expect, NewAccount};

    struct RefuseBob(AccountId);
    #[async_trait::async_trait]
    impl DeliveryHook for RefuseBob {
        async fn check(&self, account: AccountId, _m: &Message) -> Option<Refusal> {
            (account == self.0).then(|| Refusal::Permanent("over quota".into()))
        }
    }

    async fn setup() -> (tempfile::TempDir, Arc<SqliteStore>, AccountId, AccountId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        store.domain_add("example.test").await.expect("domain");
        let mk = |a: &str| NewAccount {
            address: a.into(),
            display_name: a.into(),
            password_hash: "x".into(),
        };
        let alice = store
            .account_create(mk("alice@example.test"))
            .await
            .expect("a")
            .id;
        let bob = store
            .account_create(mk("bob@example.test"))
            .await
            .expect("b")
            .id;
        (dir, store, alice, bob)
    }

    #[tokio::test]
    async fn outcomes_per_recipient_and_one_commit() {
        let (_dir, store, alice, bob) = setup().await;
        let p = Pipeline::new(store.clone(), Arc::new(Notify::new()), 3600);
        p.add_hook(Arc::new(RefuseBob(bob)));
        let raw = Arc::new(b"Subject: hi\r\n\r\nhello\r\n".to_vec());
        let m = Message::new(
            "x@client.test",
            vec![
                "alice+tag@example.test".into(),
                "ALICE@example.test".into(),
                "bob@example.test".into(),
                "nobody@example.test".into(),
                "carol@remote.test".into(),
            ],
            raw,
        );
        let d = p.deliver(m).await.expect("deliver");
        let o: Vec<&Outcome> = d.outcomes.iter().map(|(_, o)| o).collect();
        assert_eq!(o[0], &Outcome::Delivered(alice));
        assert_eq!(o[1], &Outcome::Delivered(alice));
        assert_eq!(
            o[2],
            &Outcome::Refused(Refusal::Permanent("over quota".into()))
        );
        assert!(matches!(o[3], Outcome::Refused(r) if r.is_permanent()));
        assert_eq!(o[4], &Outcome::Queued);
        assert_eq!(
            d.appended.len(),
            1,
            "one copy for alice however often she is named"
        );
        assert_eq!(store.email_list(alice).await.expect("alice").len(), 1);
        assert!(store.email_list(bob).await.expect("bob").is_empty());
        let q = store.queue_list().await.expect("queue");
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].recipients.len(), 1);
        assert_eq!(q[0].recipients[0].address, "carol@remote.test");
    }

    #[tokio::test]
    async fn a_retry_with_the_same_record_stores_nothing_twice() {
        let (_dir, store, alice, bob) = setup().await;
        let p = Pipeline::new(store.clone(), Arc::new(Notify::new()), 3600);
        let mut m = Message::new(
            "alice@example.test",
            vec!["bob@example.test".into(), "carol@remote.test".into()],
            Arc::new(b"Subject: once\r\n\r\nonce\r\n".to_vec()),
        );
        m.records = vec![(
            alice,
            ItemWrite::put("submissions", "S1", Expect::Absent, "{}".into()),
        )];
        p.deliver(m.clone()).await.expect("first");
        assert_eq!(p.deliver(m).await, Err(DeliveryError::AlreadyAccepted));
        assert_eq!(store.email_list(bob).await.expect("bob").len(), 1);
        assert_eq!(store.queue_list().await.expect("queue").len(), 1);
    }
}
