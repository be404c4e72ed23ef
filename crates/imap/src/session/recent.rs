//! `\Recent` for IMAP4rev1 sessions (RFC 3501 §2.3.2; IMAP4rev2 dropped it, RFC 9051
//! §2.3.2, so a session that sent `ENABLE IMAP4rev2` never sees it).
//!
//! RFC 3501 §2.3.2: a message is recent in the first session to have the mailbox selected
//! after it arrived; no other session sees it as recent. Each mailbox has one durable
//! counter in the account collection [`names::IMAP_RECENT`]: "messages up to UID n were
//! already given as recent". A read-write session that sees messages above `n` (at SELECT,
//! or when they arrive while it is selected) raises `n` by compare-and-set; the messages
//! from the old `n` to the new one are recent for it alone. A conflict (another session or
//! node raised it first) re-reads and tries again, so two sessions on two nodes sharing one
//! PostgreSQL never both get a message. EXAMINE does not claim (RFC 3501 §6.3.2: it MUST
//! NOT make messages lose `\Recent`): it shows the unclaimed messages as recent.

use super::{Selected, Session};
use bulwark_store::collections::{Expect, ItemWrite, names};
use bulwark_store::{AccountId, MailboxId, ModSeq, StoreError, Uid};

/// Compare-and-set attempts per claim (each conflict means another session claimed).
const CLAIM_ATTEMPTS: usize = 8;

impl Selected {
    /// Is the message with `uid` recent in this session?
    pub(crate) fn is_recent(&self, uid: Uid) -> bool {
        self.recent
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&uid.0))
    }

    /// Adds a range of recent UIDs, merging overlapping ones (an EXAMINE session may be
    /// shown the same unclaimed messages twice).
    pub(crate) fn add_recent(&mut self, range: (u32, u32)) {
        self.recent.push(range);
        self.recent.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.recent.len());
        for &(lo, hi) in &self.recent {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        self.recent = merged;
    }

    /// How many messages of the view are recent in this session (the `* n RECENT`
    /// response, RFC 3501 §7.3.2).
    pub(crate) fn recent_count(&self) -> usize {
        self.recent
            .iter()
            .map(|&(lo, hi)| {
                let start = self.view.partition_point(|m| m.uid.0 < lo);
                let end = self.view.partition_point(|m| m.uid.0 <= hi);
                end.saturating_sub(start)
            })
            .sum()
    }
}

/// The claimed-up-to UID of a mailbox and the item's version (`None`: never claimed).
async fn read_claim(
    store: &dyn bulwark_store::Store,
    account: AccountId,
    mailbox: MailboxId,
) -> Result<(u32, Option<ModSeq>), StoreError> {
    let id = mailbox.0.to_string();
    let items = store
        .collection_get(account, names::IMAP_RECENT, Some(std::slice::from_ref(&id)))
        .await?;
    Ok(match items.into_iter().next() {
        Some(item) => (item.value.trim().parse().unwrap_or(0), Some(item.version)),
        None => (0, None),
    })
}

/// Claims the messages of `mailbox` up to `up_to` that no session was given as recent
/// yet; returns the UID range that is now recent for the caller. Read-only (EXAMINE)
/// sessions get the unclaimed range without claiming it. A store failure leaves the
/// messages unclaimed (not recent here; another session may get them).
pub(crate) async fn claim(
    store: &dyn bulwark_store::Store,
    feed: &crate::feed::Feed,
    account: AccountId,
    mailbox: MailboxId,
    read_only: bool,
    up_to: Uid,
) -> Option<(u32, u32)> {
    // One claimer per mailbox on this server at a time; across servers the
    // compare-and-set decides. EXAMINE never writes, so it does not queue.
    let _claiming = if read_only {
        None
    } else {
        Some(feed.claiming.lock().await)
    };
    // The server's last known claim answers "nothing new" without a store read and gives
    // the version to write against; EXAMINE reads the store (it does not write to learn).
    let mut known = feed.recent_claim().filter(|_| !read_only);
    for _ in 0..CLAIM_ATTEMPTS {
        let (claimed, version) = match known.take() {
            Some(k) => k,
            None => match read_claim(store, account, mailbox).await {
                Ok(c) => {
                    feed.set_recent_claim(c.0, c.1);
                    c
                }
                Err(e) => {
                    tracing::debug!(error = %e, "IMAP: could not read the \\Recent claim");
                    return None;
                }
            },
        };
        if claimed >= up_to.0 {
            return None;
        }
        if !read_only {
            let expect = version.map_or(Expect::Absent, Expect::Version);
            let write = ItemWrite::put(
                names::IMAP_RECENT,
                &mailbox.0.to_string(),
                expect,
                up_to.0.to_string(),
            );
            match store.collection_write(account, vec![write]).await {
                Ok(version) => feed.set_recent_claim(up_to.0, Some(version)),
                // Claimed meanwhile (here or on another node): read it and try again.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "IMAP: could not claim \\Recent");
                    return None;
                }
            }
        }
        return Some((claimed + 1, up_to.0));
    }
    None
}

impl Session {
    /// [`claim`] for the selected mailbox (messages that arrived while it is selected);
    /// nothing for IMAP4rev2 sessions.
    pub(crate) async fn claim_recent(&mut self, up_to: Uid) {
        if self.enabled.rev2 {
            return;
        }
        let Ok(account) = self.account_id() else {
            return;
        };
        let Ok(sel) = self.selected() else { return };
        let (mailbox, read_only, feed) = (sel.id, sel.read_only, sel.feed.clone());
        if let Some(range) = claim(&*self.store, &feed, account, mailbox, read_only, up_to).await
            && let Ok(sel) = self.selected_mut()
        {
            sel.add_recent(range);
        }
    }

    /// STATUS (RECENT) (RFC 3501 §6.3.10): messages no session was given as recent yet.
    pub(crate) async fn unclaimed_recent(
        &self,
        account: AccountId,
        mailbox: MailboxId,
        messages: u32,
        uid_next: Uid,
    ) -> Result<u32, StoreError> {
        let (claimed, version) = read_claim(&*self.store, account, mailbox).await?;
        if version.is_none() || claimed == 0 {
            return Ok(messages);
        }
        if claimed.saturating_add(1) >= uid_next.0 {
            return Ok(0);
        }
        let all = self.store.mailbox_messages(account, mailbox).await?;
        Ok(all.iter().filter(|m| m.uid.0 > claimed).count() as u32)
    }

    /// Forgets a deleted mailbox's claim (best effort).
    pub(crate) async fn drop_recent_claim(&self, account: AccountId, mailbox: MailboxId) {
        self.feeds.get(mailbox).forget_recent_claim();
        let write = ItemWrite::delete(names::IMAP_RECENT, &mailbox.0.to_string(), Expect::Any);
        if let Err(e) = self.store.collection_write(account, vec![write]).await {
            tracing::debug!(error = %e, "IMAP: could not drop the \\Recent claim");
        }
    }
}
