//! Training the per-account classifier ([`crate::bayes`]) from what users do: a message that
//! enters the account's Junk folder by the user's hand (IMAP MOVE/COPY/APPEND, JMAP
//! `mailboxIds`, the web client's "Report spam", a Sieve `fileinto`) is learnt as spam; one
//! taken out of Junk into any folder but Trash ("Not spam") is learnt as ham. Deletions and
//! mail the scoring itself filed into Junk (`X-Spam-Status: Yes`) teach nothing.
//!
//! It watches the change feed, not the protocols, so every way of moving mail counts alike.
//! Per account it keeps the Junk folder's email ids as last seen (collection
//! `spam-trainer`, item `junk`); on each local change of that folder the difference is the
//! training, written together with the new list in one compare-and-set, so a change is learnt
//! once even with several nodes (each trains only the changes it committed, and a conflict
//! is read again).

use crate::bayes::{Class, Model, tokens};
use bulwark_store::{AccountId, EmailId, Expect, ItemWrite, Role, Store, StoreError};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// The trainer's own state per account.
pub const COLLECTION: &str = "spam-trainer";
/// Messages learnt from one change at most (the rest of a mass move is only noted).
pub const MAX_EXAMPLES: usize = 200;
/// Largest Junk folder followed (its ids are the state).
pub const MAX_JUNK: usize = 100_000;

#[derive(serde::Serialize, serde::Deserialize)]
struct Seen {
    mailbox: u64,
    emails: Vec<i64>,
}

/// Starts the trainer: it runs until the store's change feed ends.
pub fn spawn(store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
    let mut rx = store.subscribe_all();
    tokio::spawn(async move {
        let mut junk_of: HashMap<AccountId, Option<bulwark_store::MailboxId>> = HashMap::new();
        loop {
            match rx.recv().await {
                Ok(c) if c.local && !c.mailboxes.is_empty() => {
                    let junk = match junk_of.get(&c.account) {
                        Some(j) if j.is_some_and(|j| c.mailboxes.contains(&j)) => *j,
                        _ => {
                            // Unknown yet, or a mailbox that is not the known Junk changed
                            // (it may have been made Junk): look again.
                            let j = bulwark_core::mailbox_with_role(
                                store.as_ref(),
                                c.account,
                                Role::Junk,
                            )
                            .await
                            .ok();
                            junk_of.insert(c.account, j);
                            j
                        }
                    };
                    let Some(junk) = junk.filter(|j| c.mailboxes.contains(j)) else {
                        continue;
                    };
                    if let Err(e) = learn(store.as_ref(), c.account, junk).await {
                        tracing::warn!(account = c.account.0, error = %e, "spam training failed");
                    }
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    })
}

fn says_spam(raw: &[u8]) -> bool {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len().min(64 * 1024));
    String::from_utf8_lossy(&raw[..head_end])
        .split("\r\n")
        .any(|l| {
            l.get(..15)
                .is_some_and(|h| h.eq_ignore_ascii_case("x-spam-status: "))
                && l[15..].trim_start().starts_with("Yes")
        })
}

/// Learns the difference between the Junk folder now and as last seen.
pub async fn learn(
    store: &dyn Store,
    account: AccountId,
    junk: bulwark_store::MailboxId,
) -> Result<usize, StoreError> {
    for _ in 0..5 {
        let state = store
            .collection_get(account, COLLECTION, Some(&["junk".to_string()]))
            .await?
            .into_iter()
            .next();
        let (version, before): (Option<u64>, BTreeSet<i64>) = match &state {
            Some(item) => match serde_json::from_str::<Seen>(&item.value) {
                Ok(s) if s.mailbox == junk.0 as u64 => {
                    (Some(item.version.0), s.emails.into_iter().collect())
                }
                _ => (Some(item.version.0), BTreeSet::new()),
            },
            None => (None, BTreeSet::new()),
        };
        let now_msgs = store.mailbox_messages(account, junk).await?;
        let now: BTreeSet<i64> = now_msgs.iter().map(|m| m.email.0).take(MAX_JUNK).collect();
        let expect = match version {
            Some(v) => Expect::Version(bulwark_store::ModSeq(v)),
            None => Expect::Absent,
        };
        let seen = serde_json::to_string(&Seen {
            mailbox: junk.0 as u64,
            emails: now.iter().copied().collect(),
        })
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let state_write = ItemWrite::put(COLLECTION, "junk", expect, seen);
        let mut examples: Vec<(Class, BTreeSet<u32>)> = Vec::new();
        if state.is_some() {
            // Into Junk: spam, unless the scoring put it there.
            let added: Vec<&bulwark_store::MessageMeta> = now_msgs
                .iter()
                .filter(|m| !before.contains(&m.email.0))
                .take(MAX_EXAMPLES)
                .collect();
            let blobs = store
                .blob_get_many(&added.iter().map(|m| m.blob.clone()).collect::<Vec<_>>())
                .await?;
            for raw in blobs.into_iter().flatten() {
                if !says_spam(&raw) {
                    examples.push((Class::Spam, tokens(&raw)));
                }
            }
            // Out of Junk into a folder other than Trash: ham.
            let removed: Vec<EmailId> = before
                .difference(&now)
                .take(MAX_EXAMPLES.saturating_sub(examples.len()))
                .map(|e| EmailId(*e))
                .collect();
            if !removed.is_empty() {
                let mailboxes = store.mailbox_list(account).await?;
                let trash: BTreeSet<_> = mailboxes
                    .iter()
                    .filter(|m| m.role == Some(Role::Trash))
                    .map(|m| m.id)
                    .collect();
                let kept: Vec<_> = store
                    .email_get(account, &removed)
                    .await?
                    .into_iter()
                    .filter(|e| e.mailboxes.iter().any(|(m, _)| !trash.contains(m)))
                    .collect();
                let blobs = store
                    .blob_get_many(&kept.iter().map(|e| e.blob.clone()).collect::<Vec<_>>())
                    .await?;
                for raw in blobs.into_iter().flatten() {
                    examples.push((Class::Ham, tokens(&raw)));
                }
            }
        }
        let result = if examples.is_empty() {
            store
                .collection_write(account, vec![state_write])
                .await
                .map(|_| ())
        } else {
            let all: BTreeSet<u32> = examples
                .iter()
                .flat_map(|(_, t)| t.iter().copied())
                .collect();
            let model = Model::load(store, account, &all).await?;
            model
                .train(store, account, &examples, vec![state_write])
                .await
        };
        match result {
            Ok(()) => {
                if !examples.is_empty() {
                    let spam = examples.iter().filter(|(c, _)| *c == Class::Spam).count();
                    tracing::info!(
                        account = account.0,
                        spam,
                        ham = examples.len() - spam,
                        "spam classifier trained"
                    );
                }
                return Ok(examples.len());
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict(
        "the spam model kept changing; training skipped".into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scores_own_verdict_is_recognised() {
        assert!(super::says_spam(
            b"Subject: x\r\nX-Spam-Status: Yes, score=9\r\n\r\nbody"
        ));
        assert!(!super::says_spam(
            b"X-Spam-Status: No, score=0\r\n\r\nX-Spam-Status: Yes"
        ));
        assert!(!super::says_spam(b"Subject: Yes\r\n\r\n"));
    }
}
