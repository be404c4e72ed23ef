//! "Does this mail claim to be from one of our domains?" — asked of every message from the
//! inbound MX (SMTP marks such mail with `Authentication-Results`, the trust checks add
//! their own method to it). The answer only decides an advisory mark, so it is cached for a
//! short while per domain instead of costing the store a read or two per message; a domain
//! added or removed shows within [`TTL`].

use bulwark_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an answer is kept.
pub const TTL: Duration = Duration::from_secs(30);
/// Most domains kept (past it the cache starts afresh).
const MAX_DOMAINS: usize = 10_000;

pub struct LocalDomains {
    store: Arc<dyn Store>,
    known: Mutex<HashMap<String, (bool, Instant)>>,
}

impl LocalDomains {
    pub fn new(store: Arc<dyn Store>) -> LocalDomains {
        LocalDomains {
            store,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the envelope sender or a header `From` address of `raw` is in one of our
    /// domains.
    pub async fn claimed_by(&self, envelope_sender: &str, raw: &[u8]) -> bool {
        let (from, _) = crate::sender::header_senders(raw);
        let mut domains: Vec<String> = std::iter::once(envelope_sender)
            .chain(from.iter().map(String::as_str))
            .filter_map(|a| crate::split_address(a).map(|(_, domain)| domain))
            .collect();
        domains.sort();
        domains.dedup();
        for domain in domains {
            if self.is_local(&domain).await {
                return true;
            }
        }
        false
    }

    /// Whether `domain` (normalised) is one of ours; a store error counts as no.
    pub async fn is_local(&self, domain: &str) -> bool {
        let now = Instant::now();
        if let Some((local, at)) = self.lock().get(domain)
            && now.duration_since(*at) < TTL
        {
            return *local;
        }
        match self.store.domain_exists(domain).await {
            Ok(local) => {
                let mut known = self.lock();
                if known.len() >= MAX_DOMAINS {
                    known.clear();
                }
                known.insert(domain.to_string(), (local, now));
                local
            }
            Err(e) => {
                tracing::warn!(error = %e, %domain, "cannot check whether a sender domain is local");
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, Instant)>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}
