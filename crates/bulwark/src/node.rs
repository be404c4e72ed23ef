//! This node's run state: serving or draining, and whether it can serve (`/readyz`).
//!
//! Readiness probes the store with a short timeout and caches the answer for
//! [`PROBE_CACHE`], so a load balancer polling `/readyz` often cannot hammer the store.

use bulwark_core::spool::Spool;
use bulwark_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, watch};

/// How long one store probe may take before the store counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe's answer is reused.
pub const PROBE_CACHE: Duration = Duration::from_secs(1);

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Draining,
    /// The store did not answer, or spooled mail is still being replayed (why).
    Degraded(String),
}

impl Readiness {
    /// The probe's body: `ready`, `draining`, `degraded: store unreachable: …`.
    pub fn text(&self) -> String {
        match self {
            Readiness::Ready => "ready".into(),
            Readiness::Draining => "draining".into(),
            Readiness::Degraded(why) => format!("degraded: {why}"),
        }
    }
    /// The store did not answer the probe.
    pub fn store_unreachable(why: &str) -> Readiness {
        Readiness::Degraded(format!("store unreachable: {why}"))
    }
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

/// Shared by the servers, the probes and the signal handler.
pub struct NodeState {
    store: Arc<dyn Store>,
    /// The local SMTP spool (set once at start): mail waiting in it means degraded.
    spool: std::sync::OnceLock<Arc<Spool>>,
    draining: watch::Sender<bool>,
    /// The last store probe: when, and its outcome (`Err(why)` when unreachable).
    probe: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl NodeState {
    pub fn new(store: Arc<dyn Store>) -> Arc<NodeState> {
        let (draining, _) = watch::channel(false);
        Arc::new(NodeState {
            store,
            spool: std::sync::OnceLock::new(),
            draining,
            probe: Mutex::new(None),
        })
    }

    /// Lets readiness report mail waiting in the local spool.
    pub fn set_spool(&self, spool: Arc<Spool>) {
        let _ = self.spool.set(spool);
    }

    /// Starts draining (idempotent): `/readyz` answers 503 at once, listeners stop.
    pub fn start_drain(&self) {
        self.draining.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// A receiver that sees `true` once draining starts (for the servers' shutdown hooks).
    pub fn drain_signal(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Draining wins; else the (cached) store probe decides.
    pub async fn readiness(&self) -> Readiness {
        if self.is_draining() {
            return Readiness::Draining;
        }
        // Held across the probe: concurrent pollers wait for one probe and share its answer.
        let mut cached = self.probe.lock().await;
        let outcome = match &*cached {
            Some((at, outcome)) if at.elapsed() < PROBE_CACHE => outcome.clone(),
            _ => {
                let outcome = probe_store(&*self.store).await;
                *cached = Some((Instant::now(), outcome.clone()));
                outcome
            }
        };
        drop(cached);
        if self.is_draining() {
            return Readiness::Draining;
        }
        match outcome {
            Err(why) => Readiness::store_unreachable(&why),
            Ok(()) => match self.spool.get().map(|s| s.status()) {
                // The store answers again but spooled mail is still being replayed.
                Some(st) if st.degraded => Readiness::Degraded(format!(
                    "replaying the local spool: {} messages ({} bytes) waiting",
                    st.messages, st.bytes
                )),
                _ => Readiness::Ready,
            },
        }
    }
}

/// One cheap read with a deadline.
pub async fn probe_store(store: &dyn Store) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, store.domain_exists("probe.invalid")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            PROBE_TIMEOUT.as_secs_f32()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = bulwark_store::sqlite::SqliteStore::open(dir.path()).expect("open");
        (dir, store)
    }

    #[tokio::test]
    async fn ready_until_drain_starts_then_draining() {
        let (_dir, store) = store();
        let node = NodeState::new(store);
        let mut signal = node.drain_signal();
        assert_eq!(node.readiness().await, Readiness::Ready);
        node.start_drain();
        assert_eq!(node.readiness().await, Readiness::Draining);
        assert_eq!(node.readiness().await.text(), "draining");
        assert!(signal.has_changed().expect("sender alive"));
        assert!(*signal.borrow_and_update());
    }

    #[test]
    fn degraded_text_names_the_store() {
        let r = Readiness::store_unreachable("connection refused");
        assert_eq!(r.text(), "degraded: store unreachable: connection refused");
        assert!(!r.is_ready());
    }
}
