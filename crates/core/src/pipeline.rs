//! The one delivery pipeline: every path that puts mail somewhere — SMTP (inbound and
//! submission), JMAP EmailSubmission, vacation replies — hands its message here.
//!
//! resolve → the message stage ([`DeliveryHook::inspect`], once per message: SPF/DKIM/DMARC
//! results as header fields, DKIM signing, the folder of each local copy such as Junk, or a
//! refusal of the whole message) → the recipient stage ([`DeliveryHook::check`]: quota and
//! other per-account refusals) → one [`Store::accept`] (local copies, the queue entry for remote recipients and the
//! caller's records, all or nothing) → after the commit, [`DeliveryHook::delivered`] (the
//! vacation responder) → a typed [`Outcome`] per recipient.
//!
//! Idempotence: a caller that may retry (JMAP submission) passes a record written with
//! `Expect::Absent` keyed by the message; a retry then finds it and stores nothing twice
//! ([`DeliveryError::AlreadyAccepted`]).

use crate::{Recipient, inbox_email, inbox_of, mailbox_with_role, resolve_recipient, summarize};
use bulwark_store::{
    Acceptance, AccountId, Appended, ItemWrite, NewQueued, QueueId, Role, Store, StoreError,
    now_unix,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
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

/// Where a message from an SMTP client came from: what the inbound checks judge it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client's IP address.
    pub ip: IpAddr,
    /// Its HELO/EHLO argument.
    pub helo: String,
    /// The SMTP AUTH identity; `None`: an unauthenticated client (the inbound MX).
    pub authenticated: Option<String>,
}

/// The mailbox a local copy is filed into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folder {
    /// The account's mailbox with this special-use role (INBOX if it has none).
    Role(Role),
    /// The account's mailbox of this name (Sieve `fileinto`); INBOX if there is none.
    Named(String),
    /// Where the earlier stages put it ([`Verdict::folder_for`]; Sieve `keep`).
    Default,
}

/// What a filter (Sieve) decided for one account's copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filing {
    /// The mailboxes of the copy (one email in each); empty: discarded (nothing stored,
    /// the recipient still counts as delivered).
    pub folders: Vec<Folder>,
    /// Keywords the copy gets (Sieve imap4flags).
    pub keywords: Vec<String>,
}

/// A message a hook wants sent once the delivery is committed (a Sieve redirect or
/// vacation reply), through the same pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The account on whose behalf it goes (for the log).
    pub account: AccountId,
    /// Envelope sender (empty: the null reverse-path, for automatic replies).
    pub sender: String,
    pub recipients: Vec<String>,
    pub raw: Vec<u8>,
    /// The received message passed on (a Sieve redirect), not a new one: it goes out with
    /// this server's ARC seal ([`ForwardSealer`]) when it came from an SMTP client.
    pub forward: bool,
}

/// Seals mail this server forwards (RFC 8617 ARC), so the next receiver can trust the
/// authentication results we saw (a mailing list or a redirect breaks SPF, often DKIM).
#[async_trait::async_trait]
pub trait ForwardSealer: Send + Sync + 'static {
    /// The header fields (CRLF-terminated) to put above `raw` when it is forwarded on
    /// behalf of `account`; `origin` and `sender` are those of the message as received.
    async fn seal(
        &self,
        raw: &[u8],
        origin: &Origin,
        sender: &str,
        account: AccountId,
    ) -> Option<String>;
}

/// What the message stage decided; each hook adds to it in turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Header fields (each with its CRLF) put at the top of the local copies only, in
    /// order (e.g. `Authentication-Results`).
    pub local_headers: Vec<String>,
    /// Header fields put at the top of every copy, local and relayed (e.g. `DKIM-Signature`).
    pub headers: Vec<String>,
    /// Refuse the message for every recipient (nothing is stored).
    pub refusal: Option<Refusal>,
    /// The folder of every local copy, unless [`Verdict::folders`] names one for the account.
    pub folder: Option<Folder>,
    /// The folder of one account's copy.
    pub folders: BTreeMap<AccountId, Folder>,
    /// A filter's decision for one account's copy (overrides the folder above; its
    /// [`Folder::Default`] is that folder).
    pub filings: BTreeMap<AccountId, Filing>,
    /// Refuse one account's copy (Sieve `reject`); the others are delivered.
    pub refusals: BTreeMap<AccountId, Refusal>,
    /// Sent after the commit, best effort (a failure is logged; the delivery stands).
    pub outgoing: Vec<Outgoing>,
}

