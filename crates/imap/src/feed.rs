//! Mailbox changes read once and shared by every session that has the mailbox selected.
//!
//! Without this, every session with a mailbox selected reads the store after every change
//! another session makes (twenty clients on one mailbox: twenty identical reads per change),
//! and every SELECT reads the whole mailbox. A [`Feed`] per mailbox keeps the recent deltas
//! (contiguous modseq ranges) and one full view: the first session that needs newer data reads
//! the store, the others wait for that read and use it. Sessions that fell behind the kept
//! history read the store themselves. Everything here comes from the store (other nodes'
//! changes included), so nothing can be missed: the feed only saves repeated reads.

use crate::session::{View, ViewMsg, ViewSummary};
use bulwark_store::{
    AccountId, MailboxDelta, MailboxId, MessageMeta, ModSeq, Store, StoreError, Uid,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Changed or expunged messages kept per mailbox; older history is dropped (sessions that
/// far behind read the store directly).
const MAX_FEED_ENTRIES: usize = 4096;
/// Memory kept for mailboxes no session has selected (their views make the next SELECT
/// cheap); beyond it, such feeds are dropped.
const IDLE_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// How often (in `Feeds::get` calls) the idle feeds are checked against the budget.
const PRUNE_EVERY: u64 = 64;

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
    /// The whole mailbox at `snapshot.0`, for SELECT, with what SELECT reports of it.
    snapshot: Option<(ModSeq, View, Arc<ViewSummary>)>,
}

/// The shared history of one mailbox.
#[derive(Default)]
pub(crate) struct Feed {
    state: tokio::sync::Mutex<FeedState>,
    /// The mailbox's `\Recent` claim as this server last read or wrote it (claimed-up-to
    /// UID, item version): see `session/recent.rs`. Only ever a lower bound of the stored
    /// claim, which only grows, so "already claimed" answers need no store read; a stale
    /// version makes the compare-and-set fail and the claim re-read.
    recent: Mutex<Option<(u32, Option<ModSeq>)>>,
    /// Held by the one session of this server that is claiming `\Recent` messages of the
    /// mailbox: the others, notified of the same new mail at the same moment, wait and then
    /// find it claimed in [`Feed::recent_claim`] instead of each writing a compare-and-set
    /// that fails (five sessions on one mailbox made five writes per new message).
    pub(crate) claiming: tokio::sync::Mutex<()>,
}

impl Feed {
    pub(crate) fn recent_claim(&self) -> Option<(u32, Option<ModSeq>)> {
        *self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_recent_claim(&self, claimed: u32, version: Option<ModSeq>) {
        let mut slot = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none_or(|(c, _)| c <= claimed) {
            *slot = Some((claimed, version));
        }
    }

    pub(crate) fn forget_recent_claim(&self) {
        *self.recent.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
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
        st.catch_up(store, account, mailbox, since, wanted).await?;
        let merged = st.merged_since(since).map(|m| m.to_delta(st.highest));
        st.trim();
        match merged {
            Some(d) => Ok(d),
            None => {
                drop(st);
                store.mailbox_delta(account, mailbox, since).await
            }
        }
    }

    /// The whole mailbox as of now (at least `wanted`), for SELECT, what SELECT reports of
    /// it, and its modseq: the kept view brought up to date, or one full read when there is
    /// none. An unchanged kept view is shared, not copied (work independent of its size).
    pub(crate) async fn view(
        &self,
        store: &dyn Store,
        account: AccountId,
        mailbox: MailboxId,
        wanted: ModSeq,
    ) -> Result<(View, Arc<ViewSummary>, ModSeq), StoreError> {
        let mut st = self.state.lock().await;
        if let Some((at, snap, summary)) = st.snapshot.clone() {
            st.catch_up(store, account, mailbox, at, wanted).await?;
            let mut view = None;
            if let Some(delta) = st.merged_since(at) {
                if delta.changed.is_empty() && delta.expunged.is_empty() {
                    view = Some((snap, summary));
                } else {
                    let mut v = snap;
                    apply_quietly(&mut v, &delta);
                    let summary = Arc::new(ViewSummary::of(&v));
                    view = Some((v, summary));
                }
            }
            st.trim();
            if let Some((view, summary)) = view {
                let now = st.highest.max(at);
                st.snapshot = Some((now, view.clone(), summary.clone()));
                return Ok((view, summary, now));
            }
        }
        // The list read after `wanted` holds at least everything up to it; changes
        // committed meanwhile show up again in the first resync (harmless).
        let metas = store.mailbox_messages(account, mailbox).await?;
        let view = View::new(metas.iter().map(ViewMsg::from_meta).collect());
        drop(metas);
        let summary = Arc::new(ViewSummary::of(&view));
        st.snapshot = Some((wanted, view.clone(), summary.clone()));
        Ok((view, summary, wanted))
    }
}

impl FeedState {
    /// Starts the history at `start` when there is none or it ends before `start`, then
    /// reads forward to at least `wanted` (one store read, only when behind).
    async fn catch_up(
        &mut self,
        store: &dyn Store,
        account: AccountId,
        mailbox: MailboxId,
        start: ModSeq,
        wanted: ModSeq,
    ) -> Result<(), StoreError> {
        if !self.started || self.highest < start {
            self.batches.clear();
            self.entries = 0;
            self.highest = start;
            self.started = true;
        }
        if self.highest < wanted {
            let from = self.highest;
            let delta = store.mailbox_delta(account, mailbox, from).await?;
            self.push(from, delta);
        }
        Ok(())
    }

    fn push(&mut self, from: ModSeq, delta: MailboxDelta) {
        let to = delta.highest_modseq.max(from);
        self.highest = to;
        if to == from {
            return;
        }
        self.entries += delta.changed.len() + delta.expunged.len();
        self.batches.push_back(Batch { from, to, delta });
    }

    /// Drops the oldest history beyond [`MAX_FEED_ENTRIES`]; a single step larger than that
    /// (a mass delivery or flag change) is not kept either: the history restarts after it.
    fn trim(&mut self) {
        while self.entries > MAX_FEED_ENTRIES {
            let Some(old) = self.batches.pop_front() else {
                break;
            };
            self.entries -= old.delta.changed.len() + old.delta.expunged.len();
        }
    }

    /// Every kept change after `since`, merged (later state wins, expunged messages left
    /// out of `changed`, which is ordered by UID); `None` when the kept history does not
    /// reach back to `since`.
    fn merged_since(&self, since: ModSeq) -> Option<Merged<'_>> {
        if since >= self.highest {
            return Some(Merged::default());
        }
        let first = self.batches.iter().position(|b| b.to > since)?;
        if self.batches[first].from > since {
            return None;
        }
        if first + 1 == self.batches.len() {
            // One step (the usual case, and a mass change): the store's delta is already
            // ordered by UID, and no UID is both changed and expunged in it.
            let d = &self.batches[first].delta;
            return Some(Merged {
                changed: d.changed.iter().collect(),
                expunged: d.expunged.clone(),
            });
        }
        let mut changed: BTreeMap<Uid, &MessageMeta> = BTreeMap::new();
        let mut expunged: BTreeSet<Uid> = BTreeSet::new();
        for b in self.batches.iter().skip(first) {
            for m in &b.delta.changed {
                changed.insert(m.uid, m);
            }
            expunged.extend(b.delta.expunged.iter().copied());
        }
        Some(Merged {
            changed: changed
                .into_iter()
                .filter(|(uid, _)| !expunged.contains(uid))
                .map(|(_, m)| m)
                .collect(),
            expunged: expunged.into_iter().collect(),
        })
    }
}

/// Kept changes merged for one caller, borrowed from the history.
#[derive(Default)]
struct Merged<'a> {
    changed: Vec<&'a MessageMeta>,
    expunged: Vec<Uid>,
}

