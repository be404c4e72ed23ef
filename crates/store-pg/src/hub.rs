//! Change fan-out between nodes.
//!
//! Every write transaction sends
//! `NOTIFY bulwark_changes, '<account>:<modseq>:<mailboxes>:<collections>:<origin>'`
//! (PostgreSQL delivers it at COMMIT, so a notification never announces an uncommitted
//! change). The node that made the change publishes it locally right after COMMIT, before
//! answering its caller; every node's listener (one dedicated connection doing `LISTEN`)
//! publishes the changes of *other* origins. So each change reaches each local subscriber once.
//!
//! If the listener's connection breaks, it reconnects with backoff and then publishes a
//! catch-up change (all mailboxes) for every subscribed account whose modseq moved while it
//! was deaf, so an IMAP IDLE never misses an update for good.

use crate::pool::{Notes, Pool, get, get_modseq, pg_err, sql_modseq};
use bulwark_store::{AccountId, MailChanged, MailboxId, ModSeq, Result, StateChange, StoreError};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

/// The channel every node listens on.
pub(crate) const CHANNEL: &str = "bulwark_changes";
/// Capacity of each account's change broadcast channel.
const SUBSCRIBE_CAPACITY: usize = 256;
/// Of the channel of every account's changes (a receiver that lags drops its caches).
const SUBSCRIBE_ALL_CAPACITY: usize = 4096;
/// NOTIFY payloads must stay below 8000 bytes; longer mailbox lists are sent as `*`.
const MAX_PAYLOAD: usize = 7000;
/// Mailbox list meaning "every mailbox of the account"; collection list meaning "any
/// collection".
const ALL_MAILBOXES: &str = "*";
/// Backoff between listener reconnect attempts.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Tries of the catch-up after a reconnect before the listener goes back to listening.
const CATCH_UP_ATTEMPTS: u32 = 5;
/// Notifications buffered between the connection task and the listener loop.
const NOTIFY_BUFFER: usize = 1024;

/// One decoded notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    pub(crate) account: AccountId,
    pub(crate) modseq: ModSeq,
    /// `None` means every mailbox of the account.
    pub(crate) mailboxes: Option<Vec<MailboxId>>,
    /// `None` means any collection.
    pub(crate) collections: Option<Vec<String>>,
    /// `None` means unknown (a payload of a node before per-type states).
    pub(crate) mail: Option<MailChanged>,
    pub(crate) origin: String,
}