impl Verdict {
    /// Where `account`'s copy goes (`None`: INBOX).
    pub fn folder_for(&self, account: AccountId) -> Option<&Folder> {
        self.folders.get(&account).or(self.folder.as_ref())
    }
}

/// A typed extension point of the pipeline. Every method has a do-nothing default.
#[async_trait::async_trait]
pub trait DeliveryHook: Send + Sync + 'static {
    /// Once per message, before anything is stored and before [`DeliveryHook::check`]:
    /// `local` are the accounts it is for, `remote` the recipients it is relayed to. May add
    /// header fields, choose folders or refuse the message (authentication checks, signing;
    /// later spam scoring and Sieve).
    async fn inspect(
        &self,
        _message: &Message,
        _local: &[AccountId],
        _remote: &[String],
        _verdict: &mut Verdict,
    ) {
    }
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
    /// The SMTP client it came from; `None`: made or replayed by this server (JMAP
    /// submission, vacation replies, bounces, spool replays).
    pub origin: Option<Origin>,
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
            origin: None,
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
    sealer: RwLock<Option<Arc<dyn ForwardSealer>>>,
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
            sealer: RwLock::new(None),
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

    /// Seals what [`Outgoing::forward`] marks (the trust stage's ARC sealer).
    pub fn set_forward_sealer(&self, sealer: Arc<dyn ForwardSealer>) {
        *self.sealer.write().unwrap_or_else(|e| e.into_inner()) = Some(sealer);
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
        let verdict = self.inspect(&hooks, &message, &resolved).await;
        if let Some(refusal) = &verdict.refusal {
            let outcomes = resolved
                .into_iter()
                .map(|(address, _)| (address, Outcome::Refused(refusal.clone())))
                .collect();
            return Ok(Delivered {
                outcomes,
                ..Delivered::default()
            });
        }
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
                    let mut refusal = verdict.refusals.get(&account).cloned();
                    for hook in hooks.iter().filter(|_| refusal.is_none()) {
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
            let local_raw = with_headers(
                &message.local_raw,
                verdict.local_headers.iter().chain(&verdict.headers),
            );
            let summary = summarize(&local_raw);
            for account in &local {
                let Some(filing) = verdict.filings.get(account) else {
                    let mailbox = self
                        .folder_of(*account, verdict.folder_for(*account))
                        .await?;
                    acceptance.local.push((
                        *account,
                        inbox_email(mailbox, &local_raw, &summary, message.received_at),
                    ));
                    continue;
                };
                let mut mailboxes = Vec::with_capacity(filing.folders.len());
                for folder in &filing.folders {
                    let folder = match folder {
                        Folder::Default => verdict.folder_for(*account),
                        other => Some(other),
                    };
                    let id = self.folder_of(*account, folder).await?;
                    if !mailboxes.contains(&id) {
                        mailboxes.push(id);
                    }
                }
                if mailboxes.is_empty() {
                    tracing::info!(%account, "copy discarded by the account's filter");
                    continue;
                }
                let mut email =
                    inbox_email(mailboxes[0], &local_raw, &summary, message.received_at);
                email.mailboxes = mailboxes;
                email.keywords = filing.keywords.clone();
                acceptance.local.push((*account, email));
            }
        }
        if !remote.is_empty() {
            let remote_raw = message
                .remote_raw
                .clone()
                .unwrap_or_else(|| message.local_raw.clone());
            acceptance.queue = Some(NewQueued {
                sender: message.sender.clone(),
                recipients: remote,
                raw: with_headers(&remote_raw, verdict.headers.iter()),
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
        if !verdict.outgoing.is_empty() {
            // After the commit: a redirect or reply of mail that was not stored would go
            // out twice when the sender retries.
            let pipeline = self.clone();
            let outgoing = verdict.outgoing.clone();
            let received = message
                .origin
                .clone()
                .map(|origin| (origin, message.sender.clone()));
            tokio::spawn(pipeline.send_outgoing(outgoing, received));
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

    /// The message stage: every hook's [`DeliveryHook::inspect`], in order.
    async fn inspect(
        &self,
        hooks: &[Arc<dyn DeliveryHook>],
        message: &Message,
        resolved: &[(String, Recipient)],
    ) -> Verdict {
        let mut verdict = Verdict::default();
        if hooks.is_empty() {
            return verdict;
        }
        let mut local: Vec<AccountId> = resolved
            .iter()
            .filter_map(|(_, r)| match r {
                Recipient::Local(a) => Some(*a),
                _ => None,
            })
            .collect();
        local.sort();
        local.dedup();
        let remote: Vec<String> = resolved
            .iter()
            .filter(|(_, r)| *r == Recipient::Remote)
            .map(|(a, _)| a.clone())
            .collect();
        for hook in hooks {
            hook.inspect(message, &local, &remote, &mut verdict).await;
            if verdict.refusal.is_some() {
                break;
            }
        }
        verdict
    }

    /// Sends what the hooks asked for after a commit (each through [`Pipeline::deliver`]).
    /// A named, boxed future: `deliver` spawns it, so its type must not depend on itself.
    fn send_outgoing(
        self: Arc<Self>,
        outgoing: Vec<Outgoing>,
        received: Option<(Origin, String)>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let sealer = self
                .sealer
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for o in outgoing {
                let mut raw = o.raw;
                if o.forward
                    && let (Some(sealer), Some((origin, sender))) = (&sealer, &received)
                    && let Some(set) = sealer.seal(&raw, origin, sender, o.account).await
                {
                    raw = [set.into_bytes(), raw].concat();
                }
                let message = Message::new(&o.sender, o.recipients.clone(), Arc::new(raw));
                let account = o.account;
                match self.deliver(message).await {
                    Ok(d) => {
                        for (rcpt, why) in d.refused() {
                            tracing::warn!(%account, rcpt, reason = why.reason(), "filter's message refused");
                        }
                    }
                    Err(e) => tracing::warn!(%account, error = %e, "filter's message not sent"),
                }
            }
        })
    }

    /// The mailbox for `account`'s copy: the folder's, else (none chosen, or the account
    /// has no such mailbox any more) INBOX.
    async fn folder_of(
        &self,
        account: AccountId,
        folder: Option<&Folder>,
    ) -> Result<bulwark_store::MailboxId, StoreError> {
        match folder {
            Some(Folder::Role(role)) if *role != Role::Inbox => {
                match mailbox_with_role(self.store.as_ref(), account, *role).await {
                    Ok(id) => Ok(id),
                    Err(StoreError::NotFound(_)) => {
                        tracing::info!(%account, role = role.as_jmap(), "no such mailbox; filed into INBOX");
                        inbox_of(self.store.as_ref(), account).await
                    }
                    Err(e) => Err(e),
                }
            }
            Some(Folder::Named(name)) => {
                // RFC 5228 §4.1: names as the user sees them (`Work/Clients`), INBOX in any case.
                let found = self
                    .store
                    .mailbox_list(account)
                    .await?
                    .into_iter()
                    .find(|m| {
                        m.name == *name || (m.name == "INBOX" && name.eq_ignore_ascii_case("INBOX"))
                    });
                match found {
                    Some(m) => Ok(m.id),
                    None => {
                        tracing::info!(%account, mailbox = %name, "no such mailbox; filed into INBOX");
                        inbox_of(self.store.as_ref(), account).await
                    }
                }
            }
            _ => inbox_of(self.store.as_ref(), account).await,
        }
    }
}

/// `raw` with `headers` at its top (no copy when there are none), below a leading
/// `Return-Path` field: RFC 5321 §4.4 keeps that one first in a delivered message.
fn with_headers<'a>(raw: &Arc<Vec<u8>>, headers: impl Iterator<Item = &'a String>) -> Arc<Vec<u8>> {
    let mut head = String::new();
    for h in headers {
        head.push_str(h);
    }
    if head.is_empty() {
        return raw.clone();
    }
    let at = return_path_len(raw);
    let mut out = Vec::with_capacity(head.len() + raw.len());
    out.extend_from_slice(&raw[..at]);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&raw[at..]);
    Arc::new(out)
}

