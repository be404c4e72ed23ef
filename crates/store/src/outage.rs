//! Test outages at the engine: a switch that, while down, makes every read and write
//! transaction of a store handle fail with [`StoreError::Unavailable`] — for tests of
//! degraded modes in every crate (SMTP spooling, IMAP `NO [UNAVAILABLE]`, JMAP 503) without
//! stopping a real database.
//!
//! The switch sits where every call of the embedded backend becomes a transaction
//! ([`crate::sqlite::SqliteStore::with_outage`] gives a second handle that consults it), so
//! it covers every method of the [`crate::Store`] trait, present and future, without a
//! wrapper that repeats them. The first handle keeps working: a test can look behind the
//! outage. Real PostgreSQL outages are tested with a real server (`bulwark-store-pg`'s
//! outage tests, the drills).

use crate::{Result, StoreError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// While [`Outage::set_down`]`(true)`, every transaction of the handles that share it is
/// refused.
#[derive(Debug, Default)]
pub struct Outage {
    down: AtomicBool,
    /// Calls refused so far.
    refused: AtomicU64,
}

impl Outage {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// How many calls were refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// `Err(Unavailable)` while down (and counts it).
    pub fn check(&self) -> Result<()> {
        if self.is_down() {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable(
                "the store is switched off (test outage)".into(),
            ));
        }
        Ok(())
    }
}