/// The mail-kind field of a payload: `E`mail, `M`ailbox, `T`hread, `D`elivery.
fn encode_mail(mail: &MailChanged) -> String {
    [
        (mail.email, 'E'),
        (mail.mailbox, 'M'),
        (mail.thread, 'T'),
        (mail.delivery, 'D'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect()
}

fn decode_mail(field: &str) -> Option<MailChanged> {
    if !field.bytes().all(|b| b"EMTD".contains(&b)) {
        return None;
    }
    Some(MailChanged {
        email: field.contains('E'),
        mailbox: field.contains('M'),
        thread: field.contains('T'),
        delivery: field.contains('D'),
    })
}

pub(crate) fn encode(
    account: AccountId,
    modseq: ModSeq,
    mailboxes: &BTreeSet<MailboxId>,
    collections: &BTreeSet<String>,
    mail: &MailChanged,
    origin: &str,
) -> String {
    let mail = encode_mail(mail);
    let list: Vec<String> = mailboxes.iter().map(|m| m.0.to_string()).collect();
    // Collection names are the store's own constants; one that could not be told apart in
    // the list is sent as "any collection".
    let plain = collections
        .iter()
        .all(|c| !c.is_empty() && !c.contains([':', ',']) && c != ALL_MAILBOXES);
    let names = if plain {
        collections.iter().cloned().collect::<Vec<_>>().join(",")
    } else {
        ALL_MAILBOXES.to_string()
    };
    let payload = format!(
        "{account}:{modseq}:{}:{names}:{mail}:{origin}",
        list.join(",")
    );
    if payload.len() <= MAX_PAYLOAD {
        payload
    } else {
        format!("{account}:{modseq}:{ALL_MAILBOXES}:{ALL_MAILBOXES}:{mail}:{origin}")
    }
}

pub(crate) fn decode(payload: &str) -> Option<Notice> {
    let mut parts = payload.splitn(5, ':');
    let account = AccountId(parts.next()?.parse().ok()?);
    let modseq = ModSeq(parts.next()?.parse().ok()?);
    let list = parts.next()?;
    let names = parts.next()?;
    let rest = parts.next()?;
    // `<mail>:<origin>` since per-type states; before, the origin alone (origins are hex,
    // so an older node's payload is told apart by its missing kind field).
    let (mail, origin) = match rest.split_once(':') {
        Some((field, origin)) if decode_mail(field).is_some() => {
            (decode_mail(field), origin.to_string())
        }
        _ => (None, rest.to_string()),
    };
    let collections = match names {
        ALL_MAILBOXES => None,
        "" => Some(Vec::new()),
        names => Some(names.split(',').map(str::to_string).collect()),
    };
    let mailboxes = if list == ALL_MAILBOXES {
        None
    } else if list.is_empty() {
        Some(Vec::new())
    } else {
        Some(
            list.split(',')
                .map(|m| m.parse().ok().map(MailboxId))
                .collect::<Option<Vec<_>>>()?,
        )
    };
    Some(Notice {
        account,
        modseq,
        mailboxes,
        collections,
        mail,
        origin,
    })
}

/// Per-account broadcast channels, plus the last modseq published for each.
#[derive(Default)]
pub(crate) struct Hub {
    inner: Mutex<HubInner>,
}

#[derive(Default)]
struct HubInner {
    senders: HashMap<AccountId, broadcast::Sender<StateChange>>,
    published: HashMap<AccountId, ModSeq>,
    /// Every account's changes ([`bulwark_store::Store::subscribe_all`]); made on first use,
    /// dropped (closing its receivers) when the change feed was lost.
    all: Option<broadcast::Sender<StateChange>>,
}

impl Hub {
    pub(crate) fn subscribe(&self, account: AccountId) -> broadcast::Receiver<StateChange> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .senders
            .entry(account)
            .or_insert_with(|| broadcast::channel(SUBSCRIBE_CAPACITY).0)
            .subscribe()
    }

    pub(crate) fn subscribe_all(&self) -> broadcast::Receiver<StateChange> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .all
            .get_or_insert_with(|| broadcast::channel(SUBSCRIBE_ALL_CAPACITY).0)
            .subscribe()
    }

    /// The change feed was lost: receivers of every account's changes may have missed some;
    /// closing their channel tells them so (they subscribe again and start afresh).
    pub(crate) fn feed_lost(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.all = None;
    }

    /// Publishes what a local transaction committed.
    pub(crate) fn publish_notes(&self, notes: Notes) {
        for change in notes.into_state_changes() {
            self.publish(change);
        }
    }

    pub(crate) fn publish(&self, change: StateChange) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let account = change.account;
        let last = inner.published.entry(account).or_default();
        *last = (*last).max(change.modseq);
        if let Some(all) = &inner.all
            && all.receiver_count() > 0
        {
            let _ = all.send(change.clone());
        }
        let Some(sender) = inner.senders.get(&account) else {
            return;
        };
        if sender.send(change).is_err() {
            // Nobody listens any more; drop the channel (a new subscribe recreates it).
            inner.senders.remove(&account);
        }
    }

    /// Accounts with live subscribers and the last modseq published to them.
    fn watched(&self) -> Vec<(AccountId, ModSeq)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .senders
            .iter()
            .filter(|(_, sender)| sender.receiver_count() > 0)
            .map(|(account, _)| {
                let last = inner.published.get(account).copied().unwrap_or_default();
                (*account, last)
            })
            .collect()
    }
}

/// A connection that is `LISTEN`ing; notifications arrive on `notices`.
pub(crate) struct Listening {
    /// Kept alive: dropping it closes the connection.
    _client: Client,
    notices: mpsc::Receiver<String>,
}