/// Length of a leading `Return-Path` field with its folded lines (0 without one).
fn return_path_len(raw: &[u8]) -> usize {
    const NAME: &[u8] = b"return-path:";
    if raw.len() < NAME.len() || !raw[..NAME.len()].eq_ignore_ascii_case(NAME) {
        return 0;
    }
    let mut end = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let folded = end > 0 && line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if end > 0 && !folded {
            break;
        }
        end += line.len();
    }
    end
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

    /// A message-stage hook: marks every copy, files bob's into Junk, refuses "spam".
    struct Stage(AccountId);
    #[async_trait::async_trait]
    impl DeliveryHook for Stage {
        async fn inspect(&self, m: &Message, local: &[AccountId], _r: &[String], v: &mut Verdict) {
            if m.sender == "spam@client.test" {
                v.refusal = Some(Refusal::Permanent("550 5.7.1 no".into()));
                return;
            }
            assert!(local.contains(&self.0));
            v.local_headers.push("X-Local: 1\r\n".into());
            v.headers.push("X-All: 1\r\n".into());
            v.folders.insert(self.0, Folder::Role(Role::Junk));
        }
    }

    #[tokio::test]
    async fn the_message_stage_adds_headers_files_into_junk_or_refuses() {
        let (_dir, store, alice, bob) = setup().await;
        let p = Pipeline::new(store.clone(), Arc::new(Notify::new()), 3600);
        p.add_hook(Arc::new(Stage(bob)));
        let raw =
            Arc::new(b"Return-Path: <x@client.test>\r\nSubject: hi\r\n\r\nhello\r\n".to_vec());
        let m = Message::new(
            "x@client.test",
            vec![
                "alice@example.test".into(),
                "bob@example.test".into(),
                "carol@remote.test".into(),
            ],
            raw.clone(),
        );
        let d = p.deliver(m).await.expect("deliver");
        assert_eq!(d.appended.len(), 2);
        let junk = mailbox_with_role(store.as_ref(), bob, Role::Junk)
            .await
            .expect("junk");
        let bobs = store.email_list(bob).await.expect("bob");
        assert_eq!(bobs[0].mailboxes[0].0, junk);
        let alices = store.email_list(alice).await.expect("alice");
        let inbox = inbox_of(store.as_ref(), alice).await.expect("inbox");
        assert_eq!(alices[0].mailboxes[0].0, inbox);
        let stored = store
            .blob_get(&alices[0].blob)
            .await
            .expect("blob")
            .expect("raw");
        assert!(
            stored.starts_with(
                b"Return-Path: <x@client.test>\r\nX-Local: 1\r\nX-All: 1\r\nSubject: hi"
            )
        );
        let q = store.queue_list().await.expect("queue");
        let queued = store
            .blob_get(&q[0].blob)
            .await
            .expect("blob")
            .expect("raw");
        assert!(
            queued.starts_with(b"Return-Path: <x@client.test>\r\nX-All: 1\r\nSubject: hi"),
            "remote copy: no local fields"
        );

        let m = Message::new("spam@client.test", vec!["alice@example.test".into()], raw);
        let d = p.deliver(m).await.expect("deliver");
        assert!(d.appended.is_empty());
        assert!(matches!(&d.outcomes[0].1, Outcome::Refused(r) if r.is_permanent()));
        assert_eq!(store.email_list(alice).await.expect("alice").len(), 1);
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