impl Merged<'_> {
    fn to_delta(&self, highest_modseq: ModSeq) -> MailboxDelta {
        MailboxDelta {
            highest_modseq,
            changed: self.changed.iter().map(|m| (*m).clone()).collect(),
            expunged: self.expunged.clone(),
        }
    }
}

/// Applies `delta` to a view without reporting anything (for the shared snapshot).
fn apply_quietly(view: &mut Vec<ViewMsg>, delta: &Merged<'_>) {
    if !delta.expunged.is_empty() {
        let gone: BTreeSet<Uid> = delta.expunged.iter().copied().collect();
        view.retain(|m| !gone.contains(&m.uid));
    }
    view.reserve(delta.changed.len());
    for &meta in &delta.changed {
        let last = view.last().map_or(0, |m| m.uid.0);
        if meta.uid.0 > last {
            view.push(ViewMsg::from_meta(meta));
        } else if let Ok(i) = view.binary_search_by_key(&meta.uid, |m| m.uid) {
            view[i] = ViewMsg::from_meta(meta);
        }
    }
}

impl Feed {
    /// Bytes this feed holds (kept view and history), roughly; `None` while in use.
    fn held_bytes(&self) -> Option<usize> {
        let st = self.state.try_lock().ok()?;
        let view = st
            .snapshot
            .as_ref()
            .map_or(0, |(_, v, _)| v.len() * std::mem::size_of::<ViewMsg>());
        Some(view + st.entries * std::mem::size_of::<MessageMeta>())
    }
}

