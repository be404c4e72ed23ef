//! A bounded in-memory cache of blob contents, keyed by their hash.
//!
//! Blobs are content-addressed and never change, so a cached copy can never be stale; the
//! only question is which ones to keep. Mail clients read the newest messages over and over
//! (header lists, the message being read), so a small first-in-first-out cache of recent
//! blobs spares most database reads of a busy IMAP server. Large blobs are not cached.

use crate::BlobHash;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Default total size of cached blobs.
pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Blobs larger than this are never cached (a few big attachments would evict everything).
pub const MAX_CACHED_BLOB: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Arc<[u8]>>,
    /// Insertion order, for eviction.
    order: VecDeque<String>,
    bytes: usize,
}

/// Shared by every reader of one store.
#[derive(Debug)]
pub struct BlobCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl BlobCache {
    pub fn new(capacity: usize) -> BlobCache {
        BlobCache {
            inner: Mutex::new(Inner::default()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the cached blob, if any.
    pub fn get(&self, hash: &BlobHash) -> Option<Vec<u8>> {
        let data = self.lock().map.get(&hash.0).cloned()?;
        Some(data.to_vec())
    }

    /// Remembers `data` as the content of `hash` (ignored when too large).
    pub fn put(&self, hash: &BlobHash, data: &[u8]) {
        if data.len() > MAX_CACHED_BLOB || data.len() > self.capacity {
            return;
        }
        let mut inner = self.lock();
        if inner.map.contains_key(&hash.0) {
            return;
        }
        while inner.bytes + data.len() > self.capacity {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(gone) = inner.map.remove(&old) {
                inner.bytes -= gone.len();
            }
        }
        inner.bytes += data.len();
        inner.order.push_back(hash.0.clone());
        inner.map.insert(hash.0.clone(), Arc::from(data));
    }

    /// Forgets everything (after the collector deleted blobs: a deleted blob is not served).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.map.clear();
        inner.order.clear();
        inner.bytes = 0;
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> BlobHash {
        BlobHash(format!("{n:064x}"))
    }

    #[test]
    fn returns_what_was_put_and_nothing_else() {
        let c = BlobCache::new(1024);
        c.put(&h(1), b"one");
        assert_eq!(c.get(&h(1)).as_deref(), Some(&b"one"[..]));
        assert_eq!(c.get(&h(2)), None);
    }

    #[test]
    fn evicts_the_oldest_when_full_and_stays_within_capacity() {
        let c = BlobCache::new(10);
        c.put(&h(1), b"aaaa");
        c.put(&h(2), b"bbbb");
        c.put(&h(3), b"cccc");
        assert_eq!(c.get(&h(1)), None);
        assert!(c.get(&h(2)).is_some() && c.get(&h(3)).is_some());
        assert!(c.bytes() <= 10);
    }

    #[test]
    fn large_blobs_are_not_cached() {
        let c = BlobCache::new(DEFAULT_CACHE_BYTES);
        let big = vec![0u8; MAX_CACHED_BLOB + 1];
        c.put(&h(1), &big);
        assert_eq!(c.get(&h(1)), None);
        assert_eq!(c.bytes(), 0);
    }
}