/// Opens a dedicated connection and subscribes to [`CHANNEL`].
pub(crate) async fn listen(config: &Config) -> Result<Listening> {
    let (client, mut connection) =
        tokio::time::timeout(crate::pool::CONNECT_TIMEOUT, config.connect(NoTls))
            .await
            .map_err(|_| StoreError::Unavailable("connecting to PostgreSQL timed out".into()))?
            .map_err(pg_err)?;
    let (sender, notices) = mpsc::channel(NOTIFY_BUFFER);
    tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if sender.send(n.payload().to_string()).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "store-pg: change listener connection failed");
                    return;
                }
                None => return,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(pg_err)?;
    Ok(Listening {
        _client: client,
        notices,
    })
}

/// The listener loop: publishes other nodes' changes; reconnects when the connection drops.
pub(crate) async fn run_listener(
    mut listening: Listening,
    config: Config,
    hub: Arc<Hub>,
    pool: Arc<Pool>,
    origin: String,
) {
    loop {
        while let Some(payload) = listening.notices.recv().await {
            let Some(notice) = decode(&payload) else {
                tracing::warn!(payload, "store-pg: unreadable change notification");
                continue;
            };
            if notice.origin == origin {
                continue; // published locally at commit
            }
            let mailboxes = match notice.mailboxes {
                Some(list) => list,
                None => tokio::time::timeout(
                    crate::pool::CALL_TIMEOUT,
                    all_mailboxes(&pool, notice.account),
                )
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default(),
            };
            hub.publish(StateChange {
                account: notice.account,
                modseq: notice.modseq,
                mailboxes,
                collections: notice.collections,
                mail: notice.mail,
                local: false,
            });
        }
        tracing::warn!("store-pg: change listener lost its connection; reconnecting");
        hub.feed_lost();
        let mut delay = RECONNECT_MIN;
        listening = loop {
            tokio::time::sleep(delay).await;
            match listen(&config).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::debug!(error = %e, "store-pg: listener reconnect failed");
                    delay = (delay * 2).min(RECONNECT_MAX);
                }
            }
        };
        tracing::info!("store-pg: change listener reconnected");
        // What was read while deaf may be stale too.
        hub.feed_lost();
        // Subscribers resync from what moved while we were deaf (each try bounded like any
        // call; tried again while the database is still coming back).
        let mut delay = RECONNECT_MIN;
        for attempt in 1..=CATCH_UP_ATTEMPTS {
            match tokio::time::timeout(crate::pool::CALL_TIMEOUT, catch_up(&hub, &pool)).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, attempt, "store-pg: catch-up after reconnect failed")
                }
                Err(_) => tracing::warn!(attempt, "store-pg: catch-up after reconnect timed out"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_MAX);
        }
    }
}

/// Publishes a change (all mailboxes) for every watched account that moved meanwhile.
async fn catch_up(hub: &Hub, pool: &Arc<Pool>) -> Result<()> {
    for (account, last) in hub.watched() {
        let mut pooled = pool.get().await?;
        let outcome = async {
            let mut tx = pooled.begin(true).await?;
            let row = tx
                .opt(
                    "SELECT modseq FROM accounts WHERE id = $1 AND modseq > $2",
                    &[&account.0, &sql_modseq(last)],
                )
                .await?;
            let moved = match row {
                Some(row) => Some(get_modseq(&row, 0)?),
                None => None,
            };
            let mailboxes = match moved {
                Some(_) => mailbox_ids(&mut tx, account).await?,
                None => Vec::new(),
            };
            tx.commit().await?;
            Ok(moved.map(|modseq| (modseq, mailboxes)))
        }
        .await;
        pooled.finish(&outcome);
        if let Some((modseq, mailboxes)) = outcome? {
            hub.publish(StateChange {
                account,
                modseq,
                mailboxes,
                collections: None,
                mail: None,
                local: false,
            });
        }
    }
    Ok(())
}