/// The feeds of one IMAP server, by mailbox.
#[derive(Default)]
pub(crate) struct Feeds {
    map: Mutex<HashMap<MailboxId, Arc<Feed>>>,
    gets: std::sync::atomic::AtomicU64,
}

impl Feeds {
    /// The feed of `mailbox`, created on first use. Now and then, feeds no session holds are
    /// dropped once they hold more than [`IDLE_BUDGET_BYTES`] together.
    pub(crate) fn get(&self, mailbox: MailboxId) -> Arc<Feed> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(PRUNE_EVERY) {
            prune(&mut map, mailbox);
        }
        map.entry(mailbox).or_default().clone()
    }
}

/// Drops idle feeds (held by the map alone) beyond the budget, keeping `keep`.
fn prune(map: &mut HashMap<MailboxId, Arc<Feed>>, keep: MailboxId) {
    let mut used = 0usize;
    map.retain(|id, f| {
        if *id == keep || Arc::strong_count(f) > 1 {
            return true;
        }
        match f.held_bytes() {
            // Nothing kept (no view, no history): nothing to gain from keeping the entry.
            Some(b) if b > 0 && used + b <= IDLE_BUDGET_BYTES => {
                used += b;
                true
            }
            Some(_) => false,
            None => true,
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_store::{BlobHash, EmailId, ThreadId};

    fn feed_with_view(messages: usize) -> Arc<Feed> {
        let meta = MessageMeta {
            uid: Uid(1),
            email: EmailId(1),
            thread: ThreadId(1),
            modseq: ModSeq(1),
            keywords: vec![],
            size: 10,
            received_at: 0,
            blob: BlobHash("0".repeat(64)),
        };
        let feed = Arc::new(Feed::default());
        if let Ok(mut st) = feed.state.try_lock() {
            let view = View::new(vec![ViewMsg::from_meta(&meta); messages]);
            let summary = Arc::new(ViewSummary::of(&view));
            st.snapshot = Some((ModSeq(1), view, summary));
        }
        feed
    }

    #[test]
    fn idle_feeds_beyond_the_budget_and_empty_ones_are_dropped_used_ones_kept() {
        let per_view = IDLE_BUDGET_BYTES / std::mem::size_of::<ViewMsg>() / 3 + 1;
        let mut map: HashMap<MailboxId, Arc<Feed>> = HashMap::new();
        for id in 1..=5 {
            map.insert(MailboxId(id), feed_with_view(per_view));
        }
        let in_use = feed_with_view(per_view);
        map.insert(MailboxId(6), in_use.clone());
        map.insert(MailboxId(7), Arc::new(Feed::default()));
        prune(&mut map, MailboxId(100));
        // Two idle views of a third of the budget each fit, a third does not.
        let idle_left = (1..=5).filter(|i| map.contains_key(&MailboxId(*i))).count();
        assert_eq!(idle_left, 2);
        assert!(
            map.contains_key(&MailboxId(6)),
            "a feed a session holds is kept"
        );
        assert!(
            !map.contains_key(&MailboxId(7)),
            "an empty idle feed is dropped"
        );
        drop(in_use);
    }
}
