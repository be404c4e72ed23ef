//! The selected mailbox as one session last reported it, kept compact: a session holds one
//! entry per message for as long as it stays selected (thousands of idle sessions, mailboxes
//! of 100,000 messages), so no strings or blob hashes live here — content and headers are
//! read from the store in batches when a command needs them.

use bulwark_store::{BlobHash, EmailId, MessageMeta, ModSeq, Uid};
use std::sync::Arc;

/// The five system keywords (RFC 9051 §2.3.2) as bits, in their stored (sorted) order.
const SYSTEM: [&str; 5] = ["$answered", "$deleted", "$draft", "$flagged", "$seen"];

/// A message's keywords: system flags as bits, other keywords (rare) boxed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Keywords {
    bits: u8,
    // A thin pointer (8 bytes; `Box<[String]>` would be 16) in every view entry: custom
    // keywords are rare, the extra allocation when there are some does not matter.
    #[allow(clippy::box_collection)]
    custom: Option<Box<Vec<String>>>,
}

impl Keywords {
    /// From stored keywords (lowercase).
    pub fn from_stored(keywords: &[String]) -> Keywords {
        let mut bits = 0u8;
        let mut custom = Vec::new();
        for k in keywords {
            match SYSTEM.iter().position(|s| s == k) {
                Some(i) => bits |= 1 << i,
                None => custom.push(k.clone()),
            }
        }
        Keywords {
            bits,
            custom: (!custom.is_empty()).then(|| Box::new(custom)),
        }
    }

    /// Is the stored keyword `k` (lowercase) set?
    pub fn has(&self, k: &str) -> bool {
        match SYSTEM.iter().position(|s| *s == k) {
            Some(i) => self.bits & (1 << i) != 0,
            None => self
                .custom
                .as_ref()
                .is_some_and(|c| c.iter().any(|x| x == k)),
        }
    }

    /// The keywords in stored order (sorted), as the store lists them.
    pub fn list(&self) -> Vec<String> {
        let mut all: Vec<String> = SYSTEM
            .iter()
            .enumerate()
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, s)| (*s).to_string())
            .collect();
        if let Some(c) = &self.custom {
            all.extend(c.iter().cloned());
            all.sort();
        }
        all
    }

    /// Keywords that are not system flags.
    pub fn custom(&self) -> &[String] {
        self.custom.as_deref().map_or(&[], |c| c.as_slice())
    }
}

/// A blob hash (SHA-256) in 32 bytes instead of 64 hex characters on the heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlobKey([u8; 32]);

impl BlobKey {
    /// From the store's lowercase hex form; an unreadable hash becomes all zeroes (which
    /// names no blob, so the message reads as missing).
    pub fn from_hash(hash: &BlobHash) -> BlobKey {
        let mut key = [0u8; 32];
        let hex = hash.0.as_bytes();
        if hex.len() != 64 {
            return BlobKey(key);
        }
        // Table lookups, no branches per digit: SELECT converts every message of a mailbox.
        let mut bad = 0u8;
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let (h, l) = (
                HEX_VALUE[usize::from(pair[0])],
                HEX_VALUE[usize::from(pair[1])],
            );
            bad |= h | l;
            key[i] = (h << 4) | (l & 15);
        }
        if bad & INVALID != 0 {
            return BlobKey([0u8; 32]);
        }
        BlobKey(key)
    }

    pub fn to_hash(self) -> BlobHash {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        BlobHash(s)
    }
}

/// Marks a byte that is not a hex digit in [`HEX_VALUE`].
const INVALID: u8 = 0x80;

/// Value of each byte as a hex digit, or [`INVALID`].
const HEX_VALUE: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut c = 0;
    while c < 10 {
        t[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        t[b'a' as usize + c] = 10 + c as u8;
        t[b'A' as usize + c] = 10 + c as u8;
        c += 1;
    }
    t
};

/// One message of the selected mailbox (index + 1 is its sequence number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViewMsg {
    pub uid: Uid,
    pub size: u32,
    pub email: EmailId,
    pub modseq: ModSeq,
    pub received_at: i64,
    pub keywords: Keywords,
    /// The content, read by hash so that a message another session expunged (still in
    /// this view until reported) can still be fetched while its blob exists.
    pub blob: BlobKey,
}