async fn all_mailboxes(pool: &Arc<Pool>, account: AccountId) -> Result<Vec<MailboxId>> {
    let mut pooled = pool.get().await?;
    let outcome = async {
        let mut tx = pooled.begin(true).await?;
        let ids = mailbox_ids(&mut tx, account).await?;
        tx.commit().await?;
        Ok(ids)
    }
    .await;
    pooled.finish(&outcome);
    outcome
}

async fn mailbox_ids(tx: &mut crate::pool::Tx<'_>, account: AccountId) -> Result<Vec<MailboxId>> {
    let rows = tx
        .query(
            "SELECT id FROM mailboxes WHERE account = $1 ORDER BY id",
            &[&account.0],
        )
        .await?;
    rows.iter().map(|r| get(r, 0).map(MailboxId)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let mailboxes: BTreeSet<MailboxId> = [MailboxId(3), MailboxId(12)].into();
        let collections: BTreeSet<String> = ["identities".to_string(), "vacation".into()].into();
        let mail = MailChanged {
            email: true,
            thread: true,
            delivery: true,
            ..MailChanged::default()
        };
        let payload = encode(
            AccountId(7),
            ModSeq(42),
            &mailboxes,
            &collections,
            &mail,
            "node:x",
        );
        assert_eq!(payload, "7:42:3,12:identities,vacation:ETD:node:x");
        assert_eq!(
            decode(&payload),
            Some(Notice {
                account: AccountId(7),
                modseq: ModSeq(42),
                mailboxes: Some(vec![MailboxId(3), MailboxId(12)]),
                collections: Some(vec!["identities".into(), "vacation".into()]),
                mail: Some(mail),
                origin: "node:x".into()
            })
        );
        // A payload of a node from before per-type states: the kinds are unknown.
        let old = decode("7:42:3:identities:0123456789abcdef").expect("decodes");
        assert_eq!(old.mail, None);
        assert_eq!(old.origin, "0123456789abcdef");
        let odd: BTreeSet<String> = ["a:b".to_string()].into();
        let payload = encode(
            AccountId(7),
            ModSeq(42),
            &BTreeSet::new(),
            &odd,
            &MailChanged::default(),
            "o",
        );
        assert_eq!(payload, "7:42::*::o");
        let notice = decode(&payload).expect("decodes");
        assert_eq!(
            notice.collections, None,
            "unsayable names become any collection"
        );
        assert_eq!(notice.mailboxes, Some(Vec::new()));
    }

    #[test]
    fn long_mailbox_lists_become_all_mailboxes() {
        let mailboxes: BTreeSet<MailboxId> = (0..5000).map(MailboxId).collect();
        let payload = encode(
            AccountId(1),
            ModSeq(2),
            &mailboxes,
            &BTreeSet::new(),
            &MailChanged::default(),
            "o",
        );
        assert!(payload.len() <= MAX_PAYLOAD);
        let notice = decode(&payload).expect("decodes");
        assert_eq!(notice.mailboxes, None);
        assert_eq!(notice.collections, None);
    }

    #[test]
    fn garbage_payloads_are_rejected() {
        for bad in ["", "x:1:::o", "1:y:::o", "1:2:a,b::o", "1:2", "1:2::o"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        assert_eq!(
            decode("1:2:::o").map(|n| (n.mailboxes, n.collections)),
            Some((Some(Vec::new()), Some(Vec::new())))
        );
    }

    #[tokio::test]
    async fn publish_reaches_subscribers_and_remembers_the_modseq() {
        let hub = Hub::default();
        let mut rx = hub.subscribe(AccountId(1));
        hub.publish(StateChange {
            account: AccountId(1),
            modseq: ModSeq(5),
            mailboxes: vec![MailboxId(9)],
            collections: Some(Vec::new()),
            mail: None,
            local: true,
        });
        let got = rx.recv().await.expect("change");
        assert_eq!(got.modseq, ModSeq(5));
        assert_eq!(hub.watched(), vec![(AccountId(1), ModSeq(5))]);
        drop(rx);
        assert!(hub.watched().is_empty(), "no receivers, not watched");
    }
}
