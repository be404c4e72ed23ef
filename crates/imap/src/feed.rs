//! Mailbox changes read once and shared by every session that has the mailbox selected.
//!
//! Without this, every session with a mailbox selected reads the store after every change
//! another session makes (twenty clients on one mailbox: twenty identical reads per change),
//! and every SELECT reads the whole mailbox. A [`Feed`] per mailbox keeps the recent deltas
//! (contiguous modseq ranges) and one full view: the first session that needs newer data reads
//! the store, the others wait for that read and use it. Sessions that fell behind the kept
//! history read the store themselves. Everything here comes from the store (other nodes'
//! changes included), so nothing can be missed: the feed only saves repeated reads.

use crate::session::ViewMsg;
use bulwark_store::{
    AccountId, MailboxDelta, MailboxId, MessageMeta, ModSeq, Store, StoreError, Uid,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Changed or expunged messages kept per mailbox; older history is dropped (sessions that
/// far behind read the store directly).
const MAX_FEED_ENTRIES: usize = 4096;
/// Feeds kept before unused ones (no session holds them) are dropped.
const PRUNE_AT: usize = 1024;

/// One contiguous step of the mailbox's history: what changed after `from` up to `to`.
struct Batch {
    from: ModSeq,
    to: ModSeq,
    delta: MailboxDelta,
}

#[derive(Default)]
struct FeedState {
    /// Contiguous: each batch starts where the previous one ended.
    batches: VecDeque<Batch>,
    entries: usize,
    /// Up to which modseq the feed has read (meaningful once `started`).
    highest: ModSeq,
    started: bool,
    /// The whole mailbox at `snapshot.0`, for SELECT.
    snapshot: Option<(ModSeq, Arc<Vec<ViewMsg>>)>,
}

/// The shared history of one mailbox.
#[derive(Default)]
pub(crate) struct Feed {
    state: tokio::sync::Mutex<FeedState>,
}

impl Feed {
    /// What changed in the mailbox after `since`, including at least everything up to
    /// `wanted` (the newest change the caller was told about; `ModSeq(u64::MAX)` forces a
    /// store read). May report a change the caller already applied (harmless).
    pub(crate) async fn delta(
        &self,
        store: &dyn Store,
        account: AccountId,
        mailbox: MailboxId,
        since: ModSeq,
        wanted: ModSeq,
    ) -> Result<MailboxDelta, StoreError> {
        let mut st = self.state.lock().await;
        if !st.started || st.highest < since {
            // Start (or restart) the history at the caller's point.
            st.batches.clear();
            st.entries = 0;
            st.highest = since;
            st.started = true;
        }
        if st.highest < wanted {
            let from = st.highest;
            let delta = store.mailbox_delta(account, mailbox, from).await?;
            st.push(from, delta);
        }
        match st.merged_since(since) {
            Some(d) => Ok(d),
            None => {
                drop(st);
                store.mailbox_delta(account, mailbox, since).await
            }
        }
    }

    /// The whole mailbox as of now (at least `wanted`), for SELECT, and its modseq: the
    /// kept view brought up to date, or one full read when there is none.
    pub(crate) async fn view(
        &self,
        store: &dyn Store,
        account: AccountId,
        mailbox: MailboxId,
        wanted: ModSeq,
    ) -> Result<(Vec<ViewMsg>, ModSeq), StoreError> {
        let mut st = self.state.lock().await;
        if let Some((at, snap)) = st.snapshot.clone() {
            if !st.started || st.highest < at {
                st.batches.clear();
                st.entries = 0;
                st.highest = at;
                st.started = true;
            }
            if st.highest < wanted {
                let from = st.highest;
                let delta = store.mailbox_delta(account, mailbox, from).await?;
                st.push(from, delta);
            }
            if let Some(delta) = st.merged_since(at) {
                let mut view = (*snap).clone();
                apply_quietly(&mut view, &delta);
                let now = st.highest.max(at);
                st.snapshot = Some((now, Arc::new(view.clone())));
                return Ok((view, now));
            }
        }
        // The list read after `wanted` holds at least everything up to it; changes
        // committed meanwhile show up again in the first resync (harmless).
        let metas = store.mailbox_messages(account, mailbox).await?;
        let view: Vec<ViewMsg> = metas.iter().map(ViewMsg::from_meta).collect();
        drop(metas);
        st.snapshot = Some((wanted, Arc::new(view.clone())));
        Ok((view, wanted))
    }
}

impl FeedState {
    fn push(&mut self, from: ModSeq, delta: MailboxDelta) {
        let to = delta.highest_modseq.max(from);
        self.highest = to;
        if to == from {
            return;
        }
        self.entries += delta.changed.len() + delta.expunged.len();
        self.batches.push_back(Batch { from, to, delta });
        while self.entries > MAX_FEED_ENTRIES && self.batches.len() > 1 {
            if let Some(old) = self.batches.pop_front() {
                self.entries -= old.delta.changed.len() + old.delta.expunged.len();
            }
        }
    }

    /// Every kept change after `since`, merged (later state wins, expunged messages left
    /// out of `changed`); `None` when the kept history does not reach back to `since`.
    fn merged_since(&self, since: ModSeq) -> Option<MailboxDelta> {
        if since >= self.highest {
            return Some(MailboxDelta {
                highest_modseq: self.highest,
                ..MailboxDelta::default()
            });
        }
        let first = self.batches.iter().find(|b| b.to > since)?;
        if first.from > since {
            return None;
        }
        let mut changed: BTreeMap<Uid, &MessageMeta> = BTreeMap::new();
        let mut expunged: BTreeSet<Uid> = BTreeSet::new();
        for b in self.batches.iter().filter(|b| b.to > since) {
            for m in &b.delta.changed {
                changed.insert(m.uid, m);
            }
            expunged.extend(b.delta.expunged.iter().copied());
        }
        Some(MailboxDelta {
            highest_modseq: self.highest,
            changed: changed
                .into_iter()
                .filter(|(uid, _)| !expunged.contains(uid))
                .map(|(_, m)| m.clone())
                .collect(),
            expunged: expunged.into_iter().collect(),
        })
    }
}

/// Applies `delta` to a view without reporting anything (for the shared snapshot).
fn apply_quietly(view: &mut Vec<ViewMsg>, delta: &MailboxDelta) {
    if !delta.expunged.is_empty() {
        let gone: BTreeSet<Uid> = delta.expunged.iter().copied().collect();
        view.retain(|m| !gone.contains(&m.uid));
    }
    for meta in &delta.changed {
        let last = view.last().map_or(0, |m| m.uid.0);
        if meta.uid.0 > last {
            view.push(ViewMsg::from_meta(meta));
        } else if let Ok(i) = view.binary_search_by_key(&meta.uid, |m| m.uid) {
            view[i] = ViewMsg::from_meta(meta);
        }
    }
}

/// The feeds of one IMAP server, by mailbox.
#[derive(Default)]
pub(crate) struct Feeds {
    map: Mutex<HashMap<MailboxId, Arc<Feed>>>,
}

impl Feeds {
    /// The feed of `mailbox`, created on first use. Feeds nobody holds are dropped now and
    /// then.
    pub(crate) fn get(&self, mailbox: MailboxId) -> Arc<Feed> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PRUNE_AT && !map.contains_key(&mailbox) {
            map.retain(|_, f| Arc::strong_count(f) > 1);
            map.shrink_to_fit();
        }
        map.entry(mailbox).or_default().clone()
    }
}