impl ViewMsg {
    pub fn from_meta(m: &MessageMeta) -> ViewMsg {
        ViewMsg {
            uid: m.uid,
            size: m.size,
            email: m.email,
            modseq: m.modseq,
            received_at: m.received_at,
            keywords: Keywords::from_stored(&m.keywords),
            blob: BlobKey::from_hash(&m.blob),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.keywords.has("$deleted")
    }

    pub fn is_seen(&self) -> bool {
        self.keywords.has("$seen")
    }
}

/// Position of `uid` in a view ordered by UID.
pub(crate) fn position_of(view: &[ViewMsg], uid: Uid) -> Option<usize> {
    view.binary_search_by_key(&uid, |m| m.uid).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kws(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keywords_round_trip_in_stored_order() {
        for stored in [
            kws(&[]),
            kws(&["$seen"]),
            kws(&["$answered", "$deleted", "$draft", "$flagged", "$seen"]),
            kws(&["$flagged", "$junk", "$seen", "work"]),
            kws(&["$answered", "$label1"]),
        ] {
            assert_eq!(Keywords::from_stored(&stored).list(), stored);
        }
    }

    #[test]
    fn keywords_answer_membership_for_system_and_custom() {
        let k = Keywords::from_stored(&kws(&["$deleted", "$junk"]));
        assert!(k.has("$deleted") && k.has("$junk"));
        assert!(!k.has("$seen") && !k.has("work"));
        assert_eq!(k.custom(), ["$junk".to_string()].as_slice());
    }

    #[test]
    fn a_view_entry_stays_small() {
        // Thousands of idle sessions each hold one entry per message.
        assert!(std::mem::size_of::<ViewMsg>() <= 80);
    }

    #[test]
    fn blob_keys_round_trip_and_reject_bad_hex() {
        let hash = BlobHash::of(b"hello");
        assert_eq!(BlobKey::from_hash(&hash).to_hash(), hash);
        let bad = BlobKey::from_hash(&BlobHash("zz".repeat(32)));
        assert_eq!(bad, BlobKey([0u8; 32]));
        assert_eq!(
            BlobKey::from_hash(&BlobHash("ab".into())),
            BlobKey([0u8; 32])
        );
    }
}

/// A session's view of the selected mailbox: shared with the server's kept view of the
/// mailbox (and other sessions) until this session changes it, then copied once (copy on
/// write), so SELECT of an unchanged big mailbox copies nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct View(Arc<Vec<ViewMsg>>);

impl View {
    pub fn new(msgs: Vec<ViewMsg>) -> View {
        View(Arc::new(msgs))
    }
}

impl std::ops::Deref for View {
    type Target = Vec<ViewMsg>;
    fn deref(&self) -> &Vec<ViewMsg> {
        &self.0
    }
}

impl std::ops::DerefMut for View {
    fn deref_mut(&mut self) -> &mut Vec<ViewMsg> {
        Arc::make_mut(&mut self.0)
    }
}

/// What SELECT reports about a whole view, computed once per kept view instead of once per
/// SELECT (RFC 9051 §7.3.5 FLAGS, RFC 3501 §7.1 UNSEEN, RFC 7162 §3.1.2.1 HIGHESTMODSEQ).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ViewSummary {
    pub highest_modseq: ModSeq,
    /// Every keyword in use (their first-seen spelling).
    pub custom_keywords: std::collections::BTreeSet<String>,
    /// Index of the first message without `\Seen`.
    pub first_unseen: Option<usize>,
}

impl ViewSummary {
    pub fn of(view: &[ViewMsg]) -> ViewSummary {
        let mut summary = ViewSummary::default();
        for (i, m) in view.iter().enumerate() {
            summary.highest_modseq = summary.highest_modseq.max(m.modseq);
            for k in m.keywords.custom() {
                if !summary.custom_keywords.contains(k) {
                    summary.custom_keywords.insert(k.clone());
                }
            }
            if summary.first_unseen.is_none() && !m.is_seen() {
                summary.first_unseen = Some(i);
            }
        }
        summary
    }
}
